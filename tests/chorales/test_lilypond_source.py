"""The soprano reader for Ph. Hardy's LilyPond chorales (python-ly), on small hand-written scores and real files."""

from __future__ import annotations

import shutil
import tarfile
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import SHARED_ARCHIVE as ARCHIVE

from rnnmem.chorales import events
from rnnmem.chorales.events import ChoraleError, Event
from rnnmem.chorales.file_names import duplicate_of
from rnnmem.chorales.lilypond_source import load_lilypond_chorales, parse_score

SOURCES = "MusicForAWhile-8cf4e840afd5fba3325559c5970dba5d19419182/bin/DB/Bach/choralgesange/sources-ly"
BWV269_PREFIX = (
    "c'4 | c'2 g'4 | e'4. d'8 c'4 | c'4. d'8 e'4 | d'2 \\ e'4 | g'2 f'4 | e'4 d'2 | c'2 \\ e'4 | e'4 f'4 g'4"
)
needs_archive = pytest.mark.skipif(not ARCHIVE.exists(), reason=f"the Hardy LilyPond archive is absent ({ARCHIVE})")


# --- hand-written scores --------------------------------------------------------------------------------------------

def score(soprano: str, prelude: str = "\\time 4/4 \\key c \\major", version: str = "2.14.1",
          first_label: str = "SOPRANO") -> str:
    """A score laid out like Hardy's: the soprano is the first voice of the << >> in the `upper` variable."""
    return f"""\\version "{version}"
\\header {{
  opus = \\markup {{ \\bold "BWV 1" }}
  piece = \\markup {{ \\hspace #9 \\fontsize #2 \\bold "Ein Testchoral" }}
}}
upper = {{
  {prelude}
  \\clef treble
  \\voiceOne
  << {{
  % {first_label}
  \\set Voice.midiInstrument = "acoustic grand"
  {soprano}
  }}
  \\context Voice = "1" {{ \\voiceTwo
  % ALTO
  \\relative c' {{ c1 }}
  }} >>
}}
lower = {{ \\clef bass << {{ % TENOR
  \\relative c {{ c1 }} }} \\context Voice = "1" {{ % BASS
  \\relative c {{ c1 }} }} >> }}
\\score {{ \\new PianoStaff << \\new Staff = "upper" \\upper \\new Staff = "lower" \\lower >> \\layout {{ }} }}
"""


def write(tmp_path: Path, text: str | bytes, name: str = "123-Test-Bach-Choral-BWV1-2.ly") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def notes(chorale: events.Chorale) -> list[tuple[str, Fraction]]:
    return [(e.pitch, e.duration) for e in chorale.notes]


def text_of(tmp_path: Path, soprano: str, prelude: str = "\\time 4/4 \\key c \\major", repeats: str = "as_written",
            **kwargs) -> str:
    return events.figure20_text(parse_score(write(tmp_path, score(soprano, prelude, **kwargs)), repeats))


def test_metadata_from_name_and_header(tmp_path):
    chorale = parse_score(write(tmp_path, score("\\relative c'' { c1 }")))
    assert (chorale.number, chorale.bwv, chorale.title, chorale.source) == (123, "1.2", "Ein Testchoral", "lilypond")
    assert (chorale.time_signatures, chorale.key_tonic, chorale.mode) == (["4/4"], "c", "major")
    assert chorale.notes_info["soprano_found_by"] == "comment/name"
    assert parse_score(write(tmp_path, score("c''1"), "007-X-Bach-Choral-BWV269.ly")).bwv == "269"


def test_relative_low_and_high_starts_and_octave_checks(tmp_path):
    low = parse_score(write(tmp_path, score("\\relative c, { c4 g' c, b }")))
    assert [p for p, _ in notes(low)] == ["c,", "g,", "c,", "b,,"]
    high = parse_score(write(tmp_path, score("\\relative c''' { g4 c d b }")))
    assert [p for p, _ in notes(high)] == ["g''", "c'''", "d'''", "b''"]
    checked = parse_score(write(tmp_path, score("\\relative c'' { c4 d e=''' f }")))
    assert [p for p, _ in notes(checked)] == ["c''", "d''", "e'''", "f'''"]
    assert len(checked.notes_info["octave_check_corrections"]) == 1
    absolute = parse_score(write(tmp_path, score("c''4 fis'4 bes4 d'''4")))
    assert [p for p, _ in notes(absolute)] == ["c''", "fis'", "bes", "d'''"]


def test_relative_without_start_pitch_follows_the_version(tmp_path):
    assert notes(parse_score(write(tmp_path, score("\\relative { g4 }"))))[0][0] == "g"  # 2.14: from c'
    assert notes(parse_score(write(tmp_path, score("\\relative { g'4 }", version="2.24.0"))))[0][0] == "g'"


def test_implicit_durations_dots_ties_and_fermatas(tmp_path):
    chorale = parse_score(write(tmp_path, score("\\relative c'' { c4. d8 e f g2 | a2 b ~ | b4 c2.\\fermata }")))
    assert [d for _, d in notes(chorale)] == [Fraction(3, 8), Fraction(1, 8), Fraction(1, 8), Fraction(1, 8),
                                             Fraction(1, 2), Fraction(1, 2), Fraction(1, 2), Fraction(1, 4),
                                             Fraction(3, 4)]
    assert [e.tie for e in chorale.notes] == [False] * 6 + [True, False, False]
    assert [e.fermata for e in chorale.notes] == [False] * 8 + [True]
    assert events.figure20_text(chorale) == "c''4. d''8 e''8 f''8 g''2 | a''2 b''2~ | b''4 c'''2. \\"


def test_partial_gives_bars_at_measure_boundaries_without_bar_checks(tmp_path):
    text = text_of(tmp_path, "\\relative c'' { g4 c2 d e1 f2 e4 }", "\\time 4/4 \\key c \\major \\partial 4")
    assert text == "g'4 | c''2 d''2 | e''1 | f''2 e''4"  # no bar event at the very end
    chorale = parse_score(write(tmp_path, score("\\relative c'' { g4 | c2 d | e2 }", "\\key c \\major")))
    assert chorale.notes_info["time_signature_default"] == "4/4"
    assert "bar_check_mismatches" in chorale.notes_info  # g4 | comes a quarter into the 4/4 measure


def test_bar_check_mismatch_is_recorded_not_fatal(tmp_path):
    chorale = parse_score(write(tmp_path, score("\\relative c'' { c2 d4 | e1 }")))
    assert chorale.notes_info["bar_check_mismatches"] == ["line 13: bar check 3/4 into the measure"]
    assert events.figure20_text(chorale) == "c''2 d''4 e''1"  # bars follow the time signature, not the checks


VOLTA = """\\relative c'' {
  \\repeat volta2 { c4 | d2 e4 | f4 }
  \\alternative { { g4 } { \\set Timing.measurePosition = #(ly:make-moment 1 4) a2 } }
  | b2. | c2
}"""


def test_repeat_volta_with_alternatives_as_written_and_unfolded(tmp_path):
    prelude = "\\time 3/4 \\key c \\major \\partial 4"
    as_written = text_of(tmp_path, VOLTA, prelude)  # the repeated section once, then both endings
    assert as_written == "c''4 | d''2 e''4 | f''4 g''4 a''2 | b''2. | c'''2"
    unfolded = text_of(tmp_path, VOLTA, prelude, repeats="unfold")  # the first ending on the first pass
    assert unfolded == "c''4 | d''2 e''4 | f''4 g''4 c''4 | d''2 e''4 | f''4 a''2 | b''2. | c'''2"
    chorale = parse_score(write(tmp_path, score(VOLTA, prelude)), "unfold")
    assert chorale.notes_info["timing_settings_ignored_in_unfolded_alternatives"] == 1


def test_repeat_without_alternatives_and_more_passes(tmp_path):
    soprano = "\\relative c'' { \\repeat volta 3 { c2 d } e1 }"
    assert text_of(tmp_path, soprano) == "c''2 d''2 | e''1"
    assert text_of(tmp_path, soprano, repeats="unfold") == "c''2 d''2 | c''2 d''2 | c''2 d''2 | e''1"
    assert text_of(tmp_path, "\\relative c'' { \\repeat unfold 2 { c1 } }") == "c''1 | c''1"


def test_hardy_short_measure_alternatives(tmp_path):
    """Hardy's trick (Nos. 15, 43, 121, 184…): \\set Timing.measureLength inside the alternatives."""
    soprano = """\\relative c'' {
      \\repeat volta2 { a4 | g2 e4 d | c2 }
      \\alternative {
        { \\set Timing.measureLength = #(ly:make-moment 1 4) d4\\fermata | }
        { \\set Timing.measureLength = #(ly:make-moment 2 4) d2\\fermata | }
      }
      \\set Timing.measureLength = #(ly:make-moment 4 4)
      e1 |
    }"""
    prelude = "\\time 4/4 \\key d \\dorian \\partial 4"
    assert text_of(tmp_path, soprano, prelude) == "a'4 | g'2 e'4 d'4 | c'2 d'4 \\ | d'2 \\ | e'1"
    assert (text_of(tmp_path, soprano, prelude, repeats="unfold")
            == "a'4 | g'2 e'4 d'4 | c'2 d'4 \\ a'4 | g'2 e'4 d'4 | c'2 d'2 \\ | e'1")


def test_tuplets_scale_durations(tmp_path):
    soprano = "\\relative c'' { \\times 2/3 { c8 d e } f4 \\tuplet 3/2 { g4 a b } }"
    chorale = parse_score(write(tmp_path, score(soprano)))
    assert [d for _, d in notes(chorale)] == [Fraction(1, 12)] * 3 + [Fraction(1, 4)] + [Fraction(1, 6)] * 3


def test_grace_notes_dropped_and_counted(tmp_path):
    chorale = parse_score(write(tmp_path, score("\\relative c'' { c4 \\grace { es16[ d] } c4 \\appoggiatura b8 c2 }")))
    assert notes(chorale) == [("c''", Fraction(1, 4)), ("c''", Fraction(1, 4)), ("c''", Fraction(1, 2))]
    assert chorale.notes_info["grace_notes_dropped"] == 3


def test_multi_measure_rest_expands(tmp_path):
    chorale = parse_score(write(tmp_path, score("\\relative c'' { R1*2 | c2 r2 }")))
    assert chorale.events == [Event("rest", None, Fraction(1)), Event("bar"), Event("rest", None, Fraction(1)),
                              Event("bar"), Event("note", "c''", Fraction(1, 2)), Event("rest", None, Fraction(1, 2))]
    assert events.figure20_text(chorale) == "r1 | r1 | c''2 r2"


def test_time_changes(tmp_path):
    chorale = parse_score(write(tmp_path, score("\\relative c'' { c2. | \\time 2/4 d2 | e4 f | \\time 3/4 g2. }",
                                                "\\time 3/4 \\key c \\major")))
    assert chorale.time_signatures == ["3/4", "2/4", "3/4"]
    assert events.figure20_text(chorale) == "c''2. | d''2 | e''4 f''4 | g''2."


def test_modal_and_flat_keys(tmp_path):
    phrygian = parse_score(write(tmp_path, score("\\relative c'' { e1 }", "\\key e \\phrygian % c \\major")))
    assert (phrygian.key_tonic, phrygian.mode) == ("e", "phrygian")
    dorian = parse_score(write(tmp_path, score("\\relative c'' { d1 }", "\\key d \\dorian % c \\major")))
    assert (dorian.key_tonic, dorian.mode) == ("d", "dorian")
    flat = parse_score(write(tmp_path, score("\\relative c'' { es4 as bes2 }", "\\key es \\major")))
    assert flat.key_tonic == "ees" and [p for p, _ in notes(flat)] == ["ees''", "aes''", "bes''"]
    assert events.lily_to_music21(flat.key_tonic).name == "E-"
    assert events.figure20_text(events.transpose_to_c(flat)) == "c''4 f''4 g''2"


def test_bad_scores_raise_naming_the_file(tmp_path):
    cases = {
        "rests only": score("\\relative c'' { R1 | r2 r2 }"),
        "never closed": score("\\relative c'' { c1 }").rstrip()[:-1],
        "does not close": score("\\relative c'' { c1 } }"),
        "'h4' is not a note": score("\\relative c'' { c4 h4 d2 }"),
        "no soprano voice": score("c''1", first_label="ALTO"),
        "unknown key: no \\key": score("\\relative c'' { c1 }", "\\time 4/4"),
        "unknown key: mode \\foo": score("\\relative c'' { c1 }", "\\key c \\foo"),
    }
    for problem, text in cases.items():
        path = write(tmp_path, text)
        with pytest.raises(ChoraleError, match="123-Test") as caught:
            parse_score(path)
        assert problem in str(caught.value), (problem, str(caught.value))
    no_voices = "\\version \"2.14.1\"\nupper = { \\time 4/4 \\key c \\major c''1 }\n"
    with pytest.raises(ChoraleError, match="no soprano voice"):
        parse_score(write(tmp_path, no_voices))
    with pytest.raises(ChoraleError, match=r"123-Test.*not UTF-8"):
        parse_score(write(tmp_path, score("\\relative c'' { c1 }").encode("utf-8") + "% é".encode("latin-1")))


def test_duplicate_of():
    assert duplicate_of(Path("309-An-Wasser-TRANSPO-du-005-Bach-Choral-BWV267/ly/"
                             "309-An-Wasser-TRANSPO-du-005-Bach-Choral-BWV267.ly")) == 5
    assert duplicate_of(Path("126-Durch-TRANSPO-du-100-Bach-Choral-BWV18-5.ly")) == 100
    assert duplicate_of(Path("005-309-An-Wasser-Bach-Choral-BWV267/ly/005-309-An-Wasser-Bach-Choral-BWV267.ly")) is None


def test_load_skip_and_error_modes(tmp_path):
    good = write(tmp_path, score("\\relative c'' { c1 }"), "002-Good-Bach-Choral-BWV2.ly")
    other = write(tmp_path, score("\\relative c'' { d1 }"), "001-Other-Bach-Choral-BWV1.ly")
    bad = write(tmp_path, score("\\relative c'' { R1 }"), "003-dummy-score.ly")
    duplicate = write(tmp_path, score("\\relative c'' { cis1 }"), "309-An-Wasser-TRANSPO-du-005-Bach-Choral-BWV267.ly")
    chorales, skipped = load_lilypond_chorales([good, bad, duplicate, other], "as_written", "skip")
    assert [c.number for c in chorales] == [1, 2]
    assert [(row["file"], row["number"]) for row in skipped] == [("003-dummy-score.ly", 3), (duplicate.name, 309)]
    assert "rests only" in skipped[0]["reason"] and "duplicate of No. 5" in skipped[1]["reason"]
    with pytest.raises(ChoraleError, match=r"003-dummy-score\.ly.*rests only"):
        load_lilypond_chorales([good, bad, duplicate], "as_written", "error")
    chorales, skipped = load_lilypond_chorales([duplicate, good], "unfold", "error")
    assert [c.number for c in chorales] == [2] and len(skipped) == 1


def test_load_in_parallel_matches_serial(tmp_path):
    files = [write(tmp_path, score(f"\\relative c'' {{ c{2 ** (i % 3)} }}"), f"{40 - i:03d}-N-Bach-Choral-BWV{i}.ly")
             for i in range(24)]
    files.append(write(tmp_path, score("\\relative c'' { r1 }"), "099-dummy-score.ly"))
    parallel, skipped = load_lilypond_chorales(files, "as_written", "skip", workers=2)  # > 20 files: 2 processes
    serial = [parse_score(f) for f in files[:-1]]
    assert [c.to_json() for c in parallel] == [c.to_json() for c in sorted(serial, key=lambda c: c.number)]
    assert skipped == [{"file": "099-dummy-score.ly", "number": 99, "reason": skipped[0]["reason"]}]


# --- the real files --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def hardy(tmp_path_factory) -> Path:
    if not ARCHIVE.exists():
        pytest.skip(f"the Hardy LilyPond archive is absent ({ARCHIVE})")
    target = tmp_path_factory.mktemp("hardy")
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(target, filter="data")
    yield target / SOURCES
    shutil.rmtree(target, ignore_errors=True)


def hardy_file(root: Path, prefix: str) -> Path:
    (folder,) = [p for p in root.iterdir() if p.name.startswith(prefix)]
    return folder / "ly" / f"{folder.name}.ly"


@needs_archive
def test_bwv269_figure20_prefix(hardy):
    chorale = parse_score(hardy_file(hardy, "001-"))
    assert (chorale.number, chorale.bwv, chorale.title) == (1, "269", "Aus meines Herzens Grunde")
    assert (chorale.time_signatures, chorale.key_tonic, chorale.mode) == (["3/4"], "g", "major")
    text = events.figure20_text(events.transpose_to_c(chorale))
    assert text.startswith(BWV269_PREFIX), text[:200]
    assert not text.endswith("|")


@needs_archive
def test_real_quirks(hardy):
    high = parse_score(hardy_file(hardy, "344-"))  # \relative c''' { g4 | fis4 …
    assert [e.pitch for e in high.notes[:3]] == ["g''", "fis''", "e''"]
    sections = parse_score(hardy_file(hardy, "011-"))  # 4/4, 3/4, 4/4 with one-beat measures between sections
    assert sections.time_signatures == ["4/4", "3/4", "4/4"]
    assert "c''2 c''4 \\ | e''4 | e''4 d''4 c''4 | d''2 e''4" in events.figure20_text(sections)
    modal = parse_score(hardy_file(hardy, "015-"))  # \key d \dorian % c \major, volta2 and \alternative
    assert (modal.key_tonic, modal.mode) == ("d", "dorian")
    assert "e'8 d'8 e'4 d'4 \\ | d'2 \\ | d'8 e'8" in events.figure20_text(modal)
    assert "e'4 d'4 \\ a'4 | gis'4" in events.figure20_text(parse_score(hardy_file(hardy, "015-"), "unfold"))
    assert parse_score(hardy_file(hardy, "209-")).notes_info["grace_notes_dropped"] == 1
    with pytest.raises(ChoraleError, match=r"309-dummy-score.*rests only"):
        parse_score(hardy_file(hardy, "309-dummy"))
    assert duplicate_of(hardy_file(hardy, "309-An-Wasser")) == 5


@needs_archive
def test_real_load_skips_dummies_and_duplicates(hardy):
    files = [hardy_file(hardy, prefix) for prefix in ("005-", "309-An-Wasser", "309-dummy", "150-", "221-", "002-")]
    chorales, skipped = load_lilypond_chorales(files, "as_written", "skip")
    assert [c.number for c in chorales] == [2, 5, 221]  # 221's misspelt \midi property is outside the music
    assert [(row["number"], row["reason"].split(": ")[-1]) for row in skipped] == [
        (309, "transposed duplicate of No. 5 (TRANSPO-du-005)"), (309, "the soprano has rests only (no notes)"),
        (150, "the soprano has rests only (no notes)")]


def test_soprano_found_by_label_name_or_position(tmp_path):
    second = """\\version "2.14.1"
upper = \\relative c'' { \\time 4/4 \\key g \\major
  << % ALTO
     { d1 }
     \\new Voice = "soprano" { g4 a b c } >> }
"""
    chorale = parse_score(write(tmp_path, second))
    assert [p for p, _ in notes(chorale)] == ["g''", "a''", "b''", "c'''"]  # relative to the alto's d'' before it
    assert chorale.notes_info["soprano_found_by"] == "comment/name (voice 2)"
    unlabelled = "upper = { \\key f \\major << { \\relative c'' { a1 } } { \\relative c' { f1 } } >> }\n"
    chorale = parse_score(write(tmp_path, unlabelled))
    assert notes(chorale) == [("a'", Fraction(1))] and chorale.notes_info["soprano_found_by"] == "first voice"
