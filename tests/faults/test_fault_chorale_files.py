"""Fault suite: damaged chorale intermediates (events JSON lines, listings) give one line naming the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SPLIT = {"split": {"seed": 0, "similarity": 0.7, "test": 0.2, "valid": 0.2}}


def dataset(tmp_path: Path, transposed: str, skipped: str) -> subprocess.CompletedProcess:
    (tmp_path / "transposed.jsonl").write_text(transposed)
    (tmp_path / "skipped.csv").write_text(skipped)
    return subprocess.run([sys.executable, "-m", "rnnmem", "chorales-dataset", "--params", json.dumps(SPLIT),
                           "--transposed", str(tmp_path / "transposed.jsonl"), "--skipped",
                           str(tmp_path / "skipped.csv"), "--out-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("transposed", "skipped", "culprit", "reason"), [
    ('{"number": 1, "bwv": "269"\n', "file,number,reason\n", "transposed.jsonl:1", "not a chorale record"),
    ('{"number": 1}\n', "file,number,reason\n", "transposed.jsonl:1", "not a chorale record"),
    ("", "", "skipped.csv", "not a CSV table"),
])
def test_a_damaged_intermediate_is_named_in_one_line(tmp_path, transposed, skipped, culprit, reason):
    result = dataset(tmp_path, transposed, skipped)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"rnnmem chorales-dataset: error: {tmp_path / culprit}: {reason}"), lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
