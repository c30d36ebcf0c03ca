"""Memory-capacity figures (report §2.3, figure 16) and their comparison with the D(l, k) analysis.

Like :mod:`rnnmem.reber.figures`, every figure carries a title, axis labels, a labelled colour bar or a legend, and is
written atomically without a software stamp, so the same tables give the same PNG bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from rnnmem.core.figure_io import plt, save_figure

MC_CMAP = "viridis"
BOUND_COLOUR = "0.35"
MODEL_NAMES = {"vanilla": "Vanilla RNN", "gru": "GRU", "lstm": "LSTM"}




def _require(table: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = set(columns) - set(table.columns)
    if missing:
        raise ValueError(f"{what} lacks columns {sorted(missing)}")
    if len(table) == 0:
        raise ValueError(f"{what} is empty")


def fig_mc_heatmap(table: pd.DataFrame, title: str, out: Path) -> None:
    """Report figure 16: MC_l (colour, 0 to 1) for every lag l (x) and reservoir size k (y, one row per k)."""
    _require(table, ["k", "l", "mc"], "capacity table")
    grid = table.pivot_table(index="k", columns="l", values="mc", aggfunc="mean").sort_index().sort_index(axis=1)
    sizes, lags = grid.index.to_numpy(), grid.columns.to_numpy()
    # the map at least 2 inches tall, so that the y label fits beside a map of a few k rows
    fig, ax = plt.subplots(figsize=(max(6.5, min(14.0, 3.0 + 0.06 * len(lags))), 2.6 + max(2.0, 0.32 * len(sizes))),
                           layout="constrained")
    l_edges = np.concatenate([lags - 0.5, [lags[-1] + 0.5]])
    row_edges = np.arange(len(sizes) + 1) - 0.5
    image = ax.pcolormesh(l_edges, row_edges, grid.to_numpy(), cmap=MC_CMAP, vmin=0.0, vmax=1.0)
    inside = sizes <= lags.max()
    ax.scatter(sizes[inside], np.flatnonzero(inside), marker="D", s=18, facecolors="white", edgecolors="black",
               linewidths=0.7, label="l = k (MC_l = 1 up to here would reach MC = k)")
    ax.set_yticks(range(len(sizes)), [str(k) for k in sizes])
    ax.set_xlim(l_edges[0], l_edges[-1])
    ax.set_ylim(row_edges[0], row_edges[-1])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # lags are whole steps
    ax.set_xlabel("lag l (steps; the read-out must recall the input ν(t − l))")
    ax.set_ylabel("reservoir size k (units)")
    ax.set_title(title)
    # Below the map, not beside it: a vertical bar is as tall as the map (a few k rows), too short for its label.
    fig.colorbar(image, ax=ax, location="bottom", shrink=0.6, aspect=40, pad=0.02,
                 label="MC_l = corr²(ν(t − l), read-out) on held-out steps (0 to 1)")
    if inside.any():
        fig.legend(loc="outside lower center", fontsize=8, frameon=False)
    save_figure(fig, out)


def fig_mc_total(totals: dict[str, pd.DataFrame], out: Path) -> None:
    """Total memory capacity MC = Σ_l MC_l against k, one curve per reservoir kind, with the bound MC = k.

    ``totals`` maps a reservoir label to a table with columns k, mc_total, mc_total_std (std over reservoirs).
    """
    if not totals:
        raise ValueError("fig_mc_total needs at least one table of totals")
    fig, ax = plt.subplots(figsize=(6.5, 4.6), layout="constrained")
    largest = 0
    for label, table in totals.items():
        _require(table, ["k", "mc_total", "mc_total_std"], f"totals table {label!r}")
        largest = max(largest, int(table["k"].max()))
        ax.errorbar(table["k"], table["mc_total"], yerr=table["mc_total_std"], marker="o", markersize=4,
                    capsize=3, linewidth=1.4, label=label)
    diagonal = np.array([0, largest])
    ax.plot(diagonal, diagonal, linestyle="--", color=BOUND_COLOUR, linewidth=1.2,
            label="theoretical bound MC = k (Jaeger 2002)")
    ax.set_xlim(0, largest * 1.03)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("reservoir size k (units)")
    ax.set_ylabel("total memory capacity MC = Σ_l MC_l")
    ax.set_title("Short-term memory capacity of random reservoirs\n(error bars: ±1 std over reservoirs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, out)


def _at_size(table: pd.DataFrame, k: int, what: str) -> pd.DataFrame:
    rows = table[table["k"] == k].sort_values("l")
    if len(rows) == 0:
        raise ValueError(f"{what} has no rows for k = {k}")
    return rows


def fig_dlk_vs_mc(dlk: dict[str, pd.DataFrame], mc: dict[str, pd.DataFrame], k: int, out: Path) -> None:
    """D(l, k) of random networks (left, log scale) beside MC_l of random reservoirs (right), for one k.

    ``dlk`` maps a model name (vanilla, gru) to a table k, l, mean, sem; ``mc`` maps a reservoir label to a
    capacity table k, l, mc. The i-th entries of both dicts share a colour (e.g. Vanilla with the ESN).
    """
    if not dlk or not mc:
        raise ValueError("fig_dlk_vs_mc needs at least one D(l, k) table and one capacity table")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.4), layout="constrained")
    for i, (name, table) in enumerate(dlk.items()):
        _require(table, ["k", "l", "mean", "sem"], f"D(l, k) table {name!r}")
        rows = _at_size(table, k, f"D(l, k) table {name!r}")
        lags, mean, sem = rows["l"].to_numpy(), rows["mean"].to_numpy(), rows["sem"].to_numpy()
        colour = colours[i % len(colours)]
        left.plot(lags, mean, marker="o", markersize=3, color=colour, label=MODEL_NAMES.get(name, name))
        low = np.where(mean - sem > 0, mean - sem, np.nan)
        left.fill_between(lags, low, mean + sem, color=colour, alpha=0.2, linewidth=0)
    left.set_yscale("log")
    left.set_xlabel("lag l")
    left.set_ylabel("D(l, k) (mean, band ±1 s.e.m.)")
    left.set_title(f"Random networks: D(l, k) at k = {k}")
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=8)
    for i, (label, table) in enumerate(mc.items()):
        _require(table, ["k", "l", "mc"], f"capacity table {label!r}")
        rows = _at_size(table, k, f"capacity table {label!r}")
        right.plot(rows["l"], rows["mc"], marker="o", markersize=3, color=colours[i % len(colours)], label=label)
    right.set_ylim(0, 1.02)
    right.set_xlabel("lag l")
    right.set_ylabel("MC_l = corr²(ν(t − l), linear read-out)")
    right.set_title(f"Random reservoirs: memory capacity at k = {k}")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(f"Memory against lag for k = {k} units: random networks (left) and random reservoirs (right)")
    save_figure(fig, out)


FAMILY_NAMES = {"esn_gaussian": "Gaussian W (N(0,1) rescaled)", "esn_orthogonal": "orthogonal W (ρ × Haar)"}


def fig_mc_input_scale(table: pd.DataFrame, esn_label: str, out: Path) -> None:
    """Total MC against the input-weight scale s (log axis) at one k, one curve per ESN family, with MC = k.

    Why: tanh ESNs lose memory to their non-linearity as s grows; small s makes them near-linear, where an orthogonal
    W keeps almost k, so the figure shows how far each family is from the bound at each scale.
    """
    _require(table, ["reservoir", "input_scale", "k", "mc_total", "mc_total_std"], "input-scale table")
    sizes = table["k"].unique()
    if len(sizes) != 1:
        raise ValueError(f"input-scale table must hold one k, got {sorted(sizes.tolist())}")
    k = int(sizes[0])
    fig, ax = plt.subplots(figsize=(6.8, 4.6), layout="constrained")
    for reservoir, rows in table.groupby("reservoir", sort=False):
        rows = rows.sort_values("input_scale")
        ax.errorbar(rows["input_scale"], rows["mc_total"], yerr=rows["mc_total_std"], marker="o", markersize=4,
                    capsize=3, linewidth=1.4, label=FAMILY_NAMES.get(str(reservoir), str(reservoir)))
    ax.axhline(k, linestyle="--", color=BOUND_COLOUR, linewidth=1.2, label=f"theoretical bound MC = k = {k}")
    ax.axhline(0.95 * k, linestyle=":", color=BOUND_COLOUR, linewidth=1.0, label=f"0.95 k = {0.95 * k:g}")
    ax.set_xscale("log")
    ax.set_ylim(0, k * 1.08)
    ax.set_xlabel("input scale s (input weights w_in uniform on [−s, s]; input ν uniform on [−0.5, 0.5])")
    ax.set_ylabel("total memory capacity MC = Σ_l MC_l")
    ax.set_title(f"Memory capacity against input scale: {esn_label}, k = {k} units\n"
                 "(error bars: ±1 std over reservoirs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    save_figure(fig, out)


def fig_mc_linear(table: pd.DataFrame, max_lag: int, rho: float, out: Path) -> None:
    """Linear ESNs: exact (infinite data) and estimated total MC against k (left), and the estimator's error (right).

    Why: for a linear reservoir the exact capacity is known, so the difference shows what the finite-sample,
    float64 estimator loses (or gains), separately from what the reservoir itself forgets.
    """
    _require(table, ["k", "reservoir", "exact", "exact_all_lags", "estimated", "estimated_std", "error",
                     "error_std"], "linear-capacity table")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.0, 4.6), layout="constrained")
    largest = int(table["k"].max())
    for i, (reservoir, rows) in enumerate(table.groupby("reservoir", sort=False)):
        rows = rows.sort_values("k")
        colour, name = colours[i % len(colours)], FAMILY_NAMES.get(str(reservoir), str(reservoir))
        left.plot(rows["k"], rows["exact"], color=colour, linewidth=1.4,
                  label=f"{name}: exact, lags 1..{max_lag}")
        left.errorbar(rows["k"], rows["estimated"], yerr=rows["estimated_std"], color=colour, marker="o",
                      markersize=4, capsize=3, linestyle="none", label=f"{name}: estimated (±1 std)")
        right.errorbar(rows["k"], rows["error"], yerr=rows["error_std"], color=colour, marker="o", markersize=4,
                       capsize=3, linewidth=1.2, label=name)
    diagonal = np.array([0, largest])
    left.plot(diagonal, diagonal, linestyle="--", color=BOUND_COLOUR, linewidth=1.2,
              label="MC = k (exact, lags 0..∞)")
    left.set_xlim(0, largest * 1.03)
    left.set_ylim(bottom=0)
    left.set_xlabel("reservoir size k (units)")
    left.set_ylabel(f"total memory capacity Σ_(l=1..{max_lag}) MC_l")
    left.set_title(f"Linear ESNs, ρ = {rho:g}: exact against estimated capacity")
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    right.axhline(0, color=BOUND_COLOUR, linewidth=1.0)
    right.set_xlabel("reservoir size k (units)")
    right.set_ylabel("estimator error: estimated − exact total MC")
    right.set_title("Error of the finite-sample estimator\n(mean ± 1 std over reservoirs)")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    save_figure(fig, out)
