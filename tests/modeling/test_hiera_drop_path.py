"""Stochastic depth in the Hiera trunk (the official fine-tune recipe trains with drop_path_rate 0.1)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from sam2.config import HieraConfig
from sam2.config_yaml import load_yaml_config
from sam2.modeling.hiera import Hiera, MultiScaleBlock, stochastic_depth

SMALL = HieraConfig(embed_dim=8, num_heads=1, stages=(1, 2, 2, 1), global_att_blocks=(3,),
                    window_spec=(4, 4, 4, 2), window_pos_embed_bkg_spatial_size=(4, 4))


def test_rates_grow_linearly_to_the_configured_rate():
    trunk = Hiera(replace(SMALL, drop_path_rate=0.3))
    rates = [b.drop_path for b in trunk.blocks if isinstance(b, MultiScaleBlock)]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert rates == sorted(rates) and len(set(rates)) == len(rates)


def test_eval_mode_and_zero_rate_are_exactly_the_plain_trunk():
    torch.manual_seed(0)
    plain = Hiera(SMALL)
    dropping = Hiera(replace(SMALL, drop_path_rate=0.5))
    dropping.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    plain.eval(), dropping.eval()
    for a, b in zip(plain(x), dropping(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    plain.train()
    ref = plain(x)
    for a, b in zip(ref, plain(x)):  # rate 0 draws nothing: deterministic in training too
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_drops_whole_samples_and_keeps_the_expectation():
    torch.manual_seed(0)
    branch = torch.ones(4000, 3, 2)
    out = stochastic_depth(branch, 0.25, training=True)
    per_sample = out.flatten(1)
    values = per_sample.unique()
    assert len(values) == 2 and values[0] == 0.0 and values[1].item() == pytest.approx(1 / 0.75)
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)  # a sample is kept or dropped whole
    assert out.mean().item() == pytest.approx(1.0, abs=0.05)
    assert torch.equal(stochastic_depth(branch, 0.25, training=False), branch)


def test_official_yaml_value_reaches_the_trunk(tmp_path):
    from tests.reference import REFERENCE_DIR

    src = REFERENCE_DIR / "configs" / "micro" / "sam2.1_hiera_micro.yaml"
    if not src.is_file():
        pytest.skip("reference micro config not found")
    text = src.read_text()
    assert "drop_path_rate" not in text
    patched = text.replace("embed_dim: 16", "embed_dim: 16\n      drop_path_rate: 0.1", 1)
    assert patched != text
    path = tmp_path / "micro_dp.yaml"
    path.write_text(patched)
    assert load_yaml_config(path).model.trunk.drop_path_rate == pytest.approx(0.1)
