"""The report's recurrent cells (§1.2), batched over an ensemble of independent networks.

Every parameter carries a leading *member* dimension, so one matrix product trains many seeds at once:
member m's output and gradient depend only on member m's weights. With ``members == 1`` and a function that
torch implements natively (tanh Vanilla, LSTM) :func:`fused_recurrence` returns torch's fused module instead.

Equations (x_t the input row, h_{t-1} the previous state, products written row-vector style):
  Vanilla  h_t = σ(x_t W + h_{t-1} W_h + b), σ logistic (the report's choice) or tanh.
  GRU      z = σ(x W_z + h U_z + b_z), r = σ(x W_r + h U_r + b_r), n = tanh(x W_n + (r ⊙ h) U_n + b_n),
           h_t = z ⊙ h_{t-1} + (1 − z) ⊙ n   (Cho et al. 2014: the reset gate acts before the product;
           torch's nn.GRU applies it after, so it computes another function).
  LSTM     i, f, o = σ(·), g = tanh(·), c_t = f ⊙ c_{t-1} + i ⊙ g, h_t = o ⊙ tanh(c_t), one bias per gate.

Parameter counts (plain arithmetic, torch-free) are in :mod:`rnnmem.core.sizes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rnnmem.core.sizes import GATES, MODEL_KINDS

ACTIVATIONS = ("logistic", "tanh")
INITS = ("normal", "uniform")


def _member_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(seed)) for seed in seeds]


def _fill_member_parameters(
    parameters: Sequence[nn.Parameter], init: str, fan_in: int, seeds: Sequence[int], zero_bias: bool
) -> None:
    """Member m's parameters, in order, from the generator of ``seeds[m]``; the last one is the bias."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        for m, gen in enumerate(_member_generators(seeds)):
            for p in parameters[:-1] if zero_bias else parameters:
                if init == "normal":
                    p[m].copy_(torch.randn(p.shape[1:], generator=gen))
                else:
                    p[m].copy_(torch.rand(p.shape[1:], generator=gen) * 2 * bound - bound)
            if zero_bias:
                parameters[-1][m].zero_()


class EnsembleRecurrence(nn.Module):
    """One recurrent layer for ``members`` independent networks; input (M, B, T, I), output (M, B, T, H)."""

    def __init__(
        self, kind: str, input_size: int, hidden: int, members: int = 1, activation: str = "logistic"
    ) -> None:
        super().__init__()
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
        self.kind, self.input_size, self.hidden, self.members = kind, input_size, hidden, members
        self.activation = activation
        width = GATES[kind] * hidden
        self.weight_ih = nn.Parameter(torch.empty(members, input_size, width))
        self.weight_hh = nn.Parameter(torch.empty(members, hidden, width))
        self.bias = nn.Parameter(torch.empty(members, 1, width))

    def reset_parameters(self, init: str, seeds: Sequence[int], zero_bias: bool = False) -> None:
        """``normal``: N(0, 1) as in the report's annexes; ``uniform``: U(±1/√H), torch's default.

        ``zero_bias``: biases 0, as the report's annex code initialises them (equation (1) has none). The bias is
        drawn last, so the weights are the same either way.
        """
        _fill_member_parameters((self.weight_ih, self.weight_hh, self.bias), init, self.hidden, seeds, zero_bias)

    def initial_state(self, batch: int, like: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """h_{-1} = 0 (and c_{-1} = 0), on the device and in the dtype of ``like``."""
        zeros = torch.zeros(self.members, batch, self.hidden, device=like.device, dtype=like.dtype)
        return (zeros, zeros.clone()) if self.kind == "lstm" else zeros

    def project(self, x: Tensor) -> Tensor:
        """The input part x W + b of every gate: (M, N, I) -> (M, N, G*H)."""
        return torch.baddbmm(self.bias, x, self.weight_ih)

    def step(self, projected: Tensor, state: Tensor | tuple[Tensor, Tensor]) -> Tensor | tuple[Tensor, Tensor]:
        """One time step from the projected input (M, B, G*H) and the previous state."""
        if self.kind == "vanilla":
            return self._vanilla_step(projected, state)
        return self._gru_step(projected, state) if self.kind == "gru" else self._lstm_step(projected, state)

    def forward(
        self,
        x: Tensor,
        state: Tensor | tuple[Tensor, Tensor] | None = None,
        perturbation: Tensor | None = None,
    ) -> tuple[Tensor, object]:
        """Hidden states (M, B, T, H) of inputs (M, B, T, I), and the final state.

        ``perturbation`` (M, B, T, H), if given, is added to h_t right after step t; its gradient is then
        ∂E/∂h_t through every later step (what the gradient-versus-lag analysis measures).
        """
        members, batch, steps, _ = x.shape
        if state is None:
            state = self.initial_state(batch, x)
        # Input projections of every step at once: (M, B*T, I) @ (M, I, G*H).
        projected = self.project(x.reshape(members, batch * steps, -1)).reshape(members, batch, steps, -1)
        outputs = []
        # unbind, not projected[:, :, t]: one stack in the backward instead of a zero tensor of the whole sequence
        # per step (quadratic in its length).
        deltas = perturbation.unbind(2) if perturbation is not None else None
        for t, step_input in enumerate(projected.unbind(2)):
            state = self.step(step_input, state)
            if deltas is not None:
                delta = deltas[t]
                state = (state[0] + delta, state[1]) if self.kind == "lstm" else state + delta
            outputs.append(state[0] if self.kind == "lstm" else state)
        return torch.stack(outputs, dim=2), state

    def _vanilla_step(self, projected: Tensor, h: Tensor) -> Tensor:
        pre = torch.baddbmm(projected, h, self.weight_hh)
        return torch.sigmoid(pre) if self.activation == "logistic" else torch.tanh(pre)

    def _gru_step(self, projected: Tensor, h: Tensor) -> Tensor:
        H = self.hidden
        update_reset = torch.sigmoid(torch.baddbmm(projected[..., : 2 * H], h, self.weight_hh[..., : 2 * H]))
        z, r = update_reset[..., :H], update_reset[..., H:]
        candidate = torch.tanh(torch.baddbmm(projected[..., 2 * H :], r * h, self.weight_hh[..., 2 * H :]))
        return torch.lerp(candidate, h, z)  # z ⊙ h + (1 − z) ⊙ candidate

    def _lstm_step(self, projected: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        H = self.hidden
        gates = torch.baddbmm(projected, h, self.weight_hh)
        i, f = torch.sigmoid(gates[..., : 2 * H]).chunk(2, dim=-1)
        g = torch.tanh(gates[..., 2 * H : 3 * H])
        o = torch.sigmoid(gates[..., 3 * H :])
        c = f * c + i * g
        return o * torch.tanh(c), c


class EnsembleLinear(nn.Module):
    """The read-out y_t = O h_t + b' for every member: (M, B, T, H) -> (M, B, T, O)."""

    def __init__(self, hidden: int, output_size: int, members: int = 1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, hidden, output_size))
        self.bias = nn.Parameter(torch.empty(members, 1, output_size))

    def reset_parameters(self, init: str, seeds: Sequence[int], zero_bias: bool = False) -> None:
        """As :meth:`EnsembleRecurrence.reset_parameters`, the bound from the input (hidden) size."""
        _fill_member_parameters((self.weight, self.bias), init, self.weight.shape[1], seeds, zero_bias)

    def forward(self, h: Tensor) -> Tensor:
        members, batch, steps, hidden = h.shape
        out = torch.baddbmm(self.bias, h.reshape(members, batch * steps, hidden), self.weight)
        return out.reshape(members, batch, steps, -1)


class SequencePredictor(nn.Module):
    """Recurrence + linear read-out, batched over members: what every Reber experiment trains."""

    def __init__(
        self,
        kind: str,
        input_size: int,
        hidden: int,
        output_size: int,
        members: int = 1,
        activation: str = "logistic",
    ) -> None:
        super().__init__()
        self.recurrence = EnsembleRecurrence(kind, input_size, hidden, members, activation)
        self.readout = EnsembleLinear(hidden, output_size, members)

    @property
    def members(self) -> int:
        return self.recurrence.members

    def reset_parameters(self, init: str, seeds: Sequence[int], zero_bias: bool = False) -> None:
        """Member m's weights depend on ``seeds[m]`` alone, so a seed gives the same net in any ensemble."""
        if len(seeds) != self.members:
            raise ValueError(f"{len(seeds)} seeds for {self.members} members")
        self.recurrence.reset_parameters(init, [s * 2 for s in seeds], zero_bias)
        self.readout.reset_parameters(init, [s * 2 + 1 for s in seeds], zero_bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (outputs (M, B, T, O), hidden states (M, B, T, H))."""
        hidden, _ = self.recurrence(x)
        return self.readout(hidden), hidden


def fused_recurrence(recurrence: EnsembleRecurrence) -> nn.Module | None:
    """torch's fused module computing the same function as a one-member recurrence, or None if none does.

    The returned module shares no storage with ``recurrence``: its weights are copies (batch_first layout).
    LSTM's second bias (``bias_hh``) is zero and frozen, so the function and trainable count match the report.
    """
    if recurrence.members != 1 or recurrence.kind == "gru":
        return None
    if recurrence.kind == "vanilla" and recurrence.activation != "tanh":
        return None
    cls = nn.RNN if recurrence.kind == "vanilla" else nn.LSTM
    kwargs = {"nonlinearity": "tanh"} if recurrence.kind == "vanilla" else {}
    module = cls(recurrence.input_size, recurrence.hidden, batch_first=True, **kwargs)
    with torch.no_grad():
        module.weight_ih_l0.copy_(recurrence.weight_ih[0].T)
        module.weight_hh_l0.copy_(recurrence.weight_hh[0].T)
        module.bias_ih_l0.copy_(recurrence.bias[0, 0])
        module.bias_hh_l0.zero_()
    module.bias_hh_l0.requires_grad_(False)
    return module
