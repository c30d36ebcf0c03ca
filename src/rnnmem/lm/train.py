"""Training the chorale language models in two regimes, with exact resumption from checkpoints.

``seed``   the report's annex A.3 loop (§3.2–3.3): one-hot input, N(0, 1) weights, biases zero (``bias: zero``, the
           report's annex code) or N(0, 1) (``bias: normal``), the raw output vector trained against the one-hot next
           token by the squared error summed over the chorale (Σ_t Σ_v (y_tv − 1[v=w_t])², the quantity the report
           quotes: 660 for Vanilla, 134 for LSTM), one plain SGD step per chorale in an order shuffled every epoch, the
           learning rate divided by ``lr_divisor`` when the epoch's mean error rises, stop when that mean changes by
           less than ``tolerance``, or after ``max_epochs``. The returned model is the last one. With N(0, 1) weights
           the gradient through time can overflow (the report's GRU does within one chorale, at any learning rate): a
           step whose loss or gradient is not finite is not applied and ends training ("diverged", in both regimes), the
           epoch's row covering the steps run.
``modern`` learned embedding, cross-entropy (mean nats per predicted token of the minibatch), Adam, dropout before
           the read-out, global gradient-norm clipping, minibatches of ``batch_size`` padded chorales in an order
           shuffled every epoch, ReduceLROnPlateau on the validation NLL (× ``lr_factor`` after ``lr_patience``
           epochs without improvement), early stopping after ``patience`` such epochs. The returned model is the
           one with the best validation NLL.

Checkpoints (every ``checkpoint_every`` optimizer steps, at the end of every epoch, and when training ends) hold
the model, optimizer and scheduler states, every RNG state (torch CPU and CUDA, the numpy Generator that shuffles,
python's ``random``), the position in the epoch and its order, the running sums of the epoch, the learning curve,
the best weights, and the vocabulary the model reads (its tokens, in id order). They are plain tensors and Python
values (``torch.load(weights_only=True)`` reads them), written atomically, with the same bytes for the same state
(:mod:`rnnmem.core.tensor_files`), and verified when read (the zip CRC-32 of every member and the archive's
structure): a damaged file raises CheckpointError naming it. :func:`train_lm` resumes from an existing
checkpoint of the same run and ends with the same weights, bit for bit, as an uninterrupted run on the same
device (only the timing columns differ).

A run's *identity* is what its result depends on: model kind, hidden size, regime, every setting except
``checkpoint_every``, seed, a digest of the vocabulary and one of the training and validation ids, and the
checkpoint format. With ``checkpoint_dir`` the checkpoint is ``<checkpoint_dir>/<SHA-256 of the identity>.ckpt``
(:func:`checkpoint_path`), so a run whose settings or data changed never meets the checkpoint of another, and
switching a setting back finds its own. ``max_epochs`` is no part of the identity: a finished run asked for more
epochs goes on from its checkpoint (what a run with that many epochs from the start gives); a checkpoint already
past ``max_epochs`` is set aside and the run starts afresh.

The learning curve has one row per epoch:
  ``epoch``
  ``train_nll``            nats per predicted token, running mean over the epoch's training steps (with dropout in
                           the modern regime; softmax of the raw outputs in the seed regime, not what it trains);
  ``valid_nll``            the same on the validation chorales, after the epoch, in eval mode;
  ``train_squared_error``  per chorale, Σ over its steps and the vocabulary of (prediction − one-hot)², running mean
                           over the epoch; the prediction is the raw output vector in the seed regime (the report's
                           measure, what that regime minimises) and the softmax probabilities in the modern regime
                           (whose raw outputs are logits);
  ``valid_squared_error``  the same on the validation chorales;
  ``lr``                   the learning rate used during the epoch;
  ``seconds``              wall time of the epoch, validation included;
  ``train_seconds``        the training steps alone: batching, forward, backward, update, checkpoints;
  ``compute_seconds``      forward + loss + backward alone (``train_seconds / compute_seconds``: the loop's overhead);
  ``steps, tokens``        optimizer steps and predicted tokens of the epoch.
A resumed epoch's time columns cover the part run after the resumption.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from rnnmem.core import tensor_files
from rnnmem.core.errors import RnnmemError
from rnnmem.core.progress import progress
from rnnmem.core.runtime import pick_device
from rnnmem.lm.data import PAD_ID, PAD_TARGET, TokenData, TokenDataError, pad_batch
from rnnmem.lm.evaluate import evaluate_lm
from rnnmem.lm.model import TokenLM
from rnnmem.lm.settings import ModernSettings, RegimeSettings, SeedSettings, identity_settings

CHECKPOINT_FORMAT = 2  # 2: the vocabulary's tokens are stored; files written byte-deterministically
# Part of a run's identity, raised whenever the training arithmetic changes, so that a checkpoint written by older
# code is never resumed into, nor returned as, this code's result. 2: the modern regime's recurrence compiled on
# the CPU, read-out and dropout at the predicted steps only.
TRAINING_ARITHMETIC = 2
CHECKPOINT_SUFFIX = ".ckpt"

TIMING_KEYS = ("seconds", "train_seconds", "compute_seconds")  # wall-clock times: in checkpoints, not model files
CURVE_COLUMNS = ("epoch", "train_nll", "valid_nll", "train_squared_error", "valid_squared_error", "lr", "seconds",
                 "train_seconds", "compute_seconds", "steps", "tokens")

StepHook = Callable[[TokenLM, int], None]
"""Called after every optimizer step (and any checkpoint it writes) with the model and the steps done so far."""


class CheckpointError(RnnmemError, RuntimeError):
    """A checkpoint cannot be read or belongs to another run; the message names the file."""


class VocabularyMismatchError(RnnmemError, ValueError):
    """A vocabulary file is not the one a model was trained with; the message names both files."""


class TrainingStopped(RuntimeError):
    """Raised when ``stop_after_steps`` is reached; the checkpoint written just before lets a later call resume."""

    def __init__(self, steps: int, checkpoint: Path) -> None:
        super().__init__(f"stopped after {steps} steps as asked; checkpoint {checkpoint}")
        self.steps, self.checkpoint = steps, checkpoint


def build_model(kind: str, vocab: int, hidden: int, settings: RegimeSettings, seed: int) -> TokenLM:
    """The untrained model of a run: seed regime one-hot input, no dropout, N(0, 1) weights (``init: normal``),
    biases zero or N(0, 1) (``bias``); modern regime embedding, dropout, U(±1/√H) weights (``init: uniform``)."""
    dropout = settings.dropout if isinstance(settings, ModernSettings) else 0.0
    return TokenLM(kind, vocab, hidden, settings.embedding, dropout, settings.activation, settings.init, seed,
                   zero_bias=settings.zero_bias)


def _stored_model(identity: dict[str, Any], vocab: int) -> TokenLM:
    """The untrained model of the run a checkpoint's identity describes (its stored settings, not the config's).
    Settings without ``bias`` (the modern regime, or a checkpoint written before the key existed) drew biases."""
    stored = identity["settings"]
    return TokenLM(identity["kind"], vocab, identity["hidden"], stored.get("embedding"), stored.get("dropout", 0.0),
                   stored["activation"], stored["init"], identity["seed"], zero_bias=stored.get("bias") == "zero")


@dataclass
class _Loop:
    """Everything about the loop's position that a checkpoint must restore (plain Python values)."""

    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0
    global_step: int = 0
    order: list[int] | None = None  # this epoch's chorale order, drawn when the epoch starts
    sums: dict[str, float] = field(default_factory=dict)  # running sums of the epoch
    lr: float = 0.0  # seed regime: the current plain-SGD rate
    previous_error: float = math.inf  # seed regime: the last epoch's mean summed squared error
    best_valid: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stop_reason: str | None = None
    curve: list[dict[str, Any]] = field(default_factory=list)


def _fresh_sums() -> dict[str, float]:
    return dict.fromkeys(("nats", "tokens", "squared_error", "sequences", "steps", "compute_seconds",
                          "train_seconds", "seconds"), 0.0)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()


def _identity(data: TokenData, kind: str, hidden: int, settings: RegimeSettings, seed: int) -> str:
    """What a checkpoint must match to be resumed (JSON): the run's definition, digests of its vocabulary and of
    its training and validation ids, the checkpoint format and the version of the training arithmetic."""
    return json.dumps({"kind": kind, "hidden": hidden, "regime": settings.regime,
                       "settings": identity_settings(settings), "seed": seed,
                       "vocab": _digest(data.vocab), "data": _digest([data.ids["train"], data.ids["valid"]]),
                       "format": CHECKPOINT_FORMAT, "arithmetic": TRAINING_ARITHMETIC}, sort_keys=True)


def checkpoint_path(checkpoint_dir: str | Path, data: TokenData, kind: str, hidden: int, settings: RegimeSettings,
                    seed: int) -> Path:
    """The checkpoint file of a run in ``checkpoint_dir``: ``<SHA-256 of the run's identity>.ckpt``."""
    identity = _identity(data, kind, hidden, settings, seed)
    return Path(checkpoint_dir) / f"{hashlib.sha256(identity.encode()).hexdigest()}{CHECKPOINT_SUFFIX}"


def _rng_states(numpy_rng: np.random.Generator, device: torch.device) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        "numpy": json.dumps(numpy_rng.bit_generator.state),
        "python": json.dumps(random.getstate()),
    }


def _restore_rng_states(states: dict[str, Any], numpy_rng: np.random.Generator, device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy_rng.bit_generator.state = json.loads(states["numpy"])
    version, internal, gauss = json.loads(states["python"])
    random.setstate((version, tuple(internal), gauss))


def _cpu_state(module_or_state: nn.Module | dict[str, Tensor]) -> dict[str, Tensor]:
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train_lm`; a missing, corrupt or foreign file raises CheckpointError."""
    path = Path(path)
    payload = tensor_files.load(path, CheckpointError, "language-model checkpoint")
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"{path}: not a language-model checkpoint")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {payload['format']}, expected {CHECKPOINT_FORMAT} "
                              "(written by another version of rnnmem; retrain)")
    required = {"format", "identity", "vocab", "model", "optimizer", "scheduler", "rng", "loop", "best_state"}
    if not required <= set(payload):
        raise CheckpointError(f"{path}: not a language-model checkpoint (missing {sorted(required - set(payload))})")
    vocab = payload["vocab"]
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab) or len(vocab) != payload.get(
            "vocab_size"):
        raise CheckpointError(f"{path}: the stored vocabulary is not a list of {payload.get('vocab_size')} tokens")
    return payload


def check_vocabulary(model_path: str | Path, trained: list[str], vocab_path: str | Path) -> list[str]:
    """The tokens of ``vocab_path`` when they are those the model of ``model_path`` was trained with (``trained``),
    in the same order; otherwise VocabularyMismatchError naming both files and the first differing token."""
    vocab_path = Path(vocab_path)
    try:
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenDataError(f"{vocab_path}: cannot read the vocabulary ({error})") from error
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise TokenDataError(f"{vocab_path}: expected a JSON list of tokens")
    if vocab == trained:
        return vocab
    where = f"{vocab_path}: not the vocabulary {model_path} was trained with"
    for index, (ours, theirs) in enumerate(zip(vocab, trained, strict=False)):
        if ours != theirs:
            raise VocabularyMismatchError(f"{where}: token {index} is {ours!r} here, {theirs!r} in the model")
    if len(vocab) < len(trained):
        raise VocabularyMismatchError(f"{where}: {len(vocab)} tokens here, {len(trained)} in the model (token "
                                      f"{len(vocab)}, {trained[len(vocab)]!r}, is missing here)")
    raise VocabularyMismatchError(f"{where}: {len(vocab)} tokens here, {len(trained)} in the model (token "
                                  f"{len(trained)}, {vocab[len(trained)]!r}, is not in the model)")


def write_model(checkpoint: str | Path, model_out: str | Path) -> None:
    """The run's model file: its final checkpoint with the wall-clock times left out (NaN in the learning curve,
    0 in the epoch's sums; they go to the job's log), so that the same run gives the same bytes."""
    payload = load_checkpoint(checkpoint)
    loop = payload["loop"]
    loop["curve"] = [{**row, **dict.fromkeys(TIMING_KEYS, math.nan)} for row in loop["curve"]]
    loop["sums"] = {**loop["sums"], **{key: 0.0 for key in TIMING_KEYS if key in loop["sums"]}}
    tensor_files.save(model_out, payload)


def load_trained(path: str | Path, device: torch.device | str | None = None,
                 vocab_path: str | Path | None = None) -> tuple[TokenLM, pd.DataFrame]:
    """The model :func:`train_lm` returned (best weights for the modern regime, last for the seed regime) and its
    learning curve, rebuilt from the run's final checkpoint. With ``vocab_path``, that vocabulary file must hold
    the tokens the model was trained with (see :func:`check_vocabulary`)."""
    payload = load_checkpoint(path)
    if vocab_path is not None:
        check_vocabulary(path, payload["vocab"], vocab_path)
    try:
        identity = json.loads(payload["identity"])
        model = _stored_model(identity, payload["vocab_size"])
        state = payload["best_state"] if identity["regime"] == "modern" and payload["best_state"] else payload["model"]
        model.load_state_dict(state)
        loop = payload["loop"]
        curve = _curve_frame(loop["curve"], loop)
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: weights do not fit the model ({type(error).__name__}: {error})") from error
    return model.to(torch.device(device) if device is not None else pick_device()), curve


def resumable(payload: dict[str, Any], max_epochs: int, path: str | Path) -> bool:
    """Whether a checkpoint of the same identity can go on to ``max_epochs``: it has not trained past them (a
    checkpoint inside epoch ``max_epochs + 1`` has). ``path`` is the file the messages name."""
    try:
        epoch, order = payload["loop"]["epoch"], payload["loop"]["order"]
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: no training position ({type(error).__name__}: {error})") from error
    return epoch < max_epochs or (epoch == max_epochs and order is None)


def _curve_frame(rows: list[dict[str, Any]], loop: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    frame.attrs.update(stop_reason=loop["stop_reason"], best_epoch=loop["best_epoch"],
                       best_valid_nll=loop["best_valid"], steps=loop["global_step"])
    return frame


def _losses(outputs: Tensor, targets: Tensor, regime: str, sequences: int) -> tuple[Tensor, Tensor, Tensor, int]:
    """(loss to minimise, total nats, summed squared error over the batch, predicted tokens) of the outputs (N, V)
    at the batch's N predicted steps and their targets (N,); ``sequences``: the chorales in the batch."""
    count = int(targets.shape[0])
    if regime == "seed":
        onehot = nn.functional.one_hot(targets, outputs.shape[-1]).to(outputs.dtype)
        sq = ((outputs - onehot) ** 2).sum()  # Σ over the batch's chorales of their summed squared error
        with torch.no_grad():
            nats = nn.functional.cross_entropy(outputs, targets, reduction="sum")
        return sq / sequences, nats, sq.detach(), count
    nats = nn.functional.cross_entropy(outputs, targets, reduction="sum")
    with torch.no_grad():  # Σ_v (p_v − [v = target])² = Σ_v p_v² − 2 p_target + 1, without a one-hot tensor
        p = torch.softmax(outputs, dim=-1)
        sq = (p.square().sum(-1) - 2 * p.gather(-1, targets[:, None])[:, 0] + 1).sum()
    return nats / max(count, 1), nats.detach(), sq, count


def _finite_gradients(params: list[nn.Parameter]) -> bool:
    """Whether every gradient entry is finite: the fast fused 2-norms first, entry by entry only when one is not
    finite (a float32 norm of large but finite entries can overflow, which is no divergence)."""
    grads = [p.grad for p in params]
    if bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
        return True
    return all(bool(torch.isfinite(g).all()) for g in grads)


class _CompiledSeedStep:
    """Forward, squared-error loss and backward of one chorale (the seed regime) by the compiled kernels of
    :mod:`rnnmem.core.compiled`; the same gradient as autograd (tested), several times faster for the report's
    small cells, whose time torch spends in per-operation overhead. CPU, one-hot input. The weights go to the
    kernel in its (member, in, out) layout (views of the report's cells; transposed copies of torch's fused LSTM
    and of the read-out), and the gradient comes back into ``p.grad``."""

    def __init__(self, model: TokenLM) -> None:
        from rnnmem.core import compiled

        assert model.embedding is None
        self.kernel = compiled.loss_and_grads
        self.model = model
        if model.cell is not None:
            kind, activation = model.cell.kind, model.cell.activation
            self.recurrent = [model.cell.weight_ih, model.cell.weight_hh, model.cell.bias]
        else:  # torch's fused LSTM: gates i, f, g, o as the report's; its second bias is 0 and frozen
            kind, activation = "lstm", "logistic"
            fused = model.fused
            self.recurrent = [fused.weight_ih_l0, fused.weight_hh_l0, fused.bias_ih_l0]
        self.codes = (compiled.KIND_CODES[kind], compiled.ACTIVATION_CODES[activation],
                      compiled.LOSS_CODES["squared_error"])
        self.trained = [*self.recurrent, model.readout.weight, model.readout.bias]
        fused = model.cell is None  # torch's (out, in) matrices travel transposed; the cells' are in kernel layout
        self.transposed = [fused and p.dim() == 2 for p in self.recurrent] + [True, False]
        for p in self.trained:
            p.grad = torch.zeros_like(p)
        self.grads = [np.zeros_like(array) for array in self._arrays()]
        dtype = self.grads[0].dtype
        self.losses, self.nats = np.zeros(1, dtype), np.zeros(1, dtype)

    def _arrays(self) -> list[np.ndarray]:
        """The five weights in the kernel's layout: (1, I, G*H), (1, H, G*H), (1, 1, G*H), (1, H, V), (1, 1, V)."""
        if self.model.cell is not None:
            recurrent = [p.detach().numpy() for p in self.recurrent]
        else:
            w_ih, w_hh, bias = (p.detach().numpy() for p in self.recurrent)
            recurrent = [np.ascontiguousarray(w_ih.T)[None], np.ascontiguousarray(w_hh.T)[None], bias[None, None]]
        readout = self.model.readout
        return [*recurrent, np.ascontiguousarray(readout.weight.detach().numpy().T)[None],
                readout.bias.detach().numpy()[None, None]]

    def __call__(self, sequence: list[int]) -> tuple[float, float, float, int]:
        """(loss, nats, summed squared error, predicted tokens) of one chorale; the gradient is left in p.grad."""
        ids = np.asarray(sequence, dtype=np.int64)
        symbols, targets = ids[None, None, :-1].copy(), ids[None, None, 1:].copy()
        self.kernel(*self.codes, *self._arrays(), symbols, targets, *self.grads, self.losses, None, self.nats)
        for p, grad, transposed in zip(self.trained, self.grads, self.transposed, strict=True):
            # back from the kernel's (in, out) layout
            p.grad.copy_(torch.from_numpy(grad[0].T if transposed else grad.reshape(p.shape)))
        loss = float(self.losses[0])
        return loss, float(self.nats[0]), loss, len(sequence) - 1


def compiled_seed_step_available(model: TokenLM, settings: RegimeSettings, device: torch.device) -> bool:
    """Whether :class:`_CompiledSeedStep` can train this run: seed regime (one-hot input), CPU, float32/64."""
    return (isinstance(settings, SeedSettings) and device.type == "cpu" and model.embedding is None
            and model.readout.weight.dtype in (torch.float32, torch.float64))


def compiled_recurrence_available(model: TokenLM, settings: RegimeSettings, device: torch.device) -> bool:
    """Whether the modern regime's recurrence can run by the compiled kernels (``TokenLM.compiled``): CPU,
    float32/64; input projection, dropout, read-out, loss and Adam stay torch's."""
    return (isinstance(settings, ModernSettings) and device.type == "cpu"
            and model.readout.weight.dtype in (torch.float32, torch.float64))


@dataclass
class _Run:
    """What one training run changes as it goes, and where it is saved: one checkpoint holds all of it."""

    model: TokenLM
    optimizer: torch.optim.Optimizer | None  # None: the seed regime's plain SGD
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None
    numpy_rng: np.random.Generator
    loop: _Loop
    identity: str
    checkpoint: Path
    device: torch.device
    data: TokenData
    best_state: dict[str, Tensor] | None = None
    compiled: _CompiledSeedStep | None = None  # the seed regime's forward/backward by the compiled kernels

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def save(self) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT, "identity": self.identity, "vocab_size": self.data.vocab_size,
            "vocab": list(self.data.vocab), "model": _cpu_state(self.model),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {},
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "rng": _rng_states(self.numpy_rng, self.device), "loop": asdict(self.loop),
            "best_state": self.best_state or {},
        }
        tensor_files.save(self.checkpoint, payload)

    def restore(self, payload: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(payload["model"])
            if self.optimizer is not None:
                self.optimizer.load_state_dict(payload["optimizer"])
                self.scheduler.load_state_dict(payload["scheduler"])
            self.loop = _Loop(**payload["loop"])
            self.best_state = payload["best_state"] or None
            _restore_rng_states(payload["rng"], self.numpy_rng, self.device)
        except (RuntimeError, KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{self.checkpoint}: cannot restore the run ({type(error).__name__}: {error})") \
                from error


def _start_run(data: TokenData, kind: str, hidden: int, settings: RegimeSettings, seed: int, checkpoint: Path,
               device: torch.device, compiled: bool | None) -> _Run:
    """A fresh run, or the one saved in ``checkpoint`` when it is this run's and has not passed ``max_epochs``."""
    model = build_model(kind, data.vocab_size, hidden, settings, seed).to(device)
    optimizer: torch.optim.Optimizer | None = None
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
    if isinstance(settings, ModernSettings):
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=settings.lr_factor, patience=settings.lr_patience)
    run = _Run(model, optimizer, scheduler, np.random.default_rng([int(seed), 0x4C4D]),
               _Loop(lr=settings.lr, sums=_fresh_sums()), _identity(data, kind, hidden, settings, seed),
               checkpoint, device, data)
    if compiled is None:
        compiled = (compiled_seed_step_available(model, settings, device)
                    or compiled_recurrence_available(model, settings, device))
    if compiled and isinstance(settings, SeedSettings):
        run.compiled = _CompiledSeedStep(model)
    elif compiled:
        model.compiled = True
    max_epochs = settings.max_epochs
    payload = load_checkpoint(checkpoint) if checkpoint.exists() else None
    if payload is not None and payload["identity"] != run.identity:
        raise CheckpointError(f"{checkpoint}: checkpoint of another run or data set (found {payload['identity']},"
                              f" expected {run.identity}); delete it to start afresh")
    if payload is not None and not resumable(payload, max_epochs, checkpoint):
        payload = None  # trained past max_epochs: a fresh run gives what this many epochs give
    if payload is not None:
        run.restore(payload)
    else:
        torch.manual_seed(seed)  # dropout draws from the global generators (CPU and CUDA)
        random.seed(seed)
    if run.loop.stop_reason == "max_epochs" and run.loop.epoch < max_epochs:
        run.loop.stop_reason = None  # a finished run asked for more epochs continues
    return run


def _train_step(run: _Run, batch: list[list[int]], settings: RegimeSettings, sync: Callable[[], None]) -> bool:
    """One optimizer step on ``batch`` (its sums added to the epoch's); False when loss or gradients are not
    finite, in which case the weights are left as they were."""
    step_started = time.perf_counter()
    params = run.params
    if run.compiled is not None:  # one chorale per step: its gradient straight into p.grad
        compute_started = time.perf_counter()
        loss, nats, sq, count = run.compiled(batch[0])
    else:
        inputs, targets, lengths = pad_batch(batch, PAD_ID)
        inputs, targets = inputs.to(run.device), targets.to(run.device)
        for p in params:
            p.grad = None
        compute_started = time.perf_counter()
        predicted = targets != PAD_TARGET
        outputs = run.model.outputs_at(inputs, lengths, predicted)
        loss, nats, sq, count = _losses(outputs, targets[predicted], settings.regime, len(batch))
        loss.backward()
        sync()
    compute = time.perf_counter() - compute_started
    finite = math.isfinite(float(loss.detach() if isinstance(loss, Tensor) else loss)) and _finite_gradients(params)
    if finite and run.optimizer is not None:
        nn.utils.clip_grad_norm_(params, settings.clip_norm)
    if not finite:  # keep the last finite weights and stop: every later step would be NaN
        run.loop.stop_reason = "diverged"
    elif run.optimizer is None:
        with torch.no_grad():
            for p in params:
                p.sub_(p.grad, alpha=run.loop.lr)
    else:
        run.optimizer.step()
    sums = run.loop.sums
    sums["nats"] += float(nats)
    sums["squared_error"] += float(sq)
    sums["tokens"] += count
    sums["sequences"] += len(batch)
    sums["steps"] += 1
    run.loop.step_in_epoch += 1
    run.loop.global_step += 1
    if run.loop.global_step % settings.checkpoint_every == 0:
        run.save()
    sums["compute_seconds"] += compute
    sums["train_seconds"] += time.perf_counter() - step_started
    return finite


def train_lm(
    data: TokenData,
    kind: str,
    hidden: int,
    settings: RegimeSettings,
    seed: int,
    checkpoint: str | Path | None,
    device: torch.device | str | None = None,
    stop_after_steps: int | None = None,
    step_hook: StepHook | None = None,
    desc: str | None = None,
    checkpoint_dir: str | Path | None = None,
    compiled: bool | None = None,
) -> tuple[TokenLM, pd.DataFrame]:
    """Train one language model on ``data.ids['train']`` (validation on ``data.ids['valid']``) in the regime of
    ``settings``, at most ``settings.max_epochs`` epochs; see the module doc.

    The checkpoint is the file ``checkpoint`` or, with ``checkpoint=None``, the run's own file in
    ``checkpoint_dir`` (:func:`checkpoint_path`). Resumes from it when it exists (it must come from the same run
    definition and data, else CheckpointError); a finished run's checkpoint returns its result at once; one
    already trained past ``max_epochs`` is replaced by a fresh run. ``stop_after_steps`` writes a
    checkpoint after that many optimizer steps (counted from the run's start) and raises TrainingStopped.
    Returns the model (on ``device``) and the learning curve; ``curve.attrs`` holds ``stop_reason``
    (converged, diverged, early_stopping, max_epochs), ``best_epoch``, ``best_valid_nll`` and ``steps``.
    ``compiled``: the compiled kernels (True: the seed regime's whole step, the modern regime's recurrence), autograd
    only (False), or the kernels where they apply (None: CPU, float32/64); the two agree to float32 rounding.
    """
    device = torch.device(device) if device is not None else pick_device()
    if (checkpoint is None) == (checkpoint_dir is None):
        raise ValueError("give either a checkpoint file or a checkpoint folder")
    if checkpoint is None:
        checkpoint = checkpoint_path(checkpoint_dir, data, kind, hidden, settings, seed)
    if not data.ids["train"]:
        raise TokenDataError("chorales.split: the token data has no training chorales")
    if settings.regime == "modern" and not data.ids["valid"]:
        raise TokenDataError("chorales.split: the modern regime needs validation chorales "
                             "(early stopping, learning-rate schedule)")
    regime, max_epochs = settings.regime, settings.max_epochs
    run = _start_run(data, kind, hidden, settings, seed, Path(checkpoint), device, compiled)
    loop, train = run.loop, data.ids["train"]
    batch_size = settings.batch_size
    steps_per_epoch = math.ceil(len(train) / batch_size)
    bar = progress(max_epochs, desc or f"{regime} {kind} h={hidden}", unit="epochs",
                   initial=min(loop.epoch, max_epochs))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    while loop.stop_reason is None:
        if loop.epoch >= max_epochs:
            loop.stop_reason = "max_epochs"
            run.save()
            break
        if loop.order is None:
            loop.order = run.numpy_rng.permutation(len(train)).tolist()
            loop.sums = _fresh_sums()
        epoch_started = time.perf_counter()
        run.model.train()
        while loop.step_in_epoch < steps_per_epoch:
            index = loop.order[loop.step_in_epoch * batch_size : (loop.step_in_epoch + 1) * batch_size]
            if not _train_step(run, [train[i] for i in index], settings, sync):
                break
            if stop_after_steps is not None and loop.global_step >= stop_after_steps:
                run.save()
                bar.close()
                raise TrainingStopped(loop.global_step, run.checkpoint)
            if step_hook is not None:
                step_hook(run.model, loop.global_step)

        _end_epoch(run, settings)
        loop.sums["seconds"] += time.perf_counter() - epoch_started
        loop.curve[-1]["seconds"] = loop.sums["seconds"]
        if loop.best_epoch == loop.epoch:
            run.best_state = _cpu_state(run.model)
        loop.order, loop.step_in_epoch = None, 0
        run.save()
        bar.update(1)
        bar.set_postfix_str(f"valid nll {loop.curve[-1]['valid_nll']:.3f}")
    bar.close()

    if regime == "modern" and run.best_state:
        run.model.load_state_dict(run.best_state)
    return run.model, _curve_frame(loop.curve, asdict(loop))


def _end_epoch(run: _Run, settings: RegimeSettings) -> None:
    """Validation, learning-curve row, learning-rate change and stopping rule of the epoch just finished."""
    loop, data, optimizer, scheduler = run.loop, run.data, run.optimizer, run.scheduler
    sums = loop.sums
    valid = evaluate_lm(run.model, data.ids["valid"], run.device) if data.ids["valid"] else None
    valid_nll = valid["nll"] if valid else math.nan
    lr = loop.lr if optimizer is None else float(optimizer.param_groups[0]["lr"])
    loop.epoch += 1
    train_error = sums["squared_error"] / max(sums["sequences"], 1)
    error_key = "squared_error" if settings.regime == "seed" else "squared_error_softmax"
    loop.curve.append({
        "epoch": loop.epoch, "train_nll": sums["nats"] / max(sums["tokens"], 1), "valid_nll": valid_nll,
        "train_squared_error": train_error,
        "valid_squared_error": valid[error_key] if valid else math.nan, "lr": lr, "seconds": 0.0,
        "train_seconds": sums["train_seconds"], "compute_seconds": sums["compute_seconds"],
        "steps": int(sums["steps"]), "tokens": int(sums["tokens"]),
    })
    min_delta = settings.min_delta if isinstance(settings, ModernSettings) else 0.0
    if valid_nll < loop.best_valid - min_delta:
        loop.best_valid, loop.best_epoch, loop.bad_epochs = valid_nll, loop.epoch, 0
    else:
        loop.bad_epochs += 1
    if loop.stop_reason == "diverged":  # a step's loss or gradient was not finite
        pass
    elif isinstance(settings, SeedSettings):
        if not math.isfinite(train_error):
            loop.stop_reason = "diverged"
        else:
            if train_error > loop.previous_error:
                loop.lr /= settings.lr_divisor
            if abs(train_error - loop.previous_error) < settings.tolerance:
                loop.stop_reason = "converged"
            loop.previous_error = train_error
    else:
        assert scheduler is not None
        if not math.isfinite(valid_nll) or not math.isfinite(sums["nats"]):
            loop.stop_reason = "diverged"
        else:
            scheduler.step(valid_nll)
            if loop.bad_epochs >= settings.patience:
                loop.stop_reason = "early_stopping"
    if loop.stop_reason is None and loop.epoch >= settings.max_epochs:
        loop.stop_reason = "max_epochs"
