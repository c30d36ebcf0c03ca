"""The numba kernels of :mod:`rnnmem.core.compiled` against torch autograd and ``evaluate`` (exact semantics)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rnnmem.core import compiled
from rnnmem.core.cells import SequencePredictor
from rnnmem.reber.experiments import evaluate, member_strings
from rnnmem.reber.grammars import _REBER_EDGES, GRAMMARS
from rnnmem.reber.sequences import PAD, EncodedStrings, encode
from rnnmem.reber.training import cross_entropy, squared_error

torch.set_num_threads(1)

CASES = [("vanilla", "logistic"), ("vanilla", "tanh"), ("gru", "logistic"), ("lstm", "logistic")]
IDS = ["vanilla-logistic", "vanilla-tanh", "gru", "lstm"]
LOSSES = {"squared_error": squared_error, "cross_entropy": cross_entropy}
ALPHABET, HIDDEN = 7, 6
# (M, B) lengths: strings of different lengths, padding, an input gap and an empty string.
LENGTHS = np.array([[6, 3], [4, 6], [0, 2]])


def build(kind: str, activation: str, init: str, dtype: torch.dtype, members: int = 3,
          hidden: int = HIDDEN) -> SequencePredictor:
    model = SequencePredictor(kind, ALPHABET, hidden, ALPHABET, members=members, activation=activation)
    model.reset_parameters(init, list(range(11, 11 + members)))
    return model.to(dtype)


def weights(model: SequencePredictor) -> list[np.ndarray]:
    rec, out = model.recurrence, model.readout
    return [p.detach().numpy() for p in (rec.weight_ih, rec.weight_hh, rec.bias, out.weight, out.bias)]


def one_hot(symbols: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    index = torch.from_numpy(symbols)
    x = torch.nn.functional.one_hot(index.clamp(min=0), ALPHABET).to(dtype)
    x[index == PAD] = 0.0
    return x


def batch(lengths: np.ndarray, steps: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs and targets, PAD beyond each string's length, and one missing input (symbol −1)."""
    rng = np.random.default_rng(seed)
    symbols = rng.integers(ALPHABET, size=(*lengths.shape, steps))
    targets = rng.integers(ALPHABET, size=(*lengths.shape, steps))
    beyond = np.arange(steps) >= lengths[..., None]
    symbols[beyond] = PAD
    targets[beyond] = PAD
    symbols[0, 0, 2] = PAD
    return symbols, targets


def compiled_grads(kind, activation, loss, model, symbols, targets):
    params = weights(model)
    grads = [np.full_like(p, np.nan) for p in params]
    losses = np.full(symbols.shape[0], np.nan, dtype=params[0].dtype)
    compiled.loss_and_grads(compiled.KIND_CODES[kind], compiled.ACTIVATION_CODES[activation],
                            compiled.LOSS_CODES[loss], *params, symbols, targets, *grads, losses)
    return losses, grads


def torch_grads(loss, model, symbols, targets):
    model.zero_grad(set_to_none=True)
    dtype = model.readout.weight.dtype
    losses = LOSSES[loss](model(one_hot(symbols, dtype))[0], torch.from_numpy(targets))
    losses.sum().backward()
    return losses.detach().numpy(), [p.grad.numpy() for p in model.parameters()]


def assert_near(actual: np.ndarray, expected: np.ndarray, tol: float) -> None:
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    assert np.isfinite(actual).all()
    assert np.abs(actual - expected).max(initial=0.0) <= tol * scale


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("init", ["normal", "uniform"])
@pytest.mark.parametrize(("kind", "activation"), CASES, ids=IDS)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
def test_loss_and_grads_match_autograd(kind, activation, init, loss, dtype, tol):
    model = build(kind, activation, init, dtype)
    symbols, targets = batch(LENGTHS)
    losses, grads = compiled_grads(kind, activation, loss, model, symbols, targets)
    expected_losses, expected_grads = torch_grads(loss, model, symbols, targets)
    assert losses.dtype == grads[0].dtype == np.dtype(str(dtype).removeprefix("torch."))
    assert_near(losses, expected_losses, tol)
    for grad, expected in zip(grads, expected_grads, strict=True):
        assert grad.dtype == expected.dtype
        assert_near(grad, expected, tol)


@pytest.mark.parametrize(("kind", "activation"), CASES, ids=IDS)
def test_stopped_members_are_skipped(kind, activation):
    """A member marked inactive gets loss and gradient 0; the others get exactly what an all-active call gives."""
    model = build(kind, activation, "normal", torch.float64)
    symbols, targets = batch(LENGTHS)
    losses, grads = compiled_grads(kind, activation, "squared_error", model, symbols, targets)
    params = weights(model)
    masked = [np.full_like(p, np.nan) for p in params]
    masked_losses = np.full(3, np.nan)
    compiled.loss_and_grads(compiled.KIND_CODES[kind], compiled.ACTIVATION_CODES[activation], 0, *params, symbols,
                            targets, *masked, masked_losses, np.array([True, False, True]))
    assert masked_losses[1] == 0 and np.array_equal(masked_losses[[0, 2]], losses[[0, 2]])
    for full, part in zip(grads, masked, strict=True):
        assert not part[1].any() and np.array_equal(part[[0, 2]], full[[0, 2]])


@pytest.mark.parametrize(("kind", "activation"), CASES, ids=IDS)
def test_forward_outputs_match_the_model_on_every_step(kind, activation):
    model = build(kind, activation, "normal", torch.float64)
    symbols, _ = batch(LENGTHS)
    outputs = np.full((*symbols.shape, ALPHABET), np.nan)
    compiled.forward_outputs(compiled.KIND_CODES[kind], compiled.ACTIVATION_CODES[activation], *weights(model),
                             symbols, outputs)
    with torch.no_grad():
        expected = model(one_hot(symbols, torch.float64))[0].numpy()
    assert np.abs(outputs - expected).max() <= 1e-12


def symbols_of(data: EncodedStrings) -> np.ndarray:
    """The input symbols behind the one-hot ``data.x`` (−1 where the row is zero)."""
    x = data.x.numpy()
    return np.where(x.any(-1), x.argmax(-1), PAD).astype(np.int64)


def reber_automaton(model: SequencePredictor, member: int, gain: float = 20.0) -> None:
    """Vanilla logistic weights that track the Reber automaton (a unit per edge) and output its legal set."""
    edges = [(p, s, q) for p, moves in _REBER_EDGES.items() for s, q in moves]
    alphabet = GRAMMARS["reber"].alphabet
    rec, out = model.recurrence, model.readout
    with torch.no_grad():
        for p in (rec.weight_ih, rec.weight_hh, rec.bias, out.weight, out.bias):
            p[member] = 0.0
        for e, (p, s, q) in enumerate(edges):
            rec.weight_ih[member, alphabet.index(s), e] = gain
            rec.bias[member, 0, e] = -gain * (0.5 if p == 0 else 1.5)
            for e_prev, (_, _, q_prev) in enumerate(edges):
                if q_prev == p:
                    rec.weight_hh[member, e_prev, e] = gain
            for symbol, _ in _REBER_EDGES.get(q, ()):
                out.weight[member, e, alphabet.index(symbol)] = 1.0
        out.bias[member] = -0.5


def compiled_all_correct(kind, activation, model, data, active=None):
    out = np.zeros(model.members, dtype=bool)
    compiled.all_correct(compiled.KIND_CODES[kind], compiled.ACTIVATION_CODES[activation], *weights(model),
                         symbols_of(data), data.legal.numpy(), data.lengths.numpy(), out, active)
    return out


def test_all_correct_matches_evaluate_on_solved_and_unsolved_members():
    grammar = GRAMMARS["reber"]
    data = encode(grammar, [member_strings(grammar, seed, 20, 0)[0] for seed in range(5)])
    model = build("vanilla", "logistic", "normal", torch.float32, members=5, hidden=12)
    reber_automaton(model, 0)
    reber_automaton(model, 1)
    reber_automaton(model, 2)
    with torch.no_grad():
        model.readout.weight[1, :, 3] *= -1  # wrong about S
        model.recurrence.weight_ih[3] = 0.0  # with 4: all outputs tied on every step
        model.recurrence.weight_hh[3] = 0.0
        model.recurrence.bias[3] = 0.0
        model.readout.weight[3] = 0.0
        model.readout.bias[3] = 0.0
    expected = evaluate(model, data, embedded=False)["all_correct"]
    assert expected.tolist() == [True, False, True, False, False]
    assert compiled_all_correct("vanilla", "logistic", model, data).tolist() == expected.tolist()
    skip_first = np.ones(len(expected), dtype=bool)
    skip_first[0] = False  # a stopped member is not checked: False, the others unchanged
    assert compiled_all_correct("vanilla", "logistic", model, data, skip_first).tolist() == [False,
                                                                                             *expected[1:].tolist()]


@pytest.mark.parametrize(("kind", "activation"), CASES, ids=IDS)
@pytest.mark.parametrize("grammar_name", ["reber", "embedded_reber"])
def test_all_correct_matches_evaluate_on_random_and_tied_members(kind, activation, grammar_name):
    grammar = GRAMMARS[grammar_name]
    data = encode(grammar, [member_strings(grammar, seed, 3, 0)[0] for seed in range(6)])
    data = dataclasses.replace(data, x=data.x.double())
    model = build(kind, activation, "uniform", torch.float64, members=6)
    with torch.no_grad():
        for p in model.parameters():
            p[0] = 0.0  # exact ties everywhere
        model.readout.bias[1] = torch.linspace(1.0, 0.0, ALPHABET, dtype=torch.float64)  # B then T, P … larger
        model.readout.weight[1] = 0.0
    expected = evaluate(model, data, embedded=grammar_name == "embedded_reber")["all_correct"]
    assert compiled_all_correct(kind, activation, model, data).tolist() == expected.tolist()


def test_all_correct_with_every_symbol_legal_or_none():
    """A step whose legal set is full or empty counts as correct, even with tied outputs; NaN never does."""
    model = build("gru", "logistic", "normal", torch.float64, members=3)
    with torch.no_grad():
        model.readout.weight.zero_()
        model.readout.bias.zero_()
        model.readout.bias[2, 0, 0] = float("nan")
    symbols = np.zeros((3, 1, 2), dtype=np.int64)
    legal = np.zeros((3, 1, 2, ALPHABET), dtype=bool)
    legal[:, :, 0] = True
    data = EncodedStrings(one_hot(symbols, torch.float64), torch.zeros(3, 1, 2, dtype=torch.int64),
                          torch.from_numpy(legal), torch.full((3, 1), 2))
    expected = evaluate(model, data, embedded=False)["all_correct"]
    assert expected.tolist() == [True, True, False]
    assert compiled_all_correct("gru", "logistic", model, data).tolist() == expected.tolist()


@pytest.mark.parametrize(("kind", "activation"), CASES, ids=IDS)
@pytest.mark.parametrize("loss", list(LOSSES))
def test_nats_are_the_summed_cross_entropy(kind, activation, loss):
    """The optional ``nats`` output: Σ over valid steps of −log softmax(y)[target], whatever loss is trained."""
    model = build(kind, activation, "normal", torch.float64)
    symbols, targets = batch(LENGTHS)
    params = weights(model)
    grads = [np.zeros_like(p) for p in params]
    losses, nats = np.zeros(3), np.full(3, np.nan)
    compiled.loss_and_grads(compiled.KIND_CODES[kind], compiled.ACTIVATION_CODES[activation], compiled.LOSS_CODES[loss],
                            *params, symbols, targets, *grads, losses, None, nats)
    with torch.no_grad():
        outputs = model(one_hot(symbols, torch.float64))[0]
    target = torch.from_numpy(targets)
    expected = [float(torch.nn.functional.cross_entropy(outputs[m].reshape(-1, ALPHABET), target[m].reshape(-1),
                                                       ignore_index=PAD, reduction="sum")) for m in range(3)]
    np.testing.assert_allclose(nats, expected, rtol=1e-12, atol=1e-12)


def raw_kernel_outputs(kernel, kind, activation, loss, model, symbols, targets, active):
    params = weights(model)
    grads = [np.full_like(p, np.nan) for p in params]
    losses, nats = (np.full(symbols.shape[0], np.nan, dtype=params[0].dtype) for _ in range(2))
    kernel(compiled.KIND_CODES[kind], compiled.ACTIVATION_CODES[activation], compiled.LOSS_CODES[loss], *params,
           symbols, targets, *grads, losses, active, nats, True)
    return [losses, nats, *grads]


@pytest.mark.parametrize("hidden", [HIDDEN, compiled.ROWS_FROM])
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize(("kind", "activation"), CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_wide_layers_kernel_gives_the_same_bits(kind, activation, loss, dtype, hidden):
    """The backward of wide layers (rows of the transposed weights) sums every entry in the order of the dot
    products of the narrow one: the same bits, whatever the size (and a stopped member is skipped as there)."""
    model = build(kind, activation, "normal", dtype, hidden=hidden)
    symbols, targets = batch(LENGTHS)
    active = np.array([True, True, False])
    narrow = raw_kernel_outputs(compiled._loss_and_grads, kind, activation, loss, model, symbols, targets, active)
    wide = raw_kernel_outputs(compiled._loss_and_grads_rows, kind, activation, loss, model, symbols, targets, active)
    for a, b in zip(narrow, wide, strict=True):
        assert np.isfinite(a).all() and np.array_equal(a, b)


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize(("kind", "activation"), CASES, ids=IDS)
def test_wide_layers_match_autograd(kind, activation, loss):
    """:func:`compiled.loss_and_grads` takes the wide layers' kernel from ``ROWS_FROM`` units on."""
    model = build(kind, activation, "uniform", torch.float64, hidden=compiled.ROWS_FROM)
    symbols, targets = batch(LENGTHS)
    losses, grads = compiled_grads(kind, activation, loss, model, symbols, targets)
    expected_losses, expected_grads = torch_grads(loss, model, symbols, targets)
    assert_near(losses, expected_losses, 1e-10)
    for grad, expected in zip(grads, expected_grads, strict=True):
        assert_near(grad, expected, 1e-10)
