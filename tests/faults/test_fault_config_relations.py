"""Fault suite: a config that some job would reject is refused when the Snakefile is parsed (issue 10, item 5).

Each bad relation passes the JSON schema and is caught by :func:`rnnmem.config.check_config`, whose message names
the key; each size above its schema bound is refused by the schema (the bound's reason is in its description); and
a real ``snakemake -n`` on a workflow copy fails before any job runs, naming the key.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import config_edit, copy_workflow, run_snakemake
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from rnnmem.config import ConfigError, check_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture
def config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))


_set = config_edit


def _both(*edits: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        for one in edits:
            one(config)

    return edit


# (label, edit, key the message starts with): each edit keeps the config valid for the schema.
RELATIONS = [
    # What a job relies on, new in this check
    ("split_sums_to_one", _set("chorales.split", {"seed": 0, "valid": 0.5, "test": 0.5, "similarity": 0.7}),
     "chorales.split"),
    ("too_few_chorales_for_the_splits", _set("chorales.numbers", [1, 2]), "chorales.numbers"),
    ("reber_check_every_beyond_max_strings", _set("reber.check_every", 200000), "reber.check_every"),
    ("toy_check_every_beyond_max_strings", _set("toy_language.check_every", 30000), "toy_language.check_every"),
    ("reber_batch_larger_than_training_set", _set("reber.regimes.modern.batch_size", 257),
     "reber.regimes.modern.batch_size"),
    ("toy_batch_larger_than_training_set", _set("toy_language.regime.batch_size", 65),
     "toy_language.regime.batch_size"),
    ("no_gradient_ever_logged", _set("reber.gradient_log", {"dense_strings": 0, "every_strings": 200000}),
     "reber.gradient_log.every_strings"),
    ("reber_strings_beyond_memory", _both(_set("reber.n_seeds", 1000), _set("reber.train_strings", 20000)),
     "reber.n_seeds"),
    ("capacity_readout_underdetermined", _both(_set("memory.capacity.washout", 10),
                                               _set("memory.capacity.train_length", 40)),
     "memory.capacity.train_length"),
    ("dlk_beyond_memory", _both(_set("memory.dlk.draws", 100000), _set("memory.dlk.k", [1, 5, 10, 30, 50, 1000])),
     "memory.dlk.draws"),
    ("capacity_beyond_memory", _both(_set("memory.capacity.reservoirs", 1000), _set("memory.capacity.max_lag", 10000),
                                     _set("memory.capacity.train_length", 1000000)),
     "memory.capacity.reservoirs"),
    ("temperatures_with_one_file_name", _set("lm.sampling.temperatures", [0.5, 1.0, 1.0000001]),
     "lm.sampling.temperatures[2]"),
    ("figure21_needs_engraving", _set("lm.sampling.engrave", False), "lm.sampling.engrave"),
    # References checked before (kept here so the suite lists every relation)
    ("match_params_of_later", _set("reber.experiments.2.match_params_of", "embedded_lstm"),
     "reber.experiments[2].match_params_of"),
    ("figure_experiment_of_other_grammar", _set("reber.figures.fig10", "reber_vanilla5"), "reber.figures.fig10"),
    ("gradient_experiment_not_embedded", _set("memory.gradients.experiments", ["reber_vanilla5"]),
     "memory.gradients.experiments[0]"),
    ("dlk_curve_k_not_computed", _set("memory.dlk.curves_k", [1, 7]), "memory.dlk.curves_k"),
    ("capacity_train_within_washout", _set("memory.capacity.train_length", 200), "memory.capacity.train_length"),
    ("figure21_model_unknown", _set("lm.figure21.models", ["vanilla_30k", "rnn_30k"]), "lm.figure21.models[1]"),
    ("figure21_temperature_not_sampled", _set("lm.figure21.temperature", 2.0), "lm.figure21.temperature"),
    ("lm_name_twice", _set("lm.models.1.name", "vanilla_30k"), "lm.models[1].name"),
    ("chorale_selection_without_figure19", _set("chorales.numbers", [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
     "chorales.numbers"),
]


@pytest.mark.parametrize(("label", "edit", "key"), RELATIONS, ids=[r[0] for r in RELATIONS])
def test_bad_relation_is_refused_naming_the_key(config: dict, label: str, edit, key: str) -> None:
    edit(config)
    validate(copy.deepcopy(config), SCHEMA)  # well-typed: only the relation check can catch it
    with pytest.raises(ConfigError) as info:
        check_config(config)
    assert str(info.value).startswith(f"{key}: "), (label, str(info.value))


def test_valid_split_of_zero_is_refused(config: dict) -> None:
    """No validation chorales: the n-gram order cannot be chosen (schema and check both refuse it)."""
    config["chorales"]["split"]["valid"] = 0
    with pytest.raises(ConfigError, match=r"^chorales\.split\.valid: "):
        check_config(config)
    with pytest.raises(WorkflowError, match="valid"):
        validate(copy.deepcopy(config), SCHEMA)


# Sizes past their schema bound (each bound's description gives the reason).
BOUNDS = [
    ("reber.n_seeds", 1001), ("reber.train_strings", 1_000_000_000), ("reber.test_strings", 10001),
    ("reber.max_strings", 10_000_001), ("reber.experiments.0.hidden", 1001),
    ("reber.indistinguishable_random_draws", 10001), ("reber.regimes.seed.max_epochs", 100001),
    ("toy_language.train_strings", 1001), ("toy_language.test_strings", 1001), ("toy_language.hidden", 1001),
    ("memory.gradients.lag_strings", 10001), ("memory.dlk.draws.vanilla", 100001), ("memory.dlk.max_l", 100001),
    ("memory.dlk.k", [1, 1001]), ("memory.capacity.k", [1001]), ("memory.capacity.washout", 1_000_001),
    ("memory.capacity.train_length", 1_000_001), ("memory.capacity.test_length", 1_000_001),
    ("memory.capacity.max_lag", 10001), ("memory.capacity.reservoirs", 1001), ("lm.models.0.params", 10_000_001),
    ("lm.regimes.modern.max_epochs", 10001), ("lm.regimes.modern.batch_size", 1025),
    ("lm.regimes.modern.embedding", 4097), ("lm.sampling.count", 1001), ("lm.sampling.max_tokens", 10001),
    ("lm.sampling.engrave_timeout", 3601),
]


@pytest.mark.parametrize(("path", "value"), BOUNDS, ids=[b[0] for b in BOUNDS])
def test_size_beyond_its_bound_is_refused_by_the_schema(config: dict, path: str, value) -> None:
    _set(path, value)(config)
    with pytest.raises(WorkflowError) as info:
        validate(config, SCHEMA)
    text = str(info.value)
    assert "is greater than the maximum" in text and "description" in text, text[:2000]
    assert path.split(".")[-1] in text, text[:2000]


@pytest.mark.parametrize(
    ("label", "overlay", "needle"),
    [
        ("split_sums_to_one", "chorales:\n  split: {seed: 0, valid: 0.5, test: 0.5, similarity: 0.7}\n",
         "chorales.split: valid + test = 0.5 + 0.5 must be below 1"),
        ("train_strings_unbounded", "reber:\n  train_strings: 1000000000\n",
         "1000000000 is greater than the maximum of 20000"),
    ],
    ids=["split_sums_to_one", "train_strings_unbounded"],
)
def test_dry_run_fails_naming_the_key(tmp_path: Path, label: str, overlay: str, needle: str) -> None:
    workdir = copy_workflow(tmp_path)
    (workdir / "bad.yaml").write_text(overlay, encoding="utf-8")
    done = run_snakemake(workdir, "-n", "--quiet", "--configfile", "bad.yaml", check=False, timeout=300)
    output = done.stdout + done.stderr  # Snakemake prints a parse error on stdout or stderr, by version
    assert done.returncode != 0, output[-4000:]
    assert needle in output, output[-4000:]
    assert "Building DAG" not in output, output[-4000:]  # refused before any job is planned
    if label == "train_strings_unbounded":
        assert "train_strings" in output
