"""Ten cross-validation folds of the melodies, fixed by a seed.

``plain`` folds are random by melody, as in Pearce (2005): the yardstick's own protocol. ``grouped`` folds keep
every tune group (:func:`rnnmem.melody.tunes.tune_groups`) inside one fold, so no test melody is a setting of a
tune that the training folds contain: the honest split when settings of one tune are near copies. Both come from
``numpy.random.default_rng(seed)``, so the same seed gives the same folds on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_FOLDS = 10
KINDS = ("grouped", "plain")


def plain_folds(n_melodies: int, seed: int, n_folds: int = N_FOLDS) -> list[int]:
    """Fold index per melody: a random permutation cut into ``n_folds`` near-equal parts."""
    order = np.random.default_rng(seed).permutation(n_melodies)
    fold = np.empty(n_melodies, dtype=int)
    for index, part in enumerate(np.array_split(order, n_folds)):
        fold[part] = index
    return fold.tolist()


def grouped_folds(groups: Sequence[int], seed: int, n_folds: int = N_FOLDS) -> list[int]:
    """Fold index per melody, whole tune groups at a time: groups in random order, larger groups first, each to
    the fold with the fewest melodies so far (the lowest index on ties), so folds differ by at most a group."""
    rng = np.random.default_rng(seed)
    ids = sorted(set(groups))
    members = {g: [i for i, x in enumerate(groups) if x == g] for g in ids}
    shuffled = [ids[i] for i in rng.permutation(len(ids))]
    shuffled.sort(key=lambda g: -len(members[g]))  # stable: random order within a size
    sizes = [0] * n_folds
    fold = [0] * len(groups)
    for g in shuffled:
        target = min(range(n_folds), key=lambda f: (sizes[f], f))
        for i in members[g]:
            fold[i] = target
        sizes[target] += len(members[g])
    return fold


def make_folds(kind: str, groups: Sequence[int], seed: int, n_folds: int = N_FOLDS) -> list[int]:
    """``grouped`` or ``plain`` folds (a fold index per melody)."""
    if kind == "grouped":
        return grouped_folds(groups, seed, n_folds)
    if kind == "plain":
        return plain_folds(len(groups), seed, n_folds)
    raise ValueError(f"fold kind {kind!r}: expected one of {KINDS}")


def fold_members(fold: Sequence[int], n_folds: int = N_FOLDS) -> list[list[int]]:
    """The melody indices of each fold."""
    return [[i for i, f in enumerate(fold) if f == k] for k in range(n_folds)]


def split_fold(folds: Sequence[int], test_fold: int, n_folds: int = N_FOLDS) -> tuple[list[int], list[int], list[int]]:
    """(train, validation, test) melody indices: the test fold, the next fold as validation (every setting is chosen
    there, never on the test fold), the rest to train."""
    members = fold_members(folds, n_folds)
    validation_fold = (test_fold + 1) % n_folds
    train = [i for k, m in enumerate(members) if k not in (test_fold, validation_fold) for i in m]
    return sorted(train), members[validation_fold], members[test_fold]
