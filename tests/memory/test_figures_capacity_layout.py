"""Layout of the MC(l, k) heatmaps (figure 16, mc_gru): the colour-bar label and every title and axis label lie on
the canvas, for the smoke grid (three k, a short map) and the paper's (ten k, a hundred lags)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from figure_checks import capture, colorbar_axes, outside_canvas, reader_texts

from rnnmem.memory import figures_capacity
from rnnmem.memory.figures_capacity import fig_mc_heatmap


def capacity_table(sizes: list[int], max_lag: int) -> pd.DataFrame:
    """A synthetic MC(l, k) table: MC_l decays like exp(−l / k)."""
    return pd.DataFrame(
        [{"k": k, "l": lag, "mc": float(np.exp(-lag / k))} for k in sizes for lag in range(1, max_lag + 1)]
    )


@pytest.mark.parametrize(
    ("sizes", "max_lag"),
    [([1, 5, 10], 20), ([1, 2, 5, 10, 15, 20, 25, 30, 40, 50], 100), ([4], 7)],
    ids=["smoke", "paper", "one_k"],
)
@pytest.mark.parametrize(
    "title",
    ["Memory capacity MC(l,k) of ESN tanh, ρ = 0.95", "Memory capacity MC(l,k) of a random GRU, weights N(0,1) × 1/√k"],
    ids=["fig16", "mc_gru"],
)
def test_colour_bar_label_is_on_the_canvas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sizes: list[int], max_lag: int, title: str
) -> None:
    figures = capture(monkeypatch, figures_capacity)
    fig_mc_heatmap(capacity_table(sizes, max_lag), title, tmp_path / "mc.png")
    (fig,) = figures
    (bar,) = colorbar_axes(fig)
    label = bar.xaxis.label if bar._colorbar.orientation == "horizontal" else bar.yaxis.label
    assert label.get_text().startswith("MC_l = corr²")
    assert outside_canvas(fig, [label]) == []
    assert outside_canvas(fig, reader_texts(fig)) == []
    heatmap = next(ax for ax in fig.get_axes() if ax is not bar)
    ticks = [t for t in heatmap.get_xticks() if heatmap.get_xlim()[0] <= t <= heatmap.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), "lags are whole steps"
