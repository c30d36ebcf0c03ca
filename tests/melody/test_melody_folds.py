"""Fold construction: every melody in one fold, tune groups never split, the seed fixes the folds."""

from __future__ import annotations

import pytest

from rnnmem.melody.folds import fold_members, grouped_folds, make_folds, plain_folds

# 60 melodies in 40 tune groups of 1 to 4 settings
GROUPS = [g for g in range(40) for _ in range(1 + (g * 7) % 4)][:60]


def test_grouped_keeps_each_group_in_one_fold() -> None:
    fold = grouped_folds(GROUPS, seed=3)
    for group in set(GROUPS):
        assert len({fold[i] for i, g in enumerate(GROUPS) if g == group}) == 1
    sizes = [len(m) for m in fold_members(fold)]
    assert sum(sizes) == len(GROUPS) and max(sizes) - min(sizes) <= 4  # balanced up to a group


@pytest.mark.parametrize("kind", ["grouped", "plain"])
def test_every_melody_in_exactly_one_fold_and_seed_fixes_folds(kind: str) -> None:
    fold = make_folds(kind, GROUPS, seed=0)
    members = fold_members(fold)
    assert sorted(i for m in members for i in m) == list(range(len(GROUPS)))
    assert all(members)  # no empty fold
    assert make_folds(kind, GROUPS, seed=0) == fold
    assert make_folds(kind, GROUPS, seed=1) != fold


def test_plain_folds_are_near_equal() -> None:
    sizes = [len(m) for m in fold_members(plain_folds(186, seed=0))]
    assert sorted(set(sizes)) == [18, 19]


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="fold kind"):
        make_folds("contiguous", GROUPS, seed=0)
