"""Grammars of the report: Reber (fig. 6), embedded Reber (fig. 9) and the §1.3 toy language."""

from __future__ import annotations

import numpy as np
import pytest

from rnnmem.reber.grammars import (
    EMBEDDED_REBER,
    REBER,
    TOY,
    Grammar,
    GrammarError,
    embedded_reber_legal_next,
    is_embedded_reber,
    is_reber,
    is_toy_word,
    prefixes_by_state,
    reber_legal_next,
    reber_states,
    sample_disjoint_sets,
    sample_embedded_reber,
    sample_toy,
    toy_legal_next,
)

N_SAMPLES = 2000


@pytest.mark.parametrize("grammar", [REBER, EMBEDDED_REBER], ids=lambda g: g.name)
def test_samples_are_accepted_and_follow_legal_next(grammar: Grammar) -> None:
    rng = np.random.default_rng(2016)
    for _ in range(N_SAMPLES):
        string = grammar.sample(rng)
        assert grammar.accepts(string), string
        assert string[0] == "B" and string[-1] == "E"
        for i, symbol in enumerate(string):
            assert symbol in grammar.legal_next(string[:i]), (string, i)
        assert grammar.legal_next(string) == frozenset(), string


def test_samples_cover_both_branches() -> None:
    rng = np.random.default_rng(1)
    strings = {REBER.sample(rng) for _ in range(500)}
    assert {s[1] for s in strings} == {"T", "P"}
    # The S and T self-loops of states 2 and 3 are taken at least once.
    assert any("SS" in s for s in strings) and any("TT" in s for s in strings)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", "B"),
        ("B", "TP"),
        ("BT", "SX"),
        ("BP", "TV"),
        ("BTS", "SX"),
        ("BTX", "XS"),
        ("BPT", "TV"),
        ("BPV", "PV"),
        ("BPVP", "XS"),
        ("BTXX", "TV"),
        ("BTXS", "E"),
        ("BPVV", "E"),
        ("BTXSE", ""),
    ],
)
def test_reber_legal_next_by_hand(prefix: str, expected: str) -> None:
    assert reber_legal_next(prefix) == frozenset(expected)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", "B"),
        ("B", "TP"),
        ("BT", "B"),
        ("BP", "B"),
        ("BTB", "TP"),
        ("BPBT", "SX"),
        ("BPBTX", "XS"),
        ("BPBTXS", "E"),
        ("BPBTXSE", "P"),
        ("BTBTXSE", "T"),
        ("BTBTXSET", "E"),
        ("BPBPVVEP", "E"),
        ("BTBTXSETE", ""),
    ],
)
def test_embedded_legal_next_by_hand(prefix: str, expected: str) -> None:
    assert embedded_reber_legal_next(prefix) == frozenset(expected)


def test_embedded_penultimate_equals_second() -> None:
    rng = np.random.default_rng(9)
    outers = set()
    for _ in range(N_SAMPLES):
        string = sample_embedded_reber(rng)
        assert string[-2] == string[1]
        assert is_reber(string[2:-2])
        outers.add(string[1])
    assert outers == {"T", "P"}


@pytest.mark.parametrize("string", ["BTXSE", "BPVVE", "BTSSXXTVPSE", "BPTTVPXVVE"])
def test_reber_accepts(string: str) -> None:
    assert is_reber(string)
    assert REBER.accepts(string)


@pytest.mark.parametrize("string", ["BTXE", "BPE", "TXSE", "BTXS", "BTXSEE", "", "B", "BTXSX"])
def test_reber_rejects(string: str) -> None:
    assert not is_reber(string)


@pytest.mark.parametrize("string", ["BTBTXSETE", "BPBPVVEPE"])
def test_embedded_accepts(string: str) -> None:
    assert is_embedded_reber(string)


@pytest.mark.parametrize(
    "string",
    ["BTBTXSEPE", "BPBTXSETE", "BTBTXSET", "BTBTXSE", "BTXSE", "BTBTXETE", "BTBTXSETEE", "BEBTXSEEE"],
)
def test_embedded_rejects(string: str) -> None:
    assert not is_embedded_reber(string)


@pytest.mark.parametrize("prefix", ["T", "BX", "BTT", "BTXSEP"])
def test_reber_illegal_prefix_raises(prefix: str) -> None:
    with pytest.raises(GrammarError):
        reber_legal_next(prefix)


@pytest.mark.parametrize("prefix", ["T", "BX", "BTT", "BTBTXSEP", "BTBTXSETEX"])
def test_embedded_illegal_prefix_raises(prefix: str) -> None:
    with pytest.raises(GrammarError):
        embedded_reber_legal_next(prefix)


@pytest.mark.parametrize("grammar", [REBER, EMBEDDED_REBER, TOY], ids=lambda g: g.name)
def test_sample_disjoint_sets(grammar: Grammar) -> None:
    train, test = sample_disjoint_sets(grammar, np.random.default_rng(5), 40, 30)
    assert len(train) == 40 and len(test) == 30
    assert not set(train) & set(test)
    assert all(grammar.accepts(s) for s in train + test)
    again = sample_disjoint_sets(grammar, np.random.default_rng(5), 40, 30)
    assert again == (train, test)
    other = sample_disjoint_sets(grammar, np.random.default_rng(6), 40, 30)
    assert other != (train, test)


def test_sample_disjoint_sets_gives_up() -> None:
    single = Grammar("single", "ab", lambda rng: "ab", lambda prefix: frozenset(), lambda s: s == "ab")
    with pytest.raises(RuntimeError, match="single"):
        sample_disjoint_sets(single, np.random.default_rng(0), 3, 1, max_tries=50)


def test_toy_samples_are_words() -> None:
    rng = np.random.default_rng(3)
    strings = [sample_toy(rng) for _ in range(N_SAMPLES)]
    for string in strings:
        assert is_toy_word(string), string
        assert TOY.accepts(string)
        for i, symbol in enumerate(string):
            assert symbol in toy_legal_next(string[:i]), (string, i)
        assert toy_legal_next(string) == frozenset()
    assert {s[1] for s in strings} == {"0", "1"}
    assert max(len(s) for s in strings) > 6


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("", "⊙"), ("⊙", "01"), ("⊙1", "0"), ("⊙0", "0"), ("⊙10", "1⊗"), ("⊙00", "1⊗"), ("⊙1011", "1⊗"),
     ("⊙10⊗", "")],
)
def test_toy_legal_next_by_hand(prefix: str, expected: str) -> None:
    assert toy_legal_next(prefix) == frozenset(expected)


@pytest.mark.parametrize("prefix", ["0", "1⊙", "⊙2", "⊙⊗", "⊙11", "⊙0⊗", "⊙100", "⊙1010", "⊙1⊗", "⊙10⊗1"])
def test_toy_invalid_prefix_raises(prefix: str) -> None:
    with pytest.raises(GrammarError):
        toy_legal_next(prefix)


@pytest.mark.parametrize("prefix", ["⊙20", "⊙⊗0"])
def test_toy_invalid_first_letter_in_longer_prefix_raises(prefix: str) -> None:
    with pytest.raises(GrammarError):
        toy_legal_next(prefix)


@pytest.mark.parametrize("string", ["⊙10", "⊙1⊗", "⊙11⊗", "⊙101⊗0", "010⊗", "⊙210⊗", "⊙⊗"])
def test_toy_rejects(string: str) -> None:
    assert not is_toy_word(string)


def test_prefixes_by_state() -> None:
    rng = np.random.default_rng(4)
    strings = [REBER.sample(rng) for _ in range(200)]
    groups = prefixes_by_state(strings)
    # The empty prefix and the complete strings are excluded; "B" alone leads to state 1.
    assert 0 not in groups and 7 not in groups
    assert groups[1] == ["B"]
    assert set(groups) == {1, 2, 3, 4, 5, 6}
    every = [p for group in groups.values() for p in group]
    assert len(every) == len(set(every))
    assert set(every) == {s[:end] for s in strings for end in range(1, len(s))}
    for state, group in groups.items():
        legal = {reber_legal_next(p) for p in group}
        assert len(legal) == 1, state
        for prefix in group:
            assert reber_states(prefix)[-1] == state
            # Same state: the same suffixes complete the prefix into a Reber string.
            assert is_reber(prefix + "E") == is_reber(group[0] + "E")
