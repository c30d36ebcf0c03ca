"""The (l, k)-distinguishability D(l, k) of report §2.2 (definition 2.1, figures 14 and 15).

Binary alphabet; u = 1 0^{l−1} and v = 0^l; h_{−1} = 0. D(l, k) is the mean, over random networks with k hidden
units, of ‖h_l(u) − h_l(v)‖₂, h_l the state after reading l symbols. A network that forgets the first symbol has
D → 0; one that keeps it has D bounded away from 0.

Conventions (config keys of ``memory.dlk``). Weights are N(0, 1), as in the report's annex code. ``bias``:
``zero`` (default) as the annex code initialises every bias and as equation (1), which has none; ``normal`` draws
them N(0, 1) like the weights (the weights are the same draws either way). ``input``: ``one_hot`` (default,
"0" = [1, 0], "1" = [0, 1]) or ``scalar`` (x_t = u_t ∈ {0, 1}, the report's text). ``weight_scale`` optionally
multiplies the *recurrent* matrix W_h (``weight_hh``, all gates of the GRU) and nothing else, so the inputs keep
their unit-scale effect while the recurrence is made more or less contractive; ``"inv_sqrt_k"`` means 1/√k, which
keeps the recurrent pre-activation's variance independent of k.

Statistics (:func:`summarise`): the distance's distribution over networks is heavy-tailed. A few Vanilla networks
are bistable and keep D ≈ 0.5 for ever while the median is at rounding level, so the mean is carried by a small
fraction of draws; each row therefore carries a bootstrap 95 % interval of the mean, the median, and the fraction
(and count) of draws above a threshold. Where fewer than ten draws exceed it the mean is not resolved. The GRU with
N(0, 1) weights is chaotic at k ≳ 20: draws whose arithmetic differs by one rounding step (another CPU, another
library version) diverge by O(1) after a few hundred steps, so its D is reproducible in distribution, not digit by
digit; on one machine and library set the tables are byte-identical.

Fast path: u_l and v_l are prefixes of the length-L words 1 0^{L−1} and 0^L, so one pass of L steps over the
batch (draws, 2 sequences, k) gives D for every l ≤ L and every draw; states are streamed, never stored. The
draws are processed in chunks whose recurrent weights fit in the CPU cache (the per-step work is a batched
2 × k by k × Gk product, bound by memory traffic when all draws' weights are streamed at every step), and a
draw whose two states have become bitwise equal is retired: the two sequences then read the same symbol "0"
with the same weights, so their states stay equal and D = 0 exactly for every later l. The GRU's candidate
tanh(a) is computed as 2σ(2a) − 1 (torch's float64 sigmoid is much faster than its tanh); this agrees with
cells.py's step to ~1e-16.

Precision: everything is float64, and must be. D is the distance between two O(1) states, so it cannot resolve
differences below ≈ 1e-16: once u's and v's trajectories agree to rounding, D stays at 1e-17–1e-16 (or exactly 0)
instead of decaying further. Contracting Vanilla networks reach that floor after ~100 symbols (N(0, 1) weights,
k ≤ 5) or ~30 (1/√k scale); in float32 the floor would be ≈ 1e-8, reached after 10–30 symbols.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from rnnmem.core.cells import GATES, EnsembleRecurrence
from rnnmem.core.errors import ConfigError
from rnnmem.memory import NonFiniteStatesError
from rnnmem.memory.weight_scale import scale_value

MODEL_CODES = {"vanilla": 1, "gru": 2}
BIASES = ("zero", "normal")
# The symbols "0" and "1" of each input encoding; the encoding of a network follows from its input size.
ENCODINGS = {"one_hot": ((1.0, 0.0), (0.0, 1.0)), "scalar": ((0.0,), (1.0,))}
ENCODING_OF_SIZE = {len(zero): name for name, (zero, _) in ENCODINGS.items()}
TABLE_COLUMNS = [
    "k", "l", "mean", "std", "sem", "ci_low", "ci_high", "median", "frac_above", "n_above", "n_draws",
    "sv_max_below_1", "sv_max_below_4", "sv_max_median",
]  # fmt: skip
CONFIDENCE = 0.95  # of the bootstrap interval of the mean
RESOLVED_COUNT = 10  # draws above the threshold needed before the mean counts as resolved

CHUNK_BYTES = 8 * 2**20  # recurrent weights processed together: a quarter of the L3 cache (32 MiB here)
# torch splits an elementwise op over threads above this many elements, and its vectorised sigmoid rounds a
# vector's tail differently from its body: chunks stay below it so results do not depend on the thread count.
ELEMENTWISE_GRAIN = 32768
CHECK_EVERY = 32  # steps between checks for non-finite states and for retired draws


def member_seeds(model: str, k: int, draws: int, seed: int) -> list[int]:
    """Seeds of the ``draws`` networks of one (model, k) job, derived from (seed, model, k) only.

    Every (model, k) job therefore draws its own networks, whatever other jobs run, and in any order; the
    seeds of ``draws`` networks are a prefix of those of more draws, so adding draws keeps the first ones.
    """
    if model not in MODEL_CODES:
        raise ConfigError(f"memory.dlk.models: unknown model {model!r}; expected one of {tuple(MODEL_CODES)}")
    for key, value in (("k", k), ("draws", draws)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ConfigError(f"memory.dlk.{key}: must be an integer >= 1, got {value!r}")
    state = np.random.SeedSequence([int(seed), MODEL_CODES[model], int(k)]).generate_state(draws, dtype=np.uint64)
    return [int(s) for s in state]


def random_cells(
    model: str,
    k: int,
    draws: int,
    seed: int,
    weight_scale: float | str,
    bias: str = "zero",
    encoding: str = "one_hot",
) -> EnsembleRecurrence:
    """``draws`` random networks with k units (members of one ensemble), float64.

    Every weight is N(0, 1) (drawn per member from its own seed, see :func:`member_seeds`), biases zero or N(0, 1)
    (``bias``), the input size that of ``encoding``; then the recurrent matrix ``weight_hh`` (all gates) is
    multiplied by the weight scale (1/√k for ``"inv_sqrt_k"``). The Vanilla uses the report's logistic σ. The
    N(0, 1) values are drawn in float32 by ``EnsembleRecurrence.reset_parameters`` and widened exactly to float64.
    The scale is kept as ``cells.weight_scale`` for error messages.
    """
    if bias not in BIASES:
        raise ConfigError(f"memory.dlk.bias: expected one of {BIASES}, got {bias!r}")
    if encoding not in ENCODINGS:
        raise ConfigError(f"memory.dlk.input: expected one of {tuple(ENCODINGS)}, got {encoding!r}")
    scale = scale_value(weight_scale, k, "memory.dlk.weight_scale")
    input_size = len(ENCODINGS[encoding][0])
    cells = EnsembleRecurrence(model, input_size, k, members=draws, activation="logistic")
    cells.reset_parameters("normal", member_seeds(model, k, draws, seed), zero_bias=bias == "zero")
    cells.double()
    with torch.no_grad():
        cells.weight_hh.mul_(scale)
    cells.requires_grad_(False)
    cells.weight_scale = weight_scale
    return cells


def _symbols(cells: EnsembleRecurrence) -> tuple[Tensor, Tensor]:
    """Input parts of every gate for the first symbols (u: "1", v: "0"), (M, 2, G·k), and for "0", (M, 1, G·k)."""
    symbol_zero, symbol_one = ENCODINGS[ENCODING_OF_SIZE[cells.input_size]]
    first = torch.tensor([symbol_one, symbol_zero], dtype=torch.float64)
    zero = torch.tensor([symbol_zero], dtype=torch.float64)
    members, size = cells.members, cells.input_size
    projected_first = cells.project(first.expand(members, 2, size).contiguous())
    projected_zero = cells.project(zero.expand(members, 1, size).contiguous())
    return projected_first, projected_zero


def _chunk_size(cells: EnsembleRecurrence) -> int:
    width = GATES[cells.kind] * cells.hidden
    by_cache = CHUNK_BYTES // (cells.hidden * width * 8)
    by_grain = ELEMENTWISE_GRAIN // (2 * width)
    return max(1, min(cells.members, by_cache, by_grain))


def _non_finite(cells: EnsembleRecurrence, distances: Tensor, start: int, offset: int) -> None:
    """Raise if any distance of rows ≥ ``start`` is NaN/inf (a NaN state gives a NaN distance, and stays NaN)."""
    bad = ~torch.isfinite(distances[start:])
    if not bool(bad.any()):
        return
    row, column = (int(i) for i in bad.nonzero()[0])
    draw = offset + column  # columns of ``distances`` are the chunk's draws, retired or not
    raise NonFiniteStatesError(
        f"memory.dlk.weight_scale: {cells.kind} network with k={cells.hidden}: non-finite hidden state at step "
        f"l={start + row + 1} "
        f"(draw {draw}) with weight_scale={getattr(cells, 'weight_scale', 'unrecorded')!r}; "
        "(NaN/inf weights, or pre-activations beyond the float64 range)"
    )


def _stream_chunk(
    cells: EnsembleRecurrence,
    weight_hh: Tensor,
    projected_first: Tensor,
    projected_zero: Tensor,
    distances: Tensor,
    offset: int,
) -> None:
    """Fill ``distances`` (L, c) with ‖h_l(u) − h_l(v)‖ of one chunk of c draws; rows after retirement stay 0."""
    length, count = distances.shape
    k = cells.hidden
    gru = cells.kind == "gru"
    h = torch.zeros(count, 2, k, dtype=torch.float64)
    if gru:
        # tanh(a) = 2σ(2a) − 1, and torch's float64 sigmoid is several times faster than its tanh; doubling the
        # candidate's weights and input part is exact, so the bmm gives 2a bitwise.
        w_ur, w_n = weight_hh[..., : 2 * k].contiguous(), 2.0 * weight_hh[..., 2 * k :]
        first_ur, first_n = projected_first[..., : 2 * k], 2.0 * projected_first[..., 2 * k :]
        zero_ur, zero_n = projected_zero[..., : 2 * k], 2.0 * projected_zero[..., 2 * k :]
        minus_one = torch.tensor(-1.0, dtype=torch.float64)
        gates = torch.empty(count, 2, 2 * k, dtype=torch.float64)
        reset_h = torch.empty_like(h)
        candidate = torch.empty_like(h)
    else:
        w = weight_hh.contiguous()
        pre = torch.empty(count, 2, k, dtype=torch.float64)
    diff = torch.empty(count, k, dtype=torch.float64)
    norms = torch.empty(count, dtype=torch.float64)
    active: Tensor | None = None  # columns of ``distances`` still simulated; None while all of them are
    checked = 0
    for t in range(length):
        if gru:
            p_ur, p_n = (first_ur, first_n) if t == 0 else (zero_ur, zero_n)
            torch.baddbmm(p_ur, h, w_ur, out=gates)
            torch.sigmoid(gates, out=gates)  # [z | r]
            torch.mul(gates[..., k:], h, out=reset_h)
            torch.baddbmm(p_n, reset_h, w_n, out=candidate)
            torch.sigmoid(candidate, out=candidate)
            torch.add(minus_one, candidate, alpha=2.0, out=candidate)  # n = tanh(a) = 2σ(2a) − 1
            torch.lerp(candidate, h, gates[..., :k], out=h)  # z ⊙ h + (1 − z) ⊙ n
        else:
            torch.baddbmm(projected_first if t == 0 else projected_zero, h, w, out=pre)
            torch.sigmoid(pre, out=h)
        torch.sub(h[:, 0], h[:, 1], out=diff)
        if active is None:
            torch.linalg.vector_norm(diff, dim=-1, out=distances[t])
        else:
            torch.linalg.vector_norm(diff, dim=-1, out=norms)
            distances[t].index_copy_(0, active, norms)
        if (t + 1) % CHECK_EVERY and t + 1 < length:
            continue
        _non_finite(cells, distances, checked, offset)
        checked = t + 1
        same = (diff == 0).all(dim=-1)
        retired = int(same.sum())
        if retired == len(same):
            return
        if 2 * retired >= len(same):  # compact: keep the draws whose states still differ
            keep = (~same).nonzero().squeeze(1)
            active = keep if active is None else active[keep]
            h = h[keep].contiguous()
            diff, norms = diff[keep].contiguous(), norms[keep].contiguous()
            if gru:
                w_ur, w_n = w_ur[keep].contiguous(), w_n[keep].contiguous()
                first_ur, first_n = first_ur[keep], first_n[keep]
                zero_ur, zero_n = zero_ur[keep], zero_n[keep]
                gates, reset_h, candidate = gates[keep].contiguous(), reset_h[keep].contiguous(), candidate[keep]
                candidate = candidate.contiguous()
            else:
                w, pre = w[keep].contiguous(), pre[keep].contiguous()
                projected_first, projected_zero = projected_first[keep], projected_zero[keep]


def per_draw_distances(cells: EnsembleRecurrence, length: int) -> np.ndarray:
    """‖h_l(u) − h_l(v)‖₂ for every draw and l = 1..length: array (draws, length), fast path."""
    if cells.kind not in MODEL_CODES:
        raise ValueError(f"D(l, k) is defined here for {tuple(MODEL_CODES)}, not {cells.kind!r}")
    if cells.input_size not in ENCODING_OF_SIZE:
        raise ValueError(f"binary inputs need input_size in {tuple(ENCODING_OF_SIZE)}, got {cells.input_size}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    with torch.no_grad():
        weight_hh = cells.weight_hh.detach().to(torch.float64)
        cells64 = cells if cells.weight_ih.dtype == torch.float64 else _as_float64(cells)
        projected_first, projected_zero = _symbols(cells64)
        members = cells.members
        distances = torch.zeros(members, length, dtype=torch.float64)
        size = _chunk_size(cells)
        starts = range(0, members, size)

        def run(start: int) -> None:
            stop = min(members, start + size)
            chunk = torch.zeros(length, stop - start, dtype=torch.float64)
            with torch.no_grad():  # grad mode is per thread
                _stream_chunk(
                    cells, weight_hh[start:stop], projected_first[start:stop], projected_zero[start:stop], chunk, start
                )
            distances[start:stop] = chunk.T

        _map_chunks(run, starts)
    return distances.numpy()


def _map_chunks(run: Callable[[int], None], starts: Sequence[int]) -> None:
    """``run`` every chunk: in order on one thread, or on torch's threads, one chunk per thread at a time.

    The chunks are independent and each op of a chunk is small (see :data:`ELEMENTWISE_GRAIN`), so splitting every
    op over threads mostly costs synchronisation (and only the matrix products were split); running whole chunks
    side by side, each op on one thread, uses every thread all the time. Each chunk's arithmetic is the same
    either way (one thread per op, the chunks unchanged), so D does not depend on the thread count. An error
    (non-finite states) is raised for the first failing chunk in order, as in the sequential loop.
    """
    threads = torch.get_num_threads()
    workers = min(threads, len(starts))
    if workers <= 1:
        for start in starts:
            run(start)
        return

    def one_thread(start: int) -> None:
        torch.set_num_threads(1)  # this worker's torch and MKL ops on one thread
        run(start)

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="dlk") as pool:
            futures = [pool.submit(one_thread, start) for start in starts]
            try:
                for future in futures:
                    future.result()
            finally:
                for future in futures:
                    future.cancel()
    finally:
        torch.set_num_threads(threads)


def _as_float64(cells: EnsembleRecurrence) -> EnsembleRecurrence:
    copy = EnsembleRecurrence(cells.kind, cells.input_size, cells.hidden, cells.members, cells.activation).double()
    copy.load_state_dict({name: p.detach().to(torch.float64) for name, p in cells.state_dict().items()})
    copy.weight_scale = getattr(cells, "weight_scale", "unrecorded")
    return copy


def bootstrap_seed(model: str, k: int, seed: int) -> np.random.SeedSequence:
    """The resampling stream of one (model, k) job: independent of the networks' draws and of other jobs."""
    return np.random.SeedSequence([int(seed), MODEL_CODES[model], int(k), 1])


def bootstrap_means(per_draw: np.ndarray, resamples: int, seed: np.random.SeedSequence) -> np.ndarray:
    """Means over ``resamples`` bootstrap resamples of the draws, for every l: array (resamples, L).

    Each resample is a count vector (how often each draw is picked); its mean is one matrix product, computed on one
    thread so that the summation order, hence every bit, does not depend on the job's thread count.
    """
    draws = per_draw.shape[0]
    generator = np.random.default_rng(seed)
    values = torch.from_numpy(np.ascontiguousarray(per_draw, dtype=np.float64))
    means = np.empty((resamples, per_draw.shape[1]))
    block = max(1, min(resamples, 2**24 // draws))  # resamples whose picks are held at once
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for start in range(0, resamples, block):
            stop = min(resamples, start + block)
            picks = generator.integers(0, draws, size=(stop - start, draws))
            rows = np.repeat(np.arange(stop - start), draws) * draws
            counts = np.bincount(rows + picks.ravel(), minlength=(stop - start) * draws).reshape(stop - start, draws)
            means[start:stop] = (torch.from_numpy(counts.astype(np.float64)) @ values).numpy() / draws
    finally:
        torch.set_num_threads(threads)
    return means


def summarise(
    per_draw: np.ndarray, threshold: float, resamples: int, seed: np.random.SeedSequence
) -> dict[str, np.ndarray]:
    """Statistics over draws, per l, of a (draws, L) distance array.

    ``mean``, ``std`` (ddof=1; 0 for one draw), ``sem``; ``ci_low``/``ci_high``: the bootstrap percentile
    :data:`CONFIDENCE` interval of the mean (``resamples`` resamples; the mean itself for one draw); ``median``;
    ``frac_above``/``n_above``: the fraction and count of draws farther apart than ``threshold``; ``n_draws``.
    """
    draws, length = per_draw.shape
    if not threshold > 0:
        raise ConfigError(f"memory.dlk.tail_threshold: must be > 0, got {threshold!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int | np.integer) or resamples < 1:
        raise ConfigError(f"memory.dlk.bootstrap: must be an integer >= 1, got {resamples!r}")
    mean = per_draw.mean(axis=0)
    std = per_draw.std(axis=0, ddof=1) if draws > 1 else np.zeros(length)
    if draws > 1:
        tail = (1.0 - CONFIDENCE) / 2
        ci_low, ci_high = np.quantile(bootstrap_means(per_draw, int(resamples), seed), [tail, 1.0 - tail], axis=0)
    else:
        ci_low, ci_high = mean.copy(), mean.copy()
    above = (per_draw > threshold).sum(axis=0)
    return {
        "l": np.arange(1, length + 1),
        "mean": mean,
        "std": std,
        "sem": std / math.sqrt(draws),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "median": np.median(per_draw, axis=0),
        "frac_above": above / draws,
        "n_above": above.astype(np.int64),
        "n_draws": np.full(length, draws, dtype=np.int64),
    }


def resolved(table: pd.DataFrame) -> pd.Series:
    """Rows whose mean is resolved: no draw above the threshold, or at least :data:`RESOLVED_COUNT` of them."""
    return (table["n_above"] == 0) | (table["n_above"] >= RESOLVED_COUNT)


def distinguishability(
    cells: EnsembleRecurrence,
    length: int,
    threshold: float = 1e-3,
    resamples: int = 1000,
    seed: np.random.SeedSequence | None = None,
) -> dict[str, np.ndarray]:
    """D(l, k) for l = 1..length over the ensemble's draws (one streamed pass, float64, no gradients).

    Returns the arrays of :func:`summarise` (length ``length``); ``mean`` is D(l, k). Raises
    :class:`NonFiniteStatesError` if a state becomes NaN/inf.
    """
    seed = seed if seed is not None else np.random.SeedSequence(0)
    return summarise(per_draw_distances(cells, length), threshold, resamples, seed)


def distinguishability_naive(cells: EnsembleRecurrence, length: int) -> np.ndarray:
    """Reference for tests: (draws, length), each draw and each l run separately from h = 0 (O(draws·L²) steps).

    Builds u = 1 0^{l−1} and v = 0^l explicitly and runs them through a one-member copy of the draw with
    ``EnsembleRecurrence.forward`` (the plain step loop of cells.py). Only for small cases.
    """
    out = np.zeros((cells.members, length))
    with torch.no_grad():
        for m in range(cells.members):
            single = EnsembleRecurrence(cells.kind, cells.input_size, cells.hidden, 1, cells.activation).double()
            single.load_state_dict(
                {name: p.detach()[m : m + 1].to(torch.float64) for name, p in cells.state_dict().items()}
            )
            symbol_zero, symbol_one = ENCODINGS[ENCODING_OF_SIZE[cells.input_size]]
            for steps in range(1, length + 1):
                u = [symbol_one] + [symbol_zero] * (steps - 1)
                v = [symbol_zero] * steps
                x = torch.tensor([u, v], dtype=torch.float64).unsqueeze(0)  # (1, 2, l, 2)
                states, _ = single(x)
                out[m, steps - 1] = float(torch.linalg.vector_norm(states[0, 0, -1] - states[0, 1, -1]))
    return out


def recurrent_matrix(cells: EnsembleRecurrence) -> Tensor:
    """The matrix of Theorem 2.3: W_h for the Vanilla; the candidate's U_n (``weight_hh[..., 2k:]``) for the GRU."""
    k = cells.hidden
    weight = cells.weight_hh.detach().to(torch.float64)
    return weight[..., 2 * k :] if cells.kind == "gru" else weight


def echo_state_fractions(cells: EnsembleRecurrence) -> dict[str, float]:
    """How many draws satisfy the echo-state sufficient conditions of Theorem 2.3 (largest singular value s).

    ``sv_max_below_1``: fraction with s < 1 (the condition for a 1-Lipschitz activation such as tanh);
    ``sv_max_below_4``: fraction with s < 4, the sharper bound for the logistic σ, whose slope is ≤ 1/4;
    ``sv_max_median``: the median of s over draws. For the GRU the theorem does not apply as such; the matrix
    used is the candidate's recurrent matrix U_n (``weight_hh[..., 2k:]``), a diagnostic only.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the batched SVD rounds differently on more threads: one, whatever the job's count
    try:
        with torch.no_grad():
            s = torch.linalg.matrix_norm(recurrent_matrix(cells), ord=2).numpy()
    finally:
        torch.set_num_threads(threads)
    return {
        "sv_max_below_1": float(np.mean(s < 1.0)),
        "sv_max_below_4": float(np.mean(s < 4.0)),
        "sv_max_median": float(np.median(s)),
    }


def dlk_table(
    model: str,
    k: int,
    draws: int,
    length: int,
    seed: int,
    weight_scale: float | str,
    bias: str = "zero",
    encoding: str = "one_hot",
    threshold: float = 1e-3,
    resamples: int = 1000,
) -> pd.DataFrame:
    """One (model, k) job: a row per l = 1..length with D's statistics and the draws' echo-state fractions."""
    cells = random_cells(model, k, draws, seed, weight_scale, bias, encoding)
    stats = distinguishability(cells, length, threshold, resamples, bootstrap_seed(model, k, seed))
    echo = echo_state_fractions(cells)
    table = pd.DataFrame({"k": np.full(length, k, dtype=np.int64), **stats})
    for name in ("sv_max_below_1", "sv_max_below_4", "sv_max_median"):
        table[name] = echo[name]
    return table[TABLE_COLUMNS]
