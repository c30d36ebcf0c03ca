"""Where and how torch runs: device choice, thread count, determinism switches."""

from __future__ import annotations

import os
import sys

import torch

from rnnmem.core import portable

DEVICE_ENV = "RNNMEM_DEVICE"


def pick_device() -> torch.device:
    """CUDA when the job sees a GPU, CPU otherwise; ``RNNMEM_DEVICE=cpu`` (or ``cuda``) overrides."""
    forced = os.environ.get(DEVICE_ENV, "").strip().lower()
    if forced:
        if forced.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"{DEVICE_ENV}={forced} but torch sees no CUDA device")
        return torch.device(forced)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def configure_torch(threads: int | None = None) -> None:
    """Deterministic kernels, and a fixed thread count so CPU results do not depend on the machine's load.

    Under the portable settings (:mod:`rnnmem.core.portable`) oneDNN is off too: its kernels are generated for the CPU
    at hand (and tuned to its caches), so torch's native LSTM/GRU code over MKL is used instead.
    """
    deterministic_algorithms()
    if portable.pinned():
        torch.backends.mkldnn.enabled = False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if threads:
        torch.set_num_threads(threads)


def deterministic_algorithms() -> None:
    """Turn torch's deterministic-algorithms flag on without loading its compiler.

    ``torch.use_deterministic_algorithms`` imports ``torch._inductor`` (about 1.2 s, most of a short job's start-up)
    only to copy the flag into the compiler's config. The pipeline never compiles with torch, so it sets the flag in
    torch's core directly, and through the public call when the compiler is already loaded or the core call is gone.
    """
    set_flag = getattr(torch._C, "_set_deterministic_algorithms", None)
    if set_flag is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=False)
    else:
        set_flag(True, warn_only=False)
