"""Compiled recurrence of one layer over a batch of padded sequences, from projected inputs (numpy + numba, no
torch): the part of a chorale model's step that torch runs as a Python loop of small operations.

Why: in the chorale ``modern`` regime the input projection x_t W + b, the read-out and the loss are a few large
products that torch does well, but the recurrence is T dependent steps of a dozen small operations each, forward
and backward, whose per-operation overhead is most of the training time. Here each sequence runs through its own
steps in one compiled loop and stops at its length (padding is ~45 % of a batch of 16 chorales); what is left of
the backward that is not sequential, ∂U = Σ_t h_{t-1}ᵀ δa_t, is one matrix product for the caller.

Row vectors, U of shape (H, G·H), gates in the order of :mod:`rnnmem.core.cells` (p_t = x_t W + b given):
  Vanilla  h_t = σ(p_t + h_{t-1} U)                              (σ logistic or tanh)
  GRU      z, r = sigmoid(p_zr + h U_zr),  n = tanh(p_n + (r ⊙ h) U_n),  h_t = z ⊙ h + (1 − z) ⊙ n
  LSTM     i, f, o = sigmoid(·), g = tanh(·) of p + h U,  c_t = f ⊙ c + i ⊙ g,  h_t = o ⊙ tanh(c_t)
Backward, from δh = δc = 0 after each sequence's last step, for t = length − 1 … 0 (δh_t += ∂E/∂h_t):
  Vanilla  δa = δh_t ⊙ σ'(a);  δh_{t-1} = U δa
  GRU      δa_z = δh_t ⊙ (h − n) ⊙ z(1 − z);  δa_n = δh_t ⊙ (1 − z) ⊙ (1 − n²);  δ(r ⊙ h) = U_n δa_n;
           δa_r = δ(r ⊙ h) ⊙ h ⊙ r(1 − r);  δh_{t-1} = δh_t ⊙ z + δ(r ⊙ h) ⊙ r + U_zr δa_zr
  LSTM     δc = δc_t + δh_t ⊙ o ⊙ (1 − tanh²c_t);  δa_o = δh_t ⊙ tanh c_t ⊙ o(1 − o);  δa_i = δc ⊙ g ⊙ i(1 − i);
           δa_f = δc ⊙ c_{t-1} ⊙ f(1 − f);  δa_g = δc ⊙ i ⊙ (1 − g²);  δc_{t-1} = δc ⊙ f;  δh_{t-1} = U δa
  ∂p_t = δa_t;  ∂U = Σ_t h_{t-1}ᵀ δa_t (U_n's columns: Σ_t (r ⊙ h_{t-1})ᵀ δa_n,t), left to the caller.
Steps past a sequence's length are not computed: their states are zero and their ∂p zero.

Every sum runs in a fixed order (products over k = 0 … H−1 and j = 0 … G·H−1, four terms per pass of the inner
loop, added one after the other), so results do not depend on the machine's load or thread count; the inner loops
run over contiguous rows, which the compiler vectorises without reassociating any sum (no fastmath).
"""

from __future__ import annotations

import numba
import numpy as np

from rnnmem.core.compiled import ACTIVATION_CODES, KIND_CODES, _lstm_backward, _vanilla_backward

__all__ = ["ACTIVATION_CODES", "KIND_CODES", "backward", "forward"]

_jit = numba.njit(cache=True)


@_jit
def _sigmoid(a, one):
    return one / (one + np.exp(-a))


@_jit
def _add_product(v, w, first, last, out, acc):
    """out[j] += Σ_k v[k] w[k, j] for first ≤ j < last: the sum over k in increasing order, formed apart (in the
    scratch row ``acc``) and then added to out, as torch's baddbmm adds the product to its input; rows of w four at
    a time."""
    acc[: last - first] = 0
    rows = v.shape[0]
    k = 0
    while k + 4 <= rows:
        v0, v1, v2, v3 = v[k], v[k + 1], v[k + 2], v[k + 3]
        for j in range(last - first):
            s = acc[j]
            s += v0 * w[k, first + j]
            s += v1 * w[k + 1, first + j]
            s += v2 * w[k + 2, first + j]
            s += v3 * w[k + 3, first + j]
            acc[j] = s
        k += 4
    while k < rows:
        vk = v[k]
        for j in range(last - first):
            acc[j] += vk * w[k, first + j]
        k += 1
    for j in range(last - first):
        out[first + j] += acc[j]


@_jit
def _forward_sequence(kind, activation, projected, w_hh, length, hs, cs, gates, rh):
    """Steps 0 … length−1 of one sequence; ``gates`` keeps the activated gates (Vanilla: h), ``rh`` r ⊙ h_{t-1}."""
    dtype = w_hh.dtype
    one, half = dtype.type(1.0), dtype.type(0.5)
    hidden = w_hh.shape[0]
    h_prev = np.zeros(hidden, dtype)
    c_prev = np.zeros(hidden, dtype)
    acc = np.zeros(w_hh.shape[1], dtype)
    for t in range(length):
        a = gates[t]
        if kind == 0:
            a[:] = projected[t]
            _add_product(h_prev, w_hh, 0, hidden, a, acc)
            for j in range(hidden):
                a[j] = _sigmoid(a[j], one) if activation == 0 else np.tanh(a[j])
                hs[t, j] = a[j]
        elif kind == 1:
            a[:] = projected[t]
            _add_product(h_prev, w_hh, 0, 2 * hidden, a, acc)
            for j in range(2 * hidden):
                a[j] = _sigmoid(a[j], one)
            for k in range(hidden):
                rh[t, k] = a[hidden + k] * h_prev[k]
            _add_product(rh[t], w_hh, 2 * hidden, 3 * hidden, a, acc)
            for j in range(hidden):
                n = np.tanh(a[2 * hidden + j])
                a[2 * hidden + j] = n
                z = a[j]
                # torch.lerp(n, h, z), with torch's two branches
                hs[t, j] = n + z * (h_prev[j] - n) if z < half else h_prev[j] - (h_prev[j] - n) * (one - z)
        else:
            a[:] = projected[t]
            _add_product(h_prev, w_hh, 0, 4 * hidden, a, acc)
            for j in range(4 * hidden):
                a[j] = np.tanh(a[j]) if 2 * hidden <= j < 3 * hidden else _sigmoid(a[j], one)
            for j in range(hidden):
                cs[t, j] = a[hidden + j] * c_prev[j] + a[j] * a[2 * hidden + j]
                hs[t, j] = a[3 * hidden + j] * np.tanh(cs[t, j])
            c_prev[:] = cs[t]
        h_prev[:] = hs[t]


@_jit
def _forward(kind, activation, projected, w_hh, lengths, hs, cs, gates, rh):
    for b in range(projected.shape[0]):
        _forward_sequence(kind, activation, projected[b], w_hh, lengths[b], hs[b], cs[b], gates[b], rh[b])


@_jit
def _backward_sequence(kind, activation, w_hh_t, length, hs, cs, gates, grad_hs, grad_projected):
    """∂p_t of one sequence into ``grad_projected`` (``w_hh_t`` is Uᵀ, contiguous, so U δa runs over its rows)."""
    dtype = w_hh_t.dtype
    one = dtype.type(1.0)
    hidden = w_hh_t.shape[1]
    dh = np.zeros(hidden, dtype)
    dc = np.zeros(hidden, dtype)
    dh_prev = np.zeros(hidden, dtype)
    dc_prev = np.zeros(hidden, dtype)
    d_rh = np.zeros(hidden, dtype)
    zeros = np.zeros(hidden, dtype)
    acc = np.zeros(hidden, dtype)
    for t in range(length - 1, -1, -1):
        h_prev = hs[t - 1] if t > 0 else zeros
        a = gates[t]
        da = grad_projected[t]
        for k in range(hidden):
            dh[k] += grad_hs[t, k]
        dh_prev[:] = 0
        if kind == 0:
            _vanilla_backward(activation, a, dh, da)
            _add_product(da, w_hh_t, 0, hidden, dh_prev, acc)
        elif kind == 1:
            for j in range(hidden):
                z, n = a[j], a[2 * hidden + j]
                da[j] = dh[j] * (h_prev[j] - n) * ((one - z) * z)
                da[2 * hidden + j] = dh[j] * (one - z) * (one - n * n)
            d_rh[:] = 0
            _add_product(da[2 * hidden:], w_hh_t[2 * hidden:], 0, hidden, d_rh, acc)
            for k in range(hidden):
                r = a[hidden + k]
                da[hidden + k] = d_rh[k] * h_prev[k] * ((one - r) * r)
            _add_product(da[: 2 * hidden], w_hh_t[: 2 * hidden], 0, hidden, dh_prev, acc)
            for k in range(hidden):
                dh_prev[k] += dh[k] * a[k] + d_rh[k] * a[hidden + k]
        else:
            _lstm_backward(a, cs[t - 1] if t > 0 else zeros, cs[t], dh, dc, dc_prev, da)
            dc[:] = dc_prev
            _add_product(da, w_hh_t, 0, hidden, dh_prev, acc)
        dh[:] = dh_prev


@_jit
def _backward(kind, activation, w_hh_t, lengths, hs, cs, gates, grad_hs, grad_projected):
    for b in range(hs.shape[0]):
        _backward_sequence(kind, activation, w_hh_t, lengths[b], hs[b], cs[b], gates[b], grad_hs[b],
                           grad_projected[b])


def forward(kind: str, activation: str, projected: np.ndarray, w_hh: np.ndarray,
            lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """States of every step: ``projected`` (B, T, G·H) = x W + b, ``w_hh`` U (H, G·H), ``lengths`` (B,) steps per
    sequence (≤ T). Returns (hs, cs, gates, rh), each zero past its sequence's length: hs (B, T, H); cs (B, T, H)
    the LSTM's cell states; gates (B, T, G·H) activated; rh (B, T, H) the GRU's r ⊙ h_{t-1}. Both arrays in one
    dtype (float32 or float64), C-contiguous."""
    batch, steps, width = projected.shape
    hidden = w_hh.shape[0]
    _check(projected, w_hh, lengths, steps)
    dtype = w_hh.dtype
    hs = np.zeros((batch, steps, hidden), dtype)
    cs = np.zeros((batch, steps, hidden), dtype)
    gates = np.zeros((batch, steps, width), dtype)
    rh = np.zeros((batch, steps, hidden), dtype)
    _forward(KIND_CODES[kind], ACTIVATION_CODES[activation], projected, w_hh, lengths, hs, cs, gates, rh)
    return hs, cs, gates, rh


def backward(kind: str, activation: str, w_hh: np.ndarray, lengths: np.ndarray, hs: np.ndarray, cs: np.ndarray,
             gates: np.ndarray, grad_hs: np.ndarray) -> np.ndarray:
    """∂E/∂p (B, T, G·H) from ∂E/∂h_t (B, T, H) given directly on every step (zero past the lengths), with the
    arrays :func:`forward` returned."""
    grad_projected = np.zeros(gates.shape, gates.dtype)
    _backward(KIND_CODES[kind], ACTIVATION_CODES[activation], np.ascontiguousarray(w_hh.T), lengths, hs, cs, gates,
              np.ascontiguousarray(grad_hs, dtype=gates.dtype), grad_projected)
    return grad_projected


def _check(projected: np.ndarray, w_hh: np.ndarray, lengths: np.ndarray, steps: int) -> None:
    if projected.dtype != w_hh.dtype or projected.dtype not in (np.float32, np.float64):
        raise TypeError(f"projected inputs ({projected.dtype}) and U ({w_hh.dtype}) must share float32 or float64")
    if not (projected.flags.c_contiguous and w_hh.flags.c_contiguous):
        raise ValueError("projected inputs and U must be C-contiguous")
    if projected.shape[2] != w_hh.shape[1]:
        raise ValueError(f"projected width {projected.shape[2]} is not U's {w_hh.shape[1]}")
    if lengths.shape != (projected.shape[0],) or lengths.dtype != np.int64:
        raise ValueError("lengths must be one int64 per sequence")
    if lengths.size and (int(lengths.min()) < 0 or int(lengths.max()) > steps):
        raise ValueError(f"lengths must lie in [0, {steps}]")
