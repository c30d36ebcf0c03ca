"""Chorales on disk: one JSON object per line (the normalized intermediate), and the skipped-file list."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rnnmem.atomic import write_csv, write_text
from rnnmem.chorales.model import Chorale

SKIPPED_COLUMNS = ["file", "number", "reason"]


def write_chorales(path: Path, chorales: list[Chorale]) -> None:
    write_text(path, "".join(chorale.dumps() + "\n" for chorale in chorales))


def read_chorales(path: Path) -> list[Chorale]:
    with open(path, encoding="utf-8") as handle:
        return [Chorale.from_json(json.loads(line)) for line in handle if line.strip()]


def write_skipped(path: Path, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows, columns=SKIPPED_COLUMNS)
    frame["number"] = frame["number"].astype("Int64")
    write_csv(path, frame)
