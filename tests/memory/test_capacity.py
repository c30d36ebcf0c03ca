"""Memory capacity MC(l, k) of random reservoirs: checks against theory (Jaeger 2002), seeding and figures."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rnnmem.memory import capacity
from rnnmem.memory.capacity import (
    CapacitySettings,
    NonFiniteStatesError,
    capacity_from_states,
    esn_capacity,
    esn_capacity_per_reservoir,
    esn_reservoirs,
    gru_capacity,
    input_sequences,
    total_capacity,
    totals_per_k,
)
from rnnmem.memory.figures_capacity import fig_dlk_vs_mc, fig_mc_heatmap, fig_mc_total

torch.set_num_threads(1)

# Near-linear tanh ESNs; at k = 1 the exact total is about ρ² ≈ 0.90 (only lags l ≥ 1 count), 0.1 under the bound.
TANH = CapacitySettings(rho=0.95, input_scale=0.1, train_length=2000, washout=100, test_length=4000, ridge=0.0,
                        max_lag=30, reservoirs=4, seed=3)
# Linear reservoir, W = 0.99 × orthogonal: MC_l ∝ 0.99^(2l) roughly, so the lags up to 300 hold
# 1 − 0.99^600 ≈ 99.8 % of the capacity; long T_test keeps the sum of 300 estimated MC_l precise.
LINEAR = CapacitySettings(rho=0.99, input_scale=0.1, train_length=4000, washout=200, test_length=4000, ridge=0.0,
                          max_lag=300, reservoirs=4, seed=0, activation="linear", orthogonal=True)


def tolerance(settings: CapacitySettings) -> float:
    """Upward estimation bias of MC = Σ_l MC_l with no true memory: 3 L / T_test.

    A squared sample correlation between independent series of length n has mean ≈ 1/n; the states are
    autocorrelated, which inflates it by a small factor (measured ≈ 2.4 for k = 1, ρ = 0.95), so 3/n per lag.
    Over 20 seeds of TANH the largest k = 1 total was 0.936, i.e. about 3 standard errors below 1 + 3 L / T_test.
    """
    return 3 * settings.max_lag / settings.test_length


@pytest.fixture(scope="module")
def tanh_tables() -> dict[int, pd.DataFrame]:
    return {k: esn_capacity(k, TANH) for k in (1, 2, 5, 20)}


def test_table_layout(tanh_tables: dict[int, pd.DataFrame]) -> None:
    table = tanh_tables[5]
    assert list(table.columns) == ["k", "l", "mc", "mc_std"]
    assert table["l"].tolist() == list(range(1, TANH.max_lag + 1))
    assert (table["k"] == 5).all()
    assert table[["mc", "mc_std"]].dtypes.eq(np.float64).all()


def test_mc_l_is_a_squared_correlation(tanh_tables: dict[int, pd.DataFrame]) -> None:
    for table in tanh_tables.values():
        assert ((table["mc"] >= 0) & (table["mc"] <= 1)).all()
        assert (table["mc_std"] >= 0).all()


def test_total_capacity_at_most_k(tanh_tables: dict[int, pd.DataFrame]) -> None:
    totals = total_capacity(pd.concat(tanh_tables.values(), ignore_index=True))
    assert totals["k"].tolist() == [1, 2, 5, 20]
    assert (totals["mc_total"] <= totals["k"] + tolerance(TANH)).all(), totals
    assert (totals["mc_total"] > 0.5 * totals["k"].clip(upper=5)).all(), totals  # it does remember something


def test_exact_total_spread_is_below_the_per_lag_bound() -> None:
    settings = CapacitySettings(rho=0.95, input_scale=0.1, train_length=500, washout=50, test_length=300,
                                ridge=0.0, max_lag=10, reservoirs=4, seed=3)
    per_reservoir = esn_capacity_per_reservoir(5, settings)
    exact = totals_per_k(5, per_reservoir)
    bound = total_capacity(esn_capacity(5, settings))
    assert exact["mc_total"] == pytest.approx(float(bound["mc_total"].iloc[0]))
    assert exact["mc_total_std"] == pytest.approx(float(per_reservoir.sum(1).std(ddof=1)))
    assert exact["mc_total_std"] <= float(bound["mc_total_std"].iloc[0]) + 1e-12


def test_total_capacity_columns_and_bound() -> None:
    table = pd.DataFrame({"k": [2, 2, 1], "l": [1, 2, 1], "mc": [0.9, 0.5, 0.7], "mc_std": [0.1, 0.2, 0.05]})
    totals = total_capacity(table)
    assert list(totals.columns) == ["k", "mc_total", "mc_total_std"]
    np.testing.assert_allclose(totals["mc_total"], [0.7, 1.4])
    np.testing.assert_allclose(totals["mc_total_std"], [0.05, 0.3])


@pytest.mark.parametrize("k", [10, 50])
def test_linear_orthogonal_reservoir_reaches_k(k: int) -> None:
    table = esn_capacity(k, LINEAR)
    total = float(table["mc"].sum())
    assert 0.9 * k <= total <= k + tolerance(LINEAR)
    mc = table["mc"].to_numpy()
    assert (np.diff(mc) <= 0.02).all(), "MC_l of a linear reservoir should not increase with the lag"


def test_deterministic() -> None:
    settings = dataclasses.replace(TANH, reservoirs=2, max_lag=10, train_length=300, test_length=200)
    pd.testing.assert_frame_equal(esn_capacity(4, settings), esn_capacity(4, settings))
    pd.testing.assert_frame_equal(gru_capacity(4, settings, 0.5), gru_capacity(4, settings, 0.5))


def test_reservoirs_are_per_k_and_per_index() -> None:
    w10, win10 = esn_reservoirs(10, TANH)
    w11, _ = esn_reservoirs(11, TANH)
    assert not np.allclose(w10[0], w11[0, :10, :10])
    assert not np.allclose(w10[0], w10[1])
    assert not np.allclose(input_sequences(10, TANH), input_sequences(11, TANH)[:, : TANH.steps])
    # reservoir r does not depend on how many are drawn
    w_two, win_two = esn_reservoirs(10, dataclasses.replace(TANH, reservoirs=2))
    np.testing.assert_array_equal(w_two, w10[:2])
    np.testing.assert_array_equal(win_two, win10[:2])
    # spectral radius ρ, input weights in [−s, s]
    radii = np.abs(np.linalg.eigvals(w10)).max(axis=1)
    np.testing.assert_allclose(radii, TANH.rho)
    assert np.abs(win10).max() <= TANH.input_scale
    orth, _ = esn_reservoirs(6, dataclasses.replace(TANH, orthogonal=True))
    np.testing.assert_allclose(orth[0] @ orth[0].T, TANH.rho**2 * np.eye(6), atol=1e-12)


def test_inputs_are_uniform_on_half_interval() -> None:
    inputs = input_sequences(3, TANH)
    assert inputs.shape == (TANH.reservoirs, TANH.max_lag + TANH.washout + TANH.train_length + TANH.test_length)
    assert inputs.min() >= -0.5 and inputs.max() <= 0.5
    assert abs(inputs.mean()) < 0.01 and abs(inputs.var() - 1 / 12) < 0.005


def test_random_gru_remembers_the_last_input() -> None:
    settings = dataclasses.replace(TANH, max_lag=10, train_length=1000, test_length=1000, reservoirs=2)
    table = gru_capacity(10, settings, 1 / math.sqrt(10))
    assert table["mc"].iloc[0] > 0.5
    assert ((table["mc"] >= 0) & (table["mc"] <= 1)).all()


@pytest.mark.parametrize(
    ("field", "value"),
    [("rho", 0.0), ("rho", -1.0), ("input_scale", 0.0), ("train_length", 0), ("washout", -1), ("test_length", 0),
     ("ridge", -1e-3), ("max_lag", 0), ("reservoirs", 0), ("activation", "relu"), ("train_length", 10.5)],
)
def test_settings_reject_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TANH, **{field: value})


def test_exploding_linear_reservoir_raises() -> None:
    settings = dataclasses.replace(TANH, rho=50.0, activation="linear", max_lag=5, train_length=300,
                                   test_length=100, reservoirs=2)
    with pytest.raises(NonFiniteStatesError):
        esn_capacity(5, settings)


def test_nan_gru_weights_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dataclasses.replace(TANH, max_lag=5, train_length=100, test_length=100, reservoirs=2)
    original = capacity.EnsembleRecurrence.reset_parameters

    def poisoned(self, init, seeds):  # type: ignore[no-untyped-def]
        original(self, init, seeds)
        with torch.no_grad():
            self.weight_hh[1, 0, 0] = float("nan")

    monkeypatch.setattr(capacity.EnsembleRecurrence, "reset_parameters", poisoned)
    with pytest.raises(NonFiniteStatesError, match=r"\[1\]"):
        gru_capacity(3, settings, 1.0)


def test_capacity_from_states_checks_shapes() -> None:
    with pytest.raises(ValueError, match="steps"):
        capacity_from_states(np.zeros((TANH.reservoirs, 5, 3)), np.zeros((TANH.reservoirs, 5)), TANH)


def test_constant_states_give_zero_capacity() -> None:
    settings = dataclasses.replace(TANH, max_lag=3, train_length=50, test_length=50, reservoirs=2, washout=0)
    states = np.ones((2, settings.steps, 4))
    inputs = input_sequences(4, settings)
    np.testing.assert_allclose(capacity_from_states(states, inputs, settings), 0.0, atol=1e-12)  # rounding only
    ridged = dataclasses.replace(settings, ridge=1e-6)
    np.testing.assert_allclose(capacity_from_states(states, inputs, ridged), 0.0, atol=1e-12)


def _png(path: Path) -> bytes:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    return data


def test_figures_are_reproducible(tmp_path: Path, tanh_tables: dict[int, pd.DataFrame]) -> None:
    esn = pd.concat(tanh_tables.values(), ignore_index=True)
    gru = esn.assign(mc=esn["mc"] * 0.5)
    lags = np.arange(1, 21)
    dlk = {name: pd.DataFrame({"k": 5, "l": lags, "mean": np.exp(-lags / d), "sem": 0.1 * np.exp(-lags / d)})
           for name, d in (("vanilla", 2.0), ("gru", 8.0))}
    draws = {
        "heat.png": lambda out: fig_mc_heatmap(esn, "ESN memory capacity", out),
        "total.png": lambda out: fig_mc_total({"ESN tanh ρ=0.95": total_capacity(esn),
                                               "random GRU": total_capacity(gru)}, out),
        "dlk.png": lambda out: fig_dlk_vs_mc(dlk, {"ESN": esn, "random GRU": gru}, 5, out),
    }
    for name, draw in draws.items():
        first, second = tmp_path / "a" / name, tmp_path / "b" / name
        draw(first)
        draw(second)
        assert _png(first) == _png(second), name
    with pytest.raises(ValueError, match="k = 7"):
        fig_dlk_vs_mc(dlk, {"ESN": esn}, 7, tmp_path / "missing.png")
