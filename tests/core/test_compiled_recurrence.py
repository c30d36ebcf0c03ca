"""The compiled recurrence from projected inputs (rnnmem.core.compiled_recurrence, rnnmem.core.compiled_autograd)
against autograd through the report's cells (rnnmem.core.cells) and torch's fused LSTM: states and gradients to
1e-10 in float64, padding skipped, and the chorale model's compiled path equal to its torch path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnmem.core import compiled_recurrence
from rnnmem.core.cells import GATES, EnsembleRecurrence
from rnnmem.core.compiled_autograd import compiled_hidden_states
from rnnmem.lm.model import TokenLM

CELLS = [("vanilla", "logistic"), ("vanilla", "tanh"), ("gru", "logistic"), ("lstm", "logistic")]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here on one torch thread (conftest.one_torch_thread)."""


def _reference(kind, activation, projected, w_hh, lengths):
    """hs by the cells' own step, autograd's graph; zero past each length (the recurrence is causal)."""
    hidden = w_hh.shape[0]
    cell = EnsembleRecurrence(kind, 1, hidden, members=1, activation=activation)
    del cell.weight_hh
    cell.weight_hh = w_hh[None]  # a view of w_hh: the gradient reaches w_hh
    state = cell.initial_state(projected.shape[0], projected)
    outputs = []
    for t in range(projected.shape[1]):
        state = cell.step(projected[:, t][None], state)
        outputs.append(state[0] if kind == "lstm" else state)
    hs = torch.stack(outputs, dim=2)[0]
    mask = (torch.arange(projected.shape[1])[None, :] < lengths[:, None]).to(hs.dtype)
    return hs * mask[..., None]


def _inputs(kind, dtype, hidden=6, batch=4, steps=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    width = GATES[kind] * hidden
    projected = torch.randn(batch, steps, width, generator=gen, dtype=dtype)
    w_hh = (torch.randn(hidden, width, generator=gen, dtype=dtype) * 0.7)
    lengths = torch.tensor([steps, 5, 1, 0][:batch], dtype=torch.long)
    weights = torch.randn(batch, steps, hidden, generator=gen, dtype=dtype)  # a loss Σ weights ⊙ hs
    return projected, w_hh, lengths, weights


def _states_and_grads(function, kind, activation, dtype):
    projected, w_hh, lengths, weights = _inputs(kind, dtype)
    projected.requires_grad_(True)
    w_hh.requires_grad_(True)
    hs = function(kind, activation, projected, w_hh, lengths)
    (hs * weights).sum().backward()
    return hs.detach(), projected.grad, w_hh.grad


def _compiled(kind, activation, projected, w_hh, lengths):
    return compiled_hidden_states(projected, w_hh, lengths, kind, activation)


@pytest.mark.parametrize(("kind", "activation"), CELLS)
def test_states_and_gradients_equal_autograd_in_float64(kind, activation):
    expected = _states_and_grads(_reference, kind, activation, torch.float64)
    actual = _states_and_grads(_compiled, kind, activation, torch.float64)
    for name, a, e in zip(("hs", "d projected", "d U"), actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize(("kind", "activation"), CELLS)
def test_float32_follows_autograd_to_float32_rounding(kind, activation):
    expected = _states_and_grads(_reference, kind, activation, torch.float32)
    actual = _states_and_grads(_compiled, kind, activation, torch.float32)
    assert all(a.dtype == torch.float32 for a in actual)
    for name, a, e in zip(("hs", "d projected", "d U"), actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5, msg=name)


def test_padding_is_not_computed_and_gets_no_gradient():
    projected, w_hh, lengths, _ = _inputs("gru", torch.float64)
    projected.requires_grad_(True)
    hs = compiled_hidden_states(projected, w_hh, lengths, "gru", "logistic")
    hs.sum().backward()
    for b, length in enumerate(lengths.tolist()):
        assert torch.all(hs[b, length:] == 0)
        assert torch.all(projected.grad[b, length:] == 0)
        assert length == 0 or torch.any(projected.grad[b, :length] != 0)


def test_the_kernels_refuse_mismatched_arrays():
    projected, w_hh, lengths, _ = (t.numpy() for t in _inputs("vanilla", torch.float64))
    with pytest.raises(TypeError, match="float32 or float64"):
        compiled_recurrence.forward("vanilla", "logistic", projected.astype(np.float32), w_hh, lengths)
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 9\]"):
        compiled_recurrence.forward("vanilla", "logistic", projected, w_hh, lengths + 5)
    with pytest.raises(ValueError, match="width"):
        compiled_recurrence.forward("vanilla", "logistic", projected[..., :-1].copy(), w_hh, lengths)


@pytest.mark.parametrize(("kind", "activation", "embedding"), [
    ("vanilla", "logistic", None), ("vanilla", "logistic", 5), ("vanilla", "tanh", 5), ("gru", "logistic", None),
    ("gru", "logistic", 5), ("lstm", "logistic", None), ("lstm", "logistic", 5)])
def test_chorale_model_compiled_path_equals_its_torch_path(kind, activation, embedding):
    """TokenLM with ``compiled`` on: the same outputs on every real step and the same gradient of every parameter
    (the fused LSTM/RNN's weights are torch's (out, in) matrices: transposed on the way in and back)."""
    vocab, hidden = 11, 7
    inputs = torch.tensor([[1, 5, 6, 7, 3, 8, 2], [1, 9, 10, 2, 0, 0, 0], [1, 4, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([7, 4, 2])
    targets = torch.randint(0, vocab, inputs.shape, generator=torch.Generator().manual_seed(1))
    mask = torch.arange(inputs.shape[1])[None, :] < lengths[:, None]
    results = []
    for compiled in (False, True):
        model = TokenLM(kind, vocab, hidden, embedding=embedding, activation=activation, seed=3).double()
        model.compiled = compiled
        outputs = model(inputs, lengths)
        loss = torch.nn.functional.cross_entropy(outputs[mask], targets[mask], reduction="sum")
        loss.backward()
        results.append((outputs[mask].detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}))
    (torch_outputs, torch_grads), (fast_outputs, fast_grads) = results
    torch.testing.assert_close(fast_outputs, torch_outputs, rtol=1e-10, atol=1e-10)
    assert fast_grads.keys() == torch_grads.keys()
    for name, grad in torch_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-10, atol=1e-10, msg=name)
