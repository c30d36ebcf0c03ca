"""Figures of D(l, k) (report figures 14, 15 and the curves) from synthetic tables: no network is run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnmem.memory.figures_dlk import (
    MIN_RESOLVED,
    REQUIRED_COLUMNS,
    fig_dlk_curves,
    fig_dlk_heatmap,
    shared_norm_range,
    unresolved_mask,
)

PNG = b"\x89PNG\r\n\x1a\n"


def synthetic_table(ks: tuple[int, ...], max_l: int, n_draws: int, floor: float, seed: int) -> pd.DataFrame:
    """A heavy-tailed D(l,k) table like dlk's: a shrinking number of draws stays at D ≈ 0.5, the rest decay to
    ``floor``; n_above runs from n_draws down to 0 (through 1..9: unresolved cells)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in ks:
        for length in range(1, max_l + 1):
            n_above = max(0, n_draws - (n_draws * length) // (max_l - 2 * k)) if length < max_l - 2 * k else 0
            mean = (0.5 * n_above + floor * (n_draws - n_above)) / n_draws
            if length == max_l:
                mean = 0.0  # every draw's states identical: a zero must be drawable
            std = 0.5 * np.sqrt(n_above / n_draws * (1 - n_above / n_draws)) + floor
            rows.append({
                "k": k, "l": length, "mean": mean, "std": std, "sem": std / np.sqrt(n_draws),
                "ci_low": max(0.0, mean * (1 - 0.3 * rng.random())), "ci_high": mean * (1 + 0.3 * rng.random()),
                "median": 0.5 if n_above > n_draws / 2 else floor, "frac_above": n_above / n_draws,
                "n_above": n_above, "n_draws": n_draws,
                "sv_max_below_1": 0.5, "sv_max_below_4": 0.9, "sv_max_median": 1.5,
            })
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return {
        "Vanilla": synthetic_table((1, 2, 4), 60, 40, 1e-17, 0),
        "GRU": synthetic_table((1, 2, 4), 60, 40, 1e-3, 1),
    }


def test_figures_are_written_and_reproducible(tmp_path: Path, tables: dict[str, pd.DataFrame]) -> None:
    shared = shared_norm_range(list(tables.values()))
    outputs = []
    for attempt in range(2):
        paths = {
            "vanilla": tmp_path / f"vanilla{attempt}.png", "gru": tmp_path / f"gru{attempt}.png",
            "own_range": tmp_path / f"own{attempt}.png", "curves": tmp_path / f"curves{attempt}.png",
        }
        for label, key in (("Vanilla", "vanilla"), ("GRU", "gru")):
            fig_dlk_heatmap(tables[label], label, paths[key], weights_label="N(0,1) weights",
                            conventions_label="zero biases, one-hot input, N(0,1) weights", norm_range=shared,
                            threshold=1e-3)
        fig_dlk_heatmap(tables["GRU"], "GRU", paths["own_range"])
        fig_dlk_curves(tables, [1, 4], paths["curves"], conventions_label="zero biases, one-hot input",
                       threshold=1e-3)
        outputs.append({key: path.read_bytes() for key, path in paths.items()})
    for data in outputs[0].values():
        assert data.startswith(PNG) and len(data) > 1000
    assert outputs[0] == outputs[1]
    assert outputs[0]["gru"] != outputs[0]["own_range"], "the shared colour range must change the GRU figure"


def test_shared_norm_range_spans_both_tables(tables: dict[str, pd.DataFrame]) -> None:
    low, high = shared_norm_range(list(tables.values()))
    for table in tables.values():
        positive = table["mean"][table["mean"] > 0]
        assert low <= positive.min() and positive.max() <= high
    assert low == min(t["mean"][t["mean"] > 0].min() for t in tables.values())
    assert high == max(t["mean"].max() for t in tables.values())
    # One table alone gives a narrower range than both together.
    assert shared_norm_range([tables["GRU"]])[0] > low
    with pytest.raises(ValueError, match="at least one"):
        shared_norm_range([])


def test_unresolved_mask_marks_one_to_nine_draws_above() -> None:
    table = synthetic_table((1,), 60, 40, 1e-17, 0).iloc[:4].copy()
    table["n_above"] = [0, 1, MIN_RESOLVED - 1, MIN_RESOLVED]
    mask = unresolved_mask(table)
    assert mask.tolist() == [False, True, True, False]
    assert mask.index.equals(table.index)
    synthetic = synthetic_table((1, 2), 60, 40, 1e-17, 0)
    marked = synthetic[unresolved_mask(synthetic)]
    assert len(marked) > 0 and marked["n_above"].between(1, MIN_RESOLVED - 1).all()


@pytest.mark.parametrize("dropped", [("ci_low", "ci_high"), ("median",), ("frac_above", "n_above")])
def test_tables_without_new_columns_are_refused(
    tmp_path: Path, tables: dict[str, pd.DataFrame], dropped: tuple[str, ...]
) -> None:
    old = tables["Vanilla"].drop(columns=list(dropped))
    pattern = r"lacks columns \[" + ", ".join(f"'{c}'" for c in REQUIRED_COLUMNS if c in dropped)
    with pytest.raises(ValueError, match=pattern):
        fig_dlk_heatmap(old, "Vanilla", tmp_path / "heat.png")
    with pytest.raises(ValueError, match=pattern):
        fig_dlk_curves({"Vanilla": old}, [1], tmp_path / "curves.png")
    with pytest.raises(ValueError, match=pattern):
        shared_norm_range([old, tables["GRU"]])
    assert not any(tmp_path.iterdir())


def test_bad_arguments_are_refused(tmp_path: Path, tables: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="k = \\[3\\]"):
        fig_dlk_curves(tables, [3], tmp_path / "missing.png")
    with pytest.raises(ValueError, match="norm_range"):
        fig_dlk_heatmap(tables["GRU"], "GRU", tmp_path / "heat.png", norm_range=(1.0, 1e-3))
    with pytest.raises(ValueError, match="threshold"):
        fig_dlk_curves(tables, [1], tmp_path / "curves.png", threshold=0.0)
