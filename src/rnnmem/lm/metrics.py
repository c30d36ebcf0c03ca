"""Musical metrics of sampled sopranos against held-out Bach sopranos, and a check for copied training material.

After Yang & Lerch (2018, "On the evaluation of generative models in music", Neural Computing and Applications),
simplified: each feature is pooled over a set of melodies into one histogram, and the generated histogram is
compared with the reference one directly (Yang & Lerch compare distributions of pairwise distances instead).

Features (of the melodies transposed to C; tied notes merged into one note, rests skipped):

* ``pitch_class``: the 12 pitch classes of the notes (c = 0);
* ``interval``: semitones between successive notes, clipped to -12 .. +12 (25 bins);
* ``note_length``: the notes' durations in whole notes (one bin per value found in either set).

Distances, with ``p`` the reference and ``q`` the generated histogram, both normalised to sum 1:

* overlapping area ``Σ min(p, q)``: 1 for equal histograms, 0 for disjoint ones;
* ``KL(p ‖ q) = Σ p' log(p' / q')`` in nats, where ``p' = (p + ε) / (1 + Kε)`` and likewise ``q'``, ``ε`` =
  :data:`KL_EPSILON`, over the ``K`` bins of the histogram (the union of both sets' values for note lengths). The
  smoothing keeps it finite when the generated set never uses a value Bach uses; 0 for equal histograms.

Scalars: mean pitch range (semitones between the lowest and highest note of a melody), the fraction of bars that
fit the time signature (:func:`rnnmem.lm.render.check_bars`: a short pickup and a short last bar fit), the
fraction of phrase endings (notes with a fermata) on a tone of the tonic triad (tonic, third, fifth; the third
minor in a minor-like mode), the fraction of melodies whose last note is the tonic.

Keys: a sampled melody is parsed in C major (:func:`rnnmem.lm.render.tokens_to_chorale`), which is right only for
a model trained on chorales transposed to C. Given key profiles (:class:`rnnmem.lm.keys.KeyProfiles`, from the
training chorales in C), :func:`sample_metrics` first finds the key of every melody, the samples' and the
reference's alike, by Krumhansl–Schmuckler correlation with Bach's own major and minor pitch-class profiles
(duration-weighted; :mod:`rnnmem.lm.keys`), moves each melody so the found tonic is c and gives it the found mode
(``major`` or ``minor``): the pitch-class histogram, tonic triad and ends-on-tonic then use the found key, so a
model trained on transposed copies (samples in any key) is measured like one trained in C, and every set is
measured the same way. ``key_shift_nonzero`` is then the fraction of melodies whose found tonic is not c (for a
model trained in C: where the key finder disagrees with the training key; Bach's sopranos alone are ambiguous,
e.g. a minor chorale whose melody dwells on the fourth degree). Without profiles the declared keys are used as
they are (``c``, and ``major`` for samples).

Copying: for each sample the longest run of consecutive tokens (``<s>``/``</s>`` excluded) that occurs verbatim in
one training sequence, and the fraction of its windows of 8 consecutive notes (note tokens as pitch and duration;
ties, bar lines, fermatas and rests left out) that occur in a training sequence.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from rnnmem.chorales.dataset import BEGIN, END, merged_notes, midi_number
from rnnmem.chorales.events import Chorale
from rnnmem.lm.keys import MINOR_THIRD_MODES, KeyProfiles, to_found_key
from rnnmem.lm.render import check_bars, note_body

KL_EPSILON = 1e-4
INTERVAL_CLIP = 12
WINDOW = 8
HISTOGRAMS = ("pitch_class", "interval", "note_length")


# --- features -------------------------------------------------------------------------------------------------------

def pitch_classes(chorale: Chorale) -> list[int]:
    return [midi_number(p) % 12 for p, _, _ in merged_notes(chorale)]


def intervals(chorale: Chorale) -> list[int]:
    numbers = [midi_number(p) for p, _, _ in merged_notes(chorale)]
    return [max(-INTERVAL_CLIP, min(INTERVAL_CLIP, b - a)) for a, b in pairwise(numbers)]


def note_lengths(chorale: Chorale) -> list[Fraction]:
    return [d for _, d, _ in merged_notes(chorale)]


def histogram(chorales: Iterable[Chorale], kind: str) -> Counter:
    feature = {"pitch_class": pitch_classes, "interval": intervals, "note_length": note_lengths}[kind]
    counts: Counter = Counter()
    for chorale in chorales:
        counts.update(feature(chorale))
    return counts


def _bins(kind: str, p: Mapping, q: Mapping) -> list:
    if kind == "pitch_class":
        return list(range(12))
    if kind == "interval":
        return list(range(-INTERVAL_CLIP, INTERVAL_CLIP + 1))
    return sorted(set(p) | set(q))


def _normalised(counts: Mapping, bins: Sequence) -> np.ndarray | None:
    values = np.array([counts.get(b, 0) for b in bins], dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else None


def overlap_and_kl(reference: Mapping, generated: Mapping, kind: str = "") -> tuple[float, float]:
    """Overlapping area and smoothed ``KL(reference ‖ generated)`` of two count histograms (NaN when either is
    empty); ``kind`` fixes the bins of ``pitch_class`` and ``interval``, else they are the union of both keys."""
    bins = _bins(kind, reference, generated)
    p, q = _normalised(reference, bins), _normalised(generated, bins)
    if p is None or q is None:
        return math.nan, math.nan
    overlap = float(np.minimum(p, q).sum())
    ps = (p + KL_EPSILON) / (1 + len(bins) * KL_EPSILON)
    qs = (q + KL_EPSILON) / (1 + len(bins) * KL_EPSILON)
    return min(overlap, 1.0), max(float(np.sum(ps * np.log(ps / qs))), 0.0)


def tonic_triad(chorale: Chorale) -> set[int]:
    """Pitch classes of the tonic triad of the chorale's key (minor third for minor-like modes)."""
    tonic = midi_number(chorale.key_tonic) % 12
    third = 3 if chorale.mode in MINOR_THIRD_MODES else 4
    return {tonic, (tonic + third) % 12, (tonic + 7) % 12}


def pitch_range(chorale: Chorale) -> float:
    numbers = [midi_number(e.pitch) for e in chorale.notes]
    return float(max(numbers) - min(numbers)) if numbers else math.nan


def phrase_endings(chorale: Chorale) -> tuple[int, int]:
    """``(phrases, of them ending on a tonic-triad tone)``: a phrase ends at each (merged) note with a fermata."""
    triad = tonic_triad(chorale)
    endings = [midi_number(p) % 12 for p, _, fermata in merged_notes(chorale) if fermata]
    return len(endings), sum(pc in triad for pc in endings)


def ends_on_tonic(chorale: Chorale) -> bool:
    notes = merged_notes(chorale)
    return bool(notes) and midi_number(notes[-1][0]) % 12 == midi_number(chorale.key_tonic) % 12


# --- copying --------------------------------------------------------------------------------------------------------

class CopyIndex:
    """The training sequences, indexed for :meth:`longest_copy` (a suffix automaton of all sequences joined by
    distinct separators, so a match never spans two sequences) and :meth:`window_fraction` (a set of 8-note
    windows). Build it once and pass it to :func:`sample_metrics` for many sample sets."""

    def __init__(self, training_tokens: Iterable[Sequence[str]], window: int = WINDOW) -> None:
        self.window = window
        self._ids: dict[str, int] = {}
        self._next: list[dict[int, int]] = [{}]
        self._link: list[int] = [-1]
        self._len: list[int] = [0]
        self._last = 0
        self.windows: set[tuple[str, ...]] = set()
        separator = -1
        for tokens in training_tokens:
            body = _strip_markers(tokens)
            for token in body:
                self._extend(self._ids.setdefault(token, len(self._ids)))
            self._extend(separator)
            separator -= 1
            self.windows.update(note_windows(body, window))

    def _extend(self, symbol: int) -> None:
        """Standard online suffix-automaton construction (one symbol)."""
        nxt, link, length = self._next, self._link, self._len
        current = len(nxt)
        nxt.append({})
        length.append(length[self._last] + 1)
        link.append(0)
        state = self._last
        while state != -1 and symbol not in nxt[state]:
            nxt[state][symbol] = current
            state = link[state]
        if state != -1:
            target = nxt[state][symbol]
            if length[state] + 1 == length[target]:
                link[current] = target
            else:
                clone = len(nxt)
                nxt.append(dict(nxt[target]))
                length.append(length[state] + 1)
                link.append(link[target])
                while state != -1 and nxt[state].get(symbol) == target:
                    nxt[state][symbol] = clone
                    state = link[state]
                link[target] = clone
                link[current] = clone
        self._last = current

    def longest_copy(self, tokens: Sequence[str]) -> int:
        """Length of the longest run of consecutive tokens of ``tokens`` (markers removed) found in one training
        sequence."""
        state, matched, best = 0, 0, 0
        for token in _strip_markers(tokens):
            symbol = self._ids.get(token)
            if symbol is None:
                state, matched = 0, 0
                continue
            while state != 0 and symbol not in self._next[state]:
                state = self._link[state]
                matched = self._len[state]
            if symbol in self._next[state]:
                state = self._next[state][symbol]
                matched += 1
            best = max(best, matched)
        return best

    def window_fraction(self, tokens: Sequence[str]) -> float:
        """Fraction of the 8-note windows of ``tokens`` found in the training set; NaN with fewer than 8 notes."""
        windows = note_windows(tokens, self.window)
        return sum(w in self.windows for w in windows) / len(windows) if windows else math.nan


def _strip_markers(tokens: Sequence[str]) -> list[str]:
    return [t for t in tokens if t not in (BEGIN, END)]


def note_windows(tokens: Sequence[str], window: int = WINDOW) -> list[tuple[str, ...]]:
    """All windows of ``window`` consecutive note tokens (pitch and duration, ``~`` dropped; other tokens
    skipped)."""
    notes = [body for body in map(note_body, tokens) if body is not None]
    return [tuple(notes[i:i + window]) for i in range(len(notes) - window + 1)]


# --- all together ---------------------------------------------------------------------------------------------------

def _mean(values: Iterable[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def in_found_keys(chorales: Sequence[Chorale], profiles: KeyProfiles) -> tuple[list[Chorale], float]:
    """The chorales moved to their found keys (:func:`rnnmem.lm.keys.to_found_key`; one without notes as it is)
    and the fraction of those with a key whose found tonic is not c (NaN when none has a key)."""
    found = [to_found_key(c, profiles) for c in chorales]
    shifts = [key.shift for _, key in found if key is not None]
    return [c for c, _ in found], _mean(float(s != 0) for s in shifts)


def sample_metrics(samples: Sequence[Chorale], sample_tokens: Sequence[Sequence[str]], reference: Sequence[Chorale],
                   training_tokens: Sequence[Sequence[str]] | CopyIndex,
                   profiles: KeyProfiles | None = None) -> dict[str, float]:
    """The metrics of one sample set (``samples[i]`` parsed from ``sample_tokens[i]``) against ``reference``:

    ``melodies``, ``notes_per_melody``, ``ended`` (fraction of token lists ending with ``</s>``);
    ``<kind>_overlap`` and ``<kind>_kl`` for kind in :data:`HISTOGRAMS`; ``pitch_range`` (mean, semitones);
    ``bars_filled`` (fraction of all bars), ``phrases_per_melody``, ``phrase_end_tonic_triad`` (fraction of all
    phrase endings), ``ends_on_tonic``; ``copy_longest_run_mean`` / ``_max`` (tokens), ``copy_window8_fraction``
    (mean over the samples with at least 8 notes). NaN where undefined (no notes, no fermata, …).

    With ``profiles`` the samples and the reference are first moved to their found keys (see the module; pass the
    profiles of the training chorales, :func:`rnnmem.lm.keys.key_profiles`), and ``key_shift_nonzero`` (the
    samples' fraction found in another key than c) is added last; without them (None) the declared keys are used.
    """
    if len(samples) != len(sample_tokens):
        raise ValueError(f"{len(samples)} samples but {len(sample_tokens)} token lists")
    index = training_tokens if isinstance(training_tokens, CopyIndex) else CopyIndex(training_tokens)
    shifted = math.nan
    if profiles is not None:
        samples, shifted = in_found_keys(samples, profiles)
        reference = in_found_keys(reference, profiles)[0]
    result: dict[str, float] = {
        "melodies": float(len(samples)),
        "notes_per_melody": _mean(float(len(merged_notes(c))) for c in samples),
        "ended": _mean(float(bool(t) and t[-1] == END) for t in sample_tokens),
    }
    for kind in HISTOGRAMS:
        overlap, kl = overlap_and_kl(histogram(reference, kind), histogram(samples, kind), kind)
        result[f"{kind}_overlap"], result[f"{kind}_kl"] = overlap, kl
    result["pitch_range"] = _mean(pitch_range(c) for c in samples)
    checks = [check for c in samples for check in check_bars(c.events, list(c.time_signatures))]
    result["bars_filled"] = sum(c.ok for c in checks) / len(checks) if checks else math.nan
    phrases = [phrase_endings(c) for c in samples]
    total = sum(n for n, _ in phrases)
    result["phrases_per_melody"] = total / len(samples) if samples else math.nan
    result["phrase_end_tonic_triad"] = sum(k for _, k in phrases) / total if total else math.nan
    result["ends_on_tonic"] = _mean(float(ends_on_tonic(c)) for c in samples)
    runs = [index.longest_copy(t) for t in sample_tokens]
    result["copy_longest_run_mean"] = _mean(float(r) for r in runs)
    result["copy_longest_run_max"] = float(max(runs)) if runs else math.nan
    result["copy_window8_fraction"] = _mean(index.window_fraction(t) for t in sample_tokens)
    if profiles is not None:
        result["key_shift_nonzero"] = shifted
    return result


def reference_metrics(reference: Sequence[Chorale], reference_tokens: Sequence[Sequence[str]],
                      training_tokens: Sequence[Sequence[str]] | CopyIndex,
                      profiles: KeyProfiles | None = None) -> dict[str, float]:
    """:func:`sample_metrics` of the reference set itself, its histogram distances (trivially 1 and 0) set to NaN:
    the Bach baseline of the scalar and copy metrics (held-out chorales against the training split); pass the
    same ``profiles`` as to the sample sets so the baseline is measured in found keys too."""
    result = sample_metrics(reference, reference_tokens, reference, training_tokens, profiles)
    for kind in HISTOGRAMS:
        result[f"{kind}_overlap"] = result[f"{kind}_kl"] = math.nan
    return result


def metrics_table(results: Iterable[tuple[str, float | None, Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per ``(model, temperature, metrics)``: columns ``model``, ``temperature`` (NaN for a reference
    such as ``"Bach (held-out)"``), then the metrics in the order of the first result."""
    rows = [{"model": model, "temperature": math.nan if temperature is None else float(temperature), **metrics}
            for model, temperature, metrics in results]
    return pd.DataFrame(rows)
