"""Write-then-rename helpers: a killed job never leaves a complete-looking partial output."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    Whatever fails (the block, the disk filling up, a read-only folder), the temporary file is removed and an
    ``OSError`` about the write names ``path`` itself, not the hidden temporary name: "No space left on device"
    raised by a bare ``write``/``flush`` (no file name) or torch's "file write failed" become
    ``OSError(errno, strerror, path)``. Errors that name another file (an input read inside the block) pass
    unchanged.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
        os.close(fd)
    except OSError as error:
        raise _naming(error, target) from error
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as error:
        if error.errno is not None and (error.filename is None or _same(error.filename, tmp_path)
                                        or _same(error.filename, target)):
            raise _naming(error, target) from error
        raise
    except RuntimeError as error:  # torch.save reports a failed write as a RuntimeError without errno
        if not any(marker in str(error) for marker in _TORCH_WRITE_FAILURES):
            raise
        raise _naming(OSError(_write_errno(target.parent), None), target) from error
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def naming_failed_writes(path: str | os.PathLike[str]) -> Iterator[None]:
    """An ``OSError`` without a file name raised in the block (a bare ``write`` on a full disk) names ``path``."""
    try:
        yield
    except OSError as error:
        if error.filename is not None:
            raise
        raise _naming(error, Path(path)) from error


_TORCH_WRITE_FAILURES = ("file write failed", "PytorchStreamWriter failed", "unexpected pos")


def _same(name: object, path: Path) -> bool:
    try:
        return Path(os.fsdecode(name)) == path  # type: ignore[arg-type]
    except TypeError:
        return False


def _write_errno(folder: Path) -> int:
    """ENOSPC when the folder's file system has no free block left, else EIO (a failed write of unknown cause)."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return errno.EIO
    return errno.ENOSPC if stats.f_bavail == 0 else errno.EIO


def _naming(error: OSError, target: Path) -> OSError:
    """The same failure (same errno, so the same OSError subclass) naming ``target``."""
    code = error.errno if error.errno is not None else errno.EIO
    return OSError(code, error.strerror or os.strerror(code), str(target))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_csv(path: str | os.PathLike[str], frame: Any, float_format: str = "%.6g") -> None:
    """A pandas DataFrame as CSV with a fixed float format, so equal numbers give equal bytes."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")
