"""D(l, k) of report §2.2: the streamed fast path against the per-l reference, statistics, seeds, figures."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rnnmem.core import portable
from rnnmem.memory import dlk
from rnnmem.memory.dlk import (
    NonFiniteStatesError,
    distinguishability,
    distinguishability_naive,
    dlk_table,
    echo_state_fractions,
    member_seeds,
    per_draw_distances,
    random_cells,
)
from rnnmem.memory.figures_dlk import fig_dlk_curves, fig_dlk_heatmap

MODELS = ("vanilla", "gru")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("scale", [1.0, "inv_sqrt_k"])
def test_fast_path_matches_naive_reference(model: str, scale: float | str) -> None:
    cells = random_cells(model, 3, 5, 11, scale)
    reference = distinguishability_naive(cells, 12)
    fast = per_draw_distances(cells, 12)
    assert fast.shape == reference.shape == (5, 12)
    assert reference[:, 0].min() > 0.0  # u and v differ in their first symbol
    np.testing.assert_allclose(fast, reference, rtol=0.0, atol=1e-10)
    stats = distinguishability(cells, 12)
    np.testing.assert_allclose(stats["mean"], reference.mean(axis=0), rtol=0.0, atol=1e-10)
    np.testing.assert_allclose(stats["std"], reference.std(axis=0, ddof=1), rtol=0.0, atol=1e-10)


@pytest.mark.parametrize("model", MODELS)
def test_retired_draws_and_small_chunks_match_reference(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Draws whose states coincide are retired (and chunks compacted): D must still match, zeros included."""
    cells = random_cells(model, 2, 6, 3, "inv_sqrt_k")
    reference = distinguishability_naive(cells, 60)
    default = per_draw_distances(cells, 60)
    monkeypatch.setattr(dlk, "CHECK_EVERY", 3)
    monkeypatch.setattr(dlk, "CHUNK_BYTES", 2 * 2 * 3 * 2 * 8)  # two draws per chunk, whatever the model
    small = per_draw_distances(cells, 60)
    for fast in (default, small):
        np.testing.assert_allclose(fast, reference, rtol=0.0, atol=1e-10)
    assert (small[:, -1] == 0.0).any(), "no draw retired: the test does not exercise retirement"


@pytest.mark.parametrize("model", MODELS)
def test_identical_symbols_give_zero_distance(model: str) -> None:
    cells = random_cells(model, 4, 5, 0, 1.0)
    assert distinguishability(cells, 20)["mean"][0] > 0.0
    with torch.no_grad():
        cells.weight_ih[:, 1] = cells.weight_ih[:, 0]  # "1" and "0" now enter every gate identically
    assert np.all(per_draw_distances(cells, 20) == 0.0)


def test_table_is_deterministic_and_well_formed() -> None:
    first = dlk_table("gru", 4, 7, 15, 5, "inv_sqrt_k")
    second = dlk_table("gru", 4, 7, 15, 5, "inv_sqrt_k")
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert list(first.columns) == dlk.TABLE_COLUMNS
    assert first["l"].tolist() == list(range(1, 16))
    assert (first["k"] == 4).all()
    other_seed = dlk_table("gru", 4, 7, 15, 6, "inv_sqrt_k")
    assert not np.array_equal(first["mean"].to_numpy(), other_seed["mean"].to_numpy())


def test_jobs_do_not_share_draws() -> None:
    seeds = {(m, k): set(member_seeds(m, k, 50, 0)) for m in MODELS for k in (3, 4)}
    assert all(len(s) == 50 for s in seeds.values())
    keys = list(seeds)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not seeds[a] & seeds[b], f"jobs {a} and {b} share draws"
    assert member_seeds("vanilla", 3, 5, 0) == member_seeds("vanilla", 3, 8, 0)[:5]
    # Same seed would give the same leading N(0, 1) values whatever k: they must differ.
    small, large = random_cells("vanilla", 3, 20, 0, 1.0), random_cells("vanilla", 4, 20, 0, 1.0)
    assert not torch.isclose(small.weight_ih[:, 0, :3], large.weight_ih[:, 0, :3]).all(dim=-1).any()


@pytest.mark.parametrize("model", MODELS)
def test_overflow_raises_naming_model_and_k(model: str) -> None:
    cells = random_cells(model, 3, 4, 0, 1e308)
    with pytest.raises(NonFiniteStatesError, match=rf"{model} network with k=3.*step l=\d+.*weight_scale=1e\+308"):
        distinguishability(cells, 10)


def test_injected_nan_weight_raises_at_its_step() -> None:
    cells = random_cells("vanilla", 3, 4, 0, 1.0)
    with torch.no_grad():
        cells.weight_hh[2, 0, 0] = float("nan")  # already at l = 1: h_{-1} W_h is 0 · NaN = NaN
    with pytest.raises(NonFiniteStatesError, match=r"vanilla network with k=3.*step l=1 \(draw 2\)"):
        distinguishability(cells, 50)


@pytest.mark.parametrize("model", MODELS)
def test_echo_state_fractions(model: str) -> None:
    assert echo_state_fractions(random_cells(model, 5, 10, 0, 1e-3)) == pytest.approx(
        {"sv_max_below_1": 1.0, "sv_max_below_4": 1.0, "sv_max_median": 0.0}, abs=1e-2
    )
    huge = echo_state_fractions(random_cells(model, 5, 10, 0, 1e3))
    assert huge["sv_max_below_1"] == 0.0 and huge["sv_max_below_4"] == 0.0
    assert huge["sv_max_median"] > 4.0


def test_statistics_are_consistent() -> None:
    table = dlk_table("vanilla", 3, 9, 8, 1, 1.0)
    reference = distinguishability_naive(random_cells("vanilla", 3, 9, 1, 1.0), 8)
    assert (table["n_draws"] == 9).all()
    np.testing.assert_allclose(table["std"], reference.std(axis=0, ddof=1), rtol=0.0, atol=1e-10)
    np.testing.assert_allclose(table["sem"], table["std"] / math.sqrt(9), rtol=1e-12, atol=0.0)
    single = distinguishability(random_cells("vanilla", 3, 1, 1, 1.0), 8)
    assert np.all(single["std"] == 0.0) and np.all(single["sem"] == 0.0) and np.all(single["n_draws"] == 1)


def test_figures_are_written_reproducibly(tmp_path: Path) -> None:
    tables = {
        label: pd.concat([dlk_table(model, k, 6, 40, 0, 1.0) for k in (1, 2, 4)], ignore_index=True)
        for model, label in (("vanilla", "Vanilla"), ("gru", "GRU"))
    }
    outputs = []
    for attempt in range(2):
        heatmap, curves = tmp_path / f"heat{attempt}.png", tmp_path / f"curves{attempt}.png"
        fig_dlk_heatmap(tables["Vanilla"], "Vanilla", heatmap)
        fig_dlk_curves(tables, [1, 4], curves)
        outputs.append((heatmap.read_bytes(), curves.read_bytes()))
    for data in outputs[0]:
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert outputs[0] == outputs[1]
    with pytest.raises(ValueError, match="k = \\[3\\]"):
        fig_dlk_curves(tables, [3], tmp_path / "missing.png")


@pytest.mark.parametrize("model", MODELS)
def test_chunks_on_threads_give_the_same_bytes(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks run side by side on torch's threads (one thread per op): D is bitwise that of the sequential loop."""
    monkeypatch.setattr(dlk, "CHUNK_BYTES", 2 * 4 * 4 * 3 * 8)  # at most two draws per chunk: several chunks
    cells = random_cells(model, 4, 9, 7, 1.0)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        sequential = per_draw_distances(cells, 70)
        torch.set_num_threads(3)
        parallel = per_draw_distances(cells, 70)
        assert torch.get_num_threads() == 3, "the thread count must be restored"
    finally:
        torch.set_num_threads(threads)
    assert sequential.view(np.uint64).tobytes() == parallel.view(np.uint64).tobytes()
    np.testing.assert_allclose(parallel, distinguishability_naive(cells, 70), rtol=0.0, atol=1e-10)


def test_non_finite_state_in_a_threaded_chunk_names_its_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dlk, "CHUNK_BYTES", 2 * 3 * 3 * 8)  # two draws per chunk
    cells = random_cells("vanilla", 3, 8, 0, 1.0)
    with torch.no_grad():
        cells.weight_hh[5, 0, 0] = float("nan")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(NonFiniteStatesError, match=r"step l=1 \(draw 5\)"):
            distinguishability(cells, 40)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)



THREAD_PROBE = """
import torch
from rnnmem.core.runtime import configure_torch
from rnnmem.memory.dlk import dlk_table
configure_torch(1)
tables = []
for count in (1, 2, 3):
    torch.set_num_threads(count)
    tables.append(dlk_table("gru", 50, 200, 5, 0, 1.0).to_csv(float_format="%.17g"))
    assert torch.get_num_threads() == count
print(tables[0] == tables[1] == tables[2])
"""


def test_dlk_table_does_not_depend_on_the_thread_count() -> None:
    """Every column, the spectral-norm diagnostics included, is bitwise the same on 1, 2 and 3 threads under the
    jobs' arithmetic path (there MKL's batched SVD at k = 50 rounds differently on more threads), so the rule's
    ``threads`` is free to change."""
    env = portable.portable_environment(os.environ)
    done = subprocess.run([sys.executable, "-c", THREAD_PROBE], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True"]
