"""Chorales on disk: one JSON object per line (the normalized intermediate), and the skipped-file list."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rnnmem.chorales.events import Chorale, ChoraleError
from rnnmem.core.atomic import write_csv, write_text

SKIPPED_COLUMNS = ["file", "number", "reason"]


def write_chorales(path: Path, chorales: list[Chorale]) -> None:
    write_text(path, "".join(chorale.dumps() + "\n" for chorale in chorales))


def read_chorales(path: Path) -> list[Chorale]:
    """The chorales of a JSON-lines file; a line that is not a chorale record raises ChoraleError naming it."""
    chorales = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                chorales.append(Chorale.from_json(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, ZeroDivisionError) as error:
                problem = f"{type(error).__name__}: {error}"
                raise ChoraleError(f"{path}:{number}: not a chorale record ({problem})") from error
    return chorales


def write_skipped(path: Path, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows, columns=SKIPPED_COLUMNS)
    frame["number"] = frame["number"].astype("Int64")
    write_csv(path, frame)
