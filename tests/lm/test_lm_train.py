"""Chorale language models: data, parameter counts, both training regimes, exact resumption, evaluation."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from regimes import LM_BLOCKS, lm_settings

from rnnmem.core.cells import MODEL_KINDS
from rnnmem.core.errors import ConfigError
from rnnmem.lm.data import TokenData, TokenDataError, is_note, load_token_data, pad_batch
from rnnmem.lm.evaluate import evaluate_lm
from rnnmem.lm.model import TokenLM, lm_matched_hidden, lm_parameter_count, trainable_parameter_count
from rnnmem.lm.settings import DATA_KEYS, regime_settings
from rnnmem.lm.train import (
    CheckpointError,
    TrainingStopped,
    build_model,
    checkpoint_path,
    load_checkpoint,
    load_trained,
    train_lm,
)

VOCAB = ["<unk>", "<s>", "</s>", "|", "\\", "c'4", "d'4", "e'4", "f'8", "g'2", "r4", "a'4."]
CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[2]
TIME_COLUMNS = ["seconds", "train_seconds", "compute_seconds"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here on one torch thread (conftest.one_torch_thread)."""


def _chorale(rng: np.random.Generator) -> list[int]:
    """A little melody: notes in a walk, a bar line every third token, sometimes a fermata or a rest."""
    seq, note = [1], int(rng.integers(5, 10))
    for position in range(int(rng.integers(6, 16))):
        if position % 3 == 2:
            seq.append(3)
            if rng.random() < 0.2:
                seq.append(4)
        else:
            note = 5 + (note - 5 + int(rng.choice([-1, 1, 1]))) % 5
            seq.append(10 if rng.random() < 0.05 else note)
    return [*seq, 2]


def _tiny_data(train: int = 12, valid: int = 4, test: int = 4, seed: int = 0) -> TokenData:
    rng = np.random.default_rng(seed)
    ids, numbers, notes = {}, {}, {}
    start = 1
    for split, count in (("train", train), ("valid", valid), ("test", test)):
        ids[split] = [_chorale(rng) for _ in range(count)]
        numbers[split] = list(range(start, start + count))
        notes[split] = [sum(is_note(VOCAB[i]) for i in seq) for seq in ids[split]]
        start += count
    return TokenData(list(VOCAB), ids, numbers, notes)


def _run(tmp_path: Path, name: str, regime: str, kind: str = "gru", epochs: int = 3, **kwargs):
    return train_lm(_tiny_data(), kind, 7, lm_settings(regime, epochs), 3, tmp_path / f"{name}.pt", CPU, **kwargs)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# ---------------------------------------------------------------- data


def test_load_token_data_counts_notes_and_splits(tmp_path):
    rows = [
        {"number": 1, "bwv": "269", "split": "train", "tokens": ["<s>", "c'4", "|", "r4", "fis''8", "\\", "</s>"],
         "ids": [1, 5, 3, 10, 0, 4, 2]},
        {"number": 2, "bwv": "347", "split": "test", "tokens": ["<s>", "g'2", "</s>"], "ids": [1, 9, 2]},
    ]
    (tmp_path / "tokens.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "vocab.json").write_text(json.dumps(VOCAB))
    data = load_token_data(tmp_path / "tokens.jsonl", tmp_path / "vocab.json")
    assert data.vocab == VOCAB and data.vocab_size == len(VOCAB)
    assert data.ids["train"] == [rows[0]["ids"]] and data.ids["valid"] == [] and data.numbers["test"] == [2]
    assert data.notes == {"train": [2], "valid": [], "test": [1]}  # the unknown fis''8 is a note, r4 is not
    assert data.predicted_tokens("train") == 6


def test_load_token_data_names_the_bad_file(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps(VOCAB))
    (tmp_path / "tokens.jsonl").write_text('{"number": 1, "split": "train"}\n')
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'tokens.jsonl'}:1")):
        load_token_data(tmp_path / "tokens.jsonl", tmp_path / "vocab.json")


def test_pad_batch_pads_inputs_and_masks_targets():
    inputs, targets, lengths = pad_batch([[1, 5, 6, 2], [1, 7, 2]], pad_id=0)
    assert inputs.tolist() == [[1, 5, 6], [1, 7, 0]]
    assert targets.tolist() == [[5, 6, 2], [7, 2, -1]]
    assert lengths.tolist() == [3, 2]


# ---------------------------------------------------------------- model


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("embedding", [None, 5])
def test_parameter_count_matches_module(kind, embedding):
    for activation in ("logistic", "tanh"):
        model = TokenLM(kind, len(VOCAB), 9, embedding, activation=activation)
        assert trainable_parameter_count(model) == lm_parameter_count(kind, len(VOCAB), 9, embedding)
    hidden = lm_matched_hidden(kind, 207, 30_000, embedding)
    count = lm_parameter_count(kind, 207, hidden, embedding)
    neighbours = [lm_parameter_count(kind, 207, h, embedding) for h in (hidden - 1, hidden + 1)]
    assert all(abs(count - 30_000) <= abs(n - 30_000) for n in neighbours)


@pytest.mark.parametrize(("kind", "activation"), [("lstm", "logistic"), ("vanilla", "tanh")])
@pytest.mark.parametrize("embedding", [None, 5])
def test_fused_path_equals_report_cell(kind, activation, embedding):
    fast = TokenLM(kind, len(VOCAB), 6, embedding, activation=activation, init="uniform", seed=4, fused=True)
    slow = TokenLM(kind, len(VOCAB), 6, embedding, activation=activation, init="uniform", seed=4, fused=False)
    assert fast.is_fused and not slow.is_fused
    inputs = torch.randint(0, len(VOCAB), (3, 11), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fast(inputs), slow(inputs), rtol=1e-5, atol=1e-5)
    # Same gradients too: what the fused module trains is the report's cell.
    fast(inputs).square().sum().backward()
    slow(inputs).square().sum().backward()
    torch.testing.assert_close(fast.fused.weight_hh_l0.grad, slow.cell.weight_hh.grad[0].T, rtol=1e-4, atol=1e-4)
    assert fast.fused.bias_hh_l0.grad is None


def test_report_gru_and_logistic_vanilla_are_not_fused():
    assert not TokenLM("gru", len(VOCAB), 4, fused=True).is_fused
    assert not TokenLM("vanilla", len(VOCAB), 4, activation="logistic", fused=True).is_fused


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_padding_is_ignored(kind):
    model = TokenLM(kind, len(VOCAB), 5, 4, init="uniform", seed=1).eval()
    data = _tiny_data()
    seqs = data.ids["valid"]
    inputs, _, lengths = pad_batch(seqs, pad_id=0)
    batched = model(inputs)
    for row, seq in enumerate(seqs):
        alone = model(pad_batch([seq], pad_id=0)[0])[0]
        torch.testing.assert_close(batched[row, : lengths[row]], alone, rtol=1e-5, atol=1e-6)
    # Padding with another id changes nothing either, and neither does the evaluation batch size.
    other = model(pad_batch(seqs, pad_id=7)[0])
    for row in range(len(seqs)):
        torch.testing.assert_close(other[row, : lengths[row]], batched[row, : lengths[row]])
    one, many = (evaluate_lm(model, seqs, CPU, batch_size=b) for b in (1, 64))
    assert one["total_nats"] == pytest.approx(many["total_nats"], rel=1e-6)  # float32 batching
    assert one["squared_error"] == pytest.approx(many["squared_error"], rel=1e-6)


@pytest.mark.parametrize(("kind", "activation", "embedding"), [
    ("vanilla", "logistic", None), ("vanilla", "tanh", None), ("gru", "logistic", 4), ("lstm", "logistic", None),
    ("lstm", "logistic", 4)])
def test_continuing_from_the_state_equals_one_run(kind, activation, embedding):
    model = TokenLM(kind, len(VOCAB), 5, embedding, activation=activation, init="uniform", seed=2).eval()
    inputs = torch.randint(0, len(VOCAB), (3, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(inputs)
        head, state = model.continue_logits(inputs[:, :4])
        pieces = [head]
        for t in range(4, 9):  # token by token, as when sampling
            step, state = model.continue_logits(inputs[:, t:t + 1], state)
            pieces.append(step)
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=1e-5, atol=1e-6)
    hidden = state[0] if isinstance(state, tuple) else state
    assert hidden.shape == (1, 3, 5)
    torch.testing.assert_close(hidden[0], model.hidden_states(inputs)[:, -1], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- evaluation


def test_evaluate_numbers_are_consistent():
    data = _tiny_data()
    model = TokenLM("gru", len(VOCAB), 5, 4, init="uniform", seed=2)
    seqs, notes = data.ids["test"], data.notes["test"]
    result = evaluate_lm(model, seqs, CPU, notes)
    nats, squared, squared_soft = 0.0, 0.0, 0.0
    with torch.no_grad():
        for seq in seqs:
            out = model(torch.tensor([seq[:-1]]))[0].double()
            target = torch.tensor(seq[1:])
            nats -= float(torch.log_softmax(out, -1)[torch.arange(len(target)), target].sum())
            onehot = torch.nn.functional.one_hot(target, len(VOCAB)).double()
            squared += float(((out - onehot) ** 2).sum())
            squared_soft += float(((torch.softmax(out, -1) - onehot) ** 2).sum())
    assert result["tokens"] == sum(len(s) - 1 for s in seqs) and result["sequences"] == len(seqs)
    assert result["total_nats"] == pytest.approx(nats, rel=1e-9)
    assert result["nll"] == pytest.approx(nats / result["tokens"])
    assert result["bits_per_token"] == pytest.approx(result["nll"] / math.log(2))
    assert result["perplexity"] == pytest.approx(math.exp(result["nll"]))
    assert result["notes"] == sum(notes)
    assert result["bits_per_note"] == pytest.approx(nats / math.log(2) / sum(notes))
    assert result["squared_error"] == pytest.approx(squared / len(seqs))
    assert result["squared_error_softmax"] == pytest.approx(squared_soft / len(seqs))
    assert 0.0 <= result["accuracy"] <= 1.0
    assert math.isnan(evaluate_lm(model, seqs, CPU)["bits_per_note"])
    assert model.training  # evaluation restores the mode


# ---------------------------------------------------------------- training


def test_one_modern_epoch_lowers_train_nll(tmp_path):
    data = _tiny_data()
    before = evaluate_lm(build_model("gru", len(VOCAB), 7, lm_settings("modern", 1), 3), data.ids["train"], CPU)["nll"]
    model, curve = _run(tmp_path, "one", "modern", epochs=1)
    after = evaluate_lm(model, data.ids["train"], CPU)["nll"]
    assert after < before
    assert list(curve["epoch"]) == [1] and curve.attrs["stop_reason"] == "max_epochs"
    row = curve.iloc[0]
    assert row["steps"] == 3 and row["tokens"] == data.predicted_tokens("train")
    assert row["compute_seconds"] <= row["train_seconds"] <= row["seconds"]


def test_seed_regime_reports_the_summed_squared_error(tmp_path):
    data = _tiny_data()
    settings = lm_settings("seed", 1, lr=0.0)  # weights stay put: the running mean equals the evaluated error
    model, curve = train_lm(data, "vanilla", 7, settings, 3, tmp_path / "c.pt", CPU)
    train_eval = evaluate_lm(model, data.ids["train"], CPU)
    valid_eval = evaluate_lm(model, data.ids["valid"], CPU)
    assert curve.loc[0, "train_squared_error"] == pytest.approx(train_eval["squared_error"], rel=1e-5)
    assert curve.loc[0, "valid_squared_error"] == pytest.approx(valid_eval["squared_error"], rel=1e-9)
    assert curve.loc[0, "train_nll"] == pytest.approx(train_eval["nll"], rel=1e-5)
    assert curve.loc[0, "steps"] == len(data.ids["train"])  # one step per chorale
    assert model.readout.weight.std() > 0.5  # N(0, 1) initialisation


def test_seed_regime_divides_lr_when_error_rises(tmp_path):
    data = _tiny_data()
    per_epoch = len(data.ids["train"])

    def shift_outputs(model, step):  # early in epoch 2 the outputs jump by 2: its mean error rises
        if step == per_epoch + 1:
            with torch.no_grad():
                model.readout.bias.add_(2.0)

    _, curve = train_lm(data, "gru", 6, lm_settings("seed", 4, lr=1e-4), 3, tmp_path / "c.pt", CPU,
                        step_hook=shift_outputs)
    error, lr = curve["train_squared_error"].tolist(), curve["lr"].tolist()
    assert error[1] > error[0]
    assert lr[1] == lr[0] == 1e-4  # epoch 1 fell (from +inf): no change
    assert lr[2] == pytest.approx(lr[1] / 1.5)  # epoch 2 rose: divided
    for i in (2, 3):  # afterwards: divided exactly when the error rose
        assert lr[i] == pytest.approx(lr[i - 1] / 1.5 if error[i - 1] > error[i - 2] else lr[i - 1])
    # Stop rule: a change below the tolerance ends training ("converged").
    _, stopped = train_lm(data, "gru", 6, lm_settings("seed", 10, tolerance=1e9), 3, tmp_path / "d.pt", CPU)
    assert len(stopped) == 2 and stopped.attrs["stop_reason"] == "converged"


@pytest.mark.parametrize(("regime", "kind"), [("modern", "gru"), ("seed", "lstm")])
def test_training_is_deterministic(tmp_path, regime, kind):
    a, curve_a = _run(tmp_path, "a", regime, kind, epochs=2)
    b, curve_b = _run(tmp_path, "b", regime, kind, epochs=2)
    _assert_same_weights(a, b)
    assert curve_a.drop(columns=TIME_COLUMNS).equals(curve_b.drop(columns=TIME_COLUMNS))


@pytest.mark.parametrize(("regime", "kind", "stop"), [
    ("modern", "gru", 4),  # mid-epoch, just after a periodic checkpoint
    ("modern", "lstm", 7),  # mid-epoch, off the periodic checkpoints (fused module)
    ("seed", "vanilla", 17),  # seed regime, mid-epoch
])
def test_resumed_run_equals_uninterrupted(tmp_path, regime, kind, stop):
    full, full_curve = _run(tmp_path, "full", regime, kind, epochs=4)
    with pytest.raises(TrainingStopped):
        _run(tmp_path, "cut", regime, kind, epochs=4, stop_after_steps=stop)
    assert load_checkpoint(tmp_path / "cut.pt")["loop"]["global_step"] == stop
    seen: list[int] = []
    resumed, resumed_curve = _run(tmp_path, "cut", regime, kind, epochs=4, step_hook=lambda _, s: seen.append(s))
    assert seen[0] == stop + 1 and seen[-1] == full_curve.attrs["steps"]  # it went on, not from the start
    _assert_same_weights(full, resumed)
    assert full_curve.drop(columns=TIME_COLUMNS).equals(resumed_curve.drop(columns=TIME_COLUMNS))
    assert resumed_curve.attrs == full_curve.attrs
    # A finished run's checkpoint gives its result at once, also through load_trained.
    again, _ = _run(tmp_path, "cut", regime, kind, epochs=4)
    _assert_same_weights(full, again)
    loaded, loaded_curve = load_trained(tmp_path / "cut.pt", CPU)
    _assert_same_weights(full, loaded)
    assert loaded_curve.drop(columns=TIME_COLUMNS).equals(full_curve.drop(columns=TIME_COLUMNS))


def test_crash_between_checkpoints_resumes_from_the_last_one(tmp_path):
    full, _ = _run(tmp_path, "full", "modern", "vanilla", epochs=3)

    def crash(model, step):
        if step == 5:  # checkpoints after steps 2, 3 (end of epoch 1) and 4: step 5 is replayed
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "crash", "modern", "vanilla", epochs=3, step_hook=crash)
    assert load_checkpoint(tmp_path / "crash.pt")["loop"]["global_step"] == 4
    seen: list[int] = []
    resumed, _ = _run(tmp_path, "crash", "modern", "vanilla", epochs=3, step_hook=lambda _, s: seen.append(s))
    assert seen[0] == 5
    _assert_same_weights(full, resumed)


def test_modern_regime_returns_the_best_model(tmp_path):
    data = _tiny_data()
    model, curve = _run(tmp_path, "best", "modern", "gru", epochs=6)
    best = int(curve["valid_nll"].idxmin())
    assert curve.attrs["best_epoch"] == best + 1
    assert evaluate_lm(model, data.ids["valid"], CPU)["nll"] == pytest.approx(curve.loc[best, "valid_nll"])


def test_corrupt_checkpoint_names_the_file(tmp_path):
    _run(tmp_path, "good", "modern", epochs=1)
    good = (tmp_path / "good.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    for path in (truncated, garbage):
        with pytest.raises(CheckpointError, match=re.escape(str(path))):
            _run(tmp_path, path.stem, "modern", epochs=2)
    # A valid checkpoint of another run is refused too.
    with pytest.raises(CheckpointError, match=re.escape(str(tmp_path / "good.pt"))):
        train_lm(_tiny_data(), "lstm", 7, lm_settings("modern", 2), 3, tmp_path / "good.pt", CPU)
    torch.save({"something": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match=re.escape(str(tmp_path / "foreign.pt"))):
        load_checkpoint(tmp_path / "foreign.pt")


def test_checkpoint_folder_keys_each_run_by_its_identity(tmp_path):
    """One checkpoint per run identity: another setting or vocabulary never meets this run's checkpoint, and the
    same run finds its own; a checkpoint trained past max_epochs is set aside, not returned."""
    data, folder = _tiny_data(), tmp_path / "job"

    def run(settings, data=data):
        return train_lm(data, "gru", 7, settings, 3, None, CPU, checkpoint_dir=folder)

    modern, faster = lm_settings("modern", 3), lm_settings("modern", 3, lr=0.02)
    first, first_curve = run(modern)
    other, _ = run(faster)
    renamed = TokenData(["<unk>", *VOCAB[1:5], "cis'4", *VOCAB[6:]], data.ids, data.numbers, data.notes)
    run(modern, renamed)
    names = {checkpoint_path(folder, d, "gru", 7, s, 3).name
             for d, s in ((data, modern), (data, faster), (renamed, modern))}
    assert len(names) == 3 and {p.name for p in folder.iterdir()} == names
    # checkpoint_every is no part of the identity; the finished run is found and returned at once.
    seen: list[int] = []
    again, _ = train_lm(data, "gru", 7, lm_settings("modern", 3, checkpoint_every=7), 3, None, CPU,
                        checkpoint_dir=folder, step_hook=lambda _, s: seen.append(s))
    assert not seen
    _assert_same_weights(first, again)
    # Fewer epochs than the checkpoint holds: trained afresh, as a run of that many epochs from the start.
    shorter, shorter_curve = run(lm_settings("modern", 2))
    fresh, fresh_curve = _run(tmp_path, "fresh", "modern", "gru", epochs=2)
    _assert_same_weights(shorter, fresh)
    assert list(shorter_curve["epoch"]) == [1, 2]
    assert shorter_curve.drop(columns=TIME_COLUMNS).equals(fresh_curve.drop(columns=TIME_COLUMNS))
    with pytest.raises(ValueError, match="either a checkpoint file or a checkpoint folder"):
        train_lm(data, "gru", 7, lm_settings("modern", 1), 3, tmp_path / "x.pt", CPU, checkpoint_dir=folder)
    assert first_curve.attrs["stop_reason"] == "max_epochs"
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), other.state_dict().values(),
                                                      strict=True))


def test_seed_bias_is_part_of_the_run_identity(tmp_path):
    """A checkpoint trained with N(0, 1) biases is never resumed, nor returned, under ``bias: zero``: the key is
    one of the settings the identity holds, so each value keys its own checkpoint."""
    data, folder = _tiny_data(), tmp_path / "job"
    zero, normal = lm_settings("seed", 1, bias="zero"), lm_settings("seed", 1, bias="normal")
    paths = {s.bias: checkpoint_path(folder, data, "gru", 7, s, 3) for s in (zero, normal)}
    assert paths["zero"] != paths["normal"]
    train_lm(data, "gru", 7, normal, 3, None, CPU, checkpoint_dir=folder)
    seen: list[int] = []
    trained, _ = train_lm(data, "gru", 7, zero, 3, None, CPU, checkpoint_dir=folder,
                          step_hook=lambda _, s: seen.append(s))
    assert seen  # trained from its own start, not returned from the normal run's checkpoint
    assert {p.name for p in folder.iterdir()} == {p.name for p in paths.values()}
    assert json.loads(load_checkpoint(paths["zero"])["identity"])["settings"]["bias"] == "zero"
    loaded, _ = load_trained(paths["zero"], CPU)
    _assert_same_weights(loaded, trained)


def test_settings_are_checked_when_built():
    """A regime block becomes settings once; an unknown, missing or mistyped key names the config key."""
    block = {**LM_BLOCKS["modern"], "max_epochs": 1}
    with pytest.raises(ConfigError, match=r"^lm\.regimes\.modern: unknown key\(s\) \['embeding'\]"):
        regime_settings("modern", {**block, "embeding": 4})
    with pytest.raises(ConfigError, match=r"^lm\.regimes\.modern: missing key\(s\) \['lr_patience'\]"):
        regime_settings("modern", {k: v for k, v in block.items() if k != "lr_patience"})
    with pytest.raises(ConfigError, match=r"^lm\.regimes\.modern\.batch_size: 4\.5 is not an integer"):
        regime_settings("modern", {**block, "batch_size": 4.5})
    with pytest.raises(ConfigError, match="unknown regime 'adam'"):
        regime_settings("adam", block)
    settings = regime_settings("modern", block)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.lr = 1.0  # type: ignore[misc]


def test_config_yaml_sets_every_knob_as_the_schema_defaults_do():
    """config.yaml lists every regime key; where the schema has a default (for older configs), it is the same,
    but for the data keys (``transpose``): their default is the report's data, whatever config.yaml chose."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text(encoding="utf-8"))
    regimes = schema["properties"]["lm"]["properties"]["regimes"]["properties"]
    for regime, block in config["lm"]["regimes"].items():
        regime_settings(regime, block)  # complete and well typed
        assert all(k in block and regimes[regime]["properties"][k]["default"] == [] for k in DATA_KEYS[regime])
        defaults = {k: v["default"] for k, v in regimes[regime]["properties"].items()
                    if "default" in v and k not in DATA_KEYS[regime]}
        assert defaults, regime
        assert {k: block[k] for k in defaults} == defaults


@pytest.mark.parametrize("regime", ["seed", "modern"])
def test_non_finite_step_is_not_applied_and_stops(tmp_path, regime):
    left = {}

    def blow_up(model, step):
        if step == 4:  # mid-epoch in both regimes
            with torch.no_grad():
                model.readout.bias[0] = math.inf  # the next step's loss is not finite
            left.update({k: v.clone() for k, v in model.state_dict().items()})

    model, curve = _run(tmp_path, "nan", regime, "gru", epochs=5, step_hook=blow_up)
    assert curve.attrs["stop_reason"] == "diverged" and curve.attrs["steps"] == 5
    assert len(curve) == 2 if regime == "modern" else len(curve) == 1
    if regime == "seed":  # the last weights are returned: those the hook left, the overflowing step not applied
        for key, value in model.state_dict().items():
            assert torch.equal(value, left[key]), key


@pytest.mark.parametrize(("train", "valid", "regime", "reason"), [
    (0, 4, "seed", "has no training chorales"),
    (12, 0, "modern", "needs validation chorales"),
])
def test_missing_split_names_the_config_key(tmp_path, train, valid, regime, reason):
    with pytest.raises(TokenDataError, match=rf"^chorales\.split: .*{reason}"):
        train_lm(_tiny_data(train=train, valid=valid), "gru", 4, lm_settings(regime, 1), 0, None, device=CPU,
                 checkpoint_dir=tmp_path)


@pytest.mark.parametrize("kind", ["vanilla", "gru", "lstm"])
def test_compiled_seed_steps_follow_autograd(tmp_path, kind):
    """The seed regime's compiled steps end where autograd's do: same curve up to float32 rounding, same weights
    to ~1e-5, and the same stop (the LSTM's weights live in torch's fused module: transposed both ways)."""
    data = _tiny_data()
    runs = {c: train_lm(data, kind, 7, lm_settings("seed", 3), 3, tmp_path / f"{c}.pt", CPU, compiled=c)
            for c in (False, True)}
    (reference, ref_curve), (fast, fast_curve) = runs[False], runs[True]
    for (name, expected), (_, actual) in zip(reference.named_parameters(), fast.named_parameters(), strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5, msg=name)
    columns = ["train_nll", "valid_nll", "train_squared_error", "valid_squared_error", "lr"]
    np.testing.assert_allclose(fast_curve[columns], ref_curve[columns], rtol=1e-5)
    assert fast_curve.attrs["stop_reason"] == ref_curve.attrs["stop_reason"]
    assert list(fast_curve["steps"]) == list(ref_curve["steps"])


@pytest.mark.parametrize("kind", ["vanilla", "gru", "lstm"])
def test_compiled_modern_recurrence_follows_autograd(tmp_path, kind):
    """The modern regime with its recurrence by the compiled kernels ends where torch's recurrence does: same curve
    up to float32 rounding, same weights to ~1e-5, same stop (dropout draws the same masks on both paths)."""
    data = _tiny_data()
    runs = {c: train_lm(data, kind, 7, lm_settings("modern", 3), 3, tmp_path / f"{c}.pt", CPU, compiled=c)
            for c in (False, True)}
    (reference, ref_curve), (fast, fast_curve) = runs[False], runs[True]
    assert fast.compiled and not reference.compiled
    for (name, expected), (_, actual) in zip(reference.named_parameters(), fast.named_parameters(), strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5, msg=name)
    columns = ["train_nll", "valid_nll", "train_squared_error", "valid_squared_error", "lr"]
    np.testing.assert_allclose(fast_curve[columns], ref_curve[columns], rtol=1e-5)
    assert fast_curve.attrs["stop_reason"] == ref_curve.attrs["stop_reason"]
