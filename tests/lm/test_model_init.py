"""Initial parameters of the chorale models: the seed regime's ``bias`` (zero, as the report's annex code, or
N(0, 1) like the weights) changes the biases alone, and ``normal`` draws what the models drew before the key."""

from __future__ import annotations

import pytest
import torch
from regimes import LM_BLOCKS, lm_settings

from rnnmem.core.errors import ConfigError
from rnnmem.lm.model import TokenLM
from rnnmem.lm.settings import regime_settings
from rnnmem.lm.train import build_model

VOCAB = 12
CASES = [("vanilla", "logistic", None), ("vanilla", "tanh", None), ("gru", "logistic", None),
         ("lstm", "logistic", None), ("gru", "logistic", 4)]
CASE_IDS = ["vanilla_logistic", "vanilla_tanh_fused", "gru", "lstm_fused", "gru_embedding"]


def _state(model: TokenLM) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("kind", "activation", "embedding"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("init", ["normal", "uniform"])
def test_zero_bias_zeroes_the_biases_and_keeps_the_weights(kind: str, activation: str, embedding: int | None,
                                                           init: str) -> None:
    """Each bias is drawn after its weights, so zeroing it leaves every weight (and the embedding) as drawn."""
    drawn = _state(TokenLM(kind, VOCAB, 5, embedding, activation=activation, init=init, seed=3))
    zero = _state(TokenLM(kind, VOCAB, 5, embedding, activation=activation, init=init, seed=3, zero_bias=True))
    assert drawn.keys() == zero.keys()
    for key, value in zero.items():
        if "bias" in key:
            assert torch.equal(value, torch.zeros_like(value)), key
        else:
            assert torch.equal(value, drawn[key]), key
    assert bool((drawn["readout.bias"] != 0).all())


@pytest.mark.parametrize("kind", ["vanilla", "gru", "lstm"])
def test_normal_bias_keeps_the_old_draws(kind: str) -> None:
    """Without zero_bias every parameter is N(0, 1), in order, from the generators the model always used: 3s for
    the recurrence (weight_ih, weight_hh, bias), 3s + 1 for the read-out (weight, then bias)."""
    seed = 2
    model = TokenLM(kind, VOCAB, 5, seed=seed, fused=False)
    assert model.cell is not None
    generator = torch.Generator().manual_seed(3 * seed)
    for name in ("weight_ih", "weight_hh", "bias"):
        value = getattr(model.cell, name)[0]
        assert torch.equal(value, torch.randn(value.shape, generator=generator)), name
    generator = torch.Generator().manual_seed(3 * seed + 1)
    for name in ("weight", "bias"):
        value = getattr(model.readout, name)
        assert torch.equal(value, torch.randn(value.shape, generator=generator)), name


def test_build_model_follows_the_seed_bias() -> None:
    """The seed regime's ``bias`` reaches the model; the modern regime keeps its drawn biases."""
    zero = build_model("gru", VOCAB, 5, lm_settings("seed", 1, bias="zero"), 3)
    normal = build_model("gru", VOCAB, 5, lm_settings("seed", 1, bias="normal"), 3)
    modern = build_model("gru", VOCAB, 5, lm_settings("modern", 1), 3)
    for model in (zero, normal, modern):
        assert model.cell is not None
    assert torch.equal(zero.readout.bias, torch.zeros(VOCAB)) and not zero.cell.bias.any()
    assert normal.readout.bias.all() and normal.cell.bias.all()
    assert modern.readout.bias.all() and modern.cell.bias.all()
    assert torch.equal(zero.readout.weight, normal.readout.weight)
    assert torch.equal(zero.cell.weight_hh, normal.cell.weight_hh)


def test_seed_bias_is_checked_when_built() -> None:
    """bias: zero or normal, else a one-line ConfigError naming the key; the modern regime has no such key."""
    block = {**LM_BLOCKS["seed"], "max_epochs": 1}
    assert regime_settings("seed", {**block, "bias": "zero"}).zero_bias
    assert not regime_settings("seed", {**block, "bias": "normal"}).zero_bias
    assert not regime_settings("modern", {**LM_BLOCKS["modern"], "max_epochs": 1}).zero_bias
    with pytest.raises(ConfigError) as info:
        regime_settings("seed", {**block, "bias": "x"})
    assert str(info.value) == "lm.regimes.seed.bias: expected zero or normal, got 'x'"
    with pytest.raises(ConfigError, match=r"^lm\.regimes\.seed: missing key\(s\) \['bias'\]$"):
        regime_settings("seed", {k: v for k, v in block.items() if k != "bias"})
    with pytest.raises(ConfigError, match=r"^lm\.regimes\.modern: unknown key\(s\) \['bias'\]"):
        regime_settings("modern", {**LM_BLOCKS["modern"], "max_epochs": 1, "bias": "zero"})
