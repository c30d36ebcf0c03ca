"""Training settings of the tests: small, complete blocks (the package has no defaults; the config sets each knob)."""

from __future__ import annotations

from typing import Any

from rnnmem.lm.settings import RegimeSettings, regime_settings
from rnnmem.reber.training import Regime, make_regime

LM_BLOCKS: dict[str, dict[str, Any]] = {
    "seed": {"lr": 1e-3, "lr_divisor": 1.5, "tolerance": 0.0, "checkpoint_every": 5, "activation": "logistic",
             "init": "normal", "bias": "zero"},
    "modern": {"embedding": 6, "dropout": 0.2, "lr": 0.01, "batch_size": 4, "clip_norm": 1.0, "patience": 50,
               "lr_patience": 2, "lr_factor": 0.5, "min_delta": 0.0, "weight_decay": 0.0, "checkpoint_every": 2,
               "activation": "logistic", "init": "uniform"},
}
REBER_BLOCKS: dict[str, dict[str, Any]] = {
    "seed": {"lr": 0.01, "lr_divisor": 1.5, "tolerance": 1e-5, "max_epochs": 1000, "init": "normal", "bias": "zero"},
    "modern": {"lr": 0.01, "batch_size": 16, "clip_norm": 1.0, "init": "uniform"},
}


def lm_settings(regime: str, max_epochs: int, **overrides: Any) -> RegimeSettings:
    """The test block of a chorale-model regime, ``max_epochs`` and ``overrides`` applied."""
    return regime_settings(regime, {**LM_BLOCKS[regime], "max_epochs": max_epochs, **overrides})


def reber_regime(name: str, **overrides: Any) -> Regime:
    """The test block of a Reber regime with ``overrides`` applied."""
    return make_regime(name, {**REBER_BLOCKS[name], **overrides})
