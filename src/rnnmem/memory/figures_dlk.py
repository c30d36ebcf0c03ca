"""Figures of the (l, k)-distinguishability D(l, k) (report §2.2, figures 14 and 15).

The tables are those of :func:`rnnmem.memory.dlk.dlk_table` (one row per (k, l); several k concatenated), with
the mean over draws, its bootstrap 95 % percentile interval (``ci_low``, ``ci_high``), the median over draws and
the number / fraction of draws whose distance exceeds a threshold (``n_above``, ``frac_above``).

D(l, k) is heavy-tailed over draws: for contracting networks a few draws (a few %, or fewer) keep the two
states ≈ 0.5 apart while the median is at float64 rounding (≈ 1e-16). The mean is then carried by those few
draws; where fewer than :data:`MIN_RESOLVED` draws exceed the threshold (but at least one does) the mean is
marked "not resolved": its value and its interval depend on a handful of draws.

Every figure carries a title (with the conventions of the random networks), axis labels, a labelled colour bar
or a legend; PNGs are written atomically and without a software stamp, so the same table gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from rnnmem.core.figure_io import plt, save_figure

CMAP = "viridis"
# Hidden states are O(1), so two states that differ by a few float64 rounding steps are ≈ 1e-16 apart:
# below about this, D(l, k) measures rounding, not memory.
ROUNDING_LEVEL = 1e-15
# A mean carried by fewer draws than this (above the threshold) is "not resolved".
MIN_RESOLVED = 10
DEFAULT_THRESHOLD = 1e-3
CONVENTIONS = "zero biases (the report's code), one-hot input"  # memory.dlk.bias and .input defaults
REQUIRED_COLUMNS = (
    "k", "l", "mean", "sem", "ci_low", "ci_high", "median", "frac_above", "n_above", "n_draws",
)
D_DEFINITION = "D(l,k) = mean over draws of ‖h_l(u) − h_l(v)‖₂"
D_SHORT = "D(l,k) = mean ‖h_l(u) − h_l(v)‖₂"
WORDS = "u = 1 0^(l−1), v = 0^l"
HATCH = "////"
HATCH_COLOUR = "#ff2a2a"  # readable on both ends of viridis


def _draws_label(table: pd.DataFrame) -> str:
    counts = table["n_draws"].to_numpy()
    low, high = int(counts.min()), int(counts.max())
    return f"{low} draws" if low == high else f"{low}–{high} draws"


def _check_table(table: pd.DataFrame) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(
            f"D(l,k) table lacks columns {missing} (a table from before the bootstrap interval, median and "
            "fraction-above-threshold statistics: rerun the dlk jobs)"
        )
    if len(table) == 0:
        raise ValueError("empty D(l,k) table")


def _check_threshold(threshold: float) -> None:
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive finite distance, got {threshold!r}")


def unresolved_mask(table: pd.DataFrame) -> pd.Series:
    """Per row: True where the mean is carried by 1 to MIN_RESOLVED − 1 draws above the threshold (not resolved).

    Rows with no draw above the threshold are not marked: every draw is then below it and so is the mean.
    """
    _check_table(table)
    n_above = table["n_above"].to_numpy()
    return pd.Series((n_above > 0) & (n_above < MIN_RESOLVED), index=table.index, name="unresolved")


def _positive_means(table: pd.DataFrame) -> np.ndarray:
    values = table["mean"].to_numpy(dtype=np.float64)
    return values[np.isfinite(values) & (values > 0)]


def shared_norm_range(tables: list[pd.DataFrame]) -> tuple[float, float]:
    """The smallest and largest positive mean D over all tables: one log colour range for several heatmaps, so
    that the same colour means the same D in each (figures 14 and 15)."""
    if not tables:
        raise ValueError("shared_norm_range needs at least one D(l,k) table")
    for table in tables:
        _check_table(table)
    positive = np.concatenate([_positive_means(table) for table in tables])
    if positive.size == 0:
        raise ValueError("D(l,k) tables have no positive mean to set a log colour range")
    low, high = float(positive.min()), float(positive.max())
    if low == high:  # a single value: give LogNorm a non-empty range around it
        low, high = low / 2, high * 2
    return low, high


def _check_norm_range(norm_range: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(v) for v in norm_range)
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low < high):
        raise ValueError(f"norm_range must satisfy 0 < low < high (finite), got {norm_range!r}")
    return low, high


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-D boolean array, stop exclusive."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    changes = np.flatnonzero(np.diff(padded))
    return list(zip(changes[::2].tolist(), changes[1::2].tolist(), strict=True))


def fig_dlk_heatmap(
    table: pd.DataFrame,
    model_label: str,
    out: Path,
    weights_label: str = "N(0,1) weights",
    conventions_label: str = CONVENTIONS,
    norm_range: tuple[float, float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> None:
    """Report figures 14/15: mean D(l, k) as colour (log scale) over l (x, log axis) and k (y, one row per k).

    ``norm_range`` fixes the colour range (use :func:`shared_norm_range` over all models' tables so that equal
    colours mean equal D across figures); by default it is this table's positive range. Means outside it take
    the end colours (the colour bar is extended). Zeros (every draw's two states identical) cannot be shown on
    a log scale: they take the bottom colour, and the colour bar says so. Cells whose mean is not resolved
    (0 < n_above < MIN_RESOLVED draws above ``threshold``) are hatched.
    """
    _check_table(table)
    _check_threshold(threshold)
    rows = table.assign(unresolved=unresolved_mask(table).astype(np.float64))
    grid = rows.pivot_table(index="k", columns="l", values="mean", aggfunc="first").sort_index()
    flags = (
        rows.pivot_table(index="k", columns="l", values="unresolved", aggfunc="first")
        .reindex(index=grid.index, columns=grid.columns)
        .to_numpy(dtype=np.float64)
        > 0.5
    )
    ks, ls = grid.index.to_numpy(), grid.columns.to_numpy()
    values = grid.to_numpy(dtype=np.float64)
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        raise ValueError(f"{model_label}: D(l,k) has no positive value to show on a log colour scale")
    fixed = norm_range is not None
    low, high = _check_norm_range(norm_range) if fixed else (float(positive.min()), float(positive.max()))
    if low == high:
        low, high = low / 2, high * 2
    clipped = bool(np.any(values <= 0))
    shown = np.where(np.isnan(values), np.nan, np.where(values > 0, values, low))
    below = bool(np.nanmin(shown) < low) or clipped
    above = bool(np.nanmax(shown) > high)
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[
        (below, above)
    ]

    x_edges = np.concatenate([[ls[0] - 0.5], (ls[:-1] + ls[1:]) / 2, [ls[-1] + 0.5]])
    y_edges = np.arange(len(ks) + 1) - 0.5
    fig, ax = plt.subplots(figsize=(9.0, max(4.4, 2.4 + 0.32 * len(ks))), layout="constrained")
    mesh = ax.pcolormesh(
        x_edges, y_edges, shown, cmap=CMAP, norm=LogNorm(vmin=low, vmax=high, clip=False), shading="flat"
    )
    any_unresolved = bool(flags.any())
    for row, row_flags in enumerate(flags):
        for start, stop in _runs(row_flags):
            ax.add_patch(Rectangle(
                (x_edges[start], y_edges[row]), x_edges[stop] - x_edges[start], 1.0,
                fill=False, hatch=HATCH, edgecolor=HATCH_COLOUR, linewidth=0.8,  # outlined: narrow runs show
            ))
    ax.set_xscale("log")
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(y_edges[0], y_edges[-1])
    ax.set_yticks(range(len(ks)), [str(k) for k in ks])
    ax.set_xlabel(f"l (length of the words {WORDS}, in symbols; log scale)")
    ax.set_ylabel("k (hidden units)")
    ax.set_title(
        f"D(l,k) of random {model_label} networks ({weights_label}, {_draws_label(table)})\n{conventions_label}",
        fontsize=10,
    )
    notes = [f"{D_SHORT}, mean over draws (log scale)"]
    if fixed:
        notes.append(f"colour range {low:.1e}–{high:.1e}, same in all D(l,k) heatmaps")
    if clipped:
        notes.append("D = 0 drawn with the bottom colour")
    if low < ROUNDING_LEVEL:
        notes.append(f"below ≈ {ROUNDING_LEVEL:.0e} (dotted): float64 rounding")
    colour_bar = fig.colorbar(mesh, ax=ax, pad=0.02, extend=extend)
    colour_bar.set_label("\n".join(notes), fontsize=8)
    if low < ROUNDING_LEVEL < high:
        colour_bar.ax.axhline(ROUNDING_LEVEL, color="white", linestyle=":", linewidth=1.0)
    if any_unresolved:
        handle = Patch(
            facecolor="none", edgecolor=HATCH_COLOUR, hatch=HATCH, linewidth=0.8,
            label=(f"mean not resolved: carried by 1–{MIN_RESOLVED - 1} draws with ‖Δh‖ > {threshold:g} "
                   "(its value and interval rest on those few draws)"),
        )
        fig.legend(handles=[handle], loc="outside lower center", frameon=False, fontsize=8)
    save_figure(fig, out)


def fig_dlk_curves(
    tables: dict[str, pd.DataFrame],
    ks: list[int],
    out: Path,
    weights_label: str = "N(0,1) weights",
    conventions_label: str = CONVENTIONS,
    threshold: float = DEFAULT_THRESHOLD,
) -> None:
    """D(l, k) against l for the given k: one column per model (``tables`` maps model label -> table).

    Top row (log-log): the mean over draws (solid) with its bootstrap 95 % percentile interval (band, cut at
    the bottom of the log axis) and the median over draws (dashed, same colour). Bottom row: the fraction of
    draws whose distance exceeds ``threshold`` (log axis), with the level below which fewer than MIN_RESOLVED
    draws carry the mean. Values equal to 0 are not drawn (gaps in the lines).
    """
    if not tables:
        raise ValueError("fig_dlk_curves needs at least one model's table")
    if not ks:
        raise ValueError("fig_dlk_curves needs at least one k")
    _check_threshold(threshold)
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
        values[np.isfinite(values) & (values > 0)]
        for per_k in selected.values() for rows in per_k.values()
        for values in (rows[column].to_numpy(dtype=np.float64) for column in ("mean", "median", "ci_low"))
    ])
    if positive.size == 0:
        raise ValueError("D(l,k) has no positive value to show on log axes")
    bottom = float(positive.min()) / 2
    most_draws = max(int(table["n_draws"].max()) for table in tables.values())
    fraction_bottom = 0.5 / most_draws
    fig, axes = plt.subplots(
        2, len(tables), figsize=(5.2 * len(tables) + 1.8, 7.2), sharex="col", sharey="row",
        height_ratios=[2.0, 1.0], layout="constrained", squeeze=False,
    )
    any_zero = any_unresolved_level = False
    for column, (name, per_k) in enumerate(selected.items()):
        top, lower = axes[0, column], axes[1, column]
        for colour, rows in zip(colours, per_k.values(), strict=True):
            l_values = rows["l"].to_numpy()
            mean = rows["mean"].to_numpy(dtype=np.float64)
            median = rows["median"].to_numpy(dtype=np.float64)
            ci_low = rows["ci_low"].to_numpy(dtype=np.float64)
            ci_high = rows["ci_high"].to_numpy(dtype=np.float64)
            fraction = rows["frac_above"].to_numpy(dtype=np.float64)
            any_zero |= bool(np.any(mean <= 0) or np.any(median <= 0))
            top.fill_between(
                l_values, np.maximum(ci_low, bottom), np.maximum(ci_high, bottom),
                color=colour, alpha=0.2, linewidth=0,
            )
            top.plot(l_values, np.where(mean > 0, mean, np.nan), color=colour, linewidth=1.4)
            top.plot(l_values, np.where(median > 0, median, np.nan), color=colour, linewidth=1.1, linestyle="--")
            lower.plot(l_values, np.where(fraction > 0, fraction, np.nan), color=colour, linewidth=1.2)
        if bottom < ROUNDING_LEVEL:
            top.axhline(ROUNDING_LEVEL, color="grey", linestyle=":", linewidth=1.0)
        for n in sorted({int(n) for rows in per_k.values() for n in rows["n_draws"].unique()}):
            if MIN_RESOLVED / n < 1:
                lower.axhline(MIN_RESOLVED / n, color="grey", linestyle="-.", linewidth=0.9)
                any_unresolved_level = True
        for ax in (top, lower):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
        top.set_ylim(bottom=bottom)
        lower.set_ylim(fraction_bottom, 1.5)
        top.set_title(f"{name} ({_draws_label(pd.concat(per_k.values()))})", fontsize=10)
        lower.set_xlabel("l (symbols read)")
    axes[0, 0].set_ylabel(f"{D_DEFINITION}\n(distance between hidden states, log scale)")
    axes[1, 0].set_ylabel(f"fraction of draws with ‖Δh‖ > {threshold:g}\n(log scale)")
    handles = [Line2D([], [], color=c, linewidth=1.4, label=f"k = {k}") for c, k in zip(colours, ks, strict=True)]
    handles += [
        Line2D([], [], color="grey", linewidth=1.4, label="mean over draws (solid)"),
        Patch(facecolor="grey", alpha=0.2, label="bootstrap 95 % interval of the mean (band)"),
        Line2D([], [], color="grey", linewidth=1.1, linestyle="--", label="median over draws (dashed)"),
    ]
    if bottom < ROUNDING_LEVEL:
        handles.append(Line2D([], [], color="grey", linestyle=":", label="≈ float64 rounding level of the states"))
    if any_unresolved_level:
        handles.append(Line2D(
            [], [], color="grey", linestyle="-.",
            label=f"{MIN_RESOLVED} draws above {threshold:g}:\nbelow it the mean is carried by\n"
                  f"fewer than {MIN_RESOLVED} draws (not resolved)",
        ))
    if any_zero:
        handles.append(Line2D([], [], linestyle="none", label="gaps: value 0 (cannot be drawn on a log axis)"))
    fig.legend(handles=handles, loc="outside right center", frameon=False, fontsize=8)
    fig.suptitle(f"D(l,k) against l for random networks ({weights_label}); {WORDS}\n{conventions_label}")
    save_figure(fig, out)
