"""Byte-deterministic tensor files: equal payloads give equal bytes, whatever objects their equal strings are."""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict

import torch

from rnnmem.core import tensor_files


def test_equal_payloads_with_distinct_equal_strings_give_equal_bytes() -> None:
    """A checkpoint's rows read back (their keys new string objects) beside rows the code writes (literal keys)
    must save as the same bytes as rows all written by the code: pickle refers back to a string by identity."""
    fresh = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]
    read_back = pickle.loads(pickle.dumps([fresh[0]]))  # keys: other objects than the literals above
    mixed = [read_back[0], fresh[1]]
    assert mixed == fresh and next(iter(mixed[0])) is not next(iter(mixed[1]))
    state = OrderedDict(weight=torch.arange(3.0))
    assert tensor_files.to_bytes({"curve": mixed, "model": state}) == tensor_files.to_bytes(
        {"curve": fresh, "model": state})
    loaded = torch.load(io.BytesIO(tensor_files.to_bytes({"model": state})), weights_only=True)
    assert type(loaded["model"]) is OrderedDict and torch.equal(loaded["model"]["weight"], state["weight"])
