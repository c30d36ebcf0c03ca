"""Job settings of torch (rnnmem.core.runtime): deterministic algorithms on, without loading torch's compiler."""

from __future__ import annotations

import subprocess
import sys

PROBE = (
    "import sys, torch; from rnnmem.core.runtime import configure_torch; configure_torch(1); "
    "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(), "
    "torch.get_num_threads(), 'torch._inductor' in sys.modules)"
)


def test_configure_torch_turns_determinism_on_without_importing_the_compiler():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "1", "False"]


def test_configure_torch_keeps_the_compiler_config_in_step_when_it_is_loaded():
    probe = "import torch._inductor.config as c; " + PROBE + "; print(c.deterministic)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "1", "True", "True"]
