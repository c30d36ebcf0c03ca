"""Interpolated Kneser–Ney n-gram language models over token ids: the n-gram baseline of the chorale models (§3).

A model of order ``n`` predicts every token of a sequence after its first one from the ``n - 1`` tokens before it;
each sequence starts with the ``BEGIN`` id, and a context that reaches before the start is padded with ``BEGIN``.
``BEGIN`` itself is never predicted: the predictive distributions cover the ``vocab_size - 1`` other ids, and
``BEGIN`` always gets probability 0. ``END`` is an ordinary predicted token, and so is the unknown-token id.

Smoothing (Chen & Goodman 1999, "An empirical study of smoothing techniques for language modeling", §3.5)::

    p_k(w | h) = max(c_k(h, w) - D_k(c_k(h, w)), 0) / c_k(h)  +  gamma_k(h) * p_{k-1}(w | h')
    gamma_k(h) = (D_k(1) N_1(h •) + D_k(2) N_2(h •) + D_k(3+) N_3+(h •)) / c_k(h)

for the levels ``k = 1 .. n`` (``h`` holds ``k - 1`` tokens, ``h'`` is ``h`` without its first token), where
``N_r(h •)`` counts the tokens ``w`` with ``c_k(h, w) = r`` (``N_3+``: at least 3) and ``c_k(h) = sum_w c_k(h, w)``.
A context never seen at level ``k`` passes ``p_{k-1}`` on unchanged; level 0 is the uniform distribution over the
``vocab_size - 1`` predictable ids, so that no token but ``BEGIN`` has probability 0. ``c_n`` are the raw n-gram
counts; the lower levels use continuation counts: ``c_k(h, w)`` is the number of distinct tokens ``v`` with
``c_{k+1}(v h, w) > 0`` (with the ``BEGIN`` padding, every counted k-gram has such a ``v``). For ``n = 1`` the single
level is absolute discounting of the raw unigram counts, interpolated with the uniform distribution.

Discounts: by default *modified* Kneser–Ney, with three discounts per level estimated from the count-of-counts
``n_r`` (the number of k-grams whose level-k count is exactly ``r``) of that level::

    Y = n_1 / (n_1 + 2 n_2),  D(1) = 1 - 2 Y n_2 / n_1,  D(2) = 2 - 3 Y n_3 / n_2,  D(3+) = 3 - 4 Y n_4 / n_3

An estimate that cannot be computed (a zero ``n_r``) or falls outside ``(0, r]`` is replaced by ``Y`` (by 0.75 when
``Y`` itself cannot be computed). With ``discount=D`` (``0 < D <= 1``) the model is plain interpolated Kneser–Ney
with that one discount for every count and level. Every discount lies in ``(0, min(r, 3)]``, so every distribution
sums to 1 and a seen context always passes some mass to the level below.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Ids of the markers in every vocabulary written by rnnmem.chorales.dataset.build_vocab: [UNK, BEGIN, END, ...].
UNK_ID, BEGIN_ID, END_ID = 0, 1, 2
DEFAULT_DISCOUNT = 0.75  # fallback when the count-of-counts do not determine a discount


@dataclass(frozen=True)
class _Context:
    """One context of one level: the discounted probabilities of its seen tokens and its back-off weight."""

    ids: np.ndarray  # int64, the tokens seen after the context
    weights: np.ndarray  # float64, max(c - D(c), 0) / c(h) for those tokens
    table: dict[int, float]  # the same pairs, for scalar look-ups
    gamma: float  # back-off weight of the level below


def modified_discounts(count_of_counts: Counter[int] | dict[int, int]) -> tuple[float, float, float]:
    """``(D(1), D(2), D(3+))`` of modified Kneser–Ney from ``{r: n_r}`` (see the module docstring)."""
    n1, n2, n3, n4 = (count_of_counts.get(r, 0) for r in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 > 0 and n2 > 0 else DEFAULT_DISCOUNT
    estimates = (
        1 - 2 * y * n2 / n1 if n1 > 0 else math.nan,
        2 - 3 * y * n3 / n2 if n2 > 0 else math.nan,
        3 - 4 * y * n4 / n3 if n3 > 0 else math.nan,
    )
    d1, d2, d3 = (d if 0 < d <= r else y for r, d in zip((1, 2, 3), estimates, strict=True))
    return d1, d2, d3


class KneserNeyLM:
    """Interpolated (modified) Kneser–Ney language model of order ``order`` over the ids ``0 .. vocab_size - 1``.

    ``discount=None`` estimates modified-KN discounts per level; a number gives plain KN with that fixed discount.
    After :meth:`fit`, ``discounts[k - 1]`` holds ``(D(1), D(2), D(3+))`` of level ``k``.
    """

    def __init__(self, order: int, vocab_size: int, discount: float | None = None, begin_id: int = BEGIN_ID,
                 end_id: int = END_ID):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if discount is not None and not 0 < discount <= 1:
            raise ValueError(f"a fixed discount must lie in (0, 1], got {discount}")
        if not (0 <= begin_id < vocab_size and 0 <= end_id < vocab_size) or begin_id == end_id or vocab_size < 2:
            raise ValueError(f"bad vocab_size / begin_id / end_id: {vocab_size}, {begin_id}, {end_id}")
        self.order = order
        self.vocab_size = vocab_size
        self.discount = discount
        self.begin_id = begin_id
        self.end_id = end_id
        self.discounts: list[tuple[float, float, float]] = []
        self._levels: list[dict[tuple[int, ...], _Context]] = []
        self._base = 1.0 / (vocab_size - 1)  # level 0: uniform over the predictable ids
        self._base_dist = np.full(vocab_size, self._base)
        self._base_dist[begin_id] = 0.0

    def __repr__(self) -> str:
        kind = "modified" if self.discount is None else f"D={self.discount}"
        return f"KneserNeyLM(order={self.order}, vocab_size={self.vocab_size}, {kind})"

    # --- fitting ------------------------------------------------------------------------------------------------

    def _check_sequence(self, seq: Sequence[int]) -> None:
        if len(seq) == 0 or seq[0] != self.begin_id:
            raise ValueError("every sequence must start with the BEGIN id")
        for token in seq:
            if not 0 <= token < self.vocab_size:
                raise ValueError(f"token id {token} outside 0 .. {self.vocab_size - 1}")
        if self.begin_id in seq[1:]:
            raise ValueError("BEGIN is never predicted, so it may only start a sequence")

    def _ngrams(self, seq: Sequence[int]) -> Iterable[tuple[int, ...]]:
        """The n-grams ``(context..., token)`` of every predicted position, contexts padded with BEGIN."""
        n = self.order
        padded = [self.begin_id] * max(n - 2, 0) + [int(t) for t in seq]
        start = len(padded) - len(seq) + 1  # index of seq[1]
        for i in range(start, len(padded)):
            yield tuple(padded[i - n + 1:i + 1])

    def fit(self, sequences: Sequence[Sequence[int]]) -> KneserNeyLM:
        """Count the n-grams of ``sequences`` (each starting with BEGIN) and build every level; returns ``self``."""
        counts: Counter[tuple[int, ...]] = Counter()
        for seq in sequences:
            self._check_sequence(seq)
            counts.update(self._ngrams(seq))
        level_counts = [counts]  # level n first: raw counts
        for _ in range(self.order - 1):  # continuation counts: distinct left extensions of each shorter k-gram
            level_counts.append(Counter(gram[1:] for gram in level_counts[-1]))
        level_counts.reverse()  # level_counts[k - 1] holds the counts of level k
        self.discounts = []
        self._levels = []
        for counts_k in level_counts:
            if self.discount is None:
                discounts = modified_discounts(Counter(counts_k.values()))
            else:
                discounts = (self.discount,) * 3
            self.discounts.append(discounts)
            self._levels.append(self._build_level(counts_k, discounts))
        return self

    @staticmethod
    def _build_level(counts: Counter[tuple[int, ...]], discounts: tuple[float, float, float]
                     ) -> dict[tuple[int, ...], _Context]:
        by_context: dict[tuple[int, ...], list[tuple[int, int]]] = defaultdict(list)
        for gram, c in counts.items():
            by_context[gram[:-1]].append((gram[-1], c))
        level = {}
        for context, pairs in by_context.items():
            pairs.sort()
            ids = np.array([w for w, _ in pairs], dtype=np.int64)
            c = np.array([c for _, c in pairs], dtype=np.float64)
            d = np.array([discounts[min(int(x), 3) - 1] for x in c])
            total = c.sum()
            weights = np.maximum(c - d, 0.0) / total
            gamma = float(d.sum() / total)  # sum of D(c) over the seen tokens = D1 N1 + D2 N2 + D3 N3+
            level[context] = _Context(ids, weights, dict(zip(ids.tolist(), weights.tolist(), strict=True)), gamma)
        return level

    # --- probabilities ------------------------------------------------------------------------------------------

    def _require_fitted(self) -> None:
        if not self._levels:
            raise RuntimeError("the model is not fitted: call fit() first")

    def _context(self, context: Sequence[int]) -> tuple[int, ...]:
        """The last ``order - 1`` tokens of ``context``, padded on the left with BEGIN."""
        m = self.order - 1
        if m == 0:
            return ()
        tail = tuple(int(t) for t in context[-m:])
        return (self.begin_id,) * (m - len(tail)) + tail

    def prob(self, context: Sequence[int], token: int) -> float:
        """``p(token | context)``; only the last ``order - 1`` tokens of ``context`` matter (padded with BEGIN)."""
        self._require_fitted()
        if not 0 <= token < self.vocab_size:
            raise ValueError(f"token id {token} outside 0 .. {self.vocab_size - 1}")
        if token == self.begin_id:
            return 0.0
        h = self._context(context)
        p = self._base
        for k, level in enumerate(self._levels):  # level k + 1, context of k tokens
            node = level.get(h[len(h) - k:] if k else ())
            if node is not None:
                p = node.table.get(token, 0.0) + node.gamma * p
        return p

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """``p(· | context)`` over the whole vocabulary (``BEGIN`` gets 0); sums to 1."""
        self._require_fitted()
        h = self._context(context)
        p = self._base_dist.copy()
        for k, level in enumerate(self._levels):
            node = level.get(h[len(h) - k:] if k else ())
            if node is not None:
                p *= node.gamma
                p[node.ids] += node.weights
        return p

    def sequence_log_prob(self, seq: Sequence[int]) -> float:
        """Natural log-probability of ``seq[1:]`` given ``seq[0] = BEGIN`` (END, when present, is predicted)."""
        self._require_fitted()
        self._check_sequence(seq)
        m = self.order - 1
        total = 0.0
        for i in range(1, len(seq)):
            total += math.log(self.prob(seq[max(0, i - m):i], seq[i]))
        return total

    def nll(self, sequences: Iterable[Sequence[int]]) -> tuple[float, int]:
        """``(total negative log-likelihood in nats, number of predicted tokens)`` over ``sequences``."""
        total, tokens = 0.0, 0
        for seq in sequences:
            total -= self.sequence_log_prob(seq)
            tokens += len(seq) - 1
        return total, tokens

    def sample(self, rng: np.random.Generator, temperature: float = 1.0, max_len: int = 200) -> list[int]:
        """A sequence ``[BEGIN, ...]`` drawn token by token until END or ``max_len`` generated tokens.

        ``temperature`` divides the log-probabilities before renormalising (1: the model itself; towards 0: greedy).
        """
        self._require_fitted()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        seq = [self.begin_id]
        while len(seq) <= max_len:
            p = self.distribution(seq)
            if temperature != 1.0:
                with np.errstate(divide="ignore"):
                    logits = np.log(p) / temperature
                p = np.exp(logits - logits.max())
                p /= p.sum()
            token = int(rng.choice(self.vocab_size, p=p))
            seq.append(token)
            if token == self.end_id:
                break
        return seq


def select_order(train: Sequence[Sequence[int]], valid: Sequence[Sequence[int]], vocab_size: int,
                 orders: Iterable[int] = (1, 2, 3, 4, 5, 6), **kwargs) -> tuple[int, pd.DataFrame]:
    """Fit one :class:`KneserNeyLM` per order on ``train`` and score ``valid``.

    Returns the order with the lowest validation NLL per token (the smallest such order on a tie) and the table
    ``order, valid_nll, valid_tokens`` (``valid_nll`` in nats per predicted token). ``kwargs`` go to the model.
    """
    rows = []
    for order in orders:
        model = KneserNeyLM(order, vocab_size, **kwargs).fit(train)
        total, tokens = model.nll(valid)
        rows.append({"order": int(order), "valid_nll": total / tokens, "valid_tokens": tokens})
    if not rows:
        raise ValueError("no orders given")
    table = pd.DataFrame(rows, columns=["order", "valid_nll", "valid_tokens"])
    best = int(table.loc[table["valid_nll"].idxmin(), "order"])
    return best, table
