"""Key finding for sampled melodies: Krumhansl–Schmuckler with Bach's own profiles, and the move to C."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rnnmem.chorales.events import Chorale, transpose_by
from rnnmem.lm.keys import TONIC_NAMES, KeyProfiles, find_key, key_profiles, pitch_class_durations, to_found_key
from rnnmem.lm.metrics import ends_on_tonic, histogram, phrase_endings, tonic_triad
from rnnmem.lm.render import tokens_to_chorale

# Duration-weighted profiles of the 295 training chorales of the music21 corpus (rounded), c = 0.
BACH = KeyProfiles(
    major=np.array([0.198, 0.003, 0.176, 0.001, 0.17, 0.092, 0.012, 0.17, 0.003, 0.1, 0.005, 0.07]),
    minor=np.array([0.183, 0.009, 0.132, 0.147, 0.011, 0.153, 0.002, 0.175, 0.069, 0.01, 0.094, 0.013]),
)
C_MAJOR = (
    "g'4 | e'4. d'8 c'4 d'4 | e'2~ e'4 c'4 \\ | d'4 e'4 f'4 g'4 | a'2 g'2 \\ | c''4 b'4 a'4 g'4 | f'2 e'4 \\ d'4 "
    "| c'1 \\"
)
C_MINOR = "c'4 | ees'4 d'4 c'4 g'4 | aes'2 g'4 \\ g'4 | f'4 ees'4 d'4 b4 | c'2. \\"
A_MINOR = "a'4 | c''4 b'4 a'4 gis'4 | a'2 e'4 \\ e'4 | f'4 e'4 d'4 c'4 | b4 gis4 a2 \\"


def sample(text: str) -> Chorale:
    """A melody parsed like a sample: declared C major whatever its key."""
    return tokens_to_chorale(text.split())[0]


def as_sample(chorale: Chorale) -> Chorale:
    return replace(chorale, key_tonic="c", mode="major")


def test_c_major_and_a_transposed_copy() -> None:
    melody = sample(C_MAJOR)
    key = find_key(melody, BACH)
    assert (key.shift, key.mode) == (0, "major")
    moved, found = to_found_key(melody, BACH)
    assert found == key and moved.events == melody.events and moved.key_tonic == "c" and moved.mode == "major"

    up = as_sample(transpose_by(melody, 5))  # in F, but parsed as C major
    assert histogram([up], "pitch_class") != histogram([melody], "pitch_class")
    assert not ends_on_tonic(up) and ends_on_tonic(melody)
    key_up = find_key(up, BACH)
    assert (key_up.shift, key_up.mode, key_up.tonic) == (5, "major", "f")
    assert key_up.correlation == pytest.approx(key.correlation)
    normalised, _ = to_found_key(up, BACH)
    assert histogram([normalised], "pitch_class") == histogram([melody], "pitch_class")
    assert ends_on_tonic(normalised) == ends_on_tonic(melody)
    assert phrase_endings(normalised) == phrase_endings(melody)
    assert normalised.transposed_from == "f"
    # moved the nearer way: down 5 semitones, back to the same octave
    assert [e.pitch for e in normalised.notes] == [e.pitch for e in melody.notes]
    down = to_found_key(as_sample(transpose_by(melody, 7)), BACH)[0]  # G major: up 5 to c, not down 7
    assert [e.pitch for e in down.notes] == [e.pitch for e in transpose_by(melody, 12).notes]


def test_minor_melodies() -> None:
    c_minor = sample(C_MINOR)
    key = find_key(c_minor, BACH)
    assert (key.shift, key.mode) == (0, "minor")
    moved = to_found_key(c_minor, BACH)[0]
    assert moved.mode == "minor" and tonic_triad(moved) == {0, 3, 7}
    assert phrase_endings(moved) == (2, 2)  # g and c
    a_minor = sample(A_MINOR)
    assert tonic_triad(a_minor) == {0, 4, 7} and not ends_on_tonic(a_minor)
    key = find_key(a_minor, BACH)
    assert (key.shift, key.mode) == (9, "minor")
    moved = to_found_key(a_minor, BACH)[0]
    assert moved.mode == "minor" and moved.key_tonic == "c" and tonic_triad(moved) == {0, 3, 7}
    assert ends_on_tonic(moved) and phrase_endings(moved) == (2, 2)  # e and a: the fifth and the tonic
    assert phrase_endings(a_minor) == (2, 1)  # against C major only the e fits


def test_ties_and_melodies_without_a_key() -> None:
    periodic = np.array([4.0, 1, 2, 1, 3, 1] * 2)  # period 6: shifts s and s + 6 correlate equally
    same = KeyProfiles(periodic / periodic.sum(), periodic / periodic.sum())
    key = find_key(sample("d'4 d'4 e'4 fis'4 gis'4"), same)  # most like the profile moved up 2 (or 8)
    assert (key.shift, key.mode) == (2, "major")  # lowest shift, major before the equal minor
    assert find_key(sample("r4 | r2"), BACH) is None  # no notes
    chromatic = sample(" ".join(f"{p}'4" for p in TONIC_NAMES))
    assert find_key(chromatic, BACH) is None  # every pitch class lasts as long: no correlation
    rest = sample("r4 | r2")
    assert to_found_key(rest, BACH) == (rest, None)


def test_profiles_are_duration_weighted_per_mode_class() -> None:
    major = sample("c'2 e'4 g'4")  # durations c 1/2, e 1/4, g 1/4
    dorian = replace(sample("c'4 ees'4 d'2~ | d'4"), mode="dorian")  # tie merged: d 3/4
    profiles = key_profiles([major, dorian])
    assert profiles.major == pytest.approx(np.eye(12)[0] * 0.5 + np.eye(12)[4] * 0.25 + np.eye(12)[7] * 0.25)
    assert profiles.minor == pytest.approx((np.eye(12)[0] + np.eye(12)[3] + np.eye(12)[2] * 3) / 5)
    assert pitch_class_durations(dorian)[2] == pytest.approx(0.75)
    only_major = key_profiles([major])  # no minor-like chorale: minor keys are never found
    assert only_major.minor is None and only_major.major == pytest.approx(profiles.major)
    key = find_key(sample(C_MINOR), only_major)
    assert key.mode == "major"
    with pytest.raises(ValueError, match="no chorale"):
        key_profiles([sample("r4 | r2")])
    with pytest.raises(ValueError, match="not transposed to C"):
        key_profiles([major, replace(dorian, key_tonic="d")])


def test_signature_tonic_spells_the_key_with_the_fewer_accidentals() -> None:
    from music21 import key as m21key

    from rnnmem.chorales.events import lily_to_music21
    from rnnmem.lm.keys import Key

    for mode in ("major", "minor"):
        for shift in range(12):
            found = Key(shift, mode, 1.0)
            tonic = lily_to_music21(found.signature_tonic)
            assert tonic.pitchClass == shift  # the same tonic, only spelled for the signature
            assert abs(m21key.Key(tonic.name, mode).sharps) <= 6, (shift, mode)
    assert Key(8, "major", 1.0).signature_tonic == "aes" and Key(8, "minor", 1.0).signature_tonic == "gis"
    assert Key(1, "major", 1.0).signature_tonic == "des" and Key(1, "minor", 1.0).signature_tonic == "cis"


def test_spell_in_key_respells_every_note_at_its_own_pitch() -> None:
    from rnnmem.chorales.dataset import midi_number
    from rnnmem.lm.keys import spell_in_key

    def spelled(text: str, tonic: str, mode: str) -> list[str]:
        melody = sample(text)
        moved = spell_in_key(melody, tonic, mode)
        assert [midi_number(e.pitch) for e in moved.notes] == [midi_number(e.pitch) for e in melody.notes]
        assert (moved.key_tonic, moved.mode) == (tonic, mode)
        assert [e.duration for e in moved.events] == [e.duration for e in melody.events]
        return [e.pitch for e in moved.notes]

    # A flat major as a transposed-copy model spells it (sharps): under four flats
    assert spelled("gis'4 | gis'4 ais'4 c''4 cis''4 | dis''4 f''4 g''4 gis''4 | fis''2 \\", "aes", "major") == [
        "aes'", "aes'", "bes'", "c''", "des''", "ees''", "f''", "g''", "aes''", "ges''"]
    # minor: the raised sixth and seventh are sharps, the flat second a flat
    assert spelled("a'4 aes'4 ges'4 bes'4", "a", "minor") == ["a'", "gis'", "fis'", "bes'"]
    # a double sharp (F sharp major's raised tonic, F double sharp) made simple; octave marks follow the letter
    assert spelled("g'4 c''4 b4", "fis", "major") == ["g'", "bis'", "b"]
    assert spelled("c'4 e'4", "c", "major") == ["c'", "e'"]
