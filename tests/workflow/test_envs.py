"""The environments the workflow runs in: requirements.lock against pyproject.toml and the installed packages, the
conda env of `--sdm conda` against the lock, jobs that import the package from the checkout whatever their working
directory and interpreter, and when Snakemake picks up profiles/default."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import WORKFLOW_FILES, copy_workflow
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
SLURM_LOCK = ROOT / "requirements-slurm.lock"
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))
DEFAULT_PROFILE = ROOT / "profiles" / "default" / "config.v8+.yaml"
# What the jobs never import: Snakemake runs them, from its own environment.
NOT_IN_JOB_ENV = {"snakemake"}


@cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def runtime_requirements() -> list[Requirement]:
    return [Requirement(text) for text in pyproject()["project"]["dependencies"]]


def dev_requirements() -> list[Requirement]:
    return [Requirement(text) for text in pyproject()["project"]["optional-dependencies"]["dev"]]


def torch_pin() -> str:
    (torch,) = [r for r in runtime_requirements() if r.name == "torch"]
    (spec,) = torch.specifier
    assert spec.operator == "==", f"pyproject.toml must pin torch exactly, not {torch}"
    return spec.version


@cache
def lock_blocks(lock: Path = LOCK) -> dict[str, tuple[str, str]]:
    """Canonical name -> (version, the entry's text) for every package in the lock."""
    # uv ends the file with the packages it left out (torch): not entries.
    text = lock.read_text(encoding="utf-8").split("\n# The following packages were excluded")[0]
    blocks = {}
    for block in re.split(r"\n(?=\S)", text):
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if match:
            blocks[canonicalize_name(match[1])] = (match[2], block)
    return blocks


def lock_pins() -> dict[str, str]:
    return {name: version for name, (version, _) in lock_blocks().items()}


def required_by(block: str) -> set[str]:
    """The packages that need this one, from uv's `# via` annotation ("rnnmem" for the project's own)."""
    names = re.findall(r"^\s*#\s+(?:via\s+)?([A-Za-z0-9_.-]+)(?: \(pyproject\.toml\))?\s*$", block, re.MULTILINE)
    return {canonicalize_name(name) for name in names if name != "via"}


def job_closure() -> set[str]:
    """The runtime dependencies of pyproject.toml (but Snakemake) and everything they pull in, per the lock."""
    children: dict[str, set[str]] = {}
    for name, (_, block) in lock_blocks().items():
        for parent in required_by(block):
            children.setdefault(parent, set()).add(name)
    roots = {canonicalize_name(r.name) for r in runtime_requirements()} - NOT_IN_JOB_ENV
    found, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def env_spec(path: Path) -> tuple[list[str], list[str]]:
    """An env file's conda dependencies and pip requirements, as written."""
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    conda, pip = [], []
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            pip.extend(dep["pip"])
        else:
            conda.append(str(dep))
    return conda, pip


# --- the lock -----------------------------------------------------------------------------------------------------


def test_every_locked_package_is_pinned_with_hashes() -> None:
    blocks = lock_blocks()
    assert len(blocks) > 20, f"{LOCK}: too few entries ({len(blocks)}); is it uv's output?"
    for name, (version, block) in blocks.items():
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"{LOCK}: {name}=={version} has no hash"
        assert ";" not in block.splitlines()[0], f"{LOCK}: {name} carries an environment marker"


def test_the_lock_covers_pyproject() -> None:
    pins = lock_pins()
    for requirement in runtime_requirements() + dev_requirements():
        name = canonicalize_name(requirement.name)
        if name == "torch":
            continue
        assert name in pins, f"{LOCK} lacks {requirement} (pyproject.toml); run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK}: {name}=={pins[name]} does not satisfy pyproject.toml's {requirement}; run `make lock`"
        )


def test_the_slurm_lock_is_the_lock_plus_the_slurm_extra() -> None:
    """requirements-slurm.lock (what `make test-cluster` installs) keeps every package of the lock at its version
    and hashes, and adds the slurm extra's packages, pinned with hashes."""
    slurm = lock_blocks(SLURM_LOCK)
    hashes = {name: set(re.findall(r"sha256:[0-9a-f]{64}", block)) for name, (_, block) in slurm.items()}
    for name, (version, block) in lock_blocks().items():
        assert name in slurm, f"{SLURM_LOCK} lacks {name} ({LOCK}); run `make lock`"
        assert slurm[name][0] == version, f"{SLURM_LOCK}: {name}=={slurm[name][0]}, {LOCK}: {version}; run `make lock`"
        assert hashes[name] == set(re.findall(r"sha256:[0-9a-f]{64}", block)), f"{SLURM_LOCK}: {name} hashes differ"
    extra = [Requirement(t) for t in pyproject()["project"]["optional-dependencies"]["slurm"]]
    for requirement in extra:
        name = canonicalize_name(requirement.name)
        assert name in slurm and requirement.specifier.contains(slurm[name][0], prereleases=True), (
            f"{SLURM_LOCK} does not satisfy pyproject.toml's {requirement}; run `make lock`")
    for name, (version, _) in slurm.items():
        assert hashes[name], f"{SLURM_LOCK}: {name}=={version} has no hash"


def test_torch_is_pinned_in_pyproject_and_left_out_of_the_lock() -> None:
    # Its wheel differs by source (PyPI's CUDA build, PyTorch's CPU index, /opt/wheels) and so would its hash:
    # the Makefile installs it after the lock, at pyproject.toml's pin.
    assert torch_pin()
    assert "torch" not in lock_pins()
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pyproject.toml" in re.search(r"^TORCH := (.*)$", makefile, re.MULTILINE)[1]


def test_the_installed_versions_are_the_locked_ones() -> None:
    stamp = ROOT / ".venv" / ".installed"
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip(f"not running in the project's .venv ({sys.prefix})")
    if not stamp.is_file() or stamp.read_text().split()[:1] != [digest]:
        pytest.skip(".venv was not made from this requirements.lock (run `make venv`)")
    from importlib.metadata import PackageNotFoundError, version

    wrong = {}
    for name, locked in lock_pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != locked:
            wrong[name] = (locked, installed)
    assert not wrong, f"locked vs installed: {wrong}"
    assert version("torch").split("+")[0] == torch_pin()


# --- the conda env ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENV_FILES, ids=lambda p: p.name)
def test_the_conda_env_names_no_path(env: Path, tmp_path: Path) -> None:
    """Snakemake copies an env file to <working dir>/.snakemake/conda/<hash>.yaml and conda runs pip from there:
    every requirement must be a plain name, nothing relative to the checkout (as `-e ../` was)."""
    copy = tmp_path / "work" / "runs" / "a" / ".snakemake" / "conda" / "0123abcd.yaml"
    copy.parent.mkdir(parents=True)
    shutil.copy2(env, copy)
    conda, pip = env_spec(copy)
    for dep in conda:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+(=[A-Za-z0-9_.*]+)?", dep), f"{env.name}: conda dependency {dep!r}"
    for text in pip:
        assert not text.startswith("-"), f"{env.name}: pip option {text!r} (a path or an index in the env file)"
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            pytest.fail(f"{env.name}: {text!r} is not a named requirement ({error})")
        assert requirement.url is None, f"{env.name}: {text!r} names a URL"
        assert not (copy.parent / requirement.name).exists()


@pytest.mark.parametrize("env", ENV_FILES, ids=lambda p: p.name)
def test_the_conda_env_agrees_with_the_lock(env: Path) -> None:
    conda, pip = env_spec(env)
    pins, pinned = lock_pins(), {}
    for text in pip:
        requirement = Requirement(text)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{env.name}: {text} is not an exact pin"
        pinned[canonicalize_name(requirement.name)] = spec.version
    assert pinned.pop("torch", None) == torch_pin(), f"{env.name}: torch must be pinned as in pyproject.toml"
    differ = {name: (version, pins.get(name)) for name, version in pinned.items() if pins.get(name) != version}
    assert not differ, f"{env.name} vs {LOCK.name} (env, lock): {differ}"
    missing = sorted(job_closure() - {"torch"} - set(pinned))
    assert not missing, f"{env.name} leaves out what the jobs import (at the lock's versions): {missing}"
    # The lock is resolved for Python 3.11 (Makefile: `make lock`).
    assert [dep for dep in conda if dep.startswith("python")] == ["python=3.11"]
    assert SpecifierSet(pyproject()["project"]["requires-python"]).contains("3.11")


# --- jobs import the checkout's package -------------------------------------------------------------------------

PROBE = """include: "Snakefile"


rule probe:
    output:
        "probe.txt",
    shell:
        f"{RNNMEM} --version > {{output:q}}; python -c 'import rnnmem; print(rnnmem.__file__)' >> {{output:q}}"


rule strict:
    output:
        "strict.txt",
    shell:
        "false | true; touch {output:q}"
"""


def base_python(tmp_path: Path) -> Path:
    """A folder whose `python` is this interpreter's base, without the venv's packages (rnnmem included)."""
    base = Path(getattr(sys, "_base_executable", sys.executable))
    found = subprocess.run(
        [str(base), "-c", "import rnnmem"],
        capture_output=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    if found.returncode == 0:
        pytest.skip(f"{base} imports rnnmem by itself (not a venv?)")
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "python").symlink_to(base)
    return folder


@pytest.mark.workflow
def test_jobs_import_the_package_from_the_checkout_in_any_directory(tmp_path: Path) -> None:
    """What `--sdm conda` needs: the job's interpreter (here the bare base Python, as a conda env's would be) has no
    rnnmem installed and the run's working directory is elsewhere; the job still imports <Snakefile dir>/src.
    PYTHONPATH is unset in Snakemake's environment, as Snakemake leaves it for a conda job."""
    checkout = copy_workflow(tmp_path / "checkout")
    (checkout / "src").symlink_to(ROOT / "src", target_is_directory=True)
    (checkout / "probe.smk").write_text(PROBE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SNAKEMAKE_PROFILE")}
    env["PATH"] = f"{base_python(tmp_path)}{os.pathsep}{env.get('PATH', '')}"
    env["RNNMEM_DEVICE"] = "cpu"

    def snakemake(target: str) -> subprocess.CompletedProcess:
        command = [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(checkout / "probe.smk"),
            "--directory",
            str(tmp_path / "run"),
            "--cores",
            "1",
            target,
        ]
        return subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)

    result = snakemake("probe.txt")
    assert result.returncode == 0, result.stdout + result.stderr
    version, module = (tmp_path / "run" / "probe.txt").read_text().splitlines()
    assert version == f"rnnmem {pyproject()['project']['version']}"
    assert Path(module) == checkout / "src" / "rnnmem" / "__init__.py"
    # The prefix that exports PYTHONPATH keeps Snakemake's strict mode: a failing pipe stage fails the job.
    strict = snakemake("strict.txt")
    assert strict.returncode != 0 and not (tmp_path / "run" / "strict.txt").exists(), strict.stdout + strict.stderr


# --- profiles/default ---------------------------------------------------------------------------------------------


def parsed(argv: list[str]):
    from snakemake.cli import parse_args

    return parse_args(argv)[1]


def test_the_default_profile_holds_the_local_flags() -> None:
    settings = yaml.safe_load(DEFAULT_PROFILE.read_text(encoding="utf-8"))
    assert settings == {"cores": "all", "rerun-incomplete": True, "printshellcmds": True, "show-failed-logs": True}


def test_snakemake_picks_up_the_default_profile_beside_the_snakefile(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    args = parsed(["--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "-n"])
    assert args.rerun_incomplete and args.printshellcmds and args.show_failed_logs and args.cores
    assert parsed(["--snakefile", str(ROOT / "Snakefile"), "-n", "--cores", "1"]).cores == 1  # the command line wins
    off = parsed(["--snakefile", str(ROOT / "Snakefile"), "-n", "--workflow-profile", "none"])
    assert not (off.rerun_incomplete or off.printshellcmds or off.show_failed_logs)


def test_test_copies_of_the_workflow_see_no_default_profile(tmp_path: Path, monkeypatch) -> None:
    """The tests run Snakemake in copies (conftest.copy_workflow, tests/cluster/run.sh) started in the copy: no
    profiles/ there, so no `cores: all` or other flag comes in behind the tests' own."""
    assert not any(name == "profiles" or name.startswith("profiles/") for name in WORKFLOW_FILES)
    run_sh = (ROOT / "tests" / "cluster" / "run.sh").read_text(encoding="utf-8")
    files = re.search(r"^WORKFLOW_FILES=\((.*)\)$", run_sh, re.MULTILINE)[1].split()
    assert "profiles" not in files
    copy = copy_workflow(tmp_path / "copy")
    monkeypatch.chdir(copy)
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    args = parsed(["--snakefile", str(copy / "Snakefile"), "--directory", str(copy), "-n"])
    assert not (args.rerun_incomplete or args.printshellcmds or args.show_failed_logs)
