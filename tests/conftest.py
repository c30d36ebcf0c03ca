"""Shared fixtures: a temporary copy of the workflow, a runner for `python -m snakemake` inside it, and where
the optional inputs (../shared, the LilyPond binary) are."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "envs", "tests/config.smoke.yaml",
                  "tests/config.smoke-lilypond.yaml")
# ../shared beside the project (present in CI, absent in a user's clone): the Hardy archive and its checksums.
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_ARCHIVE = SHARED_DATA / "hardy-lilypond-chorales.tar.gz"
SHARED_SUMS = SHARED_DATA / "hardy-lilypond-chorales.SHA256SUMS"


def lilypond_missing() -> str | None:
    """Why the LilyPond binary cannot be used, or None when it can."""
    from rnnmem.chorales.engrave import lilypond_executable
    from rnnmem.chorales.events import ChoraleError

    try:
        lilypond_executable()
    except ChoraleError as error:
        return str(error)
    return None


def copy_workflow(target: Path) -> Path:
    """Copy what Snakemake reads (not results) into ``target``."""
    for name in WORKFLOW_FILES:
        source, dest = REPO / name, target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest)
    return target


def snakemake_env() -> dict[str, str]:
    """This interpreter's bin first on PATH, so the rules' `python -m rnnmem` is the tested package."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["RNNMEM_DEVICE"] = "cpu"
    return env


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(workdir / "Snakefile"),
               "--directory", str(workdir), *args]
    result = subprocess.run(command, cwd=workdir, env=snakemake_env(), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def smoke_configs(workdir: Path) -> list[str]:
    """The smoke config, plus the LilyPond overlay (with the shared archive's absolute file: URL) when the Hardy
    archive lies beside the project, as `make smoke` does."""
    configs = ["tests/config.smoke.yaml"]
    if SHARED_ARCHIVE.exists():
        overlay = workdir / "tests" / "smoke-lilypond-abs.yaml"
        text = (workdir / "tests/config.smoke-lilypond.yaml").read_text()
        overlay.write_text(text + f"  lilypond_url: file://{SHARED_ARCHIVE}\n")
        configs.append(str(overlay.relative_to(workdir)))
    return configs


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole DAG on the smoke config, run once per test session in a temporary copy."""
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke"))
    run_snakemake(workdir, "--configfile", *smoke_configs(workdir), "--cores", "2")
    return workdir


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (results and timings then do not depend on the machine's cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config_edit(path: str, value) -> Callable[[dict], None]:
    """An edit of a loaded config: set the value at a dotted path (``"reber.regimes.seed.lr"``, list indices
    as numbers)."""
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]

    def edit(config: dict) -> None:
        node = config
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit

