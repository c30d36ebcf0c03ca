"""Figures of the chorale models (report §3.2–3.3): figure 21, engraved samples stacked with a caption each, a
summary of the musical metrics of :mod:`rnnmem.lm.metrics` per model and temperature, and the learning curves.

All are written with :func:`rnnmem.core.figure_io.save_figure` (atomic, no software stamp).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.textpath import TextPath
from matplotlib.ticker import MaxNLocator

from rnnmem.core.figure_io import plt, save_figure

DPI = 150  # the engraved PNGs are 150 dpi: shown at that size, one image pixel is one figure pixel
CAPTION_INCHES = 0.4
TITLE_INCHES = 0.5
TITLE_POINTS = 13
INK_LEVEL = 0.5  # a pixel darker than this is ink
TITLE_MIN_PX, TITLE_MAX_PX = 15, 70  # an engraved one-line title at 150 dpi is about 35 pixels tall, a fermata 10
STAFF_LINE_FRACTION = 0.6  # a row inked across more than this fraction of the width is a staff line, not a title
MARGIN_INCHES = 0.1
MODEL_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
REFERENCE_COLOUR = "#333333"
# Past len(MODEL_COLOURS) models the colours repeat with a hatch, so every model stays distinguishable.
HATCHES = ("", "///", "...", "xx")

HISTOGRAM_LABELS = {"pitch_class": "pitch class", "interval": "interval", "note_length": "note length"}
FRACTION_LABELS = {"bars_filled": "bars that fit\nthe time signature",
                   "phrase_end_tonic_triad": "phrase endings on\na tonic-triad tone",
                   "ends_on_tonic": "melodies ending\non the tonic",
                   "copy_window8_fraction": "8-note windows\nfound in training"}
COUNT_LABELS = {"copy_longest_run_mean": "longest copied run\n(tokens, mean)",
                "pitch_range": "pitch range\n(semitones, mean)"}


def _grey(picture: np.ndarray) -> np.ndarray:
    """Lightness in [0, 1] of an image read by ``plt.imread`` (grey, grey + alpha, RGB or RGBA; alpha over white)."""
    if picture.ndim == 2:
        return picture.astype(np.float64)
    rgb = picture[..., :3].astype(np.float64) if picture.shape[2] >= 3 else picture[..., :1].astype(np.float64)
    if picture.shape[2] in (2, 4):  # transparent pixels are white paper
        alpha = picture[..., -1:].astype(np.float64)
        rgb = rgb * alpha + (1.0 - alpha)
    return rgb.mean(axis=2)


def drop_engraved_title(picture: np.ndarray) -> np.ndarray:
    """The engraved sample without the title LilyPond printed above its first system (fig. 21 gives each sample one
    caption of its own; the engraved title would be a second one).

    The title is the topmost band of ink rows, followed by a blank gap; it is only removed when that band looks like
    one line of text: :data:`TITLE_MIN_PX` to :data:`TITLE_MAX_PX` rows tall (a fermata or a note above the first
    staff is shorter) and with no row inked across most of the width (a staff line is, the title is not). The blank
    margin above the title is kept around the music, and the page is narrowed to the music (a long title made it
    wider). Anything else is returned unchanged.
    """
    grey = _grey(picture)
    ink = grey < INK_LEVEL
    rows = np.flatnonzero(ink.any(axis=1))
    if len(rows) == 0:
        return picture
    top = int(rows[0])
    gaps = np.flatnonzero(np.diff(rows) > 1)
    if len(gaps) == 0:
        return picture  # one band only: music without a title
    bottom, music = int(rows[gaps[0]]) + 1, int(rows[gaps[0] + 1])
    widest = ink[top:bottom].sum(axis=1).max() / ink.shape[1]
    if not TITLE_MIN_PX <= bottom - top <= TITLE_MAX_PX or widest > STAFF_LINE_FRACTION:
        return picture
    kept = np.concatenate([picture[:top], picture[music:]], axis=0)
    columns = np.flatnonzero(ink[music:].any(axis=0))  # a title wider than the music widened the page: narrow it
    left, right = max(0, int(columns[0]) - top), min(kept.shape[1], int(columns[-1]) + 1 + top)  # margin: top's
    return kept[:, left:right]


def fig_samples(images: list[tuple[str, Path]], out: Path, title: str | None = None) -> None:
    """Figure 21: the engraved sample PNGs one above the other, each at its own resolution (one image pixel is one
    pixel of the 150-dpi figure) and left-aligned under its caption, the one title of each sample (the title
    LilyPond engraved is cut off, :func:`drop_engraved_title`); ``title`` above them all."""
    if not images:
        raise ValueError("fig_samples needs at least one image")
    pictures = [(caption, drop_engraved_title(plt.imread(str(path)))) for caption, path in images]
    head = TITLE_INCHES if title else 0.0
    width = max(p.shape[1] for _, p in pictures) / DPI + 2 * MARGIN_INCHES
    if title:  # wide enough for the title
        width = max(width, TextPath((0, 0), title, size=TITLE_POINTS).get_extents().width / 72 + 4 * MARGIN_INCHES)
    height = sum(p.shape[0] / DPI + CAPTION_INCHES for _, p in pictures) + 2 * MARGIN_INCHES + head
    fig = plt.figure(figsize=(width, height))
    top = height - MARGIN_INCHES  # inches from the bottom of the figure
    if title:
        fig.text(0.5, (top - head / 2) / height, title, fontsize=TITLE_POINTS, ha="center", va="center")
        top -= head
    for caption, picture in pictures:
        fig.text(MARGIN_INCHES / width, (top - CAPTION_INCHES / 2) / height, caption, fontsize=12,
                 fontweight="bold", ha="left", va="center")
        top -= CAPTION_INCHES
        h, w = picture.shape[0] / DPI, picture.shape[1] / DPI
        ax = fig.add_axes((MARGIN_INCHES / width, (top - h) / height, w / width, h / height))
        # a grey PNG reads as a 2-D array: without a grey map imshow would colour it with viridis
        ax.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="none")
        ax.axis("off")
        top -= h
    save_figure(fig, out)


def _is_reference(table: pd.DataFrame) -> pd.Series:
    return table["temperature"].isna()


def _row_label(row: pd.Series) -> str:
    return str(row["model"]) if math.isnan(row["temperature"]) else f"{row['model']}, T = {row['temperature']:g}"


def _row_colours(rows: pd.DataFrame) -> list[tuple[float, float, float]]:
    """One hue per model; within a model, lighter for a lower temperature."""
    models = list(dict.fromkeys(rows["model"]))
    colours = []
    for _, row in rows.iterrows():
        base = np.array(to_rgb(MODEL_COLOURS[models.index(row["model"]) % len(MODEL_COLOURS)]))
        temps = sorted(rows.loc[rows["model"] == row["model"], "temperature"].unique())
        rank = temps.index(row["temperature"])
        lighten = 0.55 * (len(temps) - 1 - rank) / max(len(temps) - 1, 1)
        colours.append(tuple(base + (1 - base) * lighten))
    return colours


def _grouped_bars(ax: Axes, rows: pd.DataFrame, references: pd.DataFrame, columns: dict[str, str],
                  ylabel: str, title: str, ylim: tuple[float, float] | None = None) -> None:
    columns = {c: label for c, label in columns.items() if c in rows.columns}
    x = np.arange(len(columns))
    width = 0.8 / max(len(rows), 1)
    colours = _row_colours(rows)
    models = list(dict.fromkeys(rows["model"]))
    for i, ((_, row), colour) in enumerate(zip(rows.iterrows(), colours, strict=True)):
        values = [row[c] for c in columns]
        hatch = HATCHES[models.index(row["model"]) // len(MODEL_COLOURS) % len(HATCHES)]
        ax.bar(x - 0.4 + width * (i + 0.5), values, width, color=colour, edgecolor="black", linewidth=0.4,
               hatch=hatch or None, label=_row_label(row))
    styles = ("--", ":", "-.")
    for j, (_, ref) in enumerate(references.iterrows()):
        label = str(ref["model"])  # on the first line drawn for this reference only
        for k, column in enumerate(columns):
            value = ref.get(column, math.nan)
            if not pd.isna(value):
                ax.hlines(value, k - 0.45, k + 0.45, colors=REFERENCE_COLOUR, linestyles=styles[j % len(styles)],
                          linewidth=1.6, label=label)
                label = None
    ax.set_xticks(x, list(columns.values()))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)


def fig_sample_metrics(table: pd.DataFrame, out: Path) -> None:
    """Four panels from a :func:`rnnmem.lm.metrics.metrics_table`: histogram overlap and KL divergence to the
    held-out reference per (model, temperature); musical and copy fractions; longest copied run and pitch range.
    Rows with a NaN temperature are references (e.g. ``Bach (held-out)``), drawn as dashed black lines wherever
    they have a value."""
    references = table[_is_reference(table)]
    order = {model: i for i, model in enumerate(dict.fromkeys(table["model"]))}  # models in order of appearance
    rows = table[~_is_reference(table)]
    rows = rows.assign(_order=rows["model"].map(order)).sort_values(["_order", "temperature"], kind="stable")
    fig, axes = plt.subplots(2, 2, figsize=(16, 8.5))  # wider than tall: fits a screen whole in the report
    overlap = {f"{k}_overlap": v for k, v in HISTOGRAM_LABELS.items()}
    kl = {f"{k}_kl": v for k, v in HISTOGRAM_LABELS.items()}
    _grouped_bars(axes[0, 0], rows, references, overlap, "overlapping area Σ min(p, q)",
                  "Histogram overlap with the held-out Bach sopranos (1 = identical)", (0, 1.05))
    _grouped_bars(axes[0, 1], rows, references, kl, "KL(Bach ‖ samples) (nats)",
                  "KL divergence from the held-out Bach histograms (0 = identical)")
    _grouped_bars(axes[1, 0], rows, references, FRACTION_LABELS, "fraction", "Structure and copying", (0, 1.05))
    _grouped_bars(axes[1, 1], rows, references, COUNT_LABELS, "tokens / semitones", "Copied runs and pitch range")
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), frameon=False)
    fig.suptitle("Sampled sopranos against Bach: musical metrics per model and temperature", fontsize=14)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * math.ceil(len(labels) / 5), 1, 0.97))
    save_figure(fig, out)


def fig_learning_curves(table: pd.DataFrame, out: Path) -> None:
    """Train/valid NLL per epoch of every chorale model (the learning-curve table), one panel per regime."""
    regimes = list(dict.fromkeys(table["regime"]))
    fig, axes = plt.subplots(1, len(regimes), figsize=(6.5 * len(regimes), 4.4), squeeze=False,
                             layout="constrained")
    for ax, regime in zip(axes[0], regimes, strict=True):
        for index, (model, rows) in enumerate(table[table["regime"] == regime].groupby("model", sort=False)):
            colour = f"C{index}"
            ax.plot(rows["epoch"], rows["train_nll"], "--", color=colour, label=f"{model} train")
            ax.plot(rows["epoch"], rows["valid_nll"], "-", color=colour, label=f"{model} valid")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole passes: no 2.5
        ax.set_xlabel("epoch (one pass over the training data)")
        ax.set_ylabel("NLL (nats per token)")
        ax.set_title(f"{regime} regime")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Chorale language models: learning curves (dashed: training, solid: validation)")
    save_figure(fig, out)
