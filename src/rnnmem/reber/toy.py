"""The report's §1.3 warm-up: a Vanilla network learns the language (0|1)01* between ⊙ and ⊗.

§1.3 expects: after ⊙ the outputs of 0 and 1 dominate; after ⊙x only 0; after ⊙x0 and ⊙x01… both 1 and ⊗.
"""

from __future__ import annotations

import pandas as pd
import torch

from rnnmem.reber.experiment_spec import Experiment
from rnnmem.reber.experiments import run_experiment
from rnnmem.reber.grammars import TOY, toy_legal_next
from rnnmem.reber.sequences import top_m_correct
from rnnmem.reber.training import make_regime

TOY_PREFIXES = ("⊙", "⊙0", "⊙00", "⊙001", "⊙0011", "⊙00111", "⊙1", "⊙10", "⊙101", "⊙1011", "⊙10111")


def train_toy(settings: dict, device: torch.device) -> tuple[torch.nn.Module, pd.DataFrame]:
    """Train one network with the Reber protocol on the toy language."""
    experiment = Experiment("toy", "toy", "vanilla", settings["hidden"], settings["activation"])
    regime = make_regime("modern", settings["regime"])
    model, table, _ = run_experiment(
        experiment, regime, [settings["seed"]], settings["train_strings"], settings["test_strings"],
        settings["max_strings"], settings["check_every"], device,
    )
    return model, table


@torch.no_grad()
def most_active_outputs(model: torch.nn.Module, prefixes: tuple[str, ...] = TOY_PREFIXES) -> pd.DataFrame:
    """For each prefix: the legal next symbols, the m most active outputs, and every output's probability."""
    rows = []
    for prefix in prefixes:
        x = torch.nn.functional.one_hot(torch.tensor(TOY.index(prefix)), len(TOY.alphabet)).float()
        outputs, _ = model(x.reshape(1, 1, len(prefix), -1))
        last = outputs[0, 0, -1]
        probs = torch.softmax(last, dim=-1)
        legal = toy_legal_next(prefix)
        order = torch.argsort(last, descending=True, stable=True).tolist()
        top = "".join(sorted((TOY.alphabet[i] for i in order[: len(legal)]), key=TOY.alphabet.index))
        legal_mask = torch.tensor([s in legal for s in TOY.alphabet])
        rows.append({
            "prefix": prefix,
            "legal_next": "".join(sorted(legal, key=TOY.alphabet.index)),
            "most_active": top,
            "correct": bool(top_m_correct(last, legal_mask)),
            **{f"p_{symbol}": float(p) for symbol, p in zip(TOY.alphabet, probs, strict=True)},
        })
    return pd.DataFrame(rows)
