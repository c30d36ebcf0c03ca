"""Transposition augmentation (issue 14 part A): shifted copies of the training chorales only, the extended
vocabulary, and the run identity of a model trained on them."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rnnmem.chorales import dataset as ds
from rnnmem.chorales.events import shift_pitch, transpose_by
from rnnmem.chorales.store import write_chorales
from rnnmem.core.errors import ConfigError
from rnnmem.lm.data import load_token_data
from rnnmem.lm.settings import regime_settings, regime_shifts
from rnnmem.lm.train import checkpoint_path
from tests.chorales.test_chorale_dataset import chorale, dataset_chorales
from tests.regimes import LM_BLOCKS, lm_settings

SHIFTS = [-2, -1, 1, 2]


@pytest.mark.parametrize(("pitch", "shift", "expected"), [
    ("c'", 2, "d'"), ("c'", -2, "bes"), ("c'", 1, "cis'"), ("c'", -1, "b"), ("c'", 3, "ees'"), ("c'", -3, "a"),
    ("fis'", 1, "g'"), ("bes'", 2, "c''"), ("b'", 1, "c''"), ("e''", 5, "a''"), ("e'", -1, "ees'"),
    ("gis'", 2, "bes'"), ("dis'", 1, "e'"), ("aes'", -2, "fis'"),
])
def test_shift_spells_each_shift_with_one_interval(pitch: str, shift: int, expected: str) -> None:
    """One music21 interval per shift, interval.Interval(n), a chromatic one: the moved pitch gets music21's
    default spelling of its pitch class (c cis d ees e f fis g gis a bes b), whatever the original spelling."""
    assert shift_pitch(pitch, shift) == expected


def test_shifted_copy_of_a_known_chorale_gives_the_expected_tokens() -> None:
    melody = chorale(7, "c'4 d'8 e'8~ | e'4 \\ r4 g'2")
    assert ds.chorale_tokens(transpose_by(melody, 2)) == ["<s>", "d'4", "e'8", "fis'8~", "|", "fis'4", "\\", "r4",
                                                           "a'2", "</s>"]
    assert ds.chorale_tokens(transpose_by(melody, -1))[1:4] == ["b4", "cis'8", "ees'8~"]
    assert transpose_by(melody, 2).key_tonic == "d"


def test_extend_vocab_keeps_every_base_id() -> None:
    base = ["<unk>", "<s>", "</s>", "c'4", "d'4"]
    extended = ds.extend_vocab(base, [["<s>", "d'4", "e'4", "fis'4", "e'4", "</s>"], ["<s>", "fis'4", "</s>"]])
    assert extended[:len(base)] == base
    assert extended[len(base):] == ["e'4", "fis'4"]  # equal counts: lexicographic
    assert ds.extend_vocab(base, [["<s>", "c'4", "</s>"]]) == base


@pytest.fixture
def base_set(tmp_path):
    chorales = dataset_chorales()
    write_chorales(tmp_path / "transposed.jsonl", chorales)
    ds.write_dataset(chorales, tmp_path, seed=1, valid=0.2, test=0.2, skipped_count=0)
    return tmp_path


def records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_augmentation_copies_training_chorales_only(base_set) -> None:
    out = base_set / "augmented"
    ds.write_augmented(base_set / "tokens.jsonl", base_set / "vocab.json", base_set / "transposed.jsonl", SHIFTS, out)
    base, augmented = records(base_set / "tokens.jsonl"), records(out / "tokens.jsonl")
    base_vocab, vocab = json.loads((base_set / "vocab.json").read_text()), json.loads((out / "vocab.json").read_text())
    assert vocab[:len(base_vocab)] == base_vocab
    train = [r for r in base if r["split"] == "train"]
    assert len(augmented) == len(base) + len(SHIFTS) * len(train)
    copies = [r for r in augmented if r["shift"] != 0]
    assert {r["split"] for r in copies} == {"train"}
    assert sorted((r["number"], r["shift"]) for r in copies) == sorted(
        (r["number"], s) for r in train for s in SHIFTS)
    by_number = {c.number: c for c in dataset_chorales()}
    for copy in copies:
        assert copy["tokens"] == ds.chorale_tokens(transpose_by(by_number[copy["number"]], copy["shift"]))
    # valid and test: the same chorales and tokens; ids equal but where a former <unk> now has its own token
    originals = [r for r in augmented if r["shift"] == 0]
    assert [(r["number"], r["split"], r["tokens"]) for r in originals] == [
        (r["number"], r["split"], r["tokens"]) for r in base]
    recoded = 0
    for old, new in zip(base, originals, strict=True):
        for token, old_id, new_id in zip(old["tokens"], old["ids"], new["ids"], strict=True):
            assert vocab[new_id] == (token if token in vocab else "<unk>")
            if old_id != new_id:
                assert old_id == 0 and vocab[new_id] == token
                recoded += old["split"] != "train"
    stats = pd.read_csv(out / "stats.csv")
    value = {(row.split, row.quantity): row.value for row in stats.itertuples()}
    assert value[("all", "vocabulary")] == len(vocab) and value[("all", "vocabulary_base")] == len(base_vocab)
    assert value[("train", "chorales")] == len(train) * (1 + len(SHIFTS))
    removed = sum(value[(s, "unknown_tokens_base")] - value[(s, "unknown_tokens")] for s in ("valid", "test"))
    assert removed == recoded
    data = load_token_data(out / "tokens.jsonl", out / "vocab.json")  # the language models read it
    assert len(data.ids["train"]) == value[("train", "chorales")]


def test_augmented_data_is_another_run_identity(base_set, tmp_path) -> None:
    out = base_set / "augmented"
    ds.write_augmented(base_set / "tokens.jsonl", base_set / "vocab.json", base_set / "transposed.jsonl", [1], out)
    settings = lm_settings("modern", 3)
    base = load_token_data(base_set / "tokens.jsonl", base_set / "vocab.json")
    augmented = load_token_data(out / "tokens.jsonl", out / "vocab.json")
    folder = tmp_path / "checkpoints"
    assert checkpoint_path(folder, base, "gru", 7, settings, 0) != checkpoint_path(folder, augmented, "gru", 7,
                                                                                    settings, 0)


@pytest.mark.parametrize("shifts", [[0, 1], [12], [1, 1], [True], [1.5], "1"])
def test_bad_shifts_are_one_line_naming_the_key(shifts) -> None:
    with pytest.raises(ConfigError, match=r"^lm\.regimes\.modern\.transpose: "):
        regime_shifts("modern", {"transpose": shifts})


def test_transpose_is_data_not_a_training_setting() -> None:
    block = {**LM_BLOCKS["modern"], "max_epochs": 3}
    assert regime_settings("modern", {**block, "transpose": [-1, 1]}) == regime_settings("modern", block)
    assert regime_shifts("modern", {**block, "transpose": [2, -1]}) == [-1, 2]
    with pytest.raises(ConfigError, match="transpose"):
        regime_settings("seed", {**LM_BLOCKS["seed"], "max_epochs": 3, "transpose": [1]})


def test_budget_matched_on_the_base_vocabulary_and_true_parameter_count(base_set, tmp_path, one_torch_thread):
    """The augmented model keeps the hidden size its budget gives on the base vocabulary (the added tokens only add
    embedding rows and read-out columns), and its scores row counts those parameters too."""
    from rnnmem.lm import jobs as lm_jobs
    from rnnmem.lm.model import lm_parameter_count

    out = base_set / "augmented"
    ds.write_augmented(base_set / "tokens.jsonl", base_set / "vocab.json", base_set / "transposed.jsonl", SHIFTS, out)
    base_size = len(json.loads((base_set / "vocab.json").read_text()))
    vocab_size = len(json.loads((out / "vocab.json").read_text()))
    assert vocab_size > base_size
    block = {**LM_BLOCKS["modern"], "embedding": 4, "patience": 1, "max_epochs": 1, "transpose": SHIFTS}
    params = {"model": {"name": "gru_b", "model": "gru", "size": "report", "params": 600}, "regime": "modern",
              "settings": block, "seed": 0, "source": "music21", "transpose": SHIFTS}
    settings = regime_settings("modern", block)
    hidden = lm_jobs.model_hidden(params["model"], base_size, settings)
    assert hidden != lm_jobs.model_hidden(params["model"], vocab_size, settings)
    lm_jobs.lm_train(params, out / "tokens.jsonl", out / "vocab.json", tmp_path / "ckpt", tmp_path / "m.pt",
                     tmp_path / "curve.csv", budget_vocab=base_set / "vocab.json")
    assert set(pd.read_csv(tmp_path / "curve.csv")["hidden"]) == {hidden}
    lm_jobs.lm_score(params, out / "tokens.jsonl", out / "vocab.json", tmp_path / "m.pt", tmp_path / "score.csv")
    score = pd.read_csv(tmp_path / "score.csv", dtype={"transpose": str})
    assert score.loc[0, "hidden"] == hidden and score.loc[0, "transpose"] == "-2 -1 1 2"
    assert score.loc[0, "params"] == lm_parameter_count("gru", vocab_size, hidden, 4)
