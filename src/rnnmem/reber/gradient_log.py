"""Histograms of |∂E/∂θ| logged while a Reber ensemble trains (the data of report figures 12 and 13).

The training job (:func:`rnnmem.reber.jobs.reber_train`) owns this format; :mod:`rnnmem.memory.gradients`
summarises it. |gradient| values are counted in fixed log-spaced bins (every step early on, then at fixed
intervals), which keeps the logs small and makes the fractions below 1e-6 and above 1e2 exact (both are bin edges).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from torch import Tensor

from rnnmem.core.cells import SequencePredictor

LOG10_LOW, LOG10_HIGH, BINS_PER_DECADE = -12, 4, 10
EDGES = np.logspace(LOG10_LOW, LOG10_HIGH, (LOG10_HIGH - LOG10_LOW) * BINS_PER_DECADE + 1)

# Parameter names of SequencePredictor -> the report's names for them.
GROUPS = {
    "recurrence.weight_ih": "input weights W",
    "recurrence.weight_hh": "recurrent weights W_h",
    "recurrence.bias": "biases b",
    "readout.weight": "output weights O",
    "readout.bias": "output biases b'",
}


# Columns of a training job's histogram log (one file per (experiment, regime)).
HISTOGRAM_COLUMNS = ["experiment", "model", "regime", "phase", "group", "steps", "bin_low", "bin_high", "count"]


@dataclass
class GradientRecorder:
    """A training step hook: histograms of |gradient| per parameter group and phase.

    Phase ``early`` is every step until ``dense_strings`` strings were presented; phase ``late`` is one step
    every ``every_strings`` strings after that. Only members still training are counted.
    """

    dense_strings: int
    every_strings: int
    counts: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    recorded_steps: dict[str, int] = field(default_factory=lambda: {"early": 0, "late": 0})
    _next_late: int = -1

    def __call__(self, model: SequencePredictor, presented: int, active: Tensor) -> None:
        if presented <= self.dense_strings:
            phase = "early"
        else:
            if self._next_late < 0:
                self._next_late = self.dense_strings + self.every_strings
            if presented < self._next_late:
                return
            self._next_late += self.every_strings
            phase = "late"
        if not bool(active.any()):
            return
        self.recorded_steps[phase] += 1
        for name, parameter in model.named_parameters():
            values = parameter.grad[active].detach().abs().flatten().double().cpu().numpy()
            histogram = _histogram(values)
            key = (phase, GROUPS[name])
            self.counts[key] = self.counts.get(key, 0) + histogram

    def table(self) -> pd.DataFrame:
        """Long format: phase, group, bin_low, bin_high, count (bin_low 0 holds |g| below 1e-12, zeros too)."""
        lows = np.concatenate([[0.0], EDGES])
        highs = np.concatenate([EDGES, [np.inf]])
        frames = [
            pd.DataFrame({"phase": phase, "group": group, "steps": self.recorded_steps[phase],
                          "bin_low": lows, "bin_high": highs, "count": counts})
            for (phase, group), counts in sorted(self.counts.items())
        ]
        if not frames:
            return pd.DataFrame(columns=["phase", "group", "steps", "bin_low", "bin_high", "count"])
        return pd.concat(frames, ignore_index=True)


def _histogram(values: np.ndarray) -> np.ndarray:
    """Counts in [0, 1e-12), the log-spaced bins, and [1e4, ∞)."""
    inner, _ = np.histogram(values, bins=EDGES)
    below = np.count_nonzero(values < EDGES[0])
    above = np.count_nonzero(values >= EDGES[-1])
    inner[-1] -= np.count_nonzero(values == EDGES[-1])  # numpy's last bin is closed: 1e4 belongs to `above` only
    return np.concatenate([[below], inner, [above]]).astype(np.int64)
