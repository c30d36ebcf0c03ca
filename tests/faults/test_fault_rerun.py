"""Fault suite: a researcher's loop through Snakemake (issue 10, item 1).

Train one chorale model, change a training setting and rerun it, change the setting back and rerun it: every run
trains and succeeds (no foreign checkpoint blocks it), the first and third models are byte-identical, and the
job's checkpoint folder holds only the checkpoint of the current run afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow, run_snakemake

pytestmark = pytest.mark.workflow

MODEL = "results/lm/models/vanilla_r_modern_s0.pt"
FOLDER = "results/lm/checkpoints/vanilla_r_modern_s0"
MODERN = {"embedding": 4, "dropout": 0.1, "lr": 0.01, "batch_size": 8, "clip_norm": 1.0, "patience": 2,
          "max_epochs": 2, "checkpoint_every": 3}
OVERLAY = {
    "chorales": {"numbers": list(range(1, 13))},
    "lm": {
        "models": [{"name": "vanilla_r", "model": "vanilla", "size": "report", "hidden": 4}],
        "regimes": {"modern": MODERN},
        "figure21": {"models": ["vanilla_r"], "regime": "modern", "temperature": 1.0},
    },
}


def _run(workdir: Path, lr: float) -> tuple[bytes, list[str], str]:
    """Build the model with ``lm.regimes.modern.lr = lr``; (its bytes, the checkpoint folder, the job's log)."""
    overlay = workdir / "tests" / "rerun.yaml"
    config = {**OVERLAY, "lm": {**OVERLAY["lm"], "regimes": {"modern": {**MODERN, "lr": lr}}}}
    overlay.write_text(yaml.safe_dump(config), encoding="utf-8")
    run_snakemake(workdir, "--configfile", "tests/config.smoke.yaml", "tests/rerun.yaml", "--cores", "2", MODEL)
    folder = sorted(p.name for p in (workdir / FOLDER).iterdir())
    log = (workdir / "logs/lm_train/vanilla_r_modern_s0.log").read_text(encoding="utf-8")
    return (workdir / MODEL).read_bytes(), folder, log


def test_change_a_setting_rerun_change_it_back_rerun(tmp_path):
    workdir = copy_workflow(tmp_path / "run")
    first, first_folder, _ = _run(workdir, 0.01)
    second, second_folder, second_log = _run(workdir, 0.02)
    third, third_folder, third_log = _run(workdir, 0.01)

    # Each changed setting retrained from scratch (nothing to resume), and only its own checkpoint is left.
    assert "resuming" not in second_log and "resuming" not in third_log
    assert second != first
    assert len(first_folder) == len(second_folder) == 1 and first_folder != second_folder
    assert all(name.endswith(".ckpt") and len(name) == 64 + len(".ckpt") for name in first_folder + second_folder)
    # Back to the first setting: the same model, byte for byte, and the first run's checkpoint name.
    assert third == first
    assert third_folder == first_folder
