"""The music21 chorale source: a few chorales of music21's corpus, and small hand-built scores for the edge cases."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from music21 import duration, expressions, key, metadata, meter, note, stream, tie

from rnnmem.chorales import music21_source as m21s
from rnnmem.chorales.events import ChoraleError, figure20_text, lily_to_music21, transpose_to_c

NUMBERS = [1, 2, 5, 10]
BWV269_PREFIX = "c'4 | c'2 g'4 | e'4. d'8 c'4 | c'4. d'8 e'4 | d'2 \\ e'4 | g'2 f'4 | e'4 d'2 | c'2 \\ "


@pytest.fixture(scope="module")
def written():
    chorales, skipped = m21s.load_music21_chorales("as_written", "error", NUMBERS)
    assert skipped == []
    return {c.number: c for c in chorales}


@pytest.fixture(scope="module")
def unfolded():
    chorales, _ = m21s.load_music21_chorales("unfold", "error", NUMBERS)
    return {c.number: c for c in chorales}


def bar_lengths(chorale) -> list[Fraction]:
    lengths, current = [], Fraction(0)
    for event in chorale.events:
        if event.kind == "bar":
            lengths.append(current)
            current = Fraction(0)
        else:
            current += event.duration
    return [*lengths, current]


def test_bwv269_matches_the_report(written):
    chorale = written[1]
    assert (chorale.number, chorale.bwv, chorale.source) == (1, "269", "music21")
    assert chorale.title == "Aus meines Herzens Grunde"
    assert chorale.time_signatures == ["3/4"]
    assert (chorale.key_tonic, chorale.mode) == ("g", "major")
    assert chorale.notes_info["declared_key"] == "G major"
    assert chorale.notes_info["analysed_key"] == "G major"
    assert chorale.notes_info["grace_notes_dropped"] == 0
    assert figure20_text(transpose_to_c(chorale)).startswith(BWV269_PREFIX)


def test_loaded_in_number_order_with_metadata(written):
    assert sorted(written) == NUMBERS
    assert [written[n].bwv for n in NUMBERS] == ["269", "347", "267", "38.6"]
    assert all(c.title and c.notes_info["file"].startswith("bach/bwv") for c in written.values())
    assert written[5].notes_info["same_file_as"] == [309]  # music21 maps No. 309 to the same file


@pytest.mark.parametrize("number", NUMBERS)
def test_events_are_well_formed(written, unfolded, number):
    for chorale in (written[number], unfolded[number]):
        events = chorale.events
        assert events[0].kind != "bar" and events[-1].kind != "bar"
        assert all(a.kind != "bar" or b.kind != "bar" for a, b in itertools.pairwise(events))
        for event in events:
            if event.kind == "bar":
                assert event.pitch is None and event.duration == 0 and not event.tie and not event.fermata
            else:
                assert event.duration > 0
                assert (event.pitch is not None) == (event.kind == "note")
        assert len(chorale.time_signatures) == 1 and "irregular_bars" not in chorale.notes_info
        numerator, denominator = map(int, chorale.time_signatures[0].split("/"))
        full = Fraction(numerator, denominator)
        lengths = bar_lengths(chorale)
        assert all(length == full for length in lengths[1:-1])
        assert 0 < lengths[0] <= full and 0 < lengths[-1] <= full
        assert any(e.fermata for e in chorale.notes)


def test_pickup_and_last_bar_complete_each_other(written):
    lengths = bar_lengths(written[1])
    assert lengths[0] == Fraction(1, 4) and lengths[-1] == Fraction(1, 2)


def test_minor_key_chorale(written):
    chorale = written[10]
    assert (chorale.key_tonic, chorale.mode) == ("a", "minor")
    assert chorale.notes_info["declared_key"] == "A minor"


@pytest.mark.parametrize("number", [1, 2, 5])
def test_transposition_puts_the_tonic_on_c(written, number):
    chorale = written[number]
    moved = transpose_to_c(chorale)
    assert moved.key_tonic == "c" and moved.transposed_from == chorale.key_tonic
    assert chorale.notes[-1].pitch.rstrip("'") == chorale.key_tonic  # these end on the tonic ...
    assert lily_to_music21(moved.notes[-1].pitch).name == "C"  # ... which moves to c
    assert [e.kind for e in moved.events] == [e.kind for e in chorale.events]


def test_deterministic_and_parallel_matches_serial(written, monkeypatch):
    again, _ = m21s.load_music21_chorales("as_written", "error", list(reversed(NUMBERS)), workers=1)
    assert [c.dumps() for c in again] == [written[n].dumps() for n in NUMBERS]
    monkeypatch.setattr(m21s, "SERIAL_BELOW", 0)
    pooled, _ = m21s.load_music21_chorales("as_written", "error", NUMBERS, workers=2)
    assert [c.dumps() for c in pooled] == [written[n].dumps() for n in NUMBERS]


def test_parsed_from_source_never_through_a_pickle(written, monkeypatch):
    """music21's entry points that read (or write) its cached pickles are never called; the result is the same."""

    def refuse(*args, **kwargs):
        raise AssertionError("a music21 entry point that reads cached pickles was called")

    for name in ("parse", "parseFile", "thaw", "thawStr"):
        monkeypatch.setattr(m21s.converter, name, refuse)
    monkeypatch.setattr(m21s.converter.PickleFilter, "status", refuse)
    monkeypatch.setattr(m21s.converter.Converter, "parseFile", refuse)
    again, skipped = m21s.load_music21_chorales("as_written", "error", [1, 10], workers=1)
    assert skipped == [] and [c.dumps() for c in again] == [written[1].dumps(), written[10].dumps()]


def test_only_source_formats_are_parsed(tmp_path):
    for name in ("bwv269.p", "bwv269.p.gz", "bwv269.pgz", "bwv269.json"):
        (tmp_path / name).write_bytes(b"not a score")
        with pytest.raises(m21s.ChoraleError, match="not a MusicXML or Humdrum file"):
            m21s._parse(str(tmp_path / name))


def test_unfold_repeats(written, unfolded):
    assert len(unfolded[1].notes) > len(written[1].notes)  # BWV 269 repeats its first two phrases
    assert unfolded[1].notes_info["repeats"] == "unfold"
    text = figure20_text(transpose_to_c(unfolded[1]))
    assert text.startswith(BWV269_PREFIX + "c'4 | c'2 g'4 |")  # the pickup completes the repeated last bar
    assert text.count("|") > figure20_text(transpose_to_c(written[1])).count("|")


def test_bad_chorale_skip_or_error(monkeypatch):
    real = m21s.chorale_from_score

    def flaky(score, number, repeats="as_written"):
        if number == 2:
            raise ChoraleError(f"chorale {number}: simulated damage")
        return real(score, number, repeats)

    monkeypatch.setattr(m21s, "chorale_from_score", flaky)
    chorales, skipped = m21s.load_music21_chorales("as_written", "skip", [1, 2, 999])
    assert [c.number for c in chorales] == [1]
    assert [row["number"] for row in skipped] == [2, 999]
    assert skipped[0]["file"] == "bwv347.mxl" and "simulated damage" in skipped[0]["reason"]
    assert skipped[1]["file"] == "" and "no such Riemenschneider number" in skipped[1]["reason"]
    with pytest.raises(ChoraleError, match="chorale 2: simulated damage"):
        m21s.load_music21_chorales("as_written", "error", [1, 2])
    with pytest.raises(ChoraleError, match="chorale 999"):
        m21s.load_music21_chorales("as_written", "error", [999])


def test_bad_arguments():
    with pytest.raises(ValueError, match="repeats"):
        m21s.load_music21_chorales("twice", "skip", [1])
    with pytest.raises(ValueError, match="on_bad_file"):
        m21s.load_music21_chorales("as_written", "ignore", [1])


def test_corpus_file_resolution():
    assert m21s.corpus_file("112.5").name == "bwv112.5.mxl"  # corpus.parse would take bwv112.5-sc.mxl
    assert m21s.corpus_file("69.6").name == "bwv69.6.xml"  # ... and bwv69.6-a.mxl
    assert m21s.corpus_file("281").name == "bwv281.mxl"  # ... and bwv281.krn
    assert m21s.corpus_file("18.5-l").name == "bwv18.5-lz.mxl"  # music21's list has 18.5-l
    assert m21s.corpus_file("0.0") is None
    assert m21s.normalise_bwv("248.12-2") == "248.12" and m21s.normalise_bwv("269") == "269"


# --- hand-built scores ---------------------------------------------------------------------------------------------

def make_score(*measures: list, time_signature: str = "3/4", sharps: int = 1, mode: str | None = "major",
               part_id: str = "Soprano") -> stream.Score:
    part = stream.Part(id=part_id)
    part.partName = part_id
    for index, content in enumerate(measures):
        measure = stream.Measure(number=index)
        if index == 0:
            measure.append(meter.TimeSignature(time_signature))
            measure.append(key.KeySignature(sharps) if mode is None else key.KeySignature(sharps).asKey(mode))
        for element in content:
            measure.append(element)
        part.append(measure)
    score = stream.Score([part])
    score.metadata = metadata.Metadata(title="Test")
    return score


def n(name: str, quarters: float = 1.0, **kw) -> note.Note:
    result = note.Note(name, quarterLength=quarters)
    for attribute, value in kw.items():
        setattr(result, attribute, value)
    return result


def test_hand_built_pickup_ties_fermatas_and_grace_notes():
    ending = n("G4", 2.0)
    ending.expressions.append(expressions.Fermata())
    score = make_score([n("G4")], [n("B4", 2.0, tie=tie.Tie("start")), n("B4", 1.0, tie=tie.Tie("stop"))],
                       [note.Note("A4").getGrace(), n("A4"), n("B4"), n("C5")], [ending, note.Rest(quarterLength=1.0)])
    chorale = m21s.chorale_from_score(score, 7)
    assert figure20_text(chorale) == "g'4 | b'2~ b'4 | a'4 b'4 c''4 | g'2 \\ r4"
    assert chorale.notes_info["grace_notes_dropped"] == 1
    assert chorale.bwv == "" and chorale.title == "Test" and (chorale.key_tonic, chorale.mode) == ("g", "major")


def test_soprano_part_is_found_by_name():
    score = make_score([n("G4")], part_id="Alto")
    score.insert(0, make_score([n("D5")], part_id="Soprano").parts[0])
    assert m21s.soprano_part(score).id == "Soprano"
    score = make_score([n("G4")], part_id="Trumpet")
    score.insert(0, make_score([n("D5")], part_id="Soprano Oboe 1 Violin1").parts[0])
    assert m21s.soprano_part(score).id == "Soprano Oboe 1 Violin1"
    assert m21s.soprano_part(make_score([n("G4")], part_id="Tromba")).id == "Tromba"


def test_hand_built_mode_from_analysis_without_declared_mode():
    melody = [[n("A4")], [n("C5"), n("B4"), n("A4")], [n("E5"), n("G#4"), n("A4")], [n("E4", 2.0), n("A4")]]
    chorale = m21s.chorale_from_score(make_score(*melody, sharps=0, mode=None), 3)
    assert chorale.notes_info["mode_source"] == "analysed" and chorale.notes_info["declared_key"] is None
    assert (chorale.key_tonic, chorale.mode) == ("a", "minor")


def test_hand_built_errors():
    triplet = n("C5", 1.0)
    triplet.duration = duration.Duration(Fraction(1, 3))
    with pytest.raises(ChoraleError, match="chorale 42"):
        m21s.chorale_from_score(make_score([n("G4")], [triplet, n("B4", Fraction(2, 3)), n("C5", 2.0)]), 42)
    with pytest.raises(ChoraleError, match="rests only"):
        m21s.chorale_from_score(make_score([note.Rest(quarterLength=3.0)], [note.Rest(quarterLength=3.0)]), 43)
    with pytest.raises(ValueError, match="repeats"):
        m21s.chorale_from_score(make_score([n("G4")]), 44, repeats="sometimes")
