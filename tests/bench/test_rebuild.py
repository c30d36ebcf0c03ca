"""The rebuild table of ``make bench``: job seconds per rule from benchmark files, wall time from the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnmem.bench.rebuild import BEFORE_SECONDS, rebuild_table, run_wall_seconds

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _benchmark(path: Path, *seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"{s}\t0:00:01\t1\t1\t1\t1\t0\t0\t90\t1\n" for s in seconds), encoding="utf-8")


def test_rebuild_table_sums_the_last_run_of_each_job(tmp_path: Path) -> None:
    bench = tmp_path / "benchmarks"
    _benchmark(bench / "reber_train" / "a_seed.tsv", 99.0, 10.0)  # a rerun: its last row counts
    _benchmark(bench / "reber_train" / "b_seed.tsv", 20.5)
    _benchmark(bench / "dlk" / "gru_k5.tsv", 3.0)
    _benchmark(bench / "toy_language.tsv", 4.0)
    log = tmp_path / ".snakemake" / "log"
    log.mkdir(parents=True)
    (log / "2026-01-01T000000.1.snakemake.log").write_text("3 of 3 steps (100%) done\nElapsed time: 0:09:30.5\n",
                                                           encoding="utf-8")
    (log / "2026-01-02T000000.1.snakemake.log").write_text("1 of 3 steps (33%) done\n", encoding="utf-8")  # killed
    table = rebuild_table(tmp_path).set_index("rule")
    assert table.loc["reber_train", "after_s"] == pytest.approx(30.5)
    assert table.loc["reber_train", "jobs_after"] == 2 and table.loc["reber_train", "longest_job_after_s"] == 20.5
    assert table.loc["dlk", "after_s"] == 3.0 and table.loc["lm_train", "jobs_after"] == 0
    assert table.loc["everything else", "after_s"] == 4.0
    assert table.loc["total job time", "after_s"] == pytest.approx(37.5)
    assert table.loc["total job time", "before_s"] == pytest.approx(sum(BEFORE_SECONDS.values()) + 195.0)
    assert table.loc["make run wall time", "after_s"] == pytest.approx(570.5)


def test_wall_time_is_absent_without_a_completed_run(tmp_path: Path) -> None:
    assert run_wall_seconds(tmp_path) is None
