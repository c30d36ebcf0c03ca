"""The registry of rnnmem commands: for each one, its job function, a help line, the keys of its --params JSON
object and its arguments. The command line (rnnmem.cli) is built from this table alone.

Each argument's ``dest`` is the name of the job function's parameter it fills; option strings and command names are
the rules' interface and stay as they are. Job functions are named by dotted path ("module:function") so a command
imports only its own branch (no torch for --help or for the chorale commands)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def json_object(text: str) -> dict:
    """argparse type of ``--params``: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


@dataclass(frozen=True)
class Arg:
    """One option: its option string, the job parameter it fills (``dest``) and argparse's other keywords."""

    option: str
    dest: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def arg(option: str, dest: str | None = None, **kwargs: Any) -> Arg:
    """An option; ``dest`` defaults to argparse's own (``--out-dir`` -> ``out_dir``). A renamed ``dest`` keeps the
    option's own metavar in usage lines."""
    default = option.lstrip("-").replace("-", "_")
    if dest and dest != default and "choices" not in kwargs:
        kwargs.setdefault("metavar", default.upper())
    return Arg(option, dest or default, kwargs)


def path(option: str, dest: str | None = None, help: str | None = None, required: bool = True,
         many: bool = False) -> Arg:
    """A required file option (``many``: one or more files)."""
    kwargs: dict[str, Any] = {"type": Path, "required": required}
    if many:
        kwargs["nargs"] = "+"
    if help:
        kwargs["help"] = help
    return arg(option, dest, **kwargs)


def params(*keys: str) -> Arg:
    """The ``--params`` JSON object; ``keys`` are the ones the job reads (listed in ``--help``)."""
    return arg("--params", type=json_object, required=True,
               help=f"JSON object with the keys: {', '.join(keys)}" if keys else "JSON object")


@dataclass(frozen=True)
class Command:
    name: str
    function: str  # "module:function", imported only when the command runs
    help: str
    args: tuple[Arg, ...]
    params_keys: tuple[str, ...] = ()
    torch: bool = True  # configure torch threads before running

    @property
    def dests(self) -> list[str]:
        return [a.dest for a in self.args]


def command(name: str, function: str, help: str, *args: Arg, params_keys: tuple[str, ...] = (),
            torch: bool = True) -> Command:
    if params_keys:
        args = (params(*params_keys), *args)
    return Command(name, function, help, args, params_keys, torch)


REBER = "rnnmem.reber.jobs"
MEMORY = "rnnmem.memory.jobs"
CHORALES = "rnnmem.chorales.jobs"
LM = "rnnmem.lm.jobs"
MELODY = "rnnmem.melody.jobs"

DLK_KEYS = ("model", "k", "draws", "max_l", "seed", "weight_scale", "bias", "input", "tail_threshold", "bootstrap")
TOY_KEYS = ("hidden", "activation", "regime", "seed", "train_strings", "test_strings", "max_strings", "check_every")

COMMANDS: tuple[Command, ...] = (
    command("reber-train", f"{REBER}:reber_train", "Train one (experiment, regime) ensemble over seeds.",
            path("--model", "model_path", "output .pt (weights)"),
            path("--spec", "spec_path", "output .json (hyper-parameters)"),
            path("--table", "table_path", "output .csv (one row per seed)"),
            path("--gradients", "gradients_path", "output .csv of |gradient| histograms (default: not logged)",
                 required=False),
            params_keys=("experiment", "regime_name", "regime", "first_seed", "n_seeds", "train_strings",
                         "test_strings", "max_strings", "check_every", "gradient_log")),
    command("reber-tables", f"{REBER}:reber_tables", "Success table and summary from the per-run tables.",
            path("--runs", "run_tables", many=True), path("--success", "success_path"),
            path("--summary", "summary_path"), path("--summary-md")),
    command("reber-figure", f"{REBER}:reber_figure", "Report figure 7, 8, 10 or 11 from a trained ensemble.",
            arg("--figure", choices=["fig07", "fig08", "fig10", "fig11"], required=True),
            path("--model", "model_path"), path("--spec", "spec_path"), path("--table", "table_path"),
            path("--out")),
    command("indistinguishable", f"{REBER}:indistinguishable", "State differences after BPBTXSE vs BTBTXSE.",
            path("--models", many=True), path("--specs", many=True), path("--out"),
            params_keys=("random_draws",)),
    command("toy-language", f"{REBER}:toy_language", "The section 1.3 warm-up network and its most active outputs.",
            path("--out"), params_keys=TOY_KEYS),
    command("gradient-summary", f"{MEMORY}:gradient_summary", "Figures 12, 13 and tables/gradients.csv.",
            path("--histograms", "histogram_paths", many=True), path("--table", "table_out"), path("--fig12"),
            path("--fig13"), arg("--zoom-max", type=float, required=True)),
    command("gradient-lag", f"{MEMORY}:gradient_lag", "Gradient norm against the lag, trained and initial weights.",
            path("--models", many=True), path("--specs", many=True), path("--table", "table_out"),
            path("--figure", "fig"), params_keys=("train_strings", "strings")),
    command("dlk", f"{MEMORY}:dlk", "D(l,k) of one (model, k) for every l.",
            path("--out"), params_keys=DLK_KEYS),
    command("dlk-conventions", f"{MEMORY}:dlk_conventions", "D(max_l, k) under every bias and input convention.",
            path("--parts", many=True), path("--out"), params_keys=("parts", "max_l")),
    command("dlk-merge", f"{MEMORY}:dlk_merge", "One model's D(l,k) table from its per-k parts.",
            path("--parts", many=True), path("--out")),
    command("dlk-figures", f"{MEMORY}:dlk_figures", "Figures 14, 15 and the D(l,k) curves.",
            path("--tables", many=True), path("--heatmaps", many=True), path("--curves"),
            params_keys=("models", "weight_scale", "curves_k", "bias", "input", "tail_threshold")),
    command("capacity", f"{MEMORY}:capacity", "Memory capacity MC(l,k) of ESNs and random GRUs.",
            path("--esn", "esn_out"), path("--gru", "gru_out"), path("--totals", "totals_out"),
            params_keys=("esn", "gru", "k", "max_lag", "reservoirs", "ridge", "seed", "train_length", "washout",
                         "test_length")),
    command("capacity-figures", f"{MEMORY}:capacity_figures",
            "Figure 16, MC of random GRUs, total MC, D(l,k) beside MC.",
            path("--esn"), path("--gru"), path("--totals"), path("--dlk", "dlk_tables", many=True),
            path("--fig16"), path("--mc-gru"), path("--mc-total"), path("--dlk-vs-mc"),
            params_keys=("esn", "gru", "dlk_models", "compare_k")),
    command("capacity-input-scale", f"{MEMORY}:capacity_input_scale",
            "Total MC at the largest k against the input scale, Gaussian and orthogonal ESNs.",
            path("--table", "table_out"), path("--figure", "fig"),
            params_keys=("esn", "input_scales", "k", "max_lag", "reservoirs", "ridge", "seed", "train_length",
                         "washout", "test_length")),
    command("capacity-linear", f"{MEMORY}:capacity_linear",
            "Exact against estimated MC of linear ESNs (Gaussian and orthogonal).",
            path("--table", "table_out"), path("--figure", "fig"),
            params_keys=("esn", "k", "max_lag", "reservoirs", "ridge", "seed", "train_length", "washout",
                         "test_length")),
    command("chorales-fetch", f"{CHORALES}:chorales_fetch", "Download, verify and extract the LilyPond chorales.",
            arg("--url", required=True), path("--archive"), path("--scores-dir"), path("--listing"), torch=False),
    command("chorales-events", f"{CHORALES}:chorales_events", "One source's chorales as events, transposed to C.",
            arg("--source", choices=["music21", "lilypond"], required=True),
            path("--listing", help="extracted LilyPond files (lilypond source)", required=False),
            path("--events", "events_out"), path("--transposed", "transposed_out"),
            path("--skipped", "skipped_out"),
            params_keys=("numbers", "repeats", "on_bad_file"), torch=False),
    command("chorales-dataset", f"{CHORALES}:chorales_dataset", "Figure-20 texts, tokens, vocabulary, splits, stats.",
            path("--transposed"), path("--skipped"), path("--out-dir"), params_keys=("split",), torch=False),
    command("chorales-augmented", f"{CHORALES}:chorales_augmented",
            "Training chorales plus transposed copies, extended vocabulary.",
            path("--tokens"), path("--vocab"), path("--transposed"), path("--out-dir"), params_keys=("transpose",),
            torch=False),
    command("chorales-agreement", f"{CHORALES}:chorales_agreement", "Compare the two sources chorale by chorale.",
            path("--lilypond"), path("--music21"), path("--out"), torch=False),
    command("chorales-score", f"{CHORALES}:chorales_score", "Engrave one transposed soprano as a PNG.",
            path("--transposed"), arg("--number", type=int, required=True), path("--out"), torch=False),
    command("lm-train", f"{LM}:lm_train", "Train one chorale language model (resumes from its checkpoint).",
            path("--tokens"), path("--vocab"),
            path("--checkpoint-dir", help="the job's checkpoint folder: one <identity digest>.ckpt per run identity"),
            path("--model", "model_out"), path("--curve", "curve_out"),
            path("--budget-vocab", help="the vocabulary a parameter budget is matched on (default: --vocab)",
                 required=False),
            params_keys=("model", "regime", "settings", "seed", "source")),
    command("lm-score", f"{LM}:lm_score", "Test-split scores of one trained chorale model.",
            path("--tokens"), path("--vocab"), path("--model", "model_path"), path("--out"),
            params_keys=("model", "regime", "seed", "source")),
    command("lm-ensemble-score", f"{LM}:lm_ensemble_score",
            "Test-split scores of the mean distribution of one model's seeds.",
            path("--tokens"), path("--vocab"), path("--models", "model_paths", many=True), path("--out"),
            params_keys=("model", "regime", "source")),
    command("lm-ngram", f"{LM}:lm_ngram", "Kneser-Ney n-gram baseline, order chosen on the validation split.",
            path("--tokens"), path("--vocab"), path("--out"), path("--orders", "orders_out"),
            params_keys=("orders", "source")),
    command("lm-scores", f"{LM}:lm_scores", "chorales/scores.csv from every model's row.",
            path("--parts", many=True), path("--out")),
    command("lm-samples", f"{LM}:lm_samples",
            "Sample melodies from one model (or its seeds' ensemble) and render them.",
            path("--vocab"),
            path("--model", "model_paths", many=True,
                 help="one model file, or every seed of one (model, regime): samples from their mean distribution"),
            path("--out-dir"), path("--listing"),
            path("--transposed", required=False, help="the chorales in C (needed with key_signature 'found')"),
            path("--tokens", required=False, help="their tokens and splits (needed with key_signature 'found')"),
            params_keys=("name", "seed", "count", "temperatures", "max_tokens", "engrave", "engrave_timeout",
                         "key_signature")),
    command("lm-sample-metrics", f"{LM}:lm_sample_metrics", "Musical and copy metrics of every sample set.",
            path("--listings", many=True), path("--transposed"), path("--tokens"), path("--out"), path("--figure")),
    command("lm-sample-page", "rnnmem.lm.sample_page:sample_page",
            "The report page of one sample set: engraved scores, audio players (FluidSynth) and MIDI files.",
            path("--samples", help="the sample folder lm-samples wrote"), path("--listing"), path("--out"),
            params_keys=("title", "soundfont", "audio_rate"), torch=False),
    command("fig21", f"{LM}:fig21", "Report figure 21: engraved samples one above the other.",
            path("--sample-dirs", many=True), path("--out"), params_keys=("labels",)),
    command("learning-curves", f"{LM}:learning_curves", "Learning curves of every chorale model.",
            path("--curves", many=True), path("--table", "table_out"), path("--figure")),
    command("melody-corpus", f"{MELODY}:melody_corpus", "The chorale soprano melodies from music21's corpus, as JSON.",
            path("--out"), params_keys=("bwv", "fix_octave_errors"), torch=False),
    command("melody-baselines", f"{MELODY}:melody_baselines",
            "Per-note bits of PPM (LTM, STM, both) and the Kneser-Ney n-gram over one kind of folds.",
            path("--melodies", "melodies_path"), path("--out"), params_keys=("kind", "seed", "folds", "ngram_orders"),
            torch=False),
    command("melody-neural", f"{MELODY}:melody_neural", "Per-note bits of the neural melody models on one test fold.",
            path("--melodies", "melodies_path"), path("--out"),
            params_keys=("kind", "fold", "seed", "folds", "neural")),
    command("melody-benchmark", f"{MELODY}:melody_benchmark",
            "The melody benchmark table (CSV, Markdown) and figure from the per-note tables.",
            path("--melodies", "melodies_path"), path("--parts", many=True), path("--table", "table_out"),
            path("--markdown"), path("--figure"), torch=False),
    command("table-html", "rnnmem.core.report_table:table_page",
            "A CSV table as a self-contained HTML page (a table and the CSV to download) for the report.",
            path("--csv", "csv_path"), path("--out"), torch=False),
    command("bench", "rnnmem.bench.suite:run_bench", "Training throughput and loop overhead (make bench).",
            arg("--out-dir", type=Path, default=Path("results/bench")), arg("--repeats", type=int, default=20),
            arg("--config", type=Path, default=Path("config.yaml"),
                help="the config whose training regimes are timed (default: config.yaml)")),
)

BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}

# commands whose --models and --specs lists go pairwise (same count, checked before the job runs)
PAIRED = ("models", "specs")
