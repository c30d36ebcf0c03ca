"""The smoke config through Snakemake end to end: outputs exist and parse, and nothing is left to do."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import REPO, SHARED_ARCHIVE, copy_workflow, run_snakemake, smoke_configs, snakemake_env

from rnnmem.chorales.dataset import BEGIN, END
from rnnmem.chorales.events import Chorale, figure20_tokens
from rnnmem.lm.render import tokens_to_chorale

pytestmark = pytest.mark.workflow

REBER_TABLES = {
    "results/tables/reber_success.csv": ["grammar", "model", "hidden", "params", "regime", "seed", "solved",
                                         "strings_to_success", "legal_acc_test", "outer_acc_test"],
    "results/tables/reber_summary.csv": ["grammar", "model", "regime", "success_rate", "median_strings"],
    "results/tables/indistinguishable.csv": ["model", "weights", "output_mean_abs_diff", "hidden_mean_abs_diff"],
    "results/tables/toy_language.csv": ["prefix", "legal_next", "most_active", "correct"],
    "results/tables/gradients.csv": ["model", "regime", "phase", "group", "q50", "frac_below_1e-6",
                                     "frac_above_1e2"],
    "results/memory/gradient_vs_lag.csv": ["model", "regime", "weights", "lag", "median"],
    "results/memory/dlk_vanilla.csv": ["k", "l", "mean", "std", "sem", "n_draws", "sv_max_below_1",
                                       "sv_max_below_4"],
    "results/memory/dlk_gru.csv": ["k", "l", "mean", "std", "sem", "ci_low", "ci_high", "median", "frac_above",
                                   "n_above", "n_draws", "sv_max_below_1"],
    "results/memory/dlk_conventions.csv": ["model", "bias", "input", "k", "l", "mean", "ci_low", "ci_high", "median",
                                           "frac_above", "n_above", "n_draws"],
    "results/memory/mc_esn.csv": ["k", "l", "mc"],
    "results/memory/mc_gru.csv": ["k", "l", "mc"],
    "results/memory/mc_totals.csv": ["reservoir", "k", "mc_total", "mc_total_std"],
}
FIGURES = ["fig07_reber_outputs_vanilla", "fig08_reber_hidden_states", "fig10_embedded_vanilla",
           "fig11_embedded_gru", "fig12_gradients", "fig13_gradients_near_zero", "gradient_vs_lag",
           "fig14_dlk_vanilla", "fig15_dlk_gru", "dlk_curves", "fig16_mc_esn", "mc_gru", "mc_total", "dlk_vs_mc"]


def test_every_reber_table_exists_and_parses(smoke_run):
    smoke = yaml.safe_load((REPO / "tests/config.smoke.yaml").read_text())["reber"]
    for path, columns in REBER_TABLES.items():
        table = pd.read_csv(smoke_run / path)
        assert not table.empty, path
        assert set(columns) <= set(table.columns), (path, table.columns)
    success = pd.read_csv(smoke_run / "results/tables/reber_success.csv")
    runs = len(smoke["experiments"]) * len(smoke["regimes"])
    assert len(success) == runs * smoke["n_seeds"]
    assert set(success["model"]) == {"vanilla", "gru", "lstm"}
    assert set(success["regime"]) == {"seed", "modern"}
    assert (success.loc[success["grammar"] == "embedded_reber", "outer_acc_test"].between(0, 1)).all()
    assert (smoke_run / "results/tables/reber_summary.md").read_text().startswith("| grammar")


def test_every_figure_is_a_png(smoke_run):
    for name in FIGURES:
        data = (smoke_run / f"results/figures/{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name


def test_models_load_and_every_rule_logged(smoke_run):
    from rnnmem.reber.ensembles import load_ensemble

    model, spec = load_ensemble(smoke_run / "results/models/reber/embedded_gru_modern.pt",
                                smoke_run / "results/models/reber/embedded_gru_modern.json")
    assert spec["hidden"] == model.recurrence.hidden == 10
    for rule in ("reber_tables", "indistinguishable", "toy_language"):
        assert (smoke_run / f"logs/{rule}.log").exists(), rule
        assert (smoke_run / f"benchmarks/{rule}.tsv").exists(), rule


def test_second_dry_run_has_nothing_to_do(smoke_run):
    result = run_snakemake(smoke_run, "--configfile", *smoke_configs(smoke_run), "--dry-run", "--cores", "1")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_bad_config_stops_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path)
    config = yaml.safe_load((workdir / "tests/config.smoke.yaml").read_text())
    config["reber"]["experiments"][0]["model"] = "transformer"
    (workdir / "bad.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    result = run_snakemake(workdir, "--configfile", "bad.yaml", "--cores", "1", check=False)
    assert result.returncode != 0
    assert "transformer" in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_corrupt_model_file_is_named(smoke_run, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a torch file")
    out = tmp_path / "fig.png"
    command = [sys.executable, "-m", "rnnmem", "reber-figure", "--figure", "fig07", "--model", str(bad),
               "--spec", str(smoke_run / "results/models/reber/reber_vanilla5_modern.json"),
               "--table", str(smoke_run / "results/tables/reber/runs/reber_vanilla5_modern.csv"),
               "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=snakemake_env(), timeout=300)
    assert result.returncode == 1
    expected = f"rnnmem reber-figure: error: {bad}: damaged or not a model file (too short for a zip archive)\n"
    assert result.stderr == expected
    assert not out.exists()


def test_memory_tables_cover_the_smoke_grid(smoke_run):
    memory = yaml.safe_load((REPO / "tests/config.smoke.yaml").read_text())["memory"]
    dlk = pd.read_csv(smoke_run / "results/memory/dlk_gru.csv")
    assert sorted(set(dlk["k"])) == sorted(memory["dlk"]["k"])
    assert dlk.groupby("k")["l"].max().eq(memory["dlk"]["max_l"]).all()
    assert (dlk["n_draws"] == memory["dlk"]["draws"]["gru"]).all()
    conventions = pd.read_csv(smoke_run / "results/memory/dlk_conventions.csv")
    assert len(conventions) == 2 * 2 * 2 * len(memory["dlk"]["conventions_k"])  # model × bias × input × k
    assert (conventions["l"] == memory["dlk"]["max_l"]).all()
    assert (conventions["ci_low"] <= conventions["mean"]).all()
    assert (conventions["mean"] <= conventions["ci_high"]).all()
    mc = pd.read_csv(smoke_run / "results/memory/mc_esn.csv")
    assert mc["mc"].between(0, 1).all()
    totals = pd.read_csv(smoke_run / "results/memory/mc_totals.csv")
    assert set(totals["reservoir"]) == {"esn", "esn_orthogonal", "gru"}
    scales = pd.read_csv(smoke_run / "results/memory/mc_input_scale.csv")
    assert sorted(set(scales["input_scale"])) == sorted(memory["capacity"]["input_scales"])
    assert set(scales["reservoir"]) == {"esn_gaussian", "esn_orthogonal"}
    linear = pd.read_csv(smoke_run / "results/memory/mc_linear.csv")
    assert sorted(set(linear["k"])) == sorted(memory["capacity"]["k"])
    assert (linear["exact_all_lags"] - linear["k"]).abs().max() < 1e-6  # Σ_{l≥0} MC_l = k for linear reservoirs


def test_chorale_data_of_the_music21_source(smoke_run):
    import json

    numbers = yaml.safe_load((REPO / "tests/config.smoke.yaml").read_text())["chorales"]["numbers"]
    folder = smoke_run / "results/chorales/music21"
    tokens = [json.loads(line) for line in (folder / "tokens.jsonl").read_text().splitlines()]
    splits = json.loads((folder / "splits.json").read_text())
    assert sorted(t["number"] for t in tokens) == sorted(splits["train"] + splits["valid"] + splits["test"])
    assert len(tokens) + len(pd.read_csv(folder / "skipped.csv")) == len(numbers)
    vocab = json.loads((folder / "vocab.json").read_text())
    assert vocab[:3] == ["<unk>", "<s>", "</s>"]
    text = (folder / "text" / "001_bwv269.txt").read_text()
    assert text.startswith("c'4 | c'2 g'4 | e'4. d'8 c'4 | c'4. d'8 e'4 | d'2 \\ e'4 | g'2 f'4 | e'4 d'2 | c'2 \\")
    assert (smoke_run / "results/figures/fig19_soprano_bwv269.png").read_bytes()[:4] == b"\x89PNG"


def test_augmented_training_data_and_its_ngram_baseline(smoke_run):
    """lm.regimes.modern.transpose [-1, 1] in the smoke config: the modern regime trains on the training chorales
    plus two shifted copies each, valid and test untouched; the n-gram on the same data is its own scores row."""
    from rnnmem.lm.model import lm_parameter_count

    smoke = yaml.safe_load((REPO / "tests/config.smoke.yaml").read_text())["lm"]
    shifts = smoke["regimes"]["modern"]["transpose"]
    scores = pd.read_csv(smoke_run / "results/chorales/scores.csv", dtype={"transpose": str}, keep_default_na=False)
    folder = smoke_run / "results/chorales" / scores.loc[0, "source"]  # lilypond with the Hardy archive
    base = [json.loads(line) for line in (folder / "tokens.jsonl").read_text().splitlines()]
    augmented = [json.loads(line) for line in (folder / "augmented/tokens.jsonl").read_text().splitlines()]
    vocab_base = json.loads((folder / "vocab.json").read_text())
    vocab = json.loads((folder / "augmented/vocab.json").read_text())
    assert vocab[:len(vocab_base)] == vocab_base
    held_out = [(r["number"], r["split"], r["tokens"]) for r in base if r["split"] != "train"]
    assert [(r["number"], r["split"], r["tokens"]) for r in augmented if r["split"] != "train"] == held_out
    copies = [r for r in augmented if r["shift"] != 0]
    assert {r["split"] for r in copies} == {"train"}
    assert len(copies) == len(shifts) * sum(r["split"] == "train" for r in base)

    label = " ".join(str(s) for s in sorted(shifts))
    assert sorted(scores.loc[scores["kind"] == "ngram", "transpose"]) == ["", label]
    trained = scores[scores["kind"] != "ngram"]
    assert set(trained.loc[trained["regime"] == "modern", "transpose"]) == {label}
    assert set(trained.loc[trained["regime"] == "seed", "transpose"]) == {""}
    embedding = smoke["regimes"]["modern"]["embedding"]
    for row in trained[trained["regime"] == "modern"].itertuples():
        members = smoke["n_seeds"]["modern"] if row.model.endswith("_ensemble") else 1  # an ensemble counts all
        assert int(row.params) == members * lm_parameter_count(row.kind, len(vocab), int(row.hidden), embedding)


def test_scores_have_a_row_per_seed_and_the_seed_summary(smoke_run):
    """lm.n_seeds {modern: 2} in the smoke config: two rows per modern model, one per seed-regime model, each with
    its run's mean, sd and seed count; learning curves come from the first seed."""
    smoke = yaml.safe_load((REPO / "tests/config.smoke.yaml").read_text())["lm"]
    scores = pd.read_csv(smoke_run / "results/chorales/scores.csv")
    trained = scores[(scores["kind"] != "ngram") & scores["seed"].notna()]
    for (model, regime), rows in trained.groupby(["model", "regime"]):
        n = smoke["n_seeds"].get(regime, 1)
        assert sorted(rows["seed"]) == list(range(smoke["seed"], smoke["seed"] + n)), (model, regime)
        assert (rows["n_seeds"] == n).all()
        # the table's rounding (rnnmem.core.atomic.write_csv): the summary comes from the unrounded NLLs
        assert rows["nll_mean"].tolist() == pytest.approx([rows["nll_test"].mean()] * n, rel=1e-4)
        if n == 1:
            assert rows["nll_sd"].isna().all()
        else:
            assert rows["nll_sd"].tolist() == pytest.approx([rows["nll_test"].std()] * n, rel=1e-4)
    curves = pd.read_csv(smoke_run / "results/chorales/learning_curves.csv")
    assert set(curves["seed"]) == {smoke["seed"]}


def test_each_multi_seed_run_has_an_ensemble_row(smoke_run):
    """A (model, regime) with two seeds or more also has the row of its seeds' mean distribution: by Jensen's
    inequality its NLL is at most the mean of the seeds' NLLs, and it counts every member's parameters."""
    smoke = yaml.safe_load((REPO / "tests/config.smoke.yaml").read_text())["lm"]
    scores = pd.read_csv(smoke_run / "results/chorales/scores.csv")
    ensembles = scores[scores["model"].str.endswith("_ensemble")]
    n = smoke["n_seeds"]["modern"]
    expected = {(f"{m['name']}_ensemble", "modern") for m in smoke["models"]}
    assert set(zip(ensembles["model"], ensembles["regime"], strict=True)) == expected
    for row in ensembles.itertuples():
        members = scores[(scores["model"] == row.model.removesuffix("_ensemble")) & (scores["regime"] == row.regime)]
        assert len(members) == n and row.seed != row.seed  # NaN: no seed of its own
        assert row.nll_test <= members["nll_test"].mean() + 1e-6
        assert row.params == n * members["params"].iloc[0]
        assert row.stop_reason == f"ensemble of {n} seeds"


def test_multi_seed_samples_come_from_the_ensemble(smoke_run, tmp_path, one_torch_thread):
    """lm.sampling.ensemble (default): a (model, regime) with two seeds is sampled from their mean distribution.
    Drawing again from both seeds gives the pipeline's samples; from the first seed alone, other ones."""
    from rnnmem.lm.jobs import lm_samples

    smoke = yaml.safe_load((REPO / "tests/config.smoke.yaml").read_text())["lm"]
    n = smoke["n_seeds"]["modern"]
    (vocab,) = smoke_run.glob("results/chorales/*/augmented/vocab.json")  # the source of the smoke run
    params = {**smoke["sampling"], "engrave": False, "label": "again"}
    differs = []
    for name in (m["name"] for m in smoke["models"]):
        ours = pd.read_csv(smoke_run / f"results/lm/samples/{name}_modern.csv", keep_default_na=False)
        seeds = range(smoke["seed"], smoke["seed"] + n)
        models = [smoke_run / f"results/lm/models/{name}_modern_s{seed}.pt" for seed in seeds]
        again = []
        for members in (models, models[:1]):
            listing = tmp_path / f"{name}_{len(members)}.csv"
            lm_samples({**params, "name": name}, vocab, members, tmp_path / f"{name}_{len(members)}", listing)
            again.append(pd.read_csv(listing, keep_default_na=False)["tokens"].tolist())
        assert again[0] == ours["tokens"].tolist(), name
        differs.append(again[1] != again[0])
    assert any(differs)


def test_lilypond_source_and_agreement(smoke_run):
    if not SHARED_ARCHIVE.exists():
        pytest.skip(f"the Hardy archive is not at {SHARED_ARCHIVE} (a user's clone without ../shared)")
    folder = smoke_run / "results/chorales/lilypond"
    assert len(pd.read_csv(folder / "ly_files.csv")) == 372
    text = (folder / "text" / "001_bwv269.txt").read_text()
    assert text.startswith("c'4 | c'2 g'4 | e'4. d'8 c'4 |")
    agreement = pd.read_csv(smoke_run / "results/chorales/source_agreement.csv")
    assert {"identical", "same_up_to_transposition", "edit_distance", "first_difference"} <= set(agreement.columns)
    assert agreement["identical"].sum() >= len(agreement) // 2


def test_sample_renderer_reads_back_every_smoke_chorale(smoke_run):
    """Real sopranos to figure-20 tokens and back: the sample renderer reads what the data set writes."""
    path = smoke_run / "results/chorales/music21/transposed.jsonl"
    chorales = [Chorale.from_json(json.loads(line)) for line in path.read_text().splitlines()]
    assert chorales
    for chorale in chorales:
        parsed, _ = tokens_to_chorale([BEGIN, *figure20_tokens(chorale), END])
        assert figure20_tokens(parsed) == figure20_tokens(chorale)


@pytest.mark.skipif(not SHARED_ARCHIVE.exists(), reason=f"{SHARED_ARCHIVE} is absent: the committed manifest "
                    "covers the smoke run with the LilyPond source built from it")
def test_smoke_tables_match_the_committed_manifest(smoke_run):
    """This machine reproduces every smoke table byte for byte (tests/expected/smoke-tables.sha256)."""
    from smoke_tables import MANIFEST, read_manifest, table_digests

    expected, found = read_manifest(), table_digests(smoke_run)
    missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    differing = sorted(name for name in expected.keys() & found.keys() if expected[name] != found[name])
    assert not (missing or extra or differing), (
        f"smoke tables differ from {MANIFEST.name}: {len(differing)} differ {differing[:20]}, missing {missing[:20]}, "
        f"not in the manifest {extra[:20]}. If the change is meant to move results, run `make expected` and say "
        "which tables moved and why in the commit.")
