"""Exact memory capacity of linear reservoirs, the orthogonal family, the input-scale sweep and their figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnmem.core.errors import ConfigError
from rnnmem.memory.capacity import (
    FAMILIES,
    INPUT_SCALE_COLUMNS,
    LINEAR_COLUMNS,
    CapacitySettings,
    blaschke_coefficients,
    esn_capacity_per_reservoir,
    esn_reservoirs,
    exact_all_lags,
    exact_linear_capacity,
    family_settings,
    input_scale_table,
    linear_table,
)
from rnnmem.memory.figures_capacity import fig_mc_input_scale, fig_mc_linear

LINEAR = CapacitySettings(rho=0.95, input_scale=0.1, train_length=3000, washout=100, test_length=3000, ridge=0.0,
                          max_lag=60, reservoirs=3, seed=5, activation="linear")


def lyapunov_capacity(weights: np.ndarray, input_weights: np.ndarray, max_lag: int) -> np.ndarray:
    """MC_l = var(ν) g_lᵀ C⁻¹ g_l with C = A C Aᵀ + var(ν) w wᵀ (A = Wᵀ, the states' convention): small k only."""
    a, k, var = weights.T, len(input_weights), 1 / 12
    c = np.linalg.solve(np.eye(k * k) - np.kron(a, a), var * np.outer(input_weights, input_weights).ravel())
    c = c.reshape(k, k)
    g, out = input_weights.copy(), []
    for _ in range(max_lag + 1):
        out.append(var * g @ np.linalg.solve(c, g))
        g = a @ g
    return np.array(out)


@pytest.mark.parametrize("reservoir", list(FAMILIES))
@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_exact_matches_the_lyapunov_closed_form(reservoir: str, k: int) -> None:
    weights, inputs = esn_reservoirs(k, family_settings(LINEAR, reservoir))
    for w, w_in in zip(weights, inputs, strict=True):
        np.testing.assert_allclose(exact_linear_capacity(w, 40), lyapunov_capacity(w, w_in, 40), atol=1e-7)


def test_one_unit_closed_form() -> None:
    mc = exact_linear_capacity(np.array([[0.8]]), 10)
    np.testing.assert_allclose(mc, (1 - 0.64) * 0.64 ** np.arange(11), rtol=1e-12)


@pytest.mark.parametrize("reservoir", list(FAMILIES))
@pytest.mark.parametrize("k", [1, 10, 20, 50])
def test_exact_capacity_over_all_lags_is_k(reservoir: str, k: int) -> None:
    weights, _ = esn_reservoirs(k, family_settings(LINEAR, reservoir))
    for w in weights:
        assert exact_all_lags(w) == pytest.approx(k, rel=1e-6)
        mc = exact_linear_capacity(w, 2000)
        assert (mc >= -1e-15).all() and (mc <= 1 + 1e-12).all() and (np.diff(mc) <= 1e-15).all()
        assert mc.sum() == pytest.approx(k, rel=1e-6)


def test_blaschke_product_is_inner() -> None:
    rng = np.random.default_rng(0)
    roots = 0.9 * rng.uniform(0, 1, 6) * np.exp(2j * np.pi * rng.uniform(0, 1, 6))
    power = np.abs(blaschke_coefficients(roots, 4096)) ** 2
    assert power.sum() == pytest.approx(1.0, abs=1e-12)  # |B| = 1 on the circle


def test_exact_rejects_unstable_reservoirs() -> None:
    with pytest.raises(ConfigError, match="spectral radius"):
        exact_linear_capacity(np.array([[1.0]]), 5)


def estimator_tolerance(k: int, exact: float, settings: CapacitySettings, spread: float) -> float:
    """How far the finite-sample estimate of Σ_{l=1..L} MC_l may sit from the exact one.

    Out of sample, a least-squares read-out of p = k + 1 weights fitted on T steps loses ≈ (1 − MC_l) p / T of R²
    per lag (prediction error σ²(1 + p/T)), and a held-out squared correlation gains ≈ 1 / T_test per lag of noise;
    plus 3 standard errors of the mean over the R reservoirs.
    """
    fit = (k + 1) * (settings.max_lag - exact) / settings.train_length
    return fit + 3 * settings.max_lag / settings.test_length + 3 * spread / np.sqrt(settings.reservoirs)


@pytest.fixture(scope="module")
def linear() -> pd.DataFrame:
    return linear_table([1, 5, 10, 20], LINEAR)


def test_linear_table_layout(linear: pd.DataFrame) -> None:
    assert list(linear.columns) == LINEAR_COLUMNS
    assert linear["reservoir"].tolist() == list(FAMILIES) * 4
    np.testing.assert_allclose(linear["exact_all_lags"], linear["k"], rtol=1e-6)
    np.testing.assert_allclose(linear["error"], linear["estimated"] - linear["exact"], atol=1e-9)


def test_estimator_is_within_its_error_up_to_k_20(linear: pd.DataFrame) -> None:
    for row in linear.itertuples():
        assert row.exact <= row.k  # the protocol's lags 1..L: k − MC_0 − tail
        tolerance = estimator_tolerance(row.k, row.exact, LINEAR, row.error_std)
        assert abs(row.error) <= tolerance, (row, tolerance)


def test_exact_capacity_is_the_estimators_limit() -> None:
    """With 30,000 training and held-out steps the estimate lands on the exact value (the error is the estimator's).

    The read-out's fitting loss is then (k + 1)(L − MC)/T ≈ 0.005; the rest is sampling noise of the 30 MC_l
    (≈ 0.005 each, correlated across lags since they share the data), hence 0.1.
    """
    settings = dataclasses.replace(LINEAR, reservoirs=1, max_lag=30, train_length=30000, test_length=30000)
    weights, _ = esn_reservoirs(5, settings)
    exact = exact_linear_capacity(weights[0], settings.max_lag)[1:].sum()
    assert abs(esn_capacity_per_reservoir(5, settings)[0].sum() - exact) < 0.1


def test_orthogonal_family_keeps_the_gaussian_seeds() -> None:
    gaussian, g_in = esn_reservoirs(6, family_settings(LINEAR, "esn_gaussian"))
    orthogonal, o_in = esn_reservoirs(6, family_settings(LINEAR, "esn_orthogonal"))
    np.testing.assert_array_equal(g_in, o_in)
    np.testing.assert_array_equal(gaussian, esn_reservoirs(6, LINEAR)[0])  # the configured (Gaussian) ESN
    np.testing.assert_allclose(orthogonal[0] @ orthogonal[0].T, LINEAR.rho**2 * np.eye(6), atol=1e-12)
    with pytest.raises(ConfigError, match="family"):
        family_settings(LINEAR, "esn_sparse")


def test_input_scale_table() -> None:
    settings = dataclasses.replace(LINEAR, activation="tanh", train_length=800, test_length=600, max_lag=30,
                                   reservoirs=2)
    table = input_scale_table(10, [1e-4, 1.0], settings)
    assert list(table.columns) == INPUT_SCALE_COLUMNS
    assert table["reservoir"].tolist() == ["esn_gaussian"] * 2 + ["esn_orthogonal"] * 2
    small, large = table[table["input_scale"] == 1e-4], table[table["input_scale"] == 1.0]
    # tanh saturates at s = 1: memory drops; at 1e-4 it is the linear reservoir's
    assert (small["mc_total"].to_numpy() > large["mc_total"].to_numpy()).all(), table
    assert (table["mc_total"] <= 10 + 3 * settings.max_lag / settings.test_length).all()


def test_figures_are_reproducible(tmp_path: Path, linear: pd.DataFrame) -> None:
    scales = pd.DataFrame({"reservoir": ["esn_gaussian"] * 3 + ["esn_orthogonal"] * 3,
                           "input_scale": [1e-5, 1e-2, 1.0] * 2, "k": 50,
                           "mc_total": [39.0, 30.0, 10.0, 48.5, 45.0, 12.0], "mc_total_std": 0.5, "reservoirs": 10})
    draws = {
        "scale.png": lambda out: fig_mc_input_scale(scales, "ESN tanh, ρ = 0.95", out),
        "linear.png": lambda out: fig_mc_linear(linear, LINEAR.max_lag, LINEAR.rho, out),
    }
    for name, draw in draws.items():
        first, second = tmp_path / "a" / name, tmp_path / "b" / name
        draw(first)
        draw(second)
        data = first.read_bytes()
        assert data.startswith(b"\x89PNG") and data == second.read_bytes(), name
    with pytest.raises(ValueError, match="one k"):
        fig_mc_input_scale(scales.assign(k=[50, 50, 50, 40, 40, 40]), "ESN", tmp_path / "bad.png")
