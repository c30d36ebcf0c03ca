"""Results that do not depend on the CPU's SIMD extensions (rnnmem.core.portable).

The same small jobs run under every kernel-dispatch level this machine supports, as other x86-64 machines would
pick them: with the portable settings switched off (``RNNMEM_PORTABLE=0``) the results differ, with them on
(the default of every ``python -m rnnmem`` command) they are byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from rnnmem.core import portable

REBER = {
    "check_every": 128, "first_seed": 0, "n_seeds": 2, "max_strings": 384, "train_strings": 32, "test_strings": 32,
    "experiment": {"activation": "logistic", "grammar": "embedded_reber", "hidden": 18, "model": "vanilla",
                   "name": "embedded_vanilla18"},
    "gradient_log": {"dense_strings": 128, "every_strings": 128},
    "regime": {"batch_size": 2, "clip_norm": 1.0, "init": "uniform", "lr": 0.02}, "regime_name": "modern",
}
LSTM_SEED = {**REBER, "experiment": {"activation": "logistic", "grammar": "embedded_reber", "hidden": 8,
                                     "model": "lstm", "name": "embedded_lstm"},
             "regime": {"bias": "zero", "init": "normal", "lr": 0.01, "lr_divisor": 1.5, "max_epochs": 1000,
                        "tolerance": 1e-5},
             "regime_name": "seed"}
DLK = {"draws": 10, "k": 10, "max_l": 100, "model": "gru", "seed": 0, "weight_scale": 1.0,
       "bias": "zero", "input": "one_hot", "tail_threshold": 1e-3, "bootstrap": 10}


def dispatch_levels() -> list[str]:
    """torch's CPU kernel levels this machine can run, lowest first (what x86-64 machines of each kind pick)."""
    native = torch.backends.cpu.get_cpu_capability()
    order = ["default", "avx2", "avx512"]
    if native.lower() not in order:
        return []
    return order[: order.index(native.lower()) + 1]


# What a machine without AVX-512 (or without AVX2/FMA) would choose on its own, library by library.
MACHINES = {
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "OPENBLAS_CORETYPE": "Haswell", "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41",
                "OPENBLAS_CORETYPE": "Nehalem", "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX2,-FMA,-AVX"},
}


def run_jobs(workdir: Path, machine: dict[str, str], portable_on: bool) -> str:
    """Train a Reber ensemble and compute one D(l,k) part; a digest of the weights and tables."""
    workdir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in portable.PORTABLE_ENV and k != portable.MARK}
    env.update(machine)
    env[portable.SWITCH] = "1" if portable_on else "0"
    env["RNNMEM_DEVICE"] = "cpu"
    commands = [
        [*_rnnmem("1"), "reber-train", "--params", json.dumps(params), "--model", f"{name}.pt", "--spec",
         f"{name}.json", "--table", f"{name}.csv"]
        for name, params in (("lstm", LSTM_SEED),)
    ] + [[*_rnnmem("2"), "dlk", "--params", json.dumps(DLK), "--out", "dlk.csv"]]
    for command in commands:
        result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    digest = hashlib.sha256()
    for name in ("lstm",):
        state = torch.load(workdir / f"{name}.pt", weights_only=True)
        for key in sorted(state):
            digest.update(key.encode() + state[key].numpy().tobytes())
        digest.update((workdir / f"{name}.csv").read_bytes())
    digest.update((workdir / "dlk.csv").read_bytes())
    return digest.hexdigest()


def _rnnmem(threads: str) -> list[str]:
    return [sys.executable, "-m", "rnnmem", "--threads", threads]


@pytest.fixture(scope="module")
def levels() -> list[str]:
    found = dispatch_levels()
    if len(found) < 2:
        pytest.skip(f"this CPU offers one kernel-dispatch level ({torch.backends.cpu.get_cpu_capability()}): "
                    "nothing to compare")
    return found


def test_unpinned_results_depend_on_the_dispatch_level_and_pinned_ones_do_not(levels, tmp_path):
    cases = [(level, False) for level in levels] + [(level, True) for level in levels]
    with ThreadPoolExecutor(max_workers=2) as pool:
        digests = list(pool.map(lambda case: run_jobs(tmp_path / f"{case[0]}-{case[1]}", MACHINES[case[0]],
                                                      case[1]), cases))
    unpinned = dict(zip(levels, digests[: len(levels)], strict=True))
    pinned = dict(zip(levels, digests[len(levels):], strict=True))
    assert len(set(unpinned.values())) > 1, f"native kernels gave the same results at every level: {unpinned}"
    assert len(set(pinned.values())) == 1, f"portable results differ between dispatch levels: {pinned}"


def test_the_portable_environment_selects_the_baseline_kernels():
    probe = ("import os, torch; from rnnmem.core import portable; from rnnmem.core.runtime import configure_torch; "
             "configure_torch(1); print(portable.pinned(), os.environ['ATEN_CPU_CAPABILITY'], "
             "torch.backends.cpu.get_cpu_capability(), torch.backends.mkldnn.enabled)")
    env = {k: v for k, v in os.environ.items() if k not in (portable.MARK, portable.SWITCH)}
    pinned = subprocess.run([sys.executable, "-c", probe], env=portable.portable_environment(env),
                            capture_output=True, text=True, check=True).stdout.split()
    assert pinned == ["True", "default", "DEFAULT", "False"]
