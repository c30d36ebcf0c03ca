r"""How far two chorale sources (e.g. the music21 corpus and the LilyPond files) agree on the sopranos.

Each chorale is transposed to C and reduced to its notes as ``(pitch, duration, fermata)``: tied notes are merged
into one note of the summed duration (so ``c'2~ c'4`` equals ``c'2.``, whichever way a source spells it), bar lines
and rests are ignored (sources disagree on pickup rests and bar placement more than on the melody), and pitches
keep their spelling (``fis'`` differs from ``ges'``). Two sources agree on a chorale when these sequences are
identical; otherwise the table gives the exact Levenshtein distance between them (a changed pitch, duration or
fermata costs 1, so does an added or missing note) and the first position where they differ.

Sources can also disagree on the *tonic* they transpose from, not on the melody: the LilyPond files declare modal
keys by their final (``\key e \phrygian`` → e), music21 by the key signature (C major / A minor), and a few
music21 editions are in another key. ``same_up_to_transposition`` tells those apart: the two note sequences are
equal once both are moved so that their first notes coincide (same intervals, durations and fermatas).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import pandas as pd

from rnnmem.chorales import events
from rnnmem.chorales.dataset import levenshtein, merged_notes, midi_number
from rnnmem.chorales.events import Chorale, ChoraleError

COLUMNS = ["number", "bwv_a", "bwv_b", "key_a", "key_b", "identical", "same_up_to_transposition", "edit_distance",
           "notes_a", "notes_b", "first_difference"]

Note = tuple[str, Fraction, bool]


def compared_notes(chorale: Chorale) -> list[Note]:
    """The transposed chorale's notes as ``(pitch, duration, fermata)``, ties merged (see the module)."""
    return merged_notes(events.transpose_to_c(chorale))


def relative_notes(notes: Sequence[Note]) -> list[tuple[int, Fraction, bool]]:
    """Semitones from the first note, duration, fermata: a transposition-invariant view of the melody."""
    if not notes:
        return []
    first = midi_number(notes[0][0])
    return [(midi_number(pitch) - first, duration, fermata) for pitch, duration, fermata in notes]


def note_text(note: Note) -> str:
    """``a'4``, ``c''2.\\fermata``; a merged duration with no single LilyPond value as ``c'*5/8``."""
    pitch, duration, fermata = note
    try:
        text = pitch + events.lily_duration(duration)
    except ChoraleError:
        text = f"{pitch}*{duration}"
    return text + ("\\fermata" if fermata else "")


def first_difference(a: Sequence[Note], b: Sequence[Note]) -> str:
    """``"note 12: a'4 vs a'8"`` at the first position (from 1) where the sequences differ, ``"note 40: c'2 vs
    end"`` when one stops early, ``""`` when they are identical."""
    for index, (x, y) in enumerate(zip(a, b, strict=False), start=1):
        if x != y:
            return f"note {index}: {note_text(x)} vs {note_text(y)}"
    if len(a) == len(b):
        return ""
    index = min(len(a), len(b)) + 1
    x = note_text(a[index - 1]) if len(a) >= index else "end"
    y = note_text(b[index - 1]) if len(b) >= index else "end"
    return f"note {index}: {x} vs {y}"


def compare_sources(a: list[Chorale], b: list[Chorale]) -> pd.DataFrame:
    """One row per chorale number present in both lists, by number, with the columns of :data:`COLUMNS` (see the
    module for what is compared)."""
    by_number_a, by_number_b = _by_number(a, "a"), _by_number(b, "b")
    rows = []
    for number in sorted(by_number_a.keys() & by_number_b.keys()):
        ca, cb = by_number_a[number], by_number_b[number]
        na, nb = compared_notes(ca), compared_notes(cb)
        distance = 0 if na == nb else levenshtein(na, nb)
        rows.append({"number": number, "bwv_a": ca.bwv, "bwv_b": cb.bwv,
                     "key_a": f"{ca.key_tonic} {ca.mode}", "key_b": f"{cb.key_tonic} {cb.mode}",
                     "identical": na == nb, "same_up_to_transposition": relative_notes(na) == relative_notes(nb),
                     "edit_distance": distance, "notes_a": len(na), "notes_b": len(nb),
                     "first_difference": first_difference(na, nb)})
    return pd.DataFrame(rows, columns=COLUMNS).astype({"number": int, "identical": bool,
                                                       "same_up_to_transposition": bool, "edit_distance": int,
                                                       "notes_a": int, "notes_b": int})


def _by_number(chorales: list[Chorale], side: str) -> dict[int, Chorale]:
    result: dict[int, Chorale] = {}
    for chorale in chorales:
        if chorale.number in result:
            raise ChoraleError(f"source {side} has chorale number {chorale.number} twice")
        result[chorale.number] = chorale
    return result


def agreement_summary(table: pd.DataFrame) -> dict[str, int | float]:
    """``count`` of compared chorales, how many are ``identical`` and its ``rate``, and the same for
    ``same_up_to_transposition`` (0.0 rates when none compared)."""
    count = len(table)
    identical = int(table["identical"].sum()) if count else 0
    relative = int(table["same_up_to_transposition"].sum()) if count else 0
    return {"count": count, "identical": identical, "rate": identical / count if count else 0.0,
            "same_up_to_transposition": relative, "rate_up_to_transposition": relative / count if count else 0.0}
