"""One HTML page per sample set (one chorale model and regime) for Snakemake's report: every sample's engraved
score, an audio player and its MIDI file.

Audio is the sample's MIDI rendered by FluidSynth with a General MIDI soundfont (Debian: ``fluidsynth`` and
``fluid-soundfont-gm``) as Ogg Vorbis at a low sample rate (FluidSynth writes stereo only; Vorbis codes the two
equal channels of a centred instrument at little more than one). Without FluidSynth or the soundfont the page
still shows the scores and the MIDI links, and one line says why there is no audio.

The page is self-contained (images, audio and MIDI as data URIs, no script), as the report embeds it in an
iframe. Vorbis encoding is deterministic but libsndfile gives every Ogg stream a random serial number; the
serial is set to a constant (and each page's checksum recomputed), so the same samples give the same bytes.
"""

from __future__ import annotations

import base64
import csv
import html
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from rnnmem.core.atomic import write_text
from rnnmem.core.errors import InputFileError
from rnnmem.core.progress import summary
from rnnmem.core.report_table import html_page

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"  # Debian's fluid-soundfont-gm
DEFAULT_RATE = 16000  # Hz: enough for a melody, ~5 kB per second of Ogg Vorbis
OGG_SERIAL = 0x726E6E6D  # "rnnm": the serial number every rendered stream gets
RENDER_TIMEOUT = 120  # seconds FluidSynth may take for one sample

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 12px; color: #111; background: #fff; }
h1 { font-size: 16px; margin: 0 0 4px 0; }
p.meta, p.audio-note { margin: 0 0 10px 0; color: #444; }
section.sample { border-top: 1px solid #ccc; padding: 8px 0; }
section.sample h2 { font-size: 14px; margin: 0 0 6px 0; }
section.sample img { display: block; max-width: 100%; height: auto; margin: 4px 0; }
audio { display: block; margin: 4px 0; }
code { font-size: 12px; white-space: pre-wrap; }
"""


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        value = byte << 24
        for _ in range(8):
            value = ((value << 1) ^ 0x04C11DB7) if value & 0x80000000 else value << 1
        table.append(value & 0xFFFFFFFF)
    return table


_CRC = _crc_table()


def ogg_crc(data: bytes) -> int:
    """The Ogg page checksum (CRC-32, polynomial 0x04C11DB7, not reflected, initial value 0)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC[((crc >> 24) & 0xFF) ^ byte]
    return crc


def fix_ogg_serial(data: bytes, serial: int = OGG_SERIAL) -> bytes:
    """The same Ogg stream with every page's serial number set to ``serial`` and its checksum recomputed."""
    out = bytearray()
    position = 0
    while position < len(data):
        if data[position : position + 4] != b"OggS" or position + 27 > len(data):
            raise ValueError(f"not an Ogg page at byte {position}")
        segments = data[position + 26]
        header_end = position + 27 + segments
        length = header_end - position + sum(data[position + 27 : header_end])
        page = bytearray(data[position : position + length])
        struct.pack_into("<I", page, 14, serial)
        struct.pack_into("<I", page, 22, 0)
        struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
        out += page
        position += length
    return bytes(out)


def audio_unavailable(soundfont: str | Path) -> str | None:
    """Why there can be no audio (FluidSynth not on PATH, the soundfont missing), or None when there can."""
    if shutil.which("fluidsynth") is None:
        return "no audio: fluidsynth is not on PATH (Debian: apt-get install fluidsynth fluid-soundfont-gm)"
    if not Path(soundfont).is_file():
        return (
            f"no audio: the soundfont {soundfont} does not exist (Debian: apt-get install fluid-soundfont-gm; "
            "or set report.soundfont)"
        )
    return None


def render_audio(midi: Path, soundfont: str | Path, rate: int, workdir: Path) -> bytes:
    """One MIDI file as Ogg Vorbis (``rate`` Hz) through FluidSynth, with the constant stream serial."""
    out = workdir / (midi.stem + ".ogg")
    command = [
        "fluidsynth",
        "-n",
        "-i",
        "-q",
        "-g",
        "0.5",
        "-r",
        str(rate),
        "-T",
        "oga",
        "-F",
        str(out),
        str(soundfont),
        str(midi),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=RENDER_TIMEOUT)
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise InputFileError(f"{midi}: FluidSynth could not render it ({reason[-1] if reason else 'no output'})")
    return fix_ogg_serial(out.read_bytes())


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def read_listing(listing: Path) -> list[dict[str, str]]:
    """The rows of an ``lm-samples`` listing; :class:`InputFileError` naming it when a column is missing."""
    with open(listing, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise InputFileError(f"{listing}: has no rows")
    missing = [c for c in ("temperature", "index", "tokens") if c not in rows[0]]
    if missing:
        raise InputFileError(f"{listing}: lacks the columns {missing}")
    return rows


def sample_stem(row: dict[str, str]) -> str:
    """The file stem ``lm-samples`` gives a listing row: ``T<temperature>_<index, 2 digits>``."""
    return f"T{float(row['temperature']):g}_{int(row['index']):02d}"


def page_html(title: str, note: str | None, sections: list[str]) -> str:
    meta = f"{len(sections)} sample{'s' if len(sections) != 1 else ''}"
    return html_page(title, STYLE, [
        f'<p class="meta">{meta}: engraved score (LilyPond), audio (its MIDI file through FluidSynth), MIDI.</p>',
        *([f'<p class="audio-note">{html.escape(note)}</p>'] if note else []),
        *sections,
    ])


def key_name(key: str) -> str:
    """``aes major`` (a listing's key: LilyPond tonic and mode) -> ``A♭ major``."""
    tonic, _, mode = key.partition(" ")
    accidentals = {"": "", "is": "♯", "es": "♭", "isis": "𝄪", "eses": "𝄫"}
    return f"{tonic[:1].upper()}{accidentals.get(tonic[1:], tonic[1:])} {mode}".strip()


def sample_section(row: dict[str, str], samples: Path, audio: bytes | None) -> str:
    stem = sample_stem(row)
    heading = f"T = {float(row['temperature']):g}, sample {int(row['index'])}"
    facts = [f"{row[key]} {key if row[key] != '1' else key[:-1]}" for key in ("notes", "bars") if row.get(key)]
    if row.get("key"):
        facts.append(f"in {key_name(row['key'])}")
    if row.get("problems"):
        facts.append(f"problems: {row['problems']}")
    parts = [
        f'<section class="sample" id="{html.escape(stem)}">',
        f"<h2>{html.escape(heading)}{' · ' + html.escape(', '.join(facts)) if facts else ''}</h2>",
    ]
    png = samples / f"{stem}.png"
    if png.is_file():
        uri = _data_uri("image/png", png.read_bytes())
        parts.append(f'<img alt="{html.escape(stem)}: engraved score" src="{uri}">')
    else:
        parts.append("<p>not engraved (LilyPond absent, or it failed on this sample: see the listing)</p>")
    if audio is not None:
        parts.append(f'<audio controls preload="metadata" src="{_data_uri("audio/ogg", audio)}"></audio>')
    midi = samples / f"{stem}.mid"
    if midi.is_file():
        parts.append(
            f'<a download="{html.escape(midi.name)}" href="{_data_uri("audio/midi", midi.read_bytes())}">'
            f"{html.escape(midi.name)}</a>"
        )
    parts.append(f"<details><summary>tokens</summary><code>{html.escape(row['tokens'])}</code></details>")
    parts.append("</section>")
    return "\n".join(parts)


def sample_page(params: dict[str, Any], samples: Path, listing: Path, out: Path) -> None:
    """``rnnmem lm-sample-page``: the page of one sample set (``samples``: the folder ``lm-samples`` wrote,
    ``listing``: its CSV). ``params``: ``title``, ``soundfont`` (a .sf2 file) and ``audio_rate`` (Hz), each null
    for its default (:data:`DEFAULT_SOUNDFONT`, :data:`DEFAULT_RATE`)."""
    rows = read_listing(listing)
    soundfont = params.get("soundfont") or DEFAULT_SOUNDFONT
    rate = int(params.get("audio_rate") or DEFAULT_RATE)
    note = audio_unavailable(soundfont)
    sections = []
    rendered = 0
    with tempfile.TemporaryDirectory(prefix="rnnmem-audio-") as workdir:
        for row in rows:
            midi = Path(samples) / f"{sample_stem(row)}.mid"
            audio = None
            if note is None and midi.is_file():
                audio = render_audio(midi, soundfont, rate, Path(workdir))
                rendered += 1
            sections.append(sample_section(row, Path(samples), audio))
    write_text(out, page_html(params["title"], note, sections))
    summary(
        f"{params['title']}: {len(rows)} samples, {rendered} with audio"
        f"{'' if note is None else ' (' + note + ')'} -> {out}"
    )
