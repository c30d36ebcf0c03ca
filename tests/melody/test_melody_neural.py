"""The neural next-pitch model on tiny settings: proper distributions (heads combined, PPM mixed), augmentation
confined to the training melodies, determinism, and learning a trivially predictable corpus."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from rnnmem.melody import neural
from rnnmem.melody.corpus import Melody, Note
from rnnmem.melody.ppm_dist import ppm_distributions

TINY = neural.NeuralSettings(hidden=16, embed=4, epochs=1, patience=2, batch_size=4, shifts=(-2, 0, 2), combine="mix")


def _melody(pitches: list[int], tonic: int = 0, mode: str = "major", bwv: int = 0) -> Melody:
    notes = [Note(p, 1.0, float(i), float(i % 4), i == len(pitches) - 1) for i, p in enumerate(pitches)]
    return Melody(bwv, tonic, mode, "4/4", notes)


def _toy_corpus(n: int = 20) -> list[Melody]:
    """Every melody is the same rising-and-falling scale: after a few melodies, each next pitch is certain."""
    tune = [60, 62, 64, 65, 67, 65, 64, 62, 60, 62, 64, 65, 67, 69, 67, 65, 64, 62, 60]
    return [_melody(tune, bwv=i) for i in range(n)]


def _random_corpus(n: int = 20, seed: int = 0) -> list[Melody]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pitches = (62 + np.cumsum(rng.integers(-3, 4, rng.integers(6, 15)))).clip(57, 79).tolist()
        out.append(_melody(pitches, tonic=int(rng.integers(12)), mode=("major", "minor")[i % 2], bwv=i))
    return out


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_distributions_are_proper_with_heads_and_ppm() -> None:
    melodies = _random_corpus()
    space = neural.pitch_space(melodies, TINY.shifts)
    options = neural.training_options(melodies, list(range(14)), space, TINY.shifts)
    val = [neural.encode(melodies[i], space.low, space.size, 0, i) for i in range(14, 17)]
    test = [neural.encode(melodies[i], space.low, space.size, 0, i) for i in range(17, 20)]
    model, _ = neural.train_model(options, val, space, TINY, seed=0)
    comps = neural.components(model, space, test)
    ppm = ppm_distributions([m.pitches for m in melodies[:17]], [m.pitches for m in melodies[17:]], space.alphabet)
    for comp, e, p in zip(comps, test, ppm, strict=True):
        assert set(comp) == {"pitch", "interval", "degree"}
        for name, dist in comp.items():
            assert dist.shape == (len(e), len(space.alphabet))  # every note, the first included
            assert np.allclose(dist.sum(axis=1), 1.0) and (dist >= 0).all()
            assert name == "interval" or (dist > 0).all()  # the interval head: 0 beyond an octave
        combined = neural.combine_heads(comp, (0.5, 0.3, 0.2))
        assert np.allclose(combined.sum(axis=1), 1.0) and (combined > 0).all()
        assert np.allclose(p.sum(axis=1), 1.0) and (p > 0).all()
        assert np.allclose((0.85 * combined + 0.15 * p).sum(axis=1), 1.0)
    fused, _ = neural.train_model(options, val, space, replace(TINY, combine="logits", epochs=1), seed=0)
    for comp, e in zip(neural.components(fused, space, test), test, strict=True):
        assert set(comp) == {"pitch"} and comp["pitch"].shape == (len(e), len(space.alphabet))
        assert np.allclose(comp["pitch"].sum(axis=1), 1.0) and (comp["pitch"] > 0).all()
    # the interval head's mapping gives no mass to a pitch more than an octave from the previous one
    first = comps[0]["interval"]
    prev = melodies[17].pitches[0]
    far = [j for j, a in enumerate(space.alphabet) if abs(a - prev) > neural.MAX_INTERVAL]
    if far:
        assert np.all(first[1, far] == 0)


def test_augmentation_only_touches_training_melodies() -> None:
    melodies = _random_corpus(30)
    folds = [i % 10 for i in range(30)]
    space = neural.pitch_space(melodies, (-6, 0, 6))
    for k in range(10):
        train, val, test = neural.split_fold(folds, k)
        assert not set(train) & (set(val) | set(test)) and not set(val) & set(test)
        assert all(folds[i] == k for i in test) and all(folds[i] == (k + 1) % 10 for i in val)
        options = neural.training_options(melodies, train, space, (-6, 0, 6))
        assert {e.melody for opts in options for e in opts} == set(train)
        assert {e.shift for opts in options for e in opts} == {-6, 0, 6}
        # no transposed note is dropped: the network's range holds every shift
        assert all(len(e) == len(melodies[e.melody].notes) for opts in options for e in opts)


def test_transposition_moves_pitch_and_key_not_intervals_or_degrees() -> None:
    m = _melody([60, 64, 67, 72], tonic=0)
    a, b = neural.encode(m, 50, 40, 0), neural.encode(m, 50, 40, 5)
    assert (b.pitch_t - a.pitch_t == 5).all() and b.tonic == 5
    assert (a.int_t == b.int_t).all() and (a.deg_t == b.deg_t).all() and (a.int_in == b.int_in).all()
    assert a.int_t[0] == neural.IGNORE and a.prev[0] == -1 and a.pitch_in[0] == 40  # first note: from the start


def test_context_inputs_come_from_the_past() -> None:
    notes = [Note(60, 1.0, 0.0, 3.0, False), Note(62, 2.0, 1.0, 0.0, True), Note(64, 1.0, 3.0, 2.0, False)]
    e = neural.encode(Melody(0, 0, "major", "4/4", notes), 50, 40)
    # step 1 reads note 0 (a pickup at beat 3, one quarter long): the next note starts at 0; step 2: at 2.0
    assert e.next_pos_in.tolist() == [neural.N_POS - 1, 0, 8]
    assert e.phrase_in.tolist() == [neural.N_PHRASE - 1, 1, 0]  # note 1 ends a phrase
    assert neural._bar_length("3/4") == 3.0 and neural._bar_length("6/8") == 3.0 and neural._bar_length("") == 4.0


def test_same_seed_same_bits() -> None:
    melodies = _random_corpus(20)
    folds = [i % 10 for i in range(20)]
    settings = neural.NeuralSettings(
        hidden=8, embed=4, epochs=2, patience=2, batch_size=4, shifts=(-1, 0, 1), seeds=(3,), ppm=True,
        ppm_grid=(0.0, 0.5),
        refit=True,
    )  # fmt: skip
    runs = [neural.benchmark_neural(melodies, folds, settings, test_folds=[0, 1]) for _ in range(2)]
    for name, model in runs[0]["models"].items():
        assert model["mean"] == runs[1]["models"][name]["mean"]
        assert model["bits"] == runs[1]["models"][name]["bits"]
    assert set(runs[0]["models"]) >= {"seed3", "seed3_pitch", "ppm", "seed3+ppm"}
    assert runs[0]["notes"] == sum(len(melodies[i].notes) for i in range(20) if folds[i] in (0, 1))


def test_learns_a_predictable_corpus() -> None:
    melodies = _toy_corpus()
    folds = [i % 10 for i in range(20)]
    settings = neural.NeuralSettings(
        hidden=16, embed=8, epochs=12, patience=12, batch_size=8, lr=3e-2, shifts=(0,), seeds=(0, 1), dropout=0.0
    )
    report = neural.benchmark_neural(melodies, folds, settings, test_folds=[0])
    uniform = math.log2(len({p for m in melodies for p in m.pitches}))
    assert report["models"]["ensemble"]["mean"] < 0.5 * uniform
    assert report["models"]["seed0"]["mean"] < 0.5 * uniform
