"""Compiled forward and backward-through-time of :class:`rnnmem.core.cells.SequencePredictor` and the two Reber
losses (numpy + numba, no torch).

Why: the Reber networks are tiny (H 5-18, alphabet 7, ~12 steps), so torch's per-op overhead dominates training.
These kernels compute exactly what ``loss_fn(model(x)[0], targets).sum().backward()`` computes, member by member.
Members are independent networks, computed one after the other in one thread (a job's parallelism is Snakemake's:
one job per core; a thread pool over 30 members of ~40 µs each costs more than it saves), each in a fixed order.
Arithmetic stays in the arrays' dtype (one compiled specialisation per dtype); no fastmath.

Forward (row vectors; x_t one-hot, so x_t W is row ``symbols[t]`` of W, or 0 where the symbol is −1):
  Vanilla  h_t = σ(a),  a = x_t W + b + h_{t-1} W_h             (σ logistic or tanh)
  GRU      z, r = sigmoid(x W_zr + b_zr + h U_zr),  n = tanh(x W_n + b_n + (r ⊙ h) U_n),  h_t = z ⊙ h + (1 − z) ⊙ n
  LSTM     i, f, o = sigmoid(·), g = tanh(·) of a = x W + b + h U,  c_t = f ⊙ c + i ⊙ g,  h_t = o ⊙ tanh(c_t)
  Read-out y_t = h_t W_out + b_out.
Losses, per member (v_t = 1 where the target is not PAD, B strings, C = max(Σ v, 1)):
  squared error  E = Σ_t v_t Σ_o (y_to − [o = target])² / B      ∂E/∂y_t = 2 v_t (y_t − onehot) / B
  cross-entropy  E = −Σ_t v_t log softmax(y_t)[target] / C        ∂E/∂y_t = v_t (softmax(y_t) − onehot) / C
Backward, from δh = δc = 0 after each string's last valid step, for t = last … 0:
  δh_t += W_out ∂E/∂y_t;  ∂W_out += h_tᵀ ∂E/∂y_t;  ∂b_out += ∂E/∂y_t
  Vanilla  δa = δh_t ⊙ σ'(a)  (h(1 − h) or 1 − h²)
  GRU      δa_z = δh_t ⊙ (h − n) ⊙ z(1 − z);  δa_n = δh_t ⊙ (1 − z) ⊙ (1 − n²);  δ(r ⊙ h) = U_n δa_n;
           δa_r = δ(r ⊙ h) ⊙ h ⊙ r(1 − r);  δh_{t-1} = δh_t ⊙ z + δ(r ⊙ h) ⊙ r + U_zr δa_zr;
           ∂U_n += (r ⊙ h)ᵀ δa_n
  LSTM     δc = δc_t + δh_t ⊙ o ⊙ (1 − tanh²c_t);  δa_o = δh_t ⊙ tanh c_t ⊙ o(1 − o);  δa_i = δc ⊙ g ⊙ i(1 − i);
           δa_f = δc ⊙ c_{t-1} ⊙ f(1 − f);  δa_g = δc ⊙ i ⊙ (1 − g²);  δc_{t-1} = δc ⊙ f
  every cell: ∂W[symbols[t]] += δa, ∂b += δa, ∂U += h_{t-1}ᵀ δa (except U_n, above), δh_{t-1} += U δa.
Steps after a string's last valid target only affect masked outputs, so the loss kernels stop there.

Also here: the Reber loop's parameter updates (SGD, clipped Adam), element for element torch's (end of module).
"""

from __future__ import annotations

import numba
import numpy as np

KIND_CODES = {"vanilla": 0, "gru": 1, "lstm": 2}
ACTIVATION_CODES = {"logistic": 0, "tanh": 1}  # Vanilla only
LOSS_CODES = {"squared_error": 0, "cross_entropy": 1}
_GATES = (1, 3, 4)  # by kind code

_jit = numba.njit(cache=True)


@_jit
def _scalar(like, value):
    """``value`` in ``like``'s dtype: numba would promote float32 ⊕ Python float to float64."""
    return like.dtype.type(value)


@_jit
def _sigmoid(a, one):
    return one / (one + np.exp(-a))


@_jit
def _recurrent_sum(v, w, j):
    """Σ_k v[k] w[k, j], in a fixed order (the backward pass's U δa)."""
    acc = _scalar(v, 0.0)
    for k in range(v.shape[0]):
        acc += v[k] * w[k, j]
    return acc


@_jit
def _matvec(v, w, first, last, out):
    """out[j] = Σ_k v[k] w[k, j] for first ≤ j < last, k in increasing order; row by row, so it vectorises
    over j without reassociating any sum."""
    for j in range(first, last):
        out[j] = _scalar(out, 0.0)
    for k in range(v.shape[0]):
        vk = v[k]
        for j in range(first, last):
            out[j] += vk * w[k, j]


@_jit
def _projected(w_ih, bias, s, j):
    """(x W + b)_j of a one-hot x: torch adds the bias and the selected row (none for symbol −1)."""
    return bias[j] + w_ih[s, j] if s >= 0 else bias[j]


@_jit
def _vanilla_forward(activation, w_ih, w_hh, bias, s, h_prev, h, gates):
    one = _scalar(h, 1.0)
    _matvec(h_prev, w_hh, 0, h.shape[0], gates)
    for j in range(h.shape[0]):
        a = _projected(w_ih, bias, s, j) + gates[j]
        h[j] = _sigmoid(a, one) if activation == 0 else np.tanh(a)
        gates[j] = h[j]


@_jit
def _gru_forward(w_ih, w_hh, bias, s, h_prev, h, gates):
    one, half = _scalar(h, 1.0), _scalar(h, 0.5)
    H = h.shape[0]
    _matvec(h_prev, w_hh, 0, 2 * H, gates)
    for j in range(2 * H):
        gates[j] = _sigmoid(_projected(w_ih, bias, s, j) + gates[j], one)
    for j in range(2 * H, 3 * H):
        gates[j] = _scalar(h, 0.0)
    for k in range(H):
        rh = gates[H + k] * h_prev[k]
        for j in range(2 * H, 3 * H):
            gates[j] += rh * w_hh[k, j]
    for j in range(H):
        n = np.tanh(_projected(w_ih, bias, s, 2 * H + j) + gates[2 * H + j])
        gates[2 * H + j] = n
        z = gates[j]
        # torch.lerp(n, h, z), with torch's two branches
        h[j] = n + z * (h_prev[j] - n) if z < half else h_prev[j] - (h_prev[j] - n) * (one - z)


@_jit
def _lstm_forward(w_ih, w_hh, bias, s, h_prev, c_prev, h, c, gates):
    one = _scalar(h, 1.0)
    H = h.shape[0]
    _matvec(h_prev, w_hh, 0, 4 * H, gates)
    for j in range(4 * H):
        a = _projected(w_ih, bias, s, j) + gates[j]
        gates[j] = np.tanh(a) if 2 * H <= j < 3 * H else _sigmoid(a, one)
    for j in range(H):
        c[j] = gates[H + j] * c_prev[j] + gates[j] * gates[2 * H + j]
        h[j] = gates[3 * H + j] * np.tanh(c[j])


@_jit
def _cell_forward(kind, activation, w_ih, w_hh, bias, s, h_prev, c_prev, h, c, gates):
    if kind == 0:
        _vanilla_forward(activation, w_ih, w_hh, bias, s, h_prev, h, gates)
    elif kind == 1:
        _gru_forward(w_ih, w_hh, bias, s, h_prev, h, gates)
    else:
        _lstm_forward(w_ih, w_hh, bias, s, h_prev, c_prev, h, c, gates)


@_jit
def _readout(w_out, b_out, h, y):
    _matvec(h, w_out, 0, y.shape[0], y)
    for o in range(y.shape[0]):
        y[o] = b_out[o] + y[o]


@_jit
def _vanilla_backward(activation, gates, dh, da):
    one = _scalar(dh, 1.0)
    for j in range(dh.shape[0]):
        h = gates[j]
        da[j] = dh[j] * ((one - h) * h) if activation == 0 else dh[j] * (one - h * h)


@_jit
def _gru_backward(w_hh, g_hh, h_prev, gates, dh, dh_prev, da):
    """δa of the three gates, ∂U_n, and the parts of δh_{t-1} that do not go through U_zr."""
    one = _scalar(dh, 1.0)
    H = dh.shape[0]
    for j in range(H):
        z, n = gates[j], gates[2 * H + j]
        da[j] = dh[j] * (h_prev[j] - n) * ((one - z) * z)
        da[2 * H + j] = dh[j] * (one - z) * (one - n * n)
        dh_prev[j] = dh[j] * z
    for k in range(H):
        r = gates[H + k]
        rh = r * h_prev[k]
        acc = _scalar(dh, 0.0)
        for j in range(H):
            acc += w_hh[k, 2 * H + j] * da[2 * H + j]
            g_hh[k, 2 * H + j] += rh * da[2 * H + j]
        dh_prev[k] += acc * r
        da[H + k] = acc * h_prev[k] * ((one - r) * r)


@_jit
def _lstm_backward(gates, c_prev, c, dh, dc, dc_prev, da):
    one = _scalar(dh, 1.0)
    H = dh.shape[0]
    for j in range(H):
        i, f, g, o = gates[j], gates[H + j], gates[2 * H + j], gates[3 * H + j]
        tc = np.tanh(c[j])
        dct = dc[j] + dh[j] * o * (one - tc * tc)
        da[j] = dct * g * ((one - i) * i)
        da[H + j] = dct * c_prev[j] * ((one - f) * f)
        da[2 * H + j] = dct * i * (one - g * g)
        da[3 * H + j] = dh[j] * tc * ((one - o) * o)
        dc_prev[j] = dct * f


@_jit
def _accumulate(w_hh, g_ih, g_hh, g_bias, s, h_prev, da, dh_prev, columns):
    """∂W[s] += δa, ∂b += δa, ∂U[:, :columns] += h_{t-1}ᵀ δa, δh_{t-1} += U[:, :columns] δa."""
    for j in range(da.shape[0]):
        if s >= 0:
            g_ih[s, j] += da[j]
        g_bias[j] += da[j]
    for k in range(h_prev.shape[0]):
        acc = _scalar(da, 0.0)
        for j in range(columns):
            acc += w_hh[k, j] * da[j]
            g_hh[k, j] += h_prev[k] * da[j]
        dh_prev[k] += acc


@_jit
def _log_sum_exp(y):
    """(max y, log Σ exp(y − max y)): the stable log-partition of a softmax, summed in index order."""
    top = y[0]
    for o in range(y.shape[0]):
        top = max(top, y[o])
    total = _scalar(y, 0.0)
    for o in range(y.shape[0]):
        total += np.exp(y[o] - top)
    return top, np.log(total)


@_jit
def _output_grad(loss, y, target, scale, dy):
    """Writes ∂E/∂y (``scale`` = 1/B or 1/C) into ``dy``; returns the step's loss term, unscaled."""
    one = _scalar(y, 1.0)
    term = _scalar(y, 0.0)
    if loss == 0:
        for o in range(y.shape[0]):
            diff = y[o] - one if o == target else y[o]
            term += diff * diff
            dy[o] = (diff + diff) * scale
    else:
        top, log_total = _log_sum_exp(y)
        for o in range(y.shape[0]):
            logp = y[o] - top - log_total
            if o == target:
                term -= logp
            dy[o] = (np.exp(logp) - one if o == target else np.exp(logp)) * scale
    return term


@_jit
def _nats(y, target):
    """−log softmax(y)[target], as torch's cross_entropy computes it (y − max − log Σ exp)."""
    top, log_total = _log_sum_exp(y)
    return log_total - (y[target] - top)


@_jit
def _divisor(loss, targets, like):
    """The loss's divisor in ``like``'s dtype: the strings B (squared error) or the predicted steps C ≥ 1."""
    batch, steps = targets.shape
    count = 0
    for b in range(batch):
        for t in range(steps):
            if targets[b, t] >= 0:
                count += 1
    return _scalar(like, batch if loss == 0 else max(count, 1))


@_jit
def _last_target(targets):
    """1 + the last step with a target (0 for none): later steps only feed masked outputs."""
    last = 0
    for t in range(targets.shape[0]):
        if targets[t] >= 0:
            last = t + 1
    return last


@_jit
def _forward_string(kind, activation, loss, w_ih, w_hh, bias, w_out, b_out, symbols, targets, last, scale,
                    want_nats, h, c, gates, dy, y, total, nats):
    """Forward of one string's first ``last`` steps into ``h``, ``c``, ``gates``, and ∂E/∂y into ``dy``; returns
    the member's running loss and nats sums with this string's terms added one by one, in step order."""
    for t in range(last):
        _cell_forward(kind, activation, w_ih, w_hh, bias, symbols[t], h[t], c[t], h[t + 1], c[t + 1], gates[t])
        if targets[t] >= 0:
            _readout(w_out, b_out, h[t + 1], y)
            total += _output_grad(loss, y, targets[t], scale, dy[t])
            if want_nats and loss == 0:
                nats += _nats(y, targets[t])
        else:
            dy[t] = 0
    return total, nats


@_jit
def _member_loss_and_grads(kind, activation, loss, w_ih, w_hh, bias, w_out, b_out, symbols, targets,
                           g_ih, g_hh, g_bias, g_out, g_bout, want_nats):
    """One member (its slices of every array): returns its loss and the summed next-token nats (the
    cross-entropy's numerator; with the squared error only when ``want_nats``), writes its gradient."""
    batch, steps = symbols.shape
    hidden, outs, width = w_hh.shape[0], w_out.shape[1], w_hh.shape[1]
    dtype = w_ih.dtype
    g_ih[:] = 0
    g_hh[:] = 0
    g_bias[:] = 0
    g_out[:] = 0
    g_bout[:] = 0
    h = np.zeros((steps + 1, hidden), dtype)
    c = np.zeros((steps + 1, hidden), dtype)
    gates = np.zeros((steps, width), dtype)
    dy = np.zeros((steps, outs), dtype)
    dh, dc = np.zeros(hidden, dtype), np.zeros(hidden, dtype)
    dh_prev, dc_prev = np.zeros(hidden, dtype), np.zeros(hidden, dtype)
    da = np.zeros(width, dtype)
    y = np.zeros(outs, dtype)
    divisor = _divisor(loss, targets, y)
    scale = _scalar(y, 1.0) / divisor
    total = _scalar(y, 0.0)
    nats = _scalar(y, 0.0)
    w_out_t = w_out.T
    for b in range(batch):
        last = _last_target(targets[b])
        total, nats = _forward_string(kind, activation, loss, w_ih, w_hh, bias, w_out, b_out, symbols[b],
                                      targets[b], last, scale, want_nats, h, c, gates, dy, y, total, nats)
        dh[:] = 0
        dc[:] = 0
        for t in range(last - 1, -1, -1):
            s = symbols[b, t]
            for k in range(hidden):
                dh[k] += _recurrent_sum(dy[t], w_out_t, k)
                for o in range(outs):
                    g_out[k, o] += h[t + 1, k] * dy[t, o]
            for o in range(outs):
                g_bout[o] += dy[t, o]
            if kind == 0:
                dh_prev[:] = 0
                _vanilla_backward(activation, gates[t], dh, da)
                _accumulate(w_hh, g_ih, g_hh, g_bias, s, h[t], da, dh_prev, width)
            elif kind == 1:
                _gru_backward(w_hh, g_hh, h[t], gates[t], dh, dh_prev, da)
                _accumulate(w_hh, g_ih, g_hh, g_bias, s, h[t], da, dh_prev, 2 * hidden)
            else:
                dh_prev[:] = 0
                _lstm_backward(gates[t], c[t], c[t + 1], dh, dc, dc_prev, da)
                _accumulate(w_hh, g_ih, g_hh, g_bias, s, h[t], da, dh_prev, width)
                dc[:] = dc_prev
            dh[:] = dh_prev
    return total / divisor, (total if loss == 1 else nats)


@_jit
def _loss_and_grads(kind, activation, loss, w_ih, w_hh, bias, w_out, b_out, symbols, targets,
                    g_ih, g_hh, g_bias, g_out, g_bout, losses, active, nats, want_nats):
    for m in range(symbols.shape[0]):
        if not active[m]:  # a stopped member: its gradient is never applied
            g_ih[m] = 0
            g_hh[m] = 0
            g_bias[m] = 0
            g_out[m] = 0
            g_bout[m] = 0
            losses[m] = 0
            nats[m] = 0
            continue
        losses[m], nats[m] = _member_loss_and_grads(kind, activation, loss, w_ih[m], w_hh[m], bias[m, 0], w_out[m],
                                                    b_out[m, 0], symbols[m], targets[m], g_ih[m], g_hh[m],
                                                    g_bias[m, 0], g_out[m], g_bout[m, 0], want_nats)


ROWS_FROM = 32
"""Hidden sizes from which :func:`loss_and_grads` runs the backward's sums U δa and W_out δy as rows of the
transposed weights (``_loss_and_grads_rows``): out[k] += v[j] wᵀ[j, k] for j, then for k, which vectorises
over k, where the dot products Σ_j w[k, j] v[j] cannot be vectorised without reassociating them (fastmath).
Each entry is summed in the same order either way, so both give the same bits; below ~32 units (the Reber
nets) the transposes and short vector loops cost more than they save, and the narrow code stays as it was."""


@_jit
def _transpose(w, out):
    for k in range(w.shape[0]):
        for j in range(w.shape[1]):
            out[j, k] = w[k, j]


@_jit
def _gru_backward_rows(w_hh_t, g_hh, h_prev, gates, dh, dh_prev, da, acc):
    """:func:`_gru_backward` with U_n δa_n as rows of U_nᵀ."""
    one = _scalar(dh, 1.0)
    H = dh.shape[0]
    for j in range(H):
        z, n = gates[j], gates[2 * H + j]
        da[j] = dh[j] * (h_prev[j] - n) * ((one - z) * z)
        da[2 * H + j] = dh[j] * (one - z) * (one - n * n)
        dh_prev[j] = dh[j] * z
    _matvec(da[2 * H:], w_hh_t[2 * H:], 0, H, acc)
    for k in range(H):
        r = gates[H + k]
        rh = r * h_prev[k]
        for j in range(H):
            g_hh[k, 2 * H + j] += rh * da[2 * H + j]
        dh_prev[k] += acc[k] * r
        da[H + k] = acc[k] * h_prev[k] * ((one - r) * r)


@_jit
def _accumulate_rows(w_hh_t, g_ih, g_hh, g_bias, s, h_prev, da, dh_prev, columns, acc):
    """:func:`_accumulate` with U δa as rows of Uᵀ."""
    for j in range(da.shape[0]):
        if s >= 0:
            g_ih[s, j] += da[j]
        g_bias[j] += da[j]
    for k in range(h_prev.shape[0]):
        hk = h_prev[k]
        for j in range(columns):
            g_hh[k, j] += hk * da[j]
    _matvec(da[:columns], w_hh_t[:columns], 0, h_prev.shape[0], acc)
    for k in range(h_prev.shape[0]):
        dh_prev[k] += acc[k]


@_jit
def _member_loss_and_grads_rows(kind, activation, loss, w_ih, w_hh, bias, w_out, b_out, symbols, targets,
                                g_ih, g_hh, g_bias, g_out, g_bout, want_nats, h, c, gates, dy, vectors, w_hh_t,
                                w_out_t):
    """:func:`_member_loss_and_grads` for wide layers (see :data:`ROWS_FROM`). ``h``, ``c`` (T+1, H), ``gates``
    (T, G*H), ``dy`` (T, O), ``vectors`` (7, max(G*H, O)), ``w_hh_t`` (G*H, H), ``w_out_t`` (O, H): scratch that
    the members share (each entry read is written first; rows 0 of ``h``, ``c`` stay 0)."""
    batch = symbols.shape[0]
    hidden, outs, width = w_hh.shape[0], w_out.shape[1], w_hh.shape[1]
    g_ih[:] = 0
    g_hh[:] = 0
    g_bias[:] = 0
    g_out[:] = 0
    g_bout[:] = 0
    dh, dc, dh_prev, dc_prev = vectors[0, :hidden], vectors[1, :hidden], vectors[2, :hidden], vectors[3, :hidden]
    acc, da, y = vectors[4, :hidden], vectors[5, :width], vectors[6, :outs]
    _transpose(w_hh, w_hh_t)
    _transpose(w_out, w_out_t)
    divisor = _divisor(loss, targets, y)
    scale = _scalar(y, 1.0) / divisor
    total = _scalar(y, 0.0)
    nats = _scalar(y, 0.0)
    for b in range(batch):
        last = _last_target(targets[b])
        total, nats = _forward_string(kind, activation, loss, w_ih, w_hh, bias, w_out, b_out, symbols[b],
                                      targets[b], last, scale, want_nats, h, c, gates, dy, y, total, nats)
        dh[:] = 0
        dc[:] = 0
        for t in range(last - 1, -1, -1):
            s = symbols[b, t]
            _matvec(dy[t], w_out_t, 0, hidden, acc)  # W_out δy
            for k in range(hidden):
                dh[k] += acc[k]
                hk = h[t + 1, k]
                for o in range(outs):
                    g_out[k, o] += hk * dy[t, o]
            for o in range(outs):
                g_bout[o] += dy[t, o]
            if kind == 0:
                dh_prev[:] = 0
                _vanilla_backward(activation, gates[t], dh, da)
                _accumulate_rows(w_hh_t, g_ih, g_hh, g_bias, s, h[t], da, dh_prev, width, acc)
            elif kind == 1:
                _gru_backward_rows(w_hh_t, g_hh, h[t], gates[t], dh, dh_prev, da, acc)
                _accumulate_rows(w_hh_t, g_ih, g_hh, g_bias, s, h[t], da, dh_prev, 2 * hidden, acc)
            else:
                dh_prev[:] = 0
                _lstm_backward(gates[t], c[t], c[t + 1], dh, dc, dc_prev, da)
                _accumulate_rows(w_hh_t, g_ih, g_hh, g_bias, s, h[t], da, dh_prev, width, acc)
                dc[:] = dc_prev
            dh[:] = dh_prev
    return total / divisor, (total if loss == 1 else nats)


@_jit
def _loss_and_grads_rows(kind, activation, loss, w_ih, w_hh, bias, w_out, b_out, symbols, targets,
                         g_ih, g_hh, g_bias, g_out, g_bout, losses, active, nats, want_nats):
    steps = symbols.shape[2]
    hidden, width, outs = w_hh.shape[1], w_hh.shape[2], w_out.shape[2]
    dtype = w_ih.dtype
    h = np.zeros((steps + 1, hidden), dtype)
    c = np.zeros((steps + 1, hidden), dtype)
    gates = np.zeros((steps, width), dtype)
    dy = np.zeros((steps, outs), dtype)
    vectors = np.zeros((7, max(width, outs)), dtype)
    w_hh_t = np.empty((width, hidden), dtype)
    w_out_t = np.empty((outs, hidden), dtype)
    for m in range(symbols.shape[0]):
        if not active[m]:
            g_ih[m] = 0
            g_hh[m] = 0
            g_bias[m] = 0
            g_out[m] = 0
            g_bout[m] = 0
            losses[m] = 0
            nats[m] = 0
            continue
        losses[m], nats[m] = _member_loss_and_grads_rows(
            kind, activation, loss, w_ih[m], w_hh[m], bias[m, 0], w_out[m], b_out[m, 0], symbols[m], targets[m],
            g_ih[m], g_hh[m], g_bias[m, 0], g_out[m], g_bout[m, 0], want_nats, h, c, gates, dy, vectors, w_hh_t,
            w_out_t)


@_jit
def _member_outputs(kind, activation, w_ih, w_hh, bias, w_out, b_out, symbols, outputs):
    batch, steps = symbols.shape
    hidden, width = w_hh.shape
    dtype = w_ih.dtype
    h = np.zeros((steps + 1, hidden), dtype)
    c = np.zeros((steps + 1, hidden), dtype)
    gates = np.zeros(width, dtype)
    for b in range(batch):
        for t in range(steps):
            _cell_forward(kind, activation, w_ih, w_hh, bias, symbols[b, t], h[t], c[t], h[t + 1], c[t + 1], gates)
            _readout(w_out, b_out, h[t + 1], outputs[b, t])


@_jit
def _forward_outputs(kind, activation, w_ih, w_hh, bias, w_out, b_out, symbols, outputs):
    for m in range(symbols.shape[0]):
        _member_outputs(kind, activation, w_ih[m], w_hh[m], bias[m, 0], w_out[m], b_out[m, 0], symbols[m],
                        outputs[m])


@_jit
def _step_correct(y, legal):
    """``top_m_correct``: min legal output > max illegal output, strictly; NaN anywhere fails (as torch's
    amin/amax propagate it)."""
    lowest, highest = np.inf, -np.inf
    for o in range(y.shape[0]):
        if np.isnan(y[o]):
            return False
        if legal[o]:
            lowest = min(lowest, y[o])
        else:
            highest = max(highest, y[o])
    return lowest > highest


@_jit
def _member_correct(kind, activation, w_ih, w_hh, bias, w_out, b_out, symbols, legal, lengths):
    """True iff every valid step of every string is correct; stops at the first wrong step."""
    strings, steps = symbols.shape
    hidden, width = w_hh.shape
    dtype = w_ih.dtype
    h = np.zeros((2, hidden), dtype)
    c = np.zeros((2, hidden), dtype)
    gates = np.zeros(width, dtype)
    y = np.zeros(w_out.shape[1], dtype)
    for n in range(strings):
        h[:] = 0
        c[:] = 0
        for t in range(min(lengths[n], steps)):
            now, nxt = t % 2, 1 - t % 2
            _cell_forward(kind, activation, w_ih, w_hh, bias, symbols[n, t], h[now], c[now], h[nxt], c[nxt], gates)
            _readout(w_out, b_out, h[nxt], y)
            if not _step_correct(y, legal[n, t]):
                return False
    return True


@_jit
def _all_correct(kind, activation, w_ih, w_hh, bias, w_out, b_out, symbols, legal, lengths, out, active):
    for m in range(symbols.shape[0]):
        if not active[m]:  # a stopped member is not checked again
            out[m] = False
            continue
        out[m] = _member_correct(kind, activation, w_ih[m], w_hh[m], bias[m, 0], w_out[m], b_out[m, 0], symbols[m],
                                 legal[m], lengths[m])


def loss_and_grads(
    kind: int, activation: int, loss: int,
    w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray, w_out: np.ndarray, b_out: np.ndarray,
    symbols: np.ndarray, targets: np.ndarray,
    g_ih: np.ndarray, g_hh: np.ndarray, g_bias: np.ndarray, g_out: np.ndarray, g_bout: np.ndarray,
    losses: np.ndarray, active: np.ndarray | None = None, nats: np.ndarray | None = None,
) -> None:
    """Each member's loss into ``losses`` (M,) and the gradient of their sum into ``g_*`` (overwritten). Members
    with ``active[m]`` False (stopped ones, whose gradient the loop does not apply) are skipped: loss and
    gradient 0. ``nats`` (M,), if given, receives each member's summed next-symbol cross-entropy in nats (what a
    learning curve reports beside the squared error).

    Same as ``loss_fn(model(x)[0], targets).sum().backward()`` with x the one-hot of ``symbols`` (−1: no input)
    and ``targets`` −1 (PAD) where masked; weights (M, I, G*H), (M, H, G*H), (M, 1, G*H), (M, H, O), (M, 1, O).
    """
    if active is None:
        active = np.ones(symbols.shape[0], dtype=np.bool_)
    want_nats = nats is not None
    if nats is None:
        nats = np.zeros_like(losses)
    kernel = _loss_and_grads_rows if w_hh.shape[1] >= ROWS_FROM else _loss_and_grads  # the same bits either way
    kernel(kind, activation, loss, w_ih, w_hh, bias, w_out, b_out, symbols, targets,
           g_ih, g_hh, g_bias, g_out, g_bout, losses, active, nats, want_nats)


def forward_outputs(
    kind: int, activation: int,
    w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray, w_out: np.ndarray, b_out: np.ndarray,
    symbols: np.ndarray, outputs: np.ndarray,
) -> None:
    """``model(x)[0]`` into ``outputs`` (M, N, T, O), every step (padded steps get a zero input, as in torch)."""
    _forward_outputs(kind, activation, w_ih, w_hh, bias, w_out, b_out, symbols, outputs)


def all_correct(
    kind: int, activation: int,
    w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray, w_out: np.ndarray, b_out: np.ndarray,
    symbols: np.ndarray, legal: np.ndarray, lengths: np.ndarray, out: np.ndarray,
    active: np.ndarray | None = None,
) -> None:
    """``evaluate(...)["all_correct"]`` into ``out`` (M,) bool, without the outputs tensor; a member stops at its
    first wrong step (the cheap success check of the training loop). Members with ``active[m]`` False are not
    checked (False)."""
    if active is None:
        active = np.ones(symbols.shape[0], dtype=np.bool_)
    _all_correct(kind, activation, w_ih, w_hh, bias, w_out, b_out, symbols, legal, lengths, out, active)


# Parameter updates of the Reber training loop (rnnmem.reber.training), member by member on (M, n) views of the
# five weights. Why: torch spends ~10 µs per elementwise op on these tiny tensors (Adam is ~20 ops a step), several
# times the forward and backward. Each element gets exactly torch's operations, in torch's order and dtype (its
# CPU kernels: ``self + value * t1 / t2`` etc.), so the weights are bit for bit those of torch's loop.


@_jit
def _sgd_member_rows(p, g, rate):
    for m in range(p.shape[0]):
        r = rate[m]
        for i in range(p.shape[1]):
            p[m, i] -= g[m, i] * r


@_jit
def _sgd_step(p0, p1, p2, p3, p4, g0, g1, g2, g3, g4, rate):
    _sgd_member_rows(p0, g0, rate)
    _sgd_member_rows(p1, g1, rate)
    _sgd_member_rows(p2, g2, rate)
    _sgd_member_rows(p3, g3, rate)
    _sgd_member_rows(p4, g4, rate)


@_jit
def _adam_moments(g, exp_avg, exp_avg_sq, scale, active, weight1, beta2, weight2):
    """Clip (``p.grad.mul_(scale)``), then ``exp_avg.lerp_(grad, 1 − β1)`` and
    ``exp_avg_sq.mul_(β2).addcmul_(grad, grad, value=1 − β2)``, for the active members."""
    one, half = _scalar(g, 1.0), _scalar(g, 0.5)
    small = abs(weight1) < half  # torch's lerp: two formulas, by the weight
    for m in range(g.shape[0]):
        if not active[m]:
            continue
        factor = scale[m]
        for i in range(g.shape[1]):
            grad = g[m, i] * factor
            g[m, i] = grad
            avg = exp_avg[m, i]
            exp_avg[m, i] = avg + weight1 * (grad - avg) if small else grad - (grad - avg) * (one - weight1)
            sq = exp_avg_sq[m, i] * beta2
            exp_avg_sq[m, i] = sq + weight2 * grad * grad


@_jit
def _adam_update(p, exp_avg, root, active, bias_correction2_sqrt, eps, neg_step_size):
    """``p.addcdiv_(exp_avg, (√exp_avg_sq / bias_correction2_sqrt).add_(eps), value=−step_size)`` for the active
    members (the loop's ``torch.where`` keeps a stopped member's weights); ``root`` = torch's √exp_avg_sq."""
    for m in range(p.shape[0]):
        if not active[m]:
            continue
        for i in range(p.shape[1]):
            denom = root[m, i] / bias_correction2_sqrt + eps
            p[m, i] = p[m, i] + neg_step_size * exp_avg[m, i] / denom


@_jit
def _adam_moments_all(g0, g1, g2, g3, g4, a0, a1, a2, a3, a4, s0, s1, s2, s3, s4, scale, active, weight1, beta2,
                      weight2):
    _adam_moments(g0, a0, s0, scale, active, weight1, beta2, weight2)
    _adam_moments(g1, a1, s1, scale, active, weight1, beta2, weight2)
    _adam_moments(g2, a2, s2, scale, active, weight1, beta2, weight2)
    _adam_moments(g3, a3, s3, scale, active, weight1, beta2, weight2)
    _adam_moments(g4, a4, s4, scale, active, weight1, beta2, weight2)


@_jit
def _adam_update_all(p0, p1, p2, p3, p4, a0, a1, a2, a3, a4, r0, r1, r2, r3, r4, active, bias_correction2_sqrt,
                     eps, neg_step_size):
    _adam_update(p0, a0, r0, active, bias_correction2_sqrt, eps, neg_step_size)
    _adam_update(p1, a1, r1, active, bias_correction2_sqrt, eps, neg_step_size)
    _adam_update(p2, a2, r2, active, bias_correction2_sqrt, eps, neg_step_size)
    _adam_update(p3, a3, r3, active, bias_correction2_sqrt, eps, neg_step_size)
    _adam_update(p4, a4, r4, active, bias_correction2_sqrt, eps, neg_step_size)


def sgd_step(params: list[np.ndarray], grads: list[np.ndarray], rate: np.ndarray) -> None:
    """``p -= g * rate[m]`` for each member m of the five (M, n) weights, in place: torch's
    ``p.sub_(p.grad * rate.reshape(-1, 1, ...))``, bit for bit (so with rate 0 a member keeps its weights)."""
    _sgd_step(*params, *grads, rate)


def adam_moments(grads: list[np.ndarray], exp_avgs: list[np.ndarray], exp_avg_sqs: list[np.ndarray],
                 scale: np.ndarray, active: np.ndarray, betas: tuple[float, float] = (0.9, 0.999)) -> None:
    """The first half of a ``torch.optim.Adam`` step (its single-tensor CPU path) on the five (M, n) gradients, in
    place, for the members with ``active[m]`` True: the gradient scaled by ``scale[m]`` (``clip_member_grads_``),
    then both moments updated. Then torch's √ of ``exp_avg_sqs`` goes to :func:`adam_update`: its float32 sqrt is
    MKL's (within an ulp, not correctly rounded), which only torch reproduces.

    A stopped member never moves again, so its moments are left as they are: torch would keep decaying them
    (into subnormals, ~100× slower to compute) for nothing."""
    beta1, beta2 = betas
    cast = grads[0].dtype.type  # a Python scalar rounded to the tensor's dtype, as torch's kernels round it
    _adam_moments_all(*grads, *exp_avgs, *exp_avg_sqs, scale, active, cast(1 - beta1), cast(beta2), cast(1 - beta2))


def adam_update(params: list[np.ndarray], exp_avgs: list[np.ndarray], roots: list[np.ndarray], active: np.ndarray,
                step: int, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
    """The second half of the Adam step (``step`` counts from 1), ``roots`` = torch's √exp_avg_sq: the weights of
    the members with ``active[m]`` True move; the others keep theirs (the loop's ``torch.where``). The scalars are
    computed in Python floats exactly as ``_single_tensor_adam`` computes them."""
    beta1, beta2 = betas
    step_f = float(step)  # torch's step is a float tensor, read back with .item()
    bias_correction1 = 1 - beta1**step_f
    bias_correction2 = 1 - beta2**step_f
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    cast = params[0].dtype.type
    _adam_update_all(*params, *exp_avgs, *roots, active, cast(bias_correction2_sqrt), cast(eps), cast(-step_size))
