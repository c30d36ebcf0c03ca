import json
import os

from snakemake.utils import min_version, validate

from rnnmem.config import check_config, dlk_draws
from rnnmem.reber.experiment_spec import resolve_experiments

min_version("9.0")


validate(config, schema="../schemas/config.schema.yaml")
check_config(config)

REBER = config["reber"]
REBER_EXPERIMENTS = resolve_experiments(REBER["experiments"])
REBER_REGIMES = list(REBER["regimes"])

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


def reber_outputs():
    return [
        "results/tables/reber_success.csv",
        "results/tables/reber_summary.csv",
        "results/tables/reber_summary.md",
        "results/tables/indistinguishable.csv",
        "results/tables/toy_language.csv",
        *REBER_FIGURES.values(),
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
    ]


DLK = MEMORY["dlk"]
CAPACITY = MEMORY["capacity"]
DLK_FIGURES = {
    "vanilla": "results/figures/fig14_dlk_vanilla.png",
    "gru": "results/figures/fig15_dlk_gru.png",
}
DLK_CAPTIONS = {"vanilla": "fig14", "gru": "fig15"}


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
    return outputs + ["results/figures/fig19_soprano_bwv269.png"]


# --- Chorale models ---------------------------------------------------------------------------------------------
LM = config["lm"]
CHORALE_CATEGORY = "3. Bach chorales (§3)"
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


def lm_sample_params(wildcards):
    model = LM_MODELS[wildcards.name]
    return as_json(
        {
            **LM["sampling"],
            "name": f"{wildcards.name}_{wildcards.regime}",
            "label": f"{model['model']} ({model['size']}, {wildcards.regime})",
        }
    )


def lm_runs(pattern):
    """One path per (model, regime): the sample sets, drawn from each one's first seed."""
    return expand(pattern, name=LM_MODELS, regime=LM_REGIMES)


def lm_seed_runs(pattern, first_only=False):
    """One path per (model, regime, seed) of LM_SEEDS, or per (model, regime) with its first seed."""
    return [
        pattern.format(name=name, regime=regime, seed=seed)
        for name in LM_MODELS
        for regime in LM_REGIMES
        for seed in LM_SEEDS[regime][: 1 if first_only else None]
    ]


def lm_first_model(wildcards):
    """The model a sample set is drawn from: its (model, regime)'s first seed."""
    seed = LM_SEEDS[wildcards.regime][0]
    return f"results/lm/models/{wildcards.name}_{wildcards.regime}_s{seed}.pt"


def lm_score_parts():
    """Every row of scores.csv: the n-gram (and, with augmented data, the n-gram trained on it), then the models."""
    ngram = ["results/lm/scores/ngram.csv"]
    if LM_SHIFTS.get("modern"):
        ngram.append("results/lm/scores/ngram_augmented.csv")
    return ngram + lm_seed_runs("results/lm/scores/{name}_{regime}_s{seed}.csv")


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
    ]


# --- Melody benchmark (beyond the report) -------------------------------------------------------------------------
MELODY = config["melody"]
MELODY_KINDS = list(MELODY["kinds"])
MELODY_FOLDS = list(range(MELODY["folds"]))
MELODY_CATEGORY = "4. Melody benchmark (beyond the report)"


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
    ]
