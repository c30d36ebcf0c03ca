"""Where and how torch runs: device choice, thread count, determinism switches."""

from __future__ import annotations

import os

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
    torch.use_deterministic_algorithms(True, warn_only=False)
    if portable.pinned():
        torch.backends.mkldnn.enabled = False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if threads:
        torch.set_num_threads(threads)
