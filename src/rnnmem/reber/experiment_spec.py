"""The config's Reber experiments, resolved: what the Snakefile needs to name and size them, without torch.

``workflow/rules/common.smk`` calls :func:`resolve_experiments` when the Snakefile is parsed (``snakemake -n`` and
``--lint`` run where torch is not installed), so this module imports only the torch-free
:mod:`rnnmem.core.sizes` and :mod:`rnnmem.reber.alphabets`. Training them is :mod:`rnnmem.reber.experiments`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnmem.core.sizes import matched_hidden, parameter_count
from rnnmem.reber.alphabets import ALPHABETS


@dataclass(frozen=True)
class Experiment:
    """A row of the config's ``reber.experiments`` list with its hidden size resolved."""

    name: str
    grammar: str
    model: str
    hidden: int
    activation: str = "logistic"

    @property
    def alphabet_size(self) -> int:
        return len(ALPHABETS[self.grammar])

    @property
    def params(self) -> int:
        return parameter_count(self.model, self.alphabet_size, self.hidden, self.alphabet_size)


def resolve_experiments(entries: list[dict]) -> dict[str, Experiment]:
    """Turn config entries into experiments; ``match_params_of`` picks the hidden size of equal cost."""
    resolved: dict[str, Experiment] = {}
    for entry in entries:
        if "hidden" in entry:
            hidden = int(entry["hidden"])
        else:
            other = entry["match_params_of"]
            if other not in resolved:
                raise ValueError(f"reber.experiments: {entry['name']!r} matches {other!r}, which must come first")
            size = resolved[other].alphabet_size
            hidden = matched_hidden(entry["model"], size, size, resolved[other].params)
        resolved[entry["name"]] = Experiment(
            entry["name"], entry["grammar"], entry["model"], hidden, entry.get("activation", "logistic")
        )
    return resolved
