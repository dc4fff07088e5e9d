"""Object pointers: one token per past frame summarizing the object, with a temporal encoding."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from sam2.modeling.sam2_base import SAM2Base
from sam2.tracking.memory_selection import MemoryRecord


def get_1d_sine_pe(pos: torch.Tensor, dim: int, temperature: float = 10000) -> torch.Tensor:
    """``pos (N,)`` -> ``(N, dim)``: sines of ``dim / 2`` frequencies, then their cosines."""
    half = dim // 2
    dim_t = torch.arange(half, dtype=torch.float32, device=pos.device)
    dim_t = temperature ** (2 * (dim_t // 2) / half)
    angles = pos.unsqueeze(-1) / dim_t
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def collect_pointers(frame_idx: int, selected: Mapping[int, MemoryRecord], unselected: Mapping[int, MemoryRecord],
                     non_cond_outputs: Mapping[int, MemoryRecord], num_frames: int, max_ptrs: int,
                     only_past: bool, signed: bool, reverse: bool) -> list[tuple[int, torch.Tensor]]:
    """``(temporal distance, pointer (B, C))`` for conditioning frames, then recent frames."""
    if only_past:
        cond = {t: o for t, o in selected.items() if (t >= frame_idx if reverse else t <= frame_idx)}
    else:
        cond = dict(selected)
    sign = -1 if reverse else 1
    pointers = [((frame_idx - t) * sign if signed else abs(frame_idx - t), out.obj_ptr) for t, out in cond.items()]
    for dist in range(1, min(num_frames, max_ptrs)):
        t = frame_idx + dist if reverse else frame_idx - dist
        if t < 0 or t >= num_frames:
            break
        out = non_cond_outputs.get(t, unselected.get(t))
        if out is not None:
            pointers.append((dist, out.obj_ptr))
    return pointers


def pointer_tokens(model: SAM2Base, pointers: list[tuple[int, torch.Tensor]], num_frames: int,
                   batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Split each ``C``-wide pointer into ``C / mem_dim`` memory tokens: -> tokens and positions,
    both ``(P * C / mem_dim, B, mem_dim)``."""
    t = model.cfg.tracker
    hidden, mem = model.hidden_dim, model.mem_dim
    positions, ptrs = zip(*pointers)
    obj_ptrs = torch.stack(ptrs, dim=0)
    if t.add_tpos_enc_to_obj_ptrs:
        t_diff_max = min(num_frames, t.max_obj_ptrs_in_encoder) - 1
        pe_dim = hidden if t.proj_tpos_enc_in_obj_ptrs else mem
        obj_pos = get_1d_sine_pe(torch.tensor(positions, device=device) / t_diff_max, dim=pe_dim)
        obj_pos = model.obj_ptr_tpos_proj(obj_pos).unsqueeze(1).expand(-1, batch, mem)
    else:
        obj_pos = obj_ptrs.new_zeros(len(positions), batch, mem)
    if mem < hidden:
        split = hidden // mem
        obj_ptrs = obj_ptrs.reshape(-1, batch, split, mem).permute(0, 2, 1, 3).flatten(0, 1)
        obj_pos = obj_pos.repeat_interleave(split, dim=0)
    return obj_ptrs, obj_pos
