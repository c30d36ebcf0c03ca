"""Download Ph. Hardy's LilyPond chorale archive and extract the 372 original scores, verified (report §3.2).

The scores come from the public archive of the repository nicofarr/MusicForAWhile at a fixed commit. Only members
``<top>/bin/DB/Bach/choralgesange/sources-ly/<D>/ly/<D>.ly`` are read: each must be a regular file whose SHA-256
is in the committed manifest ``hardy.sha256``, and it is written to ``<out_dir>/<D>.ly``. Every other member (the
derived ``*_soprano.ly``, ``*_transposed.ly``, ``.in``, ``.midi``, ``.pdf`` files and the rest of the repository)
is skipped without being read, but a link, device, fifo or escaping name that looks like a score refuses the
archive. Nothing is written unless the whole archive reads and every manifest entry is present and matches.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import re
import stat
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from rnnmem.atomic import atomic_path
from rnnmem.errors import RnnmemError

DEFAULT_URL = (
    "https://github.com/nicofarr/MusicForAWhile/archive/8cf4e840afd5fba3325559c5970dba5d19419182.tar.gz"
)
MANIFEST_NAME = "hardy.sha256"
SCORE_DIR = ("bin", "DB", "Bach", "choralgesange", "sources-ly")
CHUNK = 1 << 20
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)
_MANIFEST_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)
Visitor = Callable[[tarfile.TarFile, tarfile.TarInfo], None]


class FetchError(RnnmemError, RuntimeError):
    """A download or verification failed; the message names the URL, archive, member or file."""


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
def download(url: str, dest: Path, timeout: float = 120.0, max_bytes: int = 512 * 2**20) -> None:
    """Copy ``url`` (http, https, ``file:`` URL or plain path) to ``dest`` once it is complete and reads as a tar.gz.

    Any failure raises :class:`FetchError` naming the URL; ``dest`` is then left as it was (never a partial file).
    """
    dest = Path(dest)
    try:
        with atomic_path(dest) as tmp:
            with _open_source(url, timeout) as (stream, declared):
                if declared is not None and declared > max_bytes:
                    raise FetchError(f"download of {url} refused: {declared} bytes is over the limit of {max_bytes}")
                copied = _copy_limited(stream, tmp, url, max_bytes)
            if declared is not None and copied != declared:
                raise FetchError(f"download of {url} is truncated: got {copied} of {declared} bytes")
            _scan_targz(tmp, url)
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


def _scan_targz(path: Path, label: str, visit: Visitor | None = None) -> None:
    """Read ``path`` through to the end as a gzip-compressed tar, calling ``visit`` on each member in order.

    The gzip layer checks its CRC and length at the end (a truncated download fails there); the tar layer must
    reach its end-of-archive marker (tarfile alone stops silently at a missing header). Read errors become
    :class:`FetchError` naming ``label``; a FetchError raised by ``visit`` passes through unchanged.
    """
    try:
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                if visit is not None:
                    visit(tar, member)
            end = tar.offset
            while gz.read(CHUNK):
                pass
            total = gz.tell()
    except _READ_ERRORS as exc:
        raise FetchError(f"{label}: not a complete tar.gz archive ({type(exc).__name__}: {exc})") from exc
    if total < end + 2 * tarfile.BLOCKSIZE:
        raise FetchError(f"{label}: not a complete tar.gz archive (the tar stream ends without its end marker)")


def _reads_fully(path: Path) -> bool:
    try:
        _scan_targz(path, str(path))
    except FetchError:
        return False
    return True


# --------------------------------------------------------------------------------------------------------- members
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
def extract_scores(archive: Path, out_dir: Path, manifest: dict[str, str], max_member_bytes: int = 2 * 2**20,
                   max_total_bytes: int = 200 * 2**20) -> pd.DataFrame:
    """Verify every original score of ``archive`` against ``manifest`` and write each to ``out_dir/<D>.ly``.

    Returns one row per score (file, member, sha256, bytes) sorted by file. Files are written only after the whole
    archive has been read and verified, so a refused archive writes nothing.
    """
    archive = Path(archive)
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
                    raise FetchError(f"{archive}: refusing member {name!r}: it looks like a score and has {reason}")
            return
        if member.type not in _REGULAR:
            raise FetchError(f"{archive}: refusing score member {name!r}: a {_kind(member)}, not a regular file")
        tops.add(name.split("/", 1)[0])
        if len(tops) > 1:
            raise FetchError(f"{archive}: score members under more than one top folder: {sorted(tops)}")
        if rel in found:
            raise FetchError(f"{archive}: duplicate score member {name!r}")
        if rel not in manifest:
            raise FetchError(f"{archive}: unexpected score {name!r} (not in the manifest)")
        if member.size > max_member_bytes:
            raise FetchError(f"{archive}: score member {name!r} has {member.size} bytes, over the limit of "
                             f"{max_member_bytes}")
        if total + member.size > max_total_bytes:
            raise FetchError(f"{archive}: the scores exceed the limit of {max_total_bytes} bytes at {name!r}")
        handle = tar.extractfile(member)
        if handle is None:
            raise FetchError(f"{archive}: cannot read score member {name!r}")
        data = handle.read()
        if len(data) != member.size:
            raise FetchError(f"{archive}: score member {name!r} is truncated ({len(data)} of {member.size} bytes)")
        total += len(data)
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest[rel].lower():
            raise FetchError(f"{archive}: checksum mismatch for {name!r}: expected {manifest[rel].lower()}, "
                             f"got {digest}")
        found[rel] = (name, data, digest)

    _scan_targz(archive, str(archive), visit)
    missing = sorted(set(manifest) - set(found))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise FetchError(f"{archive}: {len(missing)} of {len(manifest)} scores in the manifest are missing from the "
                         f"archive: {shown}")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for rel in sorted(found, key=lambda r: r.rsplit("/", 1)[1]):
        name, data, digest = found[rel]
        filename = rel.rsplit("/", 1)[1]
        with atomic_path(out_dir / filename) as tmp:
            tmp.write_bytes(data)
        rows.append({"file": filename, "member": name, "sha256": digest, "bytes": len(data)})
    frame = pd.DataFrame(rows, columns=["file", "member", "sha256", "bytes"])
    return frame.sort_values("file", kind="stable").reset_index(drop=True).astype({"bytes": "int64"})


def fetch_lilypond_scores(url: str, archive: Path, out_dir: Path, manifest_path: Path | None = None) -> pd.DataFrame:
    """Download ``url`` to ``archive`` unless a complete archive is already there, then :func:`extract_scores`."""
    manifest = load_manifest(manifest_path)
    archive = Path(archive)
    if not (archive.is_file() and _reads_fully(archive)):
        if os.path.lexists(archive) and not archive.is_dir():
            archive.unlink()  # an incomplete or corrupt earlier download
        download(url, archive)
    return extract_scores(archive, out_dir, manifest)
