"""The report's page of one sample set (rnnmem.lm.sample_page, `rnnmem lm-sample-page`): scores, audio, MIDI."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct

import pytest

from rnnmem.cli import main
from rnnmem.lm.sample_page import DEFAULT_SOUNDFONT, fix_ogg_serial, key_name, ogg_crc, sample_stem

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def midi_file(notes: int = 2) -> bytes:
    """A format-0 MIDI file: ``notes`` quarter notes of middle C at 120 bpm."""
    events = b""
    for _ in range(notes):
        events += b"\x00\x90\x3c\x50" + b"\x83\x60\x80\x3c\x00"  # note on; 480 ticks later note off
    events += b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(events)) + events


def sample_set(tmp_path, engraved=(True, False)):
    samples = tmp_path / "gru_s_modern"
    samples.mkdir()
    lines = ["model,temperature,index,tokens,engraved,ended,notes,bars,bars_ok,time_signature,key,problems"]
    for index, has_png in enumerate(engraved):
        stem = f"T1_{index:02d}"
        (samples / f"{stem}.mid").write_bytes(midi_file())
        if has_png:
            (samples / f"{stem}.png").write_bytes(PNG)
        problems = "" if index == 0 else "bar 2 short"
        key = ("aes major", "fis minor")[index % 2]
        lines.append(f"gru_s_modern,1.0,{index},c'4 d'4 | e'2 </s>,{has_png},True,3,2,1,4/4,{key},{problems}")
    listing = tmp_path / "gru_s_modern.csv"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return samples, listing


def build(tmp_path, samples, listing, **params):
    out = tmp_path / "page.html"
    spec = json.dumps(
        {"title": "Samples of gru gru_s (modern regime)", "soundfont": None, "audio_rate": None, **params}
    )
    code = main(
        ["lm-sample-page", "--params", spec, "--samples", str(samples), "--listing", str(listing), "--out", str(out)]
    )
    assert code == 0
    return out.read_text(encoding="utf-8")


def test_key_names_read_like_music():
    assert [key_name(k) for k in ("c major", "aes major", "fis minor", "bes minor")] == [
        "C major", "A♭ major", "F♯ minor", "B♭ minor"]


def test_stem_of_a_listing_row():
    assert sample_stem({"temperature": "1.0", "index": "3"}) == "T1_03"
    assert sample_stem({"temperature": "0.5", "index": "12"}) == "T0.5_12"


def test_ogg_serial_rewrite_keeps_valid_checksums():
    payload = b"\x01vorbis" + bytes(range(40))
    header = bytearray(b"OggS\x00\x02" + bytes(8) + struct.pack("<I", 1234) + bytes(8) + bytes([1, len(payload)]))
    page = bytes(header) + payload
    fixed = fix_ogg_serial(page + page, serial=7)
    assert len(fixed) == 2 * len(page)
    first = fixed[: len(page)]
    assert struct.unpack_from("<I", first, 14)[0] == 7
    crc = struct.unpack_from("<I", first, 22)[0]
    assert ogg_crc(first[:22] + bytes(4) + first[26:]) == crc
    with pytest.raises(ValueError):
        fix_ogg_serial(b"not ogg")


def test_without_fluidsynth_the_page_says_why_and_keeps_scores_and_midi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no fluidsynth on PATH
    samples, listing = sample_set(tmp_path)
    page = build(tmp_path, samples, listing)
    assert "<audio" not in page
    assert len(re.findall(r"no audio: fluidsynth is not on PATH", page)) == 1
    assert page.count('<img alt="T1_00: engraved score" src="data:image/png;base64,') == 1
    assert "not engraved" in page  # the second sample has no PNG
    assert page.count('download="T1_00.mid"') == 1 and page.count('download="T1_01.mid"') == 1
    assert "bar 2 short" in page and "<script" not in page
    assert "3 notes, 2 bars, in A♭ major</h2>" in page and "in F♯ minor, problems: bar 2 short" in page


def test_missing_soundfont_is_named(tmp_path):
    samples, listing = sample_set(tmp_path)
    page = build(tmp_path, samples, listing, soundfont=str(tmp_path / "missing.sf2"))
    assert "<audio" not in page
    assert f"no audio: the soundfont {tmp_path / 'missing.sf2'} does not exist" in page


@pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not os.path.isfile(DEFAULT_SOUNDFONT),
    reason="needs fluidsynth and fluid-soundfont-gm (Debian packages)",
)
def test_with_fluidsynth_every_sample_has_audio_and_the_page_is_byte_stable(tmp_path):
    samples, listing = sample_set(tmp_path)
    page = build(tmp_path, samples, listing, audio_rate=8000)
    audio = re.findall(r'<audio controls preload="metadata" src="data:audio/ogg;base64,([^"]+)"', page)
    assert len(audio) == 2 and "no audio" not in page
    ogg = base64.b64decode(audio[0])
    assert ogg[:4] == b"OggS" and b"vorbis" in ogg[:100]
    assert build(tmp_path, samples, listing, audio_rate=8000) == page  # same samples, same bytes
