"""What the memory-branch rules run (report §2): gradient statistics (figures 12, 13, gradient against lag),
D(l, k) (figures 14, 15) and memory capacity (figure 16).

Every function here takes plain paths and a parameter dict (the rule's JSON ``--params``), so it can be called from
the CLI, a test or a notebook alike. Trained ensembles and their gradient logs come from the Reber branch, read
through its public API (:mod:`rnnmem.reber.ensembles`, :mod:`rnnmem.reber.gradient_log`). The figure modules
(matplotlib) are imported by the jobs that draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnmem.core.atomic import write_csv
from rnnmem.core.progress import summary
from rnnmem.core.tables import read_table
from rnnmem.memory.capacity import (
    COLUMNS as CAPACITY_COLUMNS,
)
from rnnmem.memory.capacity import (
    TOTAL_COLUMNS,
    CapacitySettings,
    esn_capacity_per_reservoir,
    family_settings,
    gru_capacity_per_reservoir,
    input_scale_table,
    lag_table,
    linear_table,
    totals_per_k,
)
from rnnmem.memory.dlk import TABLE_COLUMNS as DLK_COLUMNS
from rnnmem.memory.dlk import dlk_table
from rnnmem.memory.gradients import by_lag, gradient_norms_by_lag, summarize_histograms
from rnnmem.memory.weight_scale import scale_text, scale_value
from rnnmem.reber.ensembles import load_ensemble, untrained_ensemble
from rnnmem.reber.experiments import member_strings
from rnnmem.reber.gradient_log import HISTOGRAM_COLUMNS
from rnnmem.reber.grammars import EMBEDDED_REBER
from rnnmem.reber.sequences import encode

CONVENTION_STATS = ["k", "l", "mean", "ci_low", "ci_high", "median", "frac_above", "n_above", "n_draws"]
CONVENTION_COLUMNS = ["model", "bias", "input", *CONVENTION_STATS]


def gradient_summary(histogram_paths: list[Path], table_out: Path, fig12: Path, fig13: Path, zoom_max: float) -> None:
    """Figures 12, 13 and tables/gradients.csv from the training jobs' |gradient| histograms."""
    from rnnmem.memory import figures_gradients  # matplotlib: only the figure jobs load it

    histograms = pd.concat([read_table(path, HISTOGRAM_COLUMNS, allow_empty=True) for path in histogram_paths],
                           ignore_index=True)
    table = summarize_histograms(histograms)
    write_csv(table_out, table)
    figures_gradients.fig_gradient_histograms(histograms, fig12)
    figures_gradients.fig_gradient_histograms(histograms, fig13, zoom_max=zoom_max)
    below = table["frac_below_1e-6"] if len(table) else pd.Series([float("nan")])
    summary(f"{len(histogram_paths)} histogram logs, {len(table)} (experiment, regime, phase, group) rows, "
            f"fraction of |gradient| below 1e-6 from {below.min():.3g} to {below.max():.3g}; figures 12, 13")


def gradient_lag(params: dict[str, Any], models: list[Path], specs: list[Path], table_out: Path, fig: Path) -> None:
    """‖∂E_t/∂h_{t−l}‖ against the lag l on embedded test strings, trained and initial weights."""
    from rnnmem.memory import figures_gradients  # matplotlib: only the figure jobs load it

    frames = []
    for model_path, spec_path in zip(models, specs, strict=True):
        trained, spec = load_ensemble(model_path, spec_path)
        seeds = spec["seeds"]
        initial = untrained_ensemble(spec, seeds)
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
    figures_gradients.fig_gradient_vs_lag(table, fig)
    summary(f"{len(models)} ensembles, lags 0 to {int(table['lag'].max())}, {len(table)} rows -> {fig}")


def dlk(params: dict[str, Any], out: Path) -> None:
    """D(l,k) of one (model, k): every l up to max_l in one batched pass over all draws."""
    table = dlk_table(params["model"], params["k"], params["draws"], params["max_l"], params["seed"],
                      params["weight_scale"], params["bias"], params["input"], params["tail_threshold"],
                      params["bootstrap"])
    write_csv(out, table, float_format="%.10g")
    last = table.iloc[-1]
    summary(f"D(l,k) of {params['model']}, k = {params['k']} ({params['bias']} biases, {params['input']} input): "
            f"{params['draws']} draws, l = 1 to {params['max_l']}; at l = {params['max_l']}: mean {last['mean']:.4g} "
            f"[{last['ci_low']:.4g}, {last['ci_high']:.4g}], median {last['median']:.3g}, "
            f"{int(last['n_above'])} draws above {params['tail_threshold']:g}")


def dlk_merge(parts: list[Path], out: Path) -> None:
    """One model's D(l,k) table from its per-k parts, sorted by k then l."""
    table = pd.concat([read_table(path, DLK_COLUMNS) for path in parts], ignore_index=True).sort_values(["k", "l"])
    write_csv(out, table, float_format="%.10g")
    summary(f"{len(parts)} parts, k = {', '.join(str(k) for k in table['k'].unique())}, {len(table)} rows; "
            f"mean D from {table['mean'].min():.4g} to {table['mean'].max():.4g}")


def dlk_conventions(params: dict[str, Any], parts: list[Path], out: Path) -> None:
    """D(max_l, k) of every (model, bias, input, k) part: one row each, the part's row at l = max_l.

    ``params["parts"]`` lists, in the order of ``parts``, the model, bias, input and k each part was made with.
    """
    described = params["parts"]
    if len(described) != len(parts):
        raise ValueError(f"dlk-conventions: {len(parts)} part files for {len(described)} described parts")
    rows = []
    for meta, path in zip(described, parts, strict=True):
        table = read_table(path, DLK_COLUMNS)
        last = table[table["l"] == params["max_l"]]
        if len(last) != 1 or int(last["k"].iloc[0]) != int(meta["k"]):
            raise ValueError(f"{path}: expected one row at l = {params['max_l']} for k = {meta['k']}")
        rows.append({key: meta[key] for key in ("model", "bias", "input")} | last.iloc[0][CONVENTION_STATS].to_dict())
    table = pd.DataFrame(rows, columns=CONVENTION_COLUMNS)
    for column in ("k", "l", "n_above", "n_draws"):
        table[column] = table[column].astype(np.int64)
    write_csv(out, table, float_format="%.10g")
    summary(f"{len(table)} (model, bias, input, k) rows at l = {params['max_l']}")


def conventions_label(bias: str, encoding: str) -> str:
    """The D(l,k) conventions in words, for figure titles."""
    biases = {"zero": "zero biases (the report's code)", "normal": "N(0,1) biases"}[bias]
    inputs = {"one_hot": "one-hot input", "scalar": "scalar input x_t = u_t"}[encoding]
    return f"{biases}, {inputs}"


def dlk_figures(params: dict[str, Any], tables: list[Path], heatmaps: list[Path], curves: Path) -> None:
    """Figures 14 (Vanilla), 15 (GRU) and the D-against-l curves."""
    from rnnmem.memory import figures_dlk  # matplotlib: only the figure jobs load it

    frames = {model: read_table(path, DLK_COLUMNS) for model, path in zip(params["models"], tables, strict=True)}
    labels = {"vanilla": "Vanilla (logistic σ)", "gru": "GRU"}
    scale = params["weight_scale"]
    factor = "" if scale == 1 else f", W_h × {scale_text(scale)}"
    weights = f"N(0,1) weights{factor}"
    conventions = conventions_label(params["bias"], params["input"])
    shared = figures_dlk.shared_norm_range(list(frames.values()))  # equal colours mean equal D in 14 and 15
    for (model, frame), out in zip(frames.items(), heatmaps, strict=True):
        figures_dlk.fig_dlk_heatmap(frame, labels[model], out, weights_label=weights, conventions_label=conventions,
                                    norm_range=shared, threshold=params["tail_threshold"])
    figures_dlk.fig_dlk_curves(frames, params["curves_k"], curves, weights_label=weights,
                               conventions_label=conventions, threshold=params["tail_threshold"])
    summary(f"{len(heatmaps)} D(l,k) heatmaps ({', '.join(frames)}) and the curves for k in {params['curves_k']}")


def _capacity_settings(params: dict[str, Any]) -> CapacitySettings:
    """The memory.capacity block as :class:`CapacitySettings` (the configured ESN)."""
    return CapacitySettings(
        rho=params["esn"]["rho"], input_scale=params["esn"]["input_scale"], train_length=params["train_length"],
        washout=params["washout"], test_length=params["test_length"], ridge=params["ridge"],
        max_lag=params["max_lag"], reservoirs=params["reservoirs"], seed=params["seed"],
        activation=params["esn"]["activation"], orthogonal=params["esn"]["orthogonal"],
    )


def capacity(params: dict[str, Any], esn_out: Path, gru_out: Path, totals_out: Path) -> None:
    """MC(l,k) of ESNs and of random GRUs for every k, and the total MC per k with its exact spread.

    The totals also hold ``esn_orthogonal`` rows: the configured ESN with ρ × a Haar orthogonal W (same seeds, inputs
    and input scale), the second family of figure mc_total.
    """
    settings = _capacity_settings(params)
    orthogonal = family_settings(settings, "esn_orthogonal")
    scale = params["gru"]["weight_scale"]
    scale_key = "memory.capacity.gru.weight_scale"
    scale_value(scale, 1, scale_key)  # checked before the long ESN runs
    lag_tables: dict[str, list[pd.DataFrame]] = {"esn": [], "gru": []}
    totals = []
    for k in params["k"]:
        per_reservoir = {
            "esn": esn_capacity_per_reservoir(k, settings),
            "gru": gru_capacity_per_reservoir(k, settings, scale_value(scale, k, scale_key)),
        }
        for kind, values in per_reservoir.items():
            lag_tables[kind].append(lag_table(k, values))
            totals.append({"reservoir": kind, **totals_per_k(k, values)})
        totals.append({"reservoir": "esn_orthogonal", **totals_per_k(k, esn_capacity_per_reservoir(k, orthogonal))})
        print(f"k={k}: MC esn {totals[-3]['mc_total']:.3f}, gru {totals[-2]['mc_total']:.3f}, "
              f"esn_orthogonal {totals[-1]['mc_total']:.3f}", flush=True)
    write_csv(esn_out, pd.concat(lag_tables["esn"], ignore_index=True), float_format="%.10g")
    write_csv(gru_out, pd.concat(lag_tables["gru"], ignore_index=True), float_format="%.10g")
    write_csv(totals_out, pd.DataFrame(totals), float_format="%.10g")
    ranges = {kind: [row["mc_total"] for row in totals if row["reservoir"] == kind]
              for kind in ("esn", "gru", "esn_orthogonal")}
    summary(f"MC(l,k) for k in {params['k']} ({params['reservoirs']} reservoirs each): total MC "
            + ", ".join(f"{kind} {min(v):.3f} to {max(v):.3f}" for kind, v in ranges.items()))


def capacity_figures(params: dict[str, Any], esn: Path, gru: Path, totals: Path, dlk_tables: list[Path],
                     fig16: Path, mc_gru: Path, mc_total: Path, dlk_vs_mc: Path) -> None:
    """Figure 16, the random-GRU capacity, total MC against k, and D(l,k) beside MC(l,k)."""
    from rnnmem.memory import figures_capacity  # matplotlib: only the figure jobs load it

    esn_table, gru_table = read_table(esn, CAPACITY_COLUMNS), read_table(gru, CAPACITY_COLUMNS)
    totals_table = read_table(totals, ["reservoir", *TOTAL_COLUMNS])
    esn_label = f"ESN {params['esn']['activation']}, ρ = {params['esn']['rho']:g}"
    scale = params["gru"]["weight_scale"]
    gru_label = f"random GRU, weights N(0,1) × {scale_text(scale)}"
    figures_capacity.fig_mc_heatmap(esn_table, f"Memory capacity MC(l,k) of {esn_label}", fig16)
    figures_capacity.fig_mc_heatmap(gru_table, f"Memory capacity MC(l,k) of a {gru_label}", mc_gru)
    esn_kind = "orthogonal" if params["esn"]["orthogonal"] else "Gaussian"
    figures_capacity.fig_mc_total({
        f"{esn_label}, {esn_kind} W": totals_table[totals_table["reservoir"] == "esn"],
        f"ESN {params['esn']['activation']}, ρ = {params['esn']['rho']:g}, orthogonal W":
            totals_table[totals_table["reservoir"] == "esn_orthogonal"],
        gru_label: totals_table[totals_table["reservoir"] == "gru"],
    }, mc_total)
    dlk_frames = {model: read_table(path, DLK_COLUMNS)
                  for model, path in zip(params["dlk_models"], dlk_tables, strict=True)}
    figures_capacity.fig_dlk_vs_mc(dlk_frames, {esn_label: esn_table, gru_label: gru_table}, params["compare_k"],
                                   dlk_vs_mc)
    summary(f"figure 16, random-GRU capacity, total MC against k, D(l,k) beside MC(l,k) at k = {params['compare_k']}")


def capacity_input_scale(params: dict[str, Any], table_out: Path, fig: Path) -> None:
    """Total MC at the largest k against the input scale, Gaussian and orthogonal ESNs: how close to k it gets."""
    from rnnmem.memory import figures_capacity  # matplotlib: only the figure jobs load it

    settings, k = _capacity_settings(params), max(params["k"])
    table = input_scale_table(k, params["input_scales"], settings)
    write_csv(table_out, table, float_format="%.10g")
    figures_capacity.fig_mc_input_scale(table, f"ESN {settings.activation}, ρ = {settings.rho:g}", fig)
    best = table.loc[table.groupby("reservoir")["mc_total"].idxmax()]
    summary(f"total MC at k = {k} over {len(params['input_scales'])} input scales: largest "
            + ", ".join(f"{row.reservoir} {row.mc_total:.3f} (s = {row.input_scale:g})" for row in best.itertuples()))


def capacity_linear(params: dict[str, Any], table_out: Path, fig: Path) -> None:
    """Exact (infinite-data) against estimated total MC of linear ESNs of both families, for every k."""
    from rnnmem.memory import figures_capacity  # matplotlib: only the figure jobs load it

    settings = _capacity_settings(params)
    table = linear_table(list(params["k"]), settings)
    write_csv(table_out, table, float_format="%.10g")
    figures_capacity.fig_mc_linear(table, settings.max_lag, settings.rho, fig)
    worst = table.loc[table["error"].abs().idxmax()]
    deviation = (table["exact_all_lags"] - table["k"]).abs().max()
    summary(f"linear ESNs, k in {params['k']}: exact Σ_(l≥0) MC_l = k to {deviation:.2g}; "
            f"largest estimator error {worst['error']:+.3f} ({worst['reservoir']}, k = {worst['k']})")
