"""Gradient statistics: quantiles of the logged histograms, and ‖∂E_t/∂h_s‖ against the lag (the logging itself:
tests/reber/test_gradient_log.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rnnmem.core.cells import SequencePredictor
from rnnmem.memory.gradients import (
    by_lag,
    gradient_norms_by_lag,
    histogram_quantile,
    summarize_histograms,
)
from rnnmem.reber.gradient_log import EDGES


def test_quantiles_and_exact_fractions() -> None:
    rng = np.random.default_rng(0)
    values = 10.0 ** rng.uniform(-9, 3, size=20_000)
    counts = np.concatenate([[0], np.histogram(values, bins=EDGES)[0], [0]])
    low, high = np.concatenate([[0.0], EDGES]), np.concatenate([EDGES, [np.inf]])
    median = histogram_quantile(low, high, counts, 0.5)
    assert abs(np.log10(median) - np.log10(np.median(values))) < 0.1  # within one bin (10 bins per decade)
    frame = pd.DataFrame({"experiment": "x", "model": "vanilla", "regime": "seed", "phase": "early",
                          "group": "g", "steps": 1, "bin_low": low, "bin_high": high, "count": counts})
    row = summarize_histograms(frame).iloc[0]
    assert row["frac_below_1e-6"] == pytest.approx(np.mean(values < 1e-6))
    assert row["frac_above_1e2"] == pytest.approx(np.mean(values >= 1e2))


def _vanilla_from(h: np.ndarray, w_ih, w_hh, b, xs: np.ndarray) -> np.ndarray:
    for x in xs:
        h = 1.0 / (1.0 + np.exp(-(x @ w_ih + h @ w_hh + b)))
    return h


def test_gradient_by_lag_matches_finite_differences() -> None:
    torch.manual_seed(0)
    model = SequencePredictor("vanilla", 4, 3, 4, members=2).double()
    model.reset_parameters("normal", [3, 4])
    steps = 6
    symbols = torch.randint(0, 4, (2, 1, steps + 1))
    x = torch.nn.functional.one_hot(symbols[..., :-1], 4).double()
    targets = symbols[..., 1:]
    t = torch.tensor([[4], [5]])
    norms = gradient_norms_by_lag(model, x, targets, t, "squared_error")
    assert torch.all(norms[0, 0, 5:] == 0)  # s > t: no influence

    m, s = 1, 2
    w_ih = model.recurrence.weight_ih[m].detach().numpy()
    w_hh = model.recurrence.weight_hh[m].detach().numpy()
    b = model.recurrence.bias[m, 0].detach().numpy()
    o, ob = model.readout.weight[m].detach().numpy(), model.readout.bias[m, 0].detach().numpy()
    xs = x[m, 0].numpy()
    h_s = _vanilla_from(np.zeros(3), w_ih, w_hh, b, xs[: s + 1])
    target = np.eye(4)[int(targets[m, 0, 5])]

    def error(h: np.ndarray) -> float:
        h_t = _vanilla_from(h, w_ih, w_hh, b, xs[s + 1 : 6])
        return float(((h_t @ o + ob - target) ** 2).sum())

    eps = 1e-6
    grad = np.array([(error(h_s + eps * e) - error(h_s - eps * e)) / (2 * eps) for e in np.eye(3)])
    assert float(norms[m, 0, s]) == pytest.approx(np.linalg.norm(grad), rel=1e-6)


def test_by_lag_groups_by_distance_to_t() -> None:
    norms = torch.tensor([[[1.0, 2.0, 3.0, 0.0]]])
    table = by_lag(norms, torch.tensor([[2]]))
    assert table["lag"].tolist() == [0, 1, 2]
    assert table["median"].tolist() == [3.0, 2.0, 1.0]
