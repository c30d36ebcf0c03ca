"""Memory analyses of report §2: gradient statistics, D(l, k) and memory capacity."""

from rnnmem.core.errors import RnnmemError


class NonFiniteStatesError(RnnmemError, RuntimeError):
    """Hidden or reservoir states became NaN or infinite (e.g. a weight scale so large that W_h h overflows):
    the run stops instead of writing NaN tables."""
