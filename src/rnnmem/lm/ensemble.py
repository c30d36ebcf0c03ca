"""An ensemble of chorale language models: the arithmetic mean of their next-token distributions.

Seeds of one (model, regime) differ by more than the differences between models (issue 14); averaging their
distributions is the standard way to spend them, and it is scored like any model by
:func:`rnnmem.lm.evaluate.evaluate_lm`: the ensemble's outputs are the log-probabilities of the mixture, so their
softmax is the mixture itself. Its ``squared_error`` (on log-probabilities) means as little as a single modern
model's; ``squared_error_softmax`` is the mixture's Brier score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class ProbabilityMixture(nn.Module):
    """log((1/M) Σ_m softmax(model_m(ids))): token ids (B, T) → log-probabilities (B, T, V)."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.members = nn.ModuleList(models)

    def forward(self, ids: Tensor) -> Tensor:
        stacked = torch.stack([torch.log_softmax(m(ids).double(), dim=-1) for m in self.members])
        return torch.logsumexp(stacked, dim=0) - math.log(len(self.members))
