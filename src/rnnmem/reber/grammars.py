"""Finite-state grammars of the report: Reber (fig. 6), embedded Reber (fig. 9) and the §1.3 toy language.

Every generator also knows the exact set of legal next symbols after any prefix, which is what the
Hochreiter & Schmidhuber (1997) success criterion and the heatmaps need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rnnmem.reber.alphabets import REBER_ALPHABET, TOY_ALPHABET

# Reber automaton of the report's figure 6: state -> ((symbol, next state), (symbol, next state)).
# State 0 is before "B"; state 6 is the end state, after which only "E" is legal.
_REBER_EDGES: dict[int, tuple[tuple[str, int], ...]] = {
    0: (("B", 1),),
    1: (("T", 2), ("P", 3)),
    2: (("S", 2), ("X", 4)),
    3: (("T", 3), ("V", 5)),
    4: (("X", 3), ("S", 6)),
    5: (("P", 4), ("V", 6)),
    6: (("E", 7),),
}
_REBER_FINAL = 7


class GrammarError(ValueError):
    """A string is not in the grammar's language."""


def reber_states(string: str) -> list[int]:
    """Automaton state after each prefix of ``string`` (entry i is the state after i symbols)."""
    state, states = 0, [0]
    for position, symbol in enumerate(string):
        moves = dict(_REBER_EDGES.get(state, ()))
        if symbol not in moves:
            raise GrammarError(f"{string!r}: symbol {symbol!r} at position {position} is not legal")
        state = moves[symbol]
        states.append(state)
    return states


def reber_legal_next(prefix: str) -> frozenset[str]:
    """Symbols that may follow ``prefix`` in a Reber string (empty once the string is complete)."""
    state = reber_states(prefix)[-1]
    return frozenset(symbol for symbol, _ in _REBER_EDGES.get(state, ()))


def is_reber(string: str) -> bool:
    """True when ``string`` is a complete Reber string."""
    try:
        return reber_states(string)[-1] == _REBER_FINAL
    except GrammarError:
        return False


def sample_reber(rng: np.random.Generator) -> str:
    """One Reber string; every branch of the automaton is taken with probability 1/2."""
    state, out = 0, []
    while state != _REBER_FINAL:
        edges = _REBER_EDGES[state]
        symbol, state = edges[rng.integers(len(edges))] if len(edges) > 1 else edges[0]
        out.append(symbol)
    return "".join(out)


def sample_embedded_reber(rng: np.random.Generator) -> str:
    """B T <Reber> T E or B P <Reber> P E, each with probability 1/2 (report fig. 9)."""
    outer = "TP"[rng.integers(2)]
    return f"B{outer}{sample_reber(rng)}{outer}E"


def embedded_reber_legal_next(prefix: str) -> frozenset[str]:
    """Legal next symbols after a prefix of an embedded Reber string."""
    if prefix == "":
        return frozenset("B")
    if prefix == "B":
        return frozenset("TP")
    if prefix[0] != "B" or prefix[1] not in "TP":
        raise GrammarError(f"{prefix!r} is not a prefix of an embedded Reber string")
    outer, inner = prefix[1], prefix[2:]
    if inner == "":
        return frozenset("B")
    states = reber_states(inner[: inner.find("E") + 1] if "E" in inner else inner)
    if states[-1] != _REBER_FINAL:
        return reber_legal_next(inner)
    tail = inner[inner.find("E") + 1 :]
    if tail == "":
        return frozenset(outer)
    if tail == outer:
        return frozenset("E")
    if tail == outer + "E":
        return frozenset()
    raise GrammarError(f"{prefix!r}: the outer symbol must repeat {outer!r} before the final E")


def is_embedded_reber(string: str) -> bool:
    """True when ``string`` is a complete embedded Reber string."""
    try:
        legal_after = [embedded_reber_legal_next(string[:i]) for i in range(len(string) + 1)]
    except GrammarError:
        return False
    steps_ok = all(string[i] in legal_after[i] for i in range(len(string)))
    return steps_ok and legal_after[-1] == frozenset()


@dataclass(frozen=True)
class Grammar:
    """A grammar the experiments can train on: alphabet, sampler and legal-next oracle."""

    name: str
    alphabet: str
    sample: object  # Callable[[np.random.Generator], str]
    legal_next: object  # Callable[[str], frozenset[str]]
    accepts: object  # Callable[[str], bool]

    def index(self, string: str) -> list[int]:
        return [self.alphabet.index(symbol) for symbol in string]

    def legal_mask(self, string: str) -> np.ndarray:
        """(len(string) - 1, |alphabet|) booleans: which symbols may follow each proper prefix."""
        mask = np.zeros((len(string) - 1, len(self.alphabet)), dtype=bool)
        for t in range(len(string) - 1):
            for symbol in self.legal_next(string[: t + 1]):
                mask[t, self.alphabet.index(symbol)] = True
        return mask


# The §1.3 warm-up language (0|1)01* framed by a begin marker ⊙ and an end marker ⊗ (TOY_ALPHABET).


def toy_legal_next(prefix: str) -> frozenset[str]:
    """Legal next symbols after a prefix of ⊙(0|1)01*⊗."""
    if prefix == "":
        return frozenset("⊙")
    if prefix[0] != "⊙":
        raise GrammarError(f"{prefix!r} must start with ⊙")
    body = prefix[1:]
    if body.endswith("⊗"):
        if not is_toy_word(prefix):
            raise GrammarError(f"{prefix!r} is not a word of (0|1)01*")
        return frozenset()
    if len(body) == 0:
        return frozenset("01")
    if len(body) == 1:
        if body not in "01":
            raise GrammarError(f"{prefix!r}: first letter must be 0 or 1")
        return frozenset("0")
    if body[0] not in "01" or body[1] != "0" or any(c != "1" for c in body[2:]):
        raise GrammarError(f"{prefix!r} is not a prefix of (0|1)01*")
    return frozenset("1⊗")


def is_toy_word(string: str) -> bool:
    """True for ⊙w⊗ with w in (0|1)01*."""
    body = string[1:-1]
    return (
        len(string) >= 4
        and string[0] == "⊙"
        and string[-1] == "⊗"
        and body[0] in "01"
        and body[1] == "0"
        and all(c == "1" for c in body[2:])
    )


def sample_toy(rng: np.random.Generator, continue_probability: float = 0.5) -> str:
    """⊙ x 0 1^n ⊗ with x uniform in {0, 1} and n geometric (each extra 1 with the given probability)."""
    ones = 0
    while rng.random() < continue_probability:
        ones += 1
    return "⊙" + "01"[rng.integers(2)] + "0" + "1" * ones + "⊗"


REBER = Grammar("reber", REBER_ALPHABET, sample_reber, reber_legal_next, is_reber)
EMBEDDED_REBER = Grammar(
    "embedded_reber", REBER_ALPHABET, sample_embedded_reber, embedded_reber_legal_next, is_embedded_reber
)
TOY = Grammar("toy", TOY_ALPHABET, sample_toy, toy_legal_next, is_toy_word)
GRAMMARS: dict[str, Grammar] = {g.name: g for g in (REBER, EMBEDDED_REBER, TOY)}


def sample_disjoint_sets(
    grammar: Grammar, rng: np.random.Generator, n_train: int, n_test: int, max_tries: int = 1_000_000
) -> tuple[list[str], list[str]]:
    """Training strings as the grammar produces them, and test strings that never occur in training."""
    train = [grammar.sample(rng) for _ in range(n_train)]
    seen = set(train)
    test: list[str] = []
    for _ in range(max_tries):
        if len(test) == n_test:
            return train, test
        candidate = grammar.sample(rng)
        if candidate not in seen:
            test.append(candidate)
    raise RuntimeError(f"could not draw {n_test} {grammar.name} test strings outside the training set")


def prefixes_by_state(strings: Sequence[str]) -> dict[int, list[str]]:
    """Group the distinct proper Reber prefixes of ``strings`` by the automaton state they reach."""
    groups: dict[int, list[str]] = {}
    for string in strings:
        for end in range(1, len(string)):
            prefix = string[:end]
            state = reber_states(prefix)[-1]
            if prefix not in groups.setdefault(state, []):
                groups[state].append(prefix)
    return groups
