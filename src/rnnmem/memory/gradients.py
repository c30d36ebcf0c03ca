"""Gradient statistics of report §2.1 (figures 12, 13) and the gradient-versus-lag test.

The report compared histograms of |∂E/∂θ| of the Vanilla and GRU networks and found them alike, so it argued
that the Vanilla's failure is a memory problem, not a vanishing-gradient one. The histograms are logged while the
networks train (:mod:`rnnmem.reber.gradient_log`, which owns their format); this module summarises them. The
fractions below 1e-6 and above 1e2 are exact because both are bin edges of that log.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from rnnmem.core.cells import SequencePredictor

VANISHING, EXPLODING = 1e-6, 1e2  # both are edges of rnnmem.reber.gradient_log.EDGES


def histogram_quantile(bin_low: np.ndarray, bin_high: np.ndarray, counts: np.ndarray, q: float) -> float:
    """The q-quantile, located to its bin and placed at the bin's geometric centre (10 bins per decade)."""
    cumulative = np.cumsum(counts)
    index = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    low, high = bin_low[index], bin_high[index]
    if low == 0.0:
        return 0.0
    return float(np.sqrt(low * high)) if np.isfinite(high) else float(low)


def summarize_histograms(histograms: pd.DataFrame) -> pd.DataFrame:
    """Per (model, regime, phase, group): approximate quantiles and the exact vanishing/exploding fractions."""
    rows = []
    keys = ["experiment", "model", "regime", "phase", "group"]
    for key, group in histograms.groupby(keys, sort=False):
        counts = group["count"].to_numpy()
        low, high = group["bin_low"].to_numpy(), group["bin_high"].to_numpy()
        total = counts.sum()
        row = dict(zip(keys, key, strict=True))
        row.update({
            "steps": int(group["steps"].iloc[0]),
            "values": int(total),
            **{f"q{int(q * 100):02d}": histogram_quantile(low, high, counts, q) for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
            "frac_below_1e-6": float(counts[high <= VANISHING].sum() / total),
            "frac_above_1e2": float(counts[low >= EXPLODING].sum() / total),
        })
        rows.append(row)
    return pd.DataFrame(rows)


def gradient_norms_by_lag(model: SequencePredictor, x: Tensor, targets: Tensor, step: Tensor, loss: str) -> Tensor:
    """‖∂E_t/∂h_s‖ for every member, string and s ≤ t, where E_t is the loss at step ``step[m, b]``.

    Returns (M, B, T) norms; entries with s > t are zero. A zero perturbation added to every h_s carries the
    total derivative through all later steps (see EnsembleRecurrence.forward).
    """
    members, batch, steps, _ = x.shape
    delta = torch.zeros(members, batch, steps, model.recurrence.hidden, dtype=x.dtype, requires_grad=True)
    hidden, _ = model.recurrence(x, perturbation=delta)
    outputs = model.readout(hidden)
    at_t = outputs.gather(2, step[..., None, None].expand(-1, -1, 1, outputs.shape[-1])).squeeze(2)
    target = targets.gather(2, step.unsqueeze(-1)).squeeze(-1)
    if loss == "squared_error":
        onehot = torch.nn.functional.one_hot(target, outputs.shape[-1]).to(outputs.dtype)
        per_string = ((at_t - onehot) ** 2).sum(-1)
    elif loss == "cross_entropy":
        per_string = torch.nn.functional.cross_entropy(at_t.reshape(-1, at_t.shape[-1]), target.reshape(-1),
                                                       reduction="none")
    else:
        raise ValueError(f"unknown loss {loss!r}")
    per_string.sum().backward()
    return delta.grad.norm(dim=-1)


def by_lag(norms: Tensor, step: Tensor) -> pd.DataFrame:
    """Group ‖∂E_t/∂h_{t−l}‖ by the lag l = t − s: median, quartiles, mean and count per lag."""
    members, batch, steps = norms.shape
    s = torch.arange(steps).expand(members, batch, steps)
    lag = step.unsqueeze(-1) - s
    keep = lag >= 0
    frame = pd.DataFrame({"lag": lag[keep].numpy(), "norm": norms[keep].detach().numpy()})
    grouped = frame.groupby("lag")["norm"]
    return pd.DataFrame({
        "lag": grouped.median().index,
        "median": grouped.median().to_numpy(),
        "q25": grouped.quantile(0.25).to_numpy(),
        "q75": grouped.quantile(0.75).to_numpy(),
        "mean": grouped.mean().to_numpy(),
        "n": grouped.size().to_numpy(),
    })
