"""Tokens, tune groups, splits and the written data set of the chorale sopranos (report §3.2).

Every chorale (already transposed to C) becomes the token list ``[BEGIN, *figure-20 tokens, END]``. ``BEGIN`` and
``END`` are the report's ⊙ (start of a chorale) and ⊗ (end of a chorale) markers, written ``<s>`` and ``</s>`` here
so that the files stay plain ASCII; ``UNK`` stands for a token that the training split never contains.

Bach harmonised many melodies several times, so a test chorale whose tune is also in the training split would
measure memorisation, not generalisation. :func:`tune_groups` therefore groups the settings of one tune and
:func:`split_groups` keeps each group inside one split.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from fractions import Fraction
from functools import cache
from itertools import combinations, pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from rnnmem.chorales import events
from rnnmem.chorales.events import Chorale, ChoraleError
from rnnmem.chorales.store import read_chorales
from rnnmem.core.atomic import write_csv, write_json, write_text
from rnnmem.lm.settings import regime_shifts

BEGIN, END, UNK = "<s>", "</s>", "<unk>"  # the report's ⊙ (start) and ⊗ (end) markers, and the unknown token
SPLITS = ("train", "valid", "test")

# Thresholds of tune_groups, read off the 371 chorales of the music21 corpus (Riemenschneider numbering): the
# similarity of two different tunes (below) stays under 0.64, settings of one tune mostly score 0.75 or more, and
# every pair between 0.64 and 0.75 is one tune (e.g. the two tonus peregrinus settings, 0.71). A pair with the same
# title (see title_key) is one tune from TITLE_SIMILARITY up: settings of one melody under one text reach down to
# 0.55 (repeats written out in only one of them, passing notes), and fewer than 0.1 % of pairs of different tunes
# get there by chance.
DEFAULT_SIMILARITY = 0.7
TITLE_SIMILARITY = 0.55
TITLE_WORDS = 4


# --- tokens -------------------------------------------------------------------------------------------------------

def chorale_tokens(chorale: Chorale) -> list[str]:
    """``[BEGIN, *figure-20 tokens, END]``: one token per note (``e'4.``, ``c''2~`` when tied), ``|``, ``\\``
    after a fermata note, rests (``r4``)."""
    return [BEGIN, *events.figure20_tokens(chorale), END]


# --- melodies -------------------------------------------------------------------------------------------------------

def merged_notes(chorale: Chorale) -> list[tuple[str, Fraction, bool]]:
    """The notes as ``(pitch, duration, fermata)`` with tied notes merged into one note of the summed duration.

    A tie joins a note to the next note event when no rest comes between them and the pitch is the same (bar lines
    are skipped); a tie to anything else is ignored. The merged note has a fermata if any of its parts has one.
    """
    merged: list[tuple[str, Fraction, bool]] = []
    pending: list | None = None  # [pitch, duration, fermata, tie]
    for event in chorale.events:
        if event.kind == "bar":
            continue
        if event.kind == "note" and pending is not None and pending[3] and pending[0] == event.pitch:
            pending[1] += event.duration
            pending[2] = pending[2] or event.fermata
            pending[3] = event.tie
            continue
        if pending is not None:
            merged.append((pending[0], pending[1], pending[2]))
            pending = None
        if event.kind == "note":
            pending = [event.pitch, event.duration, event.fermata, event.tie]
    if pending is not None:
        merged.append((pending[0], pending[1], pending[2]))
    return merged


def melody_key(chorale: Chorale) -> tuple[str, ...]:
    """The pitch sequence (LilyPond names, ties merged; rests, bars and durations ignored) that names the tune."""
    return tuple(p for p, _, _ in merged_notes(chorale))


_STEPS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_ALTER = {"": 0, "is": 1, "isis": 2, "es": -1, "eses": -2}


@cache
def midi_number(name: str) -> int:
    """``c'`` -> 60, ``fis'`` -> 66, ``bes`` -> 58 (LilyPond's c' is middle C)."""
    base = name.rstrip("',")
    if not base or base[0] not in _STEPS or base[1:] not in _ALTER:
        raise ChoraleError(f"not a LilyPond pitch: {name!r}")
    octave = 3 + name.count("'") - name.count(",")
    return 12 * (octave + 1) + _STEPS[base[0]] + _ALTER[base[1:]]


def melody_intervals(key: Sequence[str]) -> tuple[int, ...]:
    """Semitone steps between successive pitches: the melody up to transposition and enharmonic spelling."""
    numbers = [midi_number(p) for p in key]
    return tuple(b - a for a, b in pairwise(numbers))


def drop_repeat(key: Sequence[str]) -> tuple[str, ...] | None:
    """The melody without a written-out repeat of its opening (``A A B`` -> ``A B``), or None if it has none.

    Most chorale tunes are in bar form (Stollen, Stollen, Abgesang); some sources write the repeat out, others use
    a repeat sign, which a soprano without repeat events leaves as ``A B``. The repeat is the longest opening of at
    least a fifth of the melody (and 6 notes) that comes again right after itself, with at most one edit in eight
    notes (a different last note before the repeat, as in a first ending), compared as sounding pitches.
    """
    numbers = [midi_number(p) for p in key]
    n = len(numbers)
    for k in range(n // 2, max(6, n // 5) - 1, -1):
        if numbers[:3] == numbers[k:k + 3] and levenshtein(numbers[:k], numbers[k:2 * k]) <= k // 8:
            return tuple(key[k:])
    return None


def levenshtein(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Exact edit distance (insertions, deletions, substitutions all cost 1) between two sequences.

    Myers' bit-parallel algorithm (Hyyrö's formulation for the global distance), one Python integer as the bit
    vector of a column: about 25 µs for two 50-note melodies, which keeps the all-pairs comparison of 371 chorales
    to a few seconds.
    """
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[Hashable, int] = {}
    for i, symbol in enumerate(b):
        peq[symbol] = peq.get(symbol, 0) | (1 << i)
    full, top = (1 << m) - 1, 1 << (m - 1)
    pv, mv, score = full, 0, m
    for symbol in a:
        eq = peq.get(symbol, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
    return score


def similarity_ratio(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """``1 - levenshtein / max(len)``: 1 for equal sequences, 0 for sequences with nothing in common."""
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - levenshtein(a, b) / longest


def _similarity_bound(a: Sequence[Hashable], b: Sequence[Hashable], count_a: Counter, count_b: Counter) -> float:
    """An upper bound of :func:`similarity_ratio`: an alignment matches at most the common multiset of symbols."""
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    common = sum((count_a & count_b).values())
    return min(common, len(a), len(b)) / longest


def title_key(title: str, words: int = TITLE_WORDS) -> str:
    """The first words of a hymn title, case, accents, apostrophes and punctuation dropped:
    ``"Nun lob’, mein’ Seel’, den Herren"`` -> ``"nun lob mein seel"``."""
    text = unicodedata.normalize("NFKD", title.casefold().replace("ß", "ss"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[’'`´]", "", text)
    return " ".join(re.findall(r"[a-z0-9]+", text)[:words])


def _variants(key: Sequence[str]) -> list[tuple[int, ...]]:
    without_repeat = drop_repeat(key)
    return [melody_intervals(key)] + ([melody_intervals(without_repeat)] if without_repeat is not None else [])


def tune_groups(chorales: Sequence[Chorale], similarity: float = DEFAULT_SIMILARITY) -> list[list[int]]:
    """Chorale numbers grouped by tune; groups (and numbers inside them) sorted by smallest number.

    Two chorales are the same tune when any of these holds, and groups are closed under it (union-find):

    * their :func:`melody_key` is identical;
    * the best :func:`similarity_ratio` of their semitone intervals, each melody taken whole or without a
      written-out repeat of its opening (:func:`drop_repeat`), is at least ``similarity``. Intervals, so a setting
      declared in another key or mode (transposed differently) or spelled enharmonically still matches; it is
      ``1 - levenshtein / longer length``, so 0.7 allows about one changed, added or dropped note in three
      (passing notes, a different rhythm split into more notes, a changed cadence) — see
      :data:`DEFAULT_SIMILARITY` for how it was chosen;
    * their titles start with the same :data:`TITLE_WORDS` words (after :func:`title_key`) and the melodic
      similarity is at least :data:`TITLE_SIMILARITY`: the same hymn text is strong evidence for the same
      tune, but a text can be sung to more than one melody, so the title alone does not group.

    Deterministic: the result depends on the chorales only, not on their order.
    """
    numbers = [c.number for c in chorales]
    if len(set(numbers)) != len(numbers):
        raise ChoraleError("tune_groups: chorale numbers are not unique")
    keys = [melody_key(c) for c in chorales]
    variants = [[(v, Counter(v)) for v in _variants(k)] for k in keys]
    titles = [title_key(c.title) for c in chorales]
    parent = list(range(len(chorales)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def similar(i: int, j: int, needed: float) -> bool:
        return any(_similarity_bound(x, y, cx, cy) >= needed and similarity_ratio(x, y) >= needed
                   for x, cx in variants[i] for y, cy in variants[j])

    for i, j in combinations(range(len(chorales)), 2):
        ri, rj = find(i), find(j)
        if ri == rj:
            continue
        same_title = bool(titles[i]) and titles[i] == titles[j]
        needed = min(similarity, TITLE_SIMILARITY) if same_title else similarity
        if keys[i] == keys[j] or similar(i, j, needed):
            parent[max(ri, rj)] = min(ri, rj)

    members: dict[int, list[int]] = {}
    for index, number in enumerate(numbers):
        members.setdefault(find(index), []).append(number)
    return sorted((sorted(group) for group in members.values()), key=lambda g: g[0])


# --- splits and vocabulary ----------------------------------------------------------------------------------------

def check_split_fractions(valid: float, test: float) -> None:
    """Raise :class:`ChoraleError` naming ``chorales.split`` unless ``valid, test >= 0`` and ``valid + test < 1``."""
    if not (valid >= 0 and test >= 0 and valid + test < 1):
        raise ChoraleError(f"chorales.split: valid={valid} and test={test} must be >= 0 and sum to less than 1 "
                           "(the rest is the training split)")


def check_splits_filled(splits: dict[str, Sequence[int]], groups: Sequence[Sequence[int]], valid: float,
                        test: float) -> None:
    """Raise :class:`ChoraleError` naming ``chorales.split`` when a split that must hold chorales is empty.

    The training split always must; valid and test when their fraction is above 0. Whole tune groups move
    together, so a few chorales of one tune can leave a split empty whatever the fractions.
    """
    needed = {"train": True, "valid": valid > 0, "test": test > 0}
    for name in SPLITS:
        if needed[name] and not splits[name]:
            total = sum(len(g) for g in groups)
            raise ChoraleError(
                f"chorales.split: the {name} split is empty ({total} chorales in {len(groups)} tune groups, "
                f"valid={valid}, test={test}); select more chorales (chorales.numbers) or change the fractions"
            )


def split_groups(groups: Sequence[Sequence[int]], seed: int, valid: float, test: float) -> dict[str, list[int]]:
    """Chorale numbers per split, whole tune groups only.

    The groups are shuffled with ``numpy.random.default_rng(seed)``; each group in turn goes to test if it fits in
    the room left there (``ceil(test * total)`` chorales), else to valid likewise, else to train. With many
    one-chorale groups both targets are met exactly; otherwise a split can end a few chorales short rather than
    overshoot with a large group.
    """
    check_split_fractions(valid, test)
    total = sum(len(g) for g in groups)
    room = {"test": math.ceil(test * total - 1e-9), "valid": math.ceil(valid * total - 1e-9)}
    order = np.random.default_rng(seed).permutation(len(groups))
    splits: dict[str, list[int]] = {name: [] for name in SPLITS}
    for index in order:
        group = list(groups[int(index)])
        name = next((s for s in ("test", "valid") if len(splits[s]) + len(group) <= room[s]), "train")
        splits[name].extend(group)
    return {name: sorted(numbers) for name, numbers in splits.items()}


def build_vocab(token_lists_train: Iterable[Sequence[str]]) -> list[str]:
    """``[UNK, BEGIN, END, *tokens by training frequency (descending), then lexicographically]``."""
    counts = Counter(t for tokens in token_lists_train for t in tokens if t not in (UNK, BEGIN, END))
    return [UNK, BEGIN, END, *sorted(counts, key=lambda t: (-counts[t], t))]


def encode(tokens: Sequence[str], vocab_index: dict[str, int]) -> tuple[list[int], int]:
    """Token ids (a token outside the vocabulary becomes ``UNK``) and the number of such unknown tokens."""
    unk = vocab_index[UNK]
    ids = [vocab_index.get(t, unk) for t in tokens]
    return ids, sum(1 for t in tokens if t not in vocab_index)


# --- transposition augmentation ------------------------------------------------------------------------------------

def extend_vocab(vocab: Sequence[str], token_lists: Iterable[Sequence[str]]) -> list[str]:
    """``vocab`` followed by the tokens of ``token_lists`` it lacks, by descending count, then lexicographically
    (as :func:`build_vocab`): every base id keeps its token, so the base files stay readable with the result."""
    known = set(vocab)
    counts = Counter(t for tokens in token_lists for t in tokens if t not in known)
    return [*vocab, *sorted(counts, key=lambda t: (-counts[t], t))]


def augmented_records(records: Sequence[Mapping], chorales: Mapping[int, Chorale],
                      shifts: Sequence[int]) -> list[dict]:
    """The records of ``tokens.jsonl`` (``shift`` 0), each training one followed by one copy per shift (its chorale
    moved by :func:`rnnmem.chorales.events.transpose_by`, split ``train``, ``shift`` the semitones); ``ids`` are
    left to :func:`write_augmented`. Valid and test records are never copied."""
    out: list[dict] = []
    for record in records:
        out.append({**record, "shift": 0})
        if record["split"] != "train":
            continue
        chorale = chorales[record["number"]]
        for shift in shifts:
            tokens = _tokens_of(events.transpose_by(chorale, shift))
            out.append({"number": record["number"], "bwv": record["bwv"], "split": "train", "tokens": tokens,
                        "shift": shift})
    return out


def read_token_records(tokens: Path) -> list[dict]:
    """The records of a tokens.jsonl file (one chorale's number, split and tokens per line)."""
    return [json.loads(line) for line in Path(tokens).read_text(encoding="utf-8").splitlines() if line.strip()]


def write_augmented(tokens: Path, vocab: Path, transposed: Path, shifts: Sequence[int], out_dir: Path) -> None:
    """Write the transposition-augmented data set, each file atomically:

    * ``tokens.jsonl``: :func:`augmented_records` (``number, bwv, split, tokens, ids, shift``), every record
      re-encoded with the extended vocabulary;
    * ``vocab.json``: :func:`extend_vocab` of the base vocabulary with the augmented training split;
    * ``stats.csv``: ``split, quantity, value``: ``chorales`` and ``tokens`` per split, ``unknown_tokens`` with the
      extended vocabulary and ``unknown_tokens_base`` with the base one (how many the new tokens remove), and for
      ``all`` the ``vocabulary`` and ``vocabulary_base`` sizes.
    """
    shifts = regime_shifts("modern", {"transpose": list(shifts)})  # a ConfigError naming the config key
    base_vocab = json.loads(Path(vocab).read_text(encoding="utf-8"))
    records = read_token_records(tokens)
    chorales = {c.number: c for c in read_chorales(transposed)}
    missing = sorted({r["number"] for r in records if r["split"] == "train"} - set(chorales))
    if missing:
        raise ChoraleError(f"{transposed}: no transposed chorale for the training numbers {missing[:5]}")
    augmented = augmented_records(records, chorales, shifts)
    vocabulary = extend_vocab(base_vocab, (r["tokens"] for r in augmented if r["split"] == "train"))
    index, base_index = {t: i for i, t in enumerate(vocabulary)}, {t: i for i, t in enumerate(base_vocab)}
    rows: list[tuple[str, str, int]] = []
    unknown = {s: 0 for s in SPLITS}
    unknown_base = {s: 0 for s in SPLITS}
    lines = []
    for record in augmented:
        ids, missing_now = encode(record["tokens"], index)
        unknown[record["split"]] += missing_now
        if record["shift"] == 0:
            unknown_base[record["split"]] += encode(record["tokens"], base_index)[1]
        fields = {k: record[k] for k in ("number", "bwv", "split", "tokens")}
        lines.append(json.dumps({**fields, "ids": ids, "shift": record["shift"]}, ensure_ascii=False))
    for name in SPLITS:
        members = [r for r in augmented if r["split"] == name]
        rows += [(name, "chorales", len(members)), (name, "tokens", sum(len(r["tokens"]) for r in members)),
                 (name, "unknown_tokens", unknown[name]), (name, "unknown_tokens_base", unknown_base[name])]
    rows += [("all", "vocabulary", len(vocabulary)), ("all", "vocabulary_base", len(base_vocab))]
    out_dir = Path(out_dir)
    write_text(out_dir / "tokens.jsonl", "".join(line + "\n" for line in lines))
    write_json(out_dir / "vocab.json", vocabulary)
    write_csv(out_dir / "stats.csv", pd.DataFrame(rows, columns=["split", "quantity", "value"]))


# --- statistics and files -----------------------------------------------------------------------------------------

def mode_class(mode: str) -> str:
    """``major``, ``minor``, or ``modal`` for any other declared mode (dorian, phrygian, …)."""
    return mode if mode in ("major", "minor") else "modal"


def dataset_stats(chorales: Sequence[Chorale], splits: dict[str, Sequence[int]],
                  token_lists: Mapping[int, Sequence[str]] | Sequence[Sequence[str]], vocab: Sequence[str],
                  unknowns_per_split: dict[str, int], skipped_count: int,
                  groups: Sequence[Sequence[int]] | None = None) -> pd.DataFrame:
    """Long table ``split, quantity, value`` for ``train``, ``valid``, ``test`` and ``all``.

    ``token_lists`` maps chorale numbers to token lists (or lists them in the order of ``chorales``).
    Quantities: ``chorales``, ``notes`` (note events, each tied part counted), ``tokens`` (with the markers),
    ``unknown_tokens``, ``chorales_major`` / ``_minor`` / ``_modal``, ``tune_groups`` (groups with a chorale in the
    split; ``groups`` defaults to the tune groups of ``chorales``); for ``all`` only: ``vocabulary`` and
    ``skipped_files``.
    """
    by_number = {c.number: c for c in chorales}
    if not isinstance(token_lists, Mapping):  # one token list per chorale, in the order of `chorales`
        token_lists = {c.number: tokens for c, tokens in zip(chorales, token_lists, strict=True)}
    if groups is None:
        groups = tune_groups(chorales)
    group_of = {number: g for g, members in enumerate(groups) for number in members}
    rows: list[tuple[str, str, int]] = []
    everything = sorted(by_number)
    for name, numbers in [*((s, list(splits.get(s, []))) for s in SPLITS), ("all", everything)]:
        members = [by_number[n] for n in numbers]
        rows.append((name, "chorales", len(members)))
        rows.append((name, "notes", sum(len(c.notes) for c in members)))
        rows.append((name, "tokens", sum(len(token_lists[c.number]) for c in members)))
        counted = SPLITS if name == "all" else (name,)
        rows.append((name, "unknown_tokens", sum(unknowns_per_split.get(s, 0) for s in counted)))
        modes = Counter(mode_class(c.mode) for c in members)
        rows.extend((name, f"chorales_{m}", modes.get(m, 0)) for m in ("major", "minor", "modal"))
        rows.append((name, "tune_groups", len({group_of[n] for n in numbers if n in group_of})))
    rows.append(("all", "vocabulary", len(vocab)))
    rows.append(("all", "skipped_files", skipped_count))
    return pd.DataFrame(rows, columns=["split", "quantity", "value"])


def text_file_name(chorale: Chorale) -> str:
    """``<NNN>_bwv<BWV>.txt``, NNN the zero-padded number; the BWV keeps digits, letters and dots, any other run
    of characters becomes ``-`` (``248/12-2`` -> ``248-12-2``): ``086_bwv86.6.txt``, ``010_bwv248-12-2.txt``."""
    bwv = re.sub(r"^bwv\s*", "", chorale.bwv.strip(), flags=re.IGNORECASE)
    bwv = re.sub(r"[^0-9A-Za-z.]+", "-", bwv).strip(".-") or "unknown"
    return f"{chorale.number:03d}_bwv{bwv}.txt"


TEXT_FILE = re.compile(r"^\d{3,}_bwv.*\.txt$")


def _tokens_of(chorale: Chorale) -> list[str]:
    try:
        return chorale_tokens(chorale)
    except ChoraleError as error:
        raise ChoraleError(f"chorale {chorale.number} (BWV {chorale.bwv}): {error}") from error


def write_dataset(chorales: Sequence[Chorale], out_dir: Path, seed: int, valid: float, test: float,
                  skipped_count: int, similarity: float = DEFAULT_SIMILARITY) -> None:
    """Write the data set of transposed chorales, each file atomically:

    * ``text/<NNN>_bwv<BWV>.txt``: the figure-20 text, one line (see :func:`text_file_name`); stale files of that
      pattern from an earlier run are removed;
    * ``tokens.jsonl``: per chorale (by number) ``number, bwv, split, tokens, ids``;
    * ``vocab.json``: the token list, index = id (from the training split, :func:`build_vocab`);
    * ``splits.json``: ``train``, ``valid``, ``test`` numbers, the tune ``groups``, ``seed``, fractions and
      ``similarity``;
    * ``stats.csv``: :func:`dataset_stats`.
    """
    out_dir = Path(out_dir)
    check_split_fractions(valid, test)
    chorales = sorted(chorales, key=lambda c: c.number)
    for c in chorales:
        if c.transposed_from is None and c.key_tonic != "c":
            raise ChoraleError(f"chorale {c.number} (BWV {c.bwv}) is not transposed to C")
    groups = tune_groups(chorales, similarity)
    splits = split_groups(groups, seed, valid, test)
    check_splits_filled(splits, groups, valid, test)
    split_of = {n: name for name, numbers in splits.items() for n in numbers}
    token_lists = {c.number: _tokens_of(c) for c in chorales}
    vocab = build_vocab(token_lists[n] for n in splits["train"])
    index = {t: i for i, t in enumerate(vocab)}

    text_dir = out_dir / "text"
    names = set()
    for c in chorales:
        name = text_file_name(c)
        names.add(name)
        write_text(text_dir / name, events.figure20_text(c) + "\n")
    for stale in text_dir.glob("*.txt"):
        if TEXT_FILE.match(stale.name) and stale.name not in names:
            stale.unlink()

    unknowns = dict.fromkeys(SPLITS, 0)
    lines = []
    for c in chorales:
        ids, unknown = encode(token_lists[c.number], index)
        unknowns[split_of[c.number]] += unknown
        record = {"number": c.number, "bwv": c.bwv, "split": split_of[c.number], "tokens": token_lists[c.number],
                  "ids": ids}
        lines.append(json.dumps(record, ensure_ascii=False))
    write_text(out_dir / "tokens.jsonl", "".join(line + "\n" for line in lines))
    write_json(out_dir / "vocab.json", vocab)
    write_json(out_dir / "splits.json", {**splits, "groups": groups, "seed": seed, "valid_fraction": valid,
                                         "test_fraction": test, "similarity": similarity})
    stats = dataset_stats(chorales, splits, token_lists, vocab, unknowns, skipped_count, groups)
    write_csv(out_dir / "stats.csv", stats)
