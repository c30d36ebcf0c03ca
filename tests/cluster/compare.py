"""Compare the smoke DAG run through SLURM with the same DAG run locally.

Usage: python compare.py LOCAL_WORKDIR SLURM_WORKDIR

Fails (exit 1) when an output of the local run (results/, logs/, benchmarks/) is missing from the SLURM run, or when
a result table (*.csv, *.json, *.jsonl, *.md, *.txt under results/; not figures or models) differs byte for byte.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

OUTPUT_DIRS = ("results", "logs", "benchmarks")
TABLE_SUFFIXES = {".csv", ".json", ".jsonl", ".md", ".txt"}


def files_under(root: Path, folder: str) -> list[Path]:
    return sorted(p.relative_to(root) for p in (root / folder).rglob("*") if p.is_file())


def first_difference(a: Path, b: Path, lines: int = 12) -> str:
    try:
        diff = difflib.unified_diff(a.read_text().splitlines(), b.read_text().splitlines(), "local", "slurm",
                                    lineterm="", n=0)
        return "\n".join(f"      {line}" for line in list(diff)[:lines])
    except UnicodeDecodeError:
        return "      (binary)"


def main(argv: list[str]) -> int:
    local, slurm = (Path(arg).resolve() for arg in argv)
    outputs = [path for folder in OUTPUT_DIRS for path in files_under(local, folder)]
    missing = [path for path in outputs if not (slurm / path).is_file()]
    tables = [path for path in files_under(local, "results") if path.suffix in TABLE_SUFFIXES]
    differing = [path for path in tables if (slurm / path).is_file()
                 and (local / path).read_bytes() != (slurm / path).read_bytes()]
    print(f"compare: {len(outputs)} output files of the local run, {len(missing)} missing from the SLURM run; "
          f"{len(tables)} result tables, {len(differing)} differ")
    for path in missing:
        print(f"  missing in SLURM run: {path}")
    for path in differing:
        print(f"  differs: {path}\n{first_difference(local / path, slurm / path)}")
    if not tables:
        print("compare: the local run produced no result tables")
        return 1
    return 1 if missing or differing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
