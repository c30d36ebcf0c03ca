"""config.yaml against the JSON schema and the cross-reference checks of rnnmem.config."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import config_edit
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from rnnmem.config import ConfigError, check_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
CONFIGS = [ROOT / "config.yaml", ROOT / "tests" / "config.smoke.yaml"]


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture
def config() -> dict:
    return load(ROOT / "config.yaml")


def error_text(error: BaseException) -> str:
    parts = [str(error), *(str(a) for a in error.args)]
    if error.__cause__ is not None:
        parts.append(str(error.__cause__))
    return "\n".join(parts)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    config = load(path)
    validate(copy.deepcopy(config), SCHEMA)
    check_config(config)


def _set(keys: tuple, value) -> Callable[[dict], None]:
    return config_edit(".".join(str(key) for key in keys), value)


SCHEMA_ERRORS = [
    ("wrong_type", _set(("reber", "n_seeds"), "thirty"), ["n_seeds", "thirty"]),
    ("negative_size", _set(("reber", "train_strings"), -1), ["train_strings", "-1"]),
    ("zero_size", _set(("toy_language", "hidden"), 0), ["hidden", "0"]),
    ("unknown_model", _set(("reber", "experiments", 0, "model"), "transformer"), ["transformer", "'model'"]),
    ("unknown_grammar", _set(("reber", "experiments", 1, "grammar"), "dyck"), ["dyck"]),
    ("unknown_activation", _set(("reber", "experiments", 0, "activation"), "relu"), ["relu"]),
    (
        "unknown_regime",
        _set(("reber", "regimes", "adam"), {"lr": 0.1, "batch_size": 8, "clip_norm": 1.0, "init": "uniform"}),
        ["adam"],
    ),
    ("unknown_top_level_key", _set(("plots",), {"dpi": 300}), ["plots"]),
    ("unknown_regime_key", _set(("reber", "regimes", "seed", "momentum"), 0.9), ["momentum"]),
    ("figure_regime_name", _set(("reber", "figures", "regime"), "sgd"), ["sgd"]),
    ("bad_init", _set(("toy_language", "regime", "init"), "xavier"), ["xavier"]),
    ("bad_reber_bias", _set(("reber", "regimes", "seed", "bias"), "x"), ["bias", "'x'"]),
    ("bad_lm_bias", _set(("lm", "regimes", "seed", "bias"), "uniform"), ["bias", "uniform"]),
    ("bias_on_modern", _set(("reber", "regimes", "modern", "bias"), "zero"), ["bias"]),
    ("zero_shift", _set(("lm", "regimes", "modern", "transpose"), [0, 1]), ["transpose", "0"]),
    ("shift_beyond_octave", _set(("lm", "regimes", "modern", "transpose"), [12]), ["transpose", "12"]),
    ("transpose_on_seed", _set(("lm", "regimes", "seed", "transpose"), [1]), ["transpose"]),
    ("zero_seeds", _set(("lm", "n_seeds", "modern"), 0), ["n_seeds", "0"]),
    ("seeds_of_unknown_regime", _set(("lm", "n_seeds", "adam"), 2), ["adam"]),
    ("bad_experiment_name", _set(("reber", "experiments", 0, "name"), "has space"), ["has space"]),
    ("dlk_k_below_1", _set(("memory", "dlk", "k"), [0, 5]), ["k", "0"]),
    ("dlk_l_below_1", _set(("memory", "dlk", "max_l"), 0), ["max_l", "0"]),
    ("dlk_draws_below_1", _set(("memory", "dlk", "draws"), 0), ["draws", "0"]),
    ("dlk_draws_mapping_below_1", _set(("memory", "dlk", "draws"), {"vanilla": 0, "gru": 5}), ["draws", "0"]),
    ("dlk_bad_bias", _set(("memory", "dlk", "bias"), "uniform"), ["bias", "uniform"]),
    ("dlk_bad_input", _set(("memory", "dlk", "input"), "binary"), ["input", "binary"]),
    ("dlk_bad_threshold", _set(("memory", "dlk", "tail_threshold"), 0), ["tail_threshold", "0"]),
    ("dlk_unknown_model", _set(("memory", "dlk", "models"), ["vanilla", "lstm"]), ["lstm"]),
    ("dlk_bad_scale", _set(("memory", "dlk", "weight_scale"), "inv_k"), ["weight_scale", "inv_k"]),
    ("mc_rho_zero", _set(("memory", "capacity", "esn", "rho"), 0), ["rho", "0"]),
    ("mc_rho_negative", _set(("memory", "capacity", "esn", "rho"), -0.9), ["rho", "-0.9"]),
    ("mc_k_below_1", _set(("memory", "capacity", "k"), [0]), ["k", "0"]),
    ("gradient_zoom", _set(("memory", "gradients", "zoom_max"), 0), ["zoom_max", "0"]),
]


@pytest.mark.parametrize(("label", "edit", "needles"), SCHEMA_ERRORS, ids=[e[0] for e in SCHEMA_ERRORS])
def test_schema_rejects(config: dict, label: str, edit, needles: list[str]) -> None:
    edit(config)
    with pytest.raises(WorkflowError) as info:
        validate(config, SCHEMA)
    text = error_text(info.value)
    for needle in needles:
        assert needle in text, (label, needle, text)


def test_schema_fills_the_seed_bias_of_older_configs(config: dict) -> None:
    """A config without the seed regimes' ``bias`` gets ``zero`` (the report's annex code), so every run's params,
    and with them its identity, name the bias it is initialised with; the modern regimes get no such key."""
    for section in ("reber", "lm"):
        del config[section]["regimes"]["seed"]["bias"]
    validate(config, SCHEMA)
    for section in ("reber", "lm"):
        assert config[section]["regimes"]["seed"]["bias"] == "zero", section
        assert "bias" not in config[section]["regimes"]["modern"], section
    assert "bias" not in config["toy_language"]["regime"]


def test_schema_fills_no_transposition_for_older_configs(config: dict) -> None:
    """A config without ``lm.regimes.modern.transpose`` trains on the report's data (no shifted copies)."""
    config["lm"]["regimes"]["modern"].pop("transpose", None)
    validate(config, SCHEMA)
    assert config["lm"]["regimes"]["modern"]["transpose"] == []
    assert "transpose" not in config["lm"]["regimes"]["seed"]


def test_schema_fills_one_seed_per_regime_for_older_configs(config: dict) -> None:
    """Without ``lm.n_seeds`` every (model, regime) is trained once, with lm.seed (the report's single run)."""
    del config["lm"]["n_seeds"]
    validate(config, SCHEMA)
    assert config["lm"]["n_seeds"] == {}


def test_repeated_shift_is_one_line_naming_the_key(config: dict) -> None:
    config["lm"]["regimes"]["modern"]["transpose"] = [1, -1, 1]
    with pytest.raises(ConfigError, match=r"^lm\.regimes\.modern\.transpose: \[1, -1, 1\] lists a shift twice$"):
        check_config(config)


def test_schema_rejects_missing_key(config: dict) -> None:
    del config["reber"]["check_every"]
    with pytest.raises(WorkflowError) as info:
        validate(config, SCHEMA)
    assert "check_every" in error_text(info.value)


def test_schema_rejects_hidden_and_match_together(config: dict) -> None:
    config["reber"]["experiments"][2]["hidden"] = 10
    with pytest.raises(WorkflowError) as info:
        validate(config, SCHEMA)
    text = error_text(info.value)
    assert "embedded_gru" in text and "oneOf" in text


def _experiments(config: dict) -> list[dict]:
    return config["reber"]["experiments"]


def _only_seed_regime(config: dict) -> None:
    del config["reber"]["regimes"]["modern"]  # figures.regime stays "modern"


def _match_later(config: dict) -> None:
    _experiments(config)[2]["match_params_of"] = "embedded_lstm"


def _match_unknown(config: dict) -> None:
    _experiments(config)[3]["match_params_of"] = "embedded_vanilla99"


def _duplicate_name(config: dict) -> None:
    _experiments(config)[1]["name"] = "reber_vanilla5"


def _activation_on_gru(config: dict) -> None:
    _experiments(config)[2]["activation"] = "tanh"


def _drop_seed_regime_keep_its_seeds(config: dict) -> None:
    del config["lm"]["regimes"]["seed"]
    config["lm"]["n_seeds"]["seed"] = 2


CHECK_ERRORS = [
    ("figure_regime_not_configured", _only_seed_regime, "reber.figures.regime"),
    ("match_later", _match_later, "reber.experiments[2].match_params_of"),
    ("match_unknown", _match_unknown, "reber.experiments[3].match_params_of"),
    ("duplicate_name", _duplicate_name, "reber.experiments[1].name"),
    ("activation_on_gru", _activation_on_gru, "reber.experiments[2].activation"),
    ("figure_wrong_grammar_07", _set(("reber", "figures", "fig07"), "embedded_gru"), "reber.figures.fig07"),
    ("figure_wrong_grammar_11", _set(("reber", "figures", "fig11"), "reber_vanilla5"), "reber.figures.fig11"),
    ("figure_unknown_experiment", _set(("reber", "figures", "fig10"), "embedded_rnn"), "reber.figures.fig10"),
    (
        "mc_train_not_longer_than_washout",
        _set(("memory", "capacity", "train_length"), 200),
        "memory.capacity.train_length",
    ),
    ("dlk_curve_k_not_computed", _set(("memory", "dlk", "curves_k"), [1, 7]), "memory.dlk.curves_k"),
    ("dlk_draws_lack_a_model", _set(("memory", "dlk", "draws"), {"vanilla": 5}), "memory.dlk.draws"),
    ("dlk_conventions_k_not_computed", _set(("memory", "dlk", "conventions_k"), [7]), "memory.dlk.conventions_k"),
    ("compare_k_not_computed", _set(("memory", "dlk", "compare_k"), 7), "memory.dlk.compare_k"),
    ("n_seeds_of_an_absent_regime", _drop_seed_regime_keep_its_seeds, "lm.n_seeds.seed"),
    (
        "gradient_experiment_not_embedded",
        _set(("memory", "gradients", "experiments"), ["reber_vanilla5"]),
        "memory.gradients.experiments[0]",
    ),
]


@pytest.mark.parametrize(("label", "edit", "key"), CHECK_ERRORS, ids=[e[0] for e in CHECK_ERRORS])
def test_check_config_rejects(config: dict, label: str, edit, key: str) -> None:
    edit(config)
    # Well-typed: only the cross-reference check can catch it.
    validate(copy.deepcopy(config), SCHEMA)
    with pytest.raises(ConfigError) as info:
        check_config(config)
    assert key in str(info.value), (label, str(info.value))
