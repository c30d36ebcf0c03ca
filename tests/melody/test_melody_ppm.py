"""The PPM* model: hand-computed toy cases, proper distributions, and the lazily grown context trie against a
brute-force table of every context."""

from __future__ import annotations

import math
import random

import pytest

from rnnmem.melody.ppm import PPM, PPMConfig, SystemConfig, combine, cross_entropy, predict

A, B = 0, 1


def test_escape_c_by_hand() -> None:
    # Alphabet {a, b}, trained on "abab", escape C, no update exclusion, unbounded order.
    # Next symbol after the history "a": the contexts seen are "" (a:2, b:2) and "a" (b:2); "a" is the shortest
    # deterministic context, so blending starts there.
    #   order 1 "a":  n = 2, t = 1, w = 2/3        -> b += 2/3 * 2/2 = 2/3;              escape 1/3
    #   order 0 "":   excluded {b}: n = 2 (a only), t = 2, w = 2/4 = 1/2
    #                 -> a += 1/3 * 1/2 * 2/2 = 1/6,  b += 1/3 * 1/2 * 2/2 = 1/6;      escape 1/6
    #   order -1:     1 / (|A| + 1 - types at order 0) = 1 / (2 + 1 - 2) = 1  -> a, b += 1/6 * 1 = 1/6
    #   sums: a = 1/6 + 1/6 = 1/3, b = 2/3 + 1/6 + 1/6 = 1; normalised: a = 1/4, b = 3/4
    model = PPM(2, PPMConfig(escape="c"))
    model.add_sequence([A, B, A, B])
    assert model.distribution([A]) == pytest.approx([0.25, 0.75])
    # With the empty history only order 0 and -1 are used: n = 4, t = 2, w = 2/3 -> a, b += 2/3 * 1/2 = 1/3;
    # escape 1/3 -> a, b += 1/3 * 1: equal, so 1/2 each.
    assert model.distribution([]) == pytest.approx([0.5, 0.5])


def test_escape_x_by_hand() -> None:
    # Trained on "aab", escape X (t = symbols seen once + 1), empty history:
    #   order 0: counts a:2, b:1; n = 3, t = 1 + 1 = 2, w = 3/5 -> a += 3/5 * 2/3 = 2/5, b += 3/5 * 1/3 = 1/5
    #   order -1: escape 2/5, 1 / (2 + 1 - 2) = 1 -> a = 2/5 + 2/5 = 4/5, b = 1/5 + 2/5 = 3/5
    #   normalised by 7/5: a = 4/7, b = 3/7
    model = PPM(2, PPMConfig(escape="x", update_exclusion=True))
    model.add_sequence([A, A, B])
    assert model.distribution([]) == pytest.approx([4 / 7, 3 / 7])


def test_untrained_model_is_uniform() -> None:
    assert PPM(5, PPMConfig(escape="x", update_exclusion=True)).distribution([]) == pytest.approx([0.2] * 5)


# --- brute force: every context of every length in a dict -------------------------------------------------------


def _reference_tables(sequences, update_exclusion):
    counts: dict[tuple, dict[int, int]] = {}
    for seq in sequences:
        for i, s in enumerate(seq):
            chain = [tuple(seq[i - k : i]) for k in range(i + 1)]
            for ctx in chain:
                counts.setdefault(ctx, {})
            table = {}
            for ctx in chain:
                table[ctx] = counts[ctx]
            if not update_exclusion:
                for ctx in chain:
                    table[ctx][s] = table[ctx].get(s, 0) + 1
            else:
                for ctx in reversed(chain):
                    if s in table[ctx]:
                        table[ctx][s] += 1
                        break
                    table[ctx][s] = 1
    return counts


def _reference_distribution(full, excl, history, size, config: PPMConfig):
    chain = [()]
    for k in range(1, len(history) + 1):
        ctx = tuple(history[-k:])
        if ctx not in full:
            break
        chain.append(ctx)
    if config.order_bound is None:
        det = [k for k in range(1, len(chain)) if len(full[chain[k]]) == 1]
        top, selected = (det[0], det[0] < len(chain) - 1) if det else (len(chain) - 1, False)
    else:
        top = min(len(chain) - 1, config.order_bound)
        selected = len(chain) - 1 > config.order_bound
    p = [0.0] * size
    escape, excluded = 1.0, {}
    for level, ctx in enumerate(reversed(chain[: top + 1])):
        use_full = not config.update_exclusion or (level == 0 and selected)
        counts = full.get(ctx, {}) if use_full else excl.get(ctx, {})
        types = len(counts) if config.escape == "c" else 1 + sum(c == 1 for c in counts.values())
        n = sum(c for s, c in counts.items() if s not in excluded)
        w = n / (n + types) if n + types else 0.0
        for s, c in counts.items():
            if n:
                p[s] += escape * w * c / n
        excluded, escape = counts, escape * (1 - w)
    root = full.get((), {})
    p = [x + escape / (size + 1 - len(root)) for x in p]
    return [x / sum(p) for x in p]


@pytest.mark.parametrize(
    "config", [PPMConfig("c", False), PPMConfig("x", True), PPMConfig("c", False, 2), PPMConfig("x", True, 1)]
)
def test_lazy_trie_matches_brute_force(config: PPMConfig) -> None:
    rng = random.Random(7)
    size = 4
    motif = [rng.randrange(size) for _ in range(6)]
    sequences = [
        [*motif[: rng.randrange(7)], *(rng.randrange(size) for _ in range(rng.randrange(3, 12)))] for _ in range(12)
    ]
    model = PPM(size, config)
    seen = []
    for seq in sequences:
        model.start_sequence()
        for i, s in enumerate(seq):
            full = _reference_tables([*seen, seq[:i]], False)
            excl = _reference_tables([*seen, seq[:i]], True)
            got = model.distribution(seq[:i])
            assert got == pytest.approx(_reference_distribution(full, excl, seq[:i], size, config), abs=1e-12)
            model.add(s)
        seen.append(seq)


def test_distributions_are_proper() -> None:
    rng = random.Random(1)
    sequences = [[rng.randrange(6) for _ in range(rng.randrange(5, 30))] for _ in range(20)]
    for config in (PPMConfig("c"), PPMConfig("x", True), PPMConfig("c", exclusion=False)):
        model = PPM(8, config)  # two symbols never seen
        for seq in sequences:
            model.add_sequence(seq)
        for seq in sequences[:5]:
            for i in range(len(seq)):
                d = model.distribution(seq[:i])
                assert math.isclose(sum(d), 1.0, abs_tol=1e-12) and min(d) > 0


@pytest.mark.parametrize("combination", ["geometric", "arithmetic"])
def test_combine_is_proper_and_favours_the_sharper_model(combination: str) -> None:
    sharp, flat = [0.85, 0.05, 0.05, 0.05], [0.25, 0.25, 0.25, 0.25]
    mixed = combine([sharp, flat], bias=2.0, combination=combination)
    assert math.isclose(sum(mixed), 1.0) and min(mixed) > 0
    assert 0.25 < mixed[0] < 0.85 and mixed[0] > 0.5  # the low-entropy model weighs more
    assert combine([sharp, sharp], 7.0, combination) == pytest.approx(sharp)


def test_cross_entropy_one_value_per_test_note() -> None:
    train = [[60, 62, 64, 62, 60], [60, 64, 67, 64, 60]]
    test = [[60, 62, 64, 65], [67, 64]]
    bits = cross_entropy(train, test, alphabet=range(60, 68))
    assert bits.shape == (6,) and (bits > 0).all()
    models = predict(train, test, alphabet=range(60, 68), config=SystemConfig(ltm_plus=False))
    assert set(models) == {"ltm", "stm", "both"}
    # the STM has seen nothing before the first note: uniform over the 8 pitches
    assert models["stm"][0] == pytest.approx(3.0)
