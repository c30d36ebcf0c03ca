import json
import os
import re
import shlex
import sys

from snakemake.utils import min_version, validate

# The package comes from this checkout's src/ (beside the Snakefile), ahead of any installed copy: in Snakemake's own
# process (the imports below) and in every job, whatever the working directory (--directory) and the job's
# environment: the .venv that `make` creates, or a `--sdm conda` env (envs/rnnmem.yaml), which holds only third-party
# packages. The jobs get PYTHONPATH from the shell prefix, that is, inside each command after Snakemake's conda
# activation (which removes PYTHONPATH from a conda job's environment), and not in the rules' command text: Snakemake
# records that text and reruns a job whose text changed (an absolute path in it would rerun every job whenever the
# checkout moves). The prefix keeps Snakemake's own bash default, strict mode, in front. A copy of the workflow
# without src/ (as the tests make) changes nothing: its jobs use the installed package.
RNNMEM_SRC = os.path.join(workflow.basedir, "src")
if os.path.isfile(os.path.join(RNNMEM_SRC, "rnnmem", "__init__.py")):
    if RNNMEM_SRC not in sys.path:
        sys.path.insert(0, RNNMEM_SRC)
    _strict = os.path.basename(shell.get_executable() or "") == "bash"
    _src = shlex.quote(RNNMEM_SRC).replace("{", "{{").replace("}", "}}")
    shell.prefix(
        ("set -euo pipefail; " if _strict else "")
        + f"export PYTHONPATH={_src}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
    )

from rnnmem.config import check_config, dlk_draws
from rnnmem.reber.experiment_spec import resolve_experiments

min_version("9.0")


validate(config, schema="../schemas/config.schema.yaml")
check_config(config)

REBER = config["reber"]
REBER_EXPERIMENTS = resolve_experiments(REBER["experiments"])
REBER_REGIMES = list(REBER["regimes"])
# The report's categories, one per branch (sorted by their number in the report's menu).
REBER_CATEGORY = "1. Reber grammars"
MEMORY_CATEGORY = "2. Gradients and memory"

# Every job calls the package through its CLI; thread count follows the rule's `threads`.
RNNMEM = "python -m rnnmem --threads {threads}"


def as_json(value):
    """Compact, key-sorted JSON for a params field, so equal settings give equal strings (no spurious reruns)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- Reber branch -----------------------------------------------------------------------------------------------


def reber_train_params(wildcards):
    experiment = REBER_EXPERIMENTS[wildcards.experiment]
    keys = [
        "first_seed",
        "n_seeds",
        "train_strings",
        "test_strings",
        "max_strings",
        "check_every",
        "gradient_log",
    ]
    return as_json(
        {
            **{key: REBER[key] for key in keys},
            "experiment": experiment.__dict__,
            "regime_name": wildcards.regime,
            "regime": REBER["regimes"][wildcards.regime],
        }
    )


def reber_runs(kind):
    """Paths of every trained (experiment, regime) ensemble: kind is model, spec or table."""
    pattern = {
        "model": "results/models/reber/{experiment}_{regime}.pt",
        "spec": "results/models/reber/{experiment}_{regime}.json",
        "table": "results/tables/reber/runs/{experiment}_{regime}.csv",
    }[kind]
    return expand(pattern, experiment=REBER_EXPERIMENTS, regime=REBER_REGIMES)


def figure_run(figure):
    """Trained files of the experiment a figure shows, in the configured regime."""
    name, regime = REBER["figures"][figure], REBER["figures"]["regime"]
    return {
        "model": f"results/models/reber/{name}_{regime}.pt",
        "spec": f"results/models/reber/{name}_{regime}.json",
        "table": f"results/tables/reber/runs/{name}_{regime}.csv",
    }


def embedded_runs(kind):
    """Trained files of every embedded-Reber experiment in every regime."""
    suffix = {"model": "pt", "spec": "json"}[kind]
    return [
        f"results/models/reber/{name}_{regime}.{suffix}"
        for name, experiment in REBER_EXPERIMENTS.items()
        if experiment.grammar == "embedded_reber"
        for regime in REBER_REGIMES
    ]


REBER_FIGURES = {
    "fig07": "results/figures/fig07_reber_outputs_vanilla.png",
    "fig08": "results/figures/fig08_reber_hidden_states.png",
    "fig10": "results/figures/fig10_embedded_vanilla.png",
    "fig11": "results/figures/fig11_embedded_gru.png",
}


def reber_figure_labels(wildcards):
    """Report labels of a Reber figure: its number and the network it shows."""
    experiment = REBER_EXPERIMENTS[REBER["figures"][wildcards.figure]]
    grammar = experiment.grammar.replace("_", " ")
    return {
        # "fig 07", not "fig 7": the report sorts labels as text
        "figure": f"fig {wildcards.figure[3:]}",
        "model": f"{experiment.model} {experiment.hidden} units, {grammar}",
    }


def reber_outputs():
    return [
        "results/tables/reber_success.csv",
        "results/tables/reber_summary.csv",
        "results/tables/reber_summary.md",
        "results/tables/indistinguishable.csv",
        "results/tables/toy_language.csv",
        *REBER_FIGURES.values(),
        *report_table_pages("reber"),
    ]


# --- Memory branch ----------------------------------------------------------------------------------------------
MEMORY = config["memory"]


def gradient_runs(kind):
    """Training-job outputs of the experiments the gradient figures show, in every regime."""
    pattern = {
        "model": "results/models/reber/{experiment}_{regime}.pt",
        "spec": "results/models/reber/{experiment}_{regime}.json",
        "gradients": "results/tables/reber/gradients/{experiment}_{regime}.csv",
    }[kind]
    return expand(
        pattern, experiment=MEMORY["gradients"]["experiments"], regime=REBER_REGIMES
    )


def memory_outputs():
    return [
        "results/tables/gradients.csv",
        "results/figures/fig12_gradients.png",
        "results/figures/fig13_gradients_near_zero.png",
        "results/memory/gradient_vs_lag.csv",
        "results/figures/gradient_vs_lag.png",
        *memory_figure_outputs(),
        *report_table_pages("memory"),
    ]


DLK = MEMORY["dlk"]
CAPACITY = MEMORY["capacity"]
DLK_FIGURES = {
    "vanilla": "results/figures/fig14_dlk_vanilla.png",
    "gru": "results/figures/fig15_dlk_gru.png",
}
DLK_CAPTIONS = {"vanilla": "fig14", "gru": "fig15"}
DLK_LABELS = {
    "vanilla": {"figure": "fig 14", "model": "Vanilla"},
    "gru": {"figure": "fig 15", "model": "GRU"},
}


def dlk_part_params(wildcards):
    """One (model, k) job of D(l,k); the bias and input convention from the wildcards when the rule has them."""
    keys = ["seed", "max_l", "weight_scale", "tail_threshold", "bootstrap"]
    return as_json(
        {
            **{key: DLK[key] for key in keys},
            "draws": dlk_draws(DLK, wildcards.model),
            "bias": getattr(wildcards, "bias", DLK["bias"]),
            "input": getattr(wildcards, "input", DLK["input"]),
            "model": wildcards.model,
            "k": int(wildcards.k),
        }
    )


def dlk_convention_parts():
    """(model, bias, input, k) of every row of dlk_conventions.csv, with the part it comes from: the configured
    convention's part is the main D(l,k) job's, the three others come from rule dlk_convention.
    """
    parts = []
    for model in DLK["models"]:
        for bias in ("zero", "normal"):
            for encoding in ("one_hot", "scalar"):
                for k in DLK["conventions_k"]:
                    configured = bias == DLK["bias"] and encoding == DLK["input"]
                    path = (
                        f"results/memory/dlk/{model}_k{k}.csv"
                        if configured
                        else f"results/memory/dlk_conventions/{model}_{bias}_{encoding}_k{k}.csv"
                    )
                    parts.append(
                        (
                            {"model": model, "bias": bias, "input": encoding, "k": k},
                            path,
                        )
                    )
    return parts


def dlk_tables():
    return expand("results/memory/dlk_{model}.csv", model=DLK["models"])


def memory_figure_outputs():
    return [
        *dlk_tables(),
        *(["results/memory/dlk_conventions.csv"] if DLK["conventions_k"] else []),
        *(DLK_FIGURES[model] for model in DLK["models"]),
        "results/figures/dlk_curves.png",
        "results/memory/mc_esn.csv",
        "results/memory/mc_gru.csv",
        "results/memory/mc_totals.csv",
        "results/figures/fig16_mc_esn.png",
        "results/figures/mc_gru.png",
        "results/figures/mc_total.png",
        "results/figures/dlk_vs_mc.png",
        "results/memory/mc_input_scale.csv",
        "results/figures/mc_input_scale.png",
        "results/memory/mc_linear.csv",
        "results/figures/mc_linear.png",
    ]


# --- Chorale branch ---------------------------------------------------------------------------------------------
CHORALES = config["chorales"]
CHORALE_SOURCES = [CHORALES["source"]]
if CHORALES["compare_sources"]:
    CHORALE_SOURCES = ["lilypond", "music21"]


def lilypond_url():
    """The archive URL; a relative file: path is taken from the project folder (where the Snakefile is)."""
    url = CHORALES["lilypond_url"]
    if url.startswith("file:") and not url.startswith("file:/"):
        return "file://" + os.path.normpath(
            os.path.join(workflow.basedir, url[len("file:") :])
        )
    return url


def chorale_event_params():
    return as_json(
        {key: CHORALES[key] for key in ("repeats", "on_bad_file", "numbers")}
    )


def chorale_listing(wildcards):
    """The lilypond source reads the extracted, verified scores; music21 needs no input."""
    if wildcards.source == "lilypond":
        return {"listing": "results/chorales/lilypond/ly_files.csv"}
    return {}


def chorale_outputs():
    outputs = []
    for source in CHORALE_SOURCES:
        outputs += [
            f"results/chorales/{source}/transposed.jsonl",
            f"results/chorales/{source}/skipped.csv",
            f"results/chorales/{source}/tokens.jsonl",
            f"results/chorales/{source}/vocab.json",
            f"results/chorales/{source}/splits.json",
            f"results/chorales/{source}/stats.csv",
        ]
    if CHORALES["compare_sources"]:
        outputs.append("results/chorales/source_agreement.csv")
    return (
        outputs
        + ["results/figures/fig19_soprano_bwv269.png"]
        + report_table_pages("chorales")
    )


# --- Chorale models ---------------------------------------------------------------------------------------------
LM = config["lm"]
CHORALE_CATEGORY = "3. Bach chorales"
LM_MODELS = {model["name"]: model for model in LM["models"]}
LM_REGIMES = list(LM["regimes"])
LM_DATA = f"results/chorales/{CHORALES['source']}"
# Seeds lm.seed .. lm.seed + n - 1 of every (model, regime), n = lm.n_seeds[regime] (1 for a regime not named).
LM_SEEDS = {
    regime: list(range(LM["seed"], LM["seed"] + LM["n_seeds"].get(regime, 1)))
    for regime in LM_REGIMES
}
# Semitone shifts of the training copies per regime (lm.regimes.modern.transpose; [] and the seed regime: none).
LM_SHIFTS = {
    regime: sorted(block.get("transpose", [])) if regime == "modern" else []
    for regime, block in LM["regimes"].items()
}


def lm_data_dir(regime):
    """The token files a regime trains and is scored on: the augmented set when it has shifts."""
    return f"{LM_DATA}/augmented" if LM_SHIFTS[regime] else LM_DATA


def lm_data(wildcards):
    folder = lm_data_dir(wildcards.regime)
    return {"tokens": f"{folder}/tokens.jsonl", "vocab": f"{folder}/vocab.json"}


def lm_vocab(wildcards):
    return lm_data(wildcards)["vocab"]


def lm_params(wildcards):
    return as_json(
        {
            "model": LM_MODELS[wildcards.name],
            "regime": wildcards.regime,
            "settings": LM["regimes"][wildcards.regime],
            "seed": int(wildcards.seed),
            "source": CHORALES["source"],
            "transpose": LM_SHIFTS[wildcards.regime],
        }
    )


def lm_params_no_seed(wildcards):
    """lm_params of a job over every seed of a (model, regime): the ensemble's score."""
    return as_json(
        {
            "model": LM_MODELS[wildcards.name],
            "regime": wildcards.regime,
            "source": CHORALES["source"],
            "transpose": LM_SHIFTS[wildcards.regime],
        }
    )


def lm_sample_params(wildcards):
    model = LM_MODELS[wildcards.name]
    return as_json(
        {
            **LM["sampling"],
            "name": f"{wildcards.name}_{wildcards.regime}",
            "label": lm_sample_label(wildcards.name, wildcards.regime),
            # trained on transposed copies: samples come in any key, engraved in the one found
            "key_signature": "found" if LM_SHIFTS[wildcards.regime] else "c",
        }
    )


def lm_sample_seeds(regime):
    """The seeds a (model, regime)'s samples are drawn from: all of them (their ensemble) with
    lm.sampling.ensemble and two seeds or more, else the first."""
    seeds = LM_SEEDS[regime]
    return (
        seeds if LM["sampling"].get("ensemble", True) and len(seeds) > 1 else seeds[:1]
    )


def lm_sample_source(regime):
    """Which network a (model, regime)'s samples come from, in words."""
    seeds = lm_sample_seeds(regime)
    return f"ensemble of {len(seeds)} seeds" if len(seeds) > 1 else f"seed {seeds[0]}"


def lm_sample_label(name, regime):
    """A sample set's label in its scores and in figure 21."""
    return f"{LM_MODELS[name]['model']} ({name}, {regime} regime, {lm_sample_source(regime)})"


def lm_runs(pattern):
    """One path per (model, regime): the sample sets (see lm_sample_models)."""
    return expand(pattern, name=LM_MODELS, regime=LM_REGIMES)


def lm_seed_runs(pattern, first_only=False):
    """One path per (model, regime, seed) of LM_SEEDS, or per (model, regime) with its first seed."""
    return [
        pattern.format(name=name, regime=regime, seed=seed)
        for name in LM_MODELS
        for regime in LM_REGIMES
        for seed in LM_SEEDS[regime][: 1 if first_only else None]
    ]


def lm_sample_models(wildcards):
    """The models a sample set is drawn from (lm_sample_seeds)."""
    return [
        f"results/lm/models/{wildcards.name}_{wildcards.regime}_s{seed}.pt"
        for seed in lm_sample_seeds(wildcards.regime)
    ]


def lm_score_parts():
    """Every row of scores.csv: the n-gram (and, with augmented data, the n-gram trained on it), the models (one
    row per seed), then the ensembles of the seeds."""
    ngram = ["results/lm/scores/ngram.csv"]
    if LM_SHIFTS.get("modern"):
        ngram.append("results/lm/scores/ngram_augmented.csv")
    return (
        ngram
        + lm_seed_runs("results/lm/scores/{name}_{regime}_s{seed}.csv")
        + lm_ensemble_runs("results/lm/scores/{name}_{regime}_ensemble.csv")
    )


def lm_ensemble_runs(pattern):
    """One path per (model, regime) trained with two seeds or more: their ensemble."""
    return [
        pattern.format(name=name, regime=regime)
        for name in LM_MODELS
        for regime in LM_REGIMES
        if len(LM_SEEDS[regime]) > 1
    ]


def lm_seed_models(wildcards):
    """Every seed's model of one (model, regime): the members of its ensemble."""
    return [
        f"results/lm/models/{wildcards.name}_{wildcards.regime}_s{seed}.pt"
        for seed in LM_SEEDS[wildcards.regime]
    ]


def fig21_models():
    """Report label of figure 21: the models it shows."""
    return ", ".join(LM["figure21"]["models"])


def fig21_dirs():
    figure = LM["figure21"]
    return [
        f"results/lm/samples/{name}_{figure['regime']}" for name in figure["models"]
    ]


def lm_outputs():
    return [
        "results/chorales/scores.csv",
        "results/chorales/learning_curves.csv",
        "results/figures/chorale_learning_curves.png",
        "results/chorales/sample_metrics.csv",
        "results/figures/sample_metrics.png",
        "results/figures/fig21_samples.png",
        *report_table_pages("lm"),
        *lm_sample_pages(),
    ]


# --- Melody benchmark (beyond the report) -------------------------------------------------------------------------
MELODY = config["melody"]
MELODY_KINDS = list(MELODY["kinds"])
MELODY_FOLDS = list(range(MELODY["folds"]))
MELODY_CATEGORY = "4. Melody benchmark"


def melody_corpus_params():
    return as_json({key: MELODY[key] for key in ("bwv", "fix_octave_errors")})


def melody_baseline_params(wildcards):
    return as_json(
        {
            "kind": wildcards.kind,
            "seed": MELODY["seed"],
            "folds": MELODY["folds"],
            "ngram_orders": MELODY["ngram_orders"],
        }
    )


def melody_neural_params(wildcards):
    return as_json(
        {
            "kind": wildcards.kind,
            "fold": int(wildcards.fold),
            "seed": MELODY["seed"],
            "folds": MELODY["folds"],
            "neural": MELODY["neural"],
        }
    )


def melody_parts():
    """Every per-note table: the baselines of each fold kind, then the neural models of each (kind, test fold)."""
    return [f"results/melody/baselines_{kind}.csv" for kind in MELODY_KINDS] + [
        f"results/melody/neural/{kind}_fold{fold}.csv"
        for kind in MELODY_KINDS
        for fold in MELODY_FOLDS
    ]


def melody_outputs():
    return [
        "results/chorales/melody_benchmark.csv",
        "results/chorales/melody_benchmark.md",
        "results/figures/melody_benchmark.png",
        *report_table_pages("melody"),
    ]


# --- Report pages (report.smk) ------------------------------------------------------------------------------
# Where the sample pages find their soundfont and at which sample rate they render audio (report.*; the package
# has the defaults: Debian's General MIDI soundfont, 16 kHz).
REPORT = config.get("report", {})


def report_tables():
    """Summary tables shown in the report, by path under results/ without .csv: (branch whose target builds the
    page, category, subcategory, table label, section of the report)."""
    tables = {
        "tables/reber_summary": (
            "reber",
            REBER_CATEGORY,
            "report tables",
            "Reber summary",
            "§2.1",
        ),
        "tables/reber_success": (
            "reber",
            REBER_CATEGORY,
            "report tables",
            "Reber runs",
            "§2.1",
        ),
        "tables/indistinguishable": (
            "reber",
            REBER_CATEGORY,
            "report tables",
            "indistinguishable",
            "§2.1",
        ),
        "tables/toy_language": (
            "reber",
            REBER_CATEGORY,
            "report tables",
            "toy language",
            "§1.3",
        ),
        "tables/gradients": (
            "memory",
            MEMORY_CATEGORY,
            "report tables",
            "gradients",
            "§2.1",
        ),
        "memory/mc_totals": (
            "memory",
            MEMORY_CATEGORY,
            "report tables",
            "total MC",
            "§2.3",
        ),
        "chorales/scores": ("lm", CHORALE_CATEGORY, "report tables", "scores", "§3.3"),
        "chorales/sample_metrics": (
            "lm",
            CHORALE_CATEGORY,
            "beyond the report",
            "sample metrics",
            "—",
        ),
        "chorales/melody_benchmark": (
            "melody",
            MELODY_CATEGORY,
            "beyond the report",
            "melody benchmark",
            "—",
        ),
    }
    for model in DLK["models"]:
        tables[f"memory/dlk_{model}"] = (
            "memory",
            MEMORY_CATEGORY,
            "report tables",
            f"D(l,k) {model}",
            "§2.2",
        )
    if DLK["conventions_k"]:
        tables["memory/dlk_conventions"] = (
            "memory",
            MEMORY_CATEGORY,
            "report tables",
            "D(l,k) conventions",
            "§2.2",
        )
    for source in CHORALE_SOURCES:
        tables[f"chorales/{source}/stats"] = (
            "chorales",
            CHORALE_CATEGORY,
            "report tables",
            f"data ({source})",
            "§3.2",
        )
    if CHORALES["compare_sources"]:
        tables["chorales/source_agreement"] = (
            "chorales",
            CHORALE_CATEGORY,
            "beyond the report",
            "source agreement",
            "—",
        )
    return tables


REPORT_TABLES = report_tables()


def report_table_pages(branch):
    """The HTML pages of one branch's summary tables (reber, memory, chorales, lm or melody)."""
    return [
        f"results/{table}.html"
        for table, meta in REPORT_TABLES.items()
        if meta[0] == branch
    ]


def table_meta(index):
    """Category (1) or subcategory (2) of a table page, from its wildcard."""
    return lambda wildcards: REPORT_TABLES[wildcards.table][index]


def table_labels(wildcards):
    """One label, so that the report never turns a label of two values into a toggle that hides a table."""
    _, _, _, name, section = REPORT_TABLES[wildcards.table]
    return {"table": name if section == "—" else f"{name} ({section})"}


def lm_sample_pages():
    return lm_runs("results/lm/samples/{name}_{regime}.html")


def lm_sample_page_params(wildcards):
    model = LM_MODELS[wildcards.name]
    return as_json(
        {
            "title": f"Samples of {model['model']} {wildcards.name} ({wildcards.regime} regime, "
            f"{lm_sample_source(wildcards.regime)})",
            "soundfont": REPORT.get("soundfont"),
            "audio_rate": REPORT.get("audio_rate"),
        }
    )
