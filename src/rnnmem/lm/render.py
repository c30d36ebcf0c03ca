"""Generated soprano tokens back into music: a :class:`Chorale`, and text, MusicXML, MIDI and PNG files (figure 21).

:func:`tokens_to_chorale` reads the report's figure-20 tokens (``e'4.``, ``c''2~``, ``r4``, ``|``, ``\\`` after a
fermata note; ``<s>``/``</s>`` around them are dropped) without repairing anything a network got wrong:

* a malformed token (not a note, rest, bar line or fermata; ``<unk>``; a marker in the middle; a ``\\`` that does
  not follow a note or rest; a ``|`` before the first note or rest, or right after another ``|``) is skipped
  and reported;
* a tie (``~``) that is not followed by a note of the same pitch (bar lines between are fine) is dropped and
  reported (``note N`` counts notes and rests from 1); the note itself is kept;
* bars are kept exactly as generated; one whose length is not that of the time signature is reported
  (``bar 5: 5/4 in 4/4``). The time signature is the most common length of the complete bars (all but the first
  and the last, when there are three or more; the longest on a tie; 2/4 to 8/4, else 4/4): ``3/4``, ``4/4``,
  ``3/2`` … A first bar shorter than that is a pickup and a last bar shorter than that closes the melody (both
  normal in the chorales), not a problem.

Bars are numbered like the engraved score: a pickup is bar 0, else the first bar is bar 1. Token positions in
the messages count from 1 in the token list without the ``<s>``/``</s>`` markers (the words of ``<stem>.txt``).

:func:`write_sample` writes ``<stem>.txt`` (the tokens as generated, one line), ``<stem>.musicxml`` and
``<stem>.mid`` (one music21 part with explicit measures: the pickup padded, an irregular bar given its own time
signature for that bar only, so no note is split or lengthened; the MIDI file, written straight from the chorale,
says the same) and ``<stem>.png`` (LilyPond, through :func:`rnnmem.chorales.engrave.engrave_pngs`), each
atomically. For many samples, :func:`write_sample_files` writes the first three and keeps the parsed chorale, and
:func:`engrave_samples` engraves them all with one LilyPond start.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from rnnmem.chorales.dataset import BEGIN, END, UNK
from rnnmem.chorales.events import (
    Chorale,
    Event,
    lily_to_music21,
    measure_length,
    measures,
    parse_duration,
    signature_length,
)
from rnnmem.core.atomic import atomic_path, write_text
from rnnmem.lm.keys import KeyProfiles, find_key, spell_in_key

NOTE_TOKEN = re.compile(r"^(?P<pitch>[a-g](?:isis|eses|is|es)?[',]*|r)(?P<duration>\\breve|(?:1|2|4|8|16|32|64)\.{0,2})"
                        r"(?P<tie>~?)$")
FERMATA = "\\"
BAR = "|"
# The lengths (in whole notes) of the chorales' time signatures; other lengths are written in quarters or smaller.
SIGNATURES = {Fraction(1): "4/4", Fraction(3, 4): "3/4", Fraction(3, 2): "3/2", Fraction(1, 2): "2/4"}
DEFAULT_SIGNATURE = "4/4"
SIGNATURE_RANGE = (Fraction(1, 2), Fraction(2))  # bar lengths that can be a time signature (whole notes)
# A generated bar longer than this (whole notes) gets no time signature of its own in MusicXML/MIDI, and no beams:
# music21 needs minutes to build a metre such as 277/32 (see chorale_stream).
LONG_BAR = SIGNATURE_RANGE[1]


# --- tokens -> Chorale ----------------------------------------------------------------------------------------------

def parse_token(token: str) -> Event | None:
    """The note or rest of one token (a tie kept as written, also on a rest), or None if it is neither."""
    match = NOTE_TOKEN.match(token)
    if match is None:
        return None
    duration = parse_duration(match["duration"])
    if match["pitch"] == "r":
        return Event("rest", None, duration, tie=bool(match["tie"]))
    return Event("note", match["pitch"], duration, tie=bool(match["tie"]))


def note_body(token: str) -> str | None:
    """``e'4.`` for the note tokens ``e'4.`` and ``e'4.~`` (pitch and duration only); None for anything else."""
    event = parse_token(token)
    return None if event is None or event.kind != "note" else token.rstrip("~")


def length_text(length: Fraction) -> str:
    """A bar length as a time signature: 1 -> ``4/4``, 5/4 -> ``5/4``, 1/2 -> ``2/4``, 7/8 -> ``7/8``."""
    for denominator in (4, 8, 16, 32, 64, 128):
        count = length * denominator
        if count.denominator == 1:
            return f"{count.numerator}/{denominator}"
    return str(length)


def signature_for(length: Fraction) -> str:
    return SIGNATURES.get(length) or length_text(length)


def _in_128ths(length: Fraction) -> bool:
    """Whether a bar of ``length`` whole notes can be a music21 TimeSignature: ``x/256`` raises (no beat partition)."""
    return (length * 128).denominator == 1


def infer_signature(events: list[Event]) -> str:
    """The most common bar length among the complete bars (all but the first and last when there are three or
    more, else all bars; the longest wins a tie) of 2/4 to 8/4 (:data:`SIGNATURE_RANGE`), as a time signature;
    ``4/4`` without such a bar (a melody with hardly any bar lines gets 4/4 and its long bars are flagged). A bar
    in 256ths (double-dotted 64ths) is no candidate: music21 cannot build such a TimeSignature (``179/256``)."""
    lengths = [measure_length(m) for m in measures(events)]
    complete = lengths[1:-1] if len(lengths) >= 3 else lengths
    complete = [length for length in complete
                if SIGNATURE_RANGE[0] <= length <= SIGNATURE_RANGE[1] and _in_128ths(length)]
    if not complete:
        return DEFAULT_SIGNATURE
    counts = Counter(complete)
    return signature_for(max(counts, key=lambda length: (counts[length], length)))


@dataclass(frozen=True)
class BarCheck:
    number: int  # as engraved: a pickup is bar 0
    length: Fraction
    ok: bool
    role: str  # "pickup", "final", "full" or "irregular"


def check_bars(events: list[Event], signatures: list[str]) -> list[BarCheck]:
    """Every bar and whether it fits: its length is that of one of ``signatures``, or it is a first bar shorter than
    the first signature (pickup) or a last bar shorter than the signature then in force (end of the melody).

    With several signatures (a few Bach chorales change metre) a bar of any of their lengths fits.
    """
    lengths = [measure_length(m) for m in measures(events)]
    allowed = {signature_length(s) for s in signatures} or {signature_length(DEFAULT_SIGNATURE)}
    current = signature_length(signatures[0]) if signatures else signature_length(DEFAULT_SIGNATURE)
    pickup = len(lengths) > 1 and lengths[0] < current
    checks = []
    for index, length in enumerate(lengths):
        number = index if pickup else index + 1
        if length in allowed:
            current = length
            checks.append(BarCheck(number, length, True, "full"))
        elif index == 0 and pickup:
            checks.append(BarCheck(number, length, True, "pickup"))
        elif index == len(lengths) - 1 and len(lengths) > 1 and length < current:
            checks.append(BarCheck(number, length, True, "final"))
        else:
            checks.append(BarCheck(number, length, False, "irregular"))
    return checks


def tokens_to_chorale(tokens: list[str], number: int = 0, title: str = "", *, key_tonic: str = "c",
                      mode: str = "major", time_signature: str | None = None) -> tuple[Chorale, list[str]]:
    """The Chorale of figure-20 tokens (transposed: in ``key_tonic`` ``mode``) and the list of problems found.

    ``time_signature`` overrides the inferred one. Bars are kept as generated (see the module docstring); the
    Chorale's ``source`` is ``"sample"``, its ``bwv`` empty.
    """
    body = list(tokens)
    if body and body[0] == BEGIN:
        body = body[1:]
    if body and body[-1] == END:
        body = body[:-1]
    events: list[Event] = []
    problems: list[str] = []
    previous = ""  # the kind of the last accepted token: note, rest, bar, fermata
    for position, token in enumerate(body, start=1):
        where = f"token {position} {token!r}"
        if token == BAR:
            if previous == "bar":
                problems.append(f"{where}: empty bar skipped")
                continue
            if not events:
                problems.append(f"{where}: bar line before any note or rest skipped")
                continue
            events.append(Event("bar"))
            previous = "bar"
        elif token == FERMATA:
            if previous not in ("note", "rest"):
                problems.append(f"{where}: fermata not after a note skipped")
                continue
            last = events[-1]
            events[-1] = Event(last.kind, last.pitch, last.duration, last.tie, fermata=True)
            previous = "fermata"
        elif token == UNK:
            problems.append(f"{where}: unknown token skipped")
        elif token in (BEGIN, END):
            problems.append(f"{where}: marker inside the melody skipped")
        else:
            event = parse_token(token)
            if event is None:
                problems.append(f"{where}: not a note, rest, bar line or fermata; skipped")
                continue
            if event.kind == "rest" and event.tie:
                problems.append(f"{where}: tie on a rest dropped")
                event = Event("rest", None, event.duration)
            events.append(event)
            previous = event.kind
    events = _check_ties(events, problems)
    signatures = [time_signature or infer_signature(events)]
    for check in check_bars(events, signatures):
        if not check.ok:
            problems.append(f"bar {check.number}: {length_text(check.length)} in {signatures[0]}")
    chorale = Chorale(number=number, bwv="", title=title, source="sample", time_signatures=signatures,
                      key_tonic=key_tonic, mode=mode, events=events)
    return chorale, problems


def _check_ties(events: list[Event], problems: list[str]) -> list[Event]:
    """Drop (and report) every tie not followed, across bar lines only, by a note of the same pitch."""
    result = list(events)
    sounding = [i for i, e in enumerate(result) if e.kind != "bar"]
    for rank, index in enumerate(sounding):
        event = result[index]
        if event.kind != "note" or not event.tie:
            continue
        following = result[sounding[rank + 1]] if rank + 1 < len(sounding) else None
        if following is None or following.kind != "note" or following.pitch != event.pitch:
            target = "the end" if following is None else (following.pitch or "a rest")
            problems.append(f"note {rank + 1} {event.pitch}: tie to {target} dropped")
            result[index] = Event("note", event.pitch, event.duration, False, event.fermata)
    return result


# --- Chorale -> music21 -> files ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Bar:
    """One bar as written to MusicXML and MIDI (see :func:`chorale_stream`)."""

    content: list[Event]
    check: BarCheck
    metre: Fraction  # the declared metre in force (a pickup or last bar is padded up to it)
    shown: Fraction  # the length of the time signature in force (this bar's own for an irregular bar)
    signature: str | None  # the time signature written at the start of this bar, if any


def _own_signature(length: Fraction) -> bool:
    """Whether an irregular bar of ``length`` whole notes gets a time signature of its own: not when longer than
    :data:`LONG_BAR`, nor in 256ths (double-dotted 64ths; see :func:`_in_128ths`)."""
    return length <= LONG_BAR and _in_128ths(length)


def _bar_plan(chorale: Chorale) -> list[_Bar]:
    """The bars of ``chorale`` with the time signatures :func:`chorale_stream` writes: the first one, a change of
    metre, and a bar of another length (up to :data:`LONG_BAR`) with its own signature, for that bar only. Shared
    by the MusicXML and the MIDI writer, so both say the same."""
    signatures = list(chorale.time_signatures) or [DEFAULT_SIGNATURE]
    names = {signature_length(s): s for s in reversed(signatures)}  # the first listed wins for equal lengths
    current = signature_length(signatures[0])  # the declared metre in force
    shown: Fraction | None = None  # the length of the last time signature written
    plan = []
    for content, check in zip(measures(chorale.events), check_bars(chorale.events, signatures), strict=True):
        if check.role == "full":
            current = check.length
        wanted = current
        if check.role == "irregular" and _own_signature(check.length):  # an irregular bar: for this bar only
            wanted = check.length
        signature = None
        if wanted != shown:
            signature = names.get(wanted) or signature_for(wanted)
            shown = wanted
        plan.append(_Bar(content, check, current, wanted, signature))
    return plan


def chorale_stream(chorale: Chorale, title: str | None = None):
    """A music21 Score with one part: explicit measures as in the chorale (bar lines where its bar events are), the
    key, the time signature(s); a pickup padded on the left, a short last bar on the right, and a bar of another
    length (known signature or not) preceded by its own time signature, so every note keeps its written duration.
    A bar longer than :data:`LONG_BAR` (a generated melody may hold hundreds of notes in one) is written overfull
    in the metre in force instead: music21 takes minutes to build a metre such as 277/32; so is a bar in 256ths
    (double-dotted 64ths), a metre music21 cannot build at all. Either way the bar is among the sample's problems
    (:func:`tokens_to_chorale`).
    """
    from music21 import expressions, key, metadata, meter, note, stream, tie
    from music21.exceptions21 import Music21Exception

    score = stream.Score()
    score.metadata = metadata.Metadata(title=title if title is not None else chorale.title)
    part = stream.Part(id="soprano")
    part.partName = "Soprano"
    plan = _bar_plan(chorale)
    notes = [e for bar in plan for e in bar.content]
    tied_from_previous = [False] + [a.kind == "note" and a.tie for a in notes[:-1]]
    position = 0
    for index, bar in enumerate(plan):
        measure = stream.Measure(number=bar.check.number)
        if index == 0:
            measure.insert(0, key.Key(lily_to_music21(chorale.key_tonic).name, chorale.mode))
        if bar.check.role == "pickup":
            measure.paddingLeft = float((bar.metre - bar.check.length) * 4)
        elif bar.check.role == "final":
            measure.paddingRight = float((bar.metre - bar.check.length) * 4)
        if bar.signature is not None:
            measure.insert(0, meter.TimeSignature(bar.signature))
        for event in bar.content:
            if event.kind == "note":
                item = note.Note(lily_to_music21(event.pitch))
                starts, stops = event.tie, tied_from_previous[position]
                if starts or stops:
                    item.tie = tie.Tie("continue" if starts and stops else "start" if starts else "stop")
            else:
                item = note.Rest()
                # what music21's exporter would find out for itself ('auto'), at a context search per rest
                item.fullMeasure = event.duration == bar.shown
            item.duration = _duration(event.duration)
            if event.fermata:
                fermata = expressions.Fermata()
                fermata.type = "upright"  # above the staff (music21's default is the inverted one below)
                item.expressions.append(fermata)
            measure.append(item)
            position += 1
        part.append(measure)
    if not plan:  # an empty melody (the sample ended at once): one empty bar, so that the files can be written
        measure = stream.Measure(number=1)
        measure.insert(0, key.Key(lily_to_music21(chorale.key_tonic).name, chorale.mode))
        measure.insert(0, meter.TimeSignature(chorale.time_signatures[0] if chorale.time_signatures
                                              else DEFAULT_SIGNATURE))
        part.append(measure)
    for measure, bar in zip(part.getElementsByClass(stream.Measure), plan, strict=False):
        # Beams bar by bar: a bar no beaming rule knows keeps flags, and so does an overfull long bar.
        if bar.check.length > LONG_BAR:
            continue
        with contextlib.suppress(Music21Exception):
            measure.makeBeams(inPlace=True)
    score.insert(0, part)
    return score


# music21 note types of the token durations (whole notes): a Duration made from its type is ready at once, one
# made from a quarter length works its type out again for every note
_TYPES = {Fraction(2): "breve", Fraction(1): "whole", Fraction(1, 2): "half", Fraction(1, 4): "quarter",
          Fraction(1, 8): "eighth", Fraction(1, 16): "16th", Fraction(1, 32): "32nd", Fraction(1, 64): "64th"}


def _duration(length: Fraction):
    """The music21 Duration of ``length`` whole notes: from its type and dots when it is a plain or (double) dotted
    note value (every token duration is), else from its quarter length."""
    from music21 import duration

    for dots, factor in ((0, Fraction(1)), (1, Fraction(3, 2)), (2, Fraction(7, 4))):
        name = _TYPES.get(length / factor)
        if name is not None:
            return duration.Duration(type=name, dots=dots)
    return duration.Duration(Fraction(length * 4))


def _write_musicxml(score, out: Path) -> None:
    with atomic_path(out) as tmp:
        score.write("musicxml", fp=tmp, makeNotation=False)
        text = tmp.read_text(encoding="utf-8")
        text = re.sub(r"\s*<encoding-date>[^<]*</encoding-date>", "", text)  # same sample, same bytes:
        text = re.sub(r'id="P[0-9a-f]{32}"', 'id="P1"', text)  # no date, no part id drawn from memory addresses
        tmp.write_text(text, encoding="utf-8")


# MIDI, written straight from the chorale (music21's writer deep-copies and re-notates the whole score first, a
# tenth of a second per long sample): a type-1 file, a conductor track (tempo, key, time signatures) and one track
# of notes, with music21's tempo, velocity and channel.
MIDI_TICKS = 960  # per quarter note: every token duration (down to a double-dotted 64th) is a whole number of them
MIDI_TEMPO = 500_000  # microseconds per quarter note: 120 bpm, music21's default
MIDI_VELOCITY = 90
MIDI_CHANNEL = 0  # channel 1


def _vlq(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _ticks(length: Fraction) -> int:
    return round(length * 4 * MIDI_TICKS)


def _track(events: list[tuple[int, bytes]], end: int) -> bytes:
    """An MTrk chunk of ``(tick, event)`` in order, ended at ``end`` (or the last event)."""
    body, now = bytearray(), 0
    for tick, event in events:
        body += _vlq(tick - now) + event
        now = tick
    body += _vlq(max(end - now, 0)) + b"\xff\x2f\x00"
    return b"MTrk" + len(body).to_bytes(4, "big") + bytes(body)


def _meta(kind: int, data: bytes) -> bytes:
    return bytes([0xFF, kind]) + _vlq(len(data)) + data


def _time_signature(text: str) -> bytes | None:
    """The TIME_SIGNATURE meta event of ``3/4`` (24 clocks per click, 8 32nds per quarter, as music21 writes it);
    None for one MIDI cannot store (a numerator over 255, a denominator that is no power of two)."""
    numerator, denominator = (int(part) for part in text.split("/"))
    if not 0 < numerator <= 255 or denominator <= 0 or denominator & (denominator - 1):
        return None
    return _meta(0x58, bytes([numerator, denominator.bit_length() - 1, 24, 8]))


def midi_bytes(chorale: Chorale) -> bytes:
    """A standard MIDI file of the melody as :func:`chorale_stream` writes it: the same bars and time signatures,
    tied notes as one note, rests as time, fermatas not held longer (as music21 plays them)."""
    from music21 import key

    tonic = lily_to_music21(chorale.key_tonic).name
    sharps = key.Key(tonic, chorale.mode).sharps
    conductor = [(0, _meta(0x51, MIDI_TEMPO.to_bytes(3, "big"))),
                 (0, _meta(0x59, bytes([sharps & 0xFF, 1 if chorale.mode == "minor" else 0])))]
    notes: list[tuple[int, bytes]] = [(0, _meta(0x03, b"Soprano"))]
    plan = _bar_plan(chorale)
    # an empty melody: the signature of chorale_stream's one empty bar
    signatures = [] if plan else [(0, (chorale.time_signatures or [DEFAULT_SIGNATURE])[0])]
    numbers: dict[str, int] = {}  # MIDI note numbers by pitch name
    elapsed, tick = Fraction(0), 0  # whole notes and ticks from the start
    sounding: tuple[str, bool] | None = None  # the pitch name of the note being played, and whether it is tied on
    for bar in plan:
        if bar.signature is not None:
            signatures.append((tick, bar.signature))
        for event in bar.content:
            if sounding is not None and sounding[1] and event.kind == "note" and event.pitch == sounding[0]:
                sounding = (event.pitch, event.tie)  # tied on: the note goes on sounding
            else:
                if sounding is not None:
                    notes.append((tick, bytes([0x80 | MIDI_CHANNEL, numbers[sounding[0]], 0])))
                    sounding = None
                if event.kind == "note":
                    if event.pitch not in numbers:
                        numbers[event.pitch] = lily_to_music21(event.pitch).midi
                    sounding = (event.pitch, event.tie)
                    notes.append((tick, bytes([0x90 | MIDI_CHANNEL, numbers[event.pitch], MIDI_VELOCITY])))
            elapsed += event.duration
            tick = _ticks(elapsed)
    if sounding is not None:
        notes.append((tick, bytes([0x80 | MIDI_CHANNEL, numbers[sounding[0]], 0])))
    conductor += [(at, event) for at, text in signatures if (event := _time_signature(text)) is not None]
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") + (2).to_bytes(2, "big") + \
        MIDI_TICKS.to_bytes(2, "big")
    return header + _track(conductor, tick) + _track(notes, tick)


def _write_midi(chorale: Chorale, out: Path) -> None:
    with atomic_path(out) as tmp:
        tmp.write_bytes(midi_bytes(chorale))


@dataclass(frozen=True)
class SampleFiles:
    """One sample's text, MusicXML and MIDI, written; its PNG still to engrave (:func:`engrave_samples`), so a job
    can engrave all its samples with one LilyPond process."""

    info: dict[str, Any]  # as write_sample returns it, without the PNG and the engraving problem
    problems: list[str]
    engraving: tuple[Chorale, Path, str]  # (chorale, PNG path, title), as engrave_pngs takes it

    def unengraved(self) -> dict[str, Any]:
        """The sample's entry when no PNG was asked for."""
        return {**self.info, "png": None, "problems": "; ".join(self.problems)}

    def engraved(self, problem: str | None) -> dict[str, Any]:
        """The sample's entry after engraving: the PNG name, or None and why among the problems."""
        if problem is not None:
            return {**self.info, "png": None, "problems": "; ".join([*self.problems, f"not engraved: {problem}"])}
        return {**self.info, "png": self.engraving[1].name, "problems": "; ".join(self.problems)}


def write_sample(tokens: list[str], out_stem: Path, title: str, *, number: int = 0, png: bool = True,
                 key_tonic: str = "c", mode: str = "major", time_signature: str | None = None,
                 engrave_timeout: float = 120.0) -> dict[str, Any]:
    """Write ``<stem>.txt``, ``<stem>.musicxml``, ``<stem>.mid`` and (``png=True``) ``<stem>.png`` for one sample.

    Returns ``stem``, the file names (``txt``, ``musicxml``, ``midi``, ``png``: None when not engraved), ``tokens``
    (without markers), ``ended`` (the tokens end with ``</s>``), ``notes``, ``bars``, ``bars_ok`` (fraction of the
    bars that fit, see :func:`check_bars`; NaN without bars), ``time_signature``, ``key`` (``c major``: the key
    signature of the scores) and ``problems`` ("; "-joined).
    A melody LilyPond cannot engrave within ``engrave_timeout`` seconds (or at all) gets no PNG (``png`` None)
    and the reason among its ``problems``: listed, not raised, so one unreadable sample does not stop a batch.
    Many samples: :func:`write_sample_files` for each, then one :func:`engrave_samples` (one LilyPond start).
    """
    files = write_sample_files(tokens, out_stem, title, number=number, key_tonic=key_tonic, mode=mode,
                               time_signature=time_signature)
    return engrave_samples([files], engrave_timeout)[0] if png else files.unengraved()


def write_sample_files(tokens: list[str], out_stem: Path, title: str, *, number: int = 0, key_tonic: str = "c",
                       mode: str = "major", time_signature: str | None = None,
                       profiles: KeyProfiles | None = None) -> SampleFiles:
    """Write ``<stem>.txt``, ``<stem>.musicxml`` and ``<stem>.mid`` (see :func:`write_sample`) and parse the
    tokens once, keeping the chorale to engrave. With key ``profiles`` the scores carry the key found in the
    melody (:func:`rnnmem.lm.keys.find_key`) instead of ``key_tonic`` ``mode``, each note spelled as that key
    spells it (:func:`rnnmem.lm.keys.spell_in_key`): a model trained on transposed copies samples in any key, and
    an A flat major melody reads better under four flats than as G sharps and C sharps in C. The pitches are the
    tokens' either way (the text file keeps the tokens as generated); ``key`` in the returned entry says which
    key the scores carry."""
    out_stem = Path(out_stem)
    chorale, problems = tokens_to_chorale(tokens, number, title, key_tonic=key_tonic, mode=mode,
                                          time_signature=time_signature)
    found = find_key(chorale, profiles) if profiles is not None else None
    if found is not None:
        chorale = spell_in_key(chorale, found.signature_tonic, found.mode)
        key_tonic, mode = chorale.key_tonic, chorale.mode
    words = [t for t in tokens if t not in (BEGIN, END)]
    paths = {kind: out_stem.with_name(out_stem.name + suffix)
             for kind, suffix in (("txt", ".txt"), ("musicxml", ".musicxml"), ("midi", ".mid"), ("png", ".png"))}
    write_text(paths["txt"], " ".join(words) + "\n")
    score = chorale_stream(chorale, title)
    _write_musicxml(score, paths["musicxml"])
    _write_midi(chorale, paths["midi"])
    if not chorale.events:
        problems.append("no notes, rests or bars")
    # LilyPond makes no image of an empty score: an empty melody is engraved as one bar of rest
    shown = chorale if chorale.events else replace(
        chorale, events=[Event("rest", None, signature_length(chorale.time_signatures[0]))])
    checks = check_bars(chorale.events, chorale.time_signatures)
    info = {
        "stem": out_stem.name,
        "txt": paths["txt"].name, "musicxml": paths["musicxml"].name, "midi": paths["midi"].name,
        "png": None,
        "tokens": len(words),
        "ended": bool(tokens) and tokens[-1] == END,
        "notes": len(chorale.notes),
        "bars": len(checks),
        "bars_ok": sum(c.ok for c in checks) / len(checks) if checks else float("nan"),
        "time_signature": chorale.time_signatures[0],
        "key": f"{key_tonic} {mode}",
        "problems": "",
    }
    return SampleFiles(info, problems, (shown, paths["png"], title))


def engrave_samples(samples: list[SampleFiles], timeout: float = 120.0) -> list[dict[str, Any]]:
    """Engrave the PNGs of ``samples`` with one LilyPond process (see
    :func:`rnnmem.chorales.engrave.engrave_pngs`: ``timeout`` seconds per sample; a sample it cannot engrave is
    flagged, not raised) and return each one's :func:`write_sample` entry, in order."""
    from rnnmem.chorales.engrave import engrave_pngs

    problems = engrave_pngs([sample.engraving for sample in samples], timeout=timeout) if samples else {}
    return [sample.engraved(problems[sample.engraving[1]]) for sample in samples]
