"""Fault suite: a disk that fills up during a write (issue 10, item 4).

A 64 KiB tmpfs is mounted (only possible as root; skipped otherwise, with the reason) and a job writes a larger
table into it: the job ends with one line naming the output file (not the hidden temporary file) and "No space left
on device", and nothing half-written remains: no target, no temporary file. The same holds for a torch model file
(torch reports the failed write as a RuntimeError without errno), and an earlier complete output is left as it was.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SIZE = "64k"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A mounted 64 KiB tmpfs, unmounted afterwards."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (a full disk cannot be simulated otherwise)")
    if shutil.which("mount") is None:
        pytest.skip("no mount command to mount a small tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        _unmount(folder)


def _unmount(folder: Path) -> None:
    """Unmount; a file torch left open until garbage collection would keep the mount busy, so collect first, and
    detach lazily as a last resort."""
    gc.collect()
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def _hidden_temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name]


def test_full_disk_names_the_output_and_leaves_nothing(tiny_disk: Path) -> None:
    out = tiny_disk / "dlk_vanilla_k1.csv"  # 20,000 rows: about 600 KB, ten times the disk
    params = {"model": "vanilla", "k": 1, "draws": 1, "max_l": 20000, "seed": 0, "weight_scale": 1.0,
              "bias": "zero", "input": "one_hot", "tail_threshold": 1e-3, "bootstrap": 10}
    env = {**{k: v for k, v in os.environ.items() if k != "RNNMEM_DEBUG"}, "RNNMEM_DEVICE": "cpu"}
    done = subprocess.run([sys.executable, "-m", "rnnmem", "dlk", "--params", json.dumps(params), "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode != 0, done.stdout[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    assert done.stderr.strip().splitlines() == [f"rnnmem dlk: error: {out}: No space left on device"], done.stderr
    assert list(tiny_disk.iterdir()) == []


def test_full_disk_during_torch_save_keeps_the_earlier_file(tiny_disk: Path) -> None:
    import torch

    from rnnmem.core.atomic import atomic_path

    target = tiny_disk / "model.pt"
    with atomic_path(target) as tmp:
        torch.save({"w": torch.zeros(4)}, tmp)
    before = target.read_bytes()
    with pytest.raises(OSError) as info, atomic_path(target) as tmp:
        torch.save({"w": torch.zeros(100_000)}, tmp)  # 400 KB
    assert info.value.filename == str(target) and "No space left on device" in str(info.value), info.value
    assert target.read_bytes() == before
    assert _hidden_temporaries(tiny_disk) == []
    del info  # its traceback holds torch's file writer (an open file on the tmpfs)


def test_failed_write_without_a_file_name_names_the_target(tmp_path: Path) -> None:
    """A bare ENOSPC from write() (no file name) is reported on the target path, temporary file removed."""
    import errno

    from rnnmem.core.atomic import atomic_path

    target = tmp_path / "table.csv"
    with pytest.raises(OSError) as info, atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []
