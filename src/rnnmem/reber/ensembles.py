"""Trained ensembles on disk: tensors in a ``.pt`` file, hyper-parameters beside it in JSON.

The ``.pt`` file is written byte-deterministically and verified on load (zip CRC-32 of every member and the
archive's structure, then ``torch.load(weights_only=True)``; see :mod:`rnnmem.core.tensor_files`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from rnnmem.core import tensor_files
from rnnmem.core.atomic import write_json
from rnnmem.core.cells import SequencePredictor
from rnnmem.core.errors import RnnmemError


class ModelFileError(RnnmemError, RuntimeError):
    """A model file is missing, unreadable or does not match its description."""


def save_ensemble(model: SequencePredictor, spec: dict[str, Any], weights_path: Path, spec_path: Path) -> None:
    """Write the weights first, then the JSON that describes them (what loaders look for)."""
    tensor_files.save(weights_path, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    write_json(spec_path, spec)


def untrained_ensemble(spec: dict[str, Any], seeds: list[int]) -> SequencePredictor:
    """An ensemble of the architecture ``spec`` describes, one member per seed, initialised as its regime
    initialises (``regime_settings.init`` and ``bias``): the untrained twin of a trained ensemble (same seeds) or
    random networks to compare it with (other seeds). A spec without ``bias`` (the modern regime, or a seed-regime
    ensemble written before the key existed) had its biases drawn like the weights."""
    model = SequencePredictor(spec["model"], spec["input_size"], spec["hidden"], spec["output_size"],
                              members=len(seeds), activation=spec.get("activation", "logistic"))
    settings = spec["regime_settings"]
    model.reset_parameters(settings["init"], list(seeds), settings.get("bias") == "zero")
    return model


def load_ensemble(weights_path: Path, spec_path: Path) -> tuple[SequencePredictor, dict[str, Any]]:
    """Rebuild the ensemble that :func:`save_ensemble` wrote; errors name the file at fault."""
    for path in (weights_path, spec_path):
        if not Path(path).is_file():
            raise ModelFileError(f"{path}: model file is missing")
    try:
        spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
        model = SequencePredictor(
            spec["model"], spec["input_size"], spec["hidden"], spec["output_size"],
            members=len(spec["seeds"]), activation=spec.get("activation", "logistic"),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{spec_path}: not a valid model description ({error})") from error
    state = tensor_files.load(weights_path, ModelFileError, "model file")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{weights_path}: not the weights of an ensemble")
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{weights_path}: cannot load model weights ({error})") from error
    return model, spec
