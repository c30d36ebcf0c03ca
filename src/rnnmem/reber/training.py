"""Two ways to train an ensemble of sequence predictors on grammar strings.

``seed``   the report's annex A.3 loop: squared error against one-hot targets, one plain SGD step per string,
           learning rate divided by ``lr_divisor`` whenever the epoch's mean error rises, stop when that mean
           changes by less than ``tolerance`` or after ``max_epochs``; N(0, 1) weights, biases zero (``bias:
           zero``, the report's annex code) or N(0, 1) like the weights (``bias: normal``).
``modern`` cross-entropy on the next symbol, Adam, minibatches, per-network gradient-norm clipping.

Members are independent networks trained in lock-step: each has its own strings, order, learning rate and
stopping time. A member that has stopped keeps its weights (its update is masked out).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from rnnmem.core.cells import SequencePredictor
from rnnmem.core.errors import ConfigError
from rnnmem.core.progress import progress
from rnnmem.reber.sequences import PAD, EncodedStrings

REGIMES = ("seed", "modern")
BIASES = ("zero", "normal")  # the seed regime's initial biases: 0 (the report's annex code) or N(0, 1)


@dataclass(frozen=True)
class SeedRegime:
    """The report's annex A.3 loop (config ``reber.regimes.seed``): squared error, one SGD step per string."""

    name: ClassVar[str] = "seed"
    batch_size: ClassVar[int] = 1
    lr: float
    lr_divisor: float  # the rate is divided by it when the epoch's mean error rises
    tolerance: float  # stop when the epoch's mean error changes by less
    max_epochs: int
    init: str  # normal: N(0, 1) weights, as the report's annexes
    bias: str  # zero: biases 0, as the report's annex code; normal: drawn like the weights

    @property
    def zero_bias(self) -> bool:
        """Whether the initial biases are zero rather than drawn (``bias: zero``)."""
        return self.bias == "zero"


@dataclass(frozen=True)
class ModernRegime:
    """Cross-entropy, Adam, minibatches, per-network gradient-norm clipping (config ``reber.regimes.modern``)."""

    name: ClassVar[str] = "modern"
    lr: float
    batch_size: int
    clip_norm: float
    init: str  # uniform: U(±1/√H)
    zero_bias: ClassVar[bool] = False  # biases drawn like the weights, as torch initialises them


Regime = SeedRegime | ModernRegime


def make_regime(name: str, settings: dict) -> Regime:
    """A regime from its config block (keys as the dataclass fields, all of them); a missing or unknown key, or a
    ``bias`` other than zero or normal, is a ConfigError naming ``reber.regimes.<name>`` and the key."""
    classes = {"seed": SeedRegime, "modern": ModernRegime}
    if name not in classes:
        raise ConfigError(f"reber.regimes: unknown regime {name!r}; expected one of {REGIMES}")
    fields = {f.name for f in dataclasses.fields(classes[name])}
    unknown, missing = sorted(set(settings) - fields), sorted(fields - set(settings))
    if unknown or missing:
        raise ConfigError(f"reber.regimes.{name}: " + "; ".join(
            part for part in (f"unknown key(s) {unknown}" if unknown else "",
                              f"missing key(s) {missing}" if missing else "") if part))
    if "bias" in settings and settings["bias"] not in BIASES:
        raise ConfigError(f"reber.regimes.{name}.bias: expected zero or normal, got {settings['bias']!r}")
    return classes[name](**settings)


def squared_error(outputs: Tensor, targets: Tensor) -> Tensor:
    """Per member: Σ over steps and symbols of (y − onehot)², averaged over the batch's strings."""
    valid = targets != PAD
    onehot = torch.nn.functional.one_hot(targets.clamp(min=0), outputs.shape[-1]).to(outputs.dtype)
    per_step = ((outputs - onehot) ** 2).sum(-1) * valid
    return per_step.sum(dim=(1, 2)) / targets.shape[1]


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Per member: mean next-symbol cross-entropy (nats) over the batch's valid steps."""
    valid = targets != PAD
    logp = torch.log_softmax(outputs, dim=-1)
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * valid
    return -picked.sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp(min=1)


def member_grad_norms(parameters: list[torch.nn.Parameter]) -> Tensor:
    """The gradient's Euclidean norm of each member separately (parameters have a leading member dim)."""
    squares = [p.grad.pow(2).reshape(p.shape[0], -1).sum(1) for p in parameters]
    return torch.stack(squares).sum(0).sqrt()


def clip_scale(norms: Tensor, max_norm: float) -> Tensor:
    """The factor that clips a gradient of norm ``norms`` to ``max_norm`` (1 below it)."""
    return (max_norm / (norms + 1e-6)).clamp(max=1.0)


def clip_member_grads_(parameters: list[torch.nn.Parameter], max_norm: float) -> Tensor:
    """Clip each member's gradient to ``max_norm``: a global clip would couple independent networks."""
    norms = member_grad_norms(parameters)
    scale = clip_scale(norms, max_norm)
    for p in parameters:
        p.grad.mul_(scale.reshape(-1, *([1] * (p.dim() - 1))))
    return norms


@dataclass
class TrainResult:
    """Per member: strings presented until the check first passed (−1: never), and when training ended."""

    strings_to_success: np.ndarray
    strings_presented: np.ndarray
    epochs: np.ndarray
    final_lr: np.ndarray
    stop_reason: list[str]
    seconds: float
    compute_seconds: float
    steps: int
    history: list[dict] = field(default_factory=list)


Check = Callable[[SequencePredictor, Tensor], Tensor]
"""Called every ``check_every`` strings with the model and the (M,) mask of members still training; returns (M,)
bool: which of those are solved (a stopped member's answer is not used, so a check may skip it)."""

StepHook = Callable[[SequencePredictor, int, Tensor], None]
"""Called after each backward pass, before the update, with the strings presented so far and the (M,) mask of
members still training (the others' gradients are computed but not applied)."""


class _AutogradSteps:
    """Forward, loss and backward of one batch by torch autograd (any device): the reference implementation."""

    def __init__(self, model: SequencePredictor, data: EncodedStrings, loss_fn: Callable[[Tensor, Tensor], Tensor]):
        self.model, self.data, self.loss_fn = model, data, loss_fn

    def __call__(self, index: np.ndarray, active: Tensor) -> Tensor:
        batch = self.data.select(torch.as_tensor(index, device=self.data.x.device))
        self.model.zero_grad(set_to_none=False)
        outputs, _ = self.model(batch.x)
        losses = self.loss_fn(outputs, batch.targets)
        losses.sum().backward()
        return losses.detach()


class _CompiledSteps:
    """The same computation by the compiled kernels of :mod:`rnnmem.core.compiled` (CPU), on the model's own
    storage: the kernels read the weights and write ``p.grad`` in place, so hooks and optimizers see torch
    tensors as before. Stopped members are skipped (loss and gradient 0: the loop applies neither)."""

    def __init__(self, model: SequencePredictor, data: EncodedStrings, loss_name: str) -> None:
        from rnnmem.core import compiled

        recurrence = model.recurrence
        self.kernel = compiled.loss_and_grads
        self.codes = (compiled.KIND_CODES[recurrence.kind], compiled.ACTIVATION_CODES[recurrence.activation],
                      compiled.LOSS_CODES[loss_name])
        params = [recurrence.weight_ih, recurrence.weight_hh, recurrence.bias, model.readout.weight,
                  model.readout.bias]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.weights = [p.detach().numpy() for p in params]
        self.grads = [p.grad.numpy() for p in params]
        self.symbols = data.input_symbols()
        self.targets = data.targets.cpu().numpy().astype(np.int64)
        self.rows = np.arange(len(self.symbols))[:, None]
        self.losses = np.zeros(len(self.symbols), dtype=self.weights[0].dtype)

    def __call__(self, index: np.ndarray, active: Tensor) -> Tensor:
        symbols = np.ascontiguousarray(self.symbols[self.rows, index])
        targets = np.ascontiguousarray(self.targets[self.rows, index])
        self.kernel(*self.codes, *self.weights, symbols, targets, *self.grads, self.losses, active.numpy())
        return torch.from_numpy(self.losses.copy())


class _CompiledUpdate:
    """:func:`_update` by the compiled kernels (CPU): the seed regime's SGD step, or the modern regime's clipping
    and ``torch.optim.Adam`` step, in place on the weights' and gradients' storage. Why: torch spends ~10 µs per
    elementwise op on these tiny tensors, and a clipped, masked Adam step is ~60 of them: more than the forward
    and backward took.
    The weights are bit for bit torch's under the portable settings (tested): each element gets torch's
    operations in torch's order; the two parts that only torch reproduces, the per-member gradient norms (its
    summation order) and the float32 sqrt (MKL's), stay torch's calls (a few, on whole buffers)."""

    def __init__(self, params: list[torch.nn.Parameter], regime: Regime) -> None:
        from rnnmem.core import compiled

        if not all(p.is_contiguous() and p.grad is not None and p.grad.is_contiguous() for p in params):
            raise ValueError("the compiled update needs contiguous weights and gradients")
        members = params[0].shape[0]
        self.compiled, self.params, self.regime = compiled, params, regime
        self.weights = [p.detach().numpy().reshape(members, -1) for p in params]
        self.grads = [p.grad.numpy().reshape(members, -1) for p in params]
        self.step = 0
        if isinstance(regime, ModernRegime):
            # Adam's second moments and their roots in one buffer each, so that one torch.sqrt covers them all
            spans = list(itertools.pairwise(np.cumsum([0, *(w.size for w in self.weights)])))
            size, dtype = spans[-1][1], self.weights[0].dtype
            squares, roots = np.zeros(size, dtype), np.zeros(size, dtype)
            self.exp_avgs = [np.zeros_like(w) for w in self.weights]
            self.exp_avg_sqs = [squares[a:b].reshape(members, -1) for a, b in spans]
            self.roots = [roots[a:b].reshape(members, -1) for a, b in spans]
            self.squares, self.root_tensor = torch.from_numpy(squares), torch.from_numpy(roots)

    def __call__(self, lr: Tensor, active: Tensor) -> None:
        if isinstance(self.regime, SeedRegime):
            self.compiled.sgd_step(self.weights, self.grads, (lr * active).numpy())
            return
        with torch.no_grad():
            scale = clip_scale(member_grad_norms(self.params), self.regime.clip_norm)
        self.step += 1
        self.compiled.adam_moments(self.grads, self.exp_avgs, self.exp_avg_sqs, scale.numpy(), active.numpy())
        torch.sqrt(self.squares, out=self.root_tensor)
        self.compiled.adam_update(self.weights, self.exp_avgs, self.roots, active.numpy(), self.step,
                                  self.regime.lr)


def compiled_available(model: SequencePredictor, device: torch.device) -> bool:
    """Whether the compiled kernels can train ``model``: CPU, float32 or float64 weights (numba is a dependency)."""
    return device.type == "cpu" and model.recurrence.weight_ih.dtype in (torch.float32, torch.float64)


def train(
    model: SequencePredictor,
    data: EncodedStrings,
    regime: Regime,
    seeds: list[int],
    max_strings: int,
    check_every: int,
    check: Check,
    desc: str = "train",
    step_hook: StepHook | None = None,
    compiled: bool | None = None,
) -> TrainResult:
    """Train every member until its check passes, the regime stops it, or ``max_strings`` were presented.

    ``compiled``: forward, backward and update by the compiled kernels (True), by torch autograd and torch's
    optimizer (False), or the kernels wherever they run (None: on the CPU). Both compute the same gradients
    (tested to 1e-10 in float64); their float32 roundings differ, so runs agree statistically, not bit for bit.
    The compiled update itself is torch's, bit for bit under the portable settings."""
    members, count = data.lengths.shape
    device = data.x.device
    params = list(model.parameters())
    rngs = [np.random.default_rng([int(seed), 7]) for seed in seeds]
    active = torch.ones(members, dtype=torch.bool, device=device)
    solved_at = np.full(members, -1, dtype=np.int64)
    presented_at_stop = np.full(members, max_strings, dtype=np.int64)
    reasons = ["cap"] * members
    lr = torch.full((members,), regime.lr, device=device)
    if compiled is None:
        compiled = compiled_available(model, device)
    optimizer = torch.optim.Adam(params, lr=regime.lr) if isinstance(regime, ModernRegime) and not compiled else None
    batch = regime.batch_size
    steps_per_epoch = count // batch
    epoch_error = torch.zeros(members, device=device)
    previous_epoch_error = torch.full((members,), float("inf"), device=device)
    epochs = np.zeros(members, dtype=np.int64)
    order = np.stack([rng.permutation(count) for rng in rngs])
    history: list[dict] = []
    presented, step_in_epoch, steps = 0, 0, 0
    compute_seconds = 0.0  # forward + loss + backward alone: the loop's overhead is the rest
    started = time.perf_counter()
    bar = progress(max_strings, desc, unit="strings")
    loss_name = "squared_error" if isinstance(regime, SeedRegime) else "cross_entropy"
    loss_fn = squared_error if isinstance(regime, SeedRegime) else cross_entropy
    batch_step = _CompiledSteps(model, data, loss_name) if compiled else _AutogradSteps(model, data, loss_fn)
    compiled_update = _CompiledUpdate(params, regime) if compiled else None  # after _CompiledSteps made p.grad

    def stop(mask: Tensor, reason: str) -> None:
        for m in torch.nonzero(mask & active).flatten().tolist():
            reasons[m] = reason
            presented_at_stop[m] = presented
        active.logical_and_(~mask)

    while presented < max_strings and bool(active.any()):
        if isinstance(regime, SeedRegime):
            index = order[:, step_in_epoch * batch : (step_in_epoch + 1) * batch]
        else:
            if step_in_epoch == 0:  # the epoch's draws at once: the same numbers as one call per step
                draws = np.stack([rng.integers(count, size=(steps_per_epoch, batch)) for rng in rngs])
            index = draws[:, step_in_epoch]
        compute_started = time.perf_counter()
        losses = batch_step(index, active)
        compute_seconds += time.perf_counter() - compute_started
        presented += batch
        steps += 1
        if step_hook is not None:
            step_hook(model, presented, active)
        if compiled_update is not None:
            compiled_update(lr, active)
        else:
            _update(params, regime, optimizer, lr, active)
        epoch_error += losses
        step_in_epoch += 1
        bar.update(batch)

        epoch_stops: list[tuple[Tensor, str]] = []
        if step_in_epoch == steps_per_epoch:
            step_in_epoch = 0
            epochs += active.cpu().numpy()
            mean_error = epoch_error / steps_per_epoch
            if isinstance(regime, SeedRegime):
                rose = mean_error > previous_epoch_error
                lr = torch.where(rose & active, lr / regime.lr_divisor, lr)
                epoch_stops = [((mean_error - previous_epoch_error).abs() < regime.tolerance, "converged"),
                               (torch.as_tensor(epochs >= regime.max_epochs, device=device), "max_epochs")]
            previous_epoch_error = mean_error
            epoch_error = torch.zeros(members, device=device)
            order = np.stack([rng.permutation(count) for rng in rngs])

        if presented % check_every < batch:  # before the epoch's stops: a member that passes now is solved
            solved = check(model, active)
            newly = solved & active
            solved_at[newly.cpu().numpy()] = presented
            stop(newly, "solved")
            history.append({"strings": presented, "solved": int((solved_at >= 0).sum()),
                            "active": int(active.sum())})
            bar.set_postfix_str(f"solved {int((solved_at >= 0).sum())}/{members}")
        for mask, reason in epoch_stops:
            stop(mask, reason)
    bar.close()
    return TrainResult(
        strings_to_success=solved_at,
        strings_presented=np.minimum(presented_at_stop, presented),
        epochs=epochs,
        final_lr=lr.cpu().numpy(),
        stop_reason=reasons,
        seconds=time.perf_counter() - started,
        compute_seconds=compute_seconds,
        steps=steps,
        history=history,
    )


def _update(
    params: list[torch.nn.Parameter],
    regime: Regime,
    optimizer: torch.optim.Optimizer | None,
    lr: Tensor,
    active: Tensor,
) -> None:
    """One step for the active members only; stopped members keep their weights bit for bit."""
    with torch.no_grad():
        if optimizer is None:
            rate = lr * active
            for p in params:
                p.sub_(p.grad * rate.reshape(-1, *([1] * (p.dim() - 1))))
            return
        clip_member_grads_(params, regime.clip_norm)
        before = [p.detach().clone() for p in params]
        optimizer.step()
        for p, old in zip(params, before, strict=True):
            keep = active.reshape(-1, *([1] * (p.dim() - 1)))
            p.copy_(torch.where(keep, p, old))
