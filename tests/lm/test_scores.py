"""scores.csv over seeds (issue 14 part B): one row per seed, and each run's mean, sd and seed count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnmem.lm.jobs import SCORE_COLUMNS, SEED_COLUMNS, lm_scores, seed_summary


def row(model: str, regime: str, seed: float, nll: float, transpose: str = "", kind: str = "gru") -> dict:
    values = dict.fromkeys(SCORE_COLUMNS, np.nan)
    return {**values, "source": "music21", "model": model, "kind": kind, "size": "report" if kind != "ngram" else "",
            "regime": regime, "seed": seed, "transpose": transpose, "nll_test": nll,
            "bits_per_token": nll / np.log(2)}


def test_seed_summary_groups_the_seeds_of_one_run_only() -> None:
    table = pd.DataFrame([
        row("ngram3", "", np.nan, 2.3, kind="ngram"), row("ngram3", "", np.nan, 2.2, "-1 1", kind="ngram"),
        row("gru_s", "seed", 0, 3.0), row("gru_s", "modern", 0, 2.0, "-1 1"), row("gru_s", "modern", 1, 2.2, "-1 1"),
        row("gru_s", "modern", 2, 2.4, "-1 1"),
    ])
    summary = seed_summary(table)
    assert list(summary.columns) == SCORE_COLUMNS + SEED_COLUMNS
    modern = summary[summary["regime"] == "modern"]
    assert modern["nll_mean"].tolist() == pytest.approx([2.2] * 3)
    assert modern["nll_sd"].tolist() == pytest.approx([0.2] * 3)  # n - 1 in the denominator
    assert modern["n_seeds"].tolist() == [3, 3, 3]
    single = summary[summary["regime"] != "modern"]
    assert single["n_seeds"].tolist() == [1, 1, 1]
    assert single["nll_mean"].tolist() == pytest.approx(single["nll_test"].tolist())
    assert single["nll_sd"].isna().all()


def test_lm_scores_reads_every_seed_part(tmp_path) -> None:
    parts = []
    for index, values in enumerate([row("ngram3", "", np.nan, 2.3, kind="ngram"), row("gru_s", "modern", 0, 2.0),
                                    row("gru_s", "modern", 1, 2.4)]):
        path = tmp_path / f"part{index}.csv"
        pd.DataFrame([values], columns=SCORE_COLUMNS).to_csv(path, index=False)
        parts.append(path)
    lm_scores(parts, tmp_path / "scores.csv")
    table = pd.read_csv(tmp_path / "scores.csv")
    assert len(table) == 3 and table["n_seeds"].tolist() == [1, 2, 2]
    assert table.loc[1, "nll_mean"] == pytest.approx(2.2)
