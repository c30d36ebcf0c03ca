"""The normalized intermediate every chorale source ends in, and the report's figure-20 text format.

A chorale is its Riemenschneider number, BWV, title, time signature(s), declared key and mode, and the soprano
as a list of events: notes (absolute LilyPond pitch such as ``fis'``, exact duration in whole notes, tie to
the next note, fermata), rests, and bar lines. Pitches are spelled (``fis`` is not ``ges``) because
transposition and the tokens keep the spelling.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from functools import cache
from typing import TYPE_CHECKING, Any

from rnnmem.core.errors import RnnmemError

# music21 takes ~0.4 s to import: it loads in the functions that spell pitches, so the jobs that only need this
# module's types and markers (training, scoring) start without it.
if TYPE_CHECKING:
    from music21 import interval, pitch

NOTE_NAMES = "cdefgab"
MODES = ("major", "minor", "dorian", "phrygian", "lydian", "mixolydian", "aeolian", "ionian", "locrian")
LILY_ACCIDENTALS = {"": "", "is": "#", "isis": "##", "es": "-", "eses": "--"}
M21_ACCIDENTALS = {v: k for k, v in LILY_ACCIDENTALS.items()}


class ChoraleError(RnnmemError, ValueError):
    """A chorale cannot be used; the message names the file or number and the problem."""


@dataclass(frozen=True)
class Event:
    """``kind`` is note, rest or bar; pitch only for notes; duration in whole notes (a quarter is 1/4)."""

    kind: str
    pitch: str | None = None
    duration: Fraction = Fraction(0)
    tie: bool = False
    fermata: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration"] = str(self.duration)
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> Event:
        return Event(data["kind"], data.get("pitch"), Fraction(data.get("duration", "0")), data.get("tie", False),
                     data.get("fermata", False))


@dataclass(frozen=True)
class Chorale:
    number: int
    bwv: str
    title: str
    source: str
    time_signatures: list[str]
    key_tonic: str  # LilyPond note name without octave, e.g. "g", "fis", "bes"
    mode: str
    events: list[Event]
    transposed_from: str | None = None  # the original tonic, once transposed to C
    notes_info: dict[str, Any] = field(default_factory=dict)

    @property
    def notes(self) -> list[Event]:
        return [e for e in self.events if e.kind == "note"]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["events"] = [e.to_json() for e in self.events]
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> Chorale:
        return Chorale(
            number=data["number"], bwv=data["bwv"], title=data["title"], source=data["source"],
            time_signatures=list(data["time_signatures"]), key_tonic=data["key_tonic"], mode=data["mode"],
            events=[Event.from_json(e) for e in data["events"]], transposed_from=data.get("transposed_from"),
            notes_info=dict(data.get("notes_info", {})),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True)


# --- pitches ----------------------------------------------------------------------------------------------------

# How a source treats written repeats, and what it does with a file it cannot use (config: chorales.repeats,
# chorales.on_bad_file); both sources accept the same values.
REPEAT_MODES = ("as_written", "unfold")
ON_BAD_FILE = ("skip", "error")


def check_source_options(repeats: str, on_bad_file: str | None = None) -> None:
    """ValueError for a ``repeats`` or ``on_bad_file`` value no source knows."""
    if repeats not in REPEAT_MODES:
        raise ValueError(f"repeats must be one of {REPEAT_MODES}, not {repeats!r}")
    if on_bad_file is not None and on_bad_file not in ON_BAD_FILE:
        raise ValueError(f"on_bad_file must be one of {ON_BAD_FILE}, not {on_bad_file!r}")


def lily_to_music21(name: str) -> pitch.Pitch:
    """``fis'`` -> F#4 (LilyPond's c' is middle C, C4)."""
    from music21 import pitch

    base = name.rstrip("',")
    octave = 3 + name.count("'") - name.count(",")
    step, accidental = base[0], base[1:]
    if step not in NOTE_NAMES or accidental not in LILY_ACCIDENTALS:
        raise ChoraleError(f"not a LilyPond pitch: {name!r}")
    return pitch.Pitch(f"{step.upper()}{LILY_ACCIDENTALS[accidental]}{octave}")


def music21_to_lily(p: pitch.Pitch) -> str:
    """F#4 -> ``fis'``; microtones and triple accidentals are refused."""
    accidental = p.accidental.modifier if p.accidental is not None else ""
    if accidental not in M21_ACCIDENTALS:
        raise ChoraleError(f"pitch {p.nameWithOctave} has an accidental LilyPond names cannot spell")
    marks = p.octave - 3
    return p.step.lower() + M21_ACCIDENTALS[accidental] + ("'" * marks if marks > 0 else "," * -marks)


def tonic_name(p: pitch.Pitch) -> str:
    """LilyPond name of a pitch class, e.g. B-flat -> ``bes``."""
    from music21 import pitch

    return music21_to_lily(pitch.Pitch(p.name + "3"))


def interval_to_c(tonic: str) -> interval.Interval:
    """LilyPond's ``\\transpose <tonic> c``: the tonic moves down to the c at or below it."""
    from music21 import interval, pitch

    start = lily_to_music21(tonic)  # octave 3, like the c of \\transpose
    return interval.Interval(start, pitch.Pitch("C3"))


def transpose_to_c(chorale: Chorale) -> Chorale:
    """The chorale with every note moved by the interval that takes its declared tonic down to c."""
    if chorale.transposed_from is not None:
        return chorale
    step = interval_to_c(chorale.key_tonic)
    events = [
        replace(e, pitch=music21_to_lily(lily_to_music21(e.pitch).transpose(step))) if e.kind == "note" else e
        for e in chorale.events
    ]
    return replace(chorale, events=events, key_tonic="c", transposed_from=chorale.key_tonic)


def shift_interval(semitones: int) -> interval.Interval:
    """The one music21 interval of a shift: ``interval.Interval(semitones)``, a chromatic interval (music21 names
    ±1 a minor second, ±2 a major second, …). Moved by it, a pitch gets music21's default spelling of its pitch
    class, whatever its own spelling was: c, cis, d, ees, e, f, fis, g, gis, a, bes, b (c' + 1 -> cis',
    c' - 2 -> bes, e' - 1 -> ees', gis' + 2 -> bes'). So every copy is spelled by one rule, and a sounding pitch
    is one token in all of them (enharmonic spellings of the C versions, such as dis' against ees', are not kept)."""
    from music21 import interval

    return interval.Interval(semitones)


@cache
def shift_pitch(name: str, semitones: int) -> str:
    """A LilyPond pitch moved by :func:`shift_interval` (``c'`` + 2 -> ``d'``); cached: a few dozen pitches make
    up every chorale, and a music21 transposition costs about 0.1 ms."""
    return music21_to_lily(lily_to_music21(name).transpose(shift_interval(semitones)))


def transpose_by(chorale: Chorale, semitones: int) -> Chorale:
    """The chorale with every note moved by :func:`shift_interval` (``semitones`` up, or down when negative);
    ``key_tonic`` follows. A pitch that would need a triple accidental is a ChoraleError naming the chorale."""
    try:
        events = [replace(e, pitch=shift_pitch(e.pitch, semitones)) if e.kind == "note" else e
                  for e in chorale.events]
        tonic = tonic_name(lily_to_music21(chorale.key_tonic + "'").transpose(shift_interval(semitones)))
    except ChoraleError as error:
        raise ChoraleError(f"chorale {chorale.number} (BWV {chorale.bwv}) shifted by {semitones}: {error}") from error
    return replace(chorale, events=events, key_tonic=tonic)


# --- durations and the figure-20 text ----------------------------------------------------------------------------

def lily_duration(duration: Fraction) -> str:
    """1/4 -> ``4``, 3/8 -> ``4.``, 7/16 -> ``4..``; refuses durations that need a tie or a tuplet."""
    for dots in range(3):
        base = duration / (2 - Fraction(1, 2**dots))
        if base.numerator == 1 and base.denominator in (1, 2, 4, 8, 16, 32, 64):
            return f"{base.denominator}{'.' * dots}"
        if base == 2 and dots == 0:
            return "\\breve"
    raise ChoraleError(f"duration {duration} is not a (dotted) LilyPond duration")


def parse_duration(text: str) -> Fraction:
    """``4`` -> 1/4, ``4.`` -> 3/8, ``8..`` -> 7/32, ``\\breve`` -> 2 (the inverse of :func:`lily_duration`)."""
    if text == "\\breve":
        return Fraction(2)
    dots = len(text) - len(text.rstrip("."))
    base = Fraction(1, int(text.rstrip(".")))
    return base * (2 - Fraction(1, 2**dots))


def signature_length(signature: str) -> Fraction:
    """``3/4`` -> 3/4 of a whole note; ChoraleError for anything that is not ``n/d``."""
    try:
        numerator, denominator = (int(x) for x in signature.split("/"))
        return Fraction(numerator, denominator)
    except ValueError as error:
        raise ChoraleError(f"not a time signature: {signature!r}") from error


def measures(events: list[Event]) -> list[list[Event]]:
    """Notes and rests between bar events; empty measures (doubled or trailing bar lines) are dropped."""
    result: list[list[Event]] = [[]]
    for event in events:
        if event.kind == "bar":
            result.append([])
        elif event.kind in ("note", "rest"):
            result[-1].append(event)
        else:
            raise ChoraleError(f"unknown event kind {event.kind!r}")
    return [m for m in result if m]


def measure_length(measure: list[Event]) -> Fraction:
    """The summed durations of a measure's notes and rests, in whole notes."""
    return sum((e.duration for e in measure), Fraction(0))


def event_token(event: Event) -> str:
    """One token: ``e'4.``, ``r8``, ``c''2~`` (tied to the next), or ``|``; fermatas are separate tokens."""
    if event.kind == "bar":
        return "|"
    body = ("r" if event.kind == "rest" else event.pitch) + lily_duration(event.duration)
    return body + ("~" if event.tie else "")


def figure20_tokens(chorale: Chorale) -> list[str]:
    """The soprano as the report's figure-20 tokens: notes, ``|`` bar lines, ``\\`` after a fermata note."""
    tokens = []
    for event in chorale.events:
        tokens.append(event_token(event))
        if event.fermata:
            tokens.append("\\")
    return tokens


def figure20_text(chorale: Chorale) -> str:
    """The figure-20 text with every duration written: ``c'4 | c'2 g'4 | e'4. d'8 c'4 | …``."""
    return " ".join(figure20_tokens(chorale))
