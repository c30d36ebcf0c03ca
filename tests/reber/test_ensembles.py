"""Model files on disk and the write-then-rename helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rnnmem.core import atomic
from rnnmem.core.cells import SequencePredictor
from rnnmem.reber.ensembles import ModelFileError, load_ensemble, save_ensemble, untrained_ensemble

SPEC = {
    "model": "lstm", "input_size": 7, "hidden": 5, "output_size": 7, "seeds": [3, 4],
    "activation": "logistic",
}


def saved(tmp_path: Path, spec: dict = SPEC) -> tuple[SequencePredictor, Path, Path]:
    model = SequencePredictor(
        spec["model"], spec["input_size"], spec["hidden"], spec["output_size"], members=len(spec["seeds"]),
        activation=spec["activation"],
    )
    model.reset_parameters("normal", spec["seeds"])
    weights, spec_path = tmp_path / "models" / "ens.pt", tmp_path / "models" / "ens.json"
    save_ensemble(model, spec, weights, spec_path)
    return model, weights, spec_path


@pytest.mark.parametrize("kind", ["vanilla", "gru", "lstm"])
def test_round_trip(tmp_path: Path, kind: str) -> None:
    spec = {**SPEC, "model": kind, "activation": "tanh" if kind == "vanilla" else "logistic"}
    model, weights, spec_path = saved(tmp_path, spec)
    loaded, loaded_spec = load_ensemble(weights, spec_path)
    assert loaded_spec == spec
    assert loaded.members == 2
    assert loaded.recurrence.kind == kind and loaded.recurrence.activation == spec["activation"]
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    symbols = torch.randint(7, (2, 3, 6), generator=torch.Generator().manual_seed(0))
    x = torch.nn.functional.one_hot(symbols, 7)
    with torch.no_grad():
        assert torch.equal(model(x.float())[0], loaded(x.float())[0])
    # Only the two outputs are left in the folder (no temporary file).
    assert sorted(p.name for p in weights.parent.iterdir()) == ["ens.json", "ens.pt"]


def test_same_weights_give_the_same_bytes(tmp_path: Path) -> None:
    """Saved through a buffer: the file's name (and the temporary file's) does not reach the zip's contents."""
    model, weights, _ = saved(tmp_path)
    other = tmp_path / "elsewhere" / "another name.pt"
    save_ensemble(model, SPEC, other, tmp_path / "elsewhere" / "another name.json")
    assert weights.read_bytes() == other.read_bytes()


@pytest.mark.parametrize("missing", ["weights", "spec"])
def test_missing_file(tmp_path: Path, missing: str) -> None:
    _, weights, spec_path = saved(tmp_path)
    gone = weights if missing == "weights" else spec_path
    gone.unlink()
    with pytest.raises(ModelFileError, match="missing") as info:
        load_ensemble(weights, spec_path)
    assert str(gone) in str(info.value)


def test_corrupt_weights(tmp_path: Path) -> None:
    _, weights, spec_path = saved(tmp_path)
    weights.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ModelFileError) as info:
        load_ensemble(weights, spec_path)
    assert str(weights) in str(info.value)
    assert str(spec_path) not in str(info.value)


def test_weights_of_another_shape(tmp_path: Path) -> None:
    _, weights, spec_path = saved(tmp_path)
    spec_path.write_text(json.dumps({**SPEC, "hidden": 6}), encoding="utf-8")
    with pytest.raises(ModelFileError) as info:
        load_ensemble(weights, spec_path)
    assert str(weights) in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({k: v for k, v in SPEC.items() if k != "hidden"}),
        "{not json",
        json.dumps({**SPEC, "model": "rnn"}),
    ],
)
def test_bad_description(tmp_path: Path, text: str) -> None:
    _, weights, spec_path = saved(tmp_path)
    spec_path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelFileError) as info:
        load_ensemble(weights, spec_path)
    assert str(spec_path) in str(info.value)
    assert str(weights) not in str(info.value)


def test_missing_hidden_names_the_key(tmp_path: Path) -> None:
    _, weights, spec_path = saved(tmp_path)
    spec_path.write_text(json.dumps({k: v for k, v in SPEC.items() if k != "hidden"}), encoding="utf-8")
    with pytest.raises(ModelFileError, match="hidden"):
        load_ensemble(weights, spec_path)


# --- atomic writes --------------------------------------------------------------------------------


class Boom(RuntimeError):
    pass


def test_atomic_path_failure_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out" / "table.csv"
    with pytest.raises(Boom), atomic.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("half a table", encoding="utf-8")
        raise Boom
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_path_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    atomic.write_text(target, "old\n")
    with pytest.raises(Boom), atomic.atomic_path(target) as tmp:
        tmp.write_text("new", encoding="utf-8")
        raise Boom
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


class FailingFrame:
    """Writes part of a CSV, then fails, as a full disk or a killed pandas would."""

    def to_csv(self, path, **kwargs) -> None:
        Path(path).write_text("a,b\n1,", encoding="utf-8")
        raise Boom


def test_write_csv_failure_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    with pytest.raises(Boom):
        atomic.write_csv(target, FailingFrame())
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_text_failure_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    with pytest.raises(UnicodeEncodeError):
        atomic.write_text(target, "ok so far \ud800 then a lone surrogate")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_csv_and_json_succeed(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0 / 3.0, 2.0], "name": ["a", "b"]})
    atomic.write_csv(tmp_path / "t.csv", frame)
    assert (tmp_path / "t.csv").read_text(encoding="utf-8") == "x,name\n0.333333,a\n2,b\n"
    atomic.write_json(tmp_path / "d.json", {"b": 1, "a": "é"})
    assert json.loads((tmp_path / "d.json").read_text(encoding="utf-8")) == {"a": "é", "b": 1}
    assert sorted(os.listdir(tmp_path)) == ["d.json", "t.csv"]


def test_untrained_ensemble_follows_the_seed_bias() -> None:
    """The untrained twin has the trained ensemble's initial biases: zero under ``bias: zero``; drawn under
    ``bias: normal``, in the modern regime, and for a seed-regime spec written before the key existed."""
    base = {**SPEC, "regime_settings": {"init": "normal"}}
    drawn = untrained_ensemble(base, [3, 4])
    normal = untrained_ensemble({**base, "regime_settings": {"init": "normal", "bias": "normal"}}, [3, 4])
    zero = untrained_ensemble({**base, "regime_settings": {"init": "normal", "bias": "zero"}}, [3, 4])
    for (name, d), (_, n), (_, z) in zip(drawn.named_parameters(), normal.named_parameters(),
                                         zero.named_parameters(), strict=True):
        assert torch.equal(d, n), name
        if name.endswith("bias"):
            assert torch.equal(z, torch.zeros_like(z)) and bool((d != 0).all()), name
        else:
            assert torch.equal(z, d), name
