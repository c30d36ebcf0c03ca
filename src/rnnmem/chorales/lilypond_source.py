"""The soprano of a Ph. Hardy LilyPond chorale (the report's source, §3.2), read with python-ly into a Chorale.

python-ly lexes the file and builds its music tree (``ly.music.document``); nothing here matches note text with
regular expressions. The soprano is the voice labelled ``% SOPRANO`` (else the first voice) of the ``<< … >>`` in
the ``upper`` variable; the ``\\time``, ``\\key`` and ``\\partial`` written before that ``<<`` apply to it.

Reading rules:

* pitches: ``\\relative`` resolved in textual order with python-ly's own rule (``Pitch.makeAbsolute``), chords
  counting their first note, octave checks (``c=''``) enforced like LilyPond does; the start pitch of a
  ``\\relative`` without one is c' before LilyPond 2.18 and f from 2.18 on (the ``\\version`` of the file).
* durations: exact Fractions of a whole note; python-ly carries implicit durations over, keeps dots and ``*n/m``;
  ``\\times``/``\\tuplet`` scale what they hold. Grace notes are dropped and counted.
* bar events: measure boundaries computed from ``\\time``, ``\\partial`` and ``\\set Timing.measureLength`` /
  ``measurePosition`` the way LilyPond's Timing translator does (the wrap at a moment uses the measure length
  in force before the settings made at that moment, which is what Hardy's short-measure tricks rely on). A
  ``\\time`` change in the middle of a measure ends it (Hardy's section changes in No. 11). ``|`` bar checks are
  only validated (mismatches listed in ``notes_info``); ``\\bar "…"`` is ignored. No bar event at the very end.
* repeats: ``as_written`` keeps a volta repeat once followed by its alternatives in order (the report's choice);
  ``unfold`` plays it N times with the alternatives LilyPond gives each pass; there the timing settings inside
  alternatives (which only fix the as-written layout) are ignored. ``\\repeat unfold``/``percent`` always unfold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import ly.document
import ly.lex
import ly.music
import ly.pitch
from ly.music import items

from rnnmem.chorales.events import MODES, NOTE_NAMES, Chorale, ChoraleError, Event, check_source_options
from rnnmem.chorales.file_names import duplicate_of, file_bwv, file_number, title_from_name

PARALLEL_ABOVE = 20  # files; more than this are parsed by a pool of the rule's threads processes

ALTERATIONS = {Fraction(-1): "eses", Fraction(-1, 2): "es", Fraction(0): "", Fraction(1, 2): "is", Fraction(1): "isis"}
FERMATAS = frozenset({"\\fermata", "\\shortfermata", "\\longfermata", "\\verylongfermata"})
VOICE_LABEL = re.compile(r"^%+\s*(soprano|sopran|discant|alto|alt|tenor|tenore|bass|basse|basso)\b", re.IGNORECASE)
SOPRANO_LABELS = frozenset({"soprano", "sopran", "discant"})
TIMING_PROPERTIES = ("measureLength", "measurePosition", "timing")
MAX_LISTED = 20  # at most this many entries in a notes_info list


# --- the public entry points --------------------------------------------------------------------------------------

def parse_score(path: Path, repeats: str = "as_written") -> Chorale:
    """The soprano of one Hardy .ly file as a Chorale (source "lilypond"); ChoraleError names the file and problem."""
    path = Path(path)
    check_source_options(repeats)
    name = path.name
    number = file_number(path)
    if number is None:
        raise ChoraleError(f"{name}: the file name does not start with a chorale number (NNN-)")
    text = _read_text(path)
    tree, comments, unlexed = _read_music(text, name)
    scope, prelude, voice, found_by = _find_soprano(tree, comments, text, name)
    spans = [(node.position, node.end_position()) for node in [*prelude, voice]]
    for position, word in unlexed:
        if any(start <= position < end for start, end in spans):
            raise ChoraleError(f"{name}: LilyPond syntax error at line {_line(text, position)}: "
                               f"unexpected {word!r} in the soprano")
    reader = _SopranoReader(name=name, text=text, repeats=repeats, version=_version(tree), spans=spans)
    reader.read(scope, [*prelude, voice])
    if reader.key is None:
        raise ChoraleError(f"{name}: unknown key: no \\key before or in the soprano")
    if not any(e.kind == "note" for e in reader.events):
        raise ChoraleError(f"{name}: the soprano has rests only (no notes)")
    bwv, bwv_other = file_bwv(path)
    tonic, mode = reader.key
    return Chorale(
        number=number, bwv=bwv, title=_title(tree) or title_from_name(path), source="lilypond",
        time_signatures=reader.time_signatures or ["4/4"], key_tonic=tonic, mode=mode, events=reader.events,
        notes_info=_notes_info(reader, name, repeats, found_by, bwv_other, unlexed),
    )


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, a byte-order mark dropped); ChoraleError when it cannot be read or decoded."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ChoraleError(f"{path.name}: cannot be read ({error})") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ChoraleError(f"{path.name}: not UTF-8 ({error.reason} at byte {error.start})") from error
    return text.removeprefix("\ufeff")


def _read_music(text: str, name: str) -> tuple[items.Document, list[tuple[int, str]], list[tuple[int, str]]]:
    """python-ly's music tree of the text, its comments and the words its lexer left unread."""
    doc = ly.document.Document(text)
    comments, unlexed = _check_syntax(doc, text, name)
    try:
        tree = ly.music.document(doc)
    except Exception as error:  # python-ly's reader failing on odd input is a problem of the file
        raise ChoraleError(f"{name}: python-ly cannot read the music ({type(error).__name__}: {error})") from error
    return tree, comments, unlexed


def _notes_info(reader: _SopranoReader, name: str, repeats: str, found_by: str, bwv_other: str | None,
                unlexed: list[tuple[int, str]]) -> dict[str, Any]:
    """What the chorale's ``notes_info`` says about how it was read (see the module doc)."""
    info: dict[str, Any] = {"file": name, "repeats": repeats, "soprano_found_by": found_by}
    if bwv_other:
        info["bwv_alternative"] = bwv_other
    info.update(reader.info())
    if not reader.time_signatures:
        info["time_signature_default"] = "4/4"
    if unlexed:
        info["unlexed_text_ignored"] = [f"line {_line(reader.text, position)}: {word!r}"
                                        for position, word in unlexed[:MAX_LISTED]]
    return info


def load_lilypond_chorales(files: list[Path], repeats: str = "as_written", on_bad_file: str = "skip",
                           workers: int = 1) -> tuple[list[Chorale], list[dict]]:
    """Parse every file; the chorales sorted by number and one skip row per unusable file (duplicates included).

    A skip row is ``{"file": name, "number": n or None, "reason": text}``. With ``on_bad_file="error"`` the first
    bad file in the given order raises ChoraleError naming it (transposed duplicates are skipped all the same).
    With ``workers`` > 1 (the rule's threads), more than PARALLEL_ABOVE files are parsed by that many processes;
    the result does not depend on it.
    """
    check_source_options(repeats, on_bad_file)
    files = [Path(f) for f in files]
    chorales: list[Chorale] = []
    skipped: list[dict] = []
    for path, (status, value) in zip(files, _parse_all(files, repeats, workers), strict=True):
        if status == "ok":
            chorales.append(value)
            continue
        row = {"file": path.name, "number": file_number(path), "reason": value}
        if status == "bad" and on_bad_file == "error":
            raise ChoraleError(value if value.startswith(path.name) else f"{path.name}: {value}")
        skipped.append(row)
    chorales.sort(key=lambda c: c.number)
    return chorales, skipped


def _parse_one(path: Path, repeats: str) -> tuple[str, Any]:
    """("ok", chorale), ("duplicate", reason) or ("bad", reason) — what a worker process sends back."""
    original = duplicate_of(path)
    if original is not None:
        return "duplicate", f"transposed duplicate of No. {original} (TRANSPO-du-{original:03d})"
    try:
        return "ok", parse_score(path, repeats)
    except ChoraleError as error:
        return "bad", str(error)


def _parse_all(files: list[Path], repeats: str, workers: int) -> Iterator[tuple[str, Any]]:
    if workers <= 1 or len(files) <= PARALLEL_ABOVE:
        for path in files:
            yield _parse_one(path, repeats)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        try:
            yield from pool.map(_parse_one, files, [repeats] * len(files), chunksize=8)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


# --- the document: syntax, comments, header ----------------------------------------------------------------------

def _line(text: str, position: int) -> int:
    return text.count("\n", 0, max(position, 0)) + 1


def _check_syntax(doc: ly.document.Document, text: str,
                  name: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Raise ChoraleError on unbalanced brackets; return the comments and the text python-ly could not lex.

    Unlexed words are only fatal inside the soprano (the caller checks): LilyPond itself accepts, say, a misspelt
    context property in the \\midi block (two Hardy files have ``tempoWholdisPerMinute``).
    """
    source = ly.document.Source(ly.document.Cursor(doc), True, tokens_with_position=True)
    comments: list[tuple[int, str]] = []
    unlexed: list[tuple[int, str]] = []
    stack: list[tuple[str, int]] = []
    closers = {"}": "{", ">>": "<<"}
    for token in source:
        if isinstance(token, ly.lex.Comment):
            comments.append((token.pos, str(token)))
            continue
        if isinstance(token, ly.lex.String):
            continue
        if isinstance(token, ly.lex.Unparsed) and token.strip() not in ("}", ">>", ">", "{", "<<", "<"):
            unlexed.append((token.pos, str(token)))
            continue
        if token in ("{", "<<"):
            stack.append((str(token), token.pos))
        elif token in closers:
            if not stack or stack[-1][0] != closers[token] or isinstance(token, ly.lex.Unparsed):
                opened = f"{stack[-1][0]!r} of line {_line(text, stack[-1][1])}" if stack else "anything"
                raise ChoraleError(f"{name}: LilyPond syntax error at line {_line(text, token.pos)}: {str(token)!r} "
                                   f"does not close {opened} (unbalanced braces)")
            stack.pop()
    if stack:
        opener, position = stack[-1]
        raise ChoraleError(f"{name}: LilyPond syntax error: {opener!r} of line {_line(text, position)} is never closed")
    if source.state.depth() > 1:
        raise ChoraleError(f"{name}: LilyPond syntax error: the file ends inside "
                           f"{type(source.state.parser()).__name__} (unterminated string, comment or chord?)")
    return comments, unlexed


def _version(tree: items.Document) -> tuple[int, ...]:
    for node in tree:
        if isinstance(node, items.Version):
            version = node.version()
            if version:
                return tuple(version)
    return (2, 14)


def _title(tree: items.Document) -> str:
    """The header's ``piece`` markup as plain text."""
    for header in tree.find(items.Header):
        for assignment in header.find(items.Assignment):
            if assignment.name() == "piece" and assignment.value() is not None:
                value = assignment.value()
                text = value.plaintext() if isinstance(value, (items.Markup, items.String)) else ""
                return " ".join(text.split())
    return ""


# --- finding the soprano -----------------------------------------------------------------------------------------

def _is_music(node: items.Item) -> bool:
    return isinstance(node, (items.Music, items.Durable))


def _voice_label(node: items.Item, since: int, comments: list[tuple[int, str]]) -> str | None:
    """soprano/alto/tenor/bass: the first voice-naming comment from ``since`` to the voice's end, else its id."""
    end = node.end_position()
    for position, comment in comments:
        if since <= position < end:
            match = VOICE_LABEL.match(comment.strip())
            if match:
                return match.group(1).lower()
    contexts = [node] if isinstance(node, items.Context) else []
    for context in [*contexts, *node.find(items.Context)]:
        context_id = str(context.context_id() or "").strip().lower()
        if context_id in SOPRANO_LABELS or context_id in ("alto", "tenor", "bass", "basse"):
            return context_id
    return None


def _first_simultaneous(node: items.Item, prelude: list[items.Item]) -> items.MusicList | None:
    """Depth-first, the first ``<< … >>``; ``prelude`` receives what comes before it in sequential music."""
    for child in node:
        if isinstance(child, items.MusicList) and child.simultaneous:
            return child
        if isinstance(child, items.MusicList | items.Context | items.Relative | items.Absolute):
            before: list[items.Item] = []
            found = _first_simultaneous(child, before)
            if found is not None:
                prelude.extend(before)
                return found
        prelude.append(child)
    return None


def _find_soprano(tree: items.Document, comments: list[tuple[int, str]], text: str,
                  name: str) -> tuple[items.Item, list[items.Item], items.Item, str]:
    """(the music holding the voices, what comes before the voices, the soprano voice, how it was recognised).

    \\relative pitches are resolved over the whole first item, as LilyPond reads it in textual order.
    """
    assignments = {str(a.name()): a for a in tree if isinstance(a, items.Assignment)}
    upper = assignments.get("upper")
    if upper is None or not _is_music(upper.value()):
        for label in ("soprano", "sopran", "Soprano", "sopranoMusic"):
            if label in assignments and _is_music(assignments[label].value()):
                return assignments[label].value(), [], assignments[label].value(), f"variable {label}"
        raise ChoraleError(f"{name}: no soprano voice found (no `upper` variable and no `soprano` variable)")
    prelude: list[items.Item] = []
    simultaneous = _first_simultaneous(upper.value(), prelude)
    if simultaneous is None:
        raise ChoraleError(f"{name}: no soprano voice found (the `upper` variable has no << … >> of voices)")
    voices = [child for child in simultaneous if _is_music(child)]
    if not voices:
        raise ChoraleError(f"{name}: no soprano voice found (the << … >> of `upper` holds no voice)")
    starts = [simultaneous.position, *(voice.end_position() for voice in voices[:-1])]
    labels = [_voice_label(voice, since, comments) for voice, since in zip(voices, starts, strict=True)]
    for index, (voice, label) in enumerate(zip(voices, labels, strict=True)):
        if label in SOPRANO_LABELS:
            how = "comment/name" if index == 0 else f"comment/name (voice {index + 1})"
            return upper.value(), prelude, voice, how
    if labels[0] is not None:
        raise ChoraleError(f"{name}: no soprano voice found: the first voice of `upper` (line "
                           f"{_line(text, voices[0].position)}) is labelled {labels[0]}")
    return upper.value(), prelude, voices[0], "first voice"


# --- reading the voice -------------------------------------------------------------------------------------------

@dataclass
class _NoteMarks:
    tie: bool = False
    fermata: bool = False


def _lily_name(pitch: ly.pitch.Pitch, octave: bool = True) -> str:
    alter = Fraction(pitch.alter).limit_denominator(4)
    if alter not in ALTERATIONS:
        raise ValueError(f"pitch {pitch.output()} has an alteration the LilyPond pitch names here cannot spell")
    marks = ""
    if octave:
        marks = "'" * pitch.octave if pitch.octave > 0 else "," * -pitch.octave
    return NOTE_NAMES[pitch.note] + ALTERATIONS[alter] + marks


def _self_and_descendants(node: items.Item) -> Iterable[items.Item]:
    yield node
    for child in node:
        yield from _self_and_descendants(child)


@dataclass
class _SopranoReader:
    name: str
    text: str
    repeats: str
    version: tuple[int, ...]
    spans: list[tuple[int, int]]  # where the prelude and the soprano are in the text
    events: list[Event] = field(default_factory=list)
    time_signatures: list[str] = field(default_factory=list)
    key: tuple[str, str] | None = None
    # relative pitches and post-events, by id() of the tree node
    absolute: dict[int, ly.pitch.Pitch] = field(default_factory=dict)
    marks: dict[int, _NoteMarks] = field(default_factory=dict)
    # timing, in whole notes
    measure_length: Fraction = Fraction(1)
    wrap_length: Fraction = Fraction(1)  # the measure length in force at the previous moment
    position: Fraction = Fraction(0)
    timing: bool = True
    force_bar: str | None = None  # why the next moment starts a measure whatever the position
    since_bar: bool = False
    in_alternative: int = 0
    # what notes_info reports
    grace_notes_dropped: int = 0
    bar_check_mismatches: list[str] = field(default_factory=list)
    notes_across_bar_lines: list[str] = field(default_factory=list)
    measures_cut_by_time_changes: list[str] = field(default_factory=list)
    octave_check_corrections: list[str] = field(default_factory=list)
    key_changes: list[str] = field(default_factory=list)
    chords_reduced: int = 0
    spacers_as_rests: int = 0
    rest_fermatas: int = 0
    ignored_timing_in_alternatives: int = 0
    ignored_commands: set[str] = field(default_factory=set)

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"grace_notes_dropped": self.grace_notes_dropped}
        listed = {"bar_check_mismatches": self.bar_check_mismatches,
                  "notes_across_bar_lines": self.notes_across_bar_lines,
                  "measures_cut_by_time_changes": self.measures_cut_by_time_changes,
                  "octave_check_corrections": self.octave_check_corrections, "key_changes": self.key_changes}
        for key, values in listed.items():
            if values:
                info[key] = values[:MAX_LISTED] + ([f"... {len(values) - MAX_LISTED} more"]
                                                   if len(values) > MAX_LISTED else [])
        counted = {"chords_reduced_to_top_note": self.chords_reduced, "spacers_as_rests": self.spacers_as_rests,
                   "rest_fermatas": self.rest_fermatas,
                   "timing_settings_ignored_in_unfolded_alternatives": self.ignored_timing_in_alternatives}
        info.update({key: value for key, value in counted.items() if value})
        if self.ignored_commands:
            info["unknown_commands_ignored"] = sorted(self.ignored_commands)
        return info

    def ours(self, node: items.Item) -> bool:
        return any(start <= node.position < end for start, end in self.spans)

    def where(self, node: items.Item) -> str:
        return f"line {_line(self.text, node.position)}"

    def fail(self, node: items.Item, problem: str) -> ChoraleError:
        return ChoraleError(f"{self.name}: {problem} ({self.where(node)})")

    def spell(self, node: items.Item, pitch: ly.pitch.Pitch, octave: bool = True) -> str:
        try:
            return _lily_name(pitch, octave)
        except ValueError as error:
            raise self.fail(node, str(error)) from error

    # -- pass 1: absolute pitches and the post-events of each note, in textual order

    def read(self, scope: items.Item, nodes: list[items.Item]) -> None:
        """Resolve pitches and note marks over ``scope`` (all voices), then play ``nodes`` (prelude and soprano)."""
        default_start = ly.pitch.Pitch.c1() if self.version < (2, 18) else ly.pitch.Pitch.f0()
        self.resolve(scope, None, [None], default_start)
        for node in nodes:
            self.walk(node, Fraction(1))

    def resolve(self, node: items.Item, reference: ly.pitch.Pitch | None, last: list,
                default_start: ly.pitch.Pitch) -> ly.pitch.Pitch | None:
        """Record absolute pitches (``reference`` is the previous pitch inside a \\relative, None outside)."""
        if isinstance(node, items.KeySignature | items.Transpose):
            return reference
        if isinstance(node, items.Relative):
            children = list(node)
            start = children[0] if len(children) > 1 and isinstance(children[0], items.Note) else None
            inner = start.pitch.copy() if start is not None else default_start.copy()
            for child in children[1 if start is not None else 0:]:
                inner = self.resolve(child, inner, last, default_start)
            return reference
        if isinstance(node, items.Absolute):
            for child in node:
                self.resolve(child, None, last, default_start)
            return reference
        if isinstance(node, items.Note):
            last[0] = node
            self.marks[id(node)] = _NoteMarks()
            return self.absolute_pitch(node, reference)
        if isinstance(node, items.Chord):
            last[0] = node
            self.marks[id(node)] = _NoteMarks()
            first, inner = None, reference
            for child in node:
                if isinstance(child, items.Note):
                    inner = self.absolute_pitch(child, inner)
                    first = first or inner
            return first if reference is not None and first is not None else reference
        if isinstance(node, items.Rest | items.Skip):
            last[0] = node
            self.marks[id(node)] = _NoteMarks()
            return reference
        if isinstance(node, items.Tie | items.Articulation | items.Postfix):
            target = self.marks.get(id(last[0])) if last[0] is not None else None
            for item in _self_and_descendants(node):
                if target is not None and isinstance(item, items.Tie):
                    target.tie = True
                if target is not None and isinstance(item, items.Articulation) and item.token in FERMATAS:
                    target.fermata = True
            return reference
        for child in node:
            reference = self.resolve(child, reference, last, default_start)
        return reference

    def absolute_pitch(self, note: items.Note, reference: ly.pitch.Pitch | None) -> ly.pitch.Pitch | None:
        pitch = note.pitch.copy()
        if reference is not None:
            pitch.makeAbsolute(reference)
            check = note.pitch.octavecheck
            if check is not None and check != pitch.octave:
                if self.ours(note):
                    self.octave_check_corrections.append(f"{self.where(note)}: {pitch.output()} -> octave check "
                                                         f"{note.pitch.output()}")
                pitch.octave = check
        self.absolute[id(note)] = pitch
        return pitch if reference is not None else None

    # -- pass 2: events and bars, in performance order

    def walk(self, node: items.Item, scale: Fraction) -> None:
        handler = getattr(self, "on_" + type(node).__name__, None)
        if handler is not None:
            handler(node, scale)
        elif isinstance(node, items.Music):
            for child in node:
                self.walk(child, scale)
        # anything else (tokens, markup, scheme, clefs, tempo, overrides, articulations...) has no effect

    def on_MusicList(self, node: items.MusicList, scale: Fraction) -> None:
        if node.simultaneous and sum(1 for child in node if _is_music(child)) > 1:
            raise self.fail(node, "simultaneous voices inside the soprano voice are not supported")
        for child in node:
            self.walk(child, scale)

    def on_Relative(self, node: items.Relative, scale: Fraction) -> None:
        children = list(node)
        start = 1 if len(children) > 1 and isinstance(children[0], items.Note) else 0
        for child in children[start:]:
            self.walk(child, scale)

    def on_Context(self, node: items.Context, scale: Fraction) -> None:
        for child in node:
            if _is_music(child):
                self.walk(child, scale)

    def on_Transpose(self, node: items.Transpose, scale: Fraction) -> None:
        raise self.fail(node, "\\transpose inside the soprano is not supported")

    def on_Scaler(self, node: items.Scaler, scale: Fraction) -> None:
        for child in node:
            if _is_music(child):
                self.walk(child, scale * Fraction(node.scaling))

    def on_Grace(self, node: items.Grace, scale: Fraction) -> None:
        self.grace_notes_dropped += sum(1 for item in _self_and_descendants(node)
                                        if isinstance(item, items.Note | items.Chord) and item.parent() is not None
                                        and not isinstance(item.parent(), items.Chord))

    def on_AfterGrace(self, node: items.AfterGrace, scale: Fraction) -> None:
        for child in node:
            if isinstance(child, items.Grace):
                self.on_Grace(child, scale)
            else:
                self.walk(child, scale)

    def on_UserCommand(self, node: items.UserCommand, scale: Fraction) -> None:
        value = node.value()
        if value is not None and _is_music(value):
            self.walk(value, scale)
        else:
            self.ignored_commands.add(str(node.token))

    def on_Repeat(self, node: items.Repeat, scale: Fraction) -> None:
        children = list(node)
        alternative = children[-1] if children and isinstance(children[-1], items.Alternative) else None
        body = [child for child in children if child is not alternative]
        endings: list[items.Item] = []
        if alternative is not None:
            holder = alternative[0] if len(alternative) and isinstance(alternative[0], items.MusicList) else alternative
            endings = [child for child in holder if _is_music(child)]
        kind = str(node.specifier() or "volta")
        count = max(node.repeat_count(), len(endings), 1)
        if kind == "tremolo":
            raise self.fail(node, "\\repeat tremolo inside the soprano is not supported")
        if kind in ("volta", "segno") and self.repeats == "as_written":
            self.play(body, None, scale)
            for ending in endings:
                self.play([], ending, scale)
            return
        for index in range(count):
            ending = endings[max(0, index - (count - len(endings)))] if endings else None
            self.play(body, ending, scale)

    def play(self, body: list[items.Item], ending: items.Item | None, scale: Fraction) -> None:
        for child in body:
            self.walk(child, scale)
        if ending is not None:
            self.in_alternative += 1
            try:
                self.walk(ending, scale)
            finally:
                self.in_alternative -= 1

    def on_Note(self, node: items.Note, scale: Fraction) -> None:
        pitch = self.absolute.get(id(node), node.pitch)
        marks = self.marks.get(id(node), _NoteMarks())
        self.emit(node, "note", self.spell(node, pitch), self.length(node, scale), marks.tie, marks.fermata)

    def on_Chord(self, node: items.Chord, scale: Fraction) -> None:
        pitches = [self.absolute.get(id(child), child.pitch) for child in node if isinstance(child, items.Note)]
        if not pitches:
            raise self.fail(node, "empty chord")
        if len(pitches) > 1:
            self.chords_reduced += 1
        top = max(pitches, key=lambda p: (p.octave * 7 + p.note, p.alter))
        marks = self.marks.get(id(node), _NoteMarks())
        self.emit(node, "note", self.spell(node, top), self.length(node, scale), marks.tie, marks.fermata)

    def on_Rest(self, node: items.Rest, scale: Fraction) -> None:
        marks = self.marks.get(id(node), _NoteMarks())
        if marks.fermata:
            self.rest_fermatas += 1
        if node.token == "R":
            self.multi_measure_rest(node, self.length(node, scale), marks.fermata)
        else:
            self.emit(node, "rest", None, self.length(node, scale), False, marks.fermata)

    def on_Skip(self, node: items.Skip, scale: Fraction) -> None:
        self.spacers_as_rests += 1
        self.emit(node, "rest", None, self.length(node, scale), False, False)

    def on_Unpitched(self, node: items.Unpitched, scale: Fraction) -> None:
        start = node.position  # python-ly keeps only the duration of an unknown word like ``h4``
        while start > 0 and (self.text[start - 1].isalnum() or self.text[start - 1] in "',!?"):
            start -= 1
        word = self.text[start:node.end_position()]
        raise self.fail(node, f"LilyPond syntax error: {word!r} is not a note, rest or command")

    def on_Q(self, node: items.Q, scale: Fraction) -> None:
        raise self.fail(node, "chord repetition 'q' inside the soprano is not supported")

    def on_KeySignature(self, node: items.KeySignature, scale: Fraction) -> None:
        pitch, mode = node.pitch(), node.mode()
        if mode is None:  # python-ly only takes the built-in mode commands as modes
            mode = next((str(child.token)[1:] for child in node if isinstance(child, items.UserCommand)), None)
        if pitch is None or mode is None:
            raise self.fail(node, "unknown key: \\key without a tonic or a mode")
        if mode not in MODES:
            raise self.fail(node, f"unknown key: mode \\{mode} (not one of {', '.join(MODES)})")
        key = (self.spell(node, pitch, octave=False), mode)
        if self.key is None:
            self.key = key
        elif key != self.key:
            self.key_changes.append(f"{self.where(node)}: {key[0]} {key[1]}")

    def on_TimeSignature(self, node: items.TimeSignature, scale: Fraction) -> None:
        fraction = node.fraction()
        signature = f"{node.numerator()}/{Fraction(fraction).denominator}"
        if not self.time_signatures or self.time_signatures[-1] != signature:
            self.time_signatures.append(signature)
        self.measure_length = Fraction(node.measure_length())
        position = self.position % self.wrap_length if self.position >= 0 else self.position
        if self.since_bar and position != 0 and self.timing:
            # a time signature changes at a bar line: Hardy ends the incomplete measure of a section here
            self.measures_cut_by_time_changes.append(f"{self.where(node)}: \\time {signature} {position} into "
                                                     f"the measure")
            self.position = Fraction(0)
            self.force_bar = "time"

    def on_Partial(self, node: items.Partial, scale: Fraction) -> None:
        if self.skip_timing_setting():
            return
        if self.since_bar and self.position != 0:
            self.force_bar = "partial"
        self.position = -Fraction(node.partial_length())

    def on_Set(self, node: items.Set, scale: Fraction) -> None:
        prop = str(node.property() or "")
        if prop not in TIMING_PROPERTIES:
            return
        if prop == "timing":
            value = node.value()
            self.timing = not (isinstance(value, items.Scheme)
                               and any(str(i.token) == "#f" for i in value.find(items.SchemeItem)))
            return
        if self.skip_timing_setting():
            return
        value = node.value()
        moment = None
        if isinstance(value, items.Scheme):
            moment = value.get_ly_make_moment()
            if moment is None:
                scheme_items = [str(i.token) for i in value.find(items.SchemeItem)]
                if len(scheme_items) == 2 and scheme_items[0] == "ly:make-moment":
                    try:
                        moment = Fraction(scheme_items[1])
                    except ValueError:
                        moment = None
        if moment is None:
            raise self.fail(node, f"cannot read the value of \\set Timing.{prop}")
        if prop == "measureLength":
            if moment <= 0:
                raise self.fail(node, "measureLength must be positive")
            self.measure_length = Fraction(moment)
        else:
            self.position = Fraction(moment)

    def on_Command(self, node: items.Command, scale: Fraction) -> None:
        if node.token == "\\cadenzaOn":
            self.timing = False
        elif node.token == "\\cadenzaOff":
            self.timing = True
            self.force_bar = "cadenzaOff" if self.since_bar else None

    def on_PipeSymbol(self, node: items.PipeSymbol, scale: Fraction) -> None:
        if not self.timing or self.force_bar:
            return
        position = self.position % self.wrap_length if self.position >= 0 else self.position
        if position != 0:
            self.bar_check_mismatches.append(f"{self.where(node)}: bar check {position} into the measure")

    def skip_timing_setting(self) -> bool:
        if self.in_alternative and self.repeats == "unfold":
            self.ignored_timing_in_alternatives += 1
            return True
        return False

    # -- time

    @staticmethod
    def length(node: items.Durable, scale: Fraction) -> Fraction:
        base, scaling = node.duration
        return Fraction(base) * Fraction(scaling) * scale

    def new_moment(self) -> None:
        """LilyPond's start of a time step: wrap the measure position with the previous measure length."""
        if not self.timing:
            return
        wrapped = False
        while self.position >= self.wrap_length:
            self.position -= self.wrap_length
            wrapped = True
        if self.since_bar and (wrapped or self.position == 0 or self.force_bar):
            if self.position != 0 and not self.force_bar:
                self.notes_across_bar_lines.append(f"event {len(self.events) - 1}: the bar line falls "
                                                   f"{self.position} before its end")
            self.events.append(Event("bar"))
            self.since_bar = False
        self.force_bar = None

    def emit(self, node: items.Item, kind: str, pitch: str | None, duration: Fraction, tie: bool,
             fermata: bool) -> None:
        if duration <= 0:
            return
        self.new_moment()
        self.events.append(Event(kind, pitch, duration, tie, fermata))
        self.advance(duration)

    def advance(self, duration: Fraction) -> None:
        self.position += duration
        self.wrap_length = self.measure_length
        self.since_bar = True

    def multi_measure_rest(self, node: items.Rest, duration: Fraction, fermata: bool) -> None:
        """``R`` of several measures: one rest per measure, with the bars between them."""
        remaining = duration
        while remaining > 0:
            self.new_moment()
            room = -self.position if self.position < 0 else self.measure_length - self.position
            piece = min(remaining, room) if self.timing and room > 0 else remaining
            remaining -= piece
            self.events.append(Event("rest", None, piece, False, fermata and remaining == 0))
            self.advance(piece)
