"""The music21 source (the offline default): the 371 chorales of music21's corpus as normalized ``Chorale``s.

music21 ships the chorales as MusicXML (three also as Humdrum ``.krn``) named by BWV, and maps Riemenschneider
numbers to BWV numbers and titles in ``music21.corpus.chorales.ChoraleListRKBWV`` (what
``corpus.chorales.Iterator(numberingSystem='riemenschneider')`` uses). The file of a number is resolved here
rather than through ``Iterator``/``corpus.parse``, which take the first of several files matching a name: for
``bach/bwv112.5`` that is the instrumental ``bwv112.5-sc.mxl``, for ``bach/bwv69.6`` the different chorale
``bwv69.6-a.mxl``, for ``bach/bwv281`` the ``.krn``. Here the file is the one named exactly ``bwv<BWV>``
(MusicXML first), else the only one whose name extends it (the list's ``18.5-l`` is ``bwv18.5-lz.mxl``).

- ``bwv`` is music21's designation cut to digits and dots (``248.12-2`` -> ``248.12``, ``69.6-a`` -> ``69.6``);
  the full designation is ``notes_info["bwv_music21"]``; the title is the list's (the files have none).
- The key is the key signature's tonic in the mode the file declares (MusicXML ``<mode>``), else in the mode
  music21's key analysis (``score.analyze("key")``) finds; both are in ``notes_info``. A modal signature (a G minor
  chorale with one flat) thus gives the signature's tonic (d), not the analysed one (g).
- Bar lines follow the metre: an incomplete measure and the next one are one bar when together they fit in it
  (music21 splits a measure at a mid-measure repeat sign, ``7`` and ``7a``; after unfolding, the pickup
  completes the last measure of a repeated section); ``notes_info["irregular_bars"]`` lists the exceptions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from music21 import analysis, bar, converter, expressions, key, meter, repeat, spanner, stream, text
from music21.corpus import chorales as m21_chorales
from music21.corpus import corpora as m21_corpora

from rnnmem.chorales.events import (
    Chorale,
    ChoraleError,
    Event,
    check_source_options,
    lily_duration,
    music21_to_lily,
    tonic_name,
)

SOURCE = "music21"
NUMBERS = range(1, 372)
FILE_PREFERENCE = (".mxl", ".musicxml", ".xml", ".krn")
SOURCE_FORMATS = {".mxl": "musicxml", ".musicxml": "musicxml", ".xml": "musicxml", ".krn": "humdrum"}
SERIAL_BELOW = 12  # fewer chorales than this are parsed in this process: a pool costs more than it saves

_BWV_RE = re.compile(r"bwv[ _]?([0-9][0-9a-z.\-]*?)(?:\.(?:mxl|musicxml|xml|krn))?$", re.IGNORECASE)


# --- one score -----------------------------------------------------------------------------------------------------

def bwv_designation(score: stream.Score) -> str:
    """music21's BWV designation of a parsed chorale, e.g. ``269``, ``248.12-2``, ``69.6-a``; "" if unknown."""
    md = score.metadata
    candidates = []
    if md is not None:
        candidates += [getattr(md, "corpusFilePath", None), getattr(md, "filePath", None), md.movementName]
    for raw in candidates:
        if raw:
            match = _BWV_RE.search(Path(str(raw)).name)
            if match:
                return match.group(1).lower()
    for box in score.recurse().getElementsByClass(text.TextBox):
        match = re.search(r"BWV\s*([0-9][0-9a-z.\-]*)", box.content or "", re.IGNORECASE)
        if match:
            return match.group(1).lower()
    return ""


def normalise_bwv(designation: str) -> str:
    """Digits and dots only: ``248.12-2`` -> ``248.12``, ``69.6-a`` -> ``69.6``, ``269`` -> ``269``."""
    match = re.match(r"[0-9]+(?:\.[0-9]+)*", designation)
    return match.group(0) if match else ""


def soprano_part(score: stream.Score) -> stream.Part:
    """The part whose id or name is Soprano; else the first whose name starts with Soprano; else the first part."""
    parts = list(score.parts)
    if not parts:
        raise ChoraleError("the score has no parts")

    def names(part: stream.Part) -> list[str]:
        return [str(n).strip().lower() for n in (part.id, part.partName) if n]

    for part in parts:
        if "soprano" in names(part):
            return part
    for part in parts:
        if any(n.startswith("soprano") for n in names(part)):
            return part
    return parts[0]


def has_repeats(part: stream.Part) -> bool:
    """Whether the part has repeat signs, first/second endings or da capo/segno marks (what expandRepeats reads)."""
    return bool(part.recurse().getElementsByClass((bar.Repeat, repeat.RepeatExpression)).first()
                or part.spannerBundle.getByClass(spanner.RepeatBracket))


def _declared_and_analysed_key(score: stream.Score, part: stream.Part) -> tuple[str, str, dict[str, Any]]:
    """(tonic, mode, info): the key signature's tonic in the mode it declares, else in the analysed mode."""
    signatures = list(part.recurse().getElementsByClass(key.KeySignature))
    # score.analyze("key") is AardenEssen's getSolution, which also builds 23 alternative Key objects (~40 ms);
    # process() gives the same best key, mode and correlation without them
    analysed_tonic, analysed_mode, correlation = analysis.discrete.AardenEssen().process(score.flatten())[0]
    info: dict[str, Any] = {
        "analysed_key": f"{analysed_tonic.name} {analysed_mode}",
        "analysed_correlation": round(float(correlation), 3),
    }
    if not signatures:
        info.update(declared_key=None, key_signature_sharps=None, mode_source="analysed (no key signature)")
        return tonic_name(analysed_tonic), analysed_mode, info
    first = signatures[0]
    declared_mode = first.mode if isinstance(first, key.Key) and first.mode in ("major", "minor") else None
    mode = declared_mode or analysed_mode
    tonic = first.asKey(mode).tonic
    info.update(
        declared_key=f"{tonic.name} {declared_mode}" if declared_mode else None,
        key_signature_sharps=first.sharps,
        mode_source="declared" if declared_mode else "analysed",
    )
    if len({(k.sharps, getattr(k, "mode", None)) for k in signatures}) > 1:
        info["key_changes"] = [f"{k.sharps} {getattr(k, 'mode', None)}" for k in signatures]
    return tonic_name(tonic), mode, info


def _measure_events(measure: stream.Measure, where: str, counts: dict[str, int]) -> tuple[list[Event], Fraction]:
    """The note and rest events of one measure and their total length in whole notes; updates ``counts``."""
    voices = list(measure.voices)
    counts["voices"] += max(len(voices) - 1, 0)
    holder = voices[0] if voices else measure  # the first voice if there are several
    events: list[Event] = []
    cursor = Fraction(0)
    for element in sorted(holder.notesAndRests, key=lambda e: (e.offset, e.priority)):
        if element.duration.isGrace:
            counts["grace"] += 1
            continue
        offset = Fraction(element.offset) / 4
        if offset > cursor:  # a hole in the measure: keep the metre with a rest
            events.append(Event("rest", duration=offset - cursor))
            counts["gaps"] += 1
        elif offset < cursor:
            raise ChoraleError(f"{where}: overlapping notes (chords across voices?)")
        duration = Fraction(element.duration.quarterLength) / 4
        if duration <= 0:
            raise ChoraleError(f"{where}: a note or rest without duration")
        try:
            lily_duration(duration)
        except ChoraleError as error:
            raise ChoraleError(f"{where}: {error}") from error
        fermata = any(isinstance(x, expressions.Fermata) for x in element.expressions)
        if element.isRest:
            events.append(Event("rest", duration=duration, fermata=fermata))
        else:
            if element.isChord:
                counts["chords"] += 1
                pitch = max(element.pitches, key=lambda p: p.ps)
            else:
                pitch = element.pitch
            tie = element.tie is not None and element.tie.type in ("start", "continue")
            events.append(Event("note", music21_to_lily(pitch), duration, tie=tie, fermata=fermata))
        cursor = offset + duration
    return events, cursor


def _join_measures(bars: list[tuple[str, list[Event], Fraction, Fraction, bool]]) -> tuple[list[Event], list[str]]:
    """The measures' events with bar lines between them, and the labels of irregular bars.

    A bar line follows every measure but the last, except that an incomplete measure and the next one are one
    bar when together they fit in it (music21 splits a measure at a mid-measure repeat sign: 7 + 7a, and after
    unfolding the last measure of a repeated section is completed by the pickup). The first measure (a pickup
    or not) and a measure before a change of time signature always end in a bar line.
    """
    events: list[Event] = []
    irregular: list[str] = []
    position = Fraction(0)  # whole notes since the last bar line
    for index, (label, measure_events, length, bar_length, _) in enumerate(bars):
        events += measure_events
        position += length
        if index == len(bars) - 1:
            if position > bar_length:
                irregular.append(label)
            break
        next_length, next_new_metre = bars[index + 1][2], bars[index + 1][4]
        if index > 0 and not next_new_metre and position < bar_length and position + next_length <= bar_length:
            continue
        if position > bar_length or (index > 0 and position != bar_length):
            irregular.append(label)
        events.append(Event("bar"))
        position = Fraction(0)
    return events, irregular


def chorale_from_score(score: stream.Score, number: int, repeats: str = "as_written") -> Chorale:
    """The soprano of a parsed chorale as a ``Chorale`` (see the module docstring for bars and repeats)."""
    check_source_options(repeats)
    designation = bwv_designation(score)
    md = score.metadata
    title = (md.title or md.movementName or "") if md is not None else ""
    where = f"chorale {number}" + (f" (BWV {designation})" if designation else "")

    written = part = soprano_part(score)
    if repeats == "unfold" and has_repeats(part):
        try:
            part = part.expandRepeats()
        except Exception as error:  # music21's expander raises its own exception types
            raise ChoraleError(f"{where}: music21 cannot unfold the repeats: {error}") from error

    measures = list(part.getElementsByClass(stream.Measure))
    if not measures:
        raise ChoraleError(f"{where}: the soprano has no measures")

    counts = {"grace": 0, "chords": 0, "voices": 0, "gaps": 0}
    time_signatures: list[str] = []
    bars: list[tuple[str, list[Event], Fraction, Fraction, bool]] = []  # label, events, length, bar length, new metre
    bar_length: Fraction | None = None
    for measure in measures:
        ts = measure.timeSignature
        if ts is None and bar_length is None:
            ts = measure.getContextByClass(meter.TimeSignature)
        if ts is None and bar_length is None:
            raise ChoraleError(f"{where}: no time signature")
        changed = ts is not None and bool(time_signatures) and time_signatures[-1] != ts.ratioString
        if ts is not None:
            if not time_signatures or changed:
                time_signatures.append(ts.ratioString)
            bar_length = Fraction(ts.barDuration.quarterLength) / 4
        label = measure.measureNumberWithSuffix()
        measure_events, length = _measure_events(measure, f"{where}, measure {label}", counts)
        bars.append((label, measure_events, length, bar_length, changed))

    events, irregular = _join_measures(bars)
    if not any(e.kind == "note" for e in events):
        raise ChoraleError(f"{where}: rests only")
    key_tonic, mode, key_info = _declared_and_analysed_key(score, written)

    notes_info: dict[str, Any] = {
        "bwv_music21": designation,
        "repeats": repeats,
        "soprano_part": str(written.partName or written.id),
        "grace_notes_dropped": counts["grace"],
        **key_info,
    }
    if md is not None and getattr(md, "corpusFilePath", None):
        notes_info["file"] = str(md.corpusFilePath)
    for name, count in (("chords_reduced_to_top_note", counts["chords"]), ("extra_voices_dropped", counts["voices"]),
                        ("gaps_filled_with_rests", counts["gaps"])):
        if count:
            notes_info[name] = count
    if irregular:
        notes_info["irregular_bars"] = irregular  # measure labels where a bar is not one time signature long
    return Chorale(
        number=number, bwv=normalise_bwv(designation), title=str(title), source=SOURCE,
        time_signatures=time_signatures, key_tonic=key_tonic, mode=mode, events=events, notes_info=notes_info,
    )


# --- the corpus ----------------------------------------------------------------------------------------------------

def riemenschneider_table() -> dict[int, dict[str, Any]]:
    """music21's Riemenschneider number -> {"bwv", "title", ...} (its duplicated rows keep the last one)."""
    return dict(m21_chorales.ChoraleListRKBWV().byRiemenschneider)


def corpus_file(bwv: str) -> Path | None:
    """The corpus file named exactly ``bwv<bwv>`` (else the only one named ``bwv<bwv>…``), MusicXML before Humdrum."""
    # the core corpus only (the files installed with music21), not the local corpora a user's settings may add
    found = m21_corpora.CoreCorpus().getWorkList(f"bach/bwv{bwv}")
    name = f"bwv{bwv}".lower()
    paths = [Path(p) for p in found if Path(p).suffix.lower() in FILE_PREFERENCE]
    exact = [p for p in paths if p.stem.lower() == name]
    if not exact:  # music21's list says 18.5-l where the file is bwv18.5-lz: accept one longer name
        longer = {p.stem.lower() for p in paths if p.stem.lower().startswith(name)}
        if len(longer) != 1:
            return None
        exact = [p for p in paths if p.stem.lower() in longer]
    return min(exact, key=lambda p: FILE_PREFERENCE.index(p.suffix.lower()))


def _shared_files(table: dict[int, dict[str, Any]]) -> dict[int, list[int]]:
    """Number -> the other numbers music21 maps to the same BWV (the same file)."""
    by_bwv: dict[str, list[int]] = {}
    for number in sorted(table):
        by_bwv.setdefault(str(table[number]["bwv"]), []).append(number)
    return {n: [m for m in ns if m != n] for ns in by_bwv.values() if len(ns) > 1 for n in ns}


class _Job(NamedTuple):
    number: int
    path: str
    title: str
    repeats: str


def _parse(path: str) -> stream.Score:
    """The score in ``path`` (a corpus file), parsed from its source; never from or into a pickle.

    ``converter.parse(path)`` loads an up-to-date pickle of the file from music21's scratch folder when there is
    one (``<TMPDIR>/music21/m21-….p.gz``: the shared temporary folder by default, so anyone who can write there
    can plant one), ``storePickle=False`` still reads them, and a path ending in ``.p``/``.pgz`` is unpickled as
    such. ``parseFileNoPickle`` with the format named here never looks at a pickle: MusicXML (``.mxl`` is a zip
    of XML) or Humdrum text only.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SOURCE_FORMATS:
        raise ChoraleError(f"{path}: not a MusicXML or Humdrum file")
    converter_ = converter.Converter()
    converter_.parseFileNoPickle(Path(path), format=SOURCE_FORMATS[suffix])
    return converter_.stream


def _load_one(job: _Job) -> tuple[int, Chorale | None, str]:
    """Parse one file and convert it; returns (number, chorale, "") or (number, None, reason)."""
    try:
        score = _parse(job.path)
        if score.metadata is not None:  # as corpus.parse and corpus.chorales.Iterator do
            score.metadata.corpusFilePath = f"bach/{Path(job.path).name}"
            score.metadata.title = job.title
        return job.number, chorale_from_score(score, job.number, job.repeats), ""
    except ChoraleError as error:
        return job.number, None, str(error)
    except Exception as error:  # music21's parsers raise many kinds of exception on a bad file
        return job.number, None, f"chorale {job.number}: music21 failed: {type(error).__name__}: {error}"


def _run(jobs: list[_Job], workers: int) -> Iterable[tuple[int, Chorale | None, str]]:
    """``_load_one`` of every job, in order; in a pool of ``workers`` processes when there are enough jobs."""
    if workers <= 1 or len(jobs) < SERIAL_BELOW:
        return [_load_one(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_load_one, jobs, chunksize=max(1, len(jobs) // (workers * 8))))


def load_music21_chorales(repeats: str, on_bad_file: str, numbers: list[int] | None = None, *,
                          workers: int = 1) -> tuple[list[Chorale], list[dict]]:
    """The chorales (all 371, or ``numbers``) sorted by Riemenschneider number, and the skipped ones.

    A skip row is ``{"file": <corpus file name or "">, "number": n, "reason": text}``; with
    ``on_bad_file="error"`` the first unusable chorale raises ``ChoraleError`` instead. ``workers`` processes
    parse the files (the order and the result do not depend on it), always from their source (see ``_parse``).
    """
    check_source_options(repeats, on_bad_file)
    wanted = sorted(set(NUMBERS if numbers is None else numbers))
    table = riemenschneider_table()
    shared = _shared_files(table)

    skipped: dict[int, dict] = {}
    jobs: list[_Job] = []
    for number in wanted:
        row = table.get(number)
        if row is None:
            skipped[number] = {"file": "", "number": number,
                               "reason": f"chorale {number}: no such Riemenschneider number in music21's list"}
            continue
        bwv = str(row["bwv"])
        path = corpus_file(bwv)
        if path is None:
            skipped[number] = {"file": f"bwv{bwv}", "number": number,
                               "reason": f"chorale {number}: music21's corpus has no file bwv{bwv}"}
            continue
        jobs.append(_Job(number, str(path), str(row["title"]), repeats))

    loaded: dict[int, Chorale] = {}
    for job, (number, chorale, reason) in zip(jobs, _run(jobs, workers), strict=True):
        if chorale is None:
            skipped[number] = {"file": Path(job.path).name, "number": number, "reason": reason}
        else:
            if number in shared:
                chorale = replace(chorale, notes_info={**chorale.notes_info, "same_file_as": shared[number]})
            loaded[number] = chorale

    if on_bad_file == "error" and skipped:
        first = skipped[min(skipped)]
        raise ChoraleError(f"{first['reason']} [{first['file'] or 'no file'}]")
    return [loaded[n] for n in sorted(loaded)], [skipped[n] for n in sorted(skipped)]
