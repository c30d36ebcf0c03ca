"""Fetching the LilyPond chorale archive: the manifest, safe extraction, download failures (no network)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED_ARCHIVE, SHARED_SUMS

from rnnmem.chorales import fetch
from rnnmem.chorales.fetch import (
    FetchError,
    default_bounds,
    download,
    extract_scores,
    fetch_lilypond_scores,
    is_score_member,
    load_manifest,
)

PACKAGED = Path(fetch.__file__).with_name("hardy.sha256")

TOP = "MusicForAWhile-0123456789abcdef"
SCORES = {
    "001-Aus-meines-Bach-Choral-BWV269": b"\\version \"2.10\"\nsoprano = \\relative c'' { g4 a b c }\n",
    "215-Gib-unsern-(old-Verleih)-Bach-Choral-BWV126.6": b"% ch\xc5\x93ur\nsoprano = { r1 }\n",
}


def rel(folder: str, filename: str | None = None) -> str:
    return f"bin/DB/Bach/choralgesange/sources-ly/{folder}/ly/{filename or folder + '.ly'}"


def member(folder: str, filename: str | None = None) -> str:
    return f"{TOP}/{rel(folder, filename)}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


MANIFEST = {rel(d): sha(data) for d, data in SCORES.items()}
D1, D2 = SCORES


def write_tgz(path: Path, entries: list[tuple]) -> Path:
    """``entries``: (name, "file", bytes) | (name, "dir") | (name, "sym"|"hard", linkname) | (name, "chr"|"fifo")."""
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
             "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, *rest in entries:
            info = tarfile.TarInfo(name)
            info.type = types[kind]
            info.mtime = 1_400_000_000
            if kind == "file":
                info.size = len(rest[0])
                tar.addfile(info, io.BytesIO(rest[0]))
                continue
            if kind in ("sym", "hard"):
                info.linkname = rest[0]
            tar.addfile(info)
    return path


def good_entries() -> list[tuple]:
    """Both scores, their derived files, and unrelated members of the repository (including links)."""
    entries: list[tuple] = [(TOP, "dir"), (f"{TOP}/README.md", "file", b"# MusicForAWhile\n")]
    for folder, data in SCORES.items():
        entries += [
            (f"{TOP}/bin/DB/Bach/choralgesange/sources-ly/{folder}/ly", "dir"),
            (member(folder), "file", data),
            (member(folder, f"{folder}_soprano.ly"), "file", b"soprano only\n"),
            (member(folder, f"{folder}_transposed.ly"), "file", b"transposed\n"),
            (member(folder, f"{folder}_transposed_soprano.ly"), "file", b"both\n"),
            (member(folder, f"{folder}.pdf"), "file", b"%PDF-1.4\n"),
            (member(folder, f"{folder}.midi"), "file", b"MThd"),
            (member(folder, f"{folder}.in"), "file", b"G4 A4\n"),
            (member(folder, f"{folder}.pdf.link"), "sym", f"{folder}.pdf"),  # a link, but not a .ly file
        ]
    entries += [
        (f"{TOP}/src/latest", "sym", "../../../../etc/passwd"),  # unrelated symlink outside the score folders
        (f"{TOP}/src/copy.py", "hard", f"{TOP}/README.md"),
        (f"{TOP}/src/pipe", "fifo"),
        (f"{TOP}/../outside.txt", "file", b"never read\n"),  # escaping, but nothing like a score
        (f"{TOP}/bin/DB/Bach/choralgesange/sources-ly/{D1}/ly/notes.txt", "file", b"unrelated\n"),
        (f"{TOP}/bin/DB/Bach/choralgesange/sources-ly/{D1}/{D1}.ly", "file", b"a score in the wrong folder\n"),
    ]
    return entries


def ly_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ------------------------------------------------------------------------------------------------------- manifest
def test_packaged_manifest_has_372_sorted_score_entries():
    manifest = load_manifest()
    assert len(manifest) == 372
    assert load_manifest(PACKAGED) == manifest
    lines = PACKAGED.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#")
    paths = [line.split("  ", 1)[1] for line in lines if not line.startswith("#")]
    assert paths == sorted(paths) == sorted(manifest)
    assert all(is_score_member(f"{TOP}/{path}") == path for path in manifest)
    assert all(len(digest) == 64 for digest in manifest.values())


def test_packaged_manifest_matches_shared_sha256sums():
    if not SHARED_SUMS.exists():
        pytest.skip(f"shared test data absent: {SHARED_SUMS}")
    assert load_manifest(SHARED_SUMS) == load_manifest()
    body = [line for line in PACKAGED.read_text(encoding="utf-8").splitlines(keepends=True) if not line.startswith("#")]
    assert sorted(body) == sorted(SHARED_SUMS.read_text(encoding="utf-8").splitlines(keepends=True))


def test_load_manifest_skips_comments_and_refuses_bad_lines(tmp_path):
    good = tmp_path / "good.sha256"
    good.write_text(f"# a comment\n\n{MANIFEST[rel(D1)].upper()}  {rel(D1)}\n{MANIFEST[rel(D2)]} *{rel(D2)}\n")
    assert load_manifest(good) == MANIFEST
    for text, message in [
        ("", "no entries"),
        ("# only a comment\n", "no entries"),
        (f"{'0' * 63}  {rel(D1)}\n", "not a '<sha256>  <path>' line"),
        (f"{'0' * 64}  bin/DB/Bach/choralgesange/sources-ly/{D1}/ly/{D1}_soprano.ly\n", "not a score path"),
        (f"{'0' * 64}  ../{rel(D1)}\n", "not a score path"),
        (f"{'0' * 64}  {rel(D1)}\n{'1' * 64}  {rel(D1)}\n", "duplicate entry"),
    ]:
        bad = tmp_path / "bad.sha256"
        bad.write_text(text)
        with pytest.raises(FetchError, match=message) as info:
            load_manifest(bad)
        assert str(bad) in str(info.value)
    with pytest.raises(FetchError, match=r"missing\.sha256"):
        load_manifest(tmp_path / "missing.sha256")


# ------------------------------------------------------------------------------------------------- score members
@pytest.mark.parametrize(("name", "expected"), [
    (member(D1), rel(D1)),
    (member(D2), rel(D2)),
    ("x/bin/DB/Bach/choralgesange/sources-ly/A/ly/A.ly", "bin/DB/Bach/choralgesange/sources-ly/A/ly/A.ly"),
    (member(D1, f"{D1}_soprano.ly"), None),
    (member(D1, f"{D1}_transposed.ly"), None),
    (member(D1, f"{D1}_transposed_soprano.ly"), None),
    (member(D1, f"{D1}.pdf"), None),
    (member(D1, "002-Other.ly"), None),
    (f"{TOP}/bin/DB/Bach/choralgesange/sources-ly/{D1}/{D1}.ly", None),
    (rel(D1), None),  # no top folder
    (f"/{member(D1)}", None),
    (f"{TOP}/bin/DB/Bach/choralgesange/sources-ly/{D1}/ly/../ly/{D1}.ly", None),
    (f"../bin/DB/Bach/choralgesange/sources-ly/{D1}/ly/{D1}.ly", None),
    (f"./bin/DB/Bach/choralgesange/sources-ly/{D1}/ly/{D1}.ly", None),
    (f"{TOP}//bin/DB/Bach/choralgesange/sources-ly/{D1}/ly/{D1}.ly", None),
    (member(D1).replace("/", "\\"), None),
    (f"{TOP}/bin/DB/Bach/choralgesange/sources-ly/a\\b/ly/a\\b.ly", None),
    (f"{TOP}/bin/DB/Bach/choralgesange/sources-ly/../ly/...ly", None),
    (f"{TOP}/bin/DB/Bach/choralgesange/sources-ly/a\nb/ly/a\nb.ly", None),
    (f"{TOP}/bin/DB/Bach/choralgesange/Sources-ly/{D1}/ly/{D1}.ly", None),
    (member(D1) + "/", None),
    ("", None),
])
def test_is_score_member(name, expected):
    assert is_score_member(name) == expected


# ---------------------------------------------------------------------------------------------------- extraction
def test_synthetic_archive_extracts_only_the_original_scores(tmp_path):
    archive = write_tgz(tmp_path / "good.tar.gz", good_entries())
    out = tmp_path / "out"
    frame = extract_scores(archive, out, MANIFEST)
    assert list(frame.columns) == ["file", "member", "sha256", "bytes"]
    assert frame["file"].tolist() == sorted(f"{d}.ly" for d in SCORES)
    assert frame["member"].tolist() == [member(d) for d in sorted(SCORES)]
    assert ly_files(out) == sorted(f"{d}.ly" for d in SCORES)  # nothing derived or unrelated, no temporaries
    for folder, data in SCORES.items():
        assert (out / f"{folder}.ly").read_bytes() == data
    assert frame["sha256"].tolist() == [sha(SCORES[d]) for d in sorted(SCORES)]
    assert frame["bytes"].tolist() == [len(SCORES[d]) for d in sorted(SCORES)]
    assert not (tmp_path / "outside.txt").exists()
    again = extract_scores(archive, out, MANIFEST)
    pd.testing.assert_frame_equal(frame, again)


@pytest.mark.parametrize("entry", [
    pytest.param((f"{TOP}/bin/DB/Bach/choralgesange/sources-ly/{D1}/ly/../ly/{D1}.ly", "file", b"x"), id="dotdot"),
    pytest.param((f"../../bin/DB/Bach/choralgesange/sources-ly/{D1}/ly/{D1}.ly", "file", b"x"), id="dotdot-top"),
    pytest.param((f"{TOP}/bin/DB/Bach/choralgesange/sources-ly/../../../../../../evil.ly", "file", b"x"),
                 id="dotdot-escape"),
    pytest.param((f"/{member(D1)}", "file", SCORES[D1]), id="absolute"),
    pytest.param((member(D1).replace("/", "\\"), "file", SCORES[D1]), id="backslashes"),
    pytest.param((f"{TOP}/bin/DB/Bach/choralgesange/sources-ly/{D1}/ly\\..\\..\\{D1}.ly", "file", b"x"),
                 id="backslash-dotdot"),
    pytest.param((member(D1, "999-Evil.ly"), "sym", "/etc/passwd"), id="symlink-ly-in-sources"),
    pytest.param((member(D1, f"{D1}_soprano.ly"), "hard", f"{TOP}/README.md"), id="hardlink-derived"),
    pytest.param((member(D1, "x.ly"), "fifo"), id="fifo-ly-in-sources"),
])
def test_refuses_escaping_names_and_links_that_look_like_scores(tmp_path, entry):
    archive = write_tgz(tmp_path / "bad.tar.gz", [*good_entries(), entry])
    out = tmp_path / "out"
    with pytest.raises(FetchError, match="refusing member") as info:
        extract_scores(archive, out, MANIFEST)
    assert repr(entry[0]) in str(info.value) and str(archive) in str(info.value)
    assert ly_files(out) == []


@pytest.mark.parametrize(("kind", "extra"), [
    ("sym", ["/etc/passwd"]),
    ("sym", [f"{D1}_soprano.ly"]),
    ("hard", [f"{TOP}/README.md"]),
    ("chr", []),
    ("fifo", []),
    ("dir", []),
])
def test_refuses_a_score_that_is_not_a_regular_file(tmp_path, kind, extra):
    entries = [e for e in good_entries() if e[0] != member(D1)] + [(member(D1), kind, *extra)]
    archive = write_tgz(tmp_path / "bad.tar.gz", entries)
    out = tmp_path / "out"
    with pytest.raises(FetchError, match="not a regular file") as info:
        extract_scores(archive, out, MANIFEST)
    assert repr(member(D1)) in str(info.value)
    assert ly_files(out) == []


def test_refuses_a_truncated_archive(tmp_path):
    good = write_tgz(tmp_path / "good.tar.gz", good_entries()).read_bytes()
    archive = tmp_path / "truncated.tar.gz"
    archive.write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    with pytest.raises(FetchError, match="not a complete tar") as info:
        extract_scores(archive, out, MANIFEST)
    assert str(archive) in str(info.value)
    assert ly_files(out) == []


def test_refuses_a_tar_that_stops_at_a_member_boundary(tmp_path):
    """tarfile alone reads a tar cut between members as complete; the missing end marker gives it away."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [(member(D1), SCORES[D1]), (member(D2), SCORES[D2])]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    first = tarfile.BLOCKSIZE + -(-len(SCORES[D1]) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(gzip.compress(raw.getvalue()[:first]))
    with pytest.raises(FetchError, match="end marker"):
        extract_scores(archive, tmp_path / "out", {rel(D1): MANIFEST[rel(D1)]})


def test_refuses_a_file_that_is_not_a_tar_gz(tmp_path):
    for name, data in [("plain.tar.gz", b"not gzip at all"), ("empty.tar.gz", b""),
                       ("text.tar.gz", gzip.compress(b"just text, not a tar\n"))]:
        archive = tmp_path / name
        archive.write_bytes(data)
        with pytest.raises(FetchError, match="not a complete tar") as info:
            extract_scores(archive, tmp_path / "out", MANIFEST)
        assert str(archive) in str(info.value)
    assert ly_files(tmp_path / "out") == []


def test_refuses_a_checksum_mismatch(tmp_path):
    tampered = SCORES[D2] + b"% one more line\n"
    entries = [(e[0], "file", tampered) if e[0] == member(D2) else e for e in good_entries()]
    archive = write_tgz(tmp_path / "bad.tar.gz", entries)
    out = tmp_path / "out"
    with pytest.raises(FetchError, match="checksum mismatch") as info:
        extract_scores(archive, out, MANIFEST)
    message = str(info.value)
    assert repr(member(D2)) in message and MANIFEST[rel(D2)] in message and sha(tampered) in message
    assert ly_files(out) == []


def test_refuses_an_archive_missing_a_score(tmp_path):
    archive = write_tgz(tmp_path / "good.tar.gz", good_entries())
    extra = {rel(f"{n:03d}-Missing"): "0" * 64 for n in range(300, 307)}
    out = tmp_path / "out"
    with pytest.raises(FetchError, match="7 of 9 scores in the manifest are missing") as info:
        extract_scores(archive, out, {**MANIFEST, **extra})
    assert rel("300-Missing") in str(info.value) and ", ..." in str(info.value)
    assert ly_files(out) == []


def test_refuses_an_unexpected_score(tmp_path):
    extra = member("999-Not-in-manifest")
    archive = write_tgz(tmp_path / "bad.tar.gz", [*good_entries(), (extra, "file", b"{}\n")])
    out = tmp_path / "out"
    with pytest.raises(FetchError, match="unexpected score") as info:
        extract_scores(archive, out, MANIFEST)
    assert repr(extra) in str(info.value)
    assert ly_files(out) == []


def test_refuses_a_duplicate_score_and_a_second_top_folder(tmp_path):
    archive = write_tgz(tmp_path / "dup.tar.gz", [*good_entries(), (member(D1), "file", SCORES[D1])])
    with pytest.raises(FetchError, match="duplicate score member"):
        extract_scores(archive, tmp_path / "out", MANIFEST)
    other = f"Other/{rel(D1)}"
    archive = write_tgz(tmp_path / "tops.tar.gz", [*good_entries(), (other, "file", SCORES[D1])])
    with pytest.raises(FetchError, match="more than one top folder"):
        extract_scores(archive, tmp_path / "out", MANIFEST)
    assert ly_files(tmp_path / "out") == []


def test_refuses_oversized_scores(tmp_path):
    archive = write_tgz(tmp_path / "good.tar.gz", good_entries())
    small = min(len(d) for d in SCORES.values())
    with pytest.raises(FetchError, match="over the limit") as info:
        extract_scores(archive, tmp_path / "out", MANIFEST, bounds=default_bounds(score_bytes=small))
    assert str(archive) in str(info.value) and "score member" in str(info.value)
    total = sum(len(d) for d in SCORES.values())
    with pytest.raises(FetchError, match="exceed the limit"):
        extract_scores(archive, tmp_path / "out", MANIFEST, bounds=default_bounds(scores_bytes=total - 1))
    assert ly_files(tmp_path / "out") == []
    assert len(extract_scores(archive, tmp_path / "out", MANIFEST, bounds=default_bounds(scores_bytes=total))) == 2


# ------------------------------------------------------------------------------------------------------ download
class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        if self.path == "/short.tar.gz":  # declares more bytes than it sends, then closes
            body = (Path(self.directory) / "good.tar.gz").read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 100))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@pytest.fixture
def http_root(tmp_path) -> Iterator[tuple[str, Path]]:
    """A local http server on 127.0.0.1 serving a fresh folder: (base URL, folder)."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def assert_failed_cleanly(url: str, dest: Path, match: str, **kwargs) -> None:
    with pytest.raises(FetchError, match=match) as info:
        download(url, dest, **kwargs)
    assert url in str(info.value)
    assert not dest.exists()
    assert ly_files(dest.parent) == []  # no temporary left behind either


def test_download_file_url_plain_path_and_http(tmp_path, http_root):
    base, root = http_root
    source = write_tgz(root / "good.tar.gz", good_entries())
    for url in (source.as_uri(), str(source), f"{base}/good.tar.gz"):
        dest = tmp_path / "dl" / "archive.tar.gz"
        download(url, dest)
        assert dest.read_bytes() == source.read_bytes()
        assert ly_files(dest.parent) == ["archive.tar.gz"]
        dest.unlink()


def test_download_failures_name_the_url_and_leave_no_file(tmp_path, http_root):
    base, root = http_root
    good = write_tgz(root / "good.tar.gz", good_entries())
    (root / "half.tar.gz").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (root / "notes.txt").write_text("not an archive\n")
    dest = tmp_path / "dl" / "archive.tar.gz"
    assert_failed_cleanly((tmp_path / "missing.tar.gz").as_uri(), dest, "failed")
    assert_failed_cleanly(str(tmp_path / "missing.tar.gz"), dest, "failed")
    assert_failed_cleanly(root.as_uri(), dest, "not a regular file")
    assert_failed_cleanly(f"{base}/missing.tar.gz", dest, "HTTP 404")
    assert_failed_cleanly(good.as_uri(), dest, "over the limit", max_bytes=100)
    assert_failed_cleanly(f"{base}/good.tar.gz", dest, "over the limit", max_bytes=100)
    assert_failed_cleanly((root / "half.tar.gz").as_uri(), dest, "not a complete tar.gz")
    assert_failed_cleanly(f"{base}/half.tar.gz", dest, "not a complete tar.gz")
    assert_failed_cleanly(f"{base}/short.tar.gz", dest, "truncated")
    assert_failed_cleanly(f"{base}/notes.txt", dest, "not a complete tar.gz")
    assert_failed_cleanly("ftp://127.0.0.1/good.tar.gz", dest, "unsupported URL scheme")
    assert_failed_cleanly("file://example.org/good.tar.gz", dest, "local path")


def test_failed_download_keeps_the_previous_file(tmp_path):
    dest = tmp_path / "archive.tar.gz"
    dest.write_bytes(b"previous")
    url = (tmp_path / "missing.tar.gz").as_uri()
    with pytest.raises(FetchError, match=r"missing\.tar\.gz"):
        download(url, dest)
    assert dest.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.tar.gz"]


def test_fetch_skips_a_complete_archive_and_replaces_a_corrupt_one(tmp_path):
    source = write_tgz(tmp_path / "source.tar.gz", good_entries())
    manifest_file = tmp_path / "manifest.sha256"
    manifest_file.write_text("# test\n" + "".join(f"{d}  {p}\n" for p, d in sorted(MANIFEST.items())))
    archive, out = tmp_path / "cache" / "archive.tar.gz", tmp_path / "out"
    archive.parent.mkdir()
    archive.write_bytes(source.read_bytes())
    missing_url = (tmp_path / "no-such.tar.gz").as_uri()
    frame = fetch_lilypond_scores(missing_url, archive, out, manifest_file)  # no download: the URL is never read
    assert frame["file"].tolist() == sorted(f"{d}.ly" for d in SCORES)
    archive.write_bytes(source.read_bytes()[:100])
    with pytest.raises(FetchError, match=r"no-such\.tar\.gz"):
        fetch_lilypond_scores(missing_url, archive, out, manifest_file)
    assert not archive.exists()  # the corrupt copy is gone, and no partial download replaced it
    archive.write_bytes(source.read_bytes()[:100])
    again = fetch_lilypond_scores(source.as_uri(), archive, out, manifest_file)
    pd.testing.assert_frame_equal(frame, again)
    assert archive.read_bytes() == source.read_bytes()


# ------------------------------------------------------------------------------------------------- shared archive
def test_shared_archive_extracts_all_372_scores(tmp_path):
    if not SHARED_ARCHIVE.exists():
        pytest.skip(f"shared test data absent: {SHARED_ARCHIVE}")
    archive, out = tmp_path / "hardy.tar.gz", tmp_path / "ly"
    frame = fetch_lilypond_scores(SHARED_ARCHIVE.as_uri(), archive, out)
    manifest = load_manifest()
    assert len(frame) == 372 and frame["file"].is_unique
    assert ly_files(out) == frame["file"].tolist() == sorted(frame["file"])
    by_rel = {is_score_member(m): s for m, s in zip(frame["member"], frame["sha256"], strict=True)}
    assert by_rel == manifest
    for file, digest, size in zip(frame["file"], frame["sha256"], frame["bytes"], strict=True):
        data = (out / file).read_bytes()
        assert sha(data) == digest and len(data) == size
    assert {"309-dummy-score.ly"} <= set(frame["file"])
    assert archive.read_bytes() == SHARED_ARCHIVE.read_bytes()
