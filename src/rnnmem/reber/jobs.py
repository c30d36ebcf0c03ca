"""What the Reber-branch rules run (report §1.3, §2.1): train the ensembles, tabulate them, draw figures 7, 8, 10, 11.

Every function here takes plain paths and a parameter dict (the rule's JSON ``--params``), so it can be called from
the CLI, a test or a notebook alike. The memory branch's jobs are in :mod:`rnnmem.memory.jobs`. matplotlib is
imported by the figure jobs only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnmem.core.atomic import write_csv, write_text
from rnnmem.core.errors import InputFileError
from rnnmem.core.progress import summary
from rnnmem.core.runtime import pick_device
from rnnmem.core.tables import read_table
from rnnmem.reber.ensembles import load_ensemble, save_ensemble, untrained_ensemble
from rnnmem.reber.experiment_spec import Experiment
from rnnmem.reber.experiments import member_strings, run_experiment, summarize
from rnnmem.reber.gradient_log import GradientRecorder
from rnnmem.reber.grammars import EMBEDDED_REBER, REBER, sample_reber
from rnnmem.reber.indistinguishable import PROBE_PAIR, final_state_differences
from rnnmem.reber.toy import most_active_outputs, train_toy
from rnnmem.reber.training import make_regime

RUN_COLUMNS = ["experiment", "grammar", "model", "hidden", "params", "regime", "seed", "solved", "strings_to_success",
               "legal_acc_test", "outer_acc_test"]


def reber_train(
    params: dict[str, Any], model_path: Path, spec_path: Path, table_path: Path, gradients_path: Path | None = None
) -> None:
    """Train one (experiment, regime) ensemble, a member per seed, logging |gradient| histograms on the way."""
    experiment = Experiment(**params["experiment"])
    regime = make_regime(params["regime_name"], params["regime"])
    seeds = list(range(params["first_seed"], params["first_seed"] + params["n_seeds"]))
    device = pick_device()
    print(f"{experiment} regime={regime} seeds={seeds[0]}..{seeds[-1]} device={device}", flush=True)
    recorder = GradientRecorder(**params["gradient_log"]) if gradients_path else None
    model, table, result = run_experiment(
        experiment, regime, seeds, params["train_strings"], params["test_strings"],
        params["max_strings"], params["check_every"], device, step_hook=recorder,
    )
    spec = {
        "experiment": experiment.name, "grammar": experiment.grammar, "model": experiment.model,
        "hidden": experiment.hidden, "activation": experiment.activation, "params": experiment.params,
        "input_size": experiment.alphabet_size, "output_size": experiment.alphabet_size,
        "regime": regime.name, "regime_settings": params["regime"], "seeds": seeds,
    }
    if recorder is not None:
        histograms = recorder.table()
        for column, value in (("regime", regime.name), ("hidden", experiment.hidden),
                              ("model", experiment.model), ("experiment", experiment.name)):
            histograms.insert(0, column, value)
        write_csv(gradients_path, histograms)
    write_csv(table_path, table)
    save_ensemble(model.cpu(), spec, model_path, spec_path)
    logged = f", {len(histograms)} histogram rows" if recorder is not None else ""
    summary(f"{experiment.name}/{regime.name}: solved {int(table['solved'].sum())}/{len(seeds)} seeds "
            f"({experiment.model}, {experiment.hidden} units, {experiment.params} parameters), "
            f"up to {int(table['strings_presented'].max())} strings presented, {result.seconds:.1f} s{logged}")


def reber_tables(run_tables: list[Path], success_path: Path, summary_path: Path, summary_md: Path) -> None:
    """Concatenate the per-run tables and summarise them per (grammar, model, regime)."""
    success = pd.concat([read_table(path, RUN_COLUMNS) for path in run_tables], ignore_index=True)
    success["strings_to_success"] = success["strings_to_success"].astype("Int64")
    table = summarize(success)
    write_csv(success_path, success)
    write_csv(summary_path, table)
    write_text(summary_md, table.to_markdown(index=False, floatfmt=".4g") + "\n")
    summary(f"{len(run_tables)} runs, {len(success)} seeds ({int(success['solved'].sum())} solved), "
            f"{len(table)} (grammar, model, regime) rows")


def _showcase(model_path: Path, spec_path: Path, table_path: Path) -> tuple[Any, dict, int, str]:
    from rnnmem.reber import figures

    model, spec = load_ensemble(model_path, spec_path)
    table = read_table(table_path, ["seed", "solved", "legal_acc_test"])
    if len(table) != len(spec["seeds"]):
        raise InputFileError(f"{table_path}: {len(table)} rows, but {spec_path} lists {len(spec['seeds'])} seeds")
    member = figures.showcase_member(table)
    row = table.iloc[member]
    state = "solved" if bool(row["solved"]) else "not solved"
    label = (f"{spec['model']} ({spec['hidden']} units, {spec['params']} parameters), {spec['regime']} regime, "
             f"seed {int(row['seed'])} ({state})")
    return model, spec, member, label


def reber_figure(figure: str, model_path: Path, spec_path: Path, table_path: Path, out: Path) -> None:
    """One of the report's figures 7, 8, 10, 11 from a trained ensemble's showcase member."""
    from rnnmem.reber import figures  # matplotlib: only the figure jobs load it

    model, spec, member, label = _showcase(model_path, spec_path, table_path)
    probabilities = spec["regime"] == "modern"
    seed = spec["seeds"][member]
    if figure == "fig07":
        train, _ = member_strings(REBER, seed, 256, 0)
        strings = list(dict.fromkeys(train))[:4]  # four distinct training strings, in drawing order
        figures.fig_output_heatmaps(model, member, REBER, strings, probabilities,
                                    f"Output layer on Reber strings\n{label}", out)
    elif figure == "fig08":
        train, _ = member_strings(REBER, seed, 256, 0)
        pairs = figures.same_state_pairs(train, 3)
        figures.fig_hidden_pairs(model, member, REBER, pairs,
                                 f"Hidden states of prefixes reaching the same automaton state\n{label}", out,
                                 strings=train)
    elif figure in ("fig10", "fig11"):
        inner = sample_reber(np.random.default_rng([seed, 13]))
        figures.fig_embedded_pair(model, member, EMBEDDED_REBER, figures.embedded_pair(inner), probabilities,
                                  f"{figures.model_title(spec['model'])} on embedded Reber: B T … T E vs B P … P E"
                                  f"\n{label}", out)
    else:
        raise ValueError(f"unknown Reber figure {figure!r}")
    summary(f"{figure}: {label} -> {out}")


def indistinguishable(params: dict[str, Any], models: list[Path], specs: list[Path], out: Path) -> None:
    """Output/hidden differences after BPBTXSE vs BTBTXSE, trained and random networks."""
    rows = []
    for model_path, spec_path in zip(models, specs, strict=True):
        model, spec = load_ensemble(model_path, spec_path)
        random_seeds = list(range(params["random_draws"]))
        random_net = untrained_ensemble(spec, random_seeds)
        for weights, net, seeds in (("trained", model, spec["seeds"]), ("random", random_net, random_seeds)):
            diffs = final_state_differences(net, PROBE_PAIR)
            for m, seed in enumerate(seeds):
                rows.append({
                    "experiment": spec["experiment"], "model": spec["model"], "hidden": spec["hidden"],
                    "regime": spec["regime"], "weights": weights, "seed": seed,
                    "output_mean_abs_diff": float(diffs["output_mean_abs_diff"][m]),
                    "hidden_mean_abs_diff": float(diffs["hidden_mean_abs_diff"][m]),
                })
    per_seed = pd.DataFrame(rows)
    keys = ["experiment", "model", "hidden", "regime", "weights"]
    table = per_seed.groupby(keys, sort=False).agg(
        n=("seed", "size"),
        output_mean_abs_diff=("output_mean_abs_diff", "mean"),
        output_median_abs_diff=("output_mean_abs_diff", "median"),
        hidden_mean_abs_diff=("hidden_mean_abs_diff", "mean"),
        hidden_median_abs_diff=("hidden_mean_abs_diff", "median"),
    ).reset_index()
    table.insert(0, "strings", " vs ".join(PROBE_PAIR))
    write_csv(out, table)
    trained = table[table["weights"] == "trained"]["output_mean_abs_diff"]
    summary(f"{len(models)} ensembles, {len(per_seed)} networks (trained and random), {len(table)} rows; trained "
            f"output difference {trained.min():.3g} to {trained.max():.3g} (mean per ensemble)")


def toy_language(params: dict[str, Any], out: Path) -> None:
    """Train the §1.3 network and tabulate its most active outputs after each prefix."""
    model, run = train_toy(params, pick_device())
    table = most_active_outputs(model.cpu())
    table.insert(0, "solved", bool(run["solved"].iloc[0]))
    table.insert(1, "strings_to_success", run["strings_to_success"].iloc[0])
    write_csv(out, table)
    summary(f"toy language: solved {bool(run['solved'].iloc[0])} after {run['strings_to_success'].iloc[0]} strings, "
            f"{len(table)} rows of most active outputs")
