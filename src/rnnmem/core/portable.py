"""One arithmetic path on every x86-64 CPU, so that the same config gives the same tables on any machine.

torch, MKL, oneDNN, OpenBLAS, numpy and glibc's libm each pick their kernels by the SIMD extensions of the CPU
they run on (SSE4.2, AVX2, FMA, AVX-512), and different kernels round differently: the same training job gave
three different sets of weights on one machine under torch's ``avx512``, ``avx2`` and ``default`` dispatch. Every
``rnnmem`` job therefore runs under the settings below, which select code that every x86-64-v2 CPU (any x86-64
CPU since 2009; numpy's own baseline) executes the same way. They must be in the environment before the
libraries load (glibc reads its tunables when the process starts), so :func:`pin_process` re-executes the
command once with them set. ``RNNMEM_PORTABLE=0`` turns this off: native kernels, results then depend on the CPU.

This module imports nothing heavy: it runs before torch and numpy are loaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

SWITCH = "RNNMEM_PORTABLE"
"""Set to ``0`` to run with each library's native, CPU-dependent kernels."""

MARK = "RNNMEM_PINNED"
"""Set in the re-executed process: the settings below are in force (torch's oneDNN use is turned off there too)."""

# glibc >= 2.33 spells the features plainly, older releases with a _Usable suffix; unknown names are ignored.
_GLIBC_MASKED = ("AVX", "AVX2", "FMA", "FMA4", "AVX512F", "AVX512VL", "AVX512DQ", "AVX512BW", "AVX512CD")
_GLIBC_HWCAPS = "glibc.cpu.hwcaps=" + ",".join(f"-{name},-{name}_Usable" for name in _GLIBC_MASKED)

PORTABLE_ENV: dict[str, str] = {
    # torch's own vectorised kernels (activations, reductions, optimizers): the baseline build, not AVX2/AVX-512.
    "ATEN_CPU_CAPABILITY": "default",
    # MKL (torch's matrix products): conditional numerical reproducibility, the same code path on any x86-64 CPU;
    # a fixed thread count (MKL_DYNAMIC would let MKL pick fewer threads by the machine's core count).
    "MKL_CBWR": "COMPATIBLE",
    "MKL_DYNAMIC": "FALSE",
    # numpy's BLAS/LAPACK (OpenBLAS): one kernel set (SSE4.2) instead of one per CPU model, and one thread, since
    # its reductions are split by the machine's core count otherwise.
    "OPENBLAS_CORETYPE": "Nehalem",
    "OPENBLAS_NUM_THREADS": "1",
    # numpy's own SIMD loops (exp, log, tanh, sums): its x86-64-v2 baseline only (numpy 2.x dispatch names).
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    # numba's compiled kernels (rnnmem.core.compiled*): code for the baseline x86-64 CPU (SSE2, which every x86-64
    # CPU has), not the host CPU's: no AVX/FMA instructions, whose contractions round differently. Not "generic",
    # for which LLVM vectorises nothing (the kernels' row loops ran 2x slower); vectorising across a row never
    # reorders a sum, so the numbers are those of scalar code.
    "NUMBA_CPU_NAME": "x86-64",
    # glibc's libm (exp, log, pow, tanh) has FMA/AVX2 variants that round differently: mask them.
    "GLIBC_TUNABLES": _GLIBC_HWCAPS,
}


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(SWITCH, "1").strip() != "0"


def pinned(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process runs under :data:`PORTABLE_ENV` (set by :func:`pin_process`)."""
    return environ.get(MARK) == "1"


def portable_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with :data:`PORTABLE_ENV` in force (a user's GLIBC_TUNABLES are kept, the mask appended)."""
    env = dict(environ)
    env.update(PORTABLE_ENV)
    if environ.get("GLIBC_TUNABLES"):
        env["GLIBC_TUNABLES"] = f"{environ['GLIBC_TUNABLES']}:{_GLIBC_HWCAPS}"
    env[MARK] = "1"
    return env


def pin_process(argv: list[str] | None = None) -> None:
    """Re-execute ``python -m rnnmem <argv>`` under :data:`PORTABLE_ENV` unless already pinned or switched off.

    Called first thing by the command line, before torch or numpy are imported; costs one interpreter start.
    """
    if pinned() or not enabled():
        return
    args = sys.argv[1:] if argv is None else argv
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "rnnmem", *args], portable_environment(os.environ))
