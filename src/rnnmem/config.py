"""Checks of the config that a JSON schema cannot express (references between keys)."""

from __future__ import annotations

from typing import Any

from rnnmem.errors import RnnmemError


class ConfigError(RnnmemError, ValueError):
    """The config is well-typed but inconsistent; the message names the key."""


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


def check_memory_references(config: dict[str, Any]) -> None:
    """Gradient figures read embedded-Reber experiments that the Reber branch trains."""
    grammars = {entry["name"]: entry["grammar"] for entry in config["reber"]["experiments"]}
    for position, name in enumerate(config["memory"]["gradients"]["experiments"]):
        if grammars.get(name) != "embedded_reber":
            raise ConfigError(
                f"memory.gradients.experiments[{position}]: {name!r} is not an embedded_reber experiment of "
                "reber.experiments"
            )


def check_memory_settings(memory: dict[str, Any]) -> None:
    """Relations between memory settings: figure k values computed, training run longer than its washout."""
    dlk = memory["dlk"]
    for key in ("curves_k",):
        missing = sorted(set(dlk[key]) - set(dlk["k"]))
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


def check_chorale_settings(chorales: dict[str, Any]) -> None:
    """Figure 19 engraves chorale No. 1 (BWV 269), so a selection of numbers must include it."""
    numbers = chorales["numbers"]
    if numbers and 1 not in numbers:
        raise ConfigError("chorales.numbers: must include 1 (BWV 269, engraved as figure 19)")


def check_lm_references(lm: dict[str, Any]) -> None:
    """Model names unique; figure 21 names trained models, a configured regime and a sampled temperature."""
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
    if figure["temperature"] not in lm["sampling"]["temperatures"]:
        raise ConfigError(f"lm.figure21.temperature: {figure['temperature']} is not in lm.sampling.temperatures")


def check_config(config: dict[str, Any]) -> None:
    """Everything beyond the schema; raise :class:`ConfigError` naming the key at fault."""
    check_reber_references(config["reber"])
    check_memory_references(config)
    check_memory_settings(config["memory"])
    check_chorale_settings(config["chorales"])
    check_lm_references(config["lm"])
