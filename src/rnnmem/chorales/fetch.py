"""Download Ph. Hardy's LilyPond chorale archive and extract the 372 original scores, verified (report §3.2).

The scores come from the public archive of the repository nicofarr/MusicForAWhile at a fixed commit. Only members
``<top>/bin/DB/Bach/choralgesange/sources-ly/<D>/ly/<D>.ly`` are read: each must be a regular file whose SHA-256
is in the committed manifest ``hardy.sha256``, and it is written to ``<out_dir>/<D>.ly``. Every other member (the
derived ``*_soprano.ly``, ``*_transposed.ly``, ``.in``, ``.midi``, ``.pdf`` files and the rest of the repository)
is skipped without being read, but a link, device, fifo or escaping name that looks like a score refuses the
archive. Nothing is written unless the whole archive reads and every manifest entry is present and matches.

A fetch decompresses the archive once: the one pass through the gzip stream checks every bound below, reads the
scores and verifies them, and reaches the end of the stream (gzip CRC and length, tar end marker); only then are
the scores written (staged in a temporary folder, then moved in) and a fresh download renamed into place.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import BinaryIO, NamedTuple

import pandas as pd

from rnnmem.core.atomic import atomic_path
from rnnmem.core.errors import RnnmemError

DEFAULT_URL = (
    "https://github.com/nicofarr/MusicForAWhile/archive/8cf4e840afd5fba3325559c5970dba5d19419182.tar.gz"
)
MANIFEST_NAME = "hardy.sha256"
SCORE_DIR = ("bin", "DB", "Bach", "choralgesange", "sources-ly")
CHUNK = 1 << 20

# Bounds on what one fetch reads. The real archive (GitHub's tar.gz of MusicForAWhile at the pinned commit, rebuilt
# with `git archive`) is 66.5 MB gzipped, 153,149,440 bytes of tar (146 MiB) in 7,116 members; its largest member
# is bin/first.png (3,079,484 bytes), its largest score 12,046 bytes, its 372 scores 1,725,391 bytes together.
# Each bound leaves room for a later commit yet stops a decompression bomb (2 GiB of zeros gzip to 2 MB) in
# seconds. Functions take them as a `bounds` argument (default: these constants, read at call time: see
# default_bounds), so tests can use small ones.
MAX_DOWNLOAD_BYTES = 512 * 2**20  # the compressed file: 8x the real 66.5 MB
MAX_ARCHIVE_BYTES = 2**30  # the whole uncompressed tar stream (all members, headers, anything after the end marker): 7x
MAX_MEMBER_BYTES = 64 * 2**20  # any one member, and the headers before it (a pax header is read into memory): 20x
MAX_MEMBERS = 50_000  # 7x the real 7,116; tarfile keeps every member's header in memory
MAX_SCORE_BYTES = 2 * 2**20  # one score (held in memory until all verify): 170x the largest
MAX_SCORES_BYTES = 64 * 2**20  # all scores together: 37x
_HEADER_SLACK = 2**20  # beyond member_bytes between two members: tarfile's read-ahead (10 KiB) and one member's
# headers (the real archive's pax headers are under 1 KiB)
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)
_MANIFEST_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)
Visitor = Callable[[tarfile.TarFile, tarfile.TarInfo], None]


class FetchError(RnnmemError, RuntimeError):
    """A download or verification failed; the message names the URL, archive, member or file."""


class IncompleteArchiveError(FetchError):
    """The file does not read through as a gzip-compressed tar (truncated, corrupt, not an archive)."""


# --------------------------------------------------------------------------------------------------------- manifest
def load_manifest(path: Path | None = None) -> dict[str, str]:
    """``{path relative to the archive's top folder: sha256}`` from a sha256sum-format file; ``#`` lines are comments.

    The default is the manifest packaged next to this module.
    """
    if path is None:
        label = f"packaged {MANIFEST_NAME}"
        try:
            text = resources.files("rnnmem.chorales").joinpath(MANIFEST_NAME).read_text(encoding="utf-8")
        except (OSError, ModuleNotFoundError) as exc:
            raise FetchError(f"cannot read the {label}: {exc}") from exc
    else:
        label = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FetchError(f"cannot read manifest {label}: {exc}") from exc
    manifest: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _MANIFEST_LINE.fullmatch(line)
        if match is None:
            raise FetchError(f"{label}:{lineno}: not a '<sha256>  <path>' line: {line!r}")
        digest, rel = match.group(1).lower(), match.group(2)
        if is_score_member(f"top/{rel}") != rel:
            raise FetchError(f"{label}:{lineno}: not a score path {rel!r}")
        if rel in manifest:
            raise FetchError(f"{label}:{lineno}: duplicate entry {rel!r}")
        manifest[rel] = digest
    if not manifest:
        raise FetchError(f"{label}: the manifest has no entries")
    return manifest


# --------------------------------------------------------------------------------------------------------- download
def download(url: str, dest: Path, timeout: float = 120.0, max_bytes: int | None = None, *,
             bounds: Bounds | None = None) -> None:
    """Copy ``url`` (http, https, ``file:`` URL or plain path) to ``dest`` once it is complete and reads as a tar.gz.

    The check reads the archive through once within ``bounds`` (``fetch_lilypond_scores`` does not call this: it
    verifies while it extracts). Any failure raises :class:`FetchError` naming the URL; ``dest`` is then left as it
    was (never a partial file).
    """
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        _download_to(url, tmp, timeout, MAX_DOWNLOAD_BYTES if max_bytes is None else max_bytes)
        _scan_targz(tmp, url, bounds or default_bounds())


def _download_to(url: str, target: Path, timeout: float, max_bytes: int) -> None:
    """Copy the bytes of ``url`` to ``target`` (no decompression); failures raise FetchError naming the URL."""
    try:
        with _open_source(url, timeout) as (stream, declared):
            if declared is not None and declared > max_bytes:
                raise FetchError(f"download of {url} refused: {declared} bytes is over the limit of {max_bytes}")
            copied = _copy_limited(stream, target, url, max_bytes)
        if declared is not None and copied != declared:
            raise FetchError(f"download of {url} is truncated: got {copied} of {declared} bytes")
    except FetchError:
        raise
    except urllib.error.HTTPError as exc:
        exc.close()
        raise FetchError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise FetchError(f"download of {url} failed: {exc}") from exc


@contextlib.contextmanager
def _open_source(url: str, timeout: float) -> Iterator[tuple[BinaryIO, int | None]]:
    """The source as a binary stream and its declared size (None if unknown)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        request = urllib.request.Request(url, headers={"User-Agent": "rnnmem-fetch"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            yield response, int(length) if length is not None and length.strip().isdigit() else None
        return
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise FetchError(f"download of {url} refused: a file: URL must name a local path")
        path = Path(urllib.request.url2pathname(parts.path))
    elif len(scheme) <= 1:  # a plain path (a one-letter "scheme" is a Windows drive)
        path = Path(url)
    else:
        raise FetchError(f"download of {url} refused: unsupported URL scheme {parts.scheme!r}")
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise FetchError(f"download of {url} failed: {path} is not a regular file")
    with open(path, "rb") as handle:
        yield handle, info.st_size


def _copy_limited(stream: BinaryIO, target: Path, url: str, max_bytes: int) -> int:
    copied = 0
    with open(target, "wb") as out:
        while chunk := stream.read(CHUNK):
            copied += len(chunk)
            if copied > max_bytes:
                raise FetchError(f"download of {url} refused: more than the limit of {max_bytes} bytes")
            out.write(chunk)
    return copied


# ----------------------------------------------------------------------------------------------------------- bounds
class Bounds(NamedTuple):
    """The limits of one pass through an archive (see the module constants for the values and why)."""

    archive_bytes: int
    member_bytes: int
    members: int
    score_bytes: int
    scores_bytes: int


def default_bounds(**changes: int) -> Bounds:
    """The module's bounds (read when called), with ``changes`` (e.g. ``member_bytes=1000``) applied."""
    return Bounds(MAX_ARCHIVE_BYTES, MAX_MEMBER_BYTES, MAX_MEMBERS, MAX_SCORE_BYTES,
                  MAX_SCORES_BYTES)._replace(**changes)


class _BoundedReader:
    """The decompressed stream as tarfile reads it, refused once it passes ``bounds``.

    Counts every decompressed byte: in all (the whole archive, including what follows the tar end marker) and
    since the last member header tarfile returned (one member's data, padding and the headers before the next
    one, which tarfile reads into memory: a pax header can be of any size).
    """

    def __init__(self, raw: BinaryIO, label: str, bounds: Bounds) -> None:
        self.raw, self.label, self.bounds = raw, label, bounds
        self.total = 0
        self.since_member = 0
        self.last_member = ""

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = CHUNK
        data = self.raw.read(min(size, CHUNK))
        self.total += len(data)
        self.since_member += len(data)
        if self.total > self.bounds.archive_bytes:
            raise FetchError(f"{self.label}: the archive uncompresses to more than the limit of "
                             f"{self.bounds.archive_bytes} bytes")
        if self.since_member > self.bounds.member_bytes + _HEADER_SLACK:
            after = f" after member {_shown(self.last_member)}" if self.last_member else " at the start"
            raise FetchError(f"{self.label}: more than the limit of {self.bounds.member_bytes} bytes in one member "
                             f"or its headers{after}")
        return data

    def new_member(self, member: tarfile.TarInfo) -> None:
        self.since_member = 0
        self.last_member = member.name


def _scan_targz(path: Path, label: str, bounds: Bounds, visit: Visitor | None = None) -> None:
    """Read ``path`` through to the end as a gzip-compressed tar, within ``bounds``, calling ``visit`` on each member.

    This is the only place that decompresses an archive, once per call. The gzip layer checks its CRC and length
    at the end (a truncated download fails there); the tar layer must reach its end-of-archive marker (tarfile
    alone stops silently at a missing header). Every member's declared size, the member count and the bytes
    decompressed are checked as they come, before the data is read. Read errors become
    :class:`IncompleteArchiveError` naming ``label``; a FetchError raised by a bound or by ``visit`` passes
    through unchanged.
    """
    try:
        with gzip.open(path, "rb") as gz:
            reader = _BoundedReader(gz, label, bounds)
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                for count, member in enumerate(tar, start=1):
                    reader.new_member(member)
                    if count > bounds.members:
                        raise FetchError(f"{label}: more than the limit of {bounds.members} members")
                    if member.size > bounds.member_bytes:
                        raise FetchError(f"{label}: member {_shown(member.name)} has {member.size} bytes, over the "
                                         f"limit of {bounds.member_bytes}")
                    if visit is not None:
                        visit(tar, member)
                end = tar.offset
            while reader.read(CHUNK):
                pass
            total = reader.total
    except FetchError:
        raise
    except _READ_ERRORS as exc:
        raise IncompleteArchiveError(f"{label}: not a complete tar.gz archive ({type(exc).__name__}: {exc})") from exc
    if total < end + 2 * tarfile.BLOCKSIZE:
        raise IncompleteArchiveError(f"{label}: not a complete tar.gz archive (the tar stream ends without its end "
                                     "marker)")


# --------------------------------------------------------------------------------------------------------- members
def _shown(name: str, limit: int = 300) -> str:
    """``repr(name)`` for a message, cut after ``limit`` characters (a pax header can hold a name of any length)."""
    return repr(name) if len(name) <= limit else f"{name[:limit]!r}... ({len(name)} characters)"


def is_score_member(name: str) -> str | None:
    """The path relative to the top folder if ``name`` is an original score, else None.

    An original score is ``<top>/bin/DB/Bach/choralgesange/sources-ly/<D>/ly/<D>.ly`` with plain components (not
    empty, ``.`` or ``..``), no leading ``/``, no backslash and no control character.
    """
    if not name or "\\" in name or name.startswith("/") or _CONTROL.search(name):
        return None
    parts = name.split("/")
    if len(parts) != 9 or any(part in ("", ".", "..") for part in parts):
        return None
    _top, *middle, folder, ly, filename = parts
    if tuple(middle) != SCORE_DIR or ly != "ly" or filename != f"{folder}.ly":
        return None
    return "/".join(parts[1:])


def _looks_like_score(name: str) -> bool:
    """Broad: a ``.ly`` file anywhere under a ``sources-ly`` folder, after normalising slashes and dropping dots."""
    parts = [part.lower() for part in re.split(r"[\\/]+", name) if part not in ("", ".", "..")]
    return bool(parts) and parts[-1].endswith(".ly") and "sources-ly" in parts[:-1]


def _unsafe_name(name: str) -> str | None:
    if "\\" in name:
        return "a backslash in its name"
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if ".." in name.split("/"):
        return "a '..' component"
    if _CONTROL.search(name):
        return "a control character in its name"
    return None


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"hard link to {member.linkname!r}"
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "fifo"
    if member.isdir():
        return "directory"
    if member.type in _REGULAR:
        return "regular file"
    return f"member of tar type {member.type!r}"


# --------------------------------------------------------------------------------------------------------- extract
def extract_scores(archive: Path, out_dir: Path, manifest: dict[str, str], *, bounds: Bounds | None = None,
                   label: str | None = None) -> pd.DataFrame:
    """Verify every original score of ``archive`` against ``manifest`` and write each to ``out_dir/<D>.ly``.

    One pass through the archive (see :func:`_scan_targz`) within ``bounds`` reads and verifies the scores.
    Returns one row per score (file, member, sha256, bytes) sorted by file. Files are written only after the whole
    archive has been read and verified, so a refused archive writes nothing; they are written in a temporary
    folder beside ``out_dir`` and then moved into it. Errors name ``label`` (default: ``archive``).
    """
    archive = Path(archive)
    bounds = bounds or default_bounds()
    label = str(archive) if label is None else label
    found: dict[str, tuple[str, bytes, str]] = {}  # relative path -> (member name, bytes, sha256)
    tops: set[str] = set()
    total = 0

    def visit(tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        nonlocal total
        name = member.name
        rel = is_score_member(name)
        if rel is None:
            if _looks_like_score(name):
                reason = _unsafe_name(name)
                if reason is None and not (member.type in _REGULAR or member.isdir()):
                    reason = f"a {_kind(member)}"
                if reason is not None:
                    raise FetchError(f"{label}: refusing member {_shown(name)}: it looks like a score and has {reason}")
            return
        if member.type not in _REGULAR:
            raise FetchError(f"{label}: refusing score member {_shown(name)}: a {_kind(member)}, not a regular file")
        tops.add(name.split("/", 1)[0])
        if len(tops) > 1:
            raise FetchError(f"{label}: score members under more than one top folder: {sorted(tops)}")
        if rel in found:
            raise FetchError(f"{label}: duplicate score member {_shown(name)}")
        if rel not in manifest:
            raise FetchError(f"{label}: unexpected score {_shown(name)} (not in the manifest)")
        if member.size > bounds.score_bytes:
            raise FetchError(f"{label}: score member {_shown(name)} has {member.size} bytes, over the limit of "
                             f"{bounds.score_bytes}")
        if total + member.size > bounds.scores_bytes:
            raise FetchError(f"{label}: the scores exceed the limit of {bounds.scores_bytes} bytes at {_shown(name)}")
        handle = tar.extractfile(member)
        if handle is None:
            raise FetchError(f"{label}: cannot read score member {_shown(name)}")
        data = handle.read()
        if len(data) != member.size:
            raise FetchError(f"{label}: score member {_shown(name)} is truncated ({len(data)} of {member.size} bytes)")
        total += len(data)
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest[rel].lower():
            raise FetchError(f"{label}: checksum mismatch for {_shown(name)}: expected {manifest[rel].lower()}, "
                             f"got {digest}")
        found[rel] = (name, data, digest)

    _scan_targz(archive, label, bounds, visit)
    missing = sorted(set(manifest) - set(found))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise FetchError(f"{label}: {len(missing)} of {len(manifest)} scores in the manifest are missing from the "
                         f"archive: {shown}")

    rows = []
    files: dict[str, bytes] = {}
    for rel in sorted(found, key=lambda r: r.rsplit("/", 1)[1]):
        name, data, digest = found[rel]
        filename = rel.rsplit("/", 1)[1]
        files[filename] = data
        rows.append({"file": filename, "member": name, "sha256": digest, "bytes": len(data)})
    _write_files(Path(out_dir), files)
    frame = pd.DataFrame(rows, columns=["file", "member", "sha256", "bytes"])
    return frame.sort_values("file", kind="stable").reset_index(drop=True).astype({"bytes": "int64"})


def _write_files(out_dir: Path, files: dict[str, bytes]) -> None:
    """Write every file in a temporary folder beside ``out_dir``, then move each into ``out_dir`` (a rename).

    A failed write (disk full) leaves ``out_dir`` as it was; the temporary folder is removed whatever happens.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        for filename, data in files.items():
            (staging / filename).write_bytes(data)
        out_dir.mkdir(exist_ok=True)
        for filename in files:
            os.replace(staging / filename, out_dir / filename)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_lilypond_scores(url: str, archive: Path, out_dir: Path, manifest_path: Path | None = None, *,
                          bounds: Bounds | None = None, max_download_bytes: int | None = None) -> pd.DataFrame:
    """Download ``url`` to ``archive`` unless a complete archive is already there, then :func:`extract_scores`.

    The archive is decompressed once: the extraction's pass is its check. A fresh download is extracted from
    its temporary file and renamed to ``archive`` only when every score verified; an ``archive`` already there
    that does not read through (an interrupted earlier copy) is deleted and downloaded again.
    """
    manifest = load_manifest(manifest_path)
    archive = Path(archive)
    bounds = bounds or default_bounds()
    if archive.is_file():
        try:
            return extract_scores(archive, out_dir, manifest, bounds=bounds)
        except IncompleteArchiveError:
            archive.unlink()  # an incomplete or corrupt earlier download
    elif os.path.lexists(archive) and not archive.is_dir():
        archive.unlink()  # a dangling link or other non-file left in its place
    with atomic_path(archive) as tmp:
        _download_to(url, tmp, 120.0, MAX_DOWNLOAD_BYTES if max_download_bytes is None else max_download_bytes)
        frame = extract_scores(tmp, out_dir, manifest, bounds=bounds, label=str(archive))
    return frame
