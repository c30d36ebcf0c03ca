"""Our memory capacity against ReservoirPy's own ``reservoirpy.observables.memory_capacity`` (optional crosscheck).

Install with ``pip install -e '.[crosscheck]'`` (reservoirpy==0.4.2); without it the test is skipped. No network.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rnnmem.memory.capacity import CapacitySettings, capacity_from_states, esn_reservoirs, input_sequences

reservoirpy = pytest.importorskip("reservoirpy", reason="reservoirpy not installed (optional group 'crosscheck')")
from reservoirpy.nodes import Reservoir, Ridge  # noqa: E402
from reservoirpy.observables import memory_capacity  # noqa: E402

SETTINGS = CapacitySettings(rho=0.9, input_scale=0.5, train_length=1500, washout=20, test_length=500, ridge=0.0,
                            max_lag=20, reservoirs=2, seed=1)
# Ridge(1e-10) against our least squares: the read-outs agree to ~1e-9 in MC_l (measured ≤ 4e-10).
TOLERANCE = 1e-6


def _reservoir(weights: np.ndarray, input_weights: np.ndarray, linear: bool) -> Reservoir:
    """ReservoirPy's node with our W and w_in: x(t) = f(W x(t−1) + w_in ν(t)); ours is row-vector style, hence Wᵀ."""
    return Reservoir(units=len(input_weights), W=weights.T.copy(), Win=input_weights[:, None].copy(), bias=0.0,
                     lr=1.0, activation=(lambda v: v) if linear else np.tanh, input_dim=1)


@pytest.mark.parametrize(("activation", "orthogonal", "k"),
                         [("tanh", False, 8), ("tanh", True, 8), ("linear", False, 5), ("linear", True, 12)])
def test_memory_capacity_matches_reservoirpy(activation: str, orthogonal: bool, k: int) -> None:
    """Same inputs, W and w_in; ReservoirPy starts its reservoir at step max_lag and warms up max_lag more steps,
    which is our protocol with washout = max_lag on states that start at step max_lag."""
    settings = dataclasses.replace(SETTINGS, activation=activation, orthogonal=orthogonal)
    linear, lag = activation == "linear", settings.max_lag
    weights, input_weights = esn_reservoirs(k, settings)
    inputs = input_sequences(k, settings)
    ours_settings = dataclasses.replace(settings, reservoirs=1, washout=lag)
    for w, w_in, nu in zip(weights, input_weights, inputs, strict=True):
        series = nu[:, None]
        theirs = memory_capacity(_reservoir(w, w_in, linear) >> Ridge(ridge=1e-10), k_max=lag, as_list=True,
                                 series=series, test_size=settings.test_length)
        states = np.zeros((1, ours_settings.steps, k))
        states[0, lag:] = _reservoir(w, w_in, linear).run(series[lag:])
        ours = capacity_from_states(states, nu[None, :], ours_settings)[0]
        np.testing.assert_allclose(ours, theirs, atol=TOLERANCE)
        assert ours.sum() == pytest.approx(float(np.sum(theirs)), abs=lag * TOLERANCE)


def test_reservoirpy_states_are_ours() -> None:
    """The ReservoirPy node with our weights reproduces our tanh update, so the comparison above is like for like."""
    weights, input_weights = esn_reservoirs(6, SETTINGS)
    nu = input_sequences(6, SETTINGS)[0, :200]
    x, ours = np.zeros(6), []
    for value in nu:
        x = np.tanh(x @ weights[0] + input_weights[0] * value)
        ours.append(x)
    np.testing.assert_allclose(_reservoir(weights[0], input_weights[0], False).run(nu[:, None]), np.array(ours),
                               atol=1e-14)
