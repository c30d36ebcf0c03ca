"""What each Snakemake rule runs: read the inputs, call the domain code, write the outputs atomically.

Every function here takes plain paths and a parameter dict (the rule's JSON ``--params``), so it can be
called from the CLI, a test or a notebook alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnmem import plots, plots_capacity, plots_dlk, plots_gradients
from rnnmem.atomic import write_csv, write_text
from rnnmem.checkpoints import load_ensemble, save_ensemble
from rnnmem.config import ConfigError
from rnnmem.errors import InputFileError
from rnnmem.grammars import EMBEDDED_REBER, REBER, sample_reber
from rnnmem.indistinguishable import PROBE_PAIR, final_state_differences
from rnnmem.memory.capacity import (
    COLUMNS as CAPACITY_COLUMNS,
)
from rnnmem.memory.capacity import (
    TOTAL_COLUMNS,
    CapacitySettings,
    esn_capacity_per_reservoir,
    gru_capacity_per_reservoir,
    lag_table,
    totals_per_k,
)
from rnnmem.memory.dlk import TABLE_COLUMNS as DLK_COLUMNS
from rnnmem.memory.dlk import dlk_table
from rnnmem.memory.gradients import GradientRecorder, by_lag, gradient_norms_by_lag, summarize_histograms
from rnnmem.reber import Experiment, member_strings, run_experiment, summarize
from rnnmem.runtime import pick_device
from rnnmem.sequences import encode
from rnnmem.tables import read_table
from rnnmem.toy import most_active_outputs, train_toy
from rnnmem.training import make_regime

RUN_COLUMNS = ["experiment", "grammar", "model", "hidden", "params", "regime", "seed", "solved", "strings_to_success",
               "legal_acc_test", "outer_acc_test"]
HISTOGRAM_COLUMNS = ["experiment", "model", "regime", "phase", "group", "steps", "bin_low", "bin_high", "count"]


def _weight_scale(value: float | str, k: int, key: str) -> float:
    """A config weight scale (a number > 0, or ``inv_sqrt_k`` for 1/√k) as a number."""
    if value == "inv_sqrt_k":
        return k ** -0.5
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{key}: {value!r} is neither a number > 0 nor 'inv_sqrt_k'")
    return float(value)


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
    print(f"trained in {result.seconds:.1f} s; solved {int(table['solved'].sum())}/{len(seeds)}", flush=True)
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


def reber_tables(run_tables: list[Path], success_path: Path, summary_path: Path, summary_md: Path) -> None:
    """Concatenate the per-run tables and summarise them per (grammar, model, regime)."""
    success = pd.concat([read_table(path, RUN_COLUMNS) for path in run_tables], ignore_index=True)
    success["strings_to_success"] = success["strings_to_success"].astype("Int64")
    summary = summarize(success)
    write_csv(success_path, success)
    write_csv(summary_path, summary)
    write_text(summary_md, summary.to_markdown(index=False, floatfmt=".4g") + "\n")


def _showcase(model_path: Path, spec_path: Path, table_path: Path) -> tuple[Any, dict, int, str]:
    model, spec = load_ensemble(model_path, spec_path)
    table = read_table(table_path, ["seed", "solved", "legal_acc_test"])
    if len(table) != len(spec["seeds"]):
        raise InputFileError(f"{table_path}: {len(table)} rows, but {spec_path} lists {len(spec['seeds'])} seeds")
    member = plots.showcase_member(table)
    row = table.iloc[member]
    state = "solved" if bool(row["solved"]) else "not solved"
    label = (f"{spec['model']} ({spec['hidden']} units, {spec['params']} parameters), {spec['regime']} regime, "
             f"seed {int(row['seed'])} ({state})")
    return model, spec, member, label


def reber_figure(figure: str, model_path: Path, spec_path: Path, table_path: Path, out: Path) -> None:
    """One of the report's figures 7, 8, 10, 11 from a trained ensemble's showcase member."""
    model, spec, member, label = _showcase(model_path, spec_path, table_path)
    probabilities = spec["regime"] == "modern"
    seed = spec["seeds"][member]
    if figure == "fig07":
        train, _ = member_strings(REBER, seed, 256, 0)
        strings = list(dict.fromkeys(train))[:4]  # four distinct training strings, in drawing order
        plots.fig_output_heatmaps(model, member, REBER, strings, probabilities,
                                  f"Output layer on Reber strings\n{label}", out)
    elif figure == "fig08":
        train, _ = member_strings(REBER, seed, 256, 0)
        pairs = plots.same_state_pairs(train, 3)
        plots.fig_hidden_pairs(model, member, REBER, pairs,
                               f"Hidden states of prefixes reaching the same automaton state\n{label}", out)
    elif figure in ("fig10", "fig11"):
        inner = sample_reber(np.random.default_rng([seed, 13]))
        plots.fig_embedded_pair(model, member, EMBEDDED_REBER, plots.embedded_pair(inner), probabilities,
                                f"Embedded Reber: B T … T E vs B P … P E\n{label}", out)
    else:
        raise ValueError(f"unknown Reber figure {figure!r}")


def indistinguishable(params: dict[str, Any], models: list[Path], specs: list[Path], out: Path) -> None:
    """Output/hidden differences after BPBTXSE vs BTBTXSE, trained and random networks."""
    rows = []
    for model_path, spec_path in zip(models, specs, strict=True):
        model, spec = load_ensemble(model_path, spec_path)
        random_net = type(model)(spec["model"], spec["input_size"], spec["hidden"], spec["output_size"],
                                 members=params["random_draws"], activation=spec["activation"])
        random_net.reset_parameters(spec["regime_settings"]["init"], list(range(params["random_draws"])))
        for weights, net, seeds in (("trained", model, spec["seeds"]),
                                    ("random", random_net, list(range(params["random_draws"])))):
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


def toy_language(params: dict[str, Any], out: Path) -> None:
    """Train the §1.3 network and tabulate its most active outputs after each prefix."""
    model, run = train_toy(params, pick_device())
    table = most_active_outputs(model.cpu())
    table.insert(0, "solved", bool(run["solved"].iloc[0]))
    table.insert(1, "strings_to_success", run["strings_to_success"].iloc[0])
    write_csv(out, table)




def gradient_summary(histogram_paths: list[Path], table_out: Path, fig12: Path, fig13: Path, zoom_max: float) -> None:
    """Figures 12, 13 and tables/gradients.csv from the training jobs' |gradient| histograms."""
    histograms = pd.concat([read_table(path, HISTOGRAM_COLUMNS, allow_empty=True) for path in histogram_paths],
                           ignore_index=True)
    write_csv(table_out, summarize_histograms(histograms))
    plots_gradients.fig_gradient_histograms(histograms, fig12)
    plots_gradients.fig_gradient_histograms(histograms, fig13, zoom_max=zoom_max)


def gradient_lag(params: dict[str, Any], models: list[Path], specs: list[Path], table_out: Path, fig: Path) -> None:
    """‖∂E_t/∂h_{t−l}‖ against the lag l on embedded test strings, trained and initial weights."""
    frames = []
    for model_path, spec_path in zip(models, specs, strict=True):
        trained, spec = load_ensemble(model_path, spec_path)
        seeds = spec["seeds"]
        initial = type(trained)(spec["model"], spec["input_size"], spec["hidden"], spec["output_size"],
                                members=len(seeds), activation=spec["activation"])
        initial.reset_parameters(spec["regime_settings"]["init"], seeds)
        # The first test strings of each seed (test strings are drawn after the training strings).
        tests = [member_strings(EMBEDDED_REBER, seed, params["train_strings"], params["strings"])[1]
                 for seed in seeds]
        data = encode(EMBEDDED_REBER, tests)
        step = data.lengths - 2  # the step that reads the inner E and must predict the outer T/P
        loss = "squared_error" if spec["regime"] == "seed" else "cross_entropy"
        for weights, net in (("trained", trained), ("initial", initial)):
            table = by_lag(gradient_norms_by_lag(net, data.x, data.targets, step, loss), step)
            for column, value in (("weights", weights), ("regime", spec["regime"]), ("hidden", spec["hidden"]),
                                  ("model", spec["model"]), ("experiment", spec["experiment"])):
                table.insert(0, column, value)
            frames.append(table)
    table = pd.concat(frames, ignore_index=True)
    write_csv(table_out, table)
    plots_gradients.fig_gradient_vs_lag(table, fig)



def dlk(params: dict[str, Any], out: Path) -> None:
    """D(l,k) of one (model, k): every l up to max_l in one batched pass over all draws."""
    table = dlk_table(params["model"], params["k"], params["draws"], params["max_l"], params["seed"],
                      params["weight_scale"])
    write_csv(out, table, float_format="%.10g")


def dlk_merge(parts: list[Path], out: Path) -> None:
    """One model's D(l,k) table from its per-k parts, sorted by k then l."""
    table = pd.concat([read_table(path, DLK_COLUMNS) for path in parts], ignore_index=True).sort_values(["k", "l"])
    write_csv(out, table, float_format="%.10g")


def dlk_figures(params: dict[str, Any], tables: list[Path], heatmaps: list[Path], curves: Path) -> None:
    """Figures 14 (Vanilla), 15 (GRU) and the D-against-l curves."""
    frames = {model: read_table(path, DLK_COLUMNS) for model, path in zip(params["models"], tables, strict=True)}
    labels = {"vanilla": "Vanilla (logistic σ)", "gru": "GRU"}
    scale = params["weight_scale"]
    factor = "" if scale == 1 else (", W_h × 1/√k" if scale == "inv_sqrt_k" else f", W_h × {scale:g}")
    weights = f"N(0,1) weights{factor}"
    for (model, frame), out in zip(frames.items(), heatmaps, strict=True):
        plots_dlk.fig_dlk_heatmap(frame, labels[model], out, weights_label=weights)
    plots_dlk.fig_dlk_curves(frames, params["curves_k"], curves, weights_label=weights)


def capacity(params: dict[str, Any], esn_out: Path, gru_out: Path, totals_out: Path) -> None:
    """MC(l,k) of ESNs and of random GRUs for every k, and the total MC per k with its exact spread."""
    settings = CapacitySettings(
        rho=params["esn"]["rho"], input_scale=params["esn"]["input_scale"], train_length=params["train_length"],
        washout=params["washout"], test_length=params["test_length"], ridge=params["ridge"],
        max_lag=params["max_lag"], reservoirs=params["reservoirs"], seed=params["seed"],
        activation=params["esn"]["activation"], orthogonal=params["esn"]["orthogonal"],
    )
    scale = params["gru"]["weight_scale"]
    _weight_scale(scale, 1, "memory.capacity.gru.weight_scale")  # checked before the long ESN runs
    lag_tables: dict[str, list[pd.DataFrame]] = {"esn": [], "gru": []}
    totals = []
    for k in params["k"]:
        per_reservoir = {
            "esn": esn_capacity_per_reservoir(k, settings),
            "gru": gru_capacity_per_reservoir(k, settings, _weight_scale(scale, k, "memory.capacity.gru.weight_scale")),
        }
        for kind, values in per_reservoir.items():
            lag_tables[kind].append(lag_table(k, values))
            totals.append({"reservoir": kind, **totals_per_k(k, values)})
        print(f"k={k}: MC esn {totals[-2]['mc_total']:.3f}, gru {totals[-1]['mc_total']:.3f}", flush=True)
    write_csv(esn_out, pd.concat(lag_tables["esn"], ignore_index=True), float_format="%.10g")
    write_csv(gru_out, pd.concat(lag_tables["gru"], ignore_index=True), float_format="%.10g")
    write_csv(totals_out, pd.DataFrame(totals), float_format="%.10g")


def capacity_figures(params: dict[str, Any], esn: Path, gru: Path, totals: Path, dlk_tables: list[Path],
                     fig16: Path, mc_gru: Path, mc_total: Path, dlk_vs_mc: Path) -> None:
    """Figure 16, the random-GRU capacity, total MC against k, and D(l,k) beside MC(l,k)."""
    esn_table, gru_table = read_table(esn, CAPACITY_COLUMNS), read_table(gru, CAPACITY_COLUMNS)
    totals_table = read_table(totals, ["reservoir", *TOTAL_COLUMNS])
    esn_label = f"ESN {params['esn']['activation']}, ρ = {params['esn']['rho']:g}"
    scale = params["gru"]["weight_scale"]
    gru_label = "random GRU, weights N(0,1)" + (" / √k" if scale == "inv_sqrt_k" else f" × {scale:g}")
    plots_capacity.fig_mc_heatmap(esn_table, f"Memory capacity MC(l,k) of {esn_label}", fig16)
    plots_capacity.fig_mc_heatmap(gru_table, f"Memory capacity MC(l,k) of a {gru_label}", mc_gru)
    plots_capacity.fig_mc_total({
        esn_label: totals_table[totals_table["reservoir"] == "esn"],
        gru_label: totals_table[totals_table["reservoir"] == "gru"],
    }, mc_total)
    dlk_frames = {model: read_table(path, DLK_COLUMNS)
                  for model, path in zip(params["dlk_models"], dlk_tables, strict=True)}
    plots_capacity.fig_dlk_vs_mc(dlk_frames, {esn_label: esn_table, gru_label: gru_table}, params["compare_k"],
                                 dlk_vs_mc)
