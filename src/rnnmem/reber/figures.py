"""The report's network-inspection figures (7, 8, 10, 11): output and hidden-state heatmaps of one network.

Every figure is meant to be read without the code: it carries a title, axis labels, a labelled colour bar and
a legend for its marks. PNGs are written atomically and without a software/version stamp, so the same data
gives the same bytes (Snakemake then sees no spurious change).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from torch import Tensor

from rnnmem.core.cells import SequencePredictor
from rnnmem.core.figure_io import plt, save_figure
from rnnmem.reber.grammars import Grammar, prefixes_by_state, reber_states

CELL_INCHES = 0.3  # side of one heatmap cell, so every figure has the same density
OUTPUT_CMAP = "viridis"
HIGHLIGHT_COLOUR = "#e8175d"
LEGAL_MARKER = {"marker": "o", "s": 16, "facecolors": "white", "edgecolors": "black", "linewidths": 0.6}
MODEL_TITLES = {"vanilla": "Vanilla RNN", "gru": "GRU", "lstm": "LSTM"}


def model_title(model: str) -> str:
    """How a title names a cell type (``spec['model']``): "GRU", "LSTM", "Vanilla RNN"."""
    return MODEL_TITLES.get(model, model)


def _run_member(
    model: SequencePredictor, member: int, grammar: Grammar, inputs: str
) -> tuple[Tensor, Tensor]:
    """Raw outputs (T, A) and hidden states (T, H) of one member after reading each symbol of ``inputs``.

    Every member reads the same string (the ensemble is batched over members) and row ``member`` is kept:
    members are independent, so this is exactly that network alone.
    """
    if not 0 <= member < model.members:
        raise IndexError(f"member {member} outside an ensemble of {model.members}")
    if len(inputs) == 0:
        raise ValueError("need at least one input symbol")
    parameter = next(model.parameters())
    index = torch.tensor(grammar.index(inputs), device=parameter.device)
    x = torch.nn.functional.one_hot(index, len(grammar.alphabet)).to(parameter.dtype)
    x = x.expand(model.members, 1, *x.shape)
    with torch.no_grad():
        outputs, hidden = model(x)
    return outputs[member, 0].detach().cpu(), hidden[member, 0].detach().cpu()


def network_view(
    model: SequencePredictor, member: int, grammar: Grammar, string: str, probabilities: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What member ``member`` predicts along a complete string: the data of one heatmap panel.

    Returns outputs (T, A) (softmax probabilities if ``probabilities``, raw read-out otherwise), hidden
    states (T, H) and the legal-next-symbol mask (T, A), with T = len(string) − 1 prediction steps.
    """
    if len(string) < 2:
        raise ValueError(f"{string!r}: a string needs at least two symbols to predict anything")
    outputs, hidden = _run_member(model, member, grammar, string[:-1])
    if probabilities:
        outputs = torch.softmax(outputs.double(), dim=-1)
    return outputs.numpy().astype(np.float64), hidden.numpy().astype(np.float64), grammar.legal_mask(string)




def _symbol_axis(ax: Axes, read: str, steps: int) -> None:
    """Columns labelled with the symbol read at each step; ``steps`` columns wide (aligns stacked panels)."""
    ax.set_xticks(range(len(read)), list(read))
    ax.set_xlim(-0.5, steps - 0.5)
    ax.tick_params(axis="x", length=0, labelsize=8)


def _mark_legal(ax: Axes, legal: np.ndarray) -> None:
    rows, cols = np.nonzero(legal.T)
    ax.scatter(cols, rows, **LEGAL_MARKER)


def _output_panel(
    ax: Axes,
    grammar: Grammar,
    string: str,
    outputs: np.ndarray,
    legal: np.ndarray,
    norm: Normalize,
    steps: int,
) -> AxesImage:
    """One output heatmap: rows = candidate next symbols, columns = steps, dots = legal next symbols."""
    image = ax.imshow(outputs.T, cmap=OUTPUT_CMAP, norm=norm, aspect="equal", interpolation="nearest")
    _mark_legal(ax, legal)
    _symbol_axis(ax, string[:-1], steps)
    ax.set_yticks(range(len(grammar.alphabet)), list(grammar.alphabet))
    ax.tick_params(axis="y", length=0, labelsize=8)
    ax.set_ylabel("next symbol")
    return image


def _output_norm(values: list[np.ndarray], probabilities: bool) -> Normalize:
    """Probabilities on [0, 1]; raw activations on the range of everything shown, so panels compare."""
    if probabilities:
        return Normalize(0.0, 1.0)
    low = min(float(v.min()) for v in values)
    high = max(float(v.max()) for v in values)
    return Normalize(low, high if high > low else low + 1.0)


def _output_label(probabilities: bool) -> str:
    return "output (softmax probability)" if probabilities else "output activation"


def _legal_handle() -> Line2D:
    return Line2D(
        [], [], linestyle="none", marker="o", markersize=4.5, markerfacecolor="white",
        markeredgecolor="black", markeredgewidth=0.6, label="legal next symbol (grammar)",
    )


def panel_grid(panels: int) -> tuple[int, int]:
    """Rows and columns of figure 7's panels: two columns from three panels on, so the figure is wider than tall
    and fits a screen whole (the report's viewer centres a figure taller than the window and cuts its top)."""
    cols = 1 if panels <= 2 else 2
    return -(-panels // cols), cols


def fig_output_heatmaps(
    model: SequencePredictor,
    member: int,
    grammar: Grammar,
    strings: list[str],
    probabilities: bool,
    title: str,
    out: Path,
) -> None:
    """Report figure 7: does the network give its highest outputs to exactly the legal next symbols?"""
    if not strings:
        raise ValueError("fig_output_heatmaps needs at least one string")
    views = [network_view(model, member, grammar, s, probabilities) for s in strings]
    norm = _output_norm([outputs for outputs, _, _ in views], probabilities)
    steps = max(len(s) - 1 for s in strings)
    alphabet = len(grammar.alphabet)
    rows, cols = panel_grid(len(strings))
    width = cols * max(6.5, steps * CELL_INCHES + 2.6)
    height = rows * (alphabet * CELL_INCHES + 0.9) + 1.3
    fig, grid = plt.subplots(rows, cols, figsize=(width, height), layout="constrained", squeeze=False)
    axes = list(grid.flat[:len(strings)])
    for spare in grid.flat[len(strings):]:
        spare.set_visible(False)
    image = None
    for ax, string, (outputs, _, legal) in zip(axes, strings, views, strict=True):
        image = _output_panel(ax, grammar, string, outputs, legal, norm, steps)
        ax.set_title(f"string {string}", fontsize=9, loc="left")
    for ax in grid[-1, :]:  # the bottom panel of every column
        if ax.get_visible():
            ax.set_xlabel("symbol read at each step (each column predicts the symbol that follows it)", fontsize=8)
    fig.colorbar(image, ax=list(axes), label=_output_label(probabilities))
    fig.suptitle(title)
    fig.legend(handles=[_legal_handle()], loc="outside lower center", frameon=False, fontsize=8)
    save_figure(fig, out)


def _shortest_first(prefix: str) -> tuple[int, str]:
    return len(prefix), prefix


def same_state_pairs(strings: list[str], count: int) -> list[tuple[str, str]]:
    """Pairs of distinct Reber prefixes (≥ 2 symbols) that reach the same automaton state by different paths.

    Figure 8 asks whether the hidden state encodes the automaton state rather than the path. Within a state,
    pairs whose last symbols differ come first, then shorter pairs, then alphabetical order; across states the
    pairs are taken round-robin, so ``count`` pairs cover as many states as possible. Fewer than ``count``
    pairs are returned when the strings do not contain that many. Only the shortest ``count + 2`` prefixes
    per (state, last symbol) are considered, which keeps the search small on large string sets.
    """
    if count <= 0:
        return []
    per_state: list[list[tuple[tuple, tuple[str, str]]]] = []
    for state, prefixes in sorted(prefixes_by_state(strings).items()):
        by_last: dict[str, list[str]] = {}
        for prefix in sorted(p for p in prefixes if len(p) >= 2):
            by_last.setdefault(prefix[-1], []).append(prefix)
        kept = sorted(
            (p for group in by_last.values() for p in sorted(group, key=_shortest_first)[: count + 2]),
            key=_shortest_first,
        )
        ranked = []
        for a, b in itertools.combinations(kept, 2):
            if a[-1] != b[-1] or len(a) != len(b):
                ranked.append(((a[-1] == b[-1], len(a) + len(b), a, b, state), (a, b)))
        if ranked:
            per_state.append(sorted(ranked)[:count])
    chosen: list[tuple[str, str]] = []
    for round_pairs in itertools.zip_longest(*per_state):
        for _, pair in sorted(p for p in round_pairs if p is not None):
            if len(chosen) == count:
                return chosen
            chosen.append(pair)
    return chosen


def _hidden_norm(values: list[np.ndarray]) -> tuple[Normalize, str]:
    """Logistic units on [0, 1] with a sequential map; signed units on a symmetric range, diverging map."""
    low = min(float(v.min()) for v in values)
    high = max(float(v.max()) for v in values)
    if low >= 0.0 and high <= 1.0:
        return Normalize(0.0, 1.0), "magma"
    bound = max(abs(low), abs(high), 1e-6)
    return Normalize(-bound, bound), "RdBu_r"


def state_distances(
    model: SequencePredictor, member: int, grammar: Grammar, strings: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The scale figure 8's distances are read against: ‖h − h′‖₂ between the final hidden states of every two
    distinct Reber prefixes (≥ 2 symbols) of ``strings``, split into pairs that reach the same automaton state
    and pairs that reach different states. Returns (same, different), each sorted.

    If the hidden state encodes the automaton state, same-state distances are small against different-state
    ones; a same-state distance alone (no baseline) cannot say whether it is small.
    """
    prefixes: dict[str, tuple[int, np.ndarray]] = {}
    for string in dict.fromkeys(strings):
        if len(string) < 3:
            continue
        hidden = _run_member(model, member, grammar, string[:-1])[1].numpy().astype(np.float64)
        states = reber_states(string)
        for end in range(2, len(string)):
            prefixes.setdefault(string[:end], (states[end], hidden[end - 1]))
    if len(prefixes) < 2:
        raise ValueError("need at least two distinct prefixes of two or more symbols")
    state = np.array([s for s, _ in prefixes.values()])
    final = np.stack([h for _, h in prefixes.values()])
    same, different = [], []
    for i in range(len(final) - 1):  # one row at a time: memory linear in the number of prefixes
        distance = np.linalg.norm(final[i + 1:] - final[i], axis=1)
        equal = state[i + 1:] == state[i]
        same.append(distance[equal])
        different.append(distance[~equal])
    return np.sort(np.concatenate(same)), np.sort(np.concatenate(different))


def _baseline_panel(ax: Axes, same: np.ndarray, different: np.ndarray, shown: list[float]) -> None:
    """Both distance distributions as box plots, the shown pairs as marks, the different-state median as a line."""
    rows = {"different\nstates": different, "same state\n(other paths)": same}
    rows = {label: values for label, values in rows.items() if len(values)}
    ax.boxplot(list(rows.values()), orientation="horizontal", widths=0.55, whis=(5, 95), showfliers=False,
               medianprops={"color": "black"}, tick_labels=list(rows))
    baseline = float(np.median(different))
    ax.axvline(baseline, color="0.35", linestyle="--", linewidth=1.2,
               label=f"baseline: median over different states = {baseline:.3f}")
    ax.scatter(shown, [len(rows)] * len(shown), marker="D", s=36, color=HIGHLIGHT_COLOUR, zorder=3,
               label="the pairs shown above (same state)")
    ax.set_xlim(left=0.0)
    ax.set_xlabel("‖h_final − h′_final‖₂ between final hidden states of two prefixes")
    ax.set_title(f"Baseline: every two distinct prefixes of the training strings ({len(same) + len(different)} "
                 "pairs)\nbox: quartiles, whiskers: 5th–95th percentile", fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.figure.legend(handles=ax.get_legend_handles_labels()[0], loc="outside lower center", ncols=2, fontsize=8,
                     frameon=False)


def fig_hidden_pairs(
    model: SequencePredictor,
    member: int,
    grammar: Grammar,
    pairs: list[tuple[str, str]],
    title: str,
    out: Path,
    strings: list[str] | None = None,
) -> None:
    """Report figure 8: do two paths into the same automaton state end in similar hidden states?

    One colour bar serves every heatmap (they share one scale). With ``strings`` (the training strings), a bottom
    panel gives the baseline: the distances between final hidden states of prefixes in different automaton
    states, beside those of prefixes in the same state (:func:`state_distances`), and each pair's subtitle
    states its distance against the different-state median.
    """
    if not pairs:
        raise ValueError("fig_hidden_pairs needs at least one pair of prefixes")
    hidden = [
        tuple(_run_member(model, member, grammar, prefix)[1].numpy().astype(np.float64) for prefix in pair)
        for pair in pairs
    ]
    distances = [float(np.linalg.norm(h_a[-1] - h_b[-1])) for h_a, h_b in hidden]
    same, different = state_distances(model, member, grammar, strings) if strings else (None, None)
    baseline = None if different is None or len(different) == 0 else float(np.median(different))
    norm, cmap = _hidden_norm([h for pair in hidden for h in pair])
    units = hidden[0][0].shape[1]
    longest = max(len(p) for pair in pairs for p in pair)
    width = max(7.0, 2 * longest * CELL_INCHES + 3.6)
    pair_height = units * CELL_INCHES + 1.5
    # Pairs (and the baseline panel) on a grid two cells wide, so the figure is wider than tall and a report
    # viewer shows it whole from its title down.
    cells = len(pairs) + (baseline is not None)
    columns = 1 if cells == 1 else 2
    rows = -(-cells // columns)
    fig = plt.figure(figsize=(columns * width + 0.95, rows * pair_height + 0.8), layout="constrained")
    fig.suptitle(title)
    panels, bar = fig.subfigures(1, 2, width_ratios=[columns * width, 0.95])
    cells_grid = np.atleast_1d(panels.subfigures(rows, columns)).ravel()
    subfigs = cells_grid[: len(pairs)]
    unit_ticks = range(0, units, max(1, int(np.ceil(units / 20))))
    for subfig, pair, (h_a, h_b), distance in zip(subfigs, pairs, hidden, distances, strict=True):
        states = {reber_states(prefix)[-1] for prefix in pair}
        state = states.pop() if len(states) == 1 else "different states"
        against = "" if baseline is None else f"\n(baseline: median over prefixes in different states = {baseline:.3f})"
        subfig.suptitle(
            f"Reber automaton state {state}: ‖h_final(left) − h_final(right)‖₂ = {distance:.3f}{against}",
            fontsize=10,
        )
        axes = subfig.subplots(1, 2, width_ratios=[len(pair[0]), len(pair[1])])
        for ax, prefix, h in zip(axes, pair, (h_a, h_b), strict=True):
            ax.imshow(h.T, cmap=cmap, norm=norm, aspect="equal", interpolation="nearest")
            _symbol_axis(ax, prefix, len(prefix))
            ax.set_yticks(list(unit_ticks), [str(u) for u in unit_ticks])
            ax.tick_params(axis="y", length=0, labelsize=7)
            ax.set_title(f"prefix {prefix}", fontsize=9)
            ax.set_xlabel("symbol read")
        axes[0].set_ylabel("hidden unit")
    grid = bar.add_gridspec(3, 2, height_ratios=[0.15, 0.7, 0.15], width_ratios=[1, 2])  # a slim bar, centred
    bar.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=bar.add_subplot(grid[1, 0]),
                 label="hidden activation (every heatmap)")
    if baseline is not None:
        _baseline_panel(cells_grid[len(pairs)].subplots(), same, different, distances)
    save_figure(fig, out)


def embedded_pair(inner: str) -> tuple[str, str]:
    """The two embedded Reber strings around one inner Reber string: they differ only in the outer symbol."""
    return "BT" + inner + "TE", "BP" + inner + "PE"


def embedded_outer_step(string: str) -> int:
    """Output step that must predict the repeated outer T/P: the one reading the inner E (reber.outer_step).

    Step t reads ``string[t]`` and predicts ``string[t + 1]``; the outer symbol is ``string[-2]``.
    """
    return len(string) - 3


def fig_embedded_pair(
    model: SequencePredictor,
    member: int,
    grammar: Grammar,
    pair: tuple[str, str],
    probabilities: bool,
    title: str,
    out: Path,
) -> None:
    """Report figures 10/11: after the inner E, does the network remember the outer T or P?"""
    views = [network_view(model, member, grammar, s, probabilities) for s in pair]
    norm = _output_norm([outputs for outputs, _, _ in views], probabilities)
    steps = max(len(s) - 1 for s in pair)
    alphabet = len(grammar.alphabet)
    width = max(8.0, 2 * steps * CELL_INCHES + 2.8)
    height = alphabet * CELL_INCHES + 2.6
    fig, axes = plt.subplots(1, 2, figsize=(width, height), layout="constrained")
    image = None
    for ax, string, (outputs, _, legal) in zip(axes, pair, views, strict=True):
        image = _output_panel(ax, grammar, string, outputs, legal, norm, steps)
        critical = embedded_outer_step(string)
        ax.add_patch(Rectangle(
            (critical - 0.5, -0.5), 1.0, alphabet, fill=False, edgecolor=HIGHLIGHT_COLOUR, linewidth=2.2,
            clip_on=False,
        ))
        ax.set_title(f"outer symbol {string[1]}: {string}", fontsize=9)
        ax.set_xlabel("symbol read at each step")
    axes[1].set_ylabel("")
    fig.colorbar(image, ax=list(axes), label=_output_label(probabilities), shrink=0.9)
    fig.suptitle(title)
    highlight = Patch(
        facecolor="none", edgecolor=HIGHLIGHT_COLOUR, linewidth=2.0,
        label="step after the inner E: must predict the outer T/P again",
    )
    fig.legend(
        handles=[_legal_handle(), highlight], loc="outside lower center", ncols=2, frameon=False, fontsize=8
    )
    save_figure(fig, out)


def showcase_member(table: pd.DataFrame) -> int:
    """Which ensemble member the figures show: the first solved seed, else the most accurate on the test set.

    ``table`` has one row per member in member order; the result is a row position, not a seed value.
    """
    if len(table) == 0:
        raise ValueError("empty run table: no member to show")
    solved = table["solved"].fillna(False).astype(bool).to_numpy()
    if solved.any():
        return int(np.flatnonzero(solved)[0])
    accuracy = pd.to_numeric(table["legal_acc_test"], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(accuracy).all():
        return 0
    return int(np.nanargmax(accuracy))
