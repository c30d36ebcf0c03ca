"""Parsing a chorale from music21's bundled corpus (offline), the JSON cache and tune groups."""

from __future__ import annotations

import pytest

from rnnmem.melody import corpus, tunes
from rnnmem.melody.corpus import Melody, Note

pytest.importorskip("music21")


def test_corpus_has_all_of_bwv_253_to_438() -> None:
    paths = corpus.corpus_paths()
    assert sorted(paths) == list(corpus.BWV_RANGE)  # 186 numbers; Pearce's Dataset 2 has 185 of them


def test_small_chorale_ties_merged_rests_skipped() -> None:
    # BWV 323 (tonus peregrinus): 23 written soprano notes, the last tied over a bar line -> 22 notes
    melody = corpus.parse_melody(corpus.corpus_paths()[323], 323)
    assert len(melody.notes) == 22
    assert (melody.tonic, melody.mode, melody.time_signature) == (6, "minor", "4/4")
    last = melody.notes[-1]
    assert (last.pitch, last.duration, last.offset, last.bar_offset, last.fermata) == (66, 8.0, 36.0, 0.0, True)
    assert melody.notes[9].fermata and not melody.notes[8].fermata
    assert melody.grace_dropped == 0 and melody.corrections == []


def test_bwv_254_octave_error_corrected_or_kept() -> None:
    path = corpus.corpus_paths()[254]
    fixed = corpus.parse_melody(path, 254)
    written = corpus.parse_melody(path, 254, fix_octave_errors=False)
    assert written.pitches[10:13] == [65, 57, 65] and fixed.pitches[10:13] == [65, 69, 65]
    assert fixed.corrections and not written.corrections
    assert fixed.notes[11].bar_offset == 3.0  # the pickup after the fermata, on beat 4


def _melody(bwv: int, pitches: list[int]) -> Melody:
    notes = [Note(p, 1.0, float(i), float(i % 4), i == len(pitches) - 1) for i, p in enumerate(pitches)]
    return Melody(bwv, 0, "major", "4/4", notes)


def test_json_round_trip(tmp_path) -> None:
    melodies = [_melody(1, [60, 62, 64]), _melody(2, [67, 65])]
    melodies[1].corrections.append("note 0: MIDI 55 -> 67 (octave error)")
    path = tmp_path / "cache" / "melodies.json"
    corpus.write_json(melodies, path)
    assert corpus.read_json(path) == melodies
    assert [p.name for p in path.parent.iterdir()] == ["melodies.json"]  # no temporary file left


def test_tune_groups_are_transposition_invariant() -> None:
    tune = [60, 62, 64, 65, 67, 65, 64, 62, 60, 59, 60]
    other = [72, 71, 69, 71, 72, 74, 76, 74, 72, 76, 79]
    variant = [p + 5 for p in tune[:-1]] + [67, 65]  # transposed, the ending changed
    melodies = [_melody(1, tune), _melody(2, other), _melody(3, variant)]
    assert tunes.tune_groups(melodies) == [0, 1, 0]
    assert tunes.groups_by_bwv(melodies, [0, 1, 0]) == [[1, 3]]
