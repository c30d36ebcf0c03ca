"""A neural next-pitch model on the chorale benchmark (issue 14, part 3): a GRU (or LSTM) over the notes so far.

What is measured is the benchmark's own number: the mean over notes of ``-log2 P(pitch | everything before it)``,
every note scored (the first from a start state), the distribution proper over the corpus pitch alphabet.

**Inputs** per step (step 0 is a start symbol, step t reads note t-1 and predicts note t): pitch (embedding),
duration (one of 8 classes or "other"), onset position in the bar (sixteenth grid, 0–4 quarters), fermata, triple
metre; with ``context`` also the bar position where the next note starts if no rest comes (this note's onset plus
its duration, modulo the bar: a function of the past) and the number of notes since the last fermata; with
``viewpoints`` also the score's key (tonic embedding, mode flag), the interval from the note before
(±12 semitones, clipped) and the scale degree (pitch − tonic mod 12). The key is in the score before the first note,
so it is "before" every note.

**Outputs**: a pitch head over the network's pitch range; with ``heads`` also an interval head (−12…+12 semitones
from the previous note) and a scale-degree head (12 classes). Two ways to combine them (``combine``):

``logits`` (default, the better one): a product of experts trained end to end. The logit of range pitch ``a`` is
``pitch[a] + interval[a − previous pitch] + degree[(a − tonic) mod 12]`` (the interval term 0 beyond ±12 and at the
first note); one softmax over the range, renormalised over ``A``, trained with the pitch cross-entropy alone. The
interval and degree terms are shared by every transposition, so the model learns from far fewer examples.

``mix``: each head trained with its own cross-entropy (targets out of its range ignored), then every head's
distribution mapped onto ``A`` and mixed arithmetically:

- pitch: softmax over the range, renormalised over ``A`` (pitches of the range not in ``A`` dropped);
- interval: ``P_i(a) ∝ P(interval = a − previous pitch)`` for ``a`` in ``A`` (0 beyond ±12), renormalised over
  ``A``; at the first note (no previous pitch) the pitch distribution stands in for it;
- degree: ``P_d(a) = P(degree(a)) · P_p(a) / Σ_{b ∈ A, degree(b) = degree(a)} P_p(b)``: the degree's mass split
  among its octaves in the pitch head's proportions (all 12 degrees occur in ``A``, so this sums to 1);
- ``P = w_p P_p + w_i P_i + w_d P_d`` with weights on a 0.1 grid of the simplex, chosen per seed on the validation
  melodies.

**Augmentation** (training melodies only): every transposition in ``shifts`` (e.g. −6…+6) is a candidate; each epoch
takes one at random per training melody. The network's pitch range is the alphabet's range widened by the largest
shift, so no transposed melody or note is dropped; predictions are renormalised over ``A``.

**Selection** (never on the test fold): for test fold k, fold k+1 (mod 10) is the validation fold and the other
eight train the network. Early stopping on the validation bits of the pitch head, the head weights (``mix``) and the
weight of the PPM mixture are chosen on it. With ``refit``, once all that is chosen a network of the same seed is
trained afresh on all nine folds (the validation melodies then augmented too) for the chosen number of epochs, at
the selected run's learning rates, and predicts the test fold. **Ensemble**: arithmetic mean of the seeds'
combined distributions. **PPM mixture**: ``(1 − λ) P_ensemble + λ P_PPM`` with the LTM + STM model of
:mod:`rnnmem.melody.ppm` (IDyOM defaults); λ from ``ppm_grid`` chosen with a PPM trained on the eight training
folds, applied to the test fold with a PPM trained on all nine.

Deterministic given a seed: ``torch.manual_seed(seed)`` before the model is built (initialisation, dropout) and a
``numpy`` generator of the same seed for transpositions and batches. Threads are the caller's
(``torch.set_num_threads``).
Run ``python -m rnnmem.melody.neural CACHE.json`` for the numbers.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from itertools import product

import numpy as np
import torch
from torch import nn

from rnnmem.melody.corpus import Melody
from rnnmem.melody.folds import N_FOLDS, split_fold

DURATIONS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
N_DUR = len(DURATIONS) + 2  # + other, + start
N_POS = 17 + 1  # sixteenths 0..16 (16: at or beyond 4 quarters), + start
N_PHRASE = 16 + 1  # notes since the last fermata, 0..15 (15: 15 or more), + start
MAX_INTERVAL = 12
N_INT = 2 * MAX_INTERVAL + 1
IGNORE = -100


@dataclass(frozen=True)
class NeuralSettings:
    """Everything that defines a run; the defaults are the full model (augmentation, viewpoints, heads)."""

    cell: str = "gru"
    hidden: int = 128
    layers: int = 1
    embed: int = 16
    dropout: float = 0.3
    epochs: int = 40
    patience: int = 8
    batch_size: int = 16
    lr: float = 1e-2
    lr_patience: int = 2
    weight_decay: float = 1e-5
    shifts: tuple[int, ...] = tuple(range(-6, 7))
    viewpoints: bool = True
    context: bool = False
    refit: bool = False
    heads: bool = True
    combine: str = "logits"
    seeds: tuple[int, ...] = (0,)
    ppm: bool = False
    ppm_grid: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(11))
    head_step: float = 0.1


PRESETS: dict[str, NeuralSettings] = {
    "gru": NeuralSettings(shifts=(0,), viewpoints=False, heads=False),
    "aug": NeuralSettings(viewpoints=False, heads=False),
    "viewpoints-noaug": NeuralSettings(shifts=(0,)),
    "viewpoints": NeuralSettings(),
    "full": NeuralSettings(seeds=(0, 1, 2), ppm=True),
    "best": NeuralSettings(seeds=(0, 1, 2, 3, 4), ppm=True, refit=True),
}


# --- encoding --------------------------------------------------------------------------------------------------------


@dataclass
class Encoded:
    """One (possibly transposed) melody as integer/float arrays of its length n: step t's inputs and note t's
    targets, plus what the heads' mapping onto pitches needs (previous absolute pitch, tonic)."""

    pitch_in: np.ndarray
    dur_in: np.ndarray
    pos_in: np.ndarray
    ferm_in: np.ndarray
    int_in: np.ndarray
    deg_in: np.ndarray
    next_pos_in: np.ndarray
    phrase_in: np.ndarray
    prev: np.ndarray
    pitch_t: np.ndarray
    int_t: np.ndarray
    deg_t: np.ndarray
    tonic: int
    mode: float
    triple: float
    melody: int = -1
    shift: int = 0

    def __len__(self) -> int:
        return len(self.pitch_t)


def _dur_class(duration: float) -> int:
    for i, d in enumerate(DURATIONS):
        if abs(duration - d) < 1e-6:
            return i
    return len(DURATIONS)


def _bar_length(time_signature: str) -> float:
    """Quarter notes per bar (4 when the signature is missing or odd)."""
    try:
        numerator, denominator = (int(x) for x in time_signature.split("/"))
    except ValueError:
        return 4.0
    return numerator * 4 / denominator


def encode(melody: Melody, low: int, size: int, shift: int = 0, index: int = -1) -> Encoded:
    """``melody`` transposed by ``shift`` with pitches indexed from ``low`` (range of ``size`` pitches)."""
    pitches = np.asarray(melody.pitches, dtype=np.int64) + shift
    if pitches.min() < low or pitches.max() >= low + size:
        raise ValueError(f"melody {index} shifted by {shift} leaves the pitch range")
    tonic = (melody.tonic + shift) % 12
    n = len(pitches)
    notes = melody.notes
    prev = np.concatenate([[-1], pitches[:-1]])
    steps = np.diff(pitches)
    int_in = np.full(n, N_INT, dtype=np.int64)  # "none": the start step and the first note
    if n > 2:
        int_in[2:] = np.clip(steps[:-1], -MAX_INTERVAL, MAX_INTERVAL) + MAX_INTERVAL
    int_t = np.full(n, IGNORE, dtype=np.int64)
    bar = _bar_length(melody.time_signature)
    next_pos = [N_POS - 1] + [min(round(((x.bar_offset + x.duration) % bar) * 4), 16) for x in notes[:-1]]
    phrase, since = [N_PHRASE - 1], 0  # notes since the last fermata (phrase position), start symbol first
    for x in notes[:-1]:
        since = 0 if x.fermata else since + 1
        phrase.append(min(since, N_PHRASE - 2))
    if n > 1:
        int_t[1:] = np.where(np.abs(steps) <= MAX_INTERVAL, steps + MAX_INTERVAL, IGNORE)
    return Encoded(
        pitch_in=np.concatenate([[size], pitches[:-1] - low]),
        dur_in=np.asarray([N_DUR - 1] + [_dur_class(x.duration) for x in notes[:-1]], dtype=np.int64),
        pos_in=np.asarray([N_POS - 1] + [min(round(x.bar_offset * 4), 16) for x in notes[:-1]], dtype=np.int64),
        ferm_in=np.asarray([0.0] + [float(x.fermata) for x in notes[:-1]], dtype=np.float32),
        int_in=int_in,
        deg_in=np.concatenate([[12], (pitches[:-1] - tonic) % 12]),
        next_pos_in=np.asarray(next_pos, dtype=np.int64),
        phrase_in=np.asarray(phrase, dtype=np.int64),
        prev=prev,
        pitch_t=pitches - low,
        int_t=int_t,
        deg_t=(pitches - tonic) % 12,
        tonic=tonic,
        mode=float(melody.mode == "minor"),
        triple=float(melody.time_signature.startswith("3")),
        melody=index,
        shift=shift,
    )


def collate(batch: Sequence[Encoded]) -> dict[str, torch.Tensor]:
    """Pad to the longest melody (targets padded with ``IGNORE``, so padding never enters a loss)."""
    length = max(len(e) for e in batch)
    out: dict[str, torch.Tensor] = {}
    for name, pad in (
        ("pitch_in", 0), ("dur_in", 0), ("pos_in", 0), ("ferm_in", 0), ("int_in", 0), ("deg_in", 0),
        ("next_pos_in", 0), ("phrase_in", 0),
        ("prev", -1), ("pitch_t", IGNORE), ("int_t", IGNORE), ("deg_t", IGNORE),
    ):  # fmt: skip
        rows = [np.pad(getattr(e, name), (0, length - len(e)), constant_values=pad) for e in batch]
        out[name] = torch.from_numpy(np.stack(rows))
    out["tonic"] = torch.tensor([e.tonic for e in batch])
    out["mode"] = torch.tensor([e.mode for e in batch], dtype=torch.float32)
    out["triple"] = torch.tensor([e.triple for e in batch], dtype=torch.float32)
    out["lengths"] = torch.tensor([len(e) for e in batch])
    return out


# --- the model -------------------------------------------------------------------------------------------------------


class MelodyNet(nn.Module):
    """Embeddings of the note features -> GRU/LSTM -> pitch head (and interval and degree heads)."""

    def __init__(self, n_pitch: int, settings: NeuralSettings) -> None:
        super().__init__()
        e = settings.embed
        self.settings = settings
        self.pitch = nn.Embedding(n_pitch + 1, e)
        self.dur = nn.Embedding(N_DUR, 8)
        self.pos = nn.Embedding(N_POS, 8)
        width = e + 8 + 8 + 2
        if settings.viewpoints:
            self.tonic = nn.Embedding(12, 8)
            self.interval = nn.Embedding(N_INT + 1, 8)
            self.degree = nn.Embedding(13, 8)
            width += 3 * 8 + 1
        if settings.context:
            self.next_pos = nn.Embedding(N_POS, 8)
            self.phrase = nn.Embedding(N_PHRASE, 8)
            width += 2 * 8
        cells = {"gru": nn.GRU, "lstm": nn.LSTM}
        if settings.cell not in cells:
            raise ValueError(f"cell {settings.cell!r}: expected 'gru' or 'lstm'")
        self.rnn = cells[settings.cell](
            width, settings.hidden, settings.layers, batch_first=True,
            dropout=settings.dropout if settings.layers > 1 else 0.0,
        )  # fmt: skip
        self.drop = nn.Dropout(settings.dropout)
        self.head_pitch = nn.Linear(settings.hidden, n_pitch)
        if settings.heads:
            self.head_int = nn.Linear(settings.hidden, N_INT)
            self.head_deg = nn.Linear(settings.hidden, 12)
        if settings.combine not in ("mix", "logits"):
            raise ValueError(f"combine {settings.combine!r}: expected 'mix' or 'logits'")
        self.low = 0  # set by the caller for ``logits`` (absolute pitch of range index 0)

    def forward(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        length = b["pitch_in"].shape[1]
        parts = [
            self.pitch(b["pitch_in"]),
            self.dur(b["dur_in"]),
            self.pos(b["pos_in"]),
            b["ferm_in"].unsqueeze(-1),
            b["triple"][:, None, None].expand(-1, length, 1),
        ]
        if self.settings.viewpoints:
            parts += [
                self.tonic(b["tonic"])[:, None, :].expand(-1, length, -1),
                b["mode"][:, None, None].expand(-1, length, 1),
                self.interval(b["int_in"]),
                self.degree(b["deg_in"]),
            ]
        if self.settings.context:
            parts += [self.next_pos(b["next_pos_in"]), self.phrase(b["phrase_in"])]
        hidden, _ = self.rnn(self.drop(torch.cat(parts, dim=-1)))
        hidden = self.drop(hidden)
        out = {"pitch": self.head_pitch(hidden)}
        if self.settings.heads:
            out["interval"] = self.head_int(hidden)
            out["degree"] = self.head_deg(hidden)
            if self.settings.combine == "logits":
                out["pitch"] = out["pitch"] + self._fused(out, b)
        return out

    def _fused(self, out: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
        """``logits`` combination: each range pitch also gets its interval's and its degree's logit (0 for a
        leap beyond an octave or at the first note), a product of the three heads' experts."""
        size = out["pitch"].shape[-1]
        absolute = torch.arange(size) + self.low
        step = absolute[None, None, :] - b["prev"][..., None]
        valid = (step.abs() <= MAX_INTERVAL) & (b["prev"][..., None] >= 0)
        idx = (step + MAX_INTERVAL).clamp(0, N_INT - 1)
        interval = torch.gather(out["interval"], 2, idx) * valid
        degree = ((absolute[None, :] - b["tonic"][:, None]) % 12)[:, None, :].expand(-1, step.shape[1], -1)
        return interval + torch.gather(out["degree"], 2, degree)


def _loss(model: MelodyNet, b: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = model(b)
    ce = nn.functional.cross_entropy
    loss = ce(logits["pitch"].flatten(0, 1), b["pitch_t"].flatten(), ignore_index=IGNORE)
    if model.settings.heads and model.settings.combine == "mix":
        loss = loss + ce(logits["interval"].flatten(0, 1), b["int_t"].flatten(), ignore_index=IGNORE)
        loss = loss + ce(logits["degree"].flatten(0, 1), b["deg_t"].flatten(), ignore_index=IGNORE)
    return loss


@dataclass
class PitchSpace:
    """The network's pitch range (``low``, ``size``) and the corpus alphabet inside it."""

    low: int
    size: int
    alphabet: list[int]

    @property
    def columns(self) -> torch.Tensor:
        return torch.tensor([p - self.low for p in self.alphabet])


@torch.no_grad()
def components(model: MelodyNet, space: PitchSpace, melodies: Sequence[Encoded], batch: int = 64) -> list[dict]:
    """Per melody, the heads' distributions over the alphabet (arrays notes x |A|, rows summing to 1):
    ``pitch`` and, with heads, ``interval`` and ``degree``, mapped as the module docstring says."""
    model.eval()
    cols = space.columns
    alphabet = torch.tensor(space.alphabet)
    out: list[dict] = []
    for start in range(0, len(melodies), batch):
        chunk = melodies[start : start + batch]
        b = collate(chunk)
        logits = model(b)
        pitch = torch.softmax(logits["pitch"].double()[..., cols], dim=-1)  # renormalised over the alphabet
        parts = {"pitch": pitch}
        if model.settings.heads and model.settings.combine == "mix":
            p_int = torch.softmax(logits["interval"].double(), dim=-1)
            step = alphabet[None, None, :] - b["prev"][..., None]
            valid = (step.abs() <= MAX_INTERVAL) & (b["prev"][..., None] >= 0)
            idx = (step + MAX_INTERVAL).clamp(0, N_INT - 1)
            mapped = torch.gather(p_int, 2, idx) * valid
            total = mapped.sum(-1, keepdim=True)
            parts["interval"] = torch.where(total > 0, mapped / total.clamp_min(1e-300), pitch)
            p_deg = torch.softmax(logits["degree"].double(), dim=-1)
            degree = ((alphabet[None, :] - b["tonic"][:, None]) % 12)[:, None, :].expand_as(pitch)
            class_mass = torch.zeros(*pitch.shape[:2], 12, dtype=pitch.dtype).scatter_add(2, degree, pitch)
            d = torch.gather(p_deg, 2, degree) * pitch / torch.gather(class_mass, 2, degree)
            parts["degree"] = d / d.sum(-1, keepdim=True)
        for row, e in enumerate(chunk):
            out.append({k: v[row, : len(e)].numpy() for k, v in parts.items()})
    return out


def _pitch_bits(model: MelodyNet, space: PitchSpace, melodies: Sequence[Encoded]) -> float:
    """Mean bits/note of the pitch head alone (the early-stopping criterion)."""
    total, count = 0.0, 0
    for comp, e in zip(components(model, space, melodies), melodies, strict=True):
        target = [space.alphabet.index(p + space.low) for p in e.pitch_t]
        total -= float(np.log2(comp["pitch"][np.arange(len(e)), target]).sum())
        count += len(e)
    return total / count


def _batches(items: list[Encoded], size: int, rng: np.random.Generator) -> list[list[Encoded]]:
    """Batches of similar length (less padding), in random order; lengths jittered so batches vary by epoch."""
    keys = np.asarray([len(e) for e in items]) + rng.uniform(0, 8, len(items))
    order = np.argsort(keys, kind="stable")
    batches = [[items[i] for i in order[s : s + size]] for s in range(0, len(items), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _train_epoch(
    model: MelodyNet,
    optimiser: torch.optim.Optimizer,
    options: Sequence[Sequence[Encoded]],
    batch_size: int,
    rng: np.random.Generator,
) -> None:
    """One epoch: a random transposition of every training melody, shuffled minibatches, clipped Adam steps."""
    chosen = [opts[int(rng.integers(len(opts)))] for opts in options]
    model.train()
    for batch in _batches(chosen, batch_size, rng):
        loss = _loss(model, collate(batch))
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()


def train_model(
    options: Sequence[Sequence[Encoded]],
    validation: Sequence[Encoded],
    space: PitchSpace,
    settings: NeuralSettings,
    seed: int,
) -> tuple[MelodyNet, dict]:
    """Train on one random transposition per melody per epoch (``options``: the candidates per training melody);
    keep the epoch with the best validation bits of the pitch head; halve the learning rate after ``lr_patience``
    epochs without a better one (validation bits are noisy at a high rate) and stop after ``patience``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = MelodyNet(space.size, settings)
    model.low = space.low
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=settings.lr_patience)
    best, best_state, best_epoch, history, rates = math.inf, copy.deepcopy(model.state_dict()), 0, [], []
    for epoch in range(1, settings.epochs + 1):
        rates.append(optimiser.param_groups[0]["lr"])
        _train_epoch(model, optimiser, options, settings.batch_size, rng)
        bits = _pitch_bits(model, space, validation)
        history.append(round(bits, 4))
        plateau.step(bits)
        if bits < best - 1e-4:
            best, best_state, best_epoch = bits, copy.deepcopy(model.state_dict()), epoch
        elif epoch - best_epoch >= settings.patience:
            break
    model.load_state_dict(best_state)
    return model, {"best_epoch": best_epoch, "val_pitch_bits": round(best, 4), "history": history, "rates": rates}


def refit_model(
    options: Sequence[Sequence[Encoded]], space: PitchSpace, settings: NeuralSettings, seed: int, rates: Sequence[float]
) -> MelodyNet:
    """Train afresh on ``options`` (training and validation melodies, once everything is chosen) for as many
    epochs as ``rates`` has, at those learning rates: the selected run's schedule up to its best epoch."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = MelodyNet(space.size, settings)
    model.low = space.low
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    for rate in rates:
        for group in optimiser.param_groups:
            group["lr"] = rate
        _train_epoch(model, optimiser, options, settings.batch_size, rng)
    return model


# --- selection and mixing --------------------------------------------------------------------------------------------


def _target_probs(dists: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([d[np.arange(len(t)), t] for d, t in zip(dists, targets, strict=True)])


def head_weights(comps: Sequence[dict], targets: Sequence[np.ndarray], step: float) -> tuple[float, ...]:
    """The (pitch, interval, degree) weights on a ``step`` grid of the simplex with the fewest validation bits
    (the interval weight below 1, so every pitch keeps some probability)."""
    names = [k for k in ("pitch", "interval", "degree") if k in comps[0]]
    if len(names) == 1:
        return (1.0, 0.0, 0.0)
    probs = np.stack([_target_probs([c[k] for c in comps], targets) for k in names])
    n = round(1 / step)
    best, best_w = math.inf, (1.0, 0.0, 0.0)
    for i, j in product(range(n + 1), repeat=2):
        if i + j > n or j == n:  # the interval part alone gives 0 to leaps beyond an octave: never alone
            continue
        w = np.asarray([i, j, n - i - j]) / n
        bits = -np.log2(w @ probs).mean()
        if bits < best - 1e-12:
            best, best_w = bits, tuple(float(x) for x in w)
    return best_w


def combine_heads(comp: dict, weights: Sequence[float]) -> np.ndarray:
    """``w_p P_p + w_i P_i + w_d P_d`` (a proper distribution per row: each part is one, weights sum to 1)."""
    out = weights[0] * comp["pitch"]
    for w, name in zip(weights[1:], ("interval", "degree"), strict=True):
        if w:
            out = out + w * comp[name]
    return out


def mix_weight(model: Sequence[np.ndarray], other: Sequence[np.ndarray], targets, grid: Sequence[float]) -> float:
    """The λ of ``(1 − λ) model + λ other`` from ``grid`` with the fewest validation bits."""
    a, b = _target_probs(model, targets), _target_probs(other, targets)
    scores = [-np.log2((1 - lam) * a + lam * b).mean() for lam in grid]
    return float(grid[int(np.argmin(scores))])


# --- the benchmark ---------------------------------------------------------------------------------------------------


def pitch_space(melodies: Sequence[Melody], shifts: Sequence[int]) -> PitchSpace:
    """The corpus alphabet, and a network range wide enough for every transposition in ``shifts``."""
    alphabet = sorted({p for m in melodies for p in m.pitches})
    margin = max((abs(s) for s in shifts), default=0)
    low = alphabet[0] - margin
    return PitchSpace(low, alphabet[-1] + margin - low + 1, alphabet)


def training_options(
    melodies: Sequence[Melody], train: Sequence[int], space: PitchSpace, shifts: Sequence[int]
) -> list[list[Encoded]]:
    """Per training melody, its encodings at every shift (the only place transposition happens)."""
    return [[encode(melodies[i], space.low, space.size, s, i) for s in shifts] for i in train]


def _summary(bits: dict[int, np.ndarray], fold_sets: Sequence[Sequence[int]]) -> dict:
    fold_means = [float(np.concatenate([bits[i] for i in f]).mean()) for f in fold_sets]
    every = np.concatenate([bits[i] for f in fold_sets for i in f])
    return {
        "mean": float(every.mean()),
        "folds": fold_means,
        "fold_sd": float(np.std(fold_means, ddof=1)) if len(fold_means) > 1 else 0.0,
        "bits": {i: bits[i].tolist() for f in fold_sets for i in f},
    }


def benchmark_neural(
    melodies: Sequence[Melody],
    folds: Sequence[int],
    settings: NeuralSettings = NeuralSettings(),
    n_folds: int = N_FOLDS,
    test_folds: Sequence[int] | None = None,
    log=None,
) -> dict:
    """Bits/note of each model over the test folds: ``seed<s>`` (one network, heads combined), ``seed<s>_pitch``
    (its pitch head alone), ``ensemble`` (mean of the seeds' distributions) and, with ``settings.ppm``,
    ``seed<s>+ppm`` and ``ensemble+ppm``. Each has ``mean`` (over notes), ``folds``, ``fold_sd`` and ``bits`` (per
    melody index, per note); ``selection`` records what was chosen on validation per fold."""
    space = pitch_space(melodies, settings.shifts)
    chosen_folds = list(range(n_folds)) if test_folds is None else list(test_folds)
    bits: dict[str, dict[int, np.ndarray]] = {}
    selection = []
    fold_sets = []
    start = time.perf_counter()
    for k in chosen_folds:
        train, val, test = split_fold(folds, k, n_folds)
        fold_sets.append(test)
        options = training_options(melodies, train, space, settings.shifts)
        val_enc = [encode(melodies[i], space.low, space.size, 0, i) for i in val]
        test_enc = [encode(melodies[i], space.low, space.size, 0, i) for i in test]
        val_t = [np.asarray([space.alphabet.index(p) for p in melodies[i].pitches]) for i in val]
        test_t = [np.asarray([space.alphabet.index(p) for p in melodies[i].pitches]) for i in test]
        record: dict = {"fold": k, "seeds": {}}
        dist_val: dict[str, list[np.ndarray]] = {}
        dist_test: dict[str, list[np.ndarray]] = {}
        for seed in settings.seeds:
            model, info = train_model(options, val_enc, space, settings, seed)
            comps_val, comps_test = components(model, space, val_enc), components(model, space, test_enc)
            weights = head_weights(comps_val, val_t, settings.head_step)
            info["head_weights"] = weights
            if settings.refit:
                everything = options + training_options(melodies, val, space, settings.shifts)
                refitted = refit_model(everything, space, settings, seed, info["rates"][: info["best_epoch"]])
                comps_test = components(refitted, space, test_enc)
            record["seeds"][seed] = info
            dist_val[f"seed{seed}"] = [combine_heads(c, weights) for c in comps_val]
            dist_test[f"seed{seed}"] = [combine_heads(c, weights) for c in comps_test]
            dist_test[f"seed{seed}_pitch"] = [c["pitch"] for c in comps_test]
        names = [f"seed{s}" for s in settings.seeds]
        if len(names) > 1:
            dist_val["ensemble"] = [np.mean(x, axis=0) for x in zip(*(dist_val[n] for n in names), strict=True)]
            dist_test["ensemble"] = [np.mean(x, axis=0) for x in zip(*(dist_test[n] for n in names), strict=True)]
        if settings.ppm:
            from rnnmem.melody.ppm_dist import ppm_distributions

            pitches = [m.pitches for m in melodies]
            ppm_val = ppm_distributions([pitches[i] for i in train], [pitches[i] for i in val], space.alphabet)
            ppm_test = ppm_distributions([pitches[i] for i in sorted(train + val)], [pitches[i] for i in test],
                                         space.alphabet)  # fmt: skip
            dist_test["ppm"] = ppm_test
            record["ppm_weight"] = {}
            for name in [n for n in dist_val if n.startswith("seed") or n == "ensemble"]:
                lam = mix_weight(dist_val[name], ppm_val, val_t, settings.ppm_grid)
                record["ppm_weight"][name] = lam
                dist_test[f"{name}+ppm"] = [(1 - lam) * a + lam * b for a, b in zip(dist_test[name], ppm_test,
                                                                                     strict=True)]  # fmt: skip
        for name, dists in dist_test.items():
            for i, d, t in zip(test, dists, test_t, strict=True):
                bits.setdefault(name, {})[i] = -np.log2(d[np.arange(len(t)), t])
        record["seconds"] = round(time.perf_counter() - start, 1)
        selection.append(record)
        if log is not None:
            fold_bits = {n: float(np.concatenate([b[i] for i in test]).mean()) for n, b in bits.items()}
            log(f"fold {k}: " + " ".join(f"{n}={v:.3f}" for n, v in fold_bits.items())
                + f" ({record['seconds']} s)")  # fmt: skip
    report = {name: _summary(b, fold_sets) for name, b in bits.items()}
    return {
        "models": report,
        "selection": selection,
        "settings": asdict(settings),
        "seconds": round(time.perf_counter() - start, 1),
        "notes": int(sum(len(melodies[i].notes) for f in fold_sets for i in f)),
    }


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cache", nargs="?", default="results/melody/melodies.json")
    parser.add_argument("--preset", default="viewpoints", choices=sorted(PRESETS))
    parser.add_argument("--kind", default="grouped", choices=("grouped", "plain"))
    parser.add_argument("--seeds", type=int, nargs="*", default=None)
    parser.add_argument("--ppm", action="store_true", default=None)
    parser.add_argument("--cell", choices=("gru", "lstm"), default=None)
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--context", action="store_true", default=None)
    parser.add_argument("--dropout", type=float, default=None)
    parser.add_argument("--refit", action="store_true", default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--combine", choices=("mix", "logits"), default=None)
    parser.add_argument("--folds", type=int, nargs="*", default=None, help="test folds to run (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the whole report as JSON here")
    args = parser.parse_args(argv)

    from rnnmem.melody.corpus import cached_melodies
    from rnnmem.melody.folds import make_folds
    from rnnmem.melody.tunes import tune_groups

    torch.set_num_threads(args.threads)
    settings = PRESETS[args.preset]
    overrides = {"seeds": tuple(args.seeds) if args.seeds else None, "ppm": args.ppm, "cell": args.cell,
                 "hidden": args.hidden, "epochs": args.epochs,
                 "lr": args.lr, "batch_size": args.batch_size, "combine": args.combine,
                 "context": args.context,
                 "dropout": args.dropout, "layers": args.layers,
                 "refit": args.refit}  # fmt: skip
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    melodies = cached_melodies(args.cache)
    folds = make_folds(args.kind, tune_groups(melodies), seed=0)
    report = benchmark_neural(melodies, folds, settings, test_folds=args.folds,
                              log=lambda s: print(s, file=sys.stderr, flush=True))  # fmt: skip
    report["kind"], report["preset"] = args.kind, args.preset
    for name, r in report["models"].items():
        print(f"{args.kind} {args.preset} {name}: {r['mean']:.3f} bits/note (fold sd {r['fold_sd']:.3f}, "
              f"{report['notes']} notes, {report['seconds']} s)", file=sys.stderr)  # fmt: skip
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(report, handle)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
