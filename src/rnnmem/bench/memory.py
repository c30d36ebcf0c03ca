"""``make bench``, memory branch: time of the paper-scale D(l,k) and MC grids, and the arithmetic rate of the
D(l,k) pass against torch's own float64 matrix-multiply rate measured in the same run.

The D(l,k) rate counts the useful work of the recurrent products only: per step and draw, 2 sequences × k × Gk
multiply-adds (G = 1 Vanilla, 3 GRU), i.e. 4·G·k² FLOP, whether or not a retired draw skipped them.
"""

from __future__ import annotations

import time

import pandas as pd
import torch

from rnnmem.core import portable
from rnnmem.core.cells import GATES
from rnnmem.memory.capacity import CapacitySettings, esn_capacity_per_reservoir, gru_capacity_per_reservoir
from rnnmem.memory.dlk import dlk_table

PAPER_K = (1, 2, 5, 10, 15, 20, 25, 30, 40, 50)
PAPER_DRAWS, PAPER_L = 2000, 2000
DLK_JOB_THREADS = 1  # the ``threads`` of the ``dlk`` rule (workflow/rules/memory.smk): what each pipeline job gets


def _gflops(flops: float, seconds: float) -> float:
    return flops / seconds / 1e9


def matmul_rates(repeats: int = 5) -> dict[str, float]:
    """torch's float64 rates: one large square product, and the D(l,k) batched product at k = 50 (GRU)."""
    a = torch.randn(2048, 2048, dtype=torch.float64)
    torch.mm(a, a)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, a)
    square = _gflops(repeats * 2 * 2048**3, time.perf_counter() - start)
    k, gates = 50, GATES["gru"]
    h = torch.randn(PAPER_DRAWS, 2, k, dtype=torch.float64)
    w = torch.randn(PAPER_DRAWS, k, gates * k, dtype=torch.float64)
    steps = 50
    torch.bmm(h, w)
    start = time.perf_counter()
    for _ in range(steps):
        torch.bmm(h, w)
    batched = _gflops(steps * PAPER_DRAWS * 2 * 2 * k * gates * k, time.perf_counter() - start)
    return {"mm_2048_gflops": square, "bmm_dlk_k50_gflops": batched}


def bench_dlk(models: tuple[str, ...] = ("vanilla", "gru"), ks: tuple[int, ...] = PAPER_K,
              draws: int = PAPER_DRAWS, length: int = PAPER_L, threads: int = DLK_JOB_THREADS) -> pd.DataFrame:
    """Time ``dlk_table`` per (model, k) in this process, on the ``dlk`` rule's thread count.

    A pipeline job computes the same table under the same settings (the command line's portable environment, see
    :mod:`rnnmem.core.portable`, when this runs through ``python -m rnnmem bench``; the ``portable`` column says
    whether it does) and adds its interpreter start-up and imports, which this does not time.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        for model in models:
            for k in ks:
                start = time.perf_counter()
                dlk_table(model, k, draws, length, seed=0, weight_scale=1.0)
                seconds = time.perf_counter() - start
                flops = 4.0 * GATES[model] * k * k * draws * length
                rows.append({"model": model, "k": k, "seconds": seconds, "gflops": _gflops(flops, seconds),
                             "threads": threads, "portable": portable.pinned()})
    finally:
        torch.set_num_threads(previous)
    return pd.DataFrame(rows)


def bench_capacity(ks: tuple[int, ...] = PAPER_K) -> dict[str, float]:
    settings = CapacitySettings(rho=0.95, input_scale=0.1, train_length=4000, washout=200, test_length=2000,
                                ridge=0.0, max_lag=100, reservoirs=10, seed=0)
    start = time.perf_counter()
    for k in ks:
        esn_capacity_per_reservoir(k, settings)
    esn = time.perf_counter() - start
    start = time.perf_counter()
    for k in ks:
        gru_capacity_per_reservoir(k, settings, k**-0.5)
    return {"esn_grid_seconds": esn, "gru_grid_seconds": time.perf_counter() - start}
