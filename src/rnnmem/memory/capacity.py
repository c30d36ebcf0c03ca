"""Short-term memory capacity MC(l, k) of random reservoirs (Jaeger 2002; report §2.3, figure 16).

Protocol. A reservoir of k units is driven by a scalar input ν(t), i.i.d. uniform on [−0.5, 0.5]. It starts
from x(−1) = 0 and reads max_lag + washout + T + T_test inputs; the first max_lag + washout states are
discarded (so every target ν(t − l) below is an input the reservoir has read), the next T are the training
steps and the last T_test the held-out steps. For each lag l = 1..L a linear read-out y_l(t) = w_l · [x(t); 1]
is fitted on the training steps to predict ν(t − l), by ridge regression

    w_l = argmin (1/T) Σ_t (w · [x(t); 1] − ν(t − l))² + λ ‖w without its bias‖²

(the bias is not penalised; λ = 0 gives the least-squares, minimum-norm solution via ``lstsq``). All lags are
solved at once: one (k+1)×(k+1) system per reservoir. MC_l is the squared correlation between ν(t − l) and
y_l(t) on the held-out steps (0 when the read-out is constant there), so 0 ≤ MC_l ≤ 1, and MC = Σ_l MC_l ≤ k in
theory (Jaeger 2002) up to estimation noise of order L / T_test.

Reservoirs:
  ESN   x(t) = f(W x(t−1) + w_in ν(t)), f = tanh or the identity (linear reservoir); W is N(0, 1) rescaled to
        spectral radius ρ, or (``orthogonal``) ρ times a random orthogonal matrix (QR of a Gaussian matrix, signs
        fixed so the law is Haar); w_in uniform on [−s, s].
  GRU   the report's GRU (:class:`rnnmem.core.cells.EnsembleRecurrence`), N(0, 1) initialisation with every parameter
        (input and recurrent weights and biases) multiplied by ``weight_scale``; ν(t) is its 1-d input.

Everything is float64 and seeded: reservoir r of size k comes from child r of SeedSequence([seed, k, code]),
so a reservoir does not depend on how many others are drawn, and different k share no random numbers. The
input streams come from their own code, so the ESN and the GRU of the same (seed, k, r) read the same inputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from rnnmem.core.cells import EnsembleRecurrence
from rnnmem.core.errors import ConfigError
from rnnmem.memory import NonFiniteStatesError

ACTIVATIONS = ("tanh", "linear")
ESN_CODE, GRU_CODE, INPUT_CODE = 0, 1, 2  # third entry of SeedSequence([seed, k, code])
COLUMNS = ["k", "l", "mc", "mc_std"]
TOTAL_COLUMNS = ["k", "mc_total", "mc_total_std"]


@dataclass(frozen=True)
class CapacitySettings:
    """One memory-capacity protocol (see the module docstring). ``rho`` and ``input_scale`` only apply to ESNs."""

    rho: float
    input_scale: float
    train_length: int
    washout: int
    test_length: int
    ridge: float
    max_lag: int
    reservoirs: int
    seed: int
    activation: str = "tanh"
    orthogonal: bool = False

    def __post_init__(self) -> None:
        positive = {"rho": self.rho, "input_scale": self.input_scale}
        for name, value in positive.items():
            if not (np.isfinite(value) and value > 0):
                raise ConfigError(f"memory.capacity.esn.{name}: must be a finite number > 0, got {value!r}")
        at_least = {
            "train_length": (self.train_length, 1),
            "washout": (self.washout, 0),
            "test_length": (self.test_length, 1),
            "max_lag": (self.max_lag, 1),
            "reservoirs": (self.reservoirs, 1),
        }
        for name, (value, low) in at_least.items():
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ConfigError(f"memory.capacity.{name}: must be an integer ≥ {low}, got {value!r}")
        if not (np.isfinite(self.ridge) and self.ridge >= 0):
            raise ConfigError(f"memory.capacity.ridge: must be a finite number ≥ 0, got {self.ridge!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise ConfigError(f"memory.capacity.seed: must be an integer ≥ 0, got {self.seed!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"memory.capacity.esn.activation: must be one of {ACTIVATIONS}, got {self.activation!r}")

    @property
    def discarded(self) -> int:
        """Steps read before the first training step: max_lag + washout."""
        return self.max_lag + self.washout

    @property
    def steps(self) -> int:
        """Inputs each reservoir reads: max_lag + washout + T + T_test."""
        return self.discarded + self.train_length + self.test_length


def _children(seed: int, k: int, code: int, count: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence([int(seed), int(k), int(code)]).spawn(count)


def input_sequences(k: int, settings: CapacitySettings) -> np.ndarray:
    """ν(t) of every reservoir of size k: (R, steps), i.i.d. uniform on [−0.5, 0.5]."""
    children = _children(settings.seed, k, INPUT_CODE, settings.reservoirs)
    return np.stack([np.random.default_rng(c).uniform(-0.5, 0.5, settings.steps) for c in children])


def esn_reservoirs(k: int, settings: CapacitySettings) -> tuple[np.ndarray, np.ndarray]:
    """Recurrent matrices W (R, k, k) with spectral radius ρ, and input weights w_in (R, k)."""
    _check_k(k)
    matrices, inputs = [], []
    for child in _children(settings.seed, k, ESN_CODE, settings.reservoirs):
        rng = np.random.default_rng(child)
        gaussian = rng.standard_normal((k, k))
        if settings.orthogonal:
            q, r = np.linalg.qr(gaussian)
            matrix = q * np.where(np.diag(r) < 0, -1.0, 1.0)  # column signs fixed: Haar-distributed
        else:
            radius = np.abs(np.linalg.eigvals(gaussian)).max()
            matrix = gaussian / radius
        matrices.append(settings.rho * matrix)
        inputs.append(rng.uniform(-settings.input_scale, settings.input_scale, k))
    return np.stack(matrices), np.stack(inputs)


def esn_states(k: int, settings: CapacitySettings) -> tuple[np.ndarray, np.ndarray]:
    """States x(t) (R, steps, k) of the R ESNs of size k, and their inputs ν(t) (R, steps)."""
    weights, input_weights = esn_reservoirs(k, settings)
    inputs = input_sequences(k, settings)
    linear = settings.activation == "linear"
    states = np.empty((settings.reservoirs, settings.steps, k))
    x = np.zeros((settings.reservoirs, 1, k))
    drive = inputs[:, :, None] * input_weights[:, None, :]  # w_in ν(t): (R, steps, k)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(settings.steps):
            pre = np.matmul(x, weights) + drive[:, t : t + 1]  # row-vector style: x W^T has the same law
            x = pre if linear else np.tanh(pre)
            states[:, t] = x[:, 0]
    return states, inputs


def gru_states(k: int, settings: CapacitySettings, weight_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """States h(t) (R, steps, k) of R random GRUs of size k (N(0, 1) × ``weight_scale``), and their inputs."""
    _check_k(k)
    if not weight_scale > 0:
        raise ConfigError(f"memory.capacity.gru.weight_scale: must be > 0, got {weight_scale!r}")
    children = _children(settings.seed, k, GRU_CODE, settings.reservoirs)
    seeds = [int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for child in children]
    gru = EnsembleRecurrence("gru", input_size=1, hidden=k, members=settings.reservoirs)
    gru.reset_parameters("normal", seeds)
    gru = gru.double()
    inputs = input_sequences(k, settings)
    with torch.no_grad():
        for parameter in gru.parameters():
            parameter.mul_(weight_scale)
        x = torch.from_numpy(inputs)[:, None, :, None]  # (members, batch 1, steps, input 1)
        hidden, _ = gru(x)
    return hidden[:, 0].numpy(), inputs


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"memory.capacity.k: must be an integer ≥ 1, got {k!r}")


def _lagged(inputs: np.ndarray, start: int, length: int, max_lag: int) -> np.ndarray:
    """Targets ν(t − l) for t in [start, start + length), l = 1..max_lag: (R, length, max_lag)."""
    times = np.arange(start, start + length)[:, None] - np.arange(1, max_lag + 1)[None, :]
    return inputs[:, times]


def _with_bias(states: np.ndarray) -> np.ndarray:
    return np.concatenate([states, np.ones((*states.shape[:-1], 1))], axis=-1)


def _fit_readouts(design: np.ndarray, targets: np.ndarray, ridge: float) -> np.ndarray:
    """Read-out weights (R, k+1, L) of every reservoir and lag at once."""
    if ridge == 0:
        return np.stack([np.linalg.lstsq(d, y, rcond=None)[0] for d, y in zip(design, targets, strict=True)])
    length = design.shape[1]
    gram = np.matmul(design.transpose(0, 2, 1), design) / length
    penalty = np.ones(design.shape[-1])
    penalty[-1] = 0.0  # the bias is not penalised
    gram += ridge * np.diag(penalty)
    return np.linalg.solve(gram, np.matmul(design.transpose(0, 2, 1), targets) / length)


def _squared_correlation(targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Squared correlation over axis 1, per (reservoir, lag); 0 where either side is constant."""
    a = targets - targets.mean(axis=1, keepdims=True)
    b = predictions - predictions.mean(axis=1, keepdims=True)
    covariance = (a * b).sum(axis=1)
    variances = (a * a).sum(axis=1) * (b * b).sum(axis=1)
    safe = variances > 0
    result = np.zeros_like(covariance)
    result[safe] = covariance[safe] ** 2 / variances[safe]
    return np.clip(result, 0.0, 1.0)


def capacity_from_states(states: np.ndarray, inputs: np.ndarray, settings: CapacitySettings) -> np.ndarray:
    """MC_l of every reservoir: (R, max_lag), from states (R, steps, k) and the inputs ν(t) (R, steps) they read.

    Raises :class:`NonFiniteStatesError` when a state is inf or NaN.
    """
    expected = (settings.reservoirs, settings.steps)
    if states.ndim != 3 or states.shape[:2] != expected or inputs.shape != expected:
        raise ValueError(f"states {states.shape} and inputs {inputs.shape} do not match (R, steps) = {expected}")
    bad = ~np.isfinite(states).all(axis=(1, 2))
    if bad.any():
        raise NonFiniteStatesError(
            f"memory.capacity: reservoirs {np.flatnonzero(bad).tolist()} of size k = {states.shape[2]} have inf/NaN "
            "states"
        )
    train_start = settings.discarded
    test_start = train_start + settings.train_length
    train = _with_bias(states[:, train_start:test_start])
    test = _with_bias(states[:, test_start:])
    weights = _fit_readouts(train, _lagged(inputs, train_start, settings.train_length, settings.max_lag),
                            settings.ridge)
    targets = _lagged(inputs, test_start, settings.test_length, settings.max_lag)
    return _squared_correlation(targets, np.matmul(test, weights))


def lag_table(k: int, per_reservoir: np.ndarray) -> pd.DataFrame:
    """Mean and standard deviation (ddof 1; 0 for a single reservoir) of MC_l over the reservoirs."""
    spread = per_reservoir.std(axis=0, ddof=1) if len(per_reservoir) > 1 else np.zeros(per_reservoir.shape[1])
    return pd.DataFrame({
        "k": np.full(per_reservoir.shape[1], k, dtype=np.int64),
        "l": np.arange(1, per_reservoir.shape[1] + 1, dtype=np.int64),
        "mc": per_reservoir.mean(axis=0),
        "mc_std": spread,
    })[COLUMNS]


def esn_capacity_per_reservoir(k: int, settings: CapacitySettings) -> np.ndarray:
    """MC_l of each of the R ESNs of size k: (R, max_lag)."""
    states, inputs = esn_states(k, settings)
    return capacity_from_states(states, inputs, settings)


def gru_capacity_per_reservoir(k: int, settings: CapacitySettings, weight_scale: float) -> np.ndarray:
    """MC_l of each of the R random GRUs of size k: (R, max_lag)."""
    states, inputs = gru_states(k, settings, weight_scale)
    return capacity_from_states(states, inputs, settings)


def esn_capacity(k: int, settings: CapacitySettings) -> pd.DataFrame:
    """MC_l of ESNs with k units, l = 1..max_lag: columns k, l, mc (mean over reservoirs), mc_std."""
    return lag_table(k, esn_capacity_per_reservoir(k, settings))


def gru_capacity(k: int, settings: CapacitySettings, weight_scale: float) -> pd.DataFrame:
    """MC_l of random GRUs with k units (same protocol and read-outs as :func:`esn_capacity`)."""
    return lag_table(k, gru_capacity_per_reservoir(k, settings, weight_scale))


def totals_per_k(k: int, per_reservoir: np.ndarray) -> dict[str, float]:
    """Mean and standard deviation (ddof 1) over reservoirs of the total MC = Σ_l MC_l: the exact spread."""
    totals = per_reservoir.sum(axis=1)
    return {"k": k, "mc_total": float(totals.mean()),
            "mc_total_std": float(totals.std(ddof=1)) if len(totals) > 1 else 0.0, "reservoirs": len(totals)}


def total_capacity(table: pd.DataFrame) -> pd.DataFrame:
    """MC = Σ_l MC_l per k: columns k, mc_total, mc_total_std.

    The table keeps only per-lag statistics, so ``mc_total_std`` is Σ_l std(MC_l), the Minkowski upper bound
    on the standard deviation of the total over reservoirs (reached when the lags co-vary perfectly).
    """
    missing = set(COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"capacity table lacks columns {sorted(missing)}")
    grouped = table.sort_values(["k", "l"]).groupby("k", sort=True)
    totals = pd.DataFrame({"mc_total": grouped["mc"].sum(), "mc_total_std": grouped["mc_std"].sum()})
    return totals.reset_index()[TOTAL_COLUMNS]


# --- Families, input scales and the exact capacity of linear reservoirs -----------------------------------------

FAMILIES = {"esn_gaussian": False, "esn_orthogonal": True}  # reservoir name -> ``orthogonal``
INPUT_SCALE_COLUMNS = ["reservoir", "input_scale", "k", "mc_total", "mc_total_std", "reservoirs"]
LINEAR_COLUMNS = ["k", "reservoir", "exact", "exact_std", "exact_all_lags", "estimated", "estimated_std", "error",
                  "error_std", "reservoirs"]


def blaschke_coefficients(eigenvalues: np.ndarray, length: int) -> np.ndarray:
    """Taylor coefficients c_0..c_{length−1} of B(z) = Π_i (z − λ_i) / (1 − conj(λ_i) z), all |λ_i| < 1.

    B is evaluated on ``length`` points of the unit circle, where every factor has modulus 1 (no cancellation, no
    ill-conditioned matrix), and an inverse FFT gives the coefficients; aliasing adds c_{j+length}, negligible once
    ρ^length is (see :func:`exact_linear_capacity`).
    """
    z = np.exp(2j * np.pi * np.arange(length) / length)
    values = np.ones(length, dtype=complex)
    for lam in np.asarray(eigenvalues, dtype=complex):
        values *= (z - lam) / (1 - np.conj(lam) * z)
    return np.fft.fft(values) / length  # fft of samples on e^{+iθ}: coefficient j sits at index j


def _blaschke_power(weights: np.ndarray, max_lag: int) -> np.ndarray:
    """|c_j|² for j = 0..length−1 (see :func:`exact_linear_capacity`), length a power of 2 past max_lag."""
    eigenvalues = np.linalg.eigvals(weights)
    radius = float(np.abs(eigenvalues).max()) if len(eigenvalues) else 0.0
    if not radius < 1:
        raise ConfigError(f"memory.capacity.esn.rho: a linear reservoir needs spectral radius < 1, got {radius:.6g}")
    k = len(eigenvalues)
    # |c_j| ≲ C(j, k) ρ^j: enough points that the aliased tail is below ≈ 1e-30.
    needed = max(4 * (max_lag + 1), 64, int((70 + k * np.log(max(k, 2) * 8)) / max(-np.log(radius), 1e-12)) + 1)
    length = 1 << int(np.ceil(np.log2(needed)))
    if length > 1 << 24:
        raise ConfigError(f"memory.capacity.esn.rho: spectral radius {radius:.6g} too close to 1 for the exact MC")
    return np.abs(blaschke_coefficients(eigenvalues, length)) ** 2


def exact_linear_capacity(weights: np.ndarray, max_lag: int) -> np.ndarray:
    """MC_l, l = 0..max_lag, of the linear reservoir x(t) = W x(t−1) + w_in ν(t) with infinite data.

    Why not C⁻¹: the optimal read-out's MC_l = var(ν) g_lᵀ C⁻¹ g_l (g_l = W^l w_in, C the Lyapunov state covariance)
    needs C⁻¹, and C of a Gaussian W at ρ = 0.95 has condition number ≈ 10¹² at k = 20 and beyond 10¹⁶ at k = 50,
    so float64 loses the answer. In W's eigenbasis the same quantity is the leverage of a Cauchy-like (Pick) matrix,
    which for any w_in exciting every mode (almost surely) equals MC_l = Σ_{j>l} |c_j|², c_j the Taylor coefficients
    of the Blaschke product B with zeros at W's eigenvalues. So MC depends on the spectrum of W only, and
    Σ_{l≥0} MC_l = Σ_j j |c_j|² = k (the degree of B): Jaeger's MC = k, counting the lag l = 0 the protocol leaves
    out. W and Wᵀ share eigenvalues, so the row-vector convention of :func:`esn_states` does not matter.
    """
    power = _blaschke_power(weights, max_lag)
    tail = np.cumsum(power[::-1])[::-1]  # tail[j] = Σ_{i≥j} |c_i|², summed from the small end
    return np.append(tail[1:], 0.0)[: max_lag + 1]


def exact_all_lags(weights: np.ndarray) -> float:
    """Σ_{l≥0} MC_l = Σ_j j |c_j|² of the linear reservoir with recurrent matrix W: k up to rounding (a check)."""
    power = _blaschke_power(weights, 1)
    return float(np.dot(np.arange(len(power)), power))


def family_settings(settings: CapacitySettings, reservoir: str, **changes: object) -> CapacitySettings:
    """The settings of one ESN family (:data:`FAMILIES`), other fields changed as given; same seeds and inputs."""
    if reservoir not in FAMILIES:
        raise ConfigError(f"memory.capacity: unknown reservoir family {reservoir!r}; one of {sorted(FAMILIES)}")
    return dataclasses.replace(settings, orthogonal=FAMILIES[reservoir], **changes)


def input_scale_table(k: int, scales: list[float], settings: CapacitySettings) -> pd.DataFrame:
    """Total MC at size k against the input scale, for both ESN families (the settings' activation, ρ, seeds)."""
    rows = []
    for reservoir in FAMILIES:
        for scale in scales:
            per_reservoir = esn_capacity_per_reservoir(k, family_settings(settings, reservoir, input_scale=scale))
            rows.append({"reservoir": reservoir, "input_scale": float(scale), **totals_per_k(k, per_reservoir)})
    return pd.DataFrame(rows)[INPUT_SCALE_COLUMNS]


def linear_table(sizes: list[int], settings: CapacitySettings) -> pd.DataFrame:
    """Exact (infinite data) against estimated total MC over the lags 1..max_lag of linear ESNs of both families.

    ``exact`` and ``estimated`` are means over the R reservoirs (each reservoir has its own W), ``error`` the mean
    of the per-reservoir differences estimated − exact; ``exact_all_lags`` the mean of Σ_{l≥0} MC_l (= k).
    """
    rows = []
    for k in sizes:
        for reservoir in FAMILIES:
            linear = family_settings(settings, reservoir, activation="linear")
            weights, _ = esn_reservoirs(k, linear)
            exact = np.array([exact_linear_capacity(w, linear.max_lag)[1:].sum() for w in weights])
            estimated = esn_capacity_per_reservoir(k, linear).sum(axis=1)
            error = estimated - exact
            rows.append({"k": k, "reservoir": reservoir, "exact": float(exact.mean()), "exact_std": _std(exact),
                         "exact_all_lags": float(np.mean([exact_all_lags(w) for w in weights])),
                         "estimated": float(estimated.mean()), "estimated_std": _std(estimated),
                         "error": float(error.mean()), "error_std": _std(error), "reservoirs": len(weights)})
    return pd.DataFrame(rows)[LINEAR_COLUMNS]


def _std(values: np.ndarray) -> float:
    """Standard deviation over reservoirs (ddof 1; 0 for a single reservoir), as :func:`totals_per_k`."""
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0
