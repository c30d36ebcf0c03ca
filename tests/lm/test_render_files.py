"""The MIDI and MusicXML files of a sample: what they say, read back with music21, and that they are cheap to write."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest

from rnnmem.chorales.events import Chorale, Event, lily_to_music21
from rnnmem.lm import render

Q = Fraction(1, 4)


def note(pitch: str, length: Fraction, tie: bool = False, fermata: bool = False) -> Event:
    return Event("note", pitch, length, tie=tie, fermata=fermata)


def changing_metre() -> Chorale:
    """A pickup; 3/4 and 4/4 bars; a tie across a bar line and a chain of three tied notes; rests inside and at the
    end; a fermata; an irregular 5/4 bar (its own signature); a bar longer than LONG_BAR (none); a double-dotted
    64th (7/64 of a quarter, which music21's 10080 ticks per quarter cannot hold)."""
    bar = Event("bar")
    events = [
        note("g'", Q), bar,
        note("e'", Q * 3 / 2), note("d'", Q / 2), note("c'", Q), bar,  # 3/4
        note("fis'", Q), note("g'", Q * 2, tie=True), bar,
        note("g'", Q), note("bes", Q, fermata=True), Event("rest", None, Q), bar,
        note("a", Q), note("b", Q), note("c'", Q, tie=True), note("c'", Q), bar,  # 4/4
        note("d'", Q, tie=True), note("d'", Q, tie=True), note("d'", Q * 2, tie=True), bar,
        note("d'", Q), note("e'", Q), note("f'", Q), note("g'", Q), note("a'", Q), bar,  # 5/4: its own
        *[note(p, Q) for p in ("c''", "b'", "a'", "g'") * 3], bar,  # 12/4: overfull in 4/4
        note("e''", Fraction(7, 256)), note("d''", Fraction(7, 256)), Event("rest", None, Fraction(1, 128)),
        note("c''", Q * 3, fermata=True), Event("rest", None, Fraction(3, 16)), bar,
        note("c''", Q * 2), Event("rest", None, Q * 2),
    ]
    return Chorale(number=3, bwv="", title="metres", source="sample", time_signatures=["3/4", "4/4"],
                   key_tonic="d", mode="minor", events=events)


def expected_notes(chorale: Chorale) -> list[tuple[Fraction, int, Fraction]]:
    """(onset, MIDI pitch, length) in quarter notes of every note, tied notes as one."""
    result: list[list] = []
    position, tied = Fraction(0), False
    for event in chorale.events:
        if event.kind == "bar":
            continue
        length = event.duration * 4
        if event.kind == "note" and tied and result and result[-1][1] == lily_to_music21(event.pitch).midi:
            result[-1][2] += length
        elif event.kind == "note":
            result.append([position, lily_to_music21(event.pitch).midi, length])
        tied = event.kind == "note" and event.tie
        position += length
    return [tuple(item) for item in result]


def meta_events(path: Path) -> list[tuple[Fraction, str, bytes]]:
    """(onset in quarters, type, data) of every meta event, read with music21's low-level MIDI classes (its
    score reader repeats time signatures across the bars it makes)."""
    from music21 import midi

    file = midi.MidiFile()
    file.open(str(path))
    file.read()
    file.close()
    result = []
    for track in file.tracks:
        tick = 0
        for event in track.events:
            if isinstance(event, midi.DeltaTime):
                tick += event.time
            elif isinstance(event.type, midi.MetaEvents):
                result.append((Fraction(tick, file.ticksPerQuarterNote), event.type.name, event.data))
    return result


def read_midi(path: Path):
    """The notes (onset, MIDI pitch, length in quarters; ties merged), time signatures, key signatures (sharps)
    and tempi (bpm) of a MIDI file."""
    from music21 import converter

    score = converter.parse(path, format="midi", quantizePost=False)
    flat = score.flatten().stripTies()  # music21 puts bar lines every time signature from 0 and ties over them
    notes = [(Fraction(n.offset), n.pitch.midi, Fraction(n.quarterLength)) for n in flat.notes]
    meta = meta_events(path)
    signatures = [(at, f"{data[0]}/{2 ** data[1]}") for at, kind, data in meta if kind == "TIME_SIGNATURE"]
    keys = [(at, int.from_bytes(data[:1], "big", signed=True)) for at, kind, data in meta if kind == "KEY_SIGNATURE"]
    tempi = [(at, 60_000_000 / int.from_bytes(data, "big")) for at, kind, data in meta if kind == "SET_TEMPO"]
    return notes, signatures, keys, tempi


def test_midi_says_what_the_melody_says(tmp_path: Path) -> None:
    chorale = changing_metre()
    out = tmp_path / "metres.mid"
    render._write_midi(chorale, out)
    notes, signatures, keys, tempi = read_midi(out)
    assert notes == expected_notes(chorale)
    assert (Fraction(14), 62, Fraction(5)) in notes  # four tied d's, over a bar line: one note
    # the pickup at 0, 3/4 from there, 4/4 from bar 4 (offset 10), 5/4 for bar 6 only, 4/4 again
    assert signatures == [(Fraction(0), "3/4"), (Fraction(10), "4/4"), (Fraction(18), "5/4"),
                          (Fraction(23), "4/4")]
    assert keys == [(Fraction(0), -1)] and tempi == [(Fraction(0), 120)]
    # the last note ends before the closing rest: the file lasts to the end of the rest
    assert notes[-1][0] + notes[-1][2] == Fraction(sum(e.duration for e in chorale.events) * 4) - 2


def test_midi_has_the_signatures_of_the_musicxml(tmp_path: Path) -> None:
    from music21 import converter, meter

    chorale = changing_metre()
    render._write_musicxml(render.chorale_stream(chorale), tmp_path / "m.musicxml")
    render._write_midi(chorale, tmp_path / "m.mid")
    measures = converter.parse(tmp_path / "m.musicxml").parts[0].getElementsByClass("Measure")
    written = [(Fraction(m.offset), t.ratioString) for m in measures for t in m.getElementsByClass(meter.TimeSignature)]
    assert written == read_midi(tmp_path / "m.mid")[1]


def test_midi_bytes_are_the_same_every_time() -> None:
    chorale = changing_metre()
    data = render.midi_bytes(chorale)
    assert data[:4] == b"MThd" and data == render.midi_bytes(changing_metre())
    assert render.midi_bytes(render.tokens_to_chorale([])[0]) == render.midi_bytes(render.tokens_to_chorale([])[0])


def test_midi_of_an_empty_melody_reads_back(tmp_path: Path) -> None:
    out = tmp_path / "empty.mid"
    render._write_midi(render.tokens_to_chorale(["</s>"])[0], out)
    assert read_midi(out) == ([], [(0, "4/4")], [(0, 0)], [(0, 120)])


def test_write_sample_files_does_not_write_midi_through_music21(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """music21's MIDI writer deep-copies and re-notates the score: a tenth of a second per long sample."""
    from music21.midi import translate

    def refuse(*args, **kwargs):
        raise AssertionError("MIDI written through music21's stream translation")

    monkeypatch.setattr(translate, "music21ObjectToMidiFile", refuse)
    monkeypatch.setattr(translate, "streamToMidiFile", refuse)
    render.write_sample_files(["c'4", "|", "e'2~", "e'4", "r4", "|", "g'2.", "\\"], tmp_path / "s", "S")
    assert (tmp_path / "s.mid").read_bytes()[:4] == b"MThd"


def music21_default_durations(score) -> None:
    """Give every note and rest of ``score`` its duration from its quarter length and music21's own full-measure
    rule ('auto'), as chorale_stream did before it set them itself."""
    from music21 import duration, note

    for item in score.recurse().getElementsByClass(note.GeneralNote):
        item.duration = duration.Duration(item.duration.quarterLength)
        if isinstance(item, note.Rest):
            item.fullMeasure = "auto"


@pytest.mark.parametrize("text", [
    "g'4 | e'4. d'8 c'4 | r2. | fis'4 g'2~ | g'4 bes4 \\ r4 | a8 b16 b16 c'4 ees'4 | c'2 \\",
    "r1 c'4 d'4 | c'1 | r1 | d''64.. e''32. r8 f''2 | r1 | r2 r2 | c'1",
])
def test_musicxml_notes_are_those_music21_works_out_itself(tmp_path: Path, text: str) -> None:
    """Durations made from note types and full-measure rests set by chorale_stream: the same bytes as music21's
    own (slower) way, whole-bar rests included."""
    chorale, _ = render.tokens_to_chorale(text.split())
    render._write_musicxml(render.chorale_stream(chorale, "t"), tmp_path / "fast.musicxml")
    score = render.chorale_stream(chorale, "t")
    music21_default_durations(score)
    render._write_musicxml(score, tmp_path / "slow.musicxml")
    fast = (tmp_path / "fast.musicxml").read_text(encoding="utf-8")
    assert fast == (tmp_path / "slow.musicxml").read_text(encoding="utf-8")
    assert re.search(r'<rest measure="yes"', fast)


def test_musicxml_reads_back_with_the_notes_and_bars(tmp_path: Path) -> None:
    from music21 import converter

    chorale = changing_metre()
    render._write_musicxml(render.chorale_stream(chorale), tmp_path / "m.musicxml")
    part = converter.parse(tmp_path / "m.musicxml").parts[0]
    measures = list(part.getElementsByClass("Measure"))
    # music21 reads MusicXML in 10080ths of a quarter: a double-dotted 64th (7/64) comes back rounded
    assert [float(m.duration.quarterLength) for m in measures] == pytest.approx([1, 3, 3, 3, 4, 4, 5, 12, 4, 4],
                                                                                abs=1e-3)
    lengths = [float(n.quarterLength) for n in part.flatten().notesAndRests]
    assert lengths == pytest.approx([float(e.duration * 4) for e in chorale.events if e.kind != "bar"], abs=1e-3)
    pitches = [n.pitch.midi for n in part.flatten().notes]
    assert pitches == [lily_to_music21(e.pitch).midi for e in chorale.events if e.kind == "note"]


def test_a_bar_in_256ths_is_written_in_the_metre_in_force(tmp_path: Path) -> None:
    """Double-dotted 64ths make a bar of 179/256, a TimeSignature music21 cannot build (it raised, and the whole
    sample job with it): such a bar gets no signature of its own, like an overlong one."""
    from music21 import converter

    tokens = ["c'4", "d'4", "e'4", "f'4", "|", "d''64..", "e''32.", "r8", "f''2", "|", "c'1"]
    info = render.write_sample_files(tokens, tmp_path / "odd", "Odd").unengraved()
    assert info["problems"] == "bar 2: 179/256 in 4/4"
    assert (tmp_path / "odd.musicxml").read_text(encoding="utf-8").count("<time") == 1
    measures = converter.parse(tmp_path / "odd.musicxml").parts[0].getElementsByClass("Measure")
    assert [len(m.notesAndRests) for m in measures] == [4, 4, 1]
    assert read_midi(tmp_path / "odd.mid")[1] == [(Fraction(0), "4/4")]
