"""What the chorale-model rules run (report §3.2–3.3): train, score, sample, render, measure.

The chorale data jobs are in :mod:`rnnmem.chorales.jobs`, the figures in :mod:`rnnmem.lm.figures`. music21 and
matplotlib are imported by the jobs that use them: training and scoring start without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rnnmem.core.atomic import write_csv
from rnnmem.core.errors import ConfigError
from rnnmem.core.progress import summary
from rnnmem.core.runtime import pick_device
from rnnmem.core.tables import read_table
from rnnmem.lm.data import load_token_data, load_vocab
from rnnmem.lm.evaluate import evaluate_lm
from rnnmem.lm.model import lm_matched_hidden, lm_parameter_count
from rnnmem.lm.ngram import KneserNeyLM, select_order
from rnnmem.lm.sampling import mixture_next_logits, sample_sequences, stateful_next_logits
from rnnmem.lm.settings import RegimeSettings, regime_settings
from rnnmem.lm.train import (
    CHECKPOINT_SUFFIX,
    checkpoint_path,
    load_checkpoint,
    load_trained,
    resumable,
    train_lm,
    write_model,
)

if TYPE_CHECKING:
    from rnnmem.chorales.events import Chorale
    from rnnmem.lm.keys import KeyProfiles

SCORE_COLUMNS = ["source", "model", "kind", "size", "hidden", "params", "regime", "seed", "transpose", "nll_test",
                 "bits_per_token", "perplexity", "bits_per_note", "accuracy", "squared_error", "squared_error_softmax",
                 "order", "stop_reason", "epochs"]
# Added by lm_scores: per (model, size, regime, training data) over its seeds, the test NLL's mean, standard deviation
# (n - 1 in the denominator; empty for one seed) and the number of seeds.
SEED_COLUMNS = ["nll_mean", "nll_sd", "n_seeds"]
RUN_KEYS = ["source", "model", "kind", "size", "regime", "transpose"]
# Wall-clock columns of the learning curve go to the job's log, not to results: tables must be byte-identical
# between two runs of the same config.
TIMING_COLUMNS = ["seconds", "train_seconds", "compute_seconds"]


def model_hidden(spec: dict[str, Any], vocab: int, settings: RegimeSettings) -> int:
    """A model's hidden size: given, or matched to a parameter budget (one-hot input in the seed regime)."""
    if "hidden" in spec:
        return int(spec["hidden"])
    return lm_matched_hidden(spec["model"], vocab, int(spec["params"]), settings.embedding)


def shifts_label(shifts: list[int] | None) -> str:
    """The ``transpose`` column of scores.csv: the training copies' shifts (``-1 1``), empty without any."""
    return " ".join(str(s) for s in shifts or [])


def lm_train(params: dict[str, Any], tokens: Path, vocab: Path, checkpoint_dir: Path, model_out: Path,
             curve_out: Path, budget_vocab: Path | None = None) -> None:
    """Train one (model, size, regime). Its checkpoint is ``<checkpoint_dir>/<identity digest>.ckpt`` (one file per
    run identity: settings, data, vocabulary; see :mod:`rnnmem.lm.train`), resumed after a kill; the final one
    is written to ``model_out`` without its wall-clock times (what later rules load), then the folder's other
    checkpoints and temporary files (of earlier settings or data, or of killed writes) are removed.

    A parameter budget is matched on ``budget_vocab`` (default: ``vocab``): with the base vocabulary for the
    transposition-augmented data, the model keeps the hidden size of the non-augmented one and the new tokens only
    add embedding rows and read-out columns (an exploratory run did better so than with the budget spread over
    the larger vocabulary: test NLL 1.774 at hidden 51 against 1.918 at hidden 19)."""
    settings = regime_settings(params["regime"], params["settings"])  # the one place the block becomes settings
    data = load_token_data(tokens, vocab)
    spec, regime = params["model"], settings.regime
    budget_size = len(load_vocab(budget_vocab)) if budget_vocab is not None else data.vocab_size
    hidden = model_hidden(spec, budget_size, settings)
    device = pick_device()
    checkpoint = checkpoint_path(checkpoint_dir, data, spec["model"], hidden, settings, params["seed"])
    resuming = checkpoint.exists() and resumable(load_checkpoint(checkpoint), settings.max_epochs, checkpoint)
    print(f"{spec['name']}/{regime}: {spec['model']} hidden {hidden}, device {device}, checkpoint {checkpoint}"
          + (f", resuming from {checkpoint}" if resuming else ""), flush=True)
    _, curve = train_lm(data, spec["model"], hidden, settings, params["seed"], None, device=device,
                        desc=f"{spec['name']}/{regime}", checkpoint_dir=checkpoint_dir)
    write_model(checkpoint, model_out)
    for stale in remove_stale_checkpoints(checkpoint_dir, keep=checkpoint):
        print(f"removed {stale}", flush=True)
    timing = curve[["epoch", *TIMING_COLUMNS]]
    print(timing.to_string(index=False), flush=True)
    steps_time, compute_time = curve["train_seconds"].sum(), curve["compute_seconds"].sum()
    print(f"tokens/s {curve['tokens'].sum() / max(steps_time, 1e-9):.0f}; loop overhead (step / forward+backward) "
          f"{steps_time / max(compute_time, 1e-9):.3f}", flush=True)
    curve = curve.drop(columns=TIMING_COLUMNS).assign(model=spec["name"], kind=spec["model"], regime=regime,
                                                      hidden=hidden, seed=params["seed"])
    write_csv(curve_out, curve)
    best = curve["valid_nll"].min() if "valid_nll" in curve and len(curve) else float("nan")
    summary(f"{spec['name']}/{regime}: {spec['model']} hidden {hidden}, stopped ({curve.attrs.get('stop_reason')}) "
            f"after {len(curve)} epochs, best valid NLL {best:.4f}")


def remove_stale_checkpoints(checkpoint_dir: Path, keep: Path) -> list[Path]:
    """Remove every checkpoint in ``checkpoint_dir`` but ``keep``, every temporary file a killed write left there,
    and the job's checkpoint of the layout before per-job folders (``<checkpoint_dir>.ckpt``); return them."""
    folder = Path(checkpoint_dir)
    stale = [path for path in sorted(folder.iterdir()) if path != Path(keep) and path.is_file()
             and (path.suffix == CHECKPOINT_SUFFIX or (path.name.startswith(".") and ".tmp" in path.name))]
    legacy = folder.with_name(folder.name + CHECKPOINT_SUFFIX)
    stale += [legacy] if legacy.is_file() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def network_score_row(params: dict[str, Any], scores: dict[str, float], *, name: str, hidden: int, count: int,
                      seed: float, stop_reason: str, epochs: int) -> dict[str, Any]:
    """The scores.csv row of a network or an ensemble of networks: the job's ``params`` (model, regime, source,
    transpose), ``scores`` from :func:`rnnmem.lm.evaluate.evaluate_lm`, and what differs between the two."""
    spec = params["model"]
    return {
        "source": params["source"], "model": name, "kind": spec["model"], "size": spec["size"],
        "hidden": hidden, "params": count, "regime": params["regime"], "seed": seed,
        "transpose": shifts_label(params.get("transpose")), "nll_test": scores["nll"],
        "bits_per_token": scores["bits_per_token"], "perplexity": scores["perplexity"],
        "bits_per_note": scores["bits_per_note"], "accuracy": scores["accuracy"],
        "squared_error": scores["squared_error"], "squared_error_softmax": scores["squared_error_softmax"],
        "order": np.nan, "stop_reason": stop_reason, "epochs": epochs,
    }


def lm_score(params: dict[str, Any], tokens: Path, vocab: Path, model_path: Path, out: Path) -> None:
    """Test-split scores of one trained model (one row of chorales/scores.csv); ``vocab`` must be the vocabulary
    the model was trained with."""
    model, curve = load_trained(model_path, device=pick_device(), vocab_path=vocab)
    data = load_token_data(tokens, vocab)
    scores = evaluate_lm(model, data.ids["test"], notes=data.notes["test"])
    spec, regime = params["model"], params["regime"]
    count = lm_parameter_count(spec["model"], data.vocab_size, model.hidden, model.embedding_dim)
    row = network_score_row(params, scores, name=spec["name"], hidden=model.hidden, count=count,
                            seed=params["seed"], stop_reason=curve.attrs.get("stop_reason", ""), epochs=len(curve))
    write_csv(out, pd.DataFrame([row], columns=SCORE_COLUMNS))
    summary(f"{spec['name']}/{regime} on the test split: {scores['bits_per_token']:.4f} bits per token, "
            f"perplexity {scores['perplexity']:.3f}, accuracy {scores['accuracy']:.4f} ({count} parameters)")


def lm_ensemble_score(params: dict[str, Any], tokens: Path, vocab: Path, model_paths: list[Path], out: Path) -> None:
    """Test-split scores of the mean distribution of a (model, regime)'s seeds (:mod:`rnnmem.lm.ensemble`): one row
    named ``<name>_ensemble``, its ``params`` the members' total, ``seed`` empty, ``epochs`` their total."""
    from rnnmem.lm.ensemble import ProbabilityMixture

    if len(model_paths) < 2:
        raise ConfigError(f"lm.n_seeds: an ensemble of {params['model']['name']}/{params['regime']} needs at least "
                          f"two seeds, got {len(model_paths)}")
    device = pick_device()
    loaded = [load_trained(path, device=device, vocab_path=vocab) for path in model_paths]
    data = load_token_data(tokens, vocab)
    scores = evaluate_lm(ProbabilityMixture([model for model, _ in loaded]), data.ids["test"],
                         device=device, notes=data.notes["test"])
    spec, regime = params["model"], params["regime"]
    first = loaded[0][0]
    count = lm_parameter_count(spec["model"], data.vocab_size, first.hidden, first.embedding_dim) * len(loaded)
    row = network_score_row(params, scores, name=f"{spec['name']}_ensemble", hidden=first.hidden, count=count,
                            seed=np.nan, stop_reason=f"ensemble of {len(loaded)} seeds",
                            epochs=sum(len(curve) for _, curve in loaded))
    write_csv(out, pd.DataFrame([row], columns=SCORE_COLUMNS))
    summary(f"{spec['name']}/{regime}, mean of {len(loaded)} seeds' distributions, on the test split: "
            f"{scores['bits_per_token']:.4f} bits per token, perplexity {scores['perplexity']:.3f} "
            f"({count} parameters)")


def lm_ngram(params: dict[str, Any], tokens: Path, vocab: Path, out: Path, orders_out: Path) -> None:
    """The Kneser-Ney baseline: order chosen on the validation split, scored on the test split; ``transpose`` (the
    shifts of the augmented data it is given, if any) labels its row."""
    data = load_token_data(tokens, vocab)
    order, table = select_order(data.ids["train"], data.ids["valid"], data.vocab_size, tuple(params["orders"]))
    model = KneserNeyLM(order, data.vocab_size).fit(data.ids["train"])
    nats, count = model.nll(data.ids["test"])
    notes = sum(data.notes["test"])
    row = {
        "source": params["source"], "model": f"ngram{order}", "kind": "ngram", "size": "",
        "hidden": np.nan, "params": np.nan, "regime": "", "seed": np.nan,
        "transpose": shifts_label(params.get("transpose")), "nll_test": nats / count,
        "bits_per_token": nats / count / np.log(2), "perplexity": float(np.exp(nats / count)),
        "bits_per_note": nats / np.log(2) / notes if notes else np.nan, "accuracy": np.nan,
        "squared_error": np.nan, "squared_error_softmax": np.nan, "order": order, "stop_reason": "",
        "epochs": np.nan,
    }
    write_csv(out, pd.DataFrame([row], columns=SCORE_COLUMNS))
    write_csv(orders_out, table)
    data_label = f" (training copies shifted by {row['transpose']})" if row["transpose"] else ""
    summary(f"n-gram{data_label} order {order} chosen on the validation split among {tuple(params['orders'])}; test "
            f"{row['bits_per_token']:.4f} bits per token, perplexity {row['perplexity']:.3f}")


def seed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with :data:`SEED_COLUMNS`: each row gets the mean and standard deviation of ``nll_test`` over the
    rows of its run (:data:`RUN_KEYS`: the same model, size, regime and training data, one row per seed), and
    their number; an n-gram row is a run of its own."""
    groups = table.groupby(RUN_KEYS, sort=False, dropna=False)["nll_test"]  # empty cells (NaN) group together
    return table.assign(nll_mean=groups.transform("mean"), nll_sd=groups.transform("std"),
                        n_seeds=groups.transform("size"))


def lm_scores(parts: list[Path], out: Path) -> None:
    """chorales/scores.csv: every model's row (one per seed), the n-gram first, with the seed summary of each
    (model, size, regime) in every one of its rows (:func:`seed_summary`)."""
    table = seed_summary(pd.concat([read_table(path, SCORE_COLUMNS) for path in parts], ignore_index=True))
    write_csv(out, table)
    best = table.loc[table["bits_per_token"].idxmin()] if len(table) else None
    lowest = "" if best is None else (f"; lowest test bits per token: {best['model']}"
                                      + (f" ({best['regime']})" if isinstance(best["regime"], str) else "")
                                      + f" {best['bits_per_token']:.4f}")
    summary(f"{len(table)} score rows{lowest}")


def training_key_profiles(chorales: list[Chorale], records: list[dict[str, Any]]) -> KeyProfiles:
    """The key profiles (rnnmem.lm.keys) of the training chorales: ``chorales`` (transposed to C) whose number
    is in the training split of ``records`` (tokens.jsonl, :func:`rnnmem.chorales.dataset.read_token_records`)."""
    from rnnmem.lm.keys import key_profiles

    trained = {r["number"] for r in records if r["split"] == "train"}
    return key_profiles(c for c in chorales if c.number in trained)


def lm_samples(params: dict[str, Any], vocab: Path, model_paths: list[Path], out_dir: Path, listing: Path,
               transposed: Path | None = None, tokens: Path | None = None) -> None:
    """N samples per temperature from one model, or from the mean distribution of several (the seeds of one
    (model, regime): the ensemble scored in scores.csv), each as text, MusicXML, MIDI and an engraved PNG;
    ``vocab`` must be the vocabulary the models were trained with. ``key_signature`` ``found`` (for models trained
    on transposed copies) engraves each sample in the key found with the profiles of the training chorales
    (``transposed`` and ``tokens`` of the chorale data), ``c`` in C."""
    if params.get("key_signature", "c") not in ("c", "found"):
        raise ConfigError(f"lm-samples: key_signature must be 'c' or 'found', not {params['key_signature']!r}")
    profiles = None
    if params.get("key_signature") == "found":
        if transposed is None or tokens is None:
            raise ConfigError("lm-samples: key_signature 'found' needs --transposed and --tokens (the training "
                              "chorales' key profiles)")
        from rnnmem.chorales.dataset import read_token_records
        from rnnmem.chorales.store import read_chorales

        profiles = training_key_profiles(read_chorales(transposed), read_token_records(tokens))
    device = pick_device()
    members = [stateful_next_logits(load_trained(path, device=device, vocab_path=vocab)[0]) for path in model_paths]
    model_path = model_paths[0] if len(model_paths) == 1 else ", ".join(str(path) for path in model_paths)
    vocabulary = load_vocab(vocab)
    from rnnmem.lm.render import engrave_samples, write_sample_files  # music21

    next_logits = members[0] if len(members) == 1 else mixture_next_logits(members)
    written = []
    for temperature in params["temperatures"]:
        samples = sample_sequences(next_logits, vocabulary, temperature, params["count"], params["max_tokens"],
                                   params["seed"], vocab_name=str(vocab), model_name=str(model_path))
        for index, tokens in enumerate(samples):
            stem = out_dir / f"T{temperature:g}_{index:02d}"
            title = f"{params['label']}, T = {temperature:g}, sample {index}"
            written.append((temperature, index, tokens,
                            write_sample_files(tokens, stem, title, number=index, profiles=profiles)))
    files = [sample for _, _, _, sample in written]
    # all PNGs with one LilyPond process: a start costs about a second, a sample far less
    infos = engrave_samples(files, params["engrave_timeout"]) if params["engrave"] else [
        sample.unengraved() for sample in files]
    rows = []
    for (temperature, index, tokens, _), info in zip(written, infos, strict=True):
        rows.append({"model": params["name"], "temperature": temperature, "index": index,
                     "tokens": " ".join(tokens), "engraved": info["png"] is not None,
                     **{k: info[k] for k in ("ended", "notes", "bars", "bars_ok", "time_signature", "key",
                                             "problems")}})
    write_csv(listing, pd.DataFrame(rows))
    engraved = sum(row["engraved"] for row in rows)
    ended = sum(bool(row["ended"]) for row in rows)
    summary(f"{params['name']}: {len(rows)} samples at T = {params['temperatures']}, {ended} ended with END, "
            f"{engraved} engraved")


def lm_sample_metrics(listings: list[Path], transposed: Path, tokens: Path, out: Path, figure: Path) -> None:
    """Musical and copy metrics of every sample set against the held-out Bach sopranos, every melody (samples and
    reference alike) first moved to the key found with the training chorales' key profiles (rnnmem.lm.keys)."""
    from rnnmem.chorales.dataset import read_token_records
    from rnnmem.chorales.store import read_chorales
    from rnnmem.lm import figures
    from rnnmem.lm.metrics import CopyIndex, metrics_table, reference_metrics, sample_metrics
    from rnnmem.lm.render import tokens_to_chorale

    records = read_token_records(tokens)
    training = CopyIndex([r["tokens"] for r in records if r["split"] == "train"])
    held_out = {r["number"] for r in records if r["split"] == "test"}
    in_c = read_chorales(transposed)
    profiles = training_key_profiles(in_c, records)
    reference = [c for c in in_c if c.number in held_out]
    reference_tokens = [r["tokens"] for r in records if r["split"] == "test"]
    results = [("Bach (held-out)", None, reference_metrics(reference, reference_tokens, training, profiles))]
    for listing in listings:
        samples = read_table(listing, ["model", "temperature", "tokens"], keep_default_na=False)
        for (model, temperature), group in samples.groupby(["model", "temperature"], sort=False):
            token_lists = [t.split(" ") if t else [] for t in group["tokens"]]
            chorales = [tokens_to_chorale(t, i)[0] for i, t in enumerate(token_lists)]
            results.append((model, float(temperature),
                            sample_metrics(chorales, token_lists, reference, training, profiles)))
    table = metrics_table(results)
    write_csv(out, table)
    figures.fig_sample_metrics(table, figure)
    summary(f"metrics of {len(results) - 1} sample sets against {len(reference)} held-out Bach sopranos "
            f"(keys found with the training chorales' profiles), {len(table)} rows -> {figure}")


def fig21(params: dict[str, Any], sample_dirs: list[Path], out: Path) -> None:
    """Report figure 21: the first engraved sample of each configured model, one above the other."""
    from rnnmem.lm import figures

    images = [(label, Path(folder) / f"T{params['temperature']:g}_00.png")
              for label, folder in zip(params["labels"], sample_dirs, strict=True)]
    figures.fig_samples(images, out, title=f"First sample of each model at temperature T = {params['temperature']:g}")
    summary(f"figure 21: {len(images)} engraved samples at T = {params['temperature']:g} -> {out}")


def learning_curves(curves: list[Path], table_out: Path, figure: Path) -> None:
    """Train/valid NLL per epoch of every chorale model, one panel per regime."""
    from rnnmem.lm import figures

    table = pd.concat([read_table(path, ["epoch", "regime", "model"]) for path in curves], ignore_index=True)
    write_csv(table_out, table)
    figures.fig_learning_curves(table, figure)
    summary(f"learning curves of {table['model'].nunique()} models in {table['regime'].nunique()} regimes, "
            f"{len(table)} epochs in all -> {figure}")


