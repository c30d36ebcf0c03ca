"""The melody-benchmark jobs (rnnmem.melody.jobs) on synthetic melodies and a few chorales, the merge, the config."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from rnnmem.config import check_config
from rnnmem.core.errors import ConfigError
from rnnmem.melody import jobs
from rnnmem.melody.benchmark import benchmark_ppm
from rnnmem.melody.corpus import Melody, Note, read_json, write_json
from rnnmem.melody.tunes import tune_groups

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
FOLD_PARAMS = {"seed": 0, "folds": 3}
TINY = {"cell": "gru", "hidden": 8, "embed": 4, "dropout": 0.1, "epochs": 2, "patience": 2, "batch_size": 4,
        "lr": 0.01, "lr_patience": 1, "weight_decay": 0.0, "shifts": [-1, 0, 1], "viewpoints": True, "heads": True,
        "combine": "logits", "seeds": [0], "ppm": True, "refit": False}


def synthetic_melodies(count: int = 12, seed: int = 0) -> list[Melody]:
    """Random walks over a C-major-ish range, different tunes (so grouped folds are by melody)."""
    rng = np.random.default_rng(seed)
    melodies = []
    for index in range(count):
        pitch, notes = 67, []
        for position in range(int(rng.integers(15, 30))):
            pitch = int(np.clip(pitch + rng.choice([-3, -2, -1, 0, 1, 2, 3, 5]), 60, 79))
            notes.append(Note(pitch, 1.0, float(position), float(position % 4), position % 8 == 7))
        melodies.append(Melody(253 + index, 7, "major", "4/4", notes))
    return melodies


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("melody") / "melodies.json"
    write_json(synthetic_melodies(), path)
    return path


def test_baselines_write_every_note_of_every_fold(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "baselines.csv"
    jobs.melody_baselines({**FOLD_PARAMS, "kind": "plain", "ngram_orders": [1, 2]}, corpus, out)
    table = pd.read_csv(out)
    melodies = read_json(corpus)
    total = sum(len(m.notes) for m in melodies)
    assert list(table.columns) == jobs.NOTE_COLUMNS
    assert sorted(table["model"].unique()) == sorted([*jobs.PPM_MODELS.values(), jobs.NGRAM_MODEL])
    assert (table.groupby("model").size() == total).all()
    assert set(table["fold"]) == {0, 1, 2} and (table["kind"] == "plain").all()
    assert np.isfinite(table["bits"]).all() and (table["bits"] > 0).all()
    # every (bwv, note) of the corpus once per model
    assert len(table[table["model"] == "ppm_ltm"][["bwv", "note"]].drop_duplicates()) == total
    # the PPM rows are the yardstick's own numbers on the same folds
    folds = jobs.corpus_folds(melodies, "plain", FOLD_PARAMS)
    reference = benchmark_ppm(melodies, folds, n_folds=3)
    assert table[table["model"] == "ppm_ltm+stm"]["bits"].mean() == pytest.approx(reference["mean"]["both"], abs=1e-5)


def test_ngram_is_a_distribution_over_the_pitches() -> None:
    from rnnmem.lm.ngram import KneserNeyLM

    alphabet = [60, 62, 64, 65, 67]
    index = {p: i for i, p in enumerate(alphabet)}
    train = [jobs._ngram_ids(s, index) for s in ([60, 62, 64, 62, 60], [64, 65, 67, 65, 64], [60, 64, 67])]
    model = KneserNeyLM(3, len(alphabet) + 2, begin_id=jobs.BEGIN, end_id=jobs.END).fit(train)
    for context in ([jobs.BEGIN], [jobs.BEGIN, 2], [3, 4], [6, 6]):
        total = sum(2 ** -jobs.ngram_bits(model, [[*context[:-1], context[-1], i + 2]])[-1] for i in range(5))
        assert total == pytest.approx(1.0)


def test_neural_job_writes_one_fold(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "neural.csv"
    jobs.melody_neural({**FOLD_PARAMS, "kind": "grouped", "fold": 1, "neural": TINY}, corpus, out)
    table = pd.read_csv(out)
    melodies = read_json(corpus)
    folds = jobs.corpus_folds(melodies, "grouped", FOLD_PARAMS)
    notes = sum(len(m.notes) for m, f in zip(melodies, folds, strict=True) if f == 1)
    assert list(table.columns) == jobs.NOTE_COLUMNS
    # the PPM alone (a baseline row already) and the pitch head alone (a diagnostic) are left out
    assert {"neural_seed0", "neural_seed0+ppm"} == set(table["model"])
    assert (table.groupby("model").size() == notes).all() and set(table["fold"]) == {1}
    assert np.isfinite(table["bits"]).all()


def test_neural_job_rejects_a_fold_out_of_range(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"melody\.folds"):
        jobs.melody_neural({**FOLD_PARAMS, "kind": "grouped", "fold": 3, "neural": TINY}, corpus, tmp_path / "n.csv")


def test_benchmark_table_means_over_notes_and_fold_sd() -> None:
    notes = pd.DataFrame({"kind": "grouped", "fold": [0, 0, 0, 1], "bwv": 253, "note": [0, 1, 2, 0], "model": "m",
                          "bits": [1.0, 2.0, 3.0, 4.0]})
    table = jobs.benchmark_table(notes)
    row = table.iloc[0]
    assert (row["kind"], row["model"], row["source"]) == ("grouped", "m", "this run")
    assert row["bits_per_note"] == pytest.approx(2.5)  # over notes, not the mean of fold means (3.0)
    assert row["fold_sd"] == pytest.approx(math.sqrt(2.0))  # sd of 2 and 4
    assert (row["notes"], row["folds"]) == (4, 2)
    published = table[table["source"] == "published"].set_index("model")["bits_per_note"]
    assert published["Pearce 2005 System A (PPM LTM+STM)"] == 2.337
    assert sorted(published) == [1.87, 1.911, 1.953, 2.045, 2.337]


def test_benchmark_job_writes_table_markdown_and_figure(corpus: Path, tmp_path: Path) -> None:
    part = tmp_path / "part.csv"
    pd.DataFrame({"kind": "plain", "fold": [0, 1, 2], "bwv": [253, 254, 255], "note": 0, "model": "x",
                  "bits": [2.0, 2.5, 3.0]}).to_csv(part, index=False)
    table, markdown, figure = tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "f.png"
    jobs.melody_benchmark(corpus, [part], table, markdown, figure)
    frame = pd.read_csv(table)
    assert list(frame.columns) == jobs.TABLE_COLUMNS and frame.loc[0, "bits_per_note"] == pytest.approx(2.5)
    text = markdown.read_text()
    assert "| plain | x | 2.500 | 0.500 | 3 | 3 | this run |" in text and "9,227" in text
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_corpus_job_parses_a_bwv_range(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    jobs.melody_corpus({"bwv": [253, 255], "fix_octave_errors": True}, out)
    melodies = read_json(out)
    assert [m.bwv for m in melodies] == [253, 254, 255]
    assert any(m.corrections for m in melodies)  # BWV 254's octave error
    assert json.loads(out.read_text())["version"] == 1
    assert tune_groups(melodies)  # the folds' input


def shipped() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))


def test_config_neural_block_is_the_best_preset() -> None:
    from rnnmem.melody.neural import PRESETS

    assert jobs.neural_settings(shipped()["melody"]["neural"]) == PRESETS["best"]


@pytest.mark.parametrize("edit, key", [
    (lambda b: b.update(foo=1), "melody.neural.foo"),
    (lambda b: b.pop("hidden"), "melody.neural.hidden"),
])  # fmt: skip
def test_neural_settings_name_a_bad_key(edit, key: str) -> None:
    block = copy.deepcopy(shipped()["melody"]["neural"])
    edit(block)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as error:
        jobs.neural_settings(block)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("path, value", [
    (("neural", "foo"), 1), (("folds",), 1), (("kinds",), ["random"]), (("bwv",), [253]), (("neural", "cell"), "rnn"),
    (("neural", "shifts"), [13]),
])  # fmt: skip
def test_schema_rejects_bad_melody_settings(path: tuple, value) -> None:
    config = shipped()
    block = config["melody"]
    for key in path[:-1]:
        block = block[key]
    block[path[-1]] = value
    with pytest.raises(WorkflowError):
        validate(config, SCHEMA)


def test_bwv_span_must_run_upwards() -> None:
    config = shipped()
    config["melody"]["bwv"] = [300, 290]
    validate(copy.deepcopy(config), SCHEMA)
    with pytest.raises(ConfigError, match=r"melody\.bwv"):
        check_config(config)
