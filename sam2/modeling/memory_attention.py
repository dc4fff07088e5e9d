"""Memory attention: conditions the current frame's features on memories of past frames.

Each layer runs RoPE self-attention over the current frame's tokens, RoPE cross-attention from
those tokens to the memory tokens (spatial memories of earlier frames, then object-pointer tokens,
which are not rotated), and an MLP, all pre-norm with residuals.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sam2.config import MemoryAttentionConfig
from sam2.modeling.common import Attention, cached_table
from sam2.modeling.rope import compute_axial_cis, rotate, tile_cis

# RoPEAttention.key_table entries kept (the memory sizes seen while the memory bank fills up)
KEY_TABLES_KEPT = 8


class RoPEAttention(Attention):
    """Single-head attention with axial RoPE on queries and keys.

    ``q (B, Nq, C)``, ``k, v (B, Nk, Ckv)`` -> ``(B, Nq, C)``. The queries must form a square grid
    (or the ``feat_sizes`` grid); with ``rope_k_repeat`` the keys may be several such grids
    followed by ``num_k_exclude_rope`` tokens that get no rotation.
    """

    def __init__(self, embedding_dim: int, kv_in_dim: int | None = None, dropout: float = 0.0,
                 rope_theta: float = 10000.0, feat_sizes: tuple[int, int] = (64, 64),
                 rope_k_repeat: bool = False) -> None:
        super().__init__(embedding_dim, num_heads=1, dropout=dropout, kv_in_dim=kv_in_dim)
        self.rope_theta = rope_theta
        self.feat_sizes = tuple(feat_sizes)
        self.rope_k_repeat = rope_k_repeat
        self._cis_cache: dict[tuple[int, str], torch.Tensor] = {}
        self._key_cache: dict[tuple[int, int, int, str], torch.Tensor] = {}

    def rope_table(self, num_tokens: int, device: torch.device) -> torch.Tensor:
        """Complex64 ``(num_tokens, head_dim / 2)`` rotations for the query grid (built on CPU)."""
        return cached_table(self._cis_cache, (num_tokens, str(device)), lambda: self._grid_cis(num_tokens, device))

    def _grid_cis(self, num_tokens: int, device: torch.device) -> torch.Tensor:
        end_x, end_y = self.feat_sizes
        if end_x * end_y != num_tokens:
            side = math.isqrt(num_tokens)
            if side * side != num_tokens:
                raise ValueError(f"RoPE needs a square query grid, got {num_tokens} tokens")
            end_x = end_y = side
        head_dim = self.internal_dim // self.num_heads
        return compute_axial_cis(head_dim, end_x, end_y, self.rope_theta).to(device)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                num_k_exclude_rope: int = 0) -> torch.Tensor:
        q = self.split_heads(self.q_proj(q))
        k = self.split_heads(self.k_proj(k))
        v = self.split_heads(self.v_proj(v))
        n_q, n_k = q.shape[-2], k.shape[-2]
        if n_q != n_k and not self.rope_k_repeat:
            raise ValueError(f"{n_k} keys for {n_q} queries needs rope_k_repeat")
        q = rotate(q, self.rope_table(n_q, q.device))
        if n_k > 0:
            k = rotate(k, self.key_table(n_q, n_k, num_k_exclude_rope, q.device))
        return self.attend(q, k, v)

    def key_table(self, num_queries: int, num_keys: int, num_k_exclude_rope: int,
                  device: torch.device) -> torch.Tensor:
        """Complex64 ``(num_keys, head_dim / 2)`` rotations of the keys: the query grid's table repeated
        over the rotated keys, then ``1 + 0i`` (no rotation) for the ``num_k_exclude_rope`` last ones.

        Rotating all keys by this one table gives the rotated keys exactly as rotating them apart and
        leaves the excluded ones as they are, without concatenating two parts on every call. Kept per
        shape (a few entries: the memory grows over the first frames), except while compiling."""
        n_rope = num_keys - num_k_exclude_rope
        if n_rope % num_queries != 0:
            raise ValueError(f"{n_rope} keys are not a whole number of {num_queries}-token grids")

        def build() -> torch.Tensor:
            table = tile_cis(self.rope_table(num_queries, device), n_rope // num_queries)
            if num_k_exclude_rope > 0:
                ones = torch.ones(num_k_exclude_rope, table.shape[1], dtype=table.dtype, device=table.device)
                table = torch.cat([table, ones])
            return table

        key = (num_queries, num_keys, num_k_exclude_rope, str(device))
        return cached_table(self._key_cache, key, build, max_entries=KEY_TABLES_KEPT)


class MemoryAttentionLayer(nn.Module):
    """Pre-norm block: self-attention, cross-attention to memory, ReLU MLP.

    ``tgt (B, HW, C)``, ``memory (B, M, Ckv)`` -> ``(B, HW, C)``. Memory positions are added to
    the keys only; the query positions are not used inside the layer.
    """

    def __init__(self, cfg: MemoryAttentionConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.self_attn = RoPEAttention(d, dropout=cfg.dropout, rope_theta=cfg.rope_theta,
                                       feat_sizes=cfg.feat_sizes)
        self.cross_attn_image = RoPEAttention(d, kv_in_dim=cfg.kv_in_dim, dropout=cfg.dropout,
                                              rope_theta=cfg.rope_theta, feat_sizes=cfg.feat_sizes,
                                              rope_k_repeat=True)
        self.linear1 = nn.Linear(d, cfg.dim_feedforward)
        self.dropout = nn.Dropout(cfg.dropout)
        self.linear2 = nn.Linear(cfg.dim_feedforward, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.norm3 = nn.LayerNorm(d)
        self.dropout1 = nn.Dropout(cfg.dropout)
        self.dropout2 = nn.Dropout(cfg.dropout)
        self.dropout3 = nn.Dropout(cfg.dropout)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor | None = None,
                num_k_exclude_rope: int = 0, keys: torch.Tensor | None = None) -> torch.Tensor:
        """``keys``: ``memory + pos`` when the caller has it already (the same for every layer)."""
        return self.attend_memory(self.attend_self(tgt), memory, pos, num_k_exclude_rope, keys)

    def attend_self(self, tgt: torch.Tensor) -> torch.Tensor:
        """The self-attention sublayer, with its residual: ``(B, HW, C)`` -> ``(B, HW, C)``."""
        a = self.norm1(tgt)
        return tgt + self.dropout1(self.self_attn(a, a, a))

    def attend_memory(self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor | None = None,
                      num_k_exclude_rope: int = 0, keys: torch.Tensor | None = None) -> torch.Tensor:
        """The cross-attention and MLP sublayers, with their residuals."""
        a = self.norm2(tgt)
        if keys is None:
            keys = memory + pos if pos is not None else memory
        tgt = tgt + self.dropout2(self.cross_attn_image(a, keys, memory, num_k_exclude_rope))
        a = self.norm3(tgt)
        a = self.linear2(self.dropout(F.relu(self.linear1(a), inplace=True)))
        return tgt + self.dropout3(a)


class MemoryAttention(nn.Module):
    """Stack of :class:`MemoryAttentionLayer` and a final LayerNorm (keys ``layers.{i}``, ``norm``).

    Sequence-first tensors: ``curr (HW, B, C)``, ``curr_pos (HW, B, C)``, ``memory (M, B, Ckv)``,
    ``memory_pos (M, B, Ckv)`` -> ``(HW, B, C)``. The last ``num_obj_ptr_tokens`` memory tokens
    are object pointers and get no RoPE rotation.
    """

    def __init__(self, cfg: MemoryAttentionConfig) -> None:
        super().__init__()
        self.d_model = cfg.d_model
        self.layers = nn.ModuleList(MemoryAttentionLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def frame_queries(self, curr: torch.Tensor, curr_pos: torch.Tensor | None = None) -> torch.Tensor:
        """The part of the stack that reads the current frame only: the input plus a tenth of its position
        encoding, then the first layer's self-attention. ``curr (HW, b, C)`` -> ``(b, HW, C)``.

        It is the same for every object tracked on a frame, so a caller tracking several objects can run
        it once (with ``b = 1``) and hand it to :meth:`forward` as ``queries``.
        """
        out = (curr if curr_pos is None else curr + 0.1 * curr_pos).transpose(0, 1)
        return self.layers[0].attend_self(out) if len(self.layers) else out

    def forward(self, curr: torch.Tensor, memory: torch.Tensor, curr_pos: torch.Tensor | None = None,
                memory_pos: torch.Tensor | None = None, num_obj_ptr_tokens: int = 0,
                queries: torch.Tensor | None = None) -> torch.Tensor:
        """``queries``: :meth:`frame_queries` of ``curr`` and ``curr_pos`` computed already, ``(b, HW, C)``
        with ``b`` 1 (shared by the memory batch) or the memory batch."""
        batch = memory.shape[1]
        if queries is None:
            if curr.shape[1] != batch:
                raise ValueError(f"batch sizes differ: curr {curr.shape[1]}, memory {batch}")
            queries = self.frame_queries(curr, curr_pos)
        elif queries.shape[0] not in (1, batch):
            raise ValueError(f"queries of batch {queries.shape[0]} for memory of batch {batch}")
        out = queries if queries.shape[0] == batch else queries.expand(batch, -1, -1)
        memory = memory.transpose(0, 1)
        if memory_pos is not None:
            memory_pos = memory_pos.transpose(0, 1)
        keys = memory + memory_pos if memory_pos is not None else memory
        for i, layer in enumerate(self.layers):
            if i > 0:
                out = layer.attend_self(out)
            out = layer.attend_memory(out, memory, pos=memory_pos, num_k_exclude_rope=num_obj_ptr_tokens, keys=keys)
        return self.norm(out).transpose(0, 1)
