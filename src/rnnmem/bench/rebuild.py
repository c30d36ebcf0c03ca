"""``make bench``, full rebuild: job time per rule of the last ``make run`` (Snakemake's ``benchmarks/`` files) beside
the times measured before the compiled kernels, and the run's wall time (its Snakemake log).

The "before" column is what issue 12 measured on a fresh clone (2-core x86-64, CPU only, light load): the figures
are that measurement, kept here so the table always compares against the same starting point.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

# Issue 12's measurement of the paper-config `make run` before the change: job seconds and jobs per rule.
BEFORE_SECONDS = {"reber_train": 1625.0, "lm_train": 443.0, "dlk": 321.0, "lm_samples": 216.0}
BEFORE_JOBS = {"reber_train": 8, "lm_train": 12, "dlk": 20, "lm_samples": 12}
BEFORE_OTHER_SECONDS = 195.0  # every other rule together (34 jobs)
BEFORE_OTHER_JOBS = 34
BEFORE_WALL_SECONDS = 27 * 60 + 20  # Snakemake's elapsed time
ELAPSED = re.compile(r"^Elapsed time: (?:(\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d+)?)", re.MULTILINE)


def job_seconds(benchmarks: Path) -> pd.DataFrame:
    """Per rule: jobs, total and longest job seconds, from ``benchmarks/<rule>.tsv`` and
    ``benchmarks/<rule>/*.tsv`` (the last row of each file: the last run of that job)."""
    rows = []
    for path in sorted(Path(benchmarks).rglob("*.tsv")):
        rule = path.parent.name if path.parent != Path(benchmarks) else path.stem
        table = pd.read_csv(path, sep="\t")
        if len(table):
            rows.append({"rule": rule, "seconds": float(table["s"].iloc[-1])})
    frame = pd.DataFrame(rows, columns=["rule", "seconds"])
    return frame.groupby("rule", sort=True)["seconds"].agg(jobs="count", seconds="sum", longest="max").reset_index()


def run_wall_seconds(log_dir: Path) -> float | None:
    """Snakemake's elapsed time of the latest completed run logged in ``log_dir`` (``.snakemake/log``)."""
    for path in sorted(Path(log_dir).glob("*.snakemake.log"), reverse=True):
        match = ELAPSED.search(path.read_text(encoding="utf-8", errors="replace"))
        if match and "(100%) done" in path.read_text(encoding="utf-8", errors="replace"):
            days, hours, minutes, seconds = match.groups()
            return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return None


def rebuild_table(workdir: Path = Path(".")) -> pd.DataFrame:
    """Before/after job seconds per rule, the other rules together, the total, and the run's wall time."""
    after = job_seconds(Path(workdir) / "benchmarks")
    named = after[after["rule"].isin(BEFORE_SECONDS)]
    other = after[~after["rule"].isin(BEFORE_SECONDS)]
    def part(rule: str, jobs_before: int, before: float, frame: pd.DataFrame) -> dict[str, object]:
        return {"rule": rule, "jobs_before": jobs_before, "jobs_after": int(frame["jobs"].sum()),
                "before_s": before, "after_s": float(frame["seconds"].sum()),
                "longest_job_after_s": float(frame["longest"].max()) if len(frame) else float("nan")}

    rows = [part(rule, BEFORE_JOBS[rule], BEFORE_SECONDS[rule], named[named["rule"] == rule])
            for rule in BEFORE_SECONDS]
    rows.append(part("everything else", BEFORE_OTHER_JOBS, BEFORE_OTHER_SECONDS, other))
    rows.append(part("total job time", sum(BEFORE_JOBS.values()) + BEFORE_OTHER_JOBS,
                     sum(BEFORE_SECONDS.values()) + BEFORE_OTHER_SECONDS, after))
    wall = run_wall_seconds(Path(workdir) / ".snakemake" / "log")
    rows.append({"rule": "make run wall time", "before_s": float(BEFORE_WALL_SECONDS),
                 "after_s": wall if wall is not None else float("nan")})
    return pd.DataFrame(rows)
