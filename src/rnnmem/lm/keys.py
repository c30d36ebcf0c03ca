"""The key of a sampled melody, found with Bach's own key profiles, and the melody moved to C in that key.

Krumhansl–Schmuckler key finding (Krumhansl 1990, *Cognitive Foundations of Musical Pitch*) with profiles taken
from Bach instead of listeners' ratings: a profile is the pooled pitch-class distribution (12 bins, c = 0, summing
to 1) of a set of chorales transposed to C, one for the major-like modes and one for the minor-like modes
(:data:`MINOR_THIRD_MODES`: a minor third above the tonic). A melody's key is the (tonic shift 0..11, mode) whose
profile, rotated up by the shift, has the highest Pearson correlation with the melody's own pitch-class
distribution; ties go to the lowest shift, major before minor.

Both the profiles and a melody's distribution weight each note (tied notes merged) by its duration, as
Krumhansl and Schmuckler's input vector does: the long notes of a chorale (phrase endings under fermatas, the
final note) sit on the tonic triad, so durations sharpen the tonic against passing tones. On the music21 corpus
(profiles of the 295 training chorales, all in C) the declared key (c, and the mode class) is found for 79 % of
the 76 valid and test sopranos with durations against 68 % with note counts (68 % against 66 % on the training
ones). A soprano alone is often ambiguous (a minor chorale dwelling on its fourth degree is found in F minor, a
major one on its dominant in G): so :mod:`rnnmem.lm.metrics` moves the reference melodies through the same key
finder as the samples.

:func:`to_found_key` moves a melody down by the found shift (the nearer way: at most 6 semitones down or 5 up, by
:func:`rnnmem.chorales.events.transpose_by`) so its tonic is c, and sets its mode (``major`` or ``minor``): the
pitch-class histogram, tonic triad and ends-on-tonic metrics of :mod:`rnnmem.lm.metrics` then use the found key.
:func:`spell_in_key` respells a melody for the found key's signature, for engraving samples
(:func:`rnnmem.lm.render.write_sample_files`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from rnnmem.chorales.dataset import merged_notes, midi_number
from rnnmem.chorales.events import Chorale, lily_to_music21, music21_to_lily, transpose_by

MINOR_THIRD_MODES = {"minor", "dorian", "phrygian", "aeolian", "locrian"}
KEY_MODES = ("major", "minor")  # the modes a found key can have, in tie-break order
# The tonic of each shift, spelled as rnnmem.chorales.events.shift_interval spells pitch classes.
TONIC_NAMES = ("c", "cis", "d", "ees", "e", "f", "fis", "g", "gis", "a", "bes", "b")
# A found key's tonic as its key signature spells it: the spelling with the fewer accidentals (F sharp major and
# E flat minor, six either way, as Bach's time wrote them).
SIGNATURE_TONICS = {"major": ("c", "des", "d", "ees", "e", "f", "fis", "g", "aes", "a", "bes", "b"),
                    "minor": ("c", "cis", "d", "ees", "e", "f", "fis", "g", "gis", "a", "bes", "b")}
# How a melody in a key spells each pitch class, as an interval above the tonic (semitones -> interval): the
# scale's own notes, and for the others the chromatic notes tonal music uses most (raised 1st, 4th and 5th, the
# flat 7th; in minor the flat 2nd and the raised 3rd, 6th and 7th).
KEY_SPELLINGS = {
    "major": ("P1", "A1", "M2", "m3", "M3", "P4", "A4", "P5", "A5", "M6", "m7", "M7"),
    "minor": ("P1", "m2", "M2", "m3", "M3", "P4", "A4", "P5", "m6", "M6", "m7", "M7"),
}
TIE_TOLERANCE = 1e-9  # correlations this close count as equal (rotations sum in different orders)


@dataclass(frozen=True)
class KeyProfiles:
    """Duration-weighted pitch-class distributions (12 values, c = 0, each summing to 1) of chorales in C: one of
    the major-like and one of the minor-like modes (see the module); None for a class without chorales (a small
    test configuration), whose keys are then never found."""

    major: np.ndarray | None
    minor: np.ndarray | None


@dataclass(frozen=True)
class Key:
    """A found key: tonic ``shift`` semitones above c (0..11), ``mode`` one of :data:`KEY_MODES`, and the
    correlation of the melody with the rotated profile."""

    shift: int
    mode: str
    correlation: float

    @property
    def tonic(self) -> str:
        return TONIC_NAMES[self.shift]

    @property
    def signature_tonic(self) -> str:
        """The tonic as the key signature spells it (``aes`` major, ``gis`` minor: see SIGNATURE_TONICS)."""
        return SIGNATURE_TONICS[self.mode][self.shift]


def pitch_class_durations(chorale: Chorale) -> np.ndarray:
    """The melody's duration in whole notes per pitch class (12 values, c = 0; tied notes merged, rests
    skipped)."""
    weights = np.zeros(12)
    for pitch, duration, _ in merged_notes(chorale):
        weights[midi_number(pitch) % 12] += float(duration)
    return weights


def key_profiles(chorales: Iterable[Chorale]) -> KeyProfiles:
    """The profiles of chorales transposed to C (e.g. the training split): their pitch-class durations pooled per
    mode class (minor-like: ``mode`` in :data:`MINOR_THIRD_MODES`; None for a class without notes). ValueError if
    a chorale is not in C, or if no chorale has notes."""
    totals = {"major": np.zeros(12), "minor": np.zeros(12)}
    for chorale in chorales:
        if midi_number(chorale.key_tonic) % 12 != 0:
            raise ValueError(f"chorale {chorale.number} is in {chorale.key_tonic}, not transposed to C")
        totals["minor" if chorale.mode in MINOR_THIRD_MODES else "major"] += pitch_class_durations(chorale)
    if not any(total.sum() > 0 for total in totals.values()):
        raise ValueError("no chorale with notes to build key profiles from")
    profiles = {mode: total / total.sum() if total.sum() > 0 else None for mode, total in totals.items()}
    return KeyProfiles(profiles["major"], profiles["minor"])


def _standardised(values: np.ndarray) -> np.ndarray | None:
    centred = values - values.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(centred, axis=-1, keepdims=True)
    return None if np.any(norm == 0) else centred / norm


def find_key(chorale: Chorale, profiles: KeyProfiles) -> Key | None:
    """The (shift, mode) whose rotated profile correlates best with the melody's pitch-class durations (ties:
    lowest shift, major first); None without notes or when every pitch class lasts equally long (no
    correlation is defined)."""
    melody = _standardised(pitch_class_durations(chorale))
    if melody is None:
        return None
    # in tie-break order: the profile of each mode with its tonic moved from c up to pitch class `shift`
    keys = [(shift, mode) for shift in range(12) for mode in KEY_MODES if getattr(profiles, mode) is not None]
    if not keys:
        raise ValueError("no key profile")
    candidates = _standardised(np.array([np.roll(getattr(profiles, mode), shift) for shift, mode in keys]))
    if candidates is None:
        raise ValueError("a key profile is flat: every pitch class equally likely")
    correlations = candidates @ melody
    best = int(np.flatnonzero(correlations >= correlations.max() - TIE_TOLERANCE)[0])
    return Key(*keys[best], float(correlations[best]))


def to_found_key(chorale: Chorale, profiles: KeyProfiles) -> tuple[Chorale, Key | None]:
    """The melody moved so its found tonic is c (the nearer way, see the module), with ``key_tonic`` c, ``mode``
    the found one and ``transposed_from`` the found tonic; a melody without a key (:func:`find_key`) is returned
    as it is, with None."""
    key = find_key(chorale, profiles)
    if key is None:
        return chorale, None
    moved = chorale if key.shift == 0 else transpose_by(chorale, -key.shift if key.shift <= 6 else 12 - key.shift)
    return replace(moved, key_tonic="c", mode=key.mode, transposed_from=key.tonic), key


def spell_in_key(chorale: Chorale, tonic: str, mode: str) -> Chorale:
    """The melody with every note spelled as a melody in ``tonic`` ``mode`` (``major`` or ``minor``) spells it
    (:data:`KEY_SPELLINGS`; a double sharp or flat made simple), each at its own pitch, ``key_tonic`` and ``mode``
    set: a model trained on transposed copies spells a pitch class one way in every key (``gis`` for an A flat
    major tonic), which under the found key signature would need an accidental on most notes."""
    from music21 import interval, pitch

    root = lily_to_music21(tonic)
    names = {}
    for name in KEY_SPELLINGS[mode]:
        spelled = root.transpose(interval.Interval(name))
        if spelled.accidental is not None and abs(spelled.accidental.alter) > 1:
            spelled = spelled.simplifyEnharmonic()
        names[spelled.pitchClass] = spelled.name

    def respelled(note: str) -> str:
        midi = midi_number(note)
        spelled = pitch.Pitch(names[midi % 12], octave=4)
        spelled.octave += (midi - round(spelled.ps)) // 12
        return music21_to_lily(spelled)

    events = [replace(e, pitch=respelled(e.pitch)) if e.kind == "note" else e for e in chorale.events]
    return replace(chorale, events=events, key_tonic=tonic, mode=mode)
