"""Matplotlib set up for files only (no display: cluster jobs, CI) and the one way figures are written."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from rnnmem.core.atomic import atomic_path

__all__ = ["plt", "save_figure"]


def save_figure(fig: Figure, out: Path) -> None:
    """Write the PNG atomically, without metadata that would differ between runs (so the same data gives the
    same bytes and Snakemake sees no spurious change), and free the figure."""
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=150, metadata={"Software": None})
    finally:
        plt.close(fig)
