"""The |gradient| histograms a Reber training job logs (rnnmem.reber.gradient_log): schedule and counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnmem.core.cells import SequencePredictor
from rnnmem.reber.gradient_log import EDGES, GROUPS, GradientRecorder, _histogram


def _model_with_grads(members: int = 3) -> SequencePredictor:
    model = SequencePredictor("vanilla", 4, 3, 4, members=members)
    model.reset_parameters("uniform", list(range(members)))
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e-3)
    return model


def test_recorder_schedule_and_counts() -> None:
    model = _model_with_grads()
    recorder = GradientRecorder(dense_strings=4, every_strings=10)
    active = torch.tensor([True, True, False])
    for presented in range(1, 41):  # batch of 1: one call per string presented
        recorder(model, presented, active)
    # early: strings 1..4; late: 14, 24, 34 (every 10 strings after the dense phase).
    assert recorder.recorded_steps == {"early": 4, "late": 3}
    table = recorder.table()
    per_member = {GROUPS[name]: p[0].numel() for name, p in model.named_parameters()}
    for (phase, group), rows in table.groupby(["phase", "group"]):
        steps = 4 if phase == "early" else 3
        assert rows["count"].sum() == steps * 2 * per_member[group]  # two active members only
        # every value is 1e-3, exactly a bin edge: all counts in the bin [1e-3, 1e-3 * 10^0.1)
        assert rows.loc[rows["count"] > 0, "bin_low"].tolist() == pytest.approx([1e-3])


def test_no_record_when_every_member_stopped() -> None:
    recorder = GradientRecorder(dense_strings=10, every_strings=10)
    recorder(_model_with_grads(), 1, torch.zeros(3, dtype=torch.bool))
    assert recorder.recorded_steps["early"] == 0 and recorder.table().empty


def test_every_value_lands_in_exactly_one_bin_edges_included() -> None:
    """Bins are [lo, hi): a value on an edge counts once, in the bin it opens, 1e4 included (numpy's own last bin
    is closed, which counted 1e4 both there and in [1e4, ∞))."""
    values = np.array([0.0, EDGES[0], EDGES[1], EDGES[-2], EDGES[-1], 2 * EDGES[-1], np.inf])
    counts = _histogram(values)
    assert counts.sum() == len(values)
    assert counts[0] == 1 and counts[1] == 1 and counts[2] == 1 and counts[-2] == 1 and counts[-1] == 3
