"""Checks of the config that a JSON schema cannot express (references and relations between keys).

``check_config`` runs when the Snakefile is parsed (workflow/rules/common.smk, after the schema), so ``snakemake -n``
already fails on a config that some job would only reject later; each :class:`ConfigError` names the key.
"""

from __future__ import annotations

import math
from typing import Any

from rnnmem.core.errors import ConfigError
from rnnmem.lm.settings import regime_shifts

__all__ = ["ConfigError", "check_config"]


GIB = 2**30
# Largest estimated working set of one job. The schema bounds each size alone; these checks bound the products
# (seeds × strings × units, draws × units², reservoirs × steps × lags) that set a job's memory.
MEMORY_BUDGET = 32 * GIB
REBER_STEPS = 60  # padded length of encoded Reber strings: the longest of 10^5 embedded strings has 54 symbols
TEMPERATURE_FORMAT = "g"  # sample files are T{temperature:g}_NN.*: two temperatures must not print the same

FIGURE_GRAMMARS = {"fig07": "reber", "fig08": "reber", "fig10": "embedded_reber", "fig11": "embedded_reber"}


def check_reber_references(reber: dict[str, Any]) -> None:
    """Experiment names unique; ``match_params_of`` and figure keys name earlier experiments of the right grammar."""
    seen: dict[str, dict[str, Any]] = {}
    for position, entry in enumerate(reber["experiments"]):
        name = entry["name"]
        if name in seen:
            raise ConfigError(f"reber.experiments[{position}].name: {name!r} is used twice")
        other = entry.get("match_params_of")
        if other is not None and other not in seen:
            raise ConfigError(
                f"reber.experiments[{position}].match_params_of: {other!r} is not an experiment listed before it"
            )
        if entry["model"] != "vanilla" and "activation" in entry:
            raise ConfigError(f"reber.experiments[{position}].activation: only Vanilla networks take one")
        seen[name] = entry
    figures = reber["figures"]
    if figures["regime"] not in reber["regimes"]:
        raise ConfigError(f"reber.figures.regime: {figures['regime']!r} is not a key of reber.regimes")
    for figure, grammar in FIGURE_GRAMMARS.items():
        name = figures[figure]
        if name not in seen:
            raise ConfigError(f"reber.figures.{figure}: {name!r} is not in reber.experiments")
        if seen[name]["grammar"] != grammar:
            raise ConfigError(f"reber.figures.{figure}: {name!r} must be a {grammar} experiment")


def _gib(size: float) -> str:
    return f"{size / GIB:.1f} GiB"


def check_training_settings(section: str, settings: dict[str, Any], regimes: dict[str, dict[str, Any]]) -> None:
    """A training run tests its success criterion within its string budget; minibatches fit the training set.

    ``regimes`` maps each regime's config key to its settings."""
    if settings["check_every"] > settings["max_strings"]:
        raise ConfigError(
            f"{section}.check_every: {settings['check_every']} exceeds {section}.max_strings "
            f"({settings['max_strings']}): the success criterion would never be tested"
        )
    for key, regime in regimes.items():
        if "batch_size" in regime and regime["batch_size"] > settings["train_strings"]:
            raise ConfigError(
                f"{key}.batch_size: {regime['batch_size']} exceeds {section}.train_strings "
                f"({settings['train_strings']}): a minibatch draws from the training strings"
            )


def check_reber_settings(reber: dict[str, Any]) -> None:
    """String budgets, gradient logging and the memory the ensembles' encoded strings take."""
    check_training_settings("reber", reber, {f"reber.regimes.{name}": r for name, r in reber["regimes"].items()})
    log = reber["gradient_log"]
    if log["dense_strings"] == 0 and log["every_strings"] > reber["max_strings"]:
        raise ConfigError(
            f"reber.gradient_log.every_strings: {log['every_strings']} exceeds reber.max_strings "
            f"({reber['max_strings']}) and dense_strings is 0: no gradient would be logged for figures 12 and 13"
        )
    hidden = max([entry["hidden"] for entry in reber["experiments"] if "hidden" in entry] or [1])
    strings = reber["n_seeds"] * (reber["train_strings"] + reber["test_strings"])
    # per string and step: one-hot input, targets and legal sets (~64 B) and, when the whole set is evaluated,
    # float32 states of up to 4 gates per unit
    estimate = strings * REBER_STEPS * (64 + 16 * hidden)
    if estimate > MEMORY_BUDGET:
        raise ConfigError(
            f"reber.n_seeds: {reber['n_seeds']} seeds × ({reber['train_strings']} + {reber['test_strings']}) "
            f"strings of networks up to {hidden} units need about {_gib(estimate)} "
            f"(limit {_gib(MEMORY_BUDGET)}): lower n_seeds, train_strings/test_strings or the hidden sizes"
        )


def check_memory_references(config: dict[str, Any]) -> None:
    """Gradient figures read embedded-Reber experiments that the Reber branch trains."""
    grammars = {entry["name"]: entry["grammar"] for entry in config["reber"]["experiments"]}
    for position, name in enumerate(config["memory"]["gradients"]["experiments"]):
        if grammars.get(name) != "embedded_reber":
            raise ConfigError(
                f"memory.gradients.experiments[{position}]: {name!r} is not an embedded_reber experiment of "
                "reber.experiments"
            )


def dlk_draws(dlk: dict[str, Any], model: str) -> int:
    """Random networks of ``model``'s D(l, k) jobs: ``memory.dlk.draws``, one number or one per model."""
    draws = dlk["draws"]
    if not isinstance(draws, dict):
        return int(draws)
    if model not in draws:
        raise ConfigError(f"memory.dlk.draws: no count for model {model!r} (listed in memory.dlk.models)")
    return int(draws[model])


def check_memory_settings(memory: dict[str, Any]) -> None:
    """Relations between memory settings: figure k values computed, read-out fits with more steps than weights,
    and the memory of the D(l, k) and capacity jobs within :data:`MEMORY_BUDGET`."""
    dlk = memory["dlk"]
    for model in dlk["models"]:
        dlk_draws(dlk, model)  # every model has a count
    for key in ("curves_k", "conventions_k"):
        missing = sorted(set(dlk.get(key, [])) - set(dlk["k"]))
        if missing:
            raise ConfigError(f"memory.dlk.{key}: {missing} not in memory.dlk.k")
    capacity = memory["capacity"]
    if dlk["compare_k"] not in dlk["k"] or dlk["compare_k"] not in capacity["k"]:
        raise ConfigError(f"memory.dlk.compare_k: {dlk['compare_k']} must be in memory.dlk.k and memory.capacity.k")
    if capacity["train_length"] <= capacity["washout"]:
        raise ConfigError(
            f"memory.capacity.train_length: {capacity['train_length']} must exceed memory.capacity.washout "
            f"({capacity['washout']})"
        )
    weights = max(capacity["k"]) + 1  # a read-out per lag: k state weights and a bias
    if capacity["train_length"] <= weights:
        raise ConfigError(
            f"memory.capacity.train_length: {capacity['train_length']} steps cannot fit read-outs of "
            f"{weights} weights (largest memory.capacity.k + 1): it must be larger"
        )
    gates = 3  # the GRU's three gates: the largest recurrent matrix of D(l, k)
    most_draws = max(dlk_draws(dlk, model) for model in dlk["models"])
    dlk_bytes = most_draws * (gates * max(dlk["k"]) ** 2 + dlk["max_l"]) * 8
    if dlk_bytes > MEMORY_BUDGET:
        raise ConfigError(
            f"memory.dlk.draws: {most_draws} networks with k up to {max(dlk['k'])} over max_l = {dlk['max_l']} "
            f"steps need about {_gib(dlk_bytes)} (limit {_gib(MEMORY_BUDGET)}): lower draws, k or max_l"
        )
    steps = capacity["max_lag"] + capacity["washout"] + capacity["train_length"] + capacity["test_length"]
    lags = capacity["train_length"] + capacity["test_length"]
    mc_bytes = capacity["reservoirs"] * (steps * (max(capacity["k"]) + 2) + lags * capacity["max_lag"]) * 8
    if mc_bytes > MEMORY_BUDGET:
        raise ConfigError(
            f"memory.capacity.reservoirs: {capacity['reservoirs']} reservoirs of up to {max(capacity['k'])} units "
            f"over {steps} steps and {capacity['max_lag']} lags need about {_gib(mc_bytes)} "
            f"(limit {_gib(MEMORY_BUDGET)}): lower reservoirs, k, the lengths or max_lag"
        )


def check_chorale_settings(chorales: dict[str, Any]) -> None:
    """Figure 19 engraves chorale No. 1 (BWV 269), so a selection of numbers must include it; the split fractions
    leave every split some chorales (train the models, valid chooses the n-gram order and stops modern training,
    test scores them)."""
    numbers = chorales["numbers"]
    if numbers and 1 not in numbers:
        raise ConfigError("chorales.numbers: must include 1 (BWV 269, engraved as figure 19)")
    split = chorales["split"]
    valid, test = split["valid"], split["test"]
    if not valid > 0:
        raise ConfigError(
            f"chorales.split.valid: {valid} leaves no validation chorales: the n-gram order is chosen and the modern "
            "regime stops on the validation split, so it must be > 0"
        )
    if not test > 0:
        raise ConfigError(f"chorales.split.test: {test} leaves no test chorales to score the models: must be > 0")
    if not valid + test < 1:
        raise ConfigError(
            f"chorales.split: valid + test = {valid} + {test} must be below 1, so that a training split remains"
        )
    if numbers:
        count = len(numbers)
        # rnnmem.chorales.dataset.split_groups fills test and valid up to ceil(fraction × count) chorales each
        train = count - math.ceil(test * count - 1e-9) - math.ceil(valid * count - 1e-9)
        if train < 1:
            raise ConfigError(
                f"chorales.numbers: {count} chorales leave no training chorale after the valid ({valid}) and test "
                f"({test}) splits: select more chorales or lower chorales.split"
            )


def check_lm_references(lm: dict[str, Any]) -> None:
    """Model names unique; figure 21 names trained models, a configured regime and a sampled temperature;
    lm.n_seeds names configured regimes."""
    names = [model["name"] for model in lm["models"]]
    for position, name in enumerate(names):
        if names.index(name) != position:
            raise ConfigError(f"lm.models[{position}].name: {name!r} is used twice")
    figure = lm["figure21"]
    for position, name in enumerate(figure["models"]):
        if name not in names:
            raise ConfigError(f"lm.figure21.models[{position}]: {name!r} is not in lm.models")
    if figure["regime"] not in lm["regimes"]:
        raise ConfigError(f"lm.figure21.regime: {figure['regime']!r} is not a key of lm.regimes")
    for regime in lm.get("n_seeds", {}):
        if regime not in lm["regimes"]:
            raise ConfigError(f"lm.n_seeds.{regime}: {regime!r} is not a key of lm.regimes")
    if figure["temperature"] not in lm["sampling"]["temperatures"]:
        raise ConfigError(f"lm.figure21.temperature: {figure['temperature']} is not in lm.sampling.temperatures")


def check_lm_settings(lm: dict[str, Any]) -> None:
    """Sample files of distinct temperatures have distinct names; figure 21 shows engraved samples; the
    transposition shifts are distinct, non-zero and within an octave."""
    labels: dict[str, float] = {}
    for position, temperature in enumerate(lm["sampling"]["temperatures"]):
        label = format(temperature, TEMPERATURE_FORMAT)
        if label in labels:
            raise ConfigError(
                f"lm.sampling.temperatures[{position}]: {temperature} and {labels[label]} both name their samples "
                f"T{label}_NN: list each temperature once"
            )
        labels[label] = temperature
    if not lm["sampling"]["engrave"]:
        raise ConfigError("lm.sampling.engrave: figure 21 (lm.figure21) shows engraved samples, so it must be true")
    for regime, block in lm["regimes"].items():  # distinct shifts within an octave (lm.regimes.modern.transpose)
        regime_shifts(regime, block)


def check_melody_settings(melody: dict[str, Any]) -> None:
    """The melody benchmark's BWV span, [first, last], runs upwards."""
    span = melody.get("bwv") or []
    if span and span[0] > span[1]:
        raise ConfigError(f"melody.bwv: [{span[0]}, {span[1]}] must be [first, last] with first <= last")


def check_config(config: dict[str, Any]) -> None:
    """Everything beyond the schema; raise :class:`ConfigError` naming the key at fault."""
    check_reber_references(config["reber"])
    check_reber_settings(config["reber"])
    toy = config["toy_language"]
    check_training_settings("toy_language", toy, {"toy_language.regime": toy["regime"]})
    check_memory_references(config)
    check_memory_settings(config["memory"])
    check_chorale_settings(config["chorales"])
    check_lm_references(config["lm"])
    check_lm_settings(config["lm"])
    if "melody" in config:
        check_melody_settings(config["melody"])
