"""Figure 21 (one title per sample, engraved in grey, not false colour) and the learning curves (whole epochs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import lilypond_missing
from figure_checks import capture, outside_canvas, reader_texts
from PIL import Image

from rnnmem.core.figure_io import plt
from rnnmem.lm import figures as lm_figures
from rnnmem.lm.figures import drop_engraved_title, fig_learning_curves, fig_samples

MARGIN = 12  # the engraver's white margin (rnnmem.chorales.engrave.MARGIN_PX)


def engraving(title: bool, width: int = 600, staves: int = 1) -> np.ndarray:
    """A page like the engraver's, trimmed to its ink with white margins of MARGIN pixels: a one-line title (narrow
    ink blocks, 26 rows) above staves of five long lines; grey values in [0, 1]."""
    rows = [np.ones((MARGIN, width))]
    if title:
        line = np.ones((34, width))
        for start in range(150, 450, 20):  # letters, not a line across the page
            line[0:26, start : start + 12] = 0.0
        rows += [line, np.ones((6, width))]
    for _ in range(staves):
        staff = np.ones((60, width))
        staff[10:50:10, MARGIN : width - MARGIN] = 0.0
        staff[0:8, 100:110] = 0.0  # a note above the staff
        rows += [staff, np.ones((20, width))]
    rows.append(np.ones((MARGIN, width)))
    return np.concatenate(rows)


def write_grey_png(picture: np.ndarray, out: Path) -> Path:
    Image.fromarray(np.round(picture * 255).astype(np.uint8), mode="L").save(out)
    return out


def test_drop_engraved_title_keeps_the_music() -> None:
    with_title, without = engraving(True), engraving(False)
    np.testing.assert_array_equal(drop_engraved_title(with_title), without)
    np.testing.assert_array_equal(drop_engraved_title(without), without)  # no title: unchanged
    two = engraving(True, staves=2)
    np.testing.assert_array_equal(drop_engraved_title(two), engraving(False, staves=2))
    tall = np.concatenate([np.ones((MARGIN, 300)), np.zeros((120, 300)), np.ones((10, 300))])
    tall[:, ::2] = 1.0  # one tall band of ink, no gap: not a title
    np.testing.assert_array_equal(drop_engraved_title(tall), tall)


def test_drop_engraved_title_of_rgba() -> None:
    grey = engraving(True)
    rgba = np.dstack([grey, grey, grey, np.ones_like(grey)])
    np.testing.assert_array_equal(
        drop_engraved_title(rgba), np.dstack([engraving(False)] * 3 + [np.ones_like(engraving(False))])
    )


@pytest.mark.skipif(lilypond_missing() is not None, reason=f"LilyPond binary unavailable: {lilypond_missing()}")
def test_drop_engraved_title_of_a_lilypond_page(tmp_path: Path) -> None:
    """A real engraving with a long title, high notes in its first system: without its title it is the page
    engraved with no title (within a pixel row of spacing)."""
    from rnnmem.chorales.engrave import engrave_png
    from rnnmem.lm.render import tokens_to_chorale

    melody = "c'''4 b''4 a''4 g''4 | e'''2 d'''2 | c4 d4 e4 f4 | d'1 </s>"
    chorale, _ = tokens_to_chorale(melody.split(" "), 0)
    engrave_png(chorale, tmp_path / "titled.png", "gru (report, modern), T = 1, sample 0 and more words", timeout=60)
    engrave_png(chorale, tmp_path / "plain.png", "", timeout=60)
    titled, plain = plt.imread(str(tmp_path / "titled.png")), plt.imread(str(tmp_path / "plain.png"))
    cut = drop_engraved_title(titled)
    assert cut.shape[1] == plain.shape[1] and abs(cut.shape[0] - plain.shape[0]) <= 2
    rows = min(cut.shape[0], plain.shape[0])
    assert np.mean(np.abs(cut[:rows] - plain[:rows]) > 0.5) < 0.05


def test_fig21_one_title_per_sample_in_grey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures = capture(monkeypatch, lm_figures)
    images = [
        ("vanilla (vanilla_30k, modern regime)", write_grey_png(engraving(True), tmp_path / "v.png")),
        ("gru (gru_30k, modern regime)", write_grey_png(engraving(True, staves=2), tmp_path / "g.png")),
    ]
    fig_samples(images, tmp_path / "fig21.png", title="First sample of each model at temperature T = 1")
    (fig,) = figures
    texts = [text.get_text() for text in fig.texts]
    assert texts == ["First sample of each model at temperature T = 1", *[caption for caption, _ in images]]
    shown = [ax.get_images()[0].get_array() for ax in fig.get_axes()]
    assert [a.shape for a in shown] == [engraving(False).shape, engraving(False, staves=2).shape]
    assert outside_canvas(fig, reader_texts(fig)) == []
    pixels = plt.imread(str(tmp_path / "fig21.png"))[..., :3]
    assert np.allclose(pixels, pixels[..., :1], atol=1 / 255), "black on white, not a colour map"
    assert (pixels > 0.99).all(axis=2).mean() > 0.5  # mostly white paper


def test_learning_curves_whole_epochs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [
        {
            "epoch": epoch,
            "train_nll": 4.0 - 0.1 * epoch,
            "valid_nll": 4.1 - 0.08 * epoch,
            "model": model,
            "regime": regime,
        }
        for regime, epochs in (("seed", 2), ("modern", 3))
        for model in ("vanilla_s", "gru_s")
        for epoch in range(1, epochs + 1)
    ]
    figures = capture(monkeypatch, lm_figures)
    fig_learning_curves(pd.DataFrame(rows), tmp_path / "curves.png")
    (fig,) = figures
    assert len(fig.get_axes()) == 2
    fig.canvas.draw()
    for ax in fig.get_axes():
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert ax.get_xlabel().startswith("epoch") and "nats per token" in ax.get_ylabel()
    assert outside_canvas(fig, reader_texts(fig)) == []
