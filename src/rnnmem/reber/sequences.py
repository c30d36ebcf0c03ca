"""Strings of a grammar as padded one-hot tensors, one set of strings per ensemble member."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnmem.reber.grammars import Grammar

PAD = -1


@dataclass
class EncodedStrings:
    """Member m's n-th string: inputs ``x[m, n, :len-1]`` predict ``targets[m, n, :len-1]``.

    Shapes: x (M, N, T, |A|) one-hot, targets (M, N, T) with PAD beyond the end, legal (M, N, T, |A|) the
    legal-next-symbol sets, lengths (M, N) the number of predictions (string length − 1).
    """

    x: Tensor
    targets: Tensor
    legal: Tensor
    lengths: Tensor

    @property
    def valid(self) -> Tensor:
        return self.targets != PAD

    def select(self, index: Tensor) -> EncodedStrings:
        """Strings ``index[m, b]`` of member m, trimmed to the longest selected string."""
        rows = torch.arange(index.shape[0], device=index.device).unsqueeze(1)
        steps = int(self.lengths[rows, index].max())
        return EncodedStrings(
            self.x[rows, index, :steps],
            self.targets[rows, index, :steps],
            self.legal[rows, index, :steps],
            self.lengths[rows, index],
        )

    def input_symbols(self) -> np.ndarray:
        """(M, N, T) int64 on the CPU: the input symbol of every step (the hot index of ``x``), PAD where none."""
        x = self.x.cpu().numpy()
        return np.where(x.any(-1), x.argmax(-1), PAD).astype(np.int64)

    def to(self, device: torch.device) -> EncodedStrings:
        return EncodedStrings(*(t.to(device) for t in (self.x, self.targets, self.legal, self.lengths)))


def encode(grammar: Grammar, strings_per_member: Sequence[Sequence[str]]) -> EncodedStrings:
    """Pad every member's strings to the longest string of all members."""
    members = len(strings_per_member)
    count = len(strings_per_member[0])
    if any(len(strings) != count for strings in strings_per_member):
        raise ValueError("every member needs the same number of strings")
    steps = max(len(s) for strings in strings_per_member for s in strings) - 1
    alphabet = len(grammar.alphabet)
    symbols = np.full((members, count, steps + 1), PAD, dtype=np.int64)
    legal = np.zeros((members, count, steps, alphabet), dtype=bool)
    lengths = np.zeros((members, count), dtype=np.int64)
    for m, strings in enumerate(strings_per_member):
        for n, string in enumerate(strings):
            symbols[m, n, : len(string)] = grammar.index(string)
            legal[m, n, : len(string) - 1] = grammar.legal_mask(string)
            lengths[m, n] = len(string) - 1
    inputs = torch.from_numpy(symbols[..., :-1])
    x = torch.nn.functional.one_hot(inputs.clamp(min=0), alphabet).float()
    x[inputs == PAD] = 0.0
    return EncodedStrings(x, torch.from_numpy(symbols[..., 1:]), torch.from_numpy(legal), torch.from_numpy(lengths))


def top_m_correct(outputs: Tensor, legal: Tensor) -> Tensor:
    """Per step: are the outputs of the m legal symbols the m most active ones (strictly)?

    ``outputs`` (..., A) and ``legal`` (..., A) bool; returns (...) bool. A step with every symbol legal, or
    none (padding), counts as correct.
    """
    lowest_legal = outputs.masked_fill(~legal, float("inf")).amin(dim=-1)
    highest_illegal = outputs.masked_fill(legal, float("-inf")).amax(dim=-1)
    return lowest_legal > highest_illegal
