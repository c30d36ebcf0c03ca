"""Success criterion, evaluation, training loop determinism and independence of the ensemble's members."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from regimes import REBER_BLOCKS, reber_regime
from torch import nn

from rnnmem.core.cells import SequencePredictor
from rnnmem.core.errors import ConfigError
from rnnmem.reber.experiment_spec import Experiment
from rnnmem.reber.experiments import evaluate, outer_step, run_experiment
from rnnmem.reber.grammars import EMBEDDED_REBER, REBER, Grammar
from rnnmem.reber.sequences import PAD, EncodedStrings, encode, top_m_correct
from rnnmem.reber.training import (
    ModernRegime,
    Regime,
    SeedRegime,
    _CompiledUpdate,
    _update,
    clip_member_grads_,
    cross_entropy,
    make_regime,
    member_grad_norms,
    squared_error,
    train,
)

torch.set_num_threads(1)


def sample_strings(grammar: Grammar, members: int, count: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[grammar.sample(rng) for _ in range(count)] for _ in range(members)]


class StubModel(nn.Module):
    """Returns precomputed outputs whatever the input, as ``SequencePredictor.forward`` would."""

    def __init__(self, outputs: torch.Tensor) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert x.shape[:3] == self.outputs.shape[:3]
        return self.outputs, torch.zeros(*self.outputs.shape[:3], 2)


def illegal_symbol(data: EncodedStrings, m: int, n: int, t: int) -> int:
    return int(torch.nonzero(~data.legal[m, n, t])[0])


# --- top_m_correct --------------------------------------------------------------------------------


def test_perfect_predictor_passes() -> None:
    data = encode(REBER, sample_strings(REBER, 2, 20, seed=0))
    outputs = data.legal.float()
    correct = top_m_correct(outputs, data.legal)
    assert correct.shape == data.targets.shape
    assert bool(correct.all())
    # Every target really is one of the legal symbols of its step.
    valid = data.valid
    picked = data.legal.gather(-1, data.targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    assert bool(picked[valid].all())


@pytest.mark.parametrize("value", [1.0, 1.5])
def test_illegal_symbol_tying_or_beating_fails_that_step(value: float) -> None:
    data = encode(REBER, sample_strings(REBER, 2, 6, seed=1))
    outputs = data.legal.float()
    m, n, t = 1, 3, 2
    outputs[m, n, t, illegal_symbol(data, m, n, t)] = value
    correct = top_m_correct(outputs, data.legal)
    expected = torch.ones_like(correct)
    expected[m, n, t] = False
    assert torch.equal(correct, expected)


def test_legal_symbol_dropping_to_an_illegal_one_fails() -> None:
    data = encode(REBER, sample_strings(REBER, 1, 4, seed=2))
    outputs = data.legal.float() * 2.0
    # Step 0 follows "B": two legal symbols (T, P); lower one of them to the level of the illegal ones.
    assert int(data.legal[0, 0, 0].sum()) == 2
    outputs[0, 0, 0, REBER.alphabet.index("T")] = 0.0
    correct = top_m_correct(outputs, data.legal)
    assert not bool(correct[0, 0, 0])
    assert int((~correct).sum()) == 1
    # Still above every illegal one, even if below the other legal symbol: correct again.
    outputs[0, 0, 0, REBER.alphabet.index("T")] = 0.1
    assert bool(top_m_correct(outputs, data.legal).all())


def test_all_legal_or_none_counts_as_correct() -> None:
    outputs = torch.tensor([[0.3, 0.1, 0.9], [0.3, 0.1, 0.9], [0.3, 0.1, 0.9]])
    legal = torch.tensor([[True, True, True], [False, False, False], [True, True, False]])
    assert top_m_correct(outputs, legal).tolist() == [True, True, False]


# --- reber.evaluate --------------------------------------------------------------------------------


def test_evaluate_single_wrong_step() -> None:
    strings = sample_strings(EMBEDDED_REBER, 2, 5, seed=3)
    data = encode(EMBEDDED_REBER, strings)
    perfect = data.legal.float()
    result = evaluate(StubModel(perfect), data, embedded=True)
    assert result["all_correct"].tolist() == [True, True]
    np.testing.assert_array_equal(result["legal_acc"], [1.0, 1.0])
    np.testing.assert_array_equal(result["outer_acc"], [1.0, 1.0])

    # One early step of one string of member 1 is wrong: only member 1 fails; outer accuracy is unaffected.
    outputs = perfect.clone()
    outputs[1, 3, 0, EMBEDDED_REBER.alphabet.index("E")] = 1.0
    result = evaluate(StubModel(outputs), data, embedded=True)
    assert result["all_correct"].tolist() == [True, False]
    n_valid = int(data.valid[1].sum())
    np.testing.assert_allclose(result["legal_acc"], [1.0, (n_valid - 1) / n_valid])
    np.testing.assert_array_equal(result["outer_acc"], [1.0, 1.0])


def test_outer_acc_reads_the_penultimate_prediction() -> None:
    strings = sample_strings(EMBEDDED_REBER, 2, 5, seed=4)
    data = encode(EMBEDDED_REBER, strings)
    steps = outer_step(data)
    assert torch.equal(steps, data.lengths - 2)
    for m in range(2):
        for n, string in enumerate(strings[m]):
            t = int(steps[m, n])
            # Step t predicts the repeated outer symbol from the prefix that ends with the inner E.
            assert string[t] == "E" and string[t + 1] == string[1]
            assert int(data.targets[m, n, t]) == EMBEDDED_REBER.alphabet.index(string[1])

    m, n = 0, 2
    t = int(steps[m, n])
    wrong = "P" if strings[m][n][1] == "T" else "T"
    outputs = data.legal.float()
    outputs[m, n, t, EMBEDDED_REBER.alphabet.index(wrong)] = 2.0
    result = evaluate(StubModel(outputs), data, embedded=True)
    np.testing.assert_allclose(result["outer_acc"], [0.8, 1.0])
    assert result["all_correct"].tolist() == [False, True]

    # The same mistake one step later (the final E's prediction) leaves outer_acc alone.
    outputs = data.legal.float()
    outputs[m, n, t + 1, EMBEDDED_REBER.alphabet.index(wrong)] = 2.0
    result = evaluate(StubModel(outputs), data, embedded=True)
    np.testing.assert_array_equal(result["outer_acc"], [1.0, 1.0])
    assert result["all_correct"].tolist() == [False, True]


def test_evaluate_plain_reber_has_no_outer_acc() -> None:
    data = encode(REBER, sample_strings(REBER, 2, 4, seed=5))
    result = evaluate(StubModel(data.legal.float()), data, embedded=False)
    assert np.isnan(result["outer_acc"]).all()
    assert result["all_correct"].all()


# --- losses --------------------------------------------------------------------------------


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    outputs = torch.randn(2, 3, 5, 4, generator=gen)
    targets = torch.randint(4, (2, 3, 5), generator=gen)
    targets[0, 0, 3:] = PAD
    targets[0, 2, 1:] = PAD
    targets[1, 1, 4:] = PAD
    return outputs, targets


def test_losses_ignore_padded_steps() -> None:
    outputs, targets = padded_batch()
    pad = targets == PAD
    noisy = outputs.clone()
    noisy[pad] = 1e3 * torch.randn(int(pad.sum()), 4, generator=torch.Generator().manual_seed(1))
    for loss in (squared_error, cross_entropy):
        assert torch.equal(loss(outputs, targets), loss(noisy, targets))
        # A change on a valid step does change the loss (the comparison above can fail).
        changed = outputs.clone()
        changed[0, 0, 0, 1] += 1.0
        assert not torch.equal(loss(changed, targets)[0], loss(outputs, targets)[0])


def test_squared_error_by_hand() -> None:
    outputs, targets = padded_batch()
    got = squared_error(outputs, targets)
    for m in range(2):
        total = 0.0
        for n in range(3):
            for t in range(5):
                if targets[m, n, t] != PAD:
                    onehot = torch.zeros(4)
                    onehot[targets[m, n, t]] = 1.0
                    total += float(((outputs[m, n, t] - onehot) ** 2).sum())
        assert float(got[m]) == pytest.approx(total / 3, rel=1e-6)


def test_cross_entropy_by_hand() -> None:
    outputs, targets = padded_batch()
    got = cross_entropy(outputs, targets)
    for m in range(2):
        want = nn.functional.cross_entropy(
            outputs[m].reshape(-1, 4), targets[m].reshape(-1), ignore_index=PAD
        )
        assert float(got[m]) == pytest.approx(float(want), rel=1e-6)


# --- gradient clipping --------------------------------------------------------------------------------


def test_clip_member_grads_independently() -> None:
    a = nn.Parameter(torch.zeros(3, 2, 2))
    b = nn.Parameter(torch.zeros(3, 1, 2))
    a.grad = torch.zeros_like(a)
    b.grad = torch.zeros_like(b)
    a.grad[0] = torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    b.grad[0] = torch.tensor([[4.0, 0.0]])  # member 0: norm 5
    a.grad[1] = torch.tensor([[0.1, 0.2], [0.0, 0.2]])  # member 1: norm 0.3
    a.grad[2] = torch.tensor([[0.0, 0.0], [0.0, 2.0]])  # member 2: norm 2
    small_a, small_b = a.grad[1].clone(), b.grad[1].clone()
    norms = clip_member_grads_([a, b], 1.0)
    torch.testing.assert_close(norms, torch.tensor([5.0, 0.3, 2.0]))
    after = member_grad_norms([a, b])
    torch.testing.assert_close(after, torch.tensor([1.0, 0.3, 1.0]), rtol=0, atol=1e-5)
    assert torch.equal(a.grad[1], small_a) and torch.equal(b.grad[1], small_b)
    # Direction kept: member 0's gradient is only scaled.
    torch.testing.assert_close(b.grad[0], torch.tensor([[0.8, 0.0]]), rtol=0, atol=1e-5)


def test_make_regime() -> None:
    block = {"lr": 0.1, "lr_divisor": 1.5, "tolerance": 0.0, "max_epochs": 3, "init": "normal", "bias": "zero"}
    assert make_regime("seed", block) == SeedRegime(**block) and SeedRegime.batch_size == 1
    assert make_regime("modern", {"lr": 0.1, "batch_size": 4, "clip_norm": 1.0, "init": "uniform"}).batch_size == 4
    with pytest.raises(ConfigError, match=r"^reber\.regimes\.modern: unknown key\(s\) \['lr_divisor'\]; missing"):
        make_regime("modern", {"lr": 0.1, "lr_divisor": 2.0})
    with pytest.raises(ValueError, match="adam"):
        make_regime("adam", {})


def test_make_regime_checks_the_seed_bias() -> None:
    """bias is zero or normal, named in one line; only the seed regime has the key (modern keeps drawn biases)."""
    assert make_regime("seed", {**REBER_BLOCKS["seed"], "bias": "zero"}).zero_bias
    assert not make_regime("seed", {**REBER_BLOCKS["seed"], "bias": "normal"}).zero_bias
    assert not make_regime("modern", REBER_BLOCKS["modern"]).zero_bias
    with pytest.raises(ConfigError) as info:
        make_regime("seed", {**REBER_BLOCKS["seed"], "bias": "x"})
    assert str(info.value) == "reber.regimes.seed.bias: expected zero or normal, got 'x'"
    with pytest.raises(ConfigError, match=r"^reber\.regimes\.seed: missing key\(s\) \['bias'\]$"):
        make_regime("seed", {k: v for k, v in REBER_BLOCKS["seed"].items() if k != "bias"})
    with pytest.raises(ConfigError, match=r"^reber\.regimes\.modern: unknown key\(s\) \['bias'\]$"):
        make_regime("modern", {**REBER_BLOCKS["modern"], "bias": "zero"})


# --- the training loop --------------------------------------------------------------------------------

TINY = Experiment("tiny", "embedded_reber", "gru", 4)
REGIMES = [reber_regime("seed"), reber_regime("modern")]
REGIME_IDS = ["seed", "modern"]


def tiny_run(regime, seeds):
    return run_experiment(TINY, regime, seeds, 16, 16, 64, 32, torch.device("cpu"))


def initial_parameters(regime: Regime, seeds: list[int]) -> dict[str, torch.Tensor]:
    """The parameters run_experiment initialised: the step hook runs before the first update."""
    captured: dict[str, torch.Tensor] = {}

    def hook(model: SequencePredictor, presented: int, active: torch.Tensor) -> None:
        if not captured:
            captured.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    run_experiment(TINY, regime, seeds, 16, 16, 1, 32, torch.device("cpu"), step_hook=hook)
    return captured


def test_seed_regime_bias_zero_keeps_the_weights() -> None:
    """bias: zero (the report's annex code) zeroes every bias and draws the very weights of bias: normal."""
    zero = initial_parameters(reber_regime("seed", bias="zero"), [0, 3])
    normal = initial_parameters(reber_regime("seed", bias="normal"), [0, 3])
    assert zero.keys() == normal.keys() == {"recurrence.weight_ih", "recurrence.weight_hh", "recurrence.bias",
                                            "readout.weight", "readout.bias"}
    for key, value in zero.items():
        if key.endswith("bias"):
            assert torch.equal(value, torch.zeros_like(value)), key
            assert bool((normal[key] != 0).all()), key
        else:
            assert torch.equal(value, normal[key]), key


def test_seed_regime_bias_normal_keeps_the_old_draws() -> None:
    """bias: normal draws what the seed regime drew before the key existed: every parameter N(0, 1), in order,
    from the member's generator (2s for the recurrence, 2s + 1 for the read-out)."""
    seeds = [0, 3]
    params = initial_parameters(reber_regime("seed", bias="normal"), seeds)
    for m, seed in enumerate(seeds):
        for prefix, names, generator_seed in (("recurrence", ("weight_ih", "weight_hh", "bias"), 2 * seed),
                                              ("readout", ("weight", "bias"), 2 * seed + 1)):
            generator = torch.Generator().manual_seed(generator_seed)
            for name in names:
                value = params[f"{prefix}.{name}"][m]
                assert torch.equal(value, torch.randn(value.shape, generator=generator)), (seed, prefix, name)


@pytest.mark.parametrize("regime", REGIMES, ids=REGIME_IDS)
def test_run_experiment_is_deterministic(regime) -> None:
    model_a, table_a, result_a = tiny_run(regime, [0, 1])
    model_b, table_b, result_b = tiny_run(regime, [0, 1])
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    assert table_a.equals(table_b)
    assert list(table_a["seed"]) == [0, 1]
    assert (table_a["strings_presented"] <= 64).all()
    np.testing.assert_array_equal(result_a.strings_to_success, result_b.strings_to_success)
    # Training happened: the weights moved away from their initial values.
    fresh = SequencePredictor("gru", 7, 4, 7, members=2)
    fresh.reset_parameters(regime.init, [0, 1])
    assert not torch.equal(fresh.recurrence.weight_hh, model_a.recurrence.weight_hh)


@pytest.mark.parametrize("regime", REGIMES, ids=REGIME_IDS)
def test_member_training_is_independent_of_the_ensemble(regime) -> None:
    alone, table_alone, _ = tiny_run(regime, [3])
    together, table_together, _ = tiny_run(regime, [1, 3])
    for (name, p_alone), (_, p_together) in zip(
        alone.named_parameters(), together.named_parameters(), strict=True
    ):
        torch.testing.assert_close(p_together[1], p_alone[0], rtol=0, atol=1e-5, msg=name)
        assert not torch.allclose(p_together[0], p_alone[0], atol=1e-3), name
    row_alone = table_alone.iloc[0]
    row_together = table_together.iloc[1]
    for column in ("seed", "strings_presented", "stop_reason", "epochs"):
        assert row_alone[column] == row_together[column], column
    assert row_alone["legal_acc_test"] == pytest.approx(row_together["legal_acc_test"], abs=1e-6)


@pytest.mark.parametrize(
    "regime",
    [reber_regime("seed", tolerance=0.0, lr=0.05), reber_regime("modern", batch_size=4, lr=0.05)],
    ids=REGIME_IDS,
)
def test_stopped_member_keeps_its_weights(regime) -> None:
    torch.manual_seed(0)
    data = encode(REBER, sample_strings(REBER, 2, 12, seed=6))
    model = SequencePredictor("vanilla", 7, 3, 7, members=2)
    model.reset_parameters(regime.init, [0, 1])
    check_every, max_strings = 8, 40
    snapshots: list[dict[str, torch.Tensor]] = []

    def check(net: SequencePredictor, active: torch.Tensor) -> torch.Tensor:
        snapshots.append({k: v.detach().clone() for k, v in net.state_dict().items()})
        return torch.tensor([True, False])

    result = train(model, data, regime, [0, 1], max_strings, check_every, check)
    assert len(snapshots) == max_strings // check_every
    first = snapshots[0]
    final = model.state_dict()
    for key in final:
        assert torch.equal(final[key][0], first[key][0]), key
        assert not torch.equal(final[key][1], first[key][1]), key
    assert result.strings_to_success.tolist() == [check_every, -1]
    assert result.stop_reason == ["solved", "cap"]
    assert result.strings_presented.tolist() == [check_every, max_strings]
    assert [h["solved"] for h in result.history] == [1] * len(snapshots)


@pytest.mark.parametrize("regime", REGIMES, ids=REGIME_IDS)
@pytest.mark.parametrize(("kind", "hidden", "activation"), [("vanilla", 6, "logistic"), ("vanilla", 6, "tanh"),
                                                            ("gru", 4, "logistic"), ("lstm", 3, "logistic")])
def test_compiled_training_run_follows_the_autograd_run(regime, kind, hidden, activation) -> None:
    """A whole training run by the compiled kernels ends where the autograd run ends: same presentations, stops
    and checks, weights equal up to float32 rounding (the two sum in different orders, and torch's tanh and
    libm's differ by an ulp, which 1 − h² of a saturated unit magnifies to ~1e-4 after a few steps; a wrong
    gradient term moves weights by 1e-2 and more)."""
    experiment = Experiment("tiny", "embedded_reber", kind, hidden, activation)
    runs = {compiled: run_experiment(experiment, regime, [0, 1, 2], 16, 16, 96, 32, torch.device("cpu"),
                                     compiled=compiled) for compiled in (False, True)}
    (reference, table_ref, result_ref), (fast, table_fast, result_fast) = runs[False], runs[True]
    for (name, expected), (_, actual) in zip(reference.named_parameters(), fast.named_parameters(), strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-3, atol=1e-3, msg=name)
    columns = ["solved", "strings_to_success", "strings_presented", "stop_reason", "epochs"]
    assert table_fast[columns].equals(table_ref[columns])
    np.testing.assert_allclose(table_fast["legal_acc_test"], table_ref["legal_acc_test"], atol=1e-6)
    assert result_fast.steps == result_ref.steps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("regime", REGIMES, ids=REGIME_IDS)
def test_compiled_update_is_torchs(regime, dtype) -> None:
    """The compiled SGD / clipped-Adam step moves the weights as the torch loop's ``_update`` does, stopped members
    not at all: bit for bit under torch's portable (baseline) kernels, which the jobs run; within a few ulps under
    its AVX ones, which fuse the multiply-adds of lerp and addcmul."""
    members = 4
    models = []
    for _ in range(2):
        model = SequencePredictor("lstm", 7, 5, 7, members=members).to(dtype)
        model.reset_parameters(regime.init, list(range(members)))
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        models.append(model)
    reference, fast = (list(m.parameters()) for m in models)
    optimizer = torch.optim.Adam(reference, lr=regime.lr) if isinstance(regime, ModernRegime) else None
    update = _CompiledUpdate(fast, regime)
    lr = torch.full((members,), regime.lr)
    lr[1] /= 3
    active = torch.ones(members, dtype=torch.bool)
    rng = np.random.default_rng(0)
    before = [p.detach().clone() for p in fast]
    for step in range(40):
        if step == 10:
            active[2] = False
            before = [p.detach().clone() for p in fast]
        for p, q in zip(reference, fast, strict=True):
            scale = 10.0 ** rng.integers(-4, 2, size=(members,) + (1,) * (p.dim() - 1))
            grad = torch.from_numpy(rng.standard_normal(tuple(p.shape)) * scale).to(dtype) * active.reshape(-1, 1, 1)
            p.grad.copy_(grad)
            q.grad.copy_(grad)
        _update(reference, regime, optimizer, lr, active)
        update(lr, active)
    exact = torch.backends.cpu.get_cpu_capability() == "DEFAULT"
    for p, q, old in zip(reference, fast, before, strict=True):
        assert torch.equal(q[2], old[2])
        if exact:
            assert torch.equal(q, p)
        else:
            torch.testing.assert_close(q, p, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-7)


@pytest.mark.parametrize(("block", "reason"), [({"max_epochs": 2}, "max_epochs"),
                                               ({"max_epochs": 1000, "tolerance": 1e9}, "converged")])
def test_a_member_passing_the_check_when_its_epoch_stops_it_is_solved(block, reason) -> None:
    """An epoch's end that stops a member (converged or max_epochs) at a check step: the check comes first, so a
    member that passes it is solved, and only the others stop for the epoch's reason."""
    data = encode(REBER, sample_strings(REBER, 2, 8, seed=3))
    model = SequencePredictor("vanilla", 7, 3, 7, members=2)
    regime = reber_regime("seed", **block)
    model.reset_parameters(regime.init, [0, 1])
    checked: list[list[bool]] = []

    def check(net: SequencePredictor, active: torch.Tensor) -> torch.Tensor:
        checked.append(active.tolist())
        return torch.tensor([True, False])

    # 8 strings per epoch, a check every 16: the first check ends epoch 2, which stops the run either way (the
    # first epoch cannot converge: its predecessor's error is infinite)
    result = train(model, data, regime, [0, 1], 64, 16, check)
    assert checked == [[True, True]]
    assert result.stop_reason == ["solved", reason]
    assert result.strings_to_success.tolist() == [16, -1]
    assert result.strings_presented.tolist() == [16, 16]
