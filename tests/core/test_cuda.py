"""The CUDA paths: training, exact resumption, loading on CPU and sampling on a GPU (skipped without one).

Run on a GPU machine with ``python -m pytest tests/core/test_cuda.py``. The jobs' settings apply: deterministic
algorithms on (``rnnmem.core.runtime.configure_torch``), so an op without a deterministic CUDA kernel fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from regimes import lm_settings, reber_regime

from rnnmem.core.runtime import configure_torch
from rnnmem.lm.model import TokenLM
from rnnmem.lm.train import TrainingStopped, load_trained, train_lm
from rnnmem.reber.experiment_spec import Experiment
from rnnmem.reber.experiments import run_experiment
from tests.lm.test_lm_train import TIME_COLUMNS, _assert_same_weights, _tiny_data

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.fixture(autouse=True)
def job_settings():
    """What every job sets (deterministic kernels), undone afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    configure_torch()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.mark.parametrize("regime", [reber_regime("seed"), reber_regime("modern")], ids=["seed", "modern"])
@pytest.mark.parametrize("kind", ["vanilla", "gru", "lstm"])
def test_reber_ensemble_on_cuda_is_deterministic_and_agrees_with_cpu(regime, kind):
    experiment = Experiment("tiny", "embedded_reber", kind, 4)
    runs = [run_experiment(experiment, regime, [0, 1], 16, 16, 64, 32, device) for device in (CUDA, CUDA, CPU)]
    (gpu_a, table_a, _), (gpu_b, table_b, _), (cpu, table_cpu, _) = runs
    _assert_same_weights(gpu_a, gpu_b)
    assert table_a.equals(table_b)
    for (name, on_gpu), (_, on_cpu) in zip(gpu_a.named_parameters(), cpu.named_parameters(), strict=True):
        torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-3, atol=1e-3, msg=name)
    assert list(table_a["strings_presented"]) == list(table_cpu["strings_presented"])


@pytest.mark.parametrize(("regime", "kind", "stop"), [("modern", "gru", 4), ("modern", "lstm", 7),
                                                      ("seed", "vanilla", 17), ("seed", "gru", 9)])
def test_lm_resume_on_cuda_is_exact_and_loads_on_cpu(tmp_path, regime, kind, stop):
    settings = lm_settings(regime, 4)
    data = _tiny_data()

    def run(name, **kwargs):
        return train_lm(data, kind, 7, settings, 3, tmp_path / f"{name}.pt", CUDA, **kwargs)

    full, full_curve = run("full")
    assert next(full.parameters()).is_cuda
    with pytest.raises(TrainingStopped):
        run("cut", stop_after_steps=stop)
    resumed, resumed_curve = run("cut")
    _assert_same_weights(full, resumed)
    assert full_curve.drop(columns=TIME_COLUMNS).equals(resumed_curve.drop(columns=TIME_COLUMNS))
    on_cpu, _ = load_trained(tmp_path / "cut.pt", CPU)
    ids = torch.tensor([data.ids["test"][0]])
    with torch.no_grad():
        torch.testing.assert_close(on_cpu.eval()(ids), full.eval()(ids.to(CUDA)).cpu(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["vanilla", "gru", "lstm"])
def test_stateful_sampling_on_cuda(kind):
    sampling = pytest.importorskip("rnnmem.lm.sampling", reason="needs music21 (the token markers)")
    vocab = ["<unk>", "<s>", "</s>", "|", "c'4", "d'4", "e'4"]
    model = TokenLM(kind, len(vocab), 6, 3, init="uniform", seed=5)
    prefixes = [[1, 4, 5], [1, 6, 6]]
    on_cpu = sampling.stateful_next_logits(model, "cpu")
    expected = [on_cpu([p[:n] for p in prefixes]) for n in (1, 2, 3)]
    model.to(CUDA)
    on_gpu = sampling.stateful_next_logits(model)
    for n, want in zip((1, 2, 3), expected, strict=True):
        np.testing.assert_allclose(on_gpu([p[:n] for p in prefixes]), want, rtol=1e-4, atol=1e-4)
    samples = sampling.sample_sequences(sampling.stateful_next_logits(model), vocab, 1.0, 3, 20, seed=1)
    assert len(samples) == 3 and all(0 < len(s) <= 20 for s in samples)
