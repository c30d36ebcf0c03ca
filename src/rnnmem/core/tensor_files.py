"""Torch files (ensembles, language models, checkpoints): byte-deterministic on save, verified on load.

Saving serializes to memory first: ``torch.save`` names the zip's top folder after the file it writes, and the
pipeline writes through randomly named temporary files (:func:`rnnmem.core.atomic.atomic_path`), so saving to the
file directly gives different bytes for the same tensors. From a buffer the folder is always ``archive``, and
the same object gives the same bytes.

Loading verifies the file before torch unpickles anything. A torch file is an uncompressed zip archive; every
member (the pickle, each tensor's storage, the version records) carries a CRC-32 of its bytes, which detects
every single-bit error and every error burst of up to 32 bits in that member. :func:`load_bytes` checks

- the end-of-central-directory records (torch writes a zip64 one with its locator, then the classic one): at
  the very end of the file, no comment, one disk, equal entry counts and offsets in both, an entry count equal
  to the central directory's, and a central directory that ends where those records start;
- every entry: stored (not compressed), without attributes (torch's reader takes a member whose DOS directory
  bit is set for a folder and reads nothing from it: that bit is outside every CRC), a unique name under one
  top folder, its local header where the central directory says (the names of both must agree, Python's
  zipfile checks), the members back to back from offset 0 in the order of the central directory, without a gap
  and without overlap, each one's data descriptor repeating the central directory's CRC and sizes;
- the CRC-32 of every member (``ZipFile.testzip``);
- then ``torch.load(weights_only=True)``, which executes no code from the file.

A bit flipped where nothing reads it (a timestamp, the alignment padding of a local header) loads the same
tensors; everywhere else the load fails with the caller's error type and a message ``<file>: <what is wrong>``
(tests/faults/test_fault_model_files.py flips bits all over each kind of file). A CRC is no defence against a
deliberate edit; these files are trusted for their origin, and checked for damage.
"""

from __future__ import annotations

import io
import struct
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from rnnmem.core.atomic import atomic_path
from rnnmem.core.errors import RnnmemError

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record (no zip64: files under 4 GiB)
_EOCD_SIGNATURE = b"PK\x05\x06"
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_DESCRIPTOR = struct.Struct("<4s3L")  # data descriptor after a member (flag bit 3), as torch writes them
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_REQUIRED = ("data.pkl", "byteorder", "version")


def _canonical(obj: Any) -> Any:
    """``obj`` with fresh containers and interned strings. Pickle writes a string once and refers back to it when the
    *same object* recurs, so equal payloads whose equal strings are distinct objects (keys read back from a
    checkpoint beside keys written by the code) would otherwise give different bytes."""
    if isinstance(obj, str):
        return sys.intern(obj)
    if type(obj) in (dict, OrderedDict):  # state dicts are OrderedDicts: the type is kept
        return type(obj)((_canonical(key), _canonical(value)) for key, value in obj.items())
    if type(obj) in (list, tuple):
        return type(obj)(_canonical(item) for item in obj)
    return obj


def to_bytes(obj: Any) -> bytes:
    """What ``torch.save`` writes for ``obj``, independent of the file name it will get and of which of its equal
    strings are the same object."""
    buffer = io.BytesIO()
    torch.save(_canonical(obj), buffer)
    return buffer.getvalue()


def save(path: str | Path, obj: Any) -> None:
    """Write ``obj`` to ``path`` atomically (temporary file, then rename); equal objects give equal bytes."""
    data = to_bytes(obj)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load(path: str | Path, error: type[RnnmemError], what: str = "torch file") -> Any:
    """Read and verify ``path``, then load it with ``torch.load(weights_only=True)`` onto the CPU; any fault
    raises ``error`` with the message ``<path>: <what is wrong>``."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} is missing")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from exc
    return load_bytes(data, path, error, what)


def load_bytes(data: bytes, name: str | Path, error: type[RnnmemError], what: str = "torch file") -> Any:
    """:func:`load` on the bytes of a file; ``name`` is the file the messages name."""
    problem = verify(data)
    if problem is not None:
        raise error(f"{name}: damaged or not a {what} ({problem})")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file it cannot read
        raise error(f"{name}: cannot load the {what} ({type(exc).__name__}: {exc})") from exc


def verify(data: bytes) -> str | None:
    """None when ``data`` is an intact torch zip file, else what is wrong with it (see the module doc)."""
    ends = _directory_bounds(data)
    if isinstance(ends, str):
        return ends
    entries, cd_offset = ends
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            problem = _check_entries(data, infos, entries, cd_offset)
            if problem is not None:
                return problem
            bad = archive.testzip()
    except Exception as exc:  # zipfile raises BadZipFile, ValueError, struct.error, zlib.error, …
        return f"{type(exc).__name__}: {exc}"
    if bad is not None:
        return f"checksum mismatch in member {bad}"
    return None


def _directory_bounds(data: bytes) -> tuple[int, int] | str:
    """(entries, offset of the central directory) from the end records, checked against each other, or what is
    wrong. torch writes a zip64 end record and its locator before the classic one, whatever the file's size."""
    if len(data) < _EOCD.size:
        return "too short for a zip archive"
    end = len(data) - _EOCD.size
    signature, disk, cd_disk, disk_entries, entries, cd_size, cd_offset, comment = _EOCD.unpack_from(data, end)
    if signature != _EOCD_SIGNATURE or comment != 0:
        return "no end-of-archive record at the end of the file"
    if disk != 0 or cd_disk != 0 or disk_entries != entries:
        return "inconsistent end-of-archive record"
    cd_end = end
    locator = end - _ZIP64_LOCATOR.size
    if locator >= 0 and data[locator : locator + 4] == _ZIP64_LOCATOR_SIGNATURE:
        _, locator_disk, record, disks = _ZIP64_LOCATOR.unpack_from(data, locator)
        if locator_disk != 0 or disks != 1 or record != locator - _ZIP64_END.size:
            return "inconsistent zip64 end-of-archive locator"
        (signature, size, _, _, disk, cd_disk, disk_entries, entries64, cd_size64,
         cd_offset64) = _ZIP64_END.unpack_from(data, record)
        if (signature != _ZIP64_END_SIGNATURE or size != _ZIP64_END.size - 12 or disk != 0 or cd_disk != 0
                or disk_entries != entries64):
            return "inconsistent zip64 end-of-archive record"
        for classic, full, saturated in ((entries, entries64, 0xFFFF), (cd_size, cd_size64, 0xFFFFFFFF),
                                         (cd_offset, cd_offset64, 0xFFFFFFFF)):
            if classic not in (full, saturated):
                return "the two end-of-archive records disagree"
        entries, cd_size, cd_offset, cd_end = entries64, cd_size64, cd_offset64, record
    if cd_offset + cd_size != cd_end:
        return "the central directory does not end where the end-of-archive records start"
    return entries, cd_offset


def _check_entries(data: bytes, infos: list[zipfile.ZipInfo], entries: int, cd_offset: int) -> str | None:
    if len(infos) != entries:
        return f"the central directory lists {len(infos)} members, the end-of-archive record {entries}"
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        return "duplicate member names"
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) != 1 or any("/" not in name for name in names):
        return "members not under one top folder"
    top = tops.pop()
    missing = [name for name in _REQUIRED if f"{top}/{name}" not in names]
    if missing:
        return f"missing member(s) {missing}"
    position = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            return f"member {info.filename} is compressed"
        # torch writes no attributes; torch's reader (miniz) would take a member with the DOS directory
        # attribute for a folder and return no data for it, whatever the CRC says.
        if info.external_attr != 0 or info.volume != 0 or info.flag_bits & 0x01 or info.is_dir():
            return f"member {info.filename} has attributes torch does not write"
        if info.header_offset != position or info.header_offset + _LOCAL_HEADER.size > cd_offset:
            return f"member {info.filename} is not where the previous one ends"
        fields = _LOCAL_HEADER.unpack_from(data, info.header_offset)
        name_length, extra_length = fields[9], fields[10]
        position = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length + info.compress_size
        if info.flag_bits & 0x08:  # the CRC and sizes follow the data; they must repeat the central directory's
            if position + _DESCRIPTOR.size > cd_offset or _DESCRIPTOR.unpack_from(data, position) != (
                    _DESCRIPTOR_SIGNATURE, info.CRC, info.compress_size, info.file_size):
                return f"member {info.filename}: data descriptor does not match the central directory"
            position += _DESCRIPTOR.size
        if position > cd_offset:
            return f"member {info.filename} runs into the central directory"
    if position != cd_offset:
        return "bytes between the last member and the central directory"
    return None
