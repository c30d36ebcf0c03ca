"""Engrave a chorale soprano as a PNG with the LilyPond binary of the PyPI package ``lilypond``.

:func:`lilypond_source` writes a complete document (absolute pitches, every duration explicit, ties, fermatas, the
source's bar lines as bar checks, a pickup as ``\\partial``, irregular bars by setting ``Timing.measureLength``, so
LilyPond draws no bar line the source lacks; a very long bar may break across lines) on one page tall enough for the
whole melody. :func:`engrave_png` runs::

    lilypond -dbackend=eps -dno-gs-load-fonts -dinclude-eps-fonts -dno-point-and-click \\
             --png -dresolution=150 -o score score.ly

in a temporary directory, which makes exactly one PNG (a second page would be an error), trims the white page
around the music to a margin of :data:`MARGIN_PX` with Pillow and writes it to ``out`` atomically. LilyPond's own
``-dcrop`` is not used: it stacks the title and the systems without their spacing, so a fermata in the first
system runs into the title. The same source gives the same bytes (no dates or paths end up in the image).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

from rnnmem.chorales import events
from rnnmem.chorales.events import Chorale, ChoraleError, Event
from rnnmem.core.atomic import atomic_path, naming_failed_writes

LILYPOND_ARGS = ("-dbackend=eps", "-dno-gs-load-fonts", "-dinclude-eps-fonts", "-dno-point-and-click", "--png",
                 "-dresolution=150")
LINE_WIDTH_CM = 16
MARGIN_PX = 12
STDERR_TAIL = 2000
# A bar longer than this many times the time signature may break across lines (a generated melody can hold
# hundreds of notes in one bar; a line that cannot break overflows the page).
BREAKABLE_BAR = 2
# LilyPond input is a program (``#(...)`` is Scheme, run by LilyPond with the user's rights), so nothing read from a
# file goes into it unchecked: the title is a string literal (lily_string), every other spliced value must match
# one of these exactly. A tampered events file or sample that says ``#(system "...")`` as a pitch is refused.
_ACCIDENTAL = "(?:" + "|".join(sorted((a for a in events.LILY_ACCIDENTALS if a), key=len, reverse=True)) + ")?"
_TONIC = re.compile(f"[{events.NOTE_NAMES}]{_ACCIDENTAL}")
_PITCH = re.compile(f"[{events.NOTE_NAMES}]{_ACCIDENTAL}(?:'{{1,6}}|,{{1,6}})?")
_SIGNATURE = re.compile(r"[1-9][0-9]{0,2}/[1-9][0-9]{0,2}")


def lilypond_executable() -> Path:
    """The ``lilypond`` binary shipped by the PyPI package; ChoraleError if it is missing."""
    try:
        import lilypond
    except ImportError as error:
        raise ChoraleError("the PyPI package 'lilypond' is not installed") from error
    path = Path(lilypond.executable())
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ChoraleError(f"LilyPond binary not found or not executable: {path}")
    return path


def lily_string(text: str) -> str:
    """A LilyPond string literal (inside one, ``#`` and ``\\`` are plain characters once escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _moment(length: Fraction) -> str:
    return f"#(ly:make-moment {length.numerator}/{length.denominator})"


def _duration(length: Fraction) -> str:
    """A LilyPond duration for ``\\partial``: ``4``, ``2.``, else ``1*n/d``."""
    try:
        return events.lily_duration(length)
    except ChoraleError:
        return f"1*{length.numerator}/{length.denominator}"


def _event_text(event: Event) -> str:
    body = ("r" if event.kind == "rest" else event.pitch) + events.lily_duration(event.duration)
    return body + ("~" if event.tie and event.kind == "note" else "") + ("\\fermata" if event.fermata else "")


def music_lines(chorale: Chorale) -> list[str]:
    """The soprano, one bar per line: key, time, the notes with bar checks, a final bar line."""
    if chorale.mode not in events.MODES:
        raise ChoraleError(f"chorale {chorale.number}: mode {chorale.mode!r} is not one of {events.MODES}")
    _check_spliced(chorale)
    signatures = list(chorale.time_signatures) or ["4/4"]
    lengths = {events.signature_length(s): s for s in reversed(signatures)}  # first listed wins for equal lengths
    signature = signatures[0]
    current = events.signature_length(signature)
    lines = [f"\\key {chorale.key_tonic} \\{chorale.mode}", f"\\time {signature}"]
    measures = events.measures(chorale.events)
    for index, measure in enumerate(measures):
        length = events.measure_length(measure)
        last = index == len(measures) - 1
        prefix, suffix = [], " |"
        if length != current:
            if index == 0 and length < current and not last:
                prefix.append(f"\\partial {_duration(length)}")
            elif length in lengths and len(measures) > 1:
                current = length
                prefix.append(f"\\time {lengths[length]}")
            elif length > current or not last:  # an irregular bar: this one only, the signature stays
                prefix.append(f"\\set Timing.measureLength = {_moment(length)}")
                suffix = f" | \\set Timing.measureLength = {_moment(current)}"
                if length > BREAKABLE_BAR * current:  # LilyPond breaks lines only at bar lines unless told otherwise
                    prefix.append("\\set Score.forbidBreakBetweenBarLines = ##f")
                    suffix += " \\set Score.forbidBreakBetweenBarLines = ##t"
        if last:
            suffix = ' \\bar "|."'
        lines.append(" ".join([*prefix, *(_event_text(e) for e in measure)]) + suffix)
    return lines


def _check_spliced(chorale: Chorale) -> None:
    """ChoraleError unless the key, the time signatures and every pitch are plain LilyPond names (see _PITCH)."""
    values = [("key tonic", chorale.key_tonic, _TONIC)]
    values += [("time signature", signature, _SIGNATURE) for signature in chorale.time_signatures]
    values += [("pitch", event.pitch, _PITCH) for event in chorale.events if event.kind == "note"]
    for what, value, pattern in values:
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            raise ChoraleError(f"chorale {chorale.number}: {what} {value!r} is not a plain LilyPond name; not "
                               "engraved")
    kinds = {event.kind for event in chorale.events} - {"note", "rest", "bar"}
    if kinds:
        raise ChoraleError(f"chorale {chorale.number}: unknown event kinds {sorted(kinds)}; not engraved")


def page_height_cm(chorale: Chorale) -> int:
    """A page that holds the whole melody: room for the title and 3 cm per system, counting a system per three
    bars or per twelve notes and rests, whichever is more (a 16 cm line holds at least five bars of a chorale
    melody), so one page always suffices and it stays small to render."""
    bars = len(events.measures(chorale.events))
    sounds = sum(1 for e in chorale.events if e.kind != "bar")
    return 10 + 3 * max(-(-bars // 3), -(-sounds // 12))


def lilypond_source(chorale: Chorale, title: str) -> str:
    """A complete LilyPond document for the chorale's soprano, titled ``title``, without tagline."""
    music = "\n".join("    " + line for line in music_lines(chorale))
    return f"""\\version "2.24.0"

\\header {{
  title = {lily_string(title)}
  tagline = ##f
}}

\\paper {{
  indent = 0
  line-width = {LINE_WIDTH_CM}\\cm
  ragged-last = ##t
  ragged-bottom = ##t
  paper-width = {LINE_WIDTH_CM + 2}\\cm
  paper-height = {page_height_cm(chorale)}\\cm
}}

\\score {{
  {{
{music}
  }}
  \\layout {{ }}
}}
"""


def engrave_png(chorale: Chorale, out: Path, title: str, timeout: float = 120) -> None:
    """Engrave the soprano to one tight PNG at ``out`` (written atomically); ChoraleError with the tail of
    LilyPond's messages if it fails or times out."""
    source = lilypond_source(chorale, title)  # first: a chorale that cannot be written safely is refused anyway
    executable = lilypond_executable()
    with tempfile.TemporaryDirectory(prefix="engrave-") as work:
        work_dir = Path(work)
        with naming_failed_writes(work_dir / "score.ly"):
            (work_dir / "score.ly").write_text(source, encoding="utf-8")
        command = [str(executable), *LILYPOND_ARGS, "-o", "score", "score.ly"]
        try:
            result = subprocess.run(command, cwd=work_dir, capture_output=True, text=True, timeout=timeout,
                                    env={**os.environ, "LANG": "C", "LC_ALL": "C"})
        except subprocess.TimeoutExpired as error:
            tail = (error.stderr or b"")[-STDERR_TAIL:]
            tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
            raise ChoraleError(f"chorale {chorale.number}: LilyPond timed out after {timeout} s\n{tail}") from error
        pngs = sorted(work_dir.glob("*.png"))
        if result.returncode != 0 or len(pngs) != 1:
            what = f"exit status {result.returncode}" if result.returncode else f"{len(pngs)} PNG files"
            tail = (result.stderr or result.stdout)[-STDERR_TAIL:]
            raise ChoraleError(f"chorale {chorale.number}: LilyPond failed ({what})\n{tail}")
        with atomic_path(out) as tmp:
            trim_png(pngs[0], tmp)


def trim_png(source: Path, target: Path, margin: int = MARGIN_PX) -> None:
    """Copy a PNG cropped to its non-white content plus ``margin`` pixels (clipped to the image)."""
    from PIL import Image, ImageOps

    with Image.open(source) as image:
        image.load()
    box = ImageOps.invert(image.convert("L")).getbbox()
    if box is None:
        raise ChoraleError(f"LilyPond made an empty image: {source.name}")
    left, top, right, bottom = box
    box = (max(0, left - margin), max(0, top - margin), min(image.width, right + margin),
           min(image.height, bottom + margin))
    image.crop(box).save(target, format="PNG", optimize=True)
