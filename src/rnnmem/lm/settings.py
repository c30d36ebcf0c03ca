"""The chorale models' training settings, typed once (torch-free).

A regime block of the config (``lm.regimes.seed``, ``lm.regimes.modern``) becomes one frozen dataclass when a job
starts (:func:`regime_settings`); everything below the job reads its fields. There are no defaults here: every
knob is a config key (``config.yaml`` lists them all with a comment; the schema fills the optional ones of older
configs with the same values), so the config is the one place a value is set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from rnnmem.core.errors import ConfigError

REGIMES = ("seed", "modern")
BIASES = ("zero", "normal")  # the seed regime's initial biases: 0 (the report's annex code) or N(0, 1)
# Keys that decide when training stops or how often it saves, not what a given step computes: no part of a run's
# identity (see rnnmem.lm.train), so that a finished run asked for more epochs goes on from its checkpoint.
NOT_IDENTITY = ("max_epochs", "checkpoint_every")
# Keys of a regime block that choose the training data, not how a step computes: checked here and dropped from the
# settings (the data digest of a run's identity covers them). transpose: semitone shifts of the training copies
# (rnnmem.chorales.dataset.write_augmented), the modern regime only; the seed regime keeps the report's data.
DATA_KEYS = {"seed": (), "modern": ("transpose",)}


@dataclass(frozen=True)
class SeedSettings:
    """The report's annex A.3 loop: one-hot input, squared error, plain SGD, one chorale per step."""

    regime: ClassVar[str] = "seed"
    lr: float
    lr_divisor: float  # the rate is divided by it when the epoch's mean error rises
    tolerance: float  # stop when the epoch's mean error changes by less
    max_epochs: int
    checkpoint_every: int  # optimizer steps between checkpoints
    activation: str  # of the Vanilla cell: logistic (the report's σ) or tanh
    init: str  # normal: every weight N(0, 1), as the report's annexes
    bias: str  # zero: biases 0, as the report's annex code; normal: drawn like the weights

    @property
    def zero_bias(self) -> bool:
        """Whether the initial biases are zero rather than drawn (``bias: zero``)."""
        return self.bias == "zero"

    @property
    def embedding(self) -> None:
        """No embedding: the seed regime reads one-hot tokens."""
        return None

    @property
    def batch_size(self) -> int:
        return 1


@dataclass(frozen=True)
class ModernSettings:
    """Embedding, cross-entropy, Adam, dropout, clipping, minibatches, ReduceLROnPlateau, early stopping."""

    regime: ClassVar[str] = "modern"
    embedding: int
    dropout: float
    lr: float
    batch_size: int
    clip_norm: float
    patience: int  # epochs without a better validation NLL before stopping
    lr_patience: int  # epochs without one before the rate is multiplied by lr_factor
    lr_factor: float
    min_delta: float  # an improvement of the validation NLL smaller than this does not count
    weight_decay: float  # Adam's L2 penalty
    max_epochs: int
    checkpoint_every: int
    activation: str
    init: str  # uniform: U(±1/√H), PyTorch's recurrent default
    zero_bias: ClassVar[bool] = False  # biases drawn like the weights, as torch initialises them


RegimeSettings = SeedSettings | ModernSettings
_CLASSES: dict[str, type[SeedSettings] | type[ModernSettings]] = {"seed": SeedSettings, "modern": ModernSettings}


def regime_settings(regime: str, block: Mapping[str, Any], where: str | None = None) -> RegimeSettings:
    """The settings of ``regime`` from its config block; a missing, unknown or mistyped key, or a ``bias`` other
    than zero or normal, is a ConfigError naming ``where`` (``lm.regimes.<regime>`` by default) and the key."""
    where = where or f"lm.regimes.{regime}"
    if regime not in _CLASSES:
        raise ConfigError(f"{where}: unknown regime {regime!r}; expected one of {REGIMES}")
    cls = _CLASSES[regime]
    if DATA_KEYS[regime]:
        regime_shifts(regime, block, where)
        block = {k: v for k, v in block.items() if k not in DATA_KEYS[regime]}
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    unknown, missing = sorted(set(block) - set(fields)), sorted(set(fields) - set(block))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    values = {}
    for name, kind in fields.items():
        value = block[name]
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{where}.{name}: {value!r} is not an integer")
        if kind == "float" and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{where}.{name}: {value!r} is not a number")
        if kind == "str" and not isinstance(value, str):
            raise ConfigError(f"{where}.{name}: {value!r} is not a string")
        if name == "bias" and value not in BIASES:
            raise ConfigError(f"{where}.bias: expected zero or normal, got {value!r}")
        values[name] = float(value) if kind == "float" else value
    return cls(**values)


def identity_settings(settings: RegimeSettings) -> dict[str, Any]:
    """The settings a run's result depends on (see :data:`NOT_IDENTITY`), as a plain dict."""
    return {k: v for k, v in dataclasses.asdict(settings).items() if k not in NOT_IDENTITY}


def regime_shifts(regime: str, block: Mapping[str, Any], where: str | None = None) -> list[int]:
    """The sorted ``transpose`` shifts of a regime block (``[]``: no augmentation, or a regime without the key); a
    ConfigError naming ``<where>.transpose`` unless they are distinct non-zero integers between -11 and 11."""
    where = f"{where or f'lm.regimes.{regime}'}.transpose"
    shifts = block.get("transpose", []) if "transpose" in DATA_KEYS.get(regime, ()) else []
    if not isinstance(shifts, list | tuple) or any(
            isinstance(s, bool) or not isinstance(s, int) or not 0 < abs(s) < 12 for s in shifts):
        raise ConfigError(f"{where}: {shifts!r} must be a list of non-zero integers between -11 and 11 (semitones)")
    if len(set(shifts)) != len(shifts):
        raise ConfigError(f"{where}: {list(shifts)} lists a shift twice")
    return sorted(shifts)
