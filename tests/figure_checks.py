"""Checks on a figure as it is drawn, shared by the tests of the figure modules: keep the figure a module saves,
then ask what a reader sees (colour bars, titles, labels cut off at the canvas edge)."""

from __future__ import annotations

from types import ModuleType

import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure, SubFigure
from matplotlib.text import Text


def capture(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> list[Figure]:
    """Every figure ``module`` saves from now on (through its ``save_figure``), still saved to its file."""
    figures: list[Figure] = []
    save = module.save_figure

    def keep(fig: Figure, out) -> None:
        figures.append(fig)
        save(fig, out)

    monkeypatch.setattr(module, "save_figure", keep)
    return figures


def colorbar_axes(fig: Figure) -> list[Axes]:
    """The axes that hold a colour bar, subfigures included."""
    return [ax for ax in fig.get_axes() if getattr(ax, "_colorbar", None) is not None]


def _titles(figure: Figure | SubFigure) -> list[Text]:
    texts = [text for text in (figure._suptitle, figure._supxlabel, figure._supylabel) if text is not None]
    for sub in figure.subfigs:
        texts.extend(_titles(sub))
    return texts


def reader_texts(fig: Figure) -> list[Text]:
    """What names the figure's parts: titles and axis labels of every axes (colour bars included), the
    (sub)figure titles, free figure texts and legend entries; only those with text and visible."""
    texts: list[Text] = [*fig.texts, *_titles(fig)]
    for ax in fig.get_axes():
        texts.extend([ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label])
        if ax.get_legend() is not None:
            texts.extend(ax.get_legend().get_texts())
    for legend in fig.legends:
        texts.extend(legend.get_texts())
    return [text for text in texts if text.get_visible() and text.get_text()]


def outside_canvas(fig: Figure, texts: list[Text], tolerance_px: float = 1.0) -> list[str]:
    """The texts of ``texts`` whose drawn box pokes out of the canvas (what a reader sees cut off)."""
    canvas_agg = FigureCanvasAgg(fig)  # a closed figure keeps no drawing canvas: give it one, as savefig does
    fig.set_dpi(150)  # save_figure's resolution
    canvas_agg.draw()  # the layout (constrained or not) is computed at draw time
    renderer = canvas_agg.get_renderer()
    canvas = fig.bbox
    cut = []
    for text in texts:
        box = text.get_window_extent(renderer)
        if (
            box.x0 < canvas.x0 - tolerance_px
            or box.y0 < canvas.y0 - tolerance_px
            or box.x1 > canvas.x1 + tolerance_px
            or box.y1 > canvas.y1 + tolerance_px
        ):
            cut.append(f"{text.get_text()!r} at {box.bounds} outside {canvas.bounds}")
    return cut
