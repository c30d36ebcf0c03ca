"""What a reproducible pipeline promises, checked on the smoke config in temporary working directories:
the same config gives byte-identical tables, a finished run has nothing left to do, and a change reruns exactly
what depends on it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow, run_snakemake, smoke_configs, snakemake_env
from smoke_tables import result_tables

pytestmark = pytest.mark.workflow


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> job count of a dry run (Snakemake's "Job stats" table)."""
    result = run_snakemake(workdir, "--dry-run", "--cores", "2", *args)
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    stats = text.split("Job stats:", 1)[1]
    jobs = {}
    for line in stats.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        jobs[match.group(1)] = int(match.group(2))
    jobs.pop("total", None)
    return jobs


def copy_run(source: Path, target: Path) -> Path:
    """A finished run copied with its timestamps and Snakemake metadata, to try changes on."""
    shutil.copytree(source, target, symlinks=True)
    return target


def test_two_runs_from_scratch_give_identical_tables(smoke_run, tmp_path):
    again = copy_workflow(tmp_path / "again")
    run_snakemake(again, "--configfile", *smoke_configs(again), "--cores", "2")
    first, second = result_tables(smoke_run), result_tables(again)
    assert first.keys() == second.keys()
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, f"tables differ between two runs of the same config: {differing}"
    assert len(first) > 30


def test_changing_dlk_draws_reruns_only_dlk_and_what_depends_on_it(smoke_run, tmp_path):
    workdir = copy_run(smoke_run, tmp_path / "run")
    overlay = workdir / "tests" / "more-draws.yaml"
    overlay.write_text(yaml.safe_dump({"memory": {"dlk": {"draws": 60}}}))
    jobs = planned_jobs(workdir, "--configfile", *smoke_configs(workdir), str(overlay.relative_to(workdir)))
    dlk = yaml.safe_load((workdir / "tests/config.smoke.yaml").read_text())["memory"]["dlk"]
    dlk_parts = len(dlk["k"]) * 2
    other_conventions = 3 * 2 * len(dlk["conventions_k"])  # bias × input pairs not configured, both models
    # table_html: the report pages of dlk_vanilla, dlk_gru and dlk_conventions
    assert jobs == {"dlk": dlk_parts, "dlk_merge": 2, "dlk_figures": 1, "capacity_figures": 1,
                    "dlk_convention": other_conventions, "dlk_conventions": 1, "table_html": 3, "all": 1}


def test_forcerun_of_one_figure_rule_reruns_only_it(smoke_run, tmp_path):
    workdir = copy_run(smoke_run, tmp_path / "run")
    jobs = planned_jobs(workdir, "--configfile", *smoke_configs(workdir), "--forcerun", "gradient_summary")
    assert jobs == {"gradient_summary": 1, "table_html": 1, "all": 1}  # and the report page of gradients.csv


def test_changing_a_chorale_training_parameter_reruns_training_and_downstream_only(smoke_run, tmp_path):
    workdir = copy_run(smoke_run, tmp_path / "run")
    smoke = yaml.safe_load((workdir / "tests/config.smoke.yaml").read_text())
    modern = dict(smoke["lm"]["regimes"]["modern"], lr=0.02)
    overlay = workdir / "tests" / "lr.yaml"
    overlay.write_text(yaml.safe_dump({"lm": {"regimes": {"modern": modern}}}))
    jobs = planned_jobs(workdir, "--configfile", *smoke_configs(workdir), str(overlay.relative_to(workdir)))
    models, seeds = len(smoke["lm"]["models"]), smoke["lm"]["n_seeds"]["modern"]
    assert jobs == {"lm_train": models * seeds, "lm_score": models * seeds, "lm_ensemble_score": models,
                    "lm_samples": models, "lm_scores": 1, "lm_sample_metrics": 1, "fig21_samples": 1,
                    "learning_curves": 1, "table_html": 2, "lm_sample_page": models, "all": 1}


def test_changing_the_shifts_reruns_the_augmented_data_and_the_modern_models_only(smoke_run, tmp_path):
    workdir = copy_run(smoke_run, tmp_path / "run")
    smoke = yaml.safe_load((workdir / "tests/config.smoke.yaml").read_text())
    modern = dict(smoke["lm"]["regimes"]["modern"], transpose=[2])
    overlay = workdir / "tests" / "shifts.yaml"
    overlay.write_text(yaml.safe_dump({"lm": {"regimes": {"modern": modern}}}))
    jobs = planned_jobs(workdir, "--configfile", *smoke_configs(workdir), str(overlay.relative_to(workdir)))
    models, seeds = len(smoke["lm"]["models"]), smoke["lm"]["n_seeds"]["modern"]
    assert jobs == {"chorales_augmented": 1, "lm_ngram_augmented": 1, "lm_train": models * seeds,
                    "lm_score": models * seeds, "lm_ensemble_score": models, "lm_samples": models, "lm_scores": 1,
                    "lm_sample_metrics": 1, "fig21_samples": 1, "learning_curves": 1, "table_html": 2,
                    "lm_sample_page": models, "all": 1}


KILL_OVERLAY = """
lm:
  models:
    - {name: vanilla_k, model: vanilla, size: report, hidden: 24}
  regimes:
    seed: {lr: 1.0e-4, lr_divisor: 1.5, tolerance: 0.0, max_epochs: 40, checkpoint_every: 3}
  figure21: {models: [vanilla_k], regime: seed, temperature: 1.0}
"""


def _train(workdir: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(workdir / "Snakefile"), "--directory",
               str(workdir), "--configfile", "tests/config.smoke.yaml", "tests/kill.yaml", "--cores", "1",
               "results/lm/models/vanilla_k_seed_s0.pt", "results/lm/curves/vanilla_k_seed_s0.csv", *extra]
    return subprocess.Popen(command, cwd=workdir, env=snakemake_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def test_sigkill_during_training_then_rerun_resumes_and_matches(tmp_path):
    reference = copy_workflow(tmp_path / "reference")
    killed = copy_workflow(tmp_path / "killed")
    for workdir in (reference, killed):
        (workdir / "tests" / "kill.yaml").write_text(KILL_OVERLAY)
    assert _train(reference).wait(timeout=900) == 0

    process = _train(killed)
    folder = killed / "results/lm/checkpoints/vanilla_k_seed_s0"  # one <identity digest>.ckpt per run identity

    def checkpoints() -> list[Path]:
        return [p for p in folder.glob("*.ckpt") if not p.name.startswith(".")] if folder.is_dir() else []

    deadline = time.monotonic() + 600
    while not checkpoints() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "training finished before it could be killed"
    assert len(checkpoints()) == 1
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert not (killed / "results/lm/models/vanilla_k_seed_s0.pt").exists()

    # The documented recovery: release the killed run's lock, then rerun with --rerun-incomplete.
    assert _train(killed, "--unlock").wait(timeout=300) == 0
    assert _train(killed, "--rerun-incomplete").wait(timeout=900) == 0
    log = (killed / "logs/lm_train/vanilla_k_seed_s0.log").read_text()
    assert "resuming from" in log
    assert len(checkpoints()) == 1 and not [p for p in folder.iterdir() if p not in checkpoints()]
    # Saved byte-deterministically: the resumed run's model file is the uninterrupted run's, byte for byte.
    assert (killed / "results/lm/models/vanilla_k_seed_s0.pt").read_bytes() == (
        reference / "results/lm/models/vanilla_k_seed_s0.pt").read_bytes()
    for table in ("results/lm/curves/vanilla_k_seed_s0.csv",):
        assert (killed / table).read_bytes() == (reference / table).read_bytes(), table
    import torch

    ours = torch.load(killed / "results/lm/models/vanilla_k_seed_s0.pt", weights_only=True)["model"]
    theirs = torch.load(reference / "results/lm/models/vanilla_k_seed_s0.pt", weights_only=True)["model"]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
