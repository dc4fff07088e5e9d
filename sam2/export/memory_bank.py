"""The SAM 2 memory bank in numpy: which past frames a tracked frame attends to, and how.

This is the part of video tracking that is not a neural network, written so that a C++ or JS port
can follow it line by line. Per object, the runtime keeps for every frame it has seen a record with
``maskmem_features (1, mem_dim, h, w)`` (rounded to bfloat16, as the PyTorch predictor stores them),
``maskmem_pos_enc (1, mem_dim, h, w)`` and ``obj_ptr (1, C)``. Records of prompted frames are
*conditioning* frames, the others *non-conditioning* (tracked) frames.

For a frame ``t`` that is not the first prompted frame of the object:

1. Conditioning frames: all of them, or with ``max_cond_frames_in_attn = K`` only the closest one
   before ``t``, the closest one at/after ``t`` and the nearest others up to K
   (:func:`select_closest_cond_frames`). They get temporal slot 0.
2. Recent frames: for ``k = num_maskmem - 1 .. 1`` (oldest to newest) the frame ``k`` steps back in
   tracking direction (``k = 1``: the previous frame; further back on multiples of the stride
   ``memory_temporal_stride_for_eval``, see :func:`previous_frame`) if it has a record (a tracked one,
   else an unselected conditioning one). It gets slot ``num_maskmem - k``.
3. Each memory frame contributes ``h*w`` tokens (features channels-last) with position
   ``maskmem_pos_enc + maskmem_tpos_enc[num_maskmem - slot - 1]``.
4. Object pointers: the selected conditioning frames (only those not in the future of ``t`` when
   ``only_obj_ptrs_in_the_past_for_eval``), then the frames ``1 .. min(num_frames, max_obj_ptrs_in_encoder) - 1``
   steps back (stopping at the video edge) that have a record. Each pointer's temporal distance
   (signed when ``use_signed_tpos_enc_to_obj_ptrs``) divided by ``min(num_frames, max_ptrs) - 1`` gets a
   1-D sine encoding, projected by ``obj_ptr_tpos_proj`` (a Linear from constants.npz). A ``C``-wide
   pointer is split into ``C / mem_dim`` tokens that share its position.
5. The memory_attention graph gets the stacked spatial memories, their positions and the pointer
   tokens (which it does not rotate with RoPE).

The first prompted frame of an object has no memory: its features get ``no_mem_embed`` added
(:func:`no_memory_features`). An absent object (object score <= 0) gets ``no_obj_ptr`` as pointer and
``no_obj_embed_spatial`` added to its memory (the latter inside the memory_encoder graph).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class MemoryRecord(Protocol):
    maskmem_features: np.ndarray | None  # (1, mem_dim, h, w)
    maskmem_pos_enc: np.ndarray | None  # (1, mem_dim, h, w)
    obj_ptr: np.ndarray  # (1, C)


@dataclass(frozen=True)
class MemorySettings:
    """Tracker options that drive memory selection (names of the model config's ``tracker`` section)."""

    num_maskmem: int = 7
    max_cond_frames_in_attn: int = -1
    memory_temporal_stride_for_eval: int = 1
    max_obj_ptrs_in_encoder: int = 16
    only_obj_ptrs_in_the_past_for_eval: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = False
    add_tpos_enc_to_obj_ptrs: bool = False
    proj_tpos_enc_in_obj_ptrs: bool = False

    @classmethod
    def from_config(cls, tracker: Mapping[str, Any]) -> MemorySettings:
        return cls(**{k: tracker[k] for k in cls.__dataclass_fields__ if k in tracker})


@dataclass
class MemoryInputs:
    """Inputs of the memory_attention graph: ``memory, memory_pos (F, h*w, mem_dim)`` and
    ``obj_ptr_tokens, obj_ptr_pos (P, mem_dim)`` (P may be 0)."""

    memory: np.ndarray
    memory_pos: np.ndarray
    obj_ptr_tokens: np.ndarray
    obj_ptr_pos: np.ndarray


def to_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16 precision (round to nearest even), returned as float32."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.astype(np.uint32).view(np.float32)


def no_memory_features(image_embed: np.ndarray, no_mem_embed: np.ndarray) -> np.ndarray:
    """First prompted frame: ``image_embed (1, C, h, w) + no_mem_embed (1, 1, C)`` per channel."""
    return image_embed + no_mem_embed.reshape(1, -1, 1, 1)


def select_closest_cond_frames(frame_idx: int, cond: Mapping[int, Any], max_cond: int
                               ) -> tuple[dict[int, Any], dict[int, Any]]:
    """-> (selected, unselected) conditioning frames, at most ``max_cond`` selected (-1 = all)."""
    if max_cond == -1 or len(cond) <= max_cond:
        return dict(cond), {}
    selected: dict[int, Any] = {}
    before = max((t for t in cond if t < frame_idx), default=None)
    if before is not None:
        selected[before] = cond[before]
    after = min((t for t in cond if t >= frame_idx), default=None)
    if after is not None:
        selected[after] = cond[after]
    rest = sorted((t for t in cond if t not in selected), key=lambda t: abs(t - frame_idx))
    for t in rest[: max_cond - len(selected)]:
        selected[t] = cond[t]
    return selected, {t: v for t, v in cond.items() if t not in selected}


def previous_frame(frame_idx: int, steps: int, stride: int, reverse: bool) -> int:
    """The frame ``steps`` memory steps back from ``frame_idx`` in tracking direction."""
    if steps == 1:
        return frame_idx + 1 if reverse else frame_idx - 1
    if reverse:
        return -(-(frame_idx + 2) // stride) * stride + (steps - 2) * stride
    return ((frame_idx - 2) // stride) * stride - (steps - 2) * stride


def memory_frames(frame_idx: int, selected: Mapping[int, MemoryRecord], unselected: Mapping[int, MemoryRecord],
                  non_cond: Mapping[int, MemoryRecord], s: MemorySettings, reverse: bool
                  ) -> list[tuple[int, MemoryRecord]]:
    """``(slot, record)``: selected conditioning frames in slot 0, then recent frames oldest first."""
    frames: list[tuple[int, MemoryRecord]] = [(0, rec) for rec in selected.values()]
    for slot in range(1, s.num_maskmem):
        prev = previous_frame(frame_idx, s.num_maskmem - slot, s.memory_temporal_stride_for_eval, reverse)
        rec = non_cond.get(prev)
        if rec is None:
            rec = unselected.get(prev)
        if rec is not None:
            frames.append((slot, rec))
    return frames


def collect_pointers(frame_idx: int, selected: Mapping[int, MemoryRecord], unselected: Mapping[int, MemoryRecord],
                     non_cond: Mapping[int, MemoryRecord], num_frames: int, s: MemorySettings,
                     reverse: bool) -> list[tuple[int, np.ndarray]]:
    """``(temporal distance, obj_ptr (1, C))``: conditioning frames first, then recent frames."""
    if s.only_obj_ptrs_in_the_past_for_eval:
        cond = {t: r for t, r in selected.items() if (t >= frame_idx if reverse else t <= frame_idx)}
    else:
        cond = dict(selected)
    sign = -1 if reverse else 1
    out = [((frame_idx - t) * sign if s.use_signed_tpos_enc_to_obj_ptrs else abs(frame_idx - t), r.obj_ptr)
           for t, r in cond.items()]
    for dist in range(1, min(num_frames, s.max_obj_ptrs_in_encoder)):
        t = frame_idx + dist if reverse else frame_idx - dist
        if t < 0 or t >= num_frames:
            break
        rec = non_cond.get(t, unselected.get(t))
        if rec is not None:
            out.append((dist, rec.obj_ptr))
    return out


def sine_encoding(pos: np.ndarray, dim: int, temperature: float = 10000.0) -> np.ndarray:
    """``pos (N,)`` float32 -> ``(N, dim)``: sines of ``dim / 2`` frequencies, then their cosines."""
    half = dim // 2
    dim_t = np.arange(half, dtype=np.float32)
    dim_t = np.float32(temperature) ** (np.float32(2) * (dim_t // 2) / np.float32(half))
    angles = pos[:, None] / dim_t
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)


def pointer_tokens(pointers: list[tuple[int, np.ndarray]], num_frames: int, s: MemorySettings, hidden: int,
                   mem: int, constants: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """-> tokens and positions, both ``(P * hidden / mem_dim, mem_dim)``."""
    if not pointers:
        return np.zeros((0, mem), np.float32), np.zeros((0, mem), np.float32)
    dists = np.asarray([d for d, _ in pointers], dtype=np.float32)
    ptrs = np.concatenate([p for _, p in pointers], axis=0).astype(np.float32)  # (P, C)
    if s.add_tpos_enc_to_obj_ptrs:
        t_diff_max = np.float32(min(num_frames, s.max_obj_ptrs_in_encoder) - 1)
        pos = sine_encoding(dists / t_diff_max, hidden if s.proj_tpos_enc_in_obj_ptrs else mem)
        if s.proj_tpos_enc_in_obj_ptrs:
            pos = pos @ constants["obj_ptr_tpos_proj.weight"].T + constants["obj_ptr_tpos_proj.bias"]
    else:
        pos = np.zeros((len(pointers), mem), np.float32)
    split = hidden // mem
    return ptrs.reshape(-1, mem), np.repeat(pos.astype(np.float32), split, axis=0)


def build_memory(frame_idx: int, cond: Mapping[int, MemoryRecord], non_cond: Mapping[int, MemoryRecord],
                 num_frames: int, reverse: bool, s: MemorySettings, hidden: int,
                 constants: Mapping[str, np.ndarray]) -> MemoryInputs:
    """Everything the memory_attention graph needs for ``frame_idx`` of one object."""
    if not cond:
        raise RuntimeError(f"frame {frame_idx} is tracked but the object has no conditioning frame")
    selected, unselected = select_closest_cond_frames(frame_idx, cond, s.max_cond_frames_in_attn)
    frames = memory_frames(frame_idx, selected, unselected, non_cond, s, reverse)
    tpos = constants["maskmem_tpos_enc"]  # (num_maskmem, 1, 1, mem)
    mem_dim = tpos.shape[-1]
    tokens, positions = [], []
    for slot, rec in frames:
        tokens.append(rec.maskmem_features.reshape(mem_dim, -1).T)
        positions.append(rec.maskmem_pos_enc.reshape(mem_dim, -1).T + tpos[s.num_maskmem - slot - 1, 0])
    pointers = collect_pointers(frame_idx, selected, unselected, non_cond, num_frames, s, reverse)
    ptr_tokens, ptr_pos = pointer_tokens(pointers, num_frames, s, hidden, mem_dim, constants)
    return MemoryInputs(np.stack(tokens).astype(np.float32), np.stack(positions).astype(np.float32),
                        ptr_tokens, ptr_pos)
