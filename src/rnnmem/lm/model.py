"""Next-token language model of the chorale sopranos: input coding, one recurrent layer, linear read-out.

Input: a one-hot vector of the vocabulary (``embedding=None``, the report's setting, §3.2), or a learned
``nn.Embedding`` of ``embedding`` dimensions. Recurrence: the report's Vanilla (logistic or tanh), GRU (reset gate
before the product, Cho et al.) or LSTM cell of :mod:`rnnmem.core.cells`, one network (``members == 1``); when
:func:`rnnmem.core.cells.fused_recurrence` gives a torch module that computes the same function (tanh Vanilla, LSTM)
that module runs instead (``fused=True``). Dropout (``dropout > 0``, the modern regime) acts on the hidden states
before the read-out ``y_t = O h_t + b'``, whose outputs are the logits (modern regime) or the raw output vector
trained against one-hot targets (seed regime).

Parameters follow the report's convention (one bias per gate, :func:`rnnmem.core.sizes.parameter_count`); the fused
LSTM/RNN's second bias is zero and frozen, so :func:`lm_parameter_count` equals the trainable count.

``compiled`` (off by default; training turns it on for the modern regime on the CPU): :meth:`hidden_states` and
:meth:`forward` given the sequences' ``lengths`` run the recurrence by the compiled kernels of
:mod:`rnnmem.core.compiled_autograd` (the same function; states past a sequence's length are zero there).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnmem.core.cells import INITS, EnsembleRecurrence, fused_recurrence
from rnnmem.core.compiled_autograd import compiled_hidden_states
from rnnmem.core.sizes import matched_hidden, parameter_count

# The recurrent state between calls, torch's layout: (1, B, H), or (h, c) for the LSTM.
State = Tensor | tuple[Tensor, Tensor]


def lm_parameter_count(kind: str, vocab: int, hidden: int, embedding: int | None = None) -> int:
    """Trainable parameters: embedding table (if any) + recurrence + read-out, one bias per gate."""
    input_size = embedding or vocab
    table = vocab * embedding if embedding else 0
    return table + parameter_count(kind, input_size, hidden, vocab)


def lm_matched_hidden(kind: str, vocab: int, target: int, embedding: int | None = None) -> int:
    """Hidden size whose :func:`lm_parameter_count` is closest to ``target`` (ties go to the smaller network):
    :func:`rnnmem.core.sizes.matched_hidden` on the input the recurrence reads, less the embedding table."""
    table = vocab * embedding if embedding else 0
    return matched_hidden(kind, embedding or vocab, vocab, target - table)


def trainable_parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _fill(tensor: Tensor, init: str, bound: float, generator: torch.Generator) -> None:
    with torch.no_grad():
        if init == "normal":
            tensor.copy_(torch.randn(tensor.shape, generator=generator))
        else:
            tensor.copy_(torch.rand(tensor.shape, generator=generator) * 2 * bound - bound)


class TokenLM(nn.Module):
    """Token ids (B, T) -> outputs (B, T, V) of a one-layer recurrent language model.

    ``init``: ``normal`` — every weight N(0, 1) (the report's annexes, the seed regime); ``uniform`` — U(±1/√H) for
    the recurrence and read-out (torch's default), N(0, 1) for the embedding. ``zero_bias``: the recurrence's and
    read-out's biases 0, as the report's annex code initialises them; each bias is drawn after its weights, so the
    weights are the same either way. The weights depend only on ``seed`` (explicit generators; the global torch
    RNG is untouched), and equally on ``fused``.
    """

    def __init__(
        self,
        kind: str,
        vocab: int,
        hidden: int,
        embedding: int | None = None,
        dropout: float = 0.0,
        activation: str = "logistic",
        init: str = "normal",
        seed: int = 0,
        fused: bool = True,
        zero_bias: bool = False,
    ) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.kind, self.vocab_size, self.hidden = kind, vocab, hidden
        self.embedding_dim = embedding or None
        generators = [torch.Generator().manual_seed(3 * int(seed) + k) for k in range(3)]
        self.embedding: nn.Embedding | None = None
        if self.embedding_dim:
            self.embedding = nn.Embedding(vocab, self.embedding_dim)
            _fill(self.embedding.weight, "normal", 1.0, generators[2])
        cell = EnsembleRecurrence(kind, self.embedding_dim or vocab, hidden, members=1, activation=activation)
        cell.reset_parameters(init, [3 * int(seed)], zero_bias)
        fast = fused_recurrence(cell) if fused else None
        self.cell: EnsembleRecurrence | None = None if fast is not None else cell
        self.fused: nn.Module | None = fast
        self.dropout = nn.Dropout(dropout)
        self.readout = nn.Linear(hidden, vocab)
        bound = 1.0 / math.sqrt(hidden)
        _fill(self.readout.weight, init, bound, generators[1])
        if zero_bias:
            with torch.no_grad():
                self.readout.bias.zero_()
        else:
            _fill(self.readout.bias, init, bound, generators[1])
        self.compiled = False

    @property
    def is_fused(self) -> bool:
        return self.fused is not None

    def run(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Hidden states (B, T, H) of ``inputs`` started from ``state`` (h_{-1} = 0 and c_{-1} = 0 when None), and
        the state after the last step: (1, B, H), a pair (h, c) for the LSTM. Feeding that state back with the
        next tokens continues the sequence, which makes sampling linear in its length."""
        batch, steps = inputs.shape
        x = self.embedding(inputs) if self.embedding is not None else None
        if self.fused is not None:
            if x is None:
                x = nn.functional.one_hot(inputs, self.vocab_size).to(self.readout.weight.dtype)
            return self.fused(x, state)
        cell = self.cell
        assert cell is not None
        if x is None:  # one-hot input: x W + b is the row of W picked by the token
            projected = cell.weight_ih[0][inputs] + cell.bias[0]
        else:
            projected = cell.project(x.reshape(1, batch * steps, -1)).reshape(batch, steps, -1)
        projected = projected.transpose(0, 1).contiguous().unsqueeze(1)  # (T, 1, B, G*H): step t is a contiguous slice
        if state is None:
            state = cell.initial_state(batch, projected)
        outputs = []
        # unbind, not projected[t]: the backward of one unbind is one stack, while each indexed step's backward
        # would write a zero tensor of the whole sequence (quadratic in its length).
        for step_input in projected.unbind(0):
            state = cell.step(step_input, state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        return torch.stack(outputs, dim=2)[0], state

    def hidden_states(self, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """h_t of every step, (B, T, H), with h_{-1} = 0 (and c_{-1} = 0). ``lengths`` (B,): the steps of each
        sequence (the rest is padding), which lets a ``compiled`` model on the CPU skip the padding."""
        if lengths is not None and self.compiled and inputs.device.type == "cpu":
            return self._compiled_hidden_states(inputs, lengths)
        return self.run(inputs)[0]

    def _compiled_hidden_states(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        x = self.embedding(inputs) if self.embedding is not None else None
        if self.cell is not None:
            cell = self.cell
            kind, activation, w_hh = cell.kind, cell.activation, cell.weight_hh[0]
            if x is None:
                projected = cell.weight_ih[0][inputs] + cell.bias[0]
            else:
                projected = cell.project(x.reshape(1, -1, x.shape[-1]))
        else:  # torch's fused LSTM or tanh RNN: (out, in) matrices, a second bias that is zero and frozen
            fused = self.fused
            assert fused is not None
            kind, activation = ("lstm", "logistic") if isinstance(fused, nn.LSTM) else ("vanilla", "tanh")
            w_hh = fused.weight_hh_l0.T
            bias = fused.bias_ih_l0 + fused.bias_hh_l0
            if x is None:
                projected = fused.weight_ih_l0.T[inputs] + bias
            else:
                projected = torch.addmm(bias, x.reshape(-1, x.shape[-1]), fused.weight_ih_l0.T)
        projected = projected.reshape(*inputs.shape, -1)
        return compiled_hidden_states(projected, w_hh, lengths, kind, activation)

    def forward(self, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.readout(self.dropout(self.hidden_states(inputs, lengths)))

    def outputs_at(self, inputs: Tensor, lengths: Tensor, steps: Tensor) -> Tensor:
        """Outputs (N, V) of the N steps where ``steps`` (B, T) is True, in row-major order: a batch's padded steps
        (about 45 % of a batch of 16 chorales) cost no dropout and no read-out."""
        return self.readout(self.dropout(self.hidden_states(inputs, lengths)[steps]))

    def continue_logits(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Outputs (B, T, V) of ``inputs`` read from ``state`` (see :meth:`run`), and the state after them."""
        hidden, final = self.run(inputs, state)
        return self.readout(self.dropout(hidden)), final
