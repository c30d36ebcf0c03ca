"""Engrave a chorale soprano as a PNG with the LilyPond binary of the PyPI package ``lilypond``.

:func:`lilypond_source` writes a complete document (absolute pitches, every duration explicit, ties, fermatas, the
source's bar lines as bar checks, a pickup as ``\\partial``, irregular bars by setting ``Timing.measureLength``, so
LilyPond draws no bar line the source lacks; a very long bar may break across lines) on one page tall enough for the
whole melody. :func:`engrave_png` runs::

    lilypond -dbackend=cairo -dno-point-and-click --png -dresolution=150 -o score score.ly

in a temporary directory (Cairo draws the page itself: a fifth less time per batch than the PostScript backend
through Ghostscript), which makes exactly one PNG (a second page would be an error), trims the white page
around the music to a margin of :data:`MARGIN_PX` with Pillow and writes it to ``out`` atomically. LilyPond's own
``-dcrop`` is not used: it stacks the title and the systems without their spacing, so a fermata in the first
system runs into the title. The same source gives the same bytes (no dates or paths end up in the image).

:func:`engrave_pngs` engraves many chorales with one such command on all their files (``s0000.ly s0001.ly ...``,
one PNG each; a LilyPond start costs about a second, a short melody a fraction of that) and trims each exactly as
:func:`engrave_png` does, so a PNG has the same bytes either way; if that run fails, each is engraved alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

from rnnmem.chorales import events
from rnnmem.chorales.events import Chorale, ChoraleError, Event
from rnnmem.core.atomic import atomic_path, naming_failed_writes

LILYPOND_ARGS = ("-dbackend=cairo", "-dno-point-and-click", "--png", "-dresolution=150")
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
        _write_source(work_dir, "score", source)
        result = _run_lilypond(executable, work_dir, ["-o", "score", "score.ly"], timeout,
                               f"chorale {chorale.number}")
        pngs = sorted(work_dir.glob("*.png"))
        if result.returncode != 0 or len(pngs) != 1:
            raise _failure(f"chorale {chorale.number}", result, len(pngs))
        with atomic_path(out) as tmp:
            trim_png(pngs[0], tmp)


def engrave_pngs(items: list[tuple[Chorale, Path, str]], timeout: float = 120) -> dict[Path, str | None]:
    """Engrave many sopranos ``(chorale, out, title)`` with ONE LilyPond process (a start costs about a second,
    the music far less); the PNG of each is byte-identical to :func:`engrave_png`'s.

    Returns per ``out`` None (written) or why not (the first line of the error, at most 200 characters), so one
    bad melody never stops the others. The batch may run ``timeout * len(items)`` seconds; if it fails or times
    out, the items are engraved one by one with :func:`engrave_png` (each with ``timeout``), which says which one
    failed and why, exactly as alone. A chorale that cannot be written safely is refused before LilyPond runs.
    """
    outs = [Path(out) for _, out, _ in items]
    if len(set(outs)) != len(outs):
        raise ValueError("engrave_pngs: two items share an output path")
    problems: dict[Path, str | None] = {}
    sources: list[tuple[Chorale, Path, str, str]] = []
    for chorale, out, title in items:
        try:
            sources.append((chorale, Path(out), title, lilypond_source(chorale, title)))
        except ChoraleError as error:
            problems[Path(out)] = _problem(error)
    if len(sources) > 1:
        with contextlib.suppress(ChoraleError):  # no LilyPond binary: each item below says so, as alone
            sources = _engrave_batch(lilypond_executable(), sources, timeout, problems)
    for chorale, out, title, _ in sources:  # what the batch did not make: alone, to get each one's own error
        problems[out] = _engrave_alone(chorale, out, title, timeout)
    return {out: problems[out] for out in outs}


def _engrave_batch(executable: Path, sources: list[tuple[Chorale, Path, str, str]], timeout: float,
                   problems: dict[Path, str | None]) -> list[tuple[Chorale, Path, str, str]]:
    """Run LilyPond once on every source and write the PNG of each that made exactly one page (None into
    ``problems``); returns the items it did not engrave: all of them if LilyPond failed or timed out."""
    with tempfile.TemporaryDirectory(prefix="engrave-") as work:
        work_dir = Path(work)
        stems = [f"s{index:04d}" for index in range(len(sources))]
        for stem, (_, _, _, source) in zip(stems, sources, strict=True):
            _write_source(work_dir, stem, source)
        try:
            result = _run_lilypond(executable, work_dir, [f"{stem}.ly" for stem in stems],
                                   timeout * len(sources), f"{len(sources)} chorales")
        except ChoraleError:
            return sources
        if result.returncode != 0:
            return sources
        left = []
        for stem, item in zip(stems, sources, strict=True):
            pngs = [work_dir / f"{stem}.png", *work_dir.glob(f"{stem}-*.png")]
            if not pngs[0].is_file() or len(pngs) != 1 or not _write_trimmed(pngs[0], item[1]):
                left.append(item)
            else:
                problems[item[1]] = None
        return left


def _write_trimmed(png: Path, out: Path) -> bool:
    """Trim ``png`` into ``out`` atomically; False (nothing written) if the image is empty."""
    try:
        with atomic_path(out) as tmp:
            trim_png(png, tmp)
    except ChoraleError:
        return False
    return True


def _engrave_alone(chorale: Chorale, out: Path, title: str, timeout: float) -> str | None:
    try:
        engrave_png(chorale, out, title, timeout=timeout)
    except ChoraleError as error:
        return _problem(error)
    return None


def _problem(error: ChoraleError) -> str:
    """What a sample listing records of a failed engraving: the first line, at most 200 characters."""
    return str(error).splitlines()[0][:200] if str(error) else ""


def _write_source(work_dir: Path, stem: str, source: str) -> None:
    with naming_failed_writes(work_dir / f"{stem}.ly"):
        (work_dir / f"{stem}.ly").write_text(source, encoding="utf-8")


def _run_lilypond(executable: Path, work_dir: Path, args: list[str], timeout: float,
                  what: str) -> subprocess.CompletedProcess:
    """Run LilyPond in ``work_dir`` with ``args`` (input files, maybe preceded by ``-o name``); ChoraleError with
    the tail of its messages if it runs past ``timeout`` seconds (``what`` names what it engraved)."""
    command = [str(executable), *LILYPOND_ARGS, *args]
    try:
        return subprocess.run(command, cwd=work_dir, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "LANG": "C", "LC_ALL": "C"})
    except subprocess.TimeoutExpired as error:
        tail = (error.stderr or b"")[-STDERR_TAIL:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        raise ChoraleError(f"{what}: LilyPond timed out after {timeout} s\n{tail}") from error


def _failure(what: str, result: subprocess.CompletedProcess, pngs: int) -> ChoraleError:
    status = f"exit status {result.returncode}" if result.returncode else f"{pngs} PNG files"
    tail = (result.stderr or result.stdout)[-STDERR_TAIL:]
    return ChoraleError(f"{what}: LilyPond failed ({status})\n{tail}")


def trim_png(source: Path, target: Path, margin: int = MARGIN_PX) -> None:
    """Copy a PNG cropped to its non-white content plus ``margin`` pixels (clipped to the image), in grayscale."""
    from PIL import Image, ImageOps

    with Image.open(source) as image:
        # Cairo draws on an opaque white page; were it ever transparent (black once grayscale), put it on white
        if "A" in image.getbands() and image.getpixel((0, 0))[-1] < 255:
            image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
        gray = image.convert("L")  # once: the bounding box and the output both come from it
    box = ImageOps.invert(gray).getbbox()
    if box is None:
        raise ChoraleError(f"LilyPond made an empty image: {source.name}")
    left, top, right, bottom = box
    box = (max(0, left - margin), max(0, top - margin), min(gray.width, right + margin),
           min(gray.height, bottom + margin))
    # Grayscale (engraving is black on white), default compression: 5x faster to write than optimize=True on RGB,
    # and 40% smaller.
    gray.crop(box).save(target, format="PNG")
