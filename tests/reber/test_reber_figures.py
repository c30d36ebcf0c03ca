"""The inspection figures: data shapes, reproducible PNG bytes, pair choice, showcase member."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from figure_checks import capture, colorbar_axes, outside_canvas, reader_texts
from matplotlib.figure import Figure

from rnnmem.core.cells import SequencePredictor
from rnnmem.reber import figures as reber_figures
from rnnmem.reber.ensembles import save_ensemble
from rnnmem.reber.figures import (
    embedded_outer_step,
    embedded_pair,
    fig_embedded_pair,
    fig_hidden_pairs,
    fig_output_heatmaps,
    network_view,
    same_state_pairs,
    showcase_member,
    state_distances,
)
from rnnmem.reber.grammars import EMBEDDED_REBER, REBER, reber_states
from rnnmem.reber.jobs import reber_figure

REBER_STRINGS = ["BTSSXXTVVE", "BPVVE", "BTXXVPSE", "BPTVPXVVE", "BTSXSE", "BPTTVPSE"]


@pytest.fixture(scope="module")
def model() -> SequencePredictor:
    net = SequencePredictor("vanilla", 7, 5, 7, members=3)
    net.reset_parameters("uniform", [0, 1, 2])
    return net


def _png(path: Path) -> bytes:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000
    return data


@pytest.mark.parametrize("probabilities", [True, False])
def test_network_view_shapes(model: SequencePredictor, probabilities: bool) -> None:
    string = "BTSSXXTVVE"
    outputs, hidden, legal = network_view(model, 1, REBER, string, probabilities)
    steps = len(string) - 1
    assert outputs.shape == (steps, 7)
    assert hidden.shape == (steps, 5)
    assert legal.shape == (steps, 7) and legal.dtype == bool
    np.testing.assert_array_equal(legal, REBER.legal_mask(string))
    if probabilities:
        np.testing.assert_allclose(outputs.sum(axis=1), 1.0, atol=1e-9)
        assert (outputs >= 0).all()


def test_network_view_is_that_member_alone(model: SequencePredictor) -> None:
    """Each member is a different network, and its view does not depend on the others."""
    views = [network_view(model, m, REBER, "BPVVE", False)[0] for m in range(3)]
    assert not np.allclose(views[0], views[1])
    single = SequencePredictor("vanilla", 7, 5, 7, members=1)
    single.reset_parameters("uniform", [2])
    np.testing.assert_allclose(network_view(single, 0, REBER, "BPVVE", False)[0], views[2], atol=1e-6)


def test_network_view_rejects_bad_member(model: SequencePredictor) -> None:
    with pytest.raises(IndexError):
        network_view(model, 3, REBER, "BPVVE", True)


@pytest.mark.parametrize("probabilities", [True, False])
def test_fig_output_heatmaps_reproducible(
    model: SequencePredictor, tmp_path: Path, probabilities: bool
) -> None:
    first, second = tmp_path / "a" / "fig07.png", tmp_path / "b" / "fig07.png"
    for out in (first, second):
        fig_output_heatmaps(model, 0, REBER, REBER_STRINGS[:3], probabilities, "Figure 7", out)
    assert _png(first) == _png(second)
    assert not list(first.parent.glob(".*.tmp*"))  # the atomic write left no temporary file


def test_fig_hidden_pairs_reproducible(model: SequencePredictor, tmp_path: Path) -> None:
    pairs = same_state_pairs(REBER_STRINGS, 3)
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    for out in (first, second):
        fig_hidden_pairs(model, 2, REBER, pairs, "Figure 8", out)
    assert _png(first) == _png(second)


def test_fig_embedded_pair_reproducible(model: SequencePredictor, tmp_path: Path) -> None:
    pair = embedded_pair("BTXSE")
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    for out in (first, second):
        fig_embedded_pair(model, 1, EMBEDDED_REBER, pair, True, "Figure 10", out)
    assert _png(first) == _png(second)


def test_same_state_pairs() -> None:
    pairs = same_state_pairs(REBER_STRINGS, 5)
    assert len(pairs) == 5
    assert len(set(pairs)) == 5
    for a, b in pairs:
        assert a != b
        assert len(a) >= 2 and len(b) >= 2
        assert reber_states(a)[-1] == reber_states(b)[-1]
        assert a[-1] != b[-1] or len(a) != len(b)
        assert any(s.startswith(a) for s in REBER_STRINGS) and any(s.startswith(b) for s in REBER_STRINGS)
    states = [reber_states(a)[-1] for a, _ in pairs]
    assert len(set(states)) == len(states)  # 5 states have pairs here, so no state repeats
    assert same_state_pairs(REBER_STRINGS, 5) == pairs  # deterministic
    assert same_state_pairs(list(reversed(REBER_STRINGS)), 5) == pairs  # independent of input order
    assert same_state_pairs(REBER_STRINGS, 0) == []
    assert len(same_state_pairs(["BPVVE"], 10)) <= 10


def test_embedded_pair() -> None:
    inner = "BTSSXXTVVE"
    with_t, with_p = embedded_pair(inner)
    assert (with_t, with_p) == ("BT" + inner + "TE", "BP" + inner + "PE")
    assert EMBEDDED_REBER.accepts(with_t) and EMBEDDED_REBER.accepts(with_p)
    for string in (with_t, with_p):
        step = embedded_outer_step(string)
        assert string[step] == "E"  # the highlighted step reads the inner E ...
        legal = EMBEDDED_REBER.legal_mask(string)[step]
        assert [EMBEDDED_REBER.alphabet[i] for i in np.flatnonzero(legal)] == [string[1]]  # ... predicts T/P


def test_showcase_member_first_solved() -> None:
    table = pd.DataFrame({
        "seed": [7, 3, 5, 9],
        "solved": [False, False, True, True],
        "legal_acc_test": [0.99, 1.0, 0.97, 1.0],
    })
    assert showcase_member(table) == 2


def test_showcase_member_none_solved() -> None:
    table = pd.DataFrame({
        "seed": [7, 3, 5, 9],
        "solved": [False, False, False, False],
        "legal_acc_test": [0.5, 0.9, 0.7, 0.9],
    })
    assert showcase_member(table) == 1  # highest accuracy, first on ties
    table.index = [10, 11, 12, 13]  # a position, not an index label
    assert showcase_member(table) == 1


def _figure_of(monkeypatch: pytest.MonkeyPatch, draw) -> Figure:
    """The one figure ``draw()`` saves through rnnmem.reber.figures."""
    figures = capture(monkeypatch, reber_figures)
    draw()
    assert len(figures) == 1
    return figures[0]


def _final_hidden(model: SequencePredictor, member: int, prefix: str) -> np.ndarray:
    """Hidden state of one member after reading ``prefix``, the prefix run on its own."""
    x = torch.nn.functional.one_hot(torch.tensor(REBER.index(prefix)), len(REBER.alphabet)).float()
    with torch.no_grad():
        _, hidden = model(x.expand(model.members, 1, *x.shape))
    return hidden[member, 0, -1].numpy().astype(np.float64)


def test_state_distances_against_each_prefix_alone(model: SequencePredictor) -> None:
    """Distances between final hidden states, prefix by prefix (no shared run over whole strings), split by state."""
    same, different = state_distances(model, 1, REBER, REBER_STRINGS + REBER_STRINGS[:2])  # repeats count once
    prefixes = sorted({s[:end] for s in REBER_STRINGS for end in range(2, len(s))})
    final = {p: _final_hidden(model, 1, p) for p in prefixes}
    expected = {True: [], False: []}
    for i, a in enumerate(prefixes):
        for b in prefixes[i + 1:]:
            equal = reber_states(a)[-1] == reber_states(b)[-1]
            expected[equal].append(float(np.linalg.norm(final[a] - final[b])))
    np.testing.assert_allclose(same, sorted(expected[True]), atol=1e-6)
    np.testing.assert_allclose(different, sorted(expected[False]), atol=1e-6)
    assert len(same) + len(different) == len(prefixes) * (len(prefixes) - 1) // 2


def test_fig08_one_colour_bar_and_a_baseline(
    model: SequencePredictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = same_state_pairs(REBER_STRINGS, 3)
    fig = _figure_of(monkeypatch, lambda: fig_hidden_pairs(model, 2, REBER, pairs, "Figure 8", tmp_path / "f.png",
                                                           strings=REBER_STRINGS))
    bars = colorbar_axes(fig)
    assert len(bars) == 1, "one colour bar for every heatmap"
    scale = bars[0]._colorbar.mappable.norm
    images = [image for ax in fig.get_axes() for image in ax.get_images()]
    assert len(images) == 2 * len(pairs)
    for image in images:  # the bar's scale is every heatmap's scale
        assert (image.norm.vmin, image.norm.vmax) == (scale.vmin, scale.vmax)
        assert image.get_cmap().name == bars[0]._colorbar.cmap.name
    _, different = state_distances(model, 2, REBER, REBER_STRINGS)
    baseline = float(np.median(different))
    lines = [line for ax in fig.get_axes() for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert [float(line.get_xdata()[0]) for line in lines] == [baseline]
    subtitles = [sub._suptitle.get_text() for sub in fig.subfigs[0].subfigs if sub._suptitle is not None]
    assert len(subtitles) == len(pairs)
    width, height = fig.get_size_inches()
    assert width > 1.35 * height  # a report viewer fits it by width and shows it whole, title first
    assert all(f"different states = {baseline:.3f}" in text for text in subtitles)
    assert outside_canvas(fig, reader_texts(fig)) == []


def test_fig08_without_strings_has_no_baseline_panel(
    model: SequencePredictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = same_state_pairs(REBER_STRINGS, 2)
    fig = _figure_of(monkeypatch, lambda: fig_hidden_pairs(model, 0, REBER, pairs, "Figure 8", tmp_path / "f.png"))
    assert len(colorbar_axes(fig)) == 1
    assert len(fig.get_axes()) == 2 * len(pairs) + 1  # the heatmaps and the bar, no distance panel
    assert outside_canvas(fig, reader_texts(fig)) == []


@pytest.mark.parametrize(("kind", "name"), [("lstm", "LSTM"), ("gru", "GRU"), ("vanilla", "Vanilla RNN")])
def test_fig11_title_names_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, name: str
) -> None:
    """The embedded-Reber figure's title says which cell it shows (the report's figure 11 is an LSTM)."""
    spec = {"model": kind, "input_size": 7, "hidden": 4, "output_size": 7, "seeds": [5, 6], "activation": "logistic",
            "params": 123, "regime": "modern"}
    net = SequencePredictor(kind, 7, 4, 7, members=2)
    net.reset_parameters("uniform", spec["seeds"])
    weights, spec_path, table = tmp_path / "m.pt", tmp_path / "m.json", tmp_path / "runs.csv"
    save_ensemble(net, spec, weights, spec_path)
    pd.DataFrame({"seed": [5, 6], "solved": [False, True], "legal_acc_test": [0.5, 1.0]}).to_csv(table, index=False)
    fig = _figure_of(monkeypatch, lambda: reber_figure("fig11", weights, spec_path, table, tmp_path / "fig11.png"))
    title = fig._suptitle.get_text()
    assert title.startswith(f"{name} on embedded Reber"), title
    assert "seed 6 (solved)" in title
    assert outside_canvas(fig, reader_texts(fig)) == []
