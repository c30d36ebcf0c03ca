"""Figures 12 and 13 (|gradient| distributions of Vanilla vs GRU) and the gradient-versus-lag figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rnnmem.core.figure_io import plt, save_figure

MODEL_COLOURS = {"vanilla": "#d95f02", "gru": "#1b9e77", "lstm": "#7570b3"}
LINEAR_BINS = 50
GROUP_STYLES = ["-", "--", ":", "-.", (0, (3, 1, 1, 1, 1, 1))]


def _grid(histograms: pd.DataFrame):
    regimes = list(dict.fromkeys(histograms["regime"]))
    models = list(dict.fromkeys(histograms["model"]))
    fig, axes = plt.subplots(len(regimes), len(models), figsize=(5.2 * len(models), 3.6 * len(regimes)),
                             squeeze=False, sharex=True, sharey="row")
    return fig, axes, regimes, models


def fig_gradient_histograms(histograms: pd.DataFrame, out: Path, zoom_max: float | None = None) -> None:
    """Density of |∂E/∂θ| per parameter group, one panel per (regime, model); all recorded steps pooled.

    With ``zoom_max`` the |gradient| axis is linear on [0, zoom_max] (figure 13, "near 0"); otherwise it is
    logarithmic (figure 12) and the density is per decade.
    """
    fig, axes, regimes, models = _grid(histograms)
    for row, regime in enumerate(regimes):
        for col, model in enumerate(models):
            ax = axes[row, col]
            subset = histograms[(histograms["regime"] == regime) & (histograms["model"] == model)]
            pooled = subset.groupby(["group", "bin_low", "bin_high"], sort=False)["count"].sum().reset_index()
            for style, (group, rows) in zip(GROUP_STYLES, pooled.groupby("group", sort=False), strict=False):
                low, high = rows["bin_low"].to_numpy(), rows["bin_high"].to_numpy()
                counts = rows["count"].to_numpy().astype(float)
                inner = (low > 0) & np.isfinite(high)
                total = counts.sum()
                if zoom_max is None:
                    density = counts[inner] / total / np.log10(high[inner] / low[inner])
                    ax.stairs(density, np.concatenate([low[inner], high[inner][-1:]]), linestyle=style,
                              color=MODEL_COLOURS.get(model), label=group)
                else:
                    # Re-bin onto LINEAR_BINS equal bins of [0, zoom_max], spreading each log bin's count
                    # uniformly over its own interval (values below 1e-12, zeros included, fall in the first).
                    edges = np.linspace(0.0, zoom_max, LINEAR_BINS + 1)
                    upper = np.where(np.isfinite(high), high, low)
                    overlap = (np.minimum(upper[:, None], edges[None, 1:])
                               - np.maximum(low[:, None], edges[None, :-1])).clip(min=0.0)
                    share = np.divide(overlap, (upper - low)[:, None], out=np.zeros_like(overlap),
                                      where=(upper - low)[:, None] > 0)
                    linear = counts @ share
                    ax.stairs(linear / total / np.diff(edges), edges, linestyle=style,
                              color=MODEL_COLOURS.get(model), label=group)
            if zoom_max is None:
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_ylabel("fraction of values per decade" if col == 0 else "")
            else:
                ax.set_xlim(0, zoom_max)
                ax.set_ylabel("probability density" if col == 0 else "")
            hidden = int(subset["hidden"].iloc[0]) if len(subset) else 0
            ax.set_title(f"{model} ({hidden} units), {regime} regime", fontsize=10)
            if row == len(regimes) - 1:
                ax.set_xlabel("|∂E/∂θ| (gradient magnitude)")
            ax.grid(True, which="major", alpha=0.3)
    axes[0, -1].legend(title="parameter group", fontsize=8, title_fontsize=8, loc="best")
    what = f"zoomed on [0, {zoom_max:g}]" if zoom_max else "log scale"
    fig.suptitle(f"Gradient magnitudes during training on the embedded Reber grammar ({what})")
    fig.tight_layout()
    save_figure(fig, out)


def fig_gradient_vs_lag(table: pd.DataFrame, out: Path) -> None:
    """Median ‖∂E_t/∂h_{t−l}‖ against the lag l (interquartile band), trained vs initial weights."""
    regimes = list(dict.fromkeys(table["regime"]))
    fig, axes = plt.subplots(1, len(regimes), figsize=(6.0 * len(regimes), 4.2), squeeze=False, sharey=True)
    for ax, regime in zip(axes[0], regimes, strict=True):
        for (model, weights), rows in table[table["regime"] == regime].groupby(["model", "weights"], sort=False):
            rows = rows[rows["n"] >= 10]
            colour = MODEL_COLOURS.get(model)
            style = "-" if weights == "trained" else "--"
            ax.plot(rows["lag"], rows["median"], style, color=colour, label=f"{model}, {weights}")
            if weights == "trained":
                ax.fill_between(rows["lag"], rows["q25"], rows["q75"], color=colour, alpha=0.2, linewidth=0)
        ax.set_yscale("log")
        ax.set_xlabel("lag l (steps back from the step that must recall the outer T/P)")
        ax.set_title(f"{regime} regime", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].set_ylabel("‖∂E_t / ∂h_{t−l}‖ (median, band: quartiles)")
    axes[0, -1].legend(fontsize=8)
    fig.suptitle("Does the gradient vanish over time? Embedded Reber test strings, E_t at the outer T/P step")
    fig.tight_layout()
    save_figure(fig, out)
