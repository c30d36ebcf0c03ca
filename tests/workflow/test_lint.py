"""Static checks of the workflow and its profiles: linters clean, env files and cluster profiles consistent."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
PROFILES = sorted((ROOT / "profiles").glob("*/config.v8+.yaml"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def rule_blocks() -> dict[str, str]:
    """Rule name -> its text, from every rule file."""
    blocks: dict[str, str] = {}
    for path in RULE_FILES:
        parts = re.split(r"^(?:local)?rule (\w+):\n", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
        blocks.update(zip(parts[1::2], parts[2::2], strict=True))
    return blocks


def test_snakemake_lint_is_clean() -> None:
    result = run("snakemake", "--lint")
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr, result.stdout + result.stderr


def test_snakefmt_check_is_clean() -> None:
    pytest.importorskip("snakefmt", reason="snakefmt is in the dev extra: pip install -e '.[dev]'")
    result = run("snakefmt", "--check", *(str(p.relative_to(ROOT)) for p in RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean() -> None:
    pytest.importorskip("ruff", reason="ruff is in the dev extra: pip install -e '.[dev]'")
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_conda_env_file_exists_and_parses() -> None:
    envs = set()
    for path in RULE_FILES:
        for match in re.finditer(r"^\s+conda:\n\s+\"([^\"]+)\"", path.read_text(encoding="utf-8"), re.MULTILINE):
            envs.add((path.parent / match[1]).resolve())
    assert envs, "no rule declares a conda env"
    for env in envs:
        assert env.is_file(), f"{env} is named by a conda: directive but does not exist"
        spec = yaml.safe_load(env.read_text(encoding="utf-8"))
        assert isinstance(spec, dict) and spec.get("dependencies"), f"{env}: no dependencies list"


def gpu_rules() -> set[str]:
    return {name for name, text in rule_blocks().items() if re.search(r"^\s+gpu=[1-9]", text, re.MULTILINE)}


def test_training_rules_ask_for_a_gpu() -> None:
    assert gpu_rules() >= {"reber_train", "lm_train"}


def test_the_cpu_cluster_profile_turns_off_every_gpu_request() -> None:
    profile = yaml.safe_load((ROOT / "profiles" / "slurm-cpu" / "config.v8+.yaml").read_text(encoding="utf-8"))
    overrides = profile.get("set-resources", {})
    missing = sorted(rule for rule in gpu_rules() if overrides.get(rule, {}).get("gpu") != 0)
    assert not missing, f"profiles/slurm-cpu must set gpu: 0 for {missing} (sbatch refuses GPU jobs without GPUs)"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.parent.name)
def test_profile_numbers_are_unquoted_and_rules_exist(profile: Path) -> None:
    settings = yaml.safe_load(profile.read_text(encoding="utf-8"))
    quoted = []

    def walk(value, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}" if where else str(key))
        elif isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
            quoted.append(where)

    walk(settings, "")
    assert not quoted, f"{profile}: quoted numbers at {quoted}"
    rules = set(rule_blocks())
    for section in ("set-resources", "set-threads"):
        unknown = set(settings.get(section, {})) - rules
        assert not unknown, f"{profile}: {section} names unknown rules {sorted(unknown)}"
