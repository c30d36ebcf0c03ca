"""Faults: bounds on the chorale archive and one decompression per fetch (issue 10, item 6).

Each refused archive goes through the command line (``rnnmem chorales-fetch`` with a ``file:`` URL), which must
exit 1 with the one line ``rnnmem chorales-fetch: error: <archive>: <what is wrong>`` and leave nothing that looks
like a finished fetch: no archive, no scores folder, no listing, no temporary file. The real bounds are checked in
a child process (``python -m rnnmem``); smaller ones (the module constants, read when a fetch starts) through
``rnnmem.cli.main`` in this process, so the archives stay small and the tests fast.
"""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest

from rnnmem.chorales import fetch
from tests.chorales.test_fetch import D2, MANIFEST, SCORES, TOP, good_entries, member, write_tgz

KIB, MIB = 2**10, 2**20


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, streamed (the archive is written without holding the member in memory)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def write_archive(path: Path, members: list[tuple[str, int]], *, pax: dict[str, str] | None = None,
                  trailing_zeros: int = 0) -> Path:
    """A tar.gz of members of zeros ``(name, size)``, first member with ``pax`` headers, then zeros after the tar."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_dir(TOP))
            for index, (name, size) in enumerate(members):
                info = tarfile.TarInfo(name)
                info.size, info.mtime = size, 1_400_000_000
                if index == 0 and pax:
                    info.pax_headers = dict(pax)
                tar.addfile(info, _Zeros(size))
        remaining = trailing_zeros
        while remaining:
            chunk = min(remaining, MIB)
            gz.write(bytes(chunk))
            remaining -= chunk
    return path


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_400_000_000
    return info


class Fetched(NamedTuple):
    returncode: int
    stderr: str
    paths: dict[str, Path]


def fetch_paths(tmp_path: Path) -> dict[str, Path]:
    out = tmp_path / "results"
    return {"archive": out / "archive.tar.gz", "scores": out / "ly", "listing": out / "ly_files.csv"}


def fetch_argv(source: Path, paths: dict[str, Path]) -> list[str]:
    return ["chorales-fetch", "--url", source.as_uri(), "--archive", str(paths["archive"]),
            "--scores-dir", str(paths["scores"]), "--listing", str(paths["listing"])]


def run_fetch_process(tmp_path: Path, source: Path) -> Fetched:
    """``python -m rnnmem chorales-fetch`` in a child process, with the real bounds."""
    paths = fetch_paths(tmp_path)
    result = subprocess.run([sys.executable, "-m", "rnnmem", *fetch_argv(source, paths)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    return Fetched(result.returncode, result.stderr, paths)


@pytest.fixture
def run_fetch(tmp_path, monkeypatch, capsys):
    """``rnnmem.cli.main(["chorales-fetch", ...])`` in this process with some of fetch's bounds set (module
    constants, read when a fetch starts); the torch set-up, which a fetch does not use, is skipped."""
    from rnnmem import cli
    from rnnmem.core import runtime

    monkeypatch.setattr(runtime, "configure_torch", lambda threads=None: None)

    def run(source: Path, bounds: dict[str, int]) -> Fetched:
        for name, value in bounds.items():
            assert hasattr(fetch, name), name
            monkeypatch.setattr(fetch, name, value)
        paths = fetch_paths(tmp_path)
        capsys.readouterr()
        code = cli.main(fetch_argv(source, paths))
        return Fetched(code, capsys.readouterr().err, paths)

    return run


def assert_refused(result: Fetched, message: str) -> None:
    """Exit 1, one line naming the archive, and nothing left that looks like a fetch (nor a temporary file)."""
    paths = result.paths
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    prefix = f"rnnmem chorales-fetch: error: {paths['archive']}: "
    assert lines[0].startswith(prefix), lines[0]
    assert message in lines[0][len(prefix):], lines[0]
    assert not paths["listing"].exists() and not paths["archive"].exists() and not paths["scores"].exists()
    folder = paths["archive"].parent
    if folder.exists():
        assert sorted(p.name for p in folder.iterdir()) == []


# ------------------------------------------------------------------------------------------------------ the bombs
def test_a_member_of_zeros_over_the_real_bound_is_refused_before_it_is_read(tmp_path):
    """The real bound (no override): one non-score member a byte over it, 64 MiB of zeros in a 65 kB archive."""
    size = fetch.MAX_MEMBER_BYTES + 1
    member = f"{TOP}/bin/zeros.bin"
    source = write_archive(tmp_path / "bomb.tar.gz", [(member, size)])
    assert source.stat().st_size < size // 500
    assert_refused(run_fetch_process(tmp_path, source),
                   f"member {member!r} has {size} bytes, over the limit of {fetch.MAX_MEMBER_BYTES}")


def test_a_bomb_member_under_a_small_bound(tmp_path, run_fetch):
    member = f"{TOP}/bin/DB/Bach/choralgesange/sources-ly/zeros.pdf"
    source = write_archive(tmp_path / "bomb.tar.gz", [(f"{TOP}/README.md", 100), (member, 8 * MIB)])
    assert_refused(run_fetch(source, {"MAX_MEMBER_BYTES": 64 * KIB}),
                   f"member {member!r} has {8 * MIB} bytes, over the limit of {64 * KIB}")


def test_the_whole_archive_is_bounded_not_only_each_member(tmp_path, run_fetch):
    """Members each under the member bound, together over the archive bound."""
    members = [(f"{TOP}/bin/part{n}.bin", MIB) for n in range(6)]
    source = write_archive(tmp_path / "many.tar.gz", members)
    assert_refused(run_fetch(source, {"MAX_MEMBER_BYTES": 2 * MIB, "MAX_ARCHIVE_BYTES": 4 * MIB}),
                   f"the archive uncompresses to more than the limit of {4 * MIB} bytes")


def test_zeros_after_the_tar_end_marker_count_too(tmp_path, run_fetch):
    source = write_archive(tmp_path / "tail.tar.gz", [(f"{TOP}/README.md", 100)], trailing_zeros=8 * MIB)
    assert_refused(run_fetch(source, {"MAX_ARCHIVE_BYTES": 4 * MIB}),
                   f"the archive uncompresses to more than the limit of {4 * MIB} bytes")


def test_a_huge_pax_header_is_bounded(tmp_path, run_fetch):
    """tarfile reads a pax header into memory whole: the bytes between two members are bounded too."""
    source = write_archive(tmp_path / "pax.tar.gz", [(f"{TOP}/README.md", 10)], pax={"comment": "x" * (3 * MIB)})
    assert_refused(run_fetch(source, {"MAX_MEMBER_BYTES": 64 * KIB}),
                   f"more than the limit of {64 * KIB} bytes in one member or its headers")


def test_the_member_count_is_bounded(tmp_path, run_fetch):
    members = [(f"{TOP}/src/empty{n}.txt", 0) for n in range(40)]
    source = write_archive(tmp_path / "count.tar.gz", members)
    assert_refused(run_fetch(source, {"MAX_MEMBERS": 25}), "more than the limit of 25 members")


def test_the_real_archive_fits_the_bounds():
    """The bounds' comments quote the real archive; the shared copy (its scores only) is well inside them."""
    assert fetch.MAX_ARCHIVE_BYTES >= 6 * 153_149_440 and fetch.MAX_MEMBER_BYTES >= 20 * 3_079_484
    assert fetch.MAX_MEMBERS >= 7 * 7_116 and fetch.MAX_SCORE_BYTES >= 100 * 12_046
    assert fetch.MAX_SCORES_BYTES >= 30 * 1_725_391


# ------------------------------------------------------------------------------------------- one decompression
class _Counting:
    """A zlib decompressor that adds what it outputs to ``counter``."""

    def __init__(self, inner, counter: list[int]) -> None:
        self._inner, self._counter = inner, counter

    def decompress(self, *args, **kwargs):
        data = self._inner.decompress(*args, **kwargs)
        self._counter[0] += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.fixture
def decompressed(monkeypatch) -> list[int]:
    """``[bytes]``: everything any zlib decompressor (gzip's, tarfile's, anyone's) outputs from now on."""
    counter = [0]
    for name in ("decompressobj", "_ZlibDecompressor"):  # gzip uses the second from Python 3.12
        real = getattr(zlib, name, None)
        if real is not None:
            monkeypatch.setattr(zlib, name, lambda *a, _real=real, **k: _Counting(_real(*a, **k), counter))
    real_decompress = zlib.decompress

    def one_shot(*args, **kwargs):
        data = real_decompress(*args, **kwargs)
        counter[0] += len(data)
        return data

    monkeypatch.setattr(zlib, "decompress", one_shot)
    return counter


def test_a_fetch_decompresses_the_archive_once(tmp_path, decompressed):
    source = write_tgz(tmp_path / "source.tar.gz", good_entries())
    size = len(gzip.GzipFile(fileobj=io.BytesIO(source.read_bytes())).read())  # what one pass decompresses
    manifest = tmp_path / "manifest.sha256"
    manifest.write_text("".join(f"{digest}  {rel}\n" for rel, digest in sorted(MANIFEST.items())))
    archive, out = tmp_path / "cache" / "archive.tar.gz", tmp_path / "ly"

    decompressed[0] = 0
    frame = fetch.fetch_lilypond_scores(source.as_uri(), archive, out, manifest)  # a fresh download
    assert decompressed[0] == size and len(frame) == len(SCORES)
    assert archive.read_bytes() == source.read_bytes()

    decompressed[0] = 0
    again = fetch.fetch_lilypond_scores((tmp_path / "unused.tar.gz").as_uri(), archive, out, manifest)  # kept
    assert decompressed[0] == size
    pd.testing.assert_frame_equal(frame, again)


def test_a_refused_download_leaves_nothing(tmp_path):
    """A checksum mismatch found at the end of the one pass: no archive, no scores, no temporaries."""
    entries = [(e[0], "file", e[2] + b"%") if e[0] == member(D2) else e for e in good_entries()]
    source = write_tgz(tmp_path / "tampered.tar.gz", entries)
    manifest = tmp_path / "manifest.sha256"
    manifest.write_text("".join(f"{digest}  {rel}\n" for rel, digest in sorted(MANIFEST.items())))
    folder = tmp_path / "results"
    with pytest.raises(fetch.FetchError, match="checksum mismatch") as info:
        fetch.fetch_lilypond_scores(source.as_uri(), folder / "archive.tar.gz", folder / "ly", manifest)
    assert str(info.value).startswith(f"{folder / 'archive.tar.gz'}: ")
    assert sorted(p.name for p in folder.iterdir()) == []
