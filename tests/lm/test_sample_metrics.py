"""Musical metrics of sampled sopranos, the copy check, and the sample figures."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from rnnmem.chorales.dataset import BEGIN, END
from rnnmem.core.figure_io import plt, save_figure
from rnnmem.lm.figures import fig_sample_metrics, fig_samples
from rnnmem.lm.metrics import (
    HISTOGRAMS,
    CopyIndex,
    ends_on_tonic,
    histogram,
    intervals,
    metrics_table,
    note_windows,
    overlap_and_kl,
    phrase_endings,
    reference_metrics,
    sample_metrics,
    tonic_triad,
)
from rnnmem.lm.render import tokens_to_chorale

MELODIES = [
    "g'4 | e'4. d'8 c'4 d'4 | e'2~ e'4 c'4 \\ | d'4 e'4 f'4 g'4 | a'2 g'2 \\ | c''4 b'4 a'4 g'4 | f'2 e'4 \\ d'4 "
    "| c'1 \\",
    "c'4 | c'2 g'4 | e'4. d'8 c'4 | c'4. d'8 e'4 | d'2 \\ e'4 | g'2 f'4 | e'4 d'2 | c'2 \\",
    "e'4 | a'4 g'4 f'4 e'4 | d'2 c'4 \\ c''4 | b'8 a'8 g'4 a'4 b'4 | c''2 g'4 \\ r4 | e'4 f'4 d'2 | c'1 \\",
]


def chorales(texts: list[str], mode: str = "major"):
    return [tokens_to_chorale(t.split(), i, "", mode=mode)[0] for i, t in enumerate(texts)]


def tokens(texts: list[str]) -> list[list[str]]:
    return [[BEGIN, *t.split(), END] for t in texts]


def test_a_set_against_itself() -> None:
    melodies = chorales(MELODIES)
    metrics = sample_metrics(melodies, tokens(MELODIES), melodies, tokens(MELODIES[:1]))
    for kind in HISTOGRAMS:
        assert metrics[f"{kind}_overlap"] == pytest.approx(1.0)
        assert metrics[f"{kind}_kl"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["melodies"] == 3 and metrics["ended"] == 1.0 and metrics["bars_filled"] == 1.0
    assert metrics["ends_on_tonic"] == 1.0
    assert metrics["copy_longest_run_max"] == len(MELODIES[0].split())  # the first one is the training set
    reference = reference_metrics(melodies, tokens(MELODIES), tokens(MELODIES[:1]))
    assert math.isnan(reference["pitch_class_overlap"]) and reference["pitch_range"] == metrics["pitch_range"]


def test_histograms_and_distances() -> None:
    melody = chorales(["c'4 e'4 g'4 c''4 | b'8 c''8 c'2."])[0]
    assert intervals(melody) == [4, 3, 5, -1, 1, -12]
    assert histogram([melody], "pitch_class") == {0: 4, 4: 1, 7: 1, 11: 1}
    assert histogram([melody], "note_length") == {Fraction(1, 4): 4, Fraction(1, 8): 2, Fraction(3, 4): 1}
    wide = chorales(["c'4 c'''4"])[0]
    assert intervals(wide) == [12]  # clipped from +24
    overlap, kl = overlap_and_kl({0: 1}, {7: 1}, "pitch_class")
    assert overlap == 0 and kl > 5
    overlap, kl = overlap_and_kl({0: 1, 7: 1}, {0: 3, 7: 1}, "pitch_class")
    assert overlap == pytest.approx(0.75)
    assert kl == pytest.approx(0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25), rel=1e-2)  # ε smoothing
    assert all(math.isnan(v) for v in overlap_and_kl({}, {0: 1}, "pitch_class"))


def test_tonic_and_phrase_endings() -> None:
    on_c, on_g = chorales(["e'4 d'4 \\ e'4 c'4 \\", "e'4 c'4 \\ a'4 g'4"])
    assert ends_on_tonic(on_c) and not ends_on_tonic(on_g)
    assert ends_on_tonic(chorales(["g'4 c''4"])[0])  # any octave
    assert phrase_endings(on_c) == (2, 1) and phrase_endings(on_g) == (1, 1)
    minor = chorales(["c'4 ees'4 \\ g'4 e'4 \\"], mode="minor")[0]
    assert tonic_triad(minor) == {0, 3, 7} and phrase_endings(minor) == (2, 1)
    metrics = sample_metrics([on_c, on_g], tokens(["e'4 d'4 \\ e'4 c'4 \\", "e'4 c'4 \\ a'4 g'4"]), [on_c], [])
    assert metrics["ends_on_tonic"] == 0.5 and metrics["phrase_end_tonic_triad"] == pytest.approx(2 / 3)
    assert metrics["ended"] == 1.0


def test_bar_fill_counts_irregular_bars() -> None:
    text = "c'4 | c'4 d'4 e'4 f'4 | g'4 g'4 a'4 b'4 c''4 | c''4 b'4 a'4 g'4 | c'2. \\"
    metrics = sample_metrics(chorales([text]), [text.split()], chorales(MELODIES), tokens(MELODIES))
    assert metrics["bars_filled"] == pytest.approx(4 / 5)
    assert metrics["ended"] == 0.0


def test_copy_check_finds_a_planted_run() -> None:
    training = tokens(MELODIES)
    index = CopyIndex(training)
    planted = MELODIES[1].split()[5:16]  # 11 tokens: "e'4. d'8 c'4 | c'4. d'8 e'4 | d'2 \\ e'4"
    sample = [BEGIN, "fis''16", "gis''16", *planted, "fis''16", END]
    assert index.longest_copy(sample) == 11
    assert index.longest_copy([BEGIN, "fis''16", END]) == 0
    assert index.longest_copy(training[2]) == len(training[2]) - 2  # markers excluded
    # a run never spans two training sequences: the end of melody 0 then the start of melody 1
    joined = MELODIES[0].split()[-3:] + MELODIES[1].split()[:3]
    assert index.longest_copy(joined) == 3
    for melody in training:
        assert index.window_fraction(melody) == 1.0
    unrelated = [BEGIN, "cis'8", "dis'8", "fis'8", "gis'8", "ais'8", "cis''8", "dis''8", "fis''8", "gis''8", END]
    assert index.window_fraction(unrelated) == 0.0
    assert math.isnan(index.window_fraction(["c'4", "d'4"]))
    half = MELODIES[0].split()
    windows = note_windows(half)
    assert len(windows) == len([t for t in half if t[0] in "abcdefg"]) - 7
    assert all("~" not in note for w in windows for note in w)


def test_metrics_table_and_figures(tmp_path: Path) -> None:
    melodies = chorales(MELODIES)
    results = [("Bach (held-out)", None, reference_metrics(melodies, tokens(MELODIES), tokens(MELODIES[:1])))]
    for model, shift in (("Vanilla", 0), ("GRU", 1)):
        for temperature in (0.5, 1.0):
            texts = MELODIES[shift:] if temperature == 1.0 else MELODIES[:2]
            results.append((model, temperature, sample_metrics(chorales(texts), tokens(texts), melodies,
                                                               tokens(MELODIES[:1]))))
    table = metrics_table(results)
    assert list(table.columns[:2]) == ["model", "temperature"]
    assert len(table) == 5 and table["temperature"].isna().sum() == 1
    fig_sample_metrics(table, tmp_path / "metrics.png")
    assert (tmp_path / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    images = []
    for name, height in (("vanilla", 120), ("gru", 200)):
        fig = plt.figure(figsize=(6, height / 100))
        fig.text(0.5, 0.5, name, ha="center")
        save_figure(fig, tmp_path / f"{name}.png")
        images.append((f"{name} sample", tmp_path / f"{name}.png"))
    fig_samples(images, tmp_path / "fig21.png")
    assert (tmp_path / "fig21.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        fig_samples([], tmp_path / "none.png")


def test_key_finding_makes_transposed_samples_comparable() -> None:
    from dataclasses import replace

    from rnnmem.chorales.events import transpose_by
    from rnnmem.lm.keys import key_profiles

    minor_texts = ["c'4 | ees'4 d'4 c'4 g'4 | aes'2 g'4 \\ g'4 | f'4 ees'4 d'4 b4 | c'2. \\",
                   "g'4 | g'4 aes'4 g'4 f'4 | ees'2 d'2 \\ | ees'4 f'4 d'4 b4 | c'1 \\"]
    texts = MELODIES + minor_texts
    training = chorales(MELODIES) + chorales(minor_texts, mode="minor")
    profiles = key_profiles(training)
    reference = training
    in_c = chorales(texts)  # samples: parsed as C major whatever their key
    keys = ("pitch_class_overlap", "pitch_class_kl", "phrase_end_tonic_triad", "ends_on_tonic")

    # samples in C barely move: here not at all (every key found is c, the minor ones now minor)
    plain = sample_metrics(in_c, tokens(texts), reference, tokens(MELODIES[:1]))
    found = sample_metrics(in_c, tokens(texts), reference, tokens(MELODIES[:1]), profiles)
    assert found["key_shift_nonzero"] == 0.0 and "key_shift_nonzero" not in plain
    assert found["pitch_class_overlap"] == plain["pitch_class_overlap"] == pytest.approx(1.0)
    assert found["ends_on_tonic"] == plain["ends_on_tonic"] == 1.0
    assert found["phrase_end_tonic_triad"] >= plain["phrase_end_tonic_triad"]  # minor thirds now count

    # a copy moved into other keys and parsed as C major, like a sample of the modern regime
    moved = [replace(transpose_by(c, shift), key_tonic="c", mode="major")
             for c, shift in zip(in_c, (5, -3, 2, 7, -4), strict=True)]
    fixed = sample_metrics(moved, tokens(texts), reference, tokens(MELODIES[:1]), profiles)
    for key in keys:
        assert fixed[key] == pytest.approx(found[key]), key
    assert fixed["key_shift_nonzero"] == 1.0
    for kind in HISTOGRAMS[1:]:  # intervals and note lengths never depended on the key
        assert fixed[f"{kind}_overlap"] == pytest.approx(plain[f"{kind}_overlap"])
    # the bug fixed: measured against c, the moved copy looks far less like Bach
    broken = sample_metrics(moved, tokens(texts), reference, tokens(MELODIES[:1]))
    assert broken["pitch_class_overlap"] < fixed["pitch_class_overlap"] - 0.2
    assert broken["pitch_class_kl"] > fixed["pitch_class_kl"]
    assert broken["ends_on_tonic"] < fixed["ends_on_tonic"]
    assert broken["phrase_end_tonic_triad"] < fixed["phrase_end_tonic_triad"]
    # the reference baseline is measured in found keys too
    baseline = reference_metrics(reference, tokens(texts), tokens(MELODIES[:1]), profiles)
    assert baseline["key_shift_nonzero"] == 0.0 and math.isnan(baseline["pitch_class_overlap"])
    # the reference goes through the key finder too: a set equal to it matches it even where the finder moves
    # a melody (here one in G declared C major), so a model is not blamed for the finder's choices
    odd = [*in_c, replace(transpose_by(in_c[0], 7), key_tonic="c", mode="major")]
    itself = sample_metrics(odd, tokens([*texts, MELODIES[0]]), odd, tokens(MELODIES[:1]), profiles)
    assert itself["pitch_class_overlap"] == pytest.approx(1.0) and itself["key_shift_nonzero"] == pytest.approx(1 / 6)
