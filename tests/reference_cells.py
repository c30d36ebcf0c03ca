"""Plain NumPy float64 reference of the report's cells (§1.2), one network and one sequence at a time.

Written from the equations of ``rnnmem.core.cells``' docstring, independently of its implementation: an explicit
loop over time, row-vector products, and every gate sliced out of the weight matrices by hand. Weight layout
of one member (as the ensemble stores it): ``w_ih`` (I, G*H), ``w_hh`` (H, G*H), ``b`` (G*H,), gates side by
side along the columns — GRU: z, r, n; LSTM: i, f, g, o.
"""

from __future__ import annotations

import numpy as np


def logistic(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def vanilla(w_ih: np.ndarray, w_hh: np.ndarray, b: np.ndarray, xs: np.ndarray, activation: str) -> np.ndarray:
    """h_t = σ(x_t W + h_{t-1} W_h + b); returns the hidden states (T, H)."""
    sigma = {"logistic": logistic, "tanh": np.tanh}[activation]
    hidden = w_hh.shape[0]
    h = np.zeros(hidden)
    states = []
    for x in xs:
        h = sigma(x @ w_ih + h @ w_hh + b)
        states.append(h)
    return np.array(states)


def gru(w_ih: np.ndarray, w_hh: np.ndarray, b: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Cho et al. (2014): the reset gate multiplies h before the recurrent product."""
    H = w_hh.shape[0]
    W_z, W_r, W_n = w_ih[:, 0:H], w_ih[:, H : 2 * H], w_ih[:, 2 * H : 3 * H]
    U_z, U_r, U_n = w_hh[:, 0:H], w_hh[:, H : 2 * H], w_hh[:, 2 * H : 3 * H]
    b_z, b_r, b_n = b[0:H], b[H : 2 * H], b[2 * H : 3 * H]
    h = np.zeros(H)
    states = []
    for x in xs:
        z = logistic(x @ W_z + h @ U_z + b_z)
        r = logistic(x @ W_r + h @ U_r + b_r)
        n = np.tanh(x @ W_n + (r * h) @ U_n + b_n)
        h = z * h + (1.0 - z) * n
        states.append(h)
    return np.array(states)


def lstm(w_ih: np.ndarray, w_hh: np.ndarray, b: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """i, f, o logistic, g tanh; c_t = f c_{t-1} + i g; h_t = o tanh(c_t); one bias per gate."""
    H = w_hh.shape[0]
    W_i, W_f, W_g, W_o = w_ih[:, 0:H], w_ih[:, H : 2 * H], w_ih[:, 2 * H : 3 * H], w_ih[:, 3 * H : 4 * H]
    U_i, U_f, U_g, U_o = w_hh[:, 0:H], w_hh[:, H : 2 * H], w_hh[:, 2 * H : 3 * H], w_hh[:, 3 * H : 4 * H]
    b_i, b_f, b_g, b_o = b[0:H], b[H : 2 * H], b[2 * H : 3 * H], b[3 * H : 4 * H]
    h = np.zeros(H)
    c = np.zeros(H)
    states = []
    for x in xs:
        i = logistic(x @ W_i + h @ U_i + b_i)
        f = logistic(x @ W_f + h @ U_f + b_f)
        g = np.tanh(x @ W_g + h @ U_g + b_g)
        o = logistic(x @ W_o + h @ U_o + b_o)
        c = f * c + i * g
        h = o * np.tanh(c)
        states.append(h)
    return np.array(states)


def readout(weight: np.ndarray, bias: np.ndarray, states: np.ndarray) -> np.ndarray:
    """y_t = h_t O + b' for every step: (T, H) -> (T, O)."""
    return np.array([h @ weight + bias for h in states])


def run(kind: str, w_ih, w_hh, b, xs, activation: str = "logistic") -> np.ndarray:
    """Hidden states (T, H) of one network of ``kind`` on one sequence ``xs`` (T, I)."""
    if kind == "vanilla":
        return vanilla(w_ih, w_hh, b, xs, activation)
    if kind == "gru":
        return gru(w_ih, w_hh, b, xs)
    if kind == "lstm":
        return lstm(w_ih, w_hh, b, xs)
    raise ValueError(kind)
