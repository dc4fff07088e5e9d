"""The inference shortcuts of the Hiera trunk and memory attention give the same numbers as the plain path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sam2.config import HieraConfig
from sam2.modeling.hiera import Hiera, add_windows, pool_2x2, window_partition, window_unpartition
from sam2.modeling.memory_attention import KEY_TABLES_KEPT, RoPEAttention
from sam2.modeling.rope import apply_rotary_enc, rotate


def _max_pool_reference(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=2, stride=2).permute(0, 2, 3, 1)


@pytest.mark.parametrize("shape", [(2, 8, 6, 5), (1, 7, 9, 3)])
def test_pool_without_autograd_matches_max_pool(shape):
    x = torch.randn(shape)
    x[0, 1, 1, 0] = float("nan")
    out = pool_2x2(x)
    assert out.is_contiguous()
    torch.testing.assert_close(out, _max_pool_reference(x), rtol=0, atol=0, equal_nan=True)
    strided = torch.randn(shape[0], shape[3], shape[1], shape[2]).permute(0, 2, 3, 1)  # NCHW storage
    strided[0, 1, 1, 0] = float("nan")
    torch.testing.assert_close(pool_2x2(strided), _max_pool_reference(strided), rtol=0, atol=0, equal_nan=True)
    sliced = torch.randn(shape[0], shape[1], shape[2], 3 * shape[3])[..., : shape[3]]  # like q inside qkv
    torch.testing.assert_close(pool_2x2(sliced), _max_pool_reference(sliced), rtol=0, atol=0)


def test_pool_with_autograd_keeps_max_pool_gradient_on_ties():
    x = torch.zeros(1, 2, 2, 1, requires_grad=True)  # a four-way tie
    pool_2x2(x).sum().backward()
    assert x.grad.sum().item() == 1.0 and x.grad.count_nonzero().item() == 1


def test_add_windows_equals_unpartition_then_add():
    shortcut = torch.randn(2, 16, 24, 8)
    parts, padded = window_partition(torch.randn(2, 16, 24, 8), 8)
    expected = shortcut + window_unpartition(parts, 8, padded, (16, 24))
    assert torch.equal(add_windows(shortcut, parts, 8), expected)


def test_add_windows_declines_padding_and_strided_shortcut():
    parts, _ = window_partition(torch.randn(1, 10, 10, 4), 8)
    assert add_windows(torch.randn(1, 10, 10, 4), parts, 8) is None
    parts, _ = window_partition(torch.randn(1, 8, 8, 4), 8)
    assert add_windows(torch.randn(1, 4, 8, 8).permute(0, 2, 3, 1), parts, 8) is None


def _tiny_trunk() -> Hiera:
    torch.manual_seed(0)
    cfg = HieraConfig(embed_dim=8, num_heads=1, stages=(1, 2), global_att_blocks=(), window_spec=(4, 4),
                      window_pos_embed_bkg_spatial_size=(4, 4))
    trunk = Hiera(cfg).eval()
    with torch.no_grad():
        for p in trunk.parameters():
            p.normal_()
    return trunk


def test_pos_embed_table_is_reused_and_rebuilt_after_a_weight_change():
    trunk = _tiny_trunk()
    with torch.no_grad():
        first = trunk._pos_embed((8, 8))
        assert trunk._pos_embed((8, 8)) is first
        assert first.is_contiguous() and first.shape == (1, 8, 8, 8)
        trunk.pos_embed.add_(1.0)
        changed = trunk._pos_embed((8, 8))
    assert not torch.equal(changed, first)
    fresh = F.interpolate(trunk.pos_embed.detach(), size=(8, 8), mode="bicubic")
    fresh = fresh + trunk.pos_embed_window.detach().tile(1, 1, 2, 2)
    assert torch.equal(changed, fresh.permute(0, 2, 3, 1))
    with torch.enable_grad():
        assert trunk._pos_embed((8, 8)).requires_grad  # autograd: built anew, never the cached table


@pytest.mark.parametrize("side", [32, 48])  # 48: stage 2 has 6x6 tokens, padded to its 4x4 windows
def test_trunk_forward_with_and_without_autograd_agree(side):
    trunk = _tiny_trunk()
    x = torch.randn(2, 3, side, side)
    with torch.inference_mode():
        fast = trunk(x)
    slow = trunk(x)  # grad enabled: max_pool2d, unpartition then add, no cached table
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-6)


def test_key_table_rotation_equals_rotating_then_concatenating():
    attn = RoPEAttention(16, kv_in_dim=8, feat_sizes=(3, 3), rope_k_repeat=True)
    q = torch.randn(2, 1, 9, 16)
    k = torch.randn(2, 1, 3 * 9 + 5, 16)
    cis = attn.rope_table(9, q.device)
    _, rotated = apply_rotary_enc(q, k[:, :, :27], cis, repeat_freqs_k=True)
    out = rotate(k, attn.key_table(9, 32, 5, q.device))
    assert torch.equal(out[:, :, :27], rotated)
    assert torch.equal(out[:, :, 27:], k[:, :, 27:])
    assert attn.key_table(9, 32, 5, q.device) is attn.key_table(9, 32, 5, q.device)
    for n in range(KEY_TABLES_KEPT + 2):
        attn.key_table(9, 9 * (n + 1), 0, q.device)
    assert len(attn._key_cache) <= KEY_TABLES_KEPT
    with pytest.raises(ValueError, match="whole number of 9-token grids"):
        attn.key_table(9, 20, 0, q.device)
