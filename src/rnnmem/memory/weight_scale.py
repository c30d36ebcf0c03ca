"""The recurrent weight scale of the random networks (``memory.dlk.weight_scale``,
``memory.capacity.gru.weight_scale``), read in one place.

The report draws every weight N(0, 1); the config may multiply the recurrent matrix by a number, or by 1/√k
(``inv_sqrt_k``), which keeps the recurrent pre-activation's variance near 1 whatever the width k.
"""

from __future__ import annotations

import math

from rnnmem.core.errors import ConfigError

INV_SQRT_K = "inv_sqrt_k"


def scale_value(value: float | str, k: int, key: str) -> float:
    """The multiplier of a k-unit network's recurrent weights; anything but a number > 0 or ``inv_sqrt_k`` is a
    ConfigError naming ``key``."""
    if value == INV_SQRT_K:
        return 1.0 / math.sqrt(k)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{key}: {value!r} is neither a number > 0 nor {INV_SQRT_K!r}")
    return float(value)


def scale_text(value: float | str) -> str:
    """The multiplier as a figure label writes it: ``1/√k`` or the number."""
    return "1/√k" if value == INV_SQRT_K else f"{float(value):g}"
