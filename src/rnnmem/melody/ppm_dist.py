"""PPM distributions per note (not just bits), so a neural model can be mixed with the PPM yardstick.

:func:`rnnmem.melody.ppm.predict` keeps only the probability of the note that came; mixing needs the whole
distribution over the alphabet at every note. This walks the melodies exactly as ``predict`` does (LTM trained on
``train``, STM emptied per melody, ``ltm_plus`` adding each predicted melody to the LTM) and returns the LTM + STM
combination of :class:`~rnnmem.melody.ppm.SystemConfig` (default: IDyOM's geometric, bias 7).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnmem.melody.ppm import PPM, SystemConfig, combine


def ppm_distributions(
    train: Sequence[Sequence[int]],
    test: Sequence[Sequence[int]],
    alphabet: Sequence[int],
    config: SystemConfig = SystemConfig(),  # noqa: B008
) -> list[np.ndarray]:
    """Per test melody, an array (notes x |alphabet|) of P(note | its predecessors) from the LTM + STM model;
    each row sums to 1 and is > 0 everywhere."""
    symbols = sorted(alphabet)
    index = {s: i for i, s in enumerate(symbols)}
    ltm = PPM(len(symbols), config.ltm)
    for sequence in train:
        ltm.add_sequence([index[s] for s in sequence])
    out = []
    for sequence in test:
        coded = [index[s] for s in sequence]
        stm = PPM(len(symbols), config.stm)
        stm.start_sequence()
        rows = []
        for position, symbol in enumerate(coded):
            history = coded[:position]
            both = combine([ltm.distribution(history), stm.distribution(history)], config.bias, config.combination)
            rows.append(both)
            stm.add(symbol)
        if config.ltm_plus:
            ltm.add_sequence(coded)
        out.append(np.asarray(rows, dtype=np.float64).reshape(len(coded), len(symbols)))
    return out
