"""The Kneser–Ney n-gram baseline (rnnmem.lm.ngram): normalisation, a hand-checked bigram, order selection."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rnnmem.lm.ngram import BEGIN_ID, END_ID, UNK_ID, KneserNeyLM, modified_discounts, select_order

V = 9  # UNK, BEGIN, END and six ordinary tokens


def toy_corpus(n_seqs: int = 40, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n_seqs):
        body = rng.integers(3, V - 1, size=int(rng.integers(1, 12))).tolist()  # token V - 1 never occurs
        seqs.append([BEGIN_ID, *body, END_ID])
    seqs.append([BEGIN_ID, 3, UNK_ID, 4, END_ID])
    return seqs


def markov_corpus(history: int, n_seqs: int, seed: int, vocab: int = 10, length: int = 30) -> list[list[int]]:
    """Sequences of a Markov chain whose next token depends on the previous ``history`` tokens (BEGIN-padded)."""
    rng = np.random.default_rng(1234)  # the chain itself: the same for every seed
    symbols = np.arange(3, vocab)
    keys = itertools.product([BEGIN_ID, *symbols.tolist()], repeat=history)
    table = {key: rng.dirichlet(np.full(len(symbols), 0.3)) for key in keys}
    rng_data = np.random.default_rng(seed)
    seqs = []
    for _ in range(n_seqs):
        seq = [BEGIN_ID]
        context = [BEGIN_ID] * history
        for _ in range(length):
            token = int(rng_data.choice(symbols, p=table[tuple(context[-history:])]))
            seq.append(token)
            context.append(token)
        seqs.append([*seq, END_ID])
    return seqs


def contexts_to_try(seqs: list[list[int]]) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(7)
    seen = [tuple(s[:i]) for s in seqs[:10] for i in range(1, len(s))]
    unseen = [tuple(rng.integers(0, V, size=int(rng.integers(0, 6))).tolist()) for _ in range(60)]
    return [(), (BEGIN_ID,), (V - 1,), (UNK_ID, UNK_ID), (END_ID, 3), *seen, *unseen]


@pytest.mark.parametrize("discount", [None, 0.75])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_distributions_sum_to_one_without_zeros(order, discount):
    seqs = toy_corpus()
    model = KneserNeyLM(order, V, discount=discount).fit(seqs)
    for context in contexts_to_try(seqs):
        p = model.distribution(context)
        assert p.shape == (V,)
        assert abs(p.sum() - 1.0) < 1e-9, context
        assert p[BEGIN_ID] == 0.0  # BEGIN is never predicted
        assert np.all(np.delete(p, BEGIN_ID) > 0), context
        for token in range(V):
            assert model.prob(context, token) == pytest.approx(p[token], abs=1e-14)


def test_bigram_probabilities_by_hand():
    # ids: UNK 0, BEGIN 1, END 2, a 3, b 4. Bigrams: (B,a) x2, (a,b), (b,E), (a,a), (a,E).
    model = KneserNeyLM(2, 5, discount=0.5).fit([[1, 3, 4, 2], [1, 3, 3, 2]])
    # Unigram level: continuation counts a: {B, a} -> 2, b: {a} -> 1, E: {b, a} -> 2; total 5, three types.
    uniform = 1 / 4  # over UNK, END, a, b
    gamma1 = 0.5 * 3 / 5
    p1 = {0: gamma1 * uniform, 2: 1.5 / 5 + gamma1 * uniform, 3: 1.5 / 5 + gamma1 * uniform,
          4: 0.5 / 5 + gamma1 * uniform}
    for token, p in p1.items():
        assert model.prob((0,), token) == pytest.approx(p)  # unseen context: the unigram level
    # Context a: counts b 1, a 1, E 1 (total 3, three types); context B: a 2.
    assert model.prob((3,), 4) == pytest.approx((1 - 0.5) / 3 + 0.5 * 3 / 3 * p1[4])
    assert model.prob((3,), 4) == pytest.approx(1 / 6 + 0.0875)
    assert model.prob((1,), 3) == pytest.approx((2 - 0.5) / 2 + 0.5 / 2 * p1[3])
    assert model.prob((), 3) == pytest.approx(0.84375)  # an empty context is the start: padded with BEGIN
    assert model.prob((1,), 4) == pytest.approx(0.5 / 2 * p1[4])
    assert model.prob((4, 4, 4, 4), 0) == pytest.approx(0.5 / 1 * p1[0])  # context b: only E seen, gamma 1/2
    assert model.prob((1,), 1) == 0.0


def test_modified_discounts():
    y = 10 / (10 + 2 * 4)
    assert modified_discounts({1: 10, 2: 4, 3: 2, 4: 1}) == pytest.approx(
        (1 - 2 * y * 4 / 10, 2 - 3 * y * 2 / 4, 3 - 4 * y * 1 / 2))
    assert modified_discounts({}) == (0.75, 0.75, 0.75)
    d = modified_discounts({1: 3, 2: 5})  # D(1) < 0 and n_3 = 0: both fall back to Y
    assert d[0] == pytest.approx(3 / 13) and d[2] == pytest.approx(3 / 13)
    assert all(0 < x <= r for r, x in zip((1, 2, 3), d, strict=True))


def test_higher_order_fits_training_data_better():
    seqs = markov_corpus(history=2, n_seqs=60, seed=3)
    per_token = []
    for order in range(1, 6):
        total, tokens = KneserNeyLM(order, 10).fit(seqs).nll(seqs)
        per_token.append(total / tokens)
    assert all(b < a for a, b in itertools.pairwise(per_token)), per_token


@pytest.mark.parametrize("history", [1, 2])
def test_select_order_on_markov_chain(history):
    train = markov_corpus(history, n_seqs=200, seed=1)
    valid = markov_corpus(history, n_seqs=60, seed=2)
    best, table = select_order(train, valid, 10)
    assert list(table.columns) == ["order", "valid_nll", "valid_tokens"]
    assert table["order"].tolist() == [1, 2, 3, 4, 5, 6]
    assert (table["valid_tokens"] == 60 * 31).all()
    true_order = history + 1
    assert true_order <= best <= true_order + 1, table
    nll = table.set_index("order")["valid_nll"]
    assert nll[true_order] < nll[true_order - 1] - 0.1  # the right order helps clearly ...
    assert nll[6] < 1.15 * nll[true_order]  # ... and the smoothing keeps longer contexts from hurting much


def test_nll_counts_tokens_and_matches_probabilities():
    seqs = toy_corpus()
    model = KneserNeyLM(3, V).fit(seqs)
    test = [[BEGIN_ID, 3, 4, END_ID], [BEGIN_ID, END_ID], [BEGIN_ID]]
    total, tokens = model.nll(test)
    assert tokens == 3 + 1 + 0  # BEGIN is not predicted, END is
    expected = -(math.log(model.prob((), 3)) + math.log(model.prob((BEGIN_ID, 3), 4))
                 + math.log(model.prob((3, 4), END_ID)) + math.log(model.prob((BEGIN_ID,), END_ID)))
    assert total == pytest.approx(expected)
    assert model.sequence_log_prob([BEGIN_ID]) == 0.0
    with pytest.raises(ValueError):
        model.nll([[3, 4, END_ID]])  # must start with BEGIN
    with pytest.raises(ValueError):
        model.nll([[BEGIN_ID, 3, BEGIN_ID]])  # BEGIN is never predicted
    with pytest.raises(ValueError):
        model.nll([[BEGIN_ID, V]])


def test_deterministic():
    seqs = toy_corpus()
    a, b = KneserNeyLM(4, V).fit(seqs), KneserNeyLM(4, V).fit(list(reversed(seqs)))
    assert a.nll(seqs) == b.nll(seqs)
    assert a.discounts == b.discounts
    for context in contexts_to_try(seqs)[:20]:
        np.testing.assert_array_equal(a.distribution(context), b.distribution(context))
    assert select_order(seqs, seqs[:5], V)[1].equals(select_order(seqs, seqs[:5], V)[1])


def test_sample():
    model = KneserNeyLM(3, V).fit(toy_corpus())
    seq = model.sample(np.random.default_rng(0), temperature=1.0, max_len=50)
    assert seq[0] == BEGIN_ID and BEGIN_ID not in seq[1:] and len(seq) <= 51
    assert seq == model.sample(np.random.default_rng(0), temperature=1.0, max_len=50)
    assert seq[-1] == END_ID or len(seq) == 51
    short = model.sample(np.random.default_rng(1), temperature=0.5, max_len=3)
    assert len(short) <= 4 and short[0] == BEGIN_ID
    with pytest.raises(ValueError):
        model.sample(np.random.default_rng(0), temperature=0.0)


def test_unfitted_and_bad_arguments():
    with pytest.raises(RuntimeError):
        KneserNeyLM(2, V).prob((), 3)
    with pytest.raises(ValueError):
        KneserNeyLM(0, V)
    with pytest.raises(ValueError):
        KneserNeyLM(2, V, discount=1.5)
