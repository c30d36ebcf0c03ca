"""Sizes of the report's cells (§1.2): parameter counts and the hidden size of a parameter budget.

Plain arithmetic, no torch: the Snakefile resolves ``match_params_of`` with it when it is parsed (see
:mod:`rnnmem.reber.experiment_spec`), and :mod:`rnnmem.core.cells` builds its modules from the same gate counts.
"""

from __future__ import annotations

MODEL_KINDS = ("vanilla", "gru", "lstm")
GATES = {"vanilla": 1, "gru": 3, "lstm": 4}
MAX_HIDDEN = 4096  # matched_hidden considers sizes 1 … MAX_HIDDEN − 1


def recurrent_parameter_count(kind: str, input_size: int, hidden: int) -> int:
    """Weights and biases of the recurrence alone (no output layer), as in the report's equations."""
    return GATES[kind] * (input_size * hidden + hidden * hidden + hidden)


def parameter_count(kind: str, input_size: int, hidden: int, output_size: int) -> int:
    """Recurrence plus the linear read-out y_t = O h_t + b'."""
    return recurrent_parameter_count(kind, input_size, hidden) + hidden * output_size + output_size


def matched_hidden(kind: str, input_size: int, output_size: int, target_params: int) -> int:
    """Hidden size whose parameter count is closest to ``target_params`` (ties go to the smaller net)."""
    return min(
        range(1, MAX_HIDDEN),
        key=lambda h: (abs(parameter_count(kind, input_size, h, output_size) - target_params), h),
    )
