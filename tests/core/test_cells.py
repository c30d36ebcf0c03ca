"""The ensemble cells against a NumPy reference, member independence, fused modules and parameter counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_cells import readout, run

from rnnmem.core.cells import (
    EnsembleLinear,
    EnsembleRecurrence,
    SequencePredictor,
    fused_recurrence,
)
from rnnmem.core.sizes import matched_hidden, parameter_count, recurrent_parameter_count

torch.set_num_threads(1)

CASES = [("vanilla", "logistic"), ("vanilla", "tanh"), ("gru", "logistic"), ("lstm", "logistic")]
IDS = ["vanilla-logistic", "vanilla-tanh", "gru", "lstm"]
SEEDS = [5, 6, 7]
ALPHABET, HIDDEN = 7, 6


def one_hot_inputs(members: int, batch: int, steps: int, size: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    symbols = torch.randint(size, (members, batch, steps), generator=gen)
    return torch.nn.functional.one_hot(symbols, size)


def member_weights(model: SequencePredictor, m: int) -> dict[str, np.ndarray]:
    rec, out = model.recurrence, model.readout
    return {
        "w_ih": rec.weight_ih[m].detach().double().numpy(),
        "w_hh": rec.weight_hh[m].detach().double().numpy(),
        "b": rec.bias[m, 0].detach().double().numpy(),
        "o": out.weight[m].detach().double().numpy(),
        "o_b": out.bias[m, 0].detach().double().numpy(),
    }


def reference_outputs(model, kind, activation, x):
    """(outputs, hidden) of every member and sequence, from the NumPy reference."""
    members, batch = x.shape[:2]
    outs = np.empty((members, batch, x.shape[2], model.readout.weight.shape[2]))
    states = np.empty((members, batch, x.shape[2], model.recurrence.hidden))
    for m in range(members):
        w = member_weights(model, m)
        for n in range(batch):
            h = run(kind, w["w_ih"], w["w_hh"], w["b"], x[m, n].double().numpy(), activation)
            states[m, n] = h
            outs[m, n] = readout(w["o"], w["o_b"], h)
    return outs, states


def build(kind, activation, members=3, seeds=SEEDS, hidden=HIDDEN, init="normal") -> SequencePredictor:
    model = SequencePredictor(kind, ALPHABET, hidden, ALPHABET, members=members, activation=activation)
    model.reset_parameters(init, seeds)
    return model


@pytest.mark.parametrize(("kind", "activation"), CASES, ids=IDS)
def test_matches_reference_float64(kind: str, activation: str) -> None:
    model = build(kind, activation).double()
    x = one_hot_inputs(3, 2, 9, ALPHABET).double()
    with torch.no_grad():
        outputs, hidden = model(x)
    want_out, want_hidden = reference_outputs(model, kind, activation, x)
    np.testing.assert_allclose(hidden.numpy(), want_hidden, rtol=0, atol=1e-10)
    np.testing.assert_allclose(outputs.numpy(), want_out, rtol=0, atol=1e-10)
    # The members really differ (the comparison is not between identical copies).
    assert not np.allclose(want_out[0], want_out[1])


@pytest.mark.parametrize(("kind", "activation"), CASES, ids=IDS)
def test_matches_reference_float32(kind: str, activation: str) -> None:
    model = build(kind, activation)
    x = one_hot_inputs(3, 2, 9, ALPHABET, seed=1).float()
    with torch.no_grad():
        outputs, hidden = model(x)
    want_out, want_hidden = reference_outputs(model, kind, activation, x)
    np.testing.assert_allclose(hidden.numpy(), want_hidden, rtol=0, atol=1e-5)
    np.testing.assert_allclose(outputs.numpy(), want_out, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", ["vanilla", "gru", "lstm"])
def test_float64_model_runs(kind: str) -> None:
    model = build(kind, "logistic").double()
    x = one_hot_inputs(3, 2, 9, ALPHABET).double()
    with torch.no_grad():
        outputs, hidden = model(x)
    assert outputs.dtype == torch.float64 and hidden.dtype == torch.float64


@pytest.mark.parametrize(("kind", "activation"), CASES, ids=IDS)
@pytest.mark.parametrize("init", ["normal", "uniform"])
def test_member_independence(kind: str, activation: str, init: str) -> None:
    ensemble = build(kind, activation, init=init)
    x = one_hot_inputs(3, 4, 11, ALPHABET, seed=2).float()
    with torch.no_grad():
        outputs, hidden = ensemble(x)
    for m, seed in enumerate(SEEDS):
        single = build(kind, activation, members=1, seeds=[seed], init=init)
        pairs = zip(ensemble.named_parameters(), single.named_parameters(), strict=True)
        for (name, p_ens), (_, p_one) in pairs:
            assert torch.equal(p_ens[m], p_one[0]), name
        with torch.no_grad():
            out_one, hidden_one = single(x[m : m + 1])
        torch.testing.assert_close(out_one[0], outputs[m], rtol=0, atol=1e-6)
        torch.testing.assert_close(hidden_one[0], hidden[m], rtol=0, atol=1e-6)


def test_seeds_give_distinct_members_and_count_is_checked() -> None:
    model = build("gru", "logistic")
    w = model.recurrence.weight_ih
    assert not torch.equal(w[0], w[1])
    # Recurrence and read-out of one seed are drawn from different streams.
    assert not torch.equal(model.readout.weight[0].flatten()[:5], w[0].flatten()[:5])
    with pytest.raises(ValueError):
        model.reset_parameters("normal", [1, 2])


def test_uniform_init_bound() -> None:
    model = build("lstm", "logistic", hidden=16, init="uniform")
    bound = 1 / 4
    for p in model.parameters():
        assert float(p.detach().abs().max()) <= bound
        assert float(p.detach().abs().max()) > 0.8 * bound


@pytest.mark.parametrize(("kind", "activation"), [("vanilla", "tanh"), ("lstm", "logistic")])
def test_fused_equivalence(kind: str, activation: str) -> None:
    recurrence = EnsembleRecurrence(kind, ALPHABET, HIDDEN, members=1, activation=activation)
    recurrence.reset_parameters("normal", [4])
    fused = fused_recurrence(recurrence)
    assert fused is not None
    assert isinstance(fused, torch.nn.LSTM if kind == "lstm" else torch.nn.RNN)
    x = one_hot_inputs(1, 3, 10, ALPHABET, seed=3).float()
    with torch.no_grad():
        expected, _ = recurrence(x)
        got, _ = fused(x[0])
    torch.testing.assert_close(got, expected[0], rtol=0, atol=1e-5)
    assert torch.count_nonzero(fused.bias_hh_l0) == 0
    assert not fused.bias_hh_l0.requires_grad
    # Copies, not views: changing the fused module leaves the ensemble untouched.
    before = recurrence.weight_ih.detach().clone()
    with torch.no_grad():
        fused.weight_ih_l0.add_(1.0)
    assert torch.equal(recurrence.weight_ih, before)
    trainable = sum(p.numel() for p in fused.parameters() if p.requires_grad)
    assert trainable == recurrent_parameter_count(kind, ALPHABET, HIDDEN)


@pytest.mark.parametrize(
    ("kind", "activation", "members"),
    [("gru", "logistic", 1), ("vanilla", "logistic", 1), ("vanilla", "tanh", 2), ("lstm", "logistic", 3)],
)
def test_fused_none(kind: str, activation: str, members: int) -> None:
    recurrence = EnsembleRecurrence(kind, ALPHABET, HIDDEN, members=members, activation=activation)
    assert fused_recurrence(recurrence) is None


@pytest.mark.parametrize(
    ("kind", "hidden", "expected"),
    [("vanilla", 18, 601), ("gru", 10, 617), ("lstm", 8, 575), ("vanilla", 5, 107)],
)
def test_parameter_count_by_hand(kind: str, hidden: int, expected: int) -> None:
    assert parameter_count(kind, 7, hidden, 7) == expected


@pytest.mark.parametrize("kind", ["vanilla", "gru", "lstm"])
@pytest.mark.parametrize(
    ("input_size", "hidden", "output_size", "members"), [(7, 5, 7, 1), (4, 3, 2, 3), (7, 18, 7, 2)]
)
def test_parameter_count_matches_module(kind, input_size, hidden, output_size, members) -> None:
    model = SequencePredictor(kind, input_size, hidden, output_size, members=members)
    total = sum(p.numel() for p in model.parameters())
    assert total % members == 0
    assert total // members == parameter_count(kind, input_size, hidden, output_size)
    recurrent = sum(p.numel() for p in model.recurrence.parameters()) // members
    assert recurrent == recurrent_parameter_count(kind, input_size, hidden)


def test_matched_hidden() -> None:
    assert matched_hidden("gru", 7, 7, 601) == 10
    assert matched_hidden("lstm", 7, 7, 601) == 8
    assert matched_hidden("vanilla", 7, 7, 601) == 18
    assert matched_hidden("vanilla", 7, 7, 107) == 5


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="rnn"):
        SequencePredictor("rnn", 7, 5, 7)
    with pytest.raises(ValueError, match="relu"):
        SequencePredictor("vanilla", 7, 5, 7, activation="relu")
    with pytest.raises(ValueError, match="relu"):
        EnsembleRecurrence("gru", 7, 5, activation="relu")
    model = SequencePredictor("gru", 7, 5, 7)
    with pytest.raises(ValueError, match="xavier"):
        model.reset_parameters("xavier", [0])
    with pytest.raises(ValueError, match="xavier"):
        model.recurrence.reset_parameters("xavier", [0])


def test_readout_shapes() -> None:
    layer = EnsembleLinear(4, 3, members=2)
    layer.reset_parameters("normal", [0, 1])
    h = torch.randn(2, 5, 6, 4, generator=torch.Generator().manual_seed(0))
    y = layer(h)
    assert y.shape == (2, 5, 6, 3)
    torch.testing.assert_close(y[1, 2, 3], h[1, 2, 3] @ layer.weight[1] + layer.bias[1, 0])
