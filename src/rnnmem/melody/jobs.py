"""What the melody-benchmark rules run (issue 14, part 3): the corpus, the baselines, the neural folds, the table.

Every per-note table has the columns :data:`NOTE_COLUMNS` (one row per test note of every model): ``kind`` (fold
kind), ``fold`` (the test fold), ``bwv``, ``note`` (its index in the melody, from 0), ``model`` and ``bits``
(``-log2 P(pitch | everything before it)``). :func:`melody_benchmark` averages them over notes (the benchmark's
number) and over folds (the fold standard deviation). torch is imported by the neural job alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnmem.core.atomic import write_csv, write_text
from rnnmem.core.errors import ConfigError
from rnnmem.core.progress import summary
from rnnmem.core.tables import read_table
from rnnmem.melody.corpus import Melody, load_melodies, read_json, to_json
from rnnmem.melody.folds import fold_members, make_folds, split_fold
from rnnmem.melody.tunes import tune_groups

NOTE_COLUMNS = ["kind", "fold", "bwv", "note", "model", "bits"]
TABLE_COLUMNS = ["kind", "model", "bits_per_note", "fold_sd", "notes", "folds", "source", "protocol"]
# The melody.neural keys of config.yaml: the fields of rnnmem.melody.neural.NeuralSettings a run sets (the others,
# layers, context, ppm_grid and head_step, keep their defaults).
NEURAL_KEYS = ("cell", "hidden", "embed", "dropout", "epochs", "patience", "batch_size", "lr", "lr_patience",
               "weight_decay", "shifts", "viewpoints", "heads", "combine", "seeds", "ppm", "refit")
PPM_MODELS = {"ltm": "ppm_ltm", "stm": "ppm_stm", "both": "ppm_ltm+stm"}
NGRAM_MODEL = "ngram_kn"
GOAL = 1.85
PEARCE = "185 chorales (BWV 253-438), 9,227 notes, 10-fold CV (Pearce 2005, Dataset 2)"
# The yardstick's numbers (bits/note), each with its protocol.
PUBLISHED = (
    ("Pearce 2005 System A (PPM LTM+STM)", 2.337, 9227, 10, PEARCE),
    ("Conklin & Witten viewpoints (re-run by Pearce 2005)", 2.045, 9227, 10, PEARCE),
    ("Pearce 2005 System C", 1.953, 9227, 10, PEARCE),
    ("Pearce 2005 System D", 1.911, 9227, 10, PEARCE),
    ("Conklin & Witten 1995", 1.87, math.nan, math.nan, "95 training / 5 test chorales (Conklin & Witten 1995)"),
)


def neural_settings(block: dict[str, Any]):
    """The :class:`rnnmem.melody.neural.NeuralSettings` of the config's ``melody.neural`` block (lists as tuples);
    a missing or unknown key is a one-line :class:`ConfigError` naming it."""
    unknown = sorted(set(block) - set(NEURAL_KEYS))
    if unknown:
        raise ConfigError(f"melody.neural.{unknown[0]}: unknown key (expected {', '.join(NEURAL_KEYS)})")
    missing = [key for key in NEURAL_KEYS if key not in block]
    if missing:
        raise ConfigError(f"melody.neural.{missing[0]}: missing")
    from rnnmem.melody.neural import NeuralSettings

    values = {key: tuple(value) if isinstance(value, list) else value for key, value in block.items()}
    return NeuralSettings(**values)


def bwv_numbers(params: dict[str, Any]) -> list[int] | None:
    """The BWV numbers of ``params["bwv"]`` (``[first, last]``, inclusive), or None (all) when absent or empty."""
    span = params.get("bwv") or []
    return list(range(span[0], span[1] + 1)) if span else None


def melody_corpus(params: dict[str, Any], out: Path, threads: int = 1) -> None:
    """The soprano melodies as JSON (music21's corpus, parsed by ``threads`` processes)."""
    melodies = load_melodies(bwv_numbers(params), params["fix_octave_errors"], workers=threads)
    write_text(out, json.dumps(to_json(melodies), separators=(",", ":")))
    notes = sum(len(m.notes) for m in melodies)
    summary(f"{len(melodies)} melodies (BWV {melodies[0].bwv}-{melodies[-1].bwv}), {notes} notes")


def corpus_folds(melodies: Sequence[Melody], kind: str, params: dict[str, Any]) -> list[int]:
    """The fold index of every melody (``params``: seed, folds)."""
    folds = make_folds(kind, tune_groups(melodies), params["seed"], params["folds"])
    empty = [k for k, members in enumerate(fold_members(folds, params["folds"])) if not members]
    if empty:
        raise ConfigError(f"melody.folds: {params['folds']} folds of {len(melodies)} melodies leave fold {empty[0]} "
                          f"empty ({kind} folds)")
    return folds


def note_rows(kind: str, fold: int, melodies: Sequence[Melody], indices: Sequence[int], model: str,
              bits: Sequence[float]) -> pd.DataFrame:
    """Per-note rows of ``model`` on the melodies ``indices`` (``bits``: their notes in order, concatenated)."""
    bwv = [melodies[i].bwv for i in indices for _ in melodies[i].notes]
    note = [n for i in indices for n in range(len(melodies[i].notes))]
    if len(bits) != len(bwv):
        raise ValueError(f"{model}: {len(bits)} bits for {len(bwv)} notes")
    return pd.DataFrame({"kind": kind, "fold": fold, "bwv": bwv, "note": note, "model": model,
                         "bits": np.asarray(bits, dtype=float)}, columns=NOTE_COLUMNS)


# --- baselines: PPM and the Kneser-Ney n-gram ---------------------------------------------------------------------

BEGIN, END = 0, 1  # the n-gram's ids before the pitches (END is never seen: its mass is renormalised away)


def _ngram_ids(pitches: Sequence[int], index: dict[int, int]) -> list[int]:
    return [BEGIN, *(index[p] + 2 for p in pitches)]


def ngram_bits(model, sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """Per-note bits of a :class:`KneserNeyLM` over pitch ids (each sequence starting with BEGIN), every note
    scored, the distribution renormalised over the pitches (END, never seen in training, dropped)."""
    out = []
    for seq in sequences:
        for position in range(1, len(seq)):
            context = seq[max(0, position - model.order + 1):position]
            p = model.prob(context, seq[position]) / (1.0 - model.prob(context, END))
            out.append(-math.log2(p))
    return np.asarray(out)


def ngram_fold(pitches: Sequence[Sequence[int]], alphabet: Sequence[int], train: Sequence[int],
               validation: Sequence[int], test: Sequence[int], orders: Sequence[int]) -> tuple[int, np.ndarray]:
    """The order with the fewest validation bits/note (trained on ``train``; the smallest on a tie), then that
    order trained on ``train`` and ``validation`` and its per-note bits on ``test``."""
    from rnnmem.lm.ngram import KneserNeyLM

    index = {p: i for i, p in enumerate(alphabet)}
    ids = [_ngram_ids(p, index) for p in pitches]
    size = len(alphabet) + 2
    scores = []
    for order in orders:
        model = KneserNeyLM(order, size, begin_id=BEGIN, end_id=END).fit([ids[i] for i in train])
        scores.append(float(ngram_bits(model, [ids[i] for i in validation]).mean()))
    order = int(orders[int(np.argmin(scores))])
    model = KneserNeyLM(order, size, begin_id=BEGIN, end_id=END).fit([ids[i] for i in sorted([*train, *validation])])
    return order, ngram_bits(model, [ids[i] for i in test])


def melody_baselines(params: dict[str, Any], melodies_path: Path, out: Path) -> None:
    """Per-note bits of PPM's LTM, STM and LTM+STM (IDyOM defaults, trained on the other folds) and of the
    Kneser-Ney n-gram (order chosen on the next fold, trained on the other folds) on every test fold of one kind
    (``params``: kind, seed, folds, ngram_orders)."""
    from rnnmem.melody.ppm import predict

    melodies = read_json(melodies_path)
    kind, n_folds = params["kind"], params["folds"]
    folds = corpus_folds(melodies, kind, params)
    pitches = [m.pitches for m in melodies]
    alphabet = sorted({p for seq in pitches for p in seq})
    parts, orders = [], []
    for k in range(n_folds):
        train, validation, test = split_fold(folds, k, n_folds)
        rest = sorted([*train, *validation])
        bits = predict([pitches[i] for i in rest], [pitches[i] for i in test], alphabet)
        for name, model in PPM_MODELS.items():
            parts.append(note_rows(kind, k, melodies, test, model, bits[name]))
        if params["ngram_orders"]:
            order, ngram = ngram_fold(pitches, alphabet, train, validation, test, params["ngram_orders"])
            orders.append(order)
            parts.append(note_rows(kind, k, melodies, test, NGRAM_MODEL, ngram))
        fold = pd.concat(parts[-(len(PPM_MODELS) + bool(params["ngram_orders"])):])
        means = fold.groupby("model", sort=False)["bits"].mean()
        print(f"fold {k}: {len(test)} melodies, " + ", ".join(f"{m}={v:.3f}" for m, v in means.items())
              + (f" (n-gram order {orders[-1]})" if orders else ""), flush=True)
    table = pd.concat(parts, ignore_index=True)
    write_csv(out, table)
    means = table.groupby("model", sort=False)["bits"].mean()
    summary(f"{kind} folds, {table['note'].size // table['model'].nunique()} notes: "
            + ", ".join(f"{m} {v:.3f}" for m, v in means.items()) + " bits/note"
            + (f"; n-gram orders per fold {orders}" if orders else ""))


# --- the neural model, one test fold per job ----------------------------------------------------------------------


def benchmark_row(name: str) -> bool:
    """Whether a model of :func:`rnnmem.melody.neural.benchmark_neural` gets rows in the benchmark: not ``ppm``
    (the baselines' ``ppm_ltm+stm`` again) nor ``seed<s>_pitch`` (a diagnostic of one head; the command line
    still prints both)."""
    return name != "ppm" and not name.endswith("_pitch")


def melody_neural(params: dict[str, Any], melodies_path: Path, out: Path) -> None:
    """Per-note bits of every model of :func:`rnnmem.melody.neural.benchmark_neural` on one test fold
    (``params``: kind, fold, seed, folds, neural) that :func:`benchmark_row` keeps; names get the prefix
    ``neural_``."""
    from rnnmem.melody.neural import benchmark_neural

    settings = neural_settings(params["neural"])
    melodies = read_json(melodies_path)
    kind, k = params["kind"], int(params["fold"])
    if not 0 <= k < params["folds"]:
        raise ConfigError(f"melody.folds: test fold {k} is not among the {params['folds']} folds")
    folds = corpus_folds(melodies, kind, params)
    report = benchmark_neural(melodies, folds, settings, params["folds"], test_folds=[k],
                              log=lambda line: print(line, flush=True))
    test = fold_members(folds, params["folds"])[k]
    parts = []
    for name, result in report["models"].items():
        if not benchmark_row(name):
            continue
        bits = [b for i in test for b in result["bits"][i]]
        parts.append(note_rows(kind, k, melodies, test, f"neural_{name}", bits))
    for record in report["selection"]:
        print(f"selection: {record}", flush=True)
    write_csv(out, pd.concat(parts, ignore_index=True))
    best = min(report["models"].items(), key=lambda item: item[1]["mean"])
    summary(f"{kind} fold {k}: {report['notes']} notes, {len(report['models'])} models, lowest neural_{best[0]} "
            f"{best[1]['mean']:.3f} bits/note ({report['seconds']} s)")


# --- the table, its Markdown and the figure -----------------------------------------------------------------------


def benchmark_table(notes: pd.DataFrame) -> pd.DataFrame:
    """One row per (kind, model) of the per-note table: the mean over notes, the standard deviation (n - 1) of the
    fold means, the numbers of notes and folds; then a row per published number."""
    rows = []
    for (kind, model), group in notes.groupby(["kind", "model"], sort=False):
        fold_means = group.groupby("fold")["bits"].mean()
        rows.append({"kind": kind, "model": model, "bits_per_note": group["bits"].mean(),
                     "fold_sd": fold_means.std(ddof=1) if len(fold_means) > 1 else math.nan,
                     "notes": len(group), "folds": len(fold_means), "source": "this run",
                     "protocol": f"{kind} folds of this corpus"})
    for model, bits, count, folds, protocol in PUBLISHED:
        rows.append({"kind": "", "model": model, "bits_per_note": bits, "fold_sd": math.nan, "notes": count,
                     "folds": folds, "source": "published", "protocol": protocol})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["notes"] = table["notes"].astype("Int64")
    table["folds"] = table["folds"].astype("Int64")
    return table


def _cell(value: Any, digits: int = 3) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def benchmark_markdown(table: pd.DataFrame, corpus_notes: int, corpus_melodies: int) -> str:
    lines = ["# Melody benchmark: next-pitch cross-entropy of the chorale sopranos", "",
             f"This corpus: {corpus_melodies} melodies, {corpus_notes:,} notes (Pearce's Dataset 2: 185 melodies, "
             "9,227 notes; the difference is the encoding, see rnnmem.melody.corpus). Every note is scored, the "
             "first from a start state; bits/note is the mean over all test notes, fold sd the standard "
             "deviation of the fold means. grouped folds keep every tune in one fold; plain folds are random by "
             "melody (Pearce's protocol). Published rows are quoted, not re-run.", "",
             "| kind | model | bits/note | fold sd | notes | folds | source | protocol |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for row in table.itertuples(index=False):
        lines.append(f"| {row.kind} | {row.model} | {_cell(row.bits_per_note)} | {_cell(row.fold_sd)} | "
                     f"{_cell(row.notes)} | {_cell(row.folds)} | {row.source} | {row.protocol} |")
    lines += ["", f"Goal: {GOAL} bits/note (below Conklin & Witten 1995's 1.87)."]
    return "\n".join(lines) + "\n"


def benchmark_figure(table: pd.DataFrame, path: Path) -> None:
    from rnnmem.core.figure_io import plt, save_figure  # matplotlib: only the figure job loads it

    ours = table[table["source"] == "this run"]
    models = list(dict.fromkeys(ours["model"]))
    kinds = list(dict.fromkeys(ours["kind"]))
    fig, ax = plt.subplots(figsize=(max(7.0, 0.45 * len(models) + 2), 7.0))
    width = 0.8 / max(len(kinds), 1)
    for j, kind in enumerate(kinds):
        rows = ours[ours["kind"] == kind].set_index("model").reindex(models)
        x = np.arange(len(models)) + (j - (len(kinds) - 1) / 2) * width
        ax.errorbar(x, rows["bits_per_note"], yerr=rows["fold_sd"].fillna(0.0), fmt="o", capsize=3,
                    label=f"this run, {kind} folds (± fold sd)")
    published = table[table["source"] == "published"]
    for i, row in enumerate(published.itertuples(index=False)):
        ax.axhline(row.bits_per_note, color=f"C{i + 2}", linestyle=":", linewidth=1,
                   label=f"published: {row.model} {row.bits_per_note:.3f}")
    ax.axhline(GOAL, color="black", linestyle="--", linewidth=1, label=f"goal {GOAL}")
    ax.set_xticks(np.arange(len(models)), models, rotation=45, ha="right")
    ax.set_ylabel("bits per note (lower is better)")
    ax.set_title("Melody benchmark: next-pitch cross-entropy of the chorale sopranos", fontsize=10)
    # below the rotated model names, not over them: the legend gets the figure's bottom strip
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="lower center", ncol=2, frameon=True)
    save_figure(fig, path)


def melody_benchmark(melodies_path: Path, parts: list[Path], table_out: Path, markdown: Path, figure: Path) -> None:
    """The benchmark table (CSV and Markdown) and its figure from the per-note tables."""
    notes = pd.concat([read_table(p, NOTE_COLUMNS) for p in parts], ignore_index=True)
    table = benchmark_table(notes)
    melodies = read_json(melodies_path)
    write_csv(table_out, table)
    write_text(markdown, benchmark_markdown(table, sum(len(m.notes) for m in melodies), len(melodies)))
    benchmark_figure(table, figure)
    ours = table[table["source"] == "this run"]
    best = ours.loc[ours["bits_per_note"].idxmin()]
    summary(f"{len(ours)} (kind, model) rows; lowest {best['model']} ({best['kind']}) {best['bits_per_note']:.3f} "
            f"bits/note, fold sd {best['fold_sd']:.3f}")
