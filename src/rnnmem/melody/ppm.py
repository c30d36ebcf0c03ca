"""A variable-order Markov model of pitch as IDyOM builds it: PPM* with interpolated smoothing, LTM + STM.

The yardstick (Pearce 2005, IDyOM's defaults in ``mvs/params.lisp`` and ``ppm-star/ppm-star.lisp``) is
reproduced here with plain dicts instead of IDyOM's suffix tree:

- **Contexts of unbounded order** (PPM*): a context is any run of preceding notes of the current melody that has
  been seen before (followed by a note). Prediction starts at the *shortest deterministic* context (one that only
  one symbol has ever followed) if the chain of matching contexts has one, else at the longest matching context
  (Cleary & Teahan 1997). ``order_bound`` replaces that by the longest context of at most that order.
- **Interpolated smoothing** ("mixtures"): from the start context down to order 0 and then the uniform order -1
  model, each context of state count n and type count t contributes ``w = n / (n + t)`` times its maximum-likelihood
  estimate and passes ``1 - w`` on. Escape method C: t is the number of distinct symbols seen in the context;
  method X: the number seen exactly once, plus one. As in IDyOM, a context's n leaves out the counts of the
  symbols the previous (higher-order) context had ("exclusion"; ``exclusion=False`` turns it off), the order -1
  model gives each symbol ``1 / (|A| + 1 - types at order 0)``, and the mixture is normalised at the end. Every
  distribution is thus a proper one over the alphabet, every symbol > 0.
- **Update exclusion** (optional): a symbol's count is raised only in the contexts where it was new and in the
  longest context where it had been seen, not in the shorter ones. As in IDyOM, a start context chosen by the
  deterministic rule uses its full counts.
- **LTM** (long-term model): escape C, no update exclusion, trained on the training melodies; with ``ltm_plus``
  (IDyOM's default ``:both+``) each test melody is added to it once predicted. **STM** (short-term model): escape
  X with update exclusion, trained on the test melody as it unfolds and emptied before the next one.
- **LTM + STM**: per note, the two distributions are combined with weights ``H_rel ** -bias`` (``H_rel``: entropy
  over log2 |A|); IDyOM's default is the weighted geometric mean with bias 7 (``combination="arithmetic"`` is the
  weighted arithmetic mean).
- **Alphabet**: the pitches of the whole corpus (IDyOM derives a viewpoint's alphabet from the whole data set), so
  no test note is outside it; a test note can still be new to the training folds.

Contexts never cross melodies: each melody starts at the empty context. Deep contexts seen once are stored lazily
(a pointer to their one occurrence, expanded when seen again), as in a suffix tree, so unbounded order costs little.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PPMConfig:
    """One PPM model's options (IDyOM's LTM defaults)."""

    escape: str = "c"
    update_exclusion: bool = False
    order_bound: int | None = None
    exclusion: bool = True


LTM_DEFAULT = PPMConfig(escape="c", update_exclusion=False)
STM_DEFAULT = PPMConfig(escape="x", update_exclusion=True)


class _Node:
    """A context: what followed it (full and update-excluded counts), its one-symbol-longer contexts, and, while it
    has been seen once, where (sequence, position of the following symbol) so it can grow deeper later."""

    __slots__ = ("children", "counts", "excluded_counts", "tail")

    def __init__(self, symbol: int | None = None, tail: tuple[int, int] | None = None) -> None:
        self.children: dict[int, _Node] = {}
        self.counts: dict[int, int] = {} if symbol is None else {symbol: 1}
        self.excluded_counts: dict[int, int] = {} if symbol is None else {symbol: 1}
        self.tail = tail


class PPM:
    """A PPM* model over symbols ``0 .. alphabet_size - 1`` that learns sequences symbol by symbol."""

    def __init__(self, alphabet_size: int, config: PPMConfig = LTM_DEFAULT) -> None:
        if config.escape not in ("c", "x"):
            raise ValueError(f"escape method {config.escape!r}: expected 'c' or 'x'")
        self.size = alphabet_size
        self.config = config
        self.root = _Node()
        self.sequences: list[list[int]] = []

    # --- learning ------------------------------------------------------------------------------------------------

    def start_sequence(self) -> None:
        """Begin a new sequence: later symbols get contexts from it alone."""
        self.sequences.append([])

    def add(self, symbol: int) -> None:
        """Append ``symbol`` to the current sequence and count it in every context that precedes it."""
        seq_id = len(self.sequences) - 1
        sequence = self.sequences[seq_id]
        position = len(sequence)
        sequence.append(symbol)
        chain = [self.root]
        node, depth = self.root, 0
        while depth < position:
            self._grow(node, depth)
            previous = sequence[position - 1 - depth]
            child = node.children.get(previous)
            if child is None:  # a new context: it and every longer one were seen once, stored lazily
                node.children[previous] = _Node(symbol, (seq_id, position))
                break
            node, depth = child, depth + 1
            chain.append(node)
        for context in chain:
            context.counts[symbol] = context.counts.get(symbol, 0) + 1
        for context in reversed(chain):  # update exclusion: stop at the longest context that knew the symbol
            if symbol in context.excluded_counts:
                context.excluded_counts[symbol] += 1
                break
            context.excluded_counts[symbol] = 1

    def add_sequence(self, sequence: Sequence[int]) -> None:
        self.start_sequence()
        for symbol in sequence:
            self.add(symbol)

    def _grow(self, node: _Node, depth: int) -> None:
        """Turn a context seen once into its one-symbol-longer context (if the sequence goes back that far)."""
        if node.tail is None:
            return
        seq_id, position = node.tail
        node.tail = None
        start = position - depth - 1
        if start >= 0:
            sequence = self.sequences[seq_id]
            node.children[sequence[start]] = _Node(sequence[position], (seq_id, position))

    # --- prediction ----------------------------------------------------------------------------------------------

    def _chain(self, history: Sequence[int]) -> tuple[list[_Node], bool]:
        """The matching contexts from order 0 up to the start context, and whether the start was *selected* (a
        shorter deterministic or order-bounded context than the longest match)."""
        bound = self.config.order_bound
        chain = [self.root]
        node, depth = self.root, 0
        while depth < len(history):
            self._grow(node, depth)
            child = node.children.get(history[-1 - depth])
            if child is None:
                return chain, False
            if bound is not None and depth + 1 > bound:
                return chain, True
            node, depth = child, depth + 1
            chain.append(node)
            if bound is None and len(node.counts) == 1:  # the shortest deterministic context
                self._grow(node, depth)
                longer = depth < len(history) and history[-1 - depth] in node.children
                return chain, longer
        return chain, False

    def distribution(self, history: Sequence[int]) -> list[float]:
        """P(next symbol | history) over the alphabet: a list that sums to 1, every entry > 0."""
        config = self.config
        chain, selected = self._chain(history)
        probabilities = [0.0] * self.size
        escape = 1.0
        excluded: dict[int, int] = {}
        for level, node in enumerate(reversed(chain)):
            full = not config.update_exclusion or (level == 0 and selected)
            counts = node.counts if full else node.excluded_counts
            # escape C: distinct symbols; X: symbols seen once, plus one
            types = len(counts) if config.escape == "c" else 1 + sum(1 for c in counts.values() if c == 1)
            state = sum(c for s, c in counts.items() if not (config.exclusion and s in excluded))
            weight = state / (state + types) if state + types > 0 else 0.0
            if state > 0:
                scale = escape * weight / state
                for s, c in counts.items():
                    probabilities[s] += scale * c
            excluded = counts
            escape *= 1.0 - weight
        root_counts = self.root.counts if not config.update_exclusion else self.root.excluded_counts
        uniform = escape / (self.size + 1 - len(root_counts))
        total = 0.0
        for s in range(self.size):
            probabilities[s] += uniform
            total += probabilities[s]
        return [p / total for p in probabilities]


# --- combining and evaluating --------------------------------------------------------------------------------------


def entropy_bits(distribution: Sequence[float]) -> float:
    return -sum(p * math.log2(p) for p in distribution if p > 0)


def combine(distributions: Sequence[Sequence[float]], bias: float = 7.0, combination: str = "geometric") -> list[float]:
    """IDyOM's entropy-weighted mixture: weights ``(H / log2 |A|) ** -bias``, geometric or arithmetic mean."""
    size = len(distributions[0])
    max_entropy = math.log2(size)
    weights = []
    for d in distributions:
        relative = entropy_bits(d) / max_entropy if max_entropy > 0 else 1.0
        weights.append(relative**-bias if relative > 0 else 1e300)
    total_weight = sum(weights)
    weights = [w / total_weight for w in weights]
    if combination == "geometric":
        mixed = [
            math.exp(sum(w * math.log(d[s]) for w, d in zip(weights, distributions, strict=True))) for s in range(size)
        ]
    elif combination == "arithmetic":
        mixed = [sum(w * d[s] for w, d in zip(weights, distributions, strict=True)) for s in range(size)]
    else:
        raise ValueError(f"combination {combination!r}: expected 'geometric' or 'arithmetic'")
    norm = sum(mixed)
    return [p / norm for p in mixed]


@dataclass(frozen=True)
class SystemConfig:
    """LTM + STM options; the defaults are IDyOM's (``:both+``, geometric combination, bias 7)."""

    ltm: PPMConfig = LTM_DEFAULT
    stm: PPMConfig = STM_DEFAULT
    ltm_plus: bool = True
    combination: str = "geometric"
    bias: float = 7.0


def predict(
    train: Sequence[Sequence[int]],
    test: Sequence[Sequence[int]],
    alphabet: Sequence[int] | None = None,
    config: SystemConfig = SystemConfig(),
) -> dict[str, np.ndarray]:
    """Per-note information content (bits, all test notes in order) of the ``ltm``, ``stm`` and ``both`` models.

    ``alphabet``: the symbols (default: those of ``train`` and ``test``); every symbol must be in it.
    """
    symbols = sorted(set(alphabet) if alphabet is not None else {s for seq in [*train, *test] for s in seq})
    index = {s: i for i, s in enumerate(symbols)}
    ltm = PPM(len(symbols), config.ltm)
    for sequence in train:
        ltm.add_sequence([index[s] for s in sequence])
    bits: dict[str, list[float]] = {"ltm": [], "stm": [], "both": []}
    for sequence in test:
        coded = [index[s] for s in sequence]
        stm = PPM(len(symbols), config.stm)
        stm.start_sequence()
        for position, symbol in enumerate(coded):
            history = coded[:position]
            long_term = ltm.distribution(history)
            short_term = stm.distribution(history)
            both = combine([long_term, short_term], config.bias, config.combination)
            bits["ltm"].append(-math.log2(long_term[symbol]))
            bits["stm"].append(-math.log2(short_term[symbol]))
            bits["both"].append(-math.log2(both[symbol]))
            stm.add(symbol)
        if config.ltm_plus:
            ltm.add_sequence(coded)
    return {name: np.asarray(values) for name, values in bits.items()}


def cross_entropy(
    train_melodies: Sequence[Sequence[int]],
    test_melodies: Sequence[Sequence[int]],
    alphabet: Sequence[int] | None = None,
    model: str = "both",
    config: SystemConfig = SystemConfig(),
) -> np.ndarray:
    """Bits per test note (``-log2 P(note)``) of ``model`` (``ltm``, ``stm`` or ``both``) trained on
    ``train_melodies`` (pitch sequences); the mean is the cross-entropy in bits/note."""
    return predict(train_melodies, test_melodies, alphabet, config)[model]
