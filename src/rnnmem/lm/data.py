"""The chorale token sequences the language models train on, and their padding into minibatches.

``tokens.jsonl`` (written by rnnmem.chorales.dataset) holds one chorale per line: ``number, bwv, split, tokens,
ids``; ``vocab.json`` the token of every id (``0 = <unk>``, ``1 = <s>``, ``2 = </s>``). A *note token* is a token
that starts with a pitch letter ``a``–``g`` (``c'4``, ``fis''8.``): rests (``r4``), bar lines (``|``), fermata
markers (``\\``) and the sequence markers are not notes. Notes are counted on the original tokens, so a note
outside the vocabulary (id ``<unk>``) still counts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnmem.core.errors import RnnmemError

SPLITS = ("train", "valid", "test")
BEGIN, END = "<s>", "</s>"  # as rnnmem.chorales.dataset writes them (not imported: that module loads pandas)
NOTE_LETTERS = frozenset("abcdefg")
PAD_TARGET = -1  # target of a padded step: ignored by every loss and metric
PAD_ID = 0  # input id of a padded step (its outputs are never scored)


class TokenDataError(RnnmemError, ValueError):
    """The token files are missing or malformed; the message names the file."""


def is_note(token: str) -> bool:
    """Whether ``token`` is a note (starts with a pitch letter), not a rest, bar line, fermata or marker."""
    return token[:1] in NOTE_LETTERS


@dataclass
class TokenData:
    """Per split (``train``, ``valid``, ``test``): the id sequences, chorale numbers and note counts."""

    vocab: list[str]
    ids: dict[str, list[list[int]]]
    numbers: dict[str, list[int]]
    notes: dict[str, list[int]]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def predicted_tokens(self, split: str) -> int:
        """Tokens a model predicts in ``split``: every token after the first (``<s>``) of each chorale."""
        return sum(len(seq) - 1 for seq in self.ids[split])


def load_vocab(vocab_path: str | Path) -> list[str]:
    """Read ``vocab.json``: a JSON list of distinct token strings holding the ``<s>`` and ``</s>`` markers.

    Raises :class:`TokenDataError` naming the file (a missing file too: the CLI prints one line, not a traceback).
    """
    vocab_path = Path(vocab_path)
    try:
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise TokenDataError(f"{vocab_path}: cannot read the vocabulary ({reason})") from error
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise TokenDataError(f"{vocab_path}: expected a JSON list of tokens")
    if len(set(vocab)) != len(vocab):
        duplicate = next(t for t in vocab if vocab.count(t) > 1)
        raise TokenDataError(f"{vocab_path}: token {duplicate!r} is listed twice")
    missing = [marker for marker in (BEGIN, END) if marker not in vocab]
    if missing:
        raise TokenDataError(f"{vocab_path}: the markers {missing} are missing")
    return vocab


def load_token_data(tokens_path: str | Path, vocab_path: str | Path) -> TokenData:
    """Read ``tokens.jsonl`` and ``vocab.json`` (:func:`load_vocab`); errors name the file and line at fault."""
    tokens_path = Path(tokens_path)
    vocab = load_vocab(vocab_path)
    ids: dict[str, list[list[int]]] = {s: [] for s in SPLITS}
    numbers: dict[str, list[int]] = {s: [] for s in SPLITS}
    notes: dict[str, list[int]] = {s: [] for s in SPLITS}
    try:
        lines = tokens_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise TokenDataError(f"{tokens_path}: cannot read the token sequences ({reason})") from error
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            split, seq, tokens = row["split"], [int(i) for i in row["ids"]], row["tokens"]
            number = int(row["number"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise TokenDataError(f"{tokens_path}:{line_number}: not a chorale record ({error})") from error
        if split not in ids:
            raise TokenDataError(f"{tokens_path}:{line_number}: unknown split {split!r}")
        if len(seq) != len(tokens) or len(seq) < 2 or any(not 0 <= i < len(vocab) for i in seq):
            raise TokenDataError(f"{tokens_path}:{line_number}: ids do not match the tokens or the vocabulary")
        ids[split].append(seq)
        numbers[split].append(number)
        notes[split].append(sum(is_note(t) for t in tokens))
    return TokenData(vocab, ids, numbers, notes)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs ``seq[:-1]`` and targets ``seq[1:]`` of each sequence, right-padded to the longest.

    Returns ``(inputs (B, T) long padded with pad_id, targets (B, T) long padded with -1, lengths (B,))`` where
    ``lengths`` counts the predicted tokens of each sequence and ``T = max(lengths)``. The recurrence is causal,
    so padding after a sequence's end never changes its outputs; the -1 targets drop the padded steps from losses.
    """
    if not seqs:
        raise ValueError("pad_batch needs at least one sequence")
    lengths = torch.tensor([len(s) - 1 for s in seqs], dtype=torch.long)
    if int(lengths.min()) < 1:
        raise ValueError("every sequence needs at least two tokens (<s> and one predicted token)")
    steps = int(lengths.max())
    inputs = torch.full((len(seqs), steps), pad_id, dtype=torch.long)
    targets = torch.full((len(seqs), steps), PAD_TARGET, dtype=torch.long)
    for row, seq in enumerate(seqs):
        seq_t = torch.as_tensor(seq, dtype=torch.long)
        inputs[row, : len(seq) - 1] = seq_t[:-1]
        targets[row, : len(seq) - 1] = seq_t[1:]
    return inputs, targets, lengths
