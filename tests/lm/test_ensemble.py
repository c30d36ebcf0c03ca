"""The ensemble of a run's seeds (rnnmem.lm.ensemble): the mean of the members' distributions, step by step."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rnnmem.lm.ensemble import ProbabilityMixture
from rnnmem.lm.evaluate import evaluate_lm


class Table(nn.Module):
    """A toy model: the logits of each next token depend on the current token only (a random table)."""

    def __init__(self, vocab: int, seed: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(seed)) * 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.logits[ids]


def test_mixture_is_the_mean_of_the_softmaxes() -> None:
    members = [Table(6, seed) for seed in range(3)]
    ids = torch.tensor([[1, 4, 2, 5, 0]])
    with torch.no_grad():
        out = ProbabilityMixture(members)(ids)
    for t in range(ids.shape[1]):
        token = int(ids[0, t])
        rows = [m.logits[token].tolist() for m in members]
        by_hand = [sum(math.exp(row[v]) / sum(math.exp(x) for x in row) for row in rows) / 3 for v in range(6)]
        assert out[0, t].exp().tolist() == pytest.approx(by_hand, rel=1e-12)
        assert float(out[0, t].exp().sum()) == pytest.approx(1.0, abs=1e-12)


def test_ensemble_nll_is_at_most_the_members_mean() -> None:
    """Jensen: −log of a mean probability is at most the mean of −log; a geometric mixture or a sum of logits would
    not be scored by evaluate_lm as this mixture is."""
    members = [Table(8, seed) for seed in range(4)]
    sequences = [[1, 3, 5, 7, 2], [1, 4, 4, 6, 0, 2], [1, 7, 2]]
    alone = [evaluate_lm(m, sequences)["nll"] for m in members]
    mixed = evaluate_lm(ProbabilityMixture(members), sequences)["nll"]
    assert mixed <= sum(alone) / len(alone)
    probs = torch.stack([torch.softmax(m.logits.detach().double(), -1) for m in members]).mean(0)
    by_hand = -sum(math.log(float(probs[s[t], s[t + 1]])) for s in sequences for t in range(len(s) - 1))
    assert mixed == pytest.approx(by_hand / sum(len(s) - 1 for s in sequences), rel=1e-12)


def test_one_member_is_that_model() -> None:
    member = Table(5, 0)
    ids = torch.tensor([[0, 1, 2, 3]])
    assert torch.allclose(ProbabilityMixture([member])(ids), torch.log_softmax(member(ids).double(), -1))
    with pytest.raises(ValueError, match="at least one"):
        ProbabilityMixture([])


def test_an_ensemble_of_one_seed_is_refused(tmp_path) -> None:
    from rnnmem.core.errors import ConfigError
    from rnnmem.lm.jobs import lm_ensemble_score

    params = {"model": {"name": "gru_s", "model": "gru", "size": "report"}, "regime": "modern", "source": "music21"}
    with pytest.raises(ConfigError, match=r"lm\.n_seeds: an ensemble of gru_s/modern needs at least two seeds"):
        lm_ensemble_score(params, tmp_path / "t.jsonl", tmp_path / "v.json", [tmp_path / "m.pt"], tmp_path / "o.csv")
