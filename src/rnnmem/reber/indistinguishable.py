"""Report §2.1: after BPBTXSE and BTBTXSE an embedded-Reber network must predict P vs T, so its states
must differ; the report measured how little they do (mean |Δ| of 0.0009 on the output layer of its Vanilla).
"""

from __future__ import annotations

import torch

from rnnmem.core.cells import SequencePredictor
from rnnmem.reber.grammars import REBER_ALPHABET

PROBE_PAIR = ("BPBTXSE", "BTBTXSE")


def _encode(string: str, members: int) -> torch.Tensor:
    index = torch.tensor([REBER_ALPHABET.index(s) for s in string])
    x = torch.nn.functional.one_hot(index, len(REBER_ALPHABET)).float()
    return x.expand(members, 1, *x.shape)


@torch.no_grad()
def final_state_differences(model: SequencePredictor, pair: tuple[str, str] = PROBE_PAIR) -> dict[str, torch.Tensor]:
    """Per member: mean |Δ| of the output layer and of the hidden layer after reading each string of the pair."""
    members = model.members
    out_a, hid_a = model(_encode(pair[0], members))
    out_b, hid_b = model(_encode(pair[1], members))
    return {
        "output_mean_abs_diff": (out_a[:, 0, -1] - out_b[:, 0, -1]).abs().mean(-1),
        "hidden_mean_abs_diff": (hid_a[:, 0, -1] - hid_b[:, 0, -1]).abs().mean(-1),
    }
