"""``make bench``, chorale models: tokens per second of training and the loop's overhead (full step time over
forward + loss + backward time, goal ≤ 1.25×) per model and regime, on the chorale tokens of a finished run."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from rnnmem.lm.data import load_token_data
from rnnmem.lm.model import lm_matched_hidden
from rnnmem.lm.settings import regime_settings
from rnnmem.lm.train import train_lm


def bench_lm(tokens: Path, vocab: Path, regimes: dict[str, dict[str, Any]], params: int = 30000,
             epochs: int = 2) -> pd.DataFrame:
    """Train each model ``epochs`` epochs in each regime of the config's ``lm.regimes`` (CPU or CUDA as the run
    would) and time it."""
    data = load_token_data(tokens, vocab)
    rows = []
    for regime, block in regimes.items():
        settings = dataclasses.replace(regime_settings(regime, block), max_epochs=epochs)
        for kind in ("vanilla", "gru", "lstm"):
            hidden = lm_matched_hidden(kind, data.vocab_size, params, settings.embedding)
            with tempfile.TemporaryDirectory() as folder:
                _, curve = train_lm(data, kind, hidden, settings, 0, Path(folder) / "bench.ckpt",
                                    desc=f"bench {kind}/{regime}")
            steps, compute = curve["train_seconds"].sum(), curve["compute_seconds"].sum()
            rows.append({"model": kind, "regime": regime, "hidden": hidden, "epochs": len(curve),
                         "tokens_per_s": curve["tokens"].sum() / steps, "loop_overhead": steps / compute})
    return pd.DataFrame(rows)
