"""Which melodies are settings of one tune, so that a split can keep a tune out of two folds.

Bach harmonised many tunes several times, often in other keys and with small changes (passing notes, a repeat
written differently). Two melodies are one tune when their interval sequences (transposition-invariant) have a
``difflib.SequenceMatcher`` ratio of at least :data:`TUNE_SIMILARITY`; tune groups are the connected components
of that relation. The threshold is read off the 186 melodies of BWV 253–438: the known same-tune pairs score
0.81 (BWV 347/348) to 1.0 (326/327), further settings of one title down to 0.72 (417/419), while the highest pair
of different tunes scores 0.69 (BWV 310/353); 0.9 would split 277/279 (0.86) and 347/348 (0.81).
"""

from __future__ import annotations

from collections.abc import Sequence
from difflib import SequenceMatcher
from itertools import pairwise

from rnnmem.melody.corpus import Melody

TUNE_SIMILARITY = 0.7


def intervals(pitches: Sequence[int]) -> list[int]:
    """Semitone steps between successive notes: the melody up to transposition."""
    return [b - a for a, b in pairwise(pitches)]


def similar_pairs(melodies: Sequence[Melody], threshold: float = TUNE_SIMILARITY) -> list[tuple[int, int, float]]:
    """``(i, j, ratio)`` for every pair of melodies (indices, i < j) whose interval sequences reach ``threshold``."""
    steps = [intervals(m.pitches) for m in melodies]
    pairs = []
    for i, first in enumerate(steps):
        matcher = SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(first)
        for j in range(i + 1, len(steps)):
            matcher.set_seq1(steps[j])
            if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
                continue
            ratio = matcher.ratio()
            if ratio >= threshold:
                pairs.append((i, j, ratio))
    return pairs


def tune_groups(melodies: Sequence[Melody], threshold: float = TUNE_SIMILARITY) -> list[int]:
    """A group id per melody (0, 1, ... in order of first appearance): melodies of one tune share it."""
    parent = list(range(len(melodies)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in similar_pairs(melodies, threshold):
        parent[max(root(i), root(j))] = min(root(i), root(j))
    ids: dict[int, int] = {}
    return [ids.setdefault(root(i), len(ids)) for i in range(len(melodies))]


def groups_by_bwv(melodies: Sequence[Melody], groups: Sequence[int]) -> list[list[int]]:
    """The tune groups with more than one melody, as sorted lists of BWV numbers."""
    members: dict[int, list[int]] = {}
    for melody, group in zip(melodies, groups, strict=True):
        members.setdefault(group, []).append(melody.bwv)
    return sorted(sorted(b) for b in members.values() if len(b) > 1)
