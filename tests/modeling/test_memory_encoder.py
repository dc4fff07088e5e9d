"""Memory encoder: official state-dict layout and parity with the captured official calls.

The fixtures store the encoder's 1024x1024 mask input only as every 4th pixel (plus a summary and
a 16x16 corner crop). On tracked frames that input is ``20 * sigmoid(up(L)) - 10`` where ``up`` is
the bilinear (half-pixel) 4x upsampling of 256x256 logits ``L``, or the constant -10 when the object
is absent. The samples at rows/columns ``4i`` are ``0.625 L[i] + 0.375 L[i - 1]`` (``L[0]`` for
``i = 0``) in each axis, so ``L`` follows from them by inverting that bidiagonal matrix; the test
checks the reconstruction against the samples, the crop and the summary before using it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2.config import MemoryEncoderConfig, get_preset
from sam2.config_yaml import load_yaml_config
from sam2.modeling.memory_encoder import CXBlock, MemoryEncoder
from tests import reference as R

MICRO = MemoryEncoderConfig(in_dim=32, out_dim=16, downsampler_embed_dim=32)
PREFIX = "memory_encoder."


def reconstruct_mask(sc: R.Scenario, summary: dict, stride4: np.ndarray) -> torch.Tensor:
    """Full ``(1, 1, 1024, 1024)`` mask input from its every-4th-pixel samples."""
    if summary["std"] == 0.0:
        return torch.full(summary["shape"], summary["mean"], dtype=torch.float32)
    samples = stride4[0, 0].astype(np.float64)
    p = (samples + 10) / 20
    assert 0 < p.min() and p.max() < 1, "saturated mask values: logits not recoverable"
    n = samples.shape[0]
    b = np.diag(np.full(n, 0.625)) + np.diag(np.full(n - 1, 0.375), -1)
    b[0, 0] = 1.0
    b_inv = np.linalg.inv(b)
    logits = b_inv @ np.log(p / (1 - p)) @ b_inv.T
    up = F.interpolate(torch.tensor(logits, dtype=torch.float32)[None, None], scale_factor=4,
                       mode="bilinear", align_corners=False)
    mask = torch.sigmoid(up) * 20 - 10
    crop = sc.arrays[summary["crop"]["npz_key"]]
    assert np.abs(mask[..., ::4, ::4].numpy() - stride4).max() < 1e-5
    assert np.abs(mask[..., :16, :16].numpy() - crop).max() < 1e-5
    assert abs(mask.mean().item() - summary["mean"]) < 1e-5
    assert abs(mask.std().item() - summary["std"]) < 1e-5
    mask[..., ::4, ::4] = torch.from_numpy(stride4)
    return mask


@pytest.mark.parametrize("model", ["sam2.1_hiera_micro", "sam2_hiera_micro", "sam2.1_hiera_t"])
@R.requires_reference
def test_state_dict_matches_manifest(model: str) -> None:
    cfg = MICRO if "micro" in model else get_preset(model).memory_encoder
    module = MemoryEncoder(cfg)
    ours = [(k, list(v.shape)) for k, v in module.state_dict().items()]
    assert ours == R.manifest_entries(model, PREFIX)
    zeros = {k: torch.zeros(shape) for k, shape in R.manifest_entries(model, PREFIX)}
    module.load_state_dict(zeros, strict=True)


@R.requires_reference
def test_micro_yaml_gives_micro_config() -> None:
    path = R.REFERENCE_DIR / "configs" / "micro" / "sam2.1_hiera_micro.yaml"
    assert load_yaml_config(path).model.memory_encoder == MICRO


def test_mismatched_downsampler_width_raises() -> None:
    with pytest.raises(ValueError, match="in_dim"):
        MemoryEncoder(MemoryEncoderConfig(in_dim=32, out_dim=16, downsampler_embed_dim=64))


@R.requires_reference
@pytest.mark.parametrize(("name", "index"), R.capture_cases("memory_encoder"))
def test_matches_official_capture(name: str, index: int, record_error) -> None:
    sc = R.load_scenario(name)
    entry = sc.spec["memory_capture"]["memory_encoder"][index]
    w = sc.spec["weights"]
    state = R.synth_module().synth_state_dict(str(R.manifest_path(sc.model)), seed=w["seed"],
                                             overrides=w.get("overrides") or None)
    module = MemoryEncoder(MICRO).eval()
    module.load_state_dict(R.sub_state_dict(state, PREFIX), strict=True)

    masks = entry["masks"]
    mask = reconstruct_mask(sc, masks["summary"], sc.arrays[masks["every_4th_pixel"]["npz_key"]])
    pix_feat = torch.from_numpy(sc.expected(entry["pix_feat"]).astype(np.float32))
    with torch.no_grad():
        out = module(pix_feat, mask, skip_mask_sigmoid=entry["skip_mask_sigmoid"])
    feats, (pos,) = out["vision_features"], out["vision_pos_enc"]
    # The float16 storage of pix_feat alone accounts for about 2e-4.
    err = R.video_error(feats, sc.expected(entry["vision_features"]))
    record_error(name, "memory encoder rel L2", err)
    assert err <= R.REL_L2_VIDEO, f"{name} vision_features {index}: relative L2 error {err:.3g}"

    ref_pos = entry["vision_pos_enc"]["summary"]
    assert list(pos.shape) == ref_pos["shape"]
    np.testing.assert_allclose(pos[..., :16, :16].numpy(), sc.arrays[ref_pos["crop"]["npz_key"]], atol=1e-6)
    np.testing.assert_allclose(pos.mean((0, 2, 3)).numpy(), sc.arrays[ref_pos["channel_mean"]["npz_key"]],
                               atol=1e-6)
    assert abs(pos.mean().item() - ref_pos["mean"]) < 1e-6
    assert abs(pos.std().item() - ref_pos["std"]) < 1e-6


def test_cx_block_matches_direct_formula() -> None:
    """Depthwise conv, channel layer norm, pointwise MLP (exact GELU), gamma, residual."""
    torch.manual_seed(0)
    block = CXBlock(8).double()
    with torch.no_grad():
        block.gamma.normal_()
        x = torch.randn(2, 8, 9, 9, dtype=torch.float64)
        y = F.conv2d(x, block.dwconv.weight, block.dwconv.bias, padding=3, groups=8)
        y = (y - y.mean(1, keepdim=True)) / torch.sqrt(y.var(1, unbiased=False, keepdim=True) + 1e-6)
        y = y * block.norm.weight[:, None, None] + block.norm.bias[:, None, None]
        h = torch.einsum("bchw,oc->bohw", y, block.pwconv1.weight) + block.pwconv1.bias[:, None, None]
        h = 0.5 * h * (1 + torch.erf(h / 2**0.5))
        h = torch.einsum("bchw,oc->bohw", h, block.pwconv2.weight) + block.pwconv2.bias[:, None, None]
        expected = x + block.gamma[:, None, None] * h
        torch.testing.assert_close(block(x), expected)
