"""Figures of the (l, k)-distinguishability D(l, k) (report §2.2, figures 14 and 15).

The tables are those of :func:`rnnmem.memory.dlk.dlk_table` (one row per (k, l); several k concatenated).
Every figure carries a title, axis labels, a labelled colour bar or a legend; PNGs are written atomically and
without a software stamp, so the same table gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from rnnmem.core.figure_io import plt, save_figure

CMAP = "viridis"
Z_95 = 1.96
# Hidden states are O(1), so two states that differ by a few float64 rounding steps are ≈ 1e-16 apart:
# below about this, D(l, k) measures rounding, not memory.
ROUNDING_LEVEL = 1e-15
D_DEFINITION = "D(l,k) = mean over draws of ‖h_l(u) − h_l(v)‖₂"
D_SHORT = "D(l,k) = mean ‖h_l(u) − h_l(v)‖₂"
WORDS = "u = 1 0^(l−1), v = 0^l"




def _draws_label(table: pd.DataFrame) -> str:
    counts = table["n_draws"].to_numpy()
    low, high = int(counts.min()), int(counts.max())
    return f"{low} draws" if low == high else f"{low}–{high} draws"


def _check_table(table: pd.DataFrame) -> None:
    missing = {"k", "l", "mean", "sem", "n_draws"} - set(table.columns)
    if missing:
        raise ValueError(f"D(l,k) table lacks columns {sorted(missing)}")
    if len(table) == 0:
        raise ValueError("empty D(l,k) table")


def fig_dlk_heatmap(
    table: pd.DataFrame, model_label: str, out: Path, weights_label: str = "N(0,1) weights"
) -> None:
    """Report figures 14/15: D(l, k) as colour (log scale) over l (x, log axis) and k (y, one row per k).

    Zeros (draws whose two states became identical) cannot be shown on a log scale: they are drawn at the
    smallest positive value, and the colour bar says so.
    """
    _check_table(table)
    grid = table.pivot_table(index="k", columns="l", values="mean", aggfunc="first").sort_index()
    ks, ls = grid.index.to_numpy(), grid.columns.to_numpy()
    values = grid.to_numpy(dtype=np.float64)
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        raise ValueError(f"{model_label}: D(l,k) has no positive value to show on a log colour scale")
    floor = float(positive.min())
    clipped = bool(np.any(values <= 0))
    shown = np.where(values > 0, values, floor)

    x_edges = np.concatenate([[ls[0] - 0.5], (ls[:-1] + ls[1:]) / 2, [ls[-1] + 0.5]])
    y_edges = np.arange(len(ks) + 1) - 0.5
    fig, ax = plt.subplots(figsize=(9.0, max(4.0, 1.8 + 0.32 * len(ks))), layout="constrained")
    mesh = ax.pcolormesh(
        x_edges, y_edges, shown, cmap=CMAP, norm=LogNorm(vmin=floor, vmax=float(positive.max())), shading="flat"
    )
    ax.set_xscale("log")
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_yticks(range(len(ks)), [str(k) for k in ks])
    ax.set_xlabel(f"l (length of the words {WORDS}, in symbols; log scale)")
    ax.set_ylabel("k (hidden units)")
    ax.set_title(f"D(l,k) of random {model_label} networks ({weights_label}, {_draws_label(table)})")
    notes = [f"{D_SHORT}, mean over draws (log scale)"]
    if clipped:
        notes.append(f"D = 0 drawn at the smallest positive value, {floor:.1e}")
    if floor < ROUNDING_LEVEL:
        notes.append(f"below ≈ {ROUNDING_LEVEL:.0e}: float64 rounding, not memory")
    colour_bar = fig.colorbar(mesh, ax=ax, pad=0.02)
    colour_bar.set_label("\n".join(notes), fontsize=8)
    save_figure(fig, out)


def fig_dlk_curves(
    tables: dict[str, pd.DataFrame], ks: list[int], out: Path, weights_label: str = "N(0,1) weights"
) -> None:
    """D(l, k) against l for the given k: one panel per model (``tables`` maps model label -> table), log-log.

    Shaded bands are 95 % normal confidence intervals of the mean over draws (mean ± 1.96·sem), cut at the
    bottom of the log axis where they reach 0. Points with D = 0 are not drawn (gaps in the lines).
    """
    if not tables:
        raise ValueError("fig_dlk_curves needs at least one model's table")
    if not ks:
        raise ValueError("fig_dlk_curves needs at least one k")
    for name, table in tables.items():
        _check_table(table)
        absent = sorted(set(ks) - set(table["k"].unique().tolist()))
        if absent:
            raise ValueError(f"{name}: no D(l,k) rows for k = {absent}")
    colours = plt.get_cmap(CMAP)(np.linspace(0.0, 0.9, len(ks)))
    selected = {
        name: {k: table[table["k"] == k].sort_values("l") for k in ks} for name, table in tables.items()
    }
    positive = np.concatenate([
        rows["mean"].to_numpy()[rows["mean"].to_numpy() > 0] for per_k in selected.values() for rows in per_k.values()
    ])
    if positive.size == 0:
        raise ValueError("D(l,k) has no positive value to show on log axes")
    bottom = float(positive.min()) / 2
    fig, axes = plt.subplots(
        1, len(tables), figsize=(5.2 * len(tables) + 1.0, 4.6), sharey=True, layout="constrained", squeeze=False
    )
    any_zero = False
    for ax, (name, per_k) in zip(axes[0], selected.items(), strict=True):
        for colour, rows in zip(colours, per_k.values(), strict=True):
            l_values = rows["l"].to_numpy()
            mean = rows["mean"].to_numpy(dtype=np.float64)
            half = Z_95 * rows["sem"].to_numpy(dtype=np.float64)
            any_zero |= bool(np.any(mean <= 0))
            ax.plot(l_values, np.where(mean > 0, mean, np.nan), color=colour, linewidth=1.4)
            ax.fill_between(
                l_values, np.maximum(mean - half, bottom), np.maximum(mean + half, bottom),
                color=colour, alpha=0.2, linewidth=0,
            )
        if bottom < ROUNDING_LEVEL:
            ax.axhline(ROUNDING_LEVEL, color="grey", linestyle=":", linewidth=1.0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(bottom=bottom)
        ax.set_title(f"{name} ({_draws_label(pd.concat(per_k.values()))})", fontsize=10)
        ax.set_xlabel("l (symbols read)")
        ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    axes[0, 0].set_ylabel(f"{D_DEFINITION}\n(distance between hidden states, log scale)")
    handles = [Line2D([], [], color=c, linewidth=1.4, label=f"k = {k}") for c, k in zip(colours, ks, strict=True)]
    handles.append(Patch(facecolor="grey", alpha=0.2, label="95 % confidence band (mean ± 1.96·sem)"))
    if bottom < ROUNDING_LEVEL:
        handles.append(Line2D([], [], color="grey", linestyle=":", label="≈ float64 rounding level of the states"))
    if any_zero:
        handles.append(Line2D([], [], linestyle="none", label="gaps: D = 0 (cannot be drawn on a log axis)"))
    fig.legend(handles=handles, loc="outside right center", frameon=False, fontsize=8)
    fig.suptitle(f"D(l,k) against l for random networks ({weights_label}); {WORDS}")
    save_figure(fig, out)
