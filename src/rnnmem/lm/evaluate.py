"""Scores of a chorale language model on a set of token sequences.

Every token after the first (``<s>``) of each sequence is predicted, ``</s>`` included. The probabilities are the
softmax of the model's outputs over the whole vocabulary. For models of the seed regime that is *not* what they
were trained for (their raw outputs were fitted to one-hot targets by squared error), so their NLL only says how
well the arg-max structure of those outputs ranks the tokens; their ``squared_error`` is the comparable number.

Returned keys:
  ``sequences, tokens``        chorales scored, tokens predicted;
  ``total_nats, nll``          Σ −ln p(token), and per predicted token;
  ``bits_per_token``           ``nll / ln 2``;  ``perplexity`` ``exp(nll)``;  ``total_bits`` ``total_nats / ln 2``;
  ``notes, bits_per_note``     note tokens in the chorales (when ``notes`` is given) and total bits / total notes
                               (each chorale's bits, markers, bar lines and rests included, over its notes; NaN
                               without ``notes``);
  ``squared_error``            per chorale, Σ_t Σ_v (y_tv − 1[v = w_t])² of the raw output vector y (the report's
                               660 / 134 measure for seed-regime models; for modern models y are logits, so the
                               number is reported but not meaningful), averaged over the chorales;
  ``squared_error_softmax``    the same with y = softmax(outputs) (the Brier score summed over the chorale),
                               comparable across regimes;
  ``accuracy``                 share of predicted tokens whose arg-max output is the right token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from rnnmem.lm.data import PAD_ID, PAD_TARGET, pad_batch


@torch.no_grad()
def evaluate_lm(
    model: nn.Module,
    sequences: Sequence[Sequence[int]],
    device: torch.device | str | None = None,
    notes: Sequence[int] | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Score ``model`` (ids (B, T) -> outputs (B, T, V)) on ``sequences`` in eval mode; see the module doc.

    ``device``: where the batches go (the model's device by default); ``notes[i]``: note tokens of sequence i.
    """
    if not sequences:
        raise ValueError("no sequences to evaluate")
    if notes is not None and len(notes) != len(sequences):
        raise ValueError(f"{len(notes)} note counts for {len(sequences)} sequences")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))  # similar lengths: little padding
    nats = [0.0] * len(sequences)
    squared = [0.0] * len(sequences)
    squared_soft = [0.0] * len(sequences)
    correct = 0
    try:
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            inputs, targets, _ = pad_batch([sequences[i] for i in index], PAD_ID)
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = model(inputs).double()
            valid = targets != PAD_TARGET
            safe = targets.clamp(min=0)
            logp = torch.log_softmax(outputs, dim=-1)
            token_nats = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1) * valid
            onehot = nn.functional.one_hot(safe, outputs.shape[-1]).to(outputs.dtype)
            sq = (((outputs - onehot) ** 2).sum(-1) * valid).sum(-1)
            sq_soft = (((logp.exp() - onehot) ** 2).sum(-1) * valid).sum(-1)
            correct += int(((outputs.argmax(-1) == targets) & valid).sum())
            for row, i in enumerate(index):
                nats[i] = float(token_nats[row].sum())
                squared[i], squared_soft[i] = float(sq[row]), float(sq_soft[row])
    finally:
        model.train(was_training)
    tokens = sum(len(s) - 1 for s in sequences)
    total_nats = math.fsum(nats)
    nll = total_nats / tokens
    total_bits = total_nats / math.log(2)
    total_notes = int(sum(notes)) if notes is not None else 0
    return {
        "sequences": len(sequences),
        "tokens": tokens,
        "total_nats": total_nats,
        "nll": nll,
        "bits_per_token": nll / math.log(2),
        "perplexity": math.exp(nll) if nll < 700 else math.inf,
        "total_bits": total_bits,
        "notes": total_notes,
        "bits_per_note": total_bits / total_notes if total_notes else math.nan,
        "squared_error": math.fsum(squared) / len(sequences),
        "squared_error_softmax": math.fsum(squared_soft) / len(sequences),
        "accuracy": correct / tokens,
    }
