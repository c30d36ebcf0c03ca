"""The PPM yardstick over 10 folds: mean bits/note of the LTM, the STM and both (Pearce 2005's System A: 2.337).

Run ``python -m rnnmem.melody.benchmark [cache.json]`` for the grouped and plain folds of seed 0 (the melodies are
parsed once and cached in the JSON file, default ``results/melody/melodies.json``): a line per fold kind on stderr,
the whole report as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence

import numpy as np

from rnnmem.melody.corpus import Melody, cached_melodies
from rnnmem.melody.folds import KINDS, N_FOLDS, fold_members, make_folds
from rnnmem.melody.ppm import SystemConfig, predict
from rnnmem.melody.tunes import tune_groups

PEARCE_SYSTEM_A = 2.337
MODELS = ("ltm", "stm", "both")


def benchmark_ppm(
    melodies: Sequence[Melody],
    folds: Sequence[int],
    config: SystemConfig = SystemConfig(),  # noqa: B008
    n_folds: int = N_FOLDS,
) -> dict:
    """Mean bits/note over all notes (``mean``) and per fold (``folds``) of each model, testing each fold on a
    model trained on the other nine; the alphabet is the whole corpus's pitches."""
    alphabet = sorted({p for m in melodies for p in m.pitches})
    result: dict = {"notes": 0, "mean": {}, "folds": {m: [] for m in MODELS}, "fold_notes": []}
    sums = dict.fromkeys(MODELS, 0.0)
    for members in fold_members(folds, n_folds):
        chosen = set(members)
        train = [m.pitches for i, m in enumerate(melodies) if i not in chosen]
        test = [melodies[i].pitches for i in members]
        bits = predict(train, test, alphabet, config)
        result["fold_notes"].append(len(bits["both"]))
        for model in MODELS:
            result["folds"][model].append(float(bits[model].mean()))
            sums[model] += float(bits[model].sum())
    result["notes"] = sum(result["fold_notes"])
    for model in MODELS:
        result["mean"][model] = sums[model] / result["notes"]
        fold_means = np.asarray(result["folds"][model])
        result.setdefault("fold_sd", {})[model] = float(fold_means.std(ddof=1))
    return result


def main(argv: Sequence[str] = ()) -> dict:
    cache = argv[0] if argv else "results/melody/melodies.json"
    melodies = cached_melodies(cache)
    groups = tune_groups(melodies)
    report = {}
    for kind in KINDS:
        start = time.perf_counter()
        report[kind] = benchmark_ppm(melodies, make_folds(kind, groups, seed=0))
        report[kind]["seconds"] = round(time.perf_counter() - start, 2)
        means = report[kind]["mean"]
        print(
            f"{kind:8s} "
            + "  ".join(f"{m}={means[m]:.3f}" for m in MODELS)
            + f"  (fold sd both={report[kind]['fold_sd']['both']:.3f}, {report[kind]['notes']} notes,"
            f" {report[kind]['seconds']} s; Pearce System A {PEARCE_SYSTEM_A})",
            file=sys.stderr,
        )
    return report


if __name__ == "__main__":
    json.dump(main(sys.argv[1:]), sys.stdout, indent=None)
    print()
