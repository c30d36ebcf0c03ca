"""Sampling new sopranos from a language model (report §3.3, figure 21), for any model behind one callback.

A model is seen through ``next_logits(prefixes) -> array (len(prefixes), V)``: for each prefix of token ids (each
starting with ``<s>``), the logits of the next token — log-probabilities (with ``-inf`` for impossible tokens) are
logits too. :func:`stateful_next_logits` wraps a model that continues from a saved state (one network step per
token); :func:`distribution_next_logits` wraps a model that gives probabilities, such as an n-gram model's
``distribution(context)``.

:func:`sample_sequences` draws each next token from ``softmax(logits / T)``: the report's inverse temperature is
``β = 1 / T``. ``T = 0`` takes the most likely token (the lowest id on a tie); a large ``T`` tends to the uniform
distribution over the allowed tokens. ``<s>`` and ``<unk>`` are never drawn. Sequence ``i`` uses its own random
stream, child ``i`` of ``numpy.random.SeedSequence(seed)``, so it depends on ``seed`` and ``i`` only (not on
``count`` nor on how the model batches).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from rnnmem.chorales.dataset import BEGIN, END, UNK
from rnnmem.core.errors import RnnmemError

NextLogits = Callable[[list[list[int]]], np.ndarray]


class SamplingError(RnnmemError, ValueError):
    """Sampling cannot run: a bad setting (named by its config key), a vocabulary without the markers, or a model
    whose logits are not finite or do not match the vocabulary (named by file when the caller gives the names)."""


def next_distribution(logits: np.ndarray, temperature: float, banned: Sequence[int] = ()) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` with ``banned`` ids at probability 0 (float64, rows sum to 1).

    ``temperature == 0`` puts all mass on the row's first maximum; ``inf`` spreads it evenly over the allowed
    tokens with a finite logit. A row without any allowed finite logit is an error.
    """
    if not temperature >= 0:
        raise SamplingError(f"temperature: must be >= 0, got {temperature}")
    logits = np.array(logits, dtype=np.float64, ndmin=2)
    if np.isnan(logits).any() or np.isposinf(logits).any():
        raise SamplingError("logits: the next-token logits contain NaN or +inf")
    logits[:, list(banned)] = -np.inf
    allowed = np.isfinite(logits)
    if not allowed.any(axis=1).all():
        raise SamplingError("logits: a prefix has no allowed next token (all logits -inf or banned)")
    if temperature == 0:
        probs = np.zeros_like(logits)
        probs[np.arange(len(logits)), np.argmax(logits, axis=1)] = 1.0
        return probs
    if np.isinf(temperature):
        probs = allowed.astype(np.float64)
    else:
        shifted = (logits - logits.max(axis=1, keepdims=True)) / temperature  # <= 0, -inf where not allowed
        probs = np.exp(shifted)
    return probs / probs.sum(axis=1, keepdims=True)


def _draw(probs: np.ndarray, u: float) -> int:
    """The token whose cumulative-probability interval holds ``u`` in [0, 1); never one of probability 0."""
    cdf = np.cumsum(probs)
    index = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    return min(index, int(np.flatnonzero(probs)[-1]))


def sample_sequences(next_logits: NextLogits, vocab: Sequence[str], temperature: float, count: int,
                     max_tokens: int, seed: int, *, vocab_name: str = "vocabulary",
                     model_name: str = "model") -> list[list[str]]:
    """``count`` token lists, each started at ``<s>`` (not included) and ended by ``</s>`` (included) or after
    ``max_tokens`` tokens (``</s>`` counted), whichever comes first.

    ``next_logits`` is asked for all unfinished sequences at once, one call per step. Deterministic for a given
    ``seed`` (see the module docstring).

    Errors are :class:`SamplingError`: settings name their ``lm.sampling`` key; a vocabulary without the markers,
    or of another size than the model's output, is named by ``vocab_name`` (its file); non-finite logits by
    ``model_name`` (the model file).
    """
    if not temperature >= 0:
        raise SamplingError(f"lm.sampling.temperatures: {temperature} is not a temperature >= 0")
    for key, value in (("count", count), ("max_tokens", max_tokens)):
        if value < 0:
            raise SamplingError(f"lm.sampling.{key}: must be >= 0, got {value}")
    index = {token: i for i, token in enumerate(vocab)}
    if BEGIN not in index or END not in index:
        raise SamplingError(f"{vocab_name}: the vocabulary must contain {BEGIN!r} and {END!r}")
    begin, end = index[BEGIN], index[END]
    banned = [index[t] for t in (BEGIN, UNK) if t in index]
    streams = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(count)]
    prefixes = [[begin] for _ in range(count)]
    active = list(range(count))
    for _ in range(max_tokens):
        if not active:
            break
        logits = np.asarray(next_logits([list(prefixes[i]) for i in active]))
        if logits.ndim != 2 or len(logits) != len(active):
            raise ValueError(f"next_logits returned shape {logits.shape}, expected {(len(active), len(vocab))}")
        if logits.shape[1] != len(vocab):
            raise SamplingError(f"{vocab_name}: {len(vocab)} tokens, but {model_name} predicts {logits.shape[1]}")
        try:
            probs = next_distribution(logits, temperature, banned)
        except SamplingError as error:
            reason = str(error).removeprefix("logits: ")
            raise SamplingError(f"{model_name}: {reason} (diverged or corrupt weights?)") from error
        still = []
        for row, i in enumerate(active):
            token = _draw(probs[row], streams[i].random())
            prefixes[i].append(token)
            if token != end:
                still.append(i)
        active = still
    return [[vocab[t] for t in prefix[1:]] for prefix in prefixes]


def stateful_next_logits(model, device=None) -> NextLogits:
    """A callback for a model with ``continue_logits(ids (B, T), state) -> (outputs (B, T, V), state)`` (e.g.
    :class:`rnnmem.lm.model.TokenLM`), whose states are batched on dimension 1 like torch's ``(1, B, H)``.

    The state reached after each prefix is kept until the next call: a prefix that extends a prefix of the
    previous call by one token costs one step; any other prefix is run from its start (prefixes of equal length
    together). Whatever order the prefixes come in, the logits are those of a full rerun of each prefix up to
    float rounding (tested). The model is put in eval mode; no gradients.
    """
    import torch

    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    states: dict[tuple[int, ...], object] = {}

    def pick(state, row: int):
        return tuple(part[:, row:row + 1] for part in state) if isinstance(state, tuple) else state[:, row:row + 1]

    def stack(parts: list):
        if isinstance(parts[0], tuple):
            return tuple(torch.cat(group, dim=1) for group in zip(*parts, strict=True))
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def next_logits(prefixes: list[list[int]]) -> np.ndarray:
        model.eval()
        groups: dict[object, list[int]] = {}  # ("step",) or ("start", length) -> rows
        for row, prefix in enumerate(prefixes):
            key = ("step",) if len(prefix) > 1 and tuple(prefix[:-1]) in states else ("start", len(prefix))
            groups.setdefault(key, []).append(row)
        rows: dict[int, np.ndarray] = {}
        reached: dict[tuple[int, ...], object] = {}
        for key, members in groups.items():
            if key == ("step",):
                ids = torch.tensor([[prefixes[r][-1]] for r in members], dtype=torch.long, device=device)
                state = stack([states[tuple(prefixes[r][:-1])] for r in members])
            else:
                ids = torch.tensor([prefixes[r] for r in members], dtype=torch.long, device=device)
                state = None
            outputs, final = model.continue_logits(ids, state)
            last = outputs[:, -1].double().cpu().numpy()
            for position, r in enumerate(members):
                rows[r] = last[position]
                reached[tuple(prefixes[r])] = pick(final, position)
        states.clear()
        states.update(reached)
        return np.stack([rows[r] for r in range(len(prefixes))])

    return next_logits


def mixture_next_logits(members: Sequence[NextLogits]) -> NextLogits:
    """A callback for the ensemble of ``members``: the log of the mean of their next-token distributions
    (``softmax`` of each member's logits), the distribution :class:`rnnmem.lm.ensemble.ProbabilityMixture` scores.
    Sampling at temperature ``T`` then tempers the mixture, not each member. ``-inf`` where every member gives 0."""
    if not members:
        raise SamplingError("an ensemble needs at least one model")

    def next_logits(prefixes: list[list[int]]) -> np.ndarray:
        import torch

        rows = [np.asarray(member(prefixes), dtype=np.float64) for member in members]
        for logits in rows:
            if np.isnan(logits).any() or np.isposinf(logits).any():
                return logits  # next_distribution names the fault
        log_probs = torch.log_softmax(torch.from_numpy(np.stack(rows)), dim=-1)
        return (torch.logsumexp(log_probs, dim=0) - math.log(len(members))).numpy()

    return next_logits


def distribution_next_logits(distribution: Callable[[Sequence[int]], np.ndarray]) -> NextLogits:
    """A callback from ``distribution(prefix) -> probabilities (V,)`` (e.g. ``KneserNeyLM.distribution``): the
    logits are the log-probabilities, ``-inf`` where the probability is 0."""

    def next_logits(prefixes: list[list[int]]) -> np.ndarray:
        probs = np.stack([np.asarray(distribution(p), dtype=np.float64) for p in prefixes])
        with np.errstate(divide="ignore"):
            return np.log(probs)

    return next_logits
