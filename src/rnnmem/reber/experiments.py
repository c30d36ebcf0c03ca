"""The Reber experiments of report §2.1, with the protocol of Hochreiter & Schmidhuber (1997), Exp. 1.

One *experiment* is a (grammar, model, hidden size) trained under one regime for several seeds at once.
Seed s fixes the member's training/test strings, its initial weights and its presentation order, whatever
ensemble it is trained in. The experiments themselves (names, sizes) are resolved from the config by the
torch-free :mod:`rnnmem.reber.experiment_spec`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from rnnmem.core.cells import SequencePredictor
from rnnmem.reber.experiment_spec import Experiment
from rnnmem.reber.grammars import GRAMMARS, Grammar, sample_disjoint_sets
from rnnmem.reber.sequences import EncodedStrings, encode, top_m_correct
from rnnmem.reber.training import Regime, StepHook, TrainResult, compiled_available, train

SUCCESS_COLUMNS = [
    "grammar", "model", "hidden", "params", "regime", "seed", "solved", "strings_to_success",
    "strings_presented", "legal_acc_train", "legal_acc_test", "outer_acc_test", "stop_reason", "epochs",
    "final_lr",
]


def member_strings(grammar: Grammar, seed: int, n_train: int, n_test: int) -> tuple[list[str], list[str]]:
    """The training and test strings of one seed (the same for every model, so runs are paired)."""
    return sample_disjoint_sets(grammar, np.random.default_rng([int(seed), 11]), n_train, n_test)


def outer_step(data: EncodedStrings) -> torch.Tensor:
    """(M, N) index of the step that predicts the repeated outer T/P of an embedded string."""
    return data.lengths - 2


@torch.no_grad()
def evaluate(model: SequencePredictor, data: EncodedStrings, embedded: bool) -> dict[str, np.ndarray]:
    """Per member: solved (every step correct), legal-symbol accuracy, outer-symbol accuracy."""
    outputs, _ = model(data.x)
    correct = top_m_correct(outputs, data.legal)
    valid = data.valid
    string_ok = (correct | ~valid).all(dim=2)
    result = {
        "all_correct": string_ok.all(dim=1).cpu().numpy(),
        "legal_acc": ((correct & valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2))).cpu().numpy(),
    }
    if embedded:
        step = outer_step(data).unsqueeze(-1)
        predicted = outputs.argmax(-1).gather(2, step).squeeze(-1)
        wanted = data.targets.gather(2, step).squeeze(-1)
        result["outer_acc"] = (predicted == wanted).float().mean(dim=1).cpu().numpy()
    else:
        result["outer_acc"] = np.full(outputs.shape[0], np.nan)
    return result


class CompiledCheck:
    """The success check (every string of each data set correct at every step) by the compiled kernel: one pass
    over the strings of the members still training, without building the outputs tensor; for those, the same
    answer as :func:`evaluate` (stopped members: False, unchecked)."""

    def __init__(self, model: SequencePredictor, datasets: list[EncodedStrings]) -> None:
        from rnnmem.core import compiled

        self.kernel = compiled.all_correct
        recurrence = model.recurrence
        self.codes = (compiled.KIND_CODES[recurrence.kind], compiled.ACTIVATION_CODES[recurrence.activation])
        self.arrays = [(d.input_symbols(), d.legal.cpu().numpy(), d.lengths.cpu().numpy().astype(np.int64))
                       for d in datasets]

    def __call__(self, net: SequencePredictor, active: torch.Tensor) -> torch.Tensor:
        weights = [p.detach().numpy() for p in (net.recurrence.weight_ih, net.recurrence.weight_hh,
                                                net.recurrence.bias, net.readout.weight, net.readout.bias)]
        solved = active.cpu().numpy().copy()
        for symbols, legal, lengths in self.arrays:
            out = np.zeros(net.members, dtype=bool)
            self.kernel(*self.codes, *weights, symbols, legal, lengths, out, solved)
            solved &= out
        return torch.from_numpy(solved)


def run_experiment(
    experiment: Experiment,
    regime: Regime,
    seeds: list[int],
    n_train: int,
    n_test: int,
    max_strings: int,
    check_every: int,
    device: torch.device,
    step_hook: StepHook | None = None,
    compiled: bool | None = None,
) -> tuple[SequencePredictor, pd.DataFrame, TrainResult]:
    """Train one ensemble (a member per seed) and tabulate each member's outcome; ``compiled`` as in
    :func:`rnnmem.reber.training.train` (None: the compiled kernels on the CPU)."""
    grammar = GRAMMARS[experiment.grammar]
    sets = [member_strings(grammar, seed, n_train, n_test) for seed in seeds]
    train_data = encode(grammar, [train_strings for train_strings, _ in sets]).to(device)
    test_data = encode(grammar, [test_strings for _, test_strings in sets]).to(device)
    embedded = experiment.grammar == "embedded_reber"
    model = SequencePredictor(
        experiment.model, experiment.alphabet_size, experiment.hidden, experiment.alphabet_size,
        members=len(seeds), activation=experiment.activation,
    )
    model.reset_parameters(regime.init, seeds, regime.zero_bias)
    model.to(device)

    def solved(net: SequencePredictor, active: torch.Tensor) -> torch.Tensor:
        on_train = evaluate(net, train_data, embedded)["all_correct"]
        on_test = evaluate(net, test_data, embedded)["all_correct"]
        return torch.as_tensor(on_train & on_test, device=device)

    if compiled is None:
        compiled = compiled_available(model, device)
    result = train(
        model, train_data, regime, seeds, max_strings, check_every,
        CompiledCheck(model, [train_data, test_data]) if compiled else solved,
        desc=f"{experiment.name}/{regime.name}", step_hook=step_hook, compiled=compiled,
    )
    final_train = evaluate(model, train_data, embedded)
    final_test = evaluate(model, test_data, embedded)
    table = pd.DataFrame({
        "grammar": experiment.grammar,
        "model": experiment.model,
        "hidden": experiment.hidden,
        "params": experiment.params,
        "regime": regime.name,
        "seed": seeds,
        "solved": result.strings_to_success >= 0,
        "strings_to_success": pd.array(
            [s if s >= 0 else None for s in result.strings_to_success], dtype="Int64"
        ),
        "strings_presented": result.strings_presented,
        "legal_acc_train": final_train["legal_acc"],
        "legal_acc_test": final_test["legal_acc"],
        "outer_acc_test": final_test["outer_acc"],
        "stop_reason": result.stop_reason,
        "epochs": result.epochs,
        "final_lr": result.final_lr,
    })
    table.insert(0, "experiment", experiment.name)
    return model, table, result


def summarize(success: pd.DataFrame) -> pd.DataFrame:
    """Success rate and strings-to-success statistics per (grammar, model, regime)."""
    keys = ["grammar", "model", "hidden", "params", "regime"]
    rows = []
    for key, group in success.groupby(keys, sort=False):
        solved = group.loc[group["solved"], "strings_to_success"].astype(float)
        rows.append({
            **dict(zip(keys, key, strict=True)),
            "seeds": len(group),
            "solved": int(group["solved"].sum()),
            "success_rate": float(group["solved"].mean()),
            "median_strings": float(solved.median()) if len(solved) else np.nan,
            "min_strings": float(solved.min()) if len(solved) else np.nan,
            "max_strings": float(solved.max()) if len(solved) else np.nan,
            "mean_legal_acc_test": float(group["legal_acc_test"].mean()),
            "mean_outer_acc_test": float(group["outer_acc_test"].mean()),
        })
    return pd.DataFrame(rows)
