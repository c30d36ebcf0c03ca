"""Trained ensembles on disk: tensors in a ``.pt`` file, hyper-parameters beside it in JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from rnnmem.atomic import atomic_path, write_json
from rnnmem.cells import SequencePredictor
from rnnmem.errors import RnnmemError


class ModelFileError(RnnmemError, RuntimeError):
    """A model file is missing, unreadable or does not match its description."""


def save_ensemble(model: SequencePredictor, spec: dict[str, Any], weights_path: Path, spec_path: Path) -> None:
    """Write the weights first, then the JSON that describes them (what loaders look for)."""
    with atomic_path(weights_path) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    write_json(spec_path, spec)


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
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as error:  # torch raises many types for a corrupt or foreign file
        raise ModelFileError(f"{weights_path}: cannot load model weights ({error})") from error
    return model, spec
