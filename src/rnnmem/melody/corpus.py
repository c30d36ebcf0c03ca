"""The soprano melodies of BWV 253–438 from music21's bundled corpus, as plain Python data.

Pearce (2005) and IDyOM call these 185 chorale melodies "Dataset 2" (9,227 notes). music21 ships all 186 numbers
(BWV 277, 281 and 366 also as Humdrum ``.krn``; the MusicXML file ``bwv<N>.mxl`` is read). The soprano is the part
named Soprano, else the first part. How the score becomes a list of notes, and why:

- Tied notes are one note: a note whose tie is ``stop`` or ``continue`` lengthens the previous note (its pitch must
  match); the merged note keeps the first piece's onset and has a fermata if any piece has one. A pitch model
  predicts note onsets, and a tie is notation (a bar line inside a note), not a new onset.
- Rests are skipped: they are not notes (Pearce's sequences are note sequences).
- Repeats stay as written, not unfolded: IDyOM's Kern/MIDI imports do not unfold them either, and unfolding would
  double-count a section in both training and test data.
- Grace notes are dropped (three in the corpus: two in BWV 299, one in BWV 315): they have no duration of their
  own, and Pearce's encodings have none. :attr:`Melody.grace_dropped` counts them.
- The fermata flag is kept per note (phrase ends: an input for models that use more than pitch).
- BWV 254's A3 (MIDI 57), a pickup between two F4s after a fermata, is corrected to A4 (69): the same pickup is
  D4 at the start, a leap of a minor sixth up to F4 is foreign to these melodies, and it is the corpus's only
  pitch below C4; with it corrected the corpus has 21 distinct pitches, as Pearce's Dataset 2 has
  (``fix_octave_errors=False`` keeps it as written). :attr:`Melody.corrections` says what was changed.
- The key is the first key signature's tonic (pitch class) in the mode the file declares (all 186 declare one;
  music21's key analysis is the fallback).
- ``offset`` is the onset in quarter notes from the start of the part as written; ``bar_offset`` the onset in
  quarter notes from the start of its bar, counting a pickup's missing beats (music21's ``paddingLeft``), so a
  pickup of one beat in 4/4 is at 3.0.

The note count (9,336 with the grace notes dropped) is above Pearce's 9,227: his Dataset 2 has 185 melodies and
comes from another encoding (see the issue's notes).

Parsing 186 files takes ~20 s; :func:`write_json` / :func:`read_json` cache :func:`load_melodies`'s result.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

BWV_RANGE = range(253, 439)
# (BWV, index of the note among the merged notes, pitch as written, corrected pitch): octave errors in the files
OCTAVE_FIXES = ((254, 11, 57, 69),)
JSON_VERSION = 1


@dataclass(frozen=True)
class Note:
    """One note (ties merged): MIDI pitch, duration and onsets in quarter notes, fermata."""

    pitch: int
    duration: float
    offset: float
    bar_offset: float
    fermata: bool


@dataclass
class Melody:
    """A chorale soprano: its notes and the score's key (tonic pitch class 0–11, ``major``/``minor``)."""

    bwv: int
    tonic: int
    mode: str
    time_signature: str
    notes: list[Note]
    grace_dropped: int = 0
    corrections: list[str] = field(default_factory=list)

    @property
    def pitches(self) -> list[int]:
        return [n.pitch for n in self.notes]


def corpus_paths() -> dict[int, Path]:
    """BWV number -> the bundled MusicXML file ``bwv<N>.mxl``, for BWV 253–438 (offline)."""
    from music21 import corpus

    paths: dict[int, Path] = {}
    for path in corpus.getComposer("bach"):
        match = re.fullmatch(r"bwv(\d+)\.mxl", Path(path).name)
        if match and int(match.group(1)) in BWV_RANGE:
            paths[int(match.group(1))] = Path(path)
    return dict(sorted(paths.items()))


def _soprano(score):
    parts = list(score.parts)
    for part in parts:
        if any(str(n).strip().lower() == "soprano" for n in (part.id, part.partName) if n):
            return part
    return parts[0]


def _key(score, part) -> tuple[int, str]:
    from music21 import key

    signatures = list(part.recurse().getElementsByClass(key.KeySignature))
    if signatures and isinstance(signatures[0], key.Key) and signatures[0].mode in ("major", "minor"):
        return signatures[0].tonic.pitchClass, signatures[0].mode
    analysed = score.analyze("key")
    mode = analysed.mode if analysed.mode in ("major", "minor") else "major"
    if signatures:
        return signatures[0].asKey(mode).tonic.pitchClass, mode
    return analysed.tonic.pitchClass, mode


def melody_from_score(score, bwv: int, fix_octave_errors: bool = True) -> Melody:
    """The soprano of a parsed chorale as a :class:`Melody` (treatment: see the module docstring)."""
    from music21 import expressions, meter, stream

    part = _soprano(score)
    tonic, mode = _key(score, part)
    signatures = list(part.recurse().getElementsByClass(meter.TimeSignature))
    notes: list[Note] = []
    grace = 0
    for measure in part.getElementsByClass(stream.Measure):
        pad = float(measure.paddingLeft)
        for element in measure.recurse().notes:
            if element.duration.isGrace:
                grace += 1
                continue
            pitch = max(p.midi for p in element.pitches)  # a chord (none in these sopranos): its top note
            within = float(element.getOffsetInHierarchy(measure))
            fermata = any(isinstance(x, expressions.Fermata) for x in element.expressions)
            duration = float(element.duration.quarterLength)
            if element.tie is not None and element.tie.type in ("stop", "continue") and notes:
                previous = notes[-1]
                if previous.pitch != pitch:
                    raise ValueError(f"BWV {bwv}: a tie joins {previous.pitch} to {pitch}")
                notes[-1] = Note(
                    previous.pitch,
                    previous.duration + duration,
                    previous.offset,
                    previous.bar_offset,
                    previous.fermata or fermata,
                )
                continue
            notes.append(Note(pitch, duration, float(measure.offset) + within, pad + within, fermata))
    corrections = []
    if fix_octave_errors:
        for fix_bwv, index, written, corrected in OCTAVE_FIXES:
            if fix_bwv == bwv and index < len(notes) and notes[index].pitch == written:
                old = notes[index]
                notes[index] = Note(corrected, old.duration, old.offset, old.bar_offset, old.fermata)
                corrections.append(f"note {index}: MIDI {written} -> {corrected} (octave error)")
    time_signature = signatures[0].ratioString if signatures else ""
    return Melody(bwv, tonic, mode, time_signature, notes, grace, corrections)


def parse_melody(path: str | os.PathLike[str], bwv: int, fix_octave_errors: bool = True) -> Melody:
    """Parse one file (~0.1 s) into a :class:`Melody`."""
    from music21 import converter

    # forceSource: parse the file itself, never music21's cached pickle of it (a pickle can run code).
    return melody_from_score(converter.parse(str(path), forceSource=True), bwv, fix_octave_errors)


def _parse_job(job: tuple[str, int, bool]) -> Melody:
    return parse_melody(*job)


def load_melodies(bwvs: list[int] | None = None, fix_octave_errors: bool = True, workers: int = 0) -> list[Melody]:
    """The melodies of ``bwvs`` (default: all of BWV 253–438 present), in BWV order; ``workers`` > 1 parses in
    a process pool."""
    paths = corpus_paths()
    chosen = sorted(paths) if bwvs is None else list(bwvs)
    missing = [b for b in chosen if b not in paths]
    if missing:
        raise FileNotFoundError(f"music21's corpus has no bwv<N>.mxl for BWV {missing}")
    jobs = [(str(paths[b]), b, fix_octave_errors) for b in chosen]
    if workers > 1 and len(jobs) > 8:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(_parse_job, jobs, chunksize=8))
    return [_parse_job(job) for job in jobs]


def to_json(melodies: list[Melody]) -> dict:
    return {"version": JSON_VERSION, "melodies": [asdict(m) for m in melodies]}


def from_json(data: dict) -> list[Melody]:
    if data.get("version") != JSON_VERSION:
        raise ValueError(f"melody cache version {data.get('version')!r}, expected {JSON_VERSION}")
    melodies = []
    for m in data["melodies"]:
        notes = [Note(**n) for n in m["notes"]]
        melodies.append(Melody(**{**m, "notes": notes}))
    return melodies


def write_json(melodies: list[Melody], path: str | os.PathLike[str]) -> None:
    """Write the melodies atomically (a temporary file beside ``path``, then ``os.replace``)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(to_json(melodies), handle, separators=(",", ":"))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_json(path: str | os.PathLike[str]) -> list[Melody]:
    with open(path, encoding="utf-8") as handle:
        return from_json(json.load(handle))


def cached_melodies(path: str | os.PathLike[str], workers: int = 2) -> list[Melody]:
    """The melodies from the JSON cache at ``path``, parsing (and writing it) when it is missing."""
    if os.path.exists(path):
        return read_json(path)
    melodies = load_melodies(workers=workers)
    write_json(melodies, path)
    return melodies


def summary(melodies: list[Melody]) -> dict:
    """Counts to compare with Pearce's Dataset 2 (185 melodies, 9,227 notes, 21 pitches)."""
    pitches = sorted({p for m in melodies for p in m.pitches})
    return {
        "melodies": len(melodies),
        "notes": sum(len(m.notes) for m in melodies),
        "grace_dropped": sum(m.grace_dropped for m in melodies),
        "distinct_pitches": len(pitches),
        "pitches": pitches,
        "major": sum(m.mode == "major" for m in melodies),
        "minor": sum(m.mode == "minor" for m in melodies),
        "corrections": {m.bwv: m.corrections for m in melodies if m.corrections},
    }
