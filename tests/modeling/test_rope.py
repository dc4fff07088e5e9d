"""Axial RoPE: tables and rotations against a direct float64 formula, key tiling, exclusion."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sam2.modeling.memory_attention import RoPEAttention
from sam2.modeling.rope import apply_rotary_enc, compute_axial_cis


def angles64(dim: int, end_x: int, end_y: int, theta: float) -> torch.Tensor:
    """float64 ``(end_x * end_y, dim / 2)``: column angles for the first half, row angles after."""
    n = torch.arange(end_x * end_y, dtype=torch.float64)
    x, y = n % end_x, torch.floor(n / end_x)
    freqs = theta ** (-4 * torch.arange(dim // 4, dtype=torch.float64) / dim)
    return torch.cat([x[:, None] * freqs, y[:, None] * freqs], dim=1)


def rotate64(t: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs ``(2m, 2m + 1)`` of ``t (..., N, D)`` by ``angles (N, D / 2)``."""
    t = t.double()
    a, b = t[..., 0::2], t[..., 1::2]
    cos, sin = angles.cos(), angles.sin()
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


@pytest.mark.parametrize(("dim", "end_x", "end_y", "theta"), [(32, 64, 64, 10000.0), (256, 8, 8, 10000.0),
                                                              (16, 4, 6, 100.0)])
def test_table_matches_formula(dim: int, end_x: int, end_y: int, theta: float) -> None:
    cis = compute_axial_cis(dim, end_x, end_y, theta)
    assert cis.dtype == torch.complex64 and cis.shape == (end_x * end_y, dim // 2)
    expected = torch.polar(torch.ones(1, dtype=torch.float64), angles64(dim, end_x, end_y, theta))
    # float32 angles up to ~90 rad: absolute error a few 1e-6
    torch.testing.assert_close(cis.to(torch.complex128), expected, atol=2e-5, rtol=0)


def test_table_layout() -> None:
    """Column index drives the first half, row index the second; frequency 0 is 1 rad/step."""
    cis = compute_axial_cis(8, 3, 2)
    angle = torch.angle(cis)
    token = 1 * 3 + 2  # row 1, column 2
    torch.testing.assert_close(angle[token], torch.tensor([2.0, 0.02, 1.0, 0.01]))


def test_rotation_matches_formula() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 16, 32), torch.randn(2, 3, 16, 32)
    q_out, k_out = apply_rotary_enc(q, k, compute_axial_cis(32, 4, 4))
    ang = angles64(32, 4, 4, 10000.0)
    torch.testing.assert_close(q_out.double(), rotate64(q, ang), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k_out.double(), rotate64(k, ang), atol=1e-5, rtol=1e-5)
    assert q_out.dtype == q.dtype


def test_rotation_keeps_input_dtype() -> None:
    q = torch.randn(1, 1, 4, 8, dtype=torch.bfloat16)
    q_out, _ = apply_rotary_enc(q, q, compute_axial_cis(8, 2, 2))
    assert q_out.dtype == torch.bfloat16


def test_scores_depend_on_relative_position_only() -> None:
    torch.manual_seed(0)
    cis = compute_axial_cis(16, 5, 5)
    qv, kv = torch.randn(16), torch.randn(16)
    q, k = qv.expand(1, 1, 25, 16), kv.expand(1, 1, 25, 16)
    q_out, k_out = apply_rotary_enc(q.double(), k.double(), cis.to(torch.complex128))
    scores = q_out[0, 0] @ k_out[0, 0].T

    def idx(r: int, c: int) -> int:
        return r * 5 + c

    torch.testing.assert_close(scores[idx(0, 0), idx(1, 2)], scores[idx(2, 1), idx(3, 3)])
    torch.testing.assert_close(scores[idx(3, 0), idx(0, 3)], scores[idx(4, 1), idx(1, 4)])
    assert not torch.isclose(scores[idx(0, 0), idx(1, 2)], scores[idx(0, 0), idx(2, 1)])


def test_key_tiling() -> None:
    """Each stacked copy of the query grid is rotated exactly like the queries."""
    torch.manual_seed(0)
    cis = compute_axial_cis(8, 3, 3)
    q, k = torch.randn(1, 2, 9, 8), torch.randn(1, 2, 27, 8)
    q_out, k_out = apply_rotary_enc(q, k, cis, repeat_freqs_k=True)
    for r in range(3):
        chunk = k[:, :, 9 * r:9 * (r + 1)]
        # not bitwise: CPU complex products differ in the last bit between vector and tail lanes
        torch.testing.assert_close(k_out[:, :, 9 * r:9 * (r + 1)], apply_rotary_enc(chunk, chunk, cis)[0],
                                   atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="whole number"):
        apply_rotary_enc(q, k[:, :, :20], cis, repeat_freqs_k=True)
    with pytest.raises(ValueError, match="repeat_freqs_k"):
        apply_rotary_enc(q, k, cis)


def test_empty_keys_pass_through() -> None:
    q, k = torch.randn(1, 1, 4, 8), torch.randn(1, 1, 0, 8)
    _, k_out = apply_rotary_enc(q, k, compute_axial_cis(8, 2, 2), repeat_freqs_k=True)
    assert k_out is k


def test_rope_attention_excludes_trailing_keys() -> None:
    """Cross-attention = SDPA over (rotated grid copies + unrotated pointer tokens), float64 check."""
    torch.manual_seed(0)
    attn = RoPEAttention(16, kv_in_dim=8, feat_sizes=(4, 4), rope_k_repeat=True).double().eval()
    q_in, kv_in = torch.randn(2, 16, 16, dtype=torch.float64), torch.randn(2, 2 * 16 + 5, 8, dtype=torch.float64)
    out = attn(q_in, kv_in, kv_in, num_k_exclude_rope=5)
    ang = angles64(16, 4, 4, 10000.0)
    q = rotate64(attn.q_proj(q_in), ang)
    k = attn.k_proj(kv_in)
    k = torch.cat([rotate64(k[:, :16], ang), rotate64(k[:, 16:32], ang), k[:, 32:]], dim=1)
    w = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(16), dim=-1)
    expected = attn.out_proj(w @ attn.v_proj(kv_in))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_rope_attention_grid_size() -> None:
    """A query count other than ``feat_sizes`` gets a square grid of its own; non-square raises."""
    torch.manual_seed(0)
    attn = RoPEAttention(8, feat_sizes=(4, 4)).eval()
    x = torch.randn(1, 9, 8)
    q = attn.split_heads(attn.q_proj(x))
    k = attn.split_heads(attn.k_proj(x))
    v = attn.split_heads(attn.v_proj(x))
    q, k = apply_rotary_enc(q, k, compute_axial_cis(8, 3, 3))
    expected = attn.out_proj(attn.merge_heads(F.scaled_dot_product_attention(q, k, v)))
    torch.testing.assert_close(attn(x, x, x), expected, atol=0, rtol=0)
    with pytest.raises(ValueError, match="square"):
        attn(torch.randn(1, 8, 8), torch.randn(1, 8, 8), torch.randn(1, 8, 8))
    with pytest.raises(ValueError, match="rope_k_repeat"):
        attn(x, torch.randn(1, 18, 8), torch.randn(1, 18, 8))
