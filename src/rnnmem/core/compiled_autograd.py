"""The compiled recurrence (:mod:`rnnmem.core.compiled_recurrence`) as a torch autograd function, so a model's
input projection, dropout, read-out, loss and optimizer stay torch's while the T small steps run compiled.

CPU tensors only (the kernels read and write the tensors' memory through numpy); on CUDA the models keep torch's
own recurrence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnmem.core import compiled_recurrence


class CompiledRecurrence(torch.autograd.Function):
    """hs (B, T, H) = the recurrence of ``kind`` over ``projected`` (B, T, G·H) = x W + b with U = ``w_hh`` (H, G·H),
    each sequence run for its ``lengths`` steps (states zero past them)."""

    @staticmethod
    def forward(ctx: Any, projected: Tensor, w_hh: Tensor, lengths: Tensor, kind: str,  # type: ignore[override]
                activation: str) -> Tensor:
        lengths_np = lengths.detach().to(torch.int64).contiguous().numpy()
        hs, cs, gates, rh = compiled_recurrence.forward(
            kind, activation, projected.detach().contiguous().numpy(), w_hh.detach().contiguous().numpy(), lengths_np)
        ctx.kind, ctx.activation = kind, activation
        ctx.arrays = (w_hh.detach().contiguous().numpy().copy(), lengths_np, hs, cs, gates, rh)
        return torch.from_numpy(hs.copy())

    @staticmethod
    def backward(ctx: Any, grad_hs: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        w_hh, lengths, hs, cs, gates, rh = ctx.arrays
        grad_projected = compiled_recurrence.backward(ctx.kind, ctx.activation, w_hh, lengths, hs, cs, gates,
                                                      grad_hs.detach().contiguous().numpy())
        grad_p = torch.from_numpy(grad_projected)
        grad_w_hh = None
        if ctx.needs_input_grad[1]:
            hidden, width = w_hh.shape
            previous = np.zeros_like(hs)
            previous[:, 1:] = hs[:, :-1]  # h_{t-1}; zero at t = 0 (and past the lengths, where ∂p is zero)
            flat_grad = grad_p.reshape(-1, width)
            if ctx.kind == "gru":  # U_n multiplies r ⊙ h_{t-1}
                grad_w_hh = torch.cat([
                    torch.from_numpy(previous).reshape(-1, hidden).T @ flat_grad[:, : 2 * hidden],
                    torch.from_numpy(rh).reshape(-1, hidden).T @ flat_grad[:, 2 * hidden:],
                ], dim=1)
            else:
                grad_w_hh = torch.from_numpy(previous).reshape(-1, hidden).T @ flat_grad
        ctx.arrays = None
        return grad_p, grad_w_hh, None, None, None


def compiled_hidden_states(projected: Tensor, w_hh: Tensor, lengths: Tensor, kind: str, activation: str) -> Tensor:
    """hs (B, T, H) of the compiled recurrence, differentiable in ``projected`` and ``w_hh``."""
    return CompiledRecurrence.apply(projected, w_hh, lengths, kind, activation)
