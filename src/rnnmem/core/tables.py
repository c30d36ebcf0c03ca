"""Reading the CSV tables that jobs take as input: a damaged one is named in one line, never a traceback."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rnnmem.core.errors import InputFileError


def read_table(path: Path, columns: Sequence[str] = (), allow_empty: bool = False, **options: Any) -> pd.DataFrame:
    """A CSV input of a job, checked: :class:`InputFileError` naming the file when it is not a CSV table, lacks
    one of ``columns`` or (unless ``allow_empty``) has no rows. A missing file raises ``FileNotFoundError``, which
    names it too."""
    try:
        frame = pd.read_csv(path, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputFileError(f"{path}: not a CSV table ({reason})") from error
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise InputFileError(f"{path}: lacks the columns {missing}")
    if frame.empty and not allow_empty:
        raise InputFileError(f"{path}: has no rows")
    return frame
