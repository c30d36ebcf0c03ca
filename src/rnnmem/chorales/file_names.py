"""What Ph. Hardy's file names say: ``NNN-[MMM-]Title-Bach-Choral-BWV<n>[-<m>][-ou-<alt>].ly``.

NNN is the Riemenschneider number, BWV the catalogue number (``86-6`` is BWV 86.6, ``-ou-279`` an alternative),
and a folder or file named ``…TRANSPO-du-005…`` holds a transposed copy of chorale 5.
"""

from __future__ import annotations

import re
from pathlib import Path

TRANSPOSED_DUPLICATE = re.compile(r"TRANSPO-du-(\d+)", re.IGNORECASE)
FILE_NUMBER = re.compile(r"^(\d{1,3})-")
FILE_BWV = re.compile(r"BWV[-_ ]?(\d+[a-z]?)(?:[-.](\d+[a-z]?))?(?:-ou-(\d+[a-z]?(?:[-.]\d+)?))?", re.IGNORECASE)
FILE_TITLE = re.compile(r"^\d{1,3}-(?:\d{3}-)?(.*?)(?:-Bach-Choral.*)?$")


def duplicate_of(path: Path) -> int | None:
    """The number of the chorale this file is a transposed copy of ("…TRANSPO-du-005…" -> 5), else None."""
    for part in (Path(path).name, Path(path).parent.name, Path(path).parent.parent.name):
        match = TRANSPOSED_DUPLICATE.search(part)
        if match:
            return int(match.group(1))
    return None


def file_number(path: Path) -> int | None:
    """The Riemenschneider number a file name starts with ("001-Aus-meines-…" -> 1)."""
    match = FILE_NUMBER.match(Path(path).name)
    return int(match.group(1)) if match else None


def file_bwv(path: Path) -> tuple[str, str | None]:
    """("86.6", None) for "…BWV86-6", ("158.4", "279") for "…BWV158-4-ou-279"; ("", None) without a BWV."""
    match = FILE_BWV.search(Path(path).stem)
    if not match:
        return "", None
    bwv = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
    other = match.group(3).replace("-", ".") if match.group(3) else None
    return bwv, other


def title_from_name(path: Path) -> str:
    """The title a file name spells ("001-Aus-meines-Herzens-Grunde-Bach-Choral-BWV269" -> "Aus meines Herzens
    Grunde"), for files whose header has none."""
    match = FILE_TITLE.match(Path(path).stem)
    return match.group(1).replace("-", " ") if match else Path(path).stem
