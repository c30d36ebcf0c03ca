"""The Snakefile parses without torch (the conda-deployment and cluster-login-node case): what
``workflow/rules/common.smk`` imports from the package is torch-free, so ``snakemake -n`` and ``--lint`` work in an
environment where torch, numpy, pandas, matplotlib and music21 cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, copy_workflow, snakemake_env

# Heavy packages the jobs need but the Snakefile must not: importing any of them raises ImportError.
BLOCKED = ("torch", "numpy", "pandas", "matplotlib", "music21", "ly")
BLOCKER = textwrap.dedent(f"""\
    import sys

    BLOCKED = {BLOCKED!r}


    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked: the workflow must parse without it")
            return None


    sys.meta_path.insert(0, _Blocker())
    """)

# What common.smk imports, used the way it uses it, on the default config.
HELPERS = textwrap.dedent("""\
    import sys

    import yaml

    from rnnmem.config import check_config
    from rnnmem.reber.experiment_spec import resolve_experiments

    config = yaml.safe_load(open("config.yaml", encoding="utf-8"))
    check_config(config)
    experiments = resolve_experiments(config["reber"]["experiments"])
    assert experiments, "no experiment resolved"
    print(" ".join(f"{name}:{e.hidden}:{e.params}" for name, e in experiments.items()))
    loaded = sorted(name for name in sys.modules if name.partition(".")[0] in BLOCKED_NAMES)
    assert not loaded, loaded
    """).replace("BLOCKED_NAMES", repr(set(BLOCKED)))


@pytest.fixture
def torchless_env(tmp_path: Path) -> dict[str, str]:
    """Snakemake's environment with a sitecustomize on PYTHONPATH that blocks :data:`BLOCKED`."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    env = snakemake_env()
    env["PYTHONPATH"] = str(site)
    return env


def run_python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_blocker_blocks_torch(torchless_env: dict[str, str]) -> None:
    """The test below is not vacuous: in its environment ``import torch`` fails."""
    result = run_python("import torch", torchless_env, REPO)
    assert result.returncode != 0 and "torch is blocked" in result.stderr, result.stderr


def test_workflow_helpers_import_without_torch(torchless_env: dict[str, str]) -> None:
    result = run_python(HELPERS, torchless_env, REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    # the same experiments, sizes and parameter counts as with torch present (one implementation of the counts)
    import yaml

    from rnnmem.core.cells import SequencePredictor
    from rnnmem.reber.experiment_spec import resolve_experiments
    from rnnmem.reber.grammars import GRAMMARS

    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    experiments = resolve_experiments(config["reber"]["experiments"])
    assert result.stdout.split() == [f"{name}:{e.hidden}:{e.params}" for name, e in experiments.items()]
    for experiment in experiments.values():
        assert experiment.alphabet_size == len(GRAMMARS[experiment.grammar].alphabet)
        net = SequencePredictor(experiment.model, experiment.alphabet_size, experiment.hidden,
                                experiment.alphabet_size)
        assert sum(p.numel() for p in net.parameters()) == experiment.params


@pytest.mark.parametrize("args", [("-n", "--cores", "1"), ("--lint",)], ids=["dry-run", "lint"])
def test_snakemake_parses_without_torch(tmp_path: Path, torchless_env: dict[str, str], args: tuple[str, ...]) -> None:
    workdir = copy_workflow(tmp_path / "workflow")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(workdir / "Snakefile"), "--directory",
               str(workdir), *args]
    result = subprocess.run(command, cwd=workdir, env=torchless_env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "is blocked" not in output, output
