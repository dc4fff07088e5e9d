"""Exportable wrappers of the two video-only graphs: memory attention and memory encoder.

Both reuse the model's own modules (same weights, same op order). The memory attention is rewritten
in real arithmetic: RoPE rotates channel pairs with cos/sin tables instead of complex numbers (ONNX
has no complex type), and the spatial memory is a ``(num_frames, h*w, mem_dim)`` stack so that the
number of memory frames and of object-pointer tokens can change from call to call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sam2.modeling.memory_attention import MemoryAttentionLayer, RoPEAttention
from sam2.modeling.sam2_base import SAM2Base


def rope_tables(attn: RoPEAttention, num_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin (num_tokens, head_dim / 2)`` float32 of the query grid (the model's own table)."""
    cis = attn.rope_table(num_tokens, torch.device("cpu"))
    return cis.real.contiguous(), cis.imag.contiguous()


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs ``(2m, 2m + 1)`` of ``x (..., N, D)`` by angles given as ``cos, sin (N, D / 2)``."""
    pairs = x.reshape(*x.shape[:-1], x.shape[-1] // 2, 2)
    re, im = pairs[..., 0], pairs[..., 1]
    out = torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1)
    return out.reshape(x.shape)


class ExportRoPEAttention(nn.Module):
    """:class:`RoPEAttention` with real cos/sin tables; queries ``(1, HW, C)``.

    Keys/values are ``spatial (1, F * HW, Ckv)`` (F grids, each rotated like the queries) followed by
    ``pointers (1, P, Ckv)`` (not rotated). ``F`` and ``P`` are dynamic; ``P`` may be 0.
    """

    def __init__(self, attn: RoPEAttention, num_tokens: int, rotate_keys: bool) -> None:
        super().__init__()
        self.attn = attn
        self.rotate_keys = rotate_keys
        cos, sin = rope_tables(attn, num_tokens)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_spatial: torch.Tensor | None = None
                ) -> torch.Tensor:
        a = self.attn
        q = rotate_pairs(a.split_heads(a.q_proj(q)), self.cos, self.sin)
        k = a.split_heads(a.k_proj(k))
        v = a.split_heads(a.v_proj(v))
        if not self.rotate_keys:  # self-attention: keys are the query grid
            return a.attend(q, rotate_pairs(k, self.cos, self.sin), v)
        hw, d = self.cos.shape[0], k.shape[-1]
        spatial, pointers = k[:, :, :num_spatial], k[:, :, num_spatial:]
        b, h = spatial.shape[0], spatial.shape[1]
        grids = spatial.reshape(b, h, -1, hw, d)  # (B, heads, F, HW, D): each grid rotated alike
        spatial = rotate_pairs(grids, self.cos, self.sin).reshape(b, h, -1, d)
        return a.attend(q, torch.cat([spatial, pointers], dim=2), v)


class ExportMemoryAttentionLayer(nn.Module):
    """:class:`MemoryAttentionLayer` with :class:`ExportRoPEAttention` (batch-first, B = 1)."""

    def __init__(self, layer: MemoryAttentionLayer, num_tokens: int) -> None:
        super().__init__()
        self.layer = layer
        self.self_attn = ExportRoPEAttention(layer.self_attn, num_tokens, rotate_keys=False)
        self.cross_attn = ExportRoPEAttention(layer.cross_attn_image, num_tokens, rotate_keys=True)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor,
                num_spatial: torch.Tensor) -> torch.Tensor:
        n = self.layer
        a = n.norm1(tgt)
        tgt = tgt + self.self_attn(a, a, a)
        a = n.norm2(tgt)
        tgt = tgt + self.cross_attn(a, memory + memory_pos, memory, num_spatial)
        a = n.norm3(tgt)
        return tgt + n.linear2(F.relu(n.linear1(a)))


class MemoryAttentionGraph(nn.Module):
    """Memory-conditioned features of one frame.

    Inputs: ``image_embed (1, C, h, w)`` raw stride-16 features and ``vision_pos_embed (1, C, h, w)``;
    ``memory (F, h*w, mem_dim)`` / ``memory_pos (F, h*w, mem_dim)``: F spatial memories (frame tokens
    row-major, positions already include the temporal encoding); ``obj_ptr_tokens (P, mem_dim)`` /
    ``obj_ptr_pos (P, mem_dim)``: object-pointer tokens (not rotated by RoPE). -> ``pix_feat (1, C, h, w)``.
    """

    def __init__(self, model: SAM2Base) -> None:
        super().__init__()
        h = model.sam_image_embedding_size
        ma = model.memory_attention
        self.layers = nn.ModuleList(ExportMemoryAttentionLayer(layer, h * h) for layer in ma.layers)
        self.norm = ma.norm

    def forward(self, image_embed, vision_pos_embed, memory, memory_pos, obj_ptr_tokens, obj_ptr_pos):
        b, c, h, w = image_embed.shape
        x = (image_embed + 0.1 * vision_pos_embed).flatten(2).transpose(1, 2)  # (1, HW, C)
        mem_dim = memory.shape[-1]
        num_spatial = memory.shape[0] * memory.shape[1]
        mem = torch.cat([memory.reshape(1, -1, mem_dim), obj_ptr_tokens.unsqueeze(0)], dim=1)
        pos = torch.cat([memory_pos.reshape(1, -1, mem_dim), obj_ptr_pos.unsqueeze(0)], dim=1)
        for layer in self.layers:
            x = layer(x, mem, pos, num_spatial)
        return self.norm(x).transpose(1, 2).reshape(b, c, h, w)


class MemoryEncoderGraph(nn.Module):
    """Memory of one frame from its raw features and its chosen low-res mask logits.

    Inputs: ``image_embed (1, C, h, w)`` raw, ``mask_logits (1, 1, 4h, 4w)``, ``object_score_logits
    (1, 1)``, ``binarize (1,)`` (1.0: threshold the mask at 0 instead of the sigmoid, for prompted
    frames when the config asks for it). -> ``maskmem_features (1, mem_dim, h, w)`` and
    ``maskmem_pos_enc (1, mem_dim, h, w)``. The logits are upsampled to ``S x S`` (bilinear) first.
    """

    def __init__(self, model: SAM2Base) -> None:
        super().__init__()
        t = model.cfg.tracker
        self.image_size = model.image_size
        self.encoder = model.memory_encoder
        self.scale, self.bias = t.sigmoid_scale_for_mem_enc, t.sigmoid_bias_for_mem_enc
        self.no_obj_embed_spatial = model.no_obj_embed_spatial

    def forward(self, image_embed, mask_logits, object_score_logits, binarize):
        size = self.image_size
        high = F.interpolate(mask_logits, size=(size, size), mode="bilinear", align_corners=False)
        b = binarize.reshape(1, 1, 1, 1)
        mask = b * (high > 0).float() + (1.0 - b) * torch.sigmoid(high)
        if self.scale != 1.0:
            mask = mask * self.scale
        if self.bias != 0.0:
            mask = mask + self.bias
        out = self.encoder(image_embed, mask, skip_mask_sigmoid=True)
        feats, pos = out["vision_features"], out["vision_pos_enc"][-1]
        if self.no_obj_embed_spatial is not None:
            absent = 1.0 - (object_score_logits > 0).float()
            feats = feats + absent[..., None, None] * self.no_obj_embed_spatial[..., None, None]
        return feats, pos
