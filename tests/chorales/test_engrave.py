"""Engraving a chorale soprano with the LilyPond binary of the PyPI package ``lilypond``."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import lilypond_missing

from rnnmem.chorales import engrave
from rnnmem.chorales.events import Chorale, ChoraleError, Event

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def two_bars(**changes) -> Chorale:
    q, e = Fraction(1, 4), Fraction(1, 8)
    events = [
        Event("note", "g'", q), Event("bar"),
        Event("note", "e'", q * 3 / 2), Event("note", "d'", e), Event("note", "c'", q), Event("note", "d'", q),
        Event("bar"),
        Event("note", "e'", q * 2, tie=True), Event("note", "e'", q), Event("note", "c'", q, fermata=True),
        Event("bar"),
    ]
    fields = dict(number=1, bwv="269", title="Aus meines Herzens Grunde", source="hand", time_signatures=["4/4"],
                  key_tonic="c", mode="major", events=events, transposed_from="g")
    fields.update(changes)
    return Chorale(**fields)


needs_lilypond = pytest.mark.skipif(lilypond_missing() is not None,
                                    reason=f"LilyPond binary unavailable: {lilypond_missing()}")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_lilypond_source() -> None:
    source = engrave.lilypond_source(two_bars(), 'Aus "meines" Herzens')
    assert source.startswith('\\version "2.24.0"')
    assert 'title = "Aus \\"meines\\" Herzens"' in source
    assert "tagline = ##f" in source
    assert "\\key c \\major" in source and "\\time 4/4" in source
    assert "\\partial 4 g'4 |" in source
    assert "e'4. d'8 c'4 d'4 |" in source
    assert "e'2~ e'4 c'4\\fermata" in source
    assert source.rstrip().endswith("}")
    assert '\\bar "|."' in source


def test_lilypond_source_modes_and_irregular_bars() -> None:
    q = Fraction(1, 4)
    events = [Event("note", "c'", q * 4), Event("bar"), Event("note", "d'", q * 3), Event("bar"),
              Event("note", "e'", q * 4), Event("bar"), Event("note", "f'", q * 2), Event("bar"),
              Event("note", "g'", q * 4)]
    source = engrave.lilypond_source(two_bars(mode="dorian", key_tonic="d", events=events,
                                              time_signatures=["4/4", "2/4"]), "x")
    assert "\\key d \\dorian" in source
    assert "\\partial" not in source
    assert "\\set Timing.measureLength = #(ly:make-moment 3/4) d'2. |" in source
    assert "\\time 2/4 f'2 |" in source and "\\time 4/4 g'1" in source
    with pytest.raises(ChoraleError):
        engrave.lilypond_source(two_bars(mode="blues"), "x")


def barless(notes: int) -> Chorale:
    """A generated melody that never draws a bar line: one bar of ``notes`` quarter notes."""
    events = [Event("note", ("c'", "d'", "e'", "g'")[i % 4], Fraction(1, 4)) for i in range(notes)]
    return two_bars(events=events, time_signatures=["4/4"], number=7)


def test_a_long_last_bar_is_drawn_as_generated_and_may_break() -> None:
    source = engrave.lilypond_source(barless(120), "x")
    assert "\\set Timing.measureLength = #(ly:make-moment 30/1)" in source  # no bar line the melody lacks
    assert "\\set Score.forbidBreakBetweenBarLines = ##f" in source
    assert source.count("c'4") == 30 and '\\bar "|."' in source
    short = engrave.lilypond_source(barless(6), "x")  # 6/4 in 4/4: irregular, too short to need breaks
    assert "make-moment 3/2" in short and "forbidBreakBetweenBarLines" not in short
    assert "measureLength" not in engrave.lilypond_source(barless(3), "x")  # a melody shorter than one bar


@needs_lilypond
def test_engrave_a_barless_melody_within_the_line_width(tmp_path: Path) -> None:
    out = tmp_path / "long.png"
    engrave.engrave_png(barless(200), out, "no bar lines", timeout=60)
    width, height = png_size(out.read_bytes())
    # 16 cm at 150 dpi is 945 px: the systems break inside the bar instead of running off the page.
    assert width <= 945 + 2 * engrave.MARGIN_PX and height > 600, (width, height)


@needs_lilypond
def test_engrave_png(tmp_path: Path) -> None:
    out = tmp_path / "scores" / "001.png"
    engrave.engrave_png(two_bars(), out, "1. Aus meines Herzens Grunde", timeout=60)
    data = out.read_bytes()
    width, height = png_size(data)
    assert 200 <= width <= 2000 and 60 <= height <= 600, (width, height)
    assert list(out.parent.iterdir()) == [out]  # no temporary files left beside it
    from PIL import Image

    with Image.open(out) as image:  # grayscale on an opaque white page, whichever backend LilyPond draws with
        assert image.mode == "L" and image.getpixel((0, 0)) == 255 and image.getextrema() == (0, 255)
    engrave.engrave_png(two_bars(), tmp_path / "again.png", "1. Aus meines Herzens Grunde", timeout=60)
    assert (tmp_path / "again.png").read_bytes() == data


@needs_lilypond
def test_engrave_png_reports_lilypond_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engrave, "lilypond_source", lambda chorale, title: "\\version \"2.24.0\"\n{ c'4 \\nonsense }\n")
    with pytest.raises(ChoraleError, match="LilyPond failed") as info:
        engrave.engrave_png(two_bars(), tmp_path / "bad.png", "x", timeout=60)
    assert "nonsense" in str(info.value)
    assert not (tmp_path / "bad.png").exists()


def three_melodies(tmp_path: Path, folder: str) -> list[tuple[Chorale, Path, str]]:
    return [(two_bars(number=1), tmp_path / folder / "a.png", "1. Aus meines Herzens Grunde"),
            (barless(40), tmp_path / folder / "b.png", "forty quarters"),
            (two_bars(number=3, key_tonic="d", mode="minor"), tmp_path / folder / "c.png", "three")]


def count_lilypond_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the command of every subprocess engrave starts (still run)."""
    commands: list[list[str]] = []
    run = engrave.subprocess.run

    def recording(command, **kwargs):
        commands.append(list(command))
        return run(command, **kwargs)

    monkeypatch.setattr(engrave.subprocess, "run", recording)
    return commands


@needs_lilypond
def test_engrave_pngs_is_one_run_with_the_bytes_of_engrave_png(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    items = three_melodies(tmp_path, "batch")
    commands = count_lilypond_runs(monkeypatch)
    assert engrave.engrave_pngs(items, timeout=60) == {out: None for _, out, _ in items}
    assert len(commands) == 1 and sum(arg.endswith(".ly") for arg in commands[0]) == 3
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == ["a.png", "b.png", "c.png"]  # no temporaries
    for chorale, out, title in three_melodies(tmp_path, "alone"):
        engrave.engrave_png(chorale, out, title, timeout=60)
        assert out.read_bytes() == (tmp_path / "batch" / out.name).read_bytes(), out.name


@needs_lilypond
def test_engrave_pngs_flags_the_one_lilypond_rejects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = engrave.lilypond_source
    monkeypatch.setattr(engrave, "lilypond_source", lambda chorale, title: (
        "\\version \"2.24.0\"\n{ c'4 \\nonsense }\n" if chorale.number == 7 else source(chorale, title)))
    items = three_melodies(tmp_path, "batch")  # the second is chorale 7
    commands = count_lilypond_runs(monkeypatch)
    problems = engrave.engrave_pngs(items, timeout=60)
    assert problems[items[0][1]] is None and problems[items[2][1]] is None
    assert problems[items[1][1]] == "chorale 7: LilyPond failed (exit status 1)"
    assert len(commands) == 1 + 3  # the batch failed: each alone, so the good ones still get their PNG
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == ["a.png", "c.png"]
    for chorale, out, title in three_melodies(tmp_path, "alone")[::2]:
        engrave.engrave_png(chorale, out, title, timeout=60)
        assert out.read_bytes() == (tmp_path / "batch" / out.name).read_bytes(), out.name


@needs_lilypond
def test_engrave_pngs_falls_back_when_the_batch_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = engrave.subprocess.run
    timeouts: list[float] = []

    def slow_batch(command, **kwargs):
        if sum(arg.endswith(".ly") for arg in command) > 1:
            timeouts.append(kwargs["timeout"])
            raise engrave.subprocess.TimeoutExpired(command, kwargs["timeout"], stderr=b"slow")
        return run(command, **kwargs)

    monkeypatch.setattr(engrave.subprocess, "run", slow_batch)
    items = three_melodies(tmp_path, "batch")
    assert engrave.engrave_pngs(items, timeout=40) == {out: None for _, out, _ in items}
    assert timeouts == [120]  # the batch gets the time of all its items
    assert all(out.is_file() for _, out, _ in items)


def test_engrave_pngs_refuses_scheme_before_looking_up_lilypond(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "scheme-ran"
    scheme = f'#(system "touch {marker}")'
    bad = two_bars(number=9, events=[Event("note", scheme, Fraction(1, 4))])

    def no_lilypond() -> Path:
        raise AssertionError("LilyPond looked up for a chorale that must be refused")

    monkeypatch.setattr(engrave, "lilypond_executable", no_lilypond)
    problems = engrave.engrave_pngs([(bad, tmp_path / "bad.png", "x"), (bad, tmp_path / "worse.png", "y")], 60)
    assert problems == {tmp_path / "bad.png": f"chorale 9: pitch {scheme!r} is not a plain LilyPond name; not "
                                              "engraved", tmp_path / "worse.png": problems[tmp_path / "bad.png"]}
    assert not marker.exists() and list(tmp_path.iterdir()) == []


@needs_lilypond
def test_engrave_pngs_engraves_the_safe_ones_beside_a_refused_one(tmp_path: Path) -> None:
    marker = tmp_path / "scheme-ran"
    bad = two_bars(number=9, events=[Event("note", f'#(system "touch {marker}")', Fraction(1, 4))])
    items = three_melodies(tmp_path, "batch")
    problems = engrave.engrave_pngs([*items[:2], (bad, tmp_path / "batch" / "bad.png", "x"), items[2]], timeout=60)
    assert [problems[out] is None for _, out, _ in items] == [True] * 3
    assert "not a plain LilyPond name" in problems[tmp_path / "batch" / "bad.png"]
    assert not marker.exists() and not (tmp_path / "batch" / "bad.png").exists()


def test_engrave_pngs_of_nothing() -> None:
    assert engrave.engrave_pngs([], timeout=60) == {}


def ink_on_a_page(mode: str, background: tuple[int, ...]):
    """A 200 x 100 page with a black 11 x 11 square at (50, 40)."""
    from PIL import Image, ImageDraw

    image = Image.new(mode, (200, 100), background)
    ImageDraw.Draw(image).rectangle((50, 40, 60, 50), fill=(0, 0, 0, 255)[:len(mode)])
    return image


def test_trim_png_crops_to_the_ink_in_grayscale(tmp_path: Path) -> None:
    ink_on_a_page("RGB", (255, 255, 255)).save(tmp_path / "page.png")
    engrave.trim_png(tmp_path / "page.png", tmp_path / "trimmed.png", margin=5)
    from PIL import Image

    with Image.open(tmp_path / "trimmed.png") as image:
        assert image.mode == "L" and image.size == (21, 21)
        assert image.getpixel((0, 0)) == 255 and image.getpixel((5, 5)) == 0 and image.getpixel((15, 15)) == 0
    engrave.trim_png(tmp_path / "page.png", tmp_path / "edge.png", margin=60)  # clipped to the page
    with Image.open(tmp_path / "edge.png") as image:
        assert image.size == (121, 100)


def test_trim_png_puts_a_transparent_page_on_white(tmp_path: Path) -> None:
    """An RGBA page with transparent paper (black once grayscale) trims like the white one."""
    ink_on_a_page("RGB", (255, 255, 255)).save(tmp_path / "white.png")
    ink_on_a_page("RGBA", (0, 0, 0, 0)).save(tmp_path / "clear.png")
    ink_on_a_page("RGBA", (255, 255, 255, 255)).save(tmp_path / "opaque.png")
    for name in ("white", "clear", "opaque"):
        engrave.trim_png(tmp_path / f"{name}.png", tmp_path / f"{name}-trimmed.png")
    assert (tmp_path / "clear-trimmed.png").read_bytes() == (tmp_path / "white-trimmed.png").read_bytes()
    assert (tmp_path / "opaque-trimmed.png").read_bytes() == (tmp_path / "white-trimmed.png").read_bytes()


def test_trim_png_of_a_blank_page(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGBA", (50, 50), (255, 255, 255, 255)).save(tmp_path / "blank.png")
    with pytest.raises(ChoraleError, match="empty image"):
        engrave.trim_png(tmp_path / "blank.png", tmp_path / "out.png")
