"""One tracking step: condition the frame's features on memory, run the SAM heads, encode memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from sam2.modeling.sam2_base import SAM2Base
from sam2.tracking.memory_selection import MemoryRecord, memory_frames, select_closest_cond_frames
from sam2.tracking.object_pointers import collect_pointers, pointer_tokens
from sam2.tracking.sam_heads import HeadsOutput, PointInputs, forward_sam_heads, use_mask_as_output
from sam2.utils.non_overlap import apply_non_overlapping_constraints


@dataclass
class FrameFeatures:
    """Backbone features of one frame, sequence-first: ``feats[i] (h_i*w_i, B, C_i)`` for strides
    4, 8, 16, their position encodings and ``sizes[i] = (h_i, w_i)``.

    ``memory_queries`` keeps what memory attention computes from the frame alone (see
    :meth:`memory_queries`), so that every object tracked on the frame reuses it.
    """

    feats: list[torch.Tensor]
    pos: list[torch.Tensor]
    sizes: list[tuple[int, int]]
    _queries: torch.Tensor | None = field(default=None, repr=False)

    def memory_queries(self, model: SAM2Base) -> torch.Tensor:
        """``model.memory_attention.frame_queries`` of the stride-16 level ``(B, h*w, C)``: computed on the
        first call and kept in inference (in training each call computes it: dropout differs per call)."""
        if self._queries is not None and not model.training:
            return self._queries
        queries = model.memory_attention.frame_queries(self.feats[-1], self.pos[-1])
        if not model.training:
            self._queries = queries
        return queries

    def as_map(self, level: int) -> torch.Tensor:
        """Level ``level`` as ``(B, C, h, w)``."""
        x = self.feats[level]
        return x.permute(1, 2, 0).view(x.size(1), x.size(2), *self.sizes[level])


@dataclass
class StepOutput:
    """Result of :func:`track_step` for one object on one frame.

    ``pix_feat`` are the features the SAM heads saw (memory-conditioned, ``(B, C, h, w)``) and
    ``high_res_features`` the stride-4 and stride-8 maps: correction clicks re-run the heads on them.
    """

    heads: HeadsOutput
    maskmem_features: torch.Tensor | None = None  # (B, mem_dim, h, w)
    maskmem_pos_enc: torch.Tensor | None = None  # (B, mem_dim, h, w)
    pix_feat: torch.Tensor | None = None
    high_res_features: list[torch.Tensor] | None = None


def use_multimask(model: SAM2Base, is_init_cond_frame: bool, point_inputs: PointInputs | None) -> bool:
    """Three candidate masks for 0-1 clicks (and on every tracked frame), one mask otherwise."""
    t = model.cfg.tracker
    num_pts = 0 if point_inputs is None else point_inputs.point_labels.size(1)
    return (t.multimask_output_in_sam and (is_init_cond_frame or t.multimask_output_for_tracking)
            and t.multimask_min_pt_num <= num_pts <= t.multimask_max_pt_num)


@dataclass
class MemoryPlan:
    """What one object (or one batch of ``batch`` videos in training) reads on one frame: spatial
    memories ``(t_pos, record)`` and object pointers ``(temporal distance, obj_ptr (batch, C))``."""

    frames: list[tuple[int, MemoryRecord]]
    pointers: list[tuple[int, torch.Tensor]]
    batch: int = 1

    @property
    def layout(self) -> tuple[int, int]:
        """``(spatial memories, pointers)``: plans with the same layout can attend in one batch."""
        return len(self.frames), len(self.pointers)


def plan_memory(model: SAM2Base, frame_idx: int, cond_outputs: Mapping[int, MemoryRecord],
                non_cond_outputs: Mapping[int, MemoryRecord], num_frames: int, reverse: bool,
                batch: int = 1) -> MemoryPlan:
    """Select the memories and pointers a tracked (not initial-conditioning) frame attends to."""
    if not cond_outputs:
        raise RuntimeError(f"frame {frame_idx} is tracked but the object has no conditioning frame")
    t = model.cfg.tracker
    selected, unselected = select_closest_cond_frames(frame_idx, cond_outputs, t.max_cond_frames_in_attn)
    stride = 1 if model.training else t.memory_temporal_stride_for_eval
    frames = memory_frames(frame_idx, selected, unselected, non_cond_outputs, model.num_maskmem, stride, reverse)
    pointers = collect_pointers(frame_idx, selected, unselected, non_cond_outputs, num_frames,
                                t.max_obj_ptrs_in_encoder, t.only_obj_ptrs_in_the_past_for_eval and not model.training,
                                t.use_signed_tpos_enc_to_obj_ptrs, reverse)
    return MemoryPlan(frames, pointers, batch)


def memory_inputs(model: SAM2Base, plans: list[MemoryPlan], num_frames: int, device: torch.device,
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Memory tokens and positions of plans with one layout, side by side along the batch axis.

    -> ``memory (M, B, mem_dim)``, ``memory_pos (M, B, mem_dim)`` (``B`` = the plans' batches
    summed) and the number of pointer tokens at the end. Stored memories (bfloat16) and pointers
    are converted to ``dtype`` (the features' dtype) while being written in place: one copy each.
    """
    if len({p.layout for p in plans}) != 1:
        raise ValueError(f"plans of different layouts cannot be batched: {[p.layout for p in plans]}")
    ptrs = [pointer_tokens(model, p.pointers, num_frames, p.batch, device) if p.pointers else None for p in plans]
    tpos = model.maskmem_tpos_enc
    pos_dtype = torch.promote_types(plans[0].frames[0][1].maskmem_pos_enc.dtype, tpos.dtype)
    if ptrs[0] is not None:
        pos_dtype = torch.promote_types(pos_dtype, ptrs[0][1].dtype)
    num_ptr = 0 if ptrs[0] is None else ptrs[0][0].shape[0]
    hw, mem_dim = _spatial_size(plans[0]), model.mem_dim
    rows = hw * len(plans[0].frames) + num_ptr
    batch = sum(p.batch for p in plans)
    memory = torch.empty(rows, batch, mem_dim, device=device, dtype=dtype)
    memory_pos = torch.empty(rows, batch, mem_dim, device=device, dtype=pos_dtype)
    num_maskmem = tpos.shape[0]
    col = 0
    for plan, pair in zip(plans, ptrs):
        cols = slice(col, col + plan.batch)
        for k, (t_pos, out) in enumerate(plan.frames):
            r = slice(k * hw, (k + 1) * hw)
            memory[r, cols] = out.maskmem_features.to(device).flatten(2).permute(2, 0, 1)
            pos = out.maskmem_pos_enc.to(device).flatten(2).permute(2, 0, 1)
            memory_pos[r, cols] = pos + tpos[num_maskmem - t_pos - 1]
        if pair is not None:
            memory[rows - num_ptr:, cols] = pair[0]
            memory_pos[rows - num_ptr:, cols] = pair[1]
        col += plan.batch
    return memory, memory_pos, num_ptr


def _spatial_size(plan: MemoryPlan) -> int:
    if not plan.frames:
        return 0
    feats = plan.frames[0][1].maskmem_features
    return feats.shape[-2] * feats.shape[-1]


def attend_memory(model: SAM2Base, features: FrameFeatures, plans: list[MemoryPlan],
                  num_frames: int) -> torch.Tensor:
    """Stride-16 features conditioned on the memories of ``plans`` (one layout) -> ``(B, C, h, w)``.

    What memory attention computes from the frame alone is computed once per frame
    (:meth:`FrameFeatures.memory_queries`, batch ``b``) and, with ``b = 1``, broadcast (not copied) to
    every plan's batch.
    """
    x = features.feats[-1]
    batch = sum(p.batch for p in plans)
    memory, memory_pos, num_ptr = memory_inputs(model, plans, num_frames, x.device, x.dtype)
    out = model.memory_attention(curr=x, curr_pos=features.pos[-1], memory=memory, memory_pos=memory_pos,
                                 num_obj_ptr_tokens=num_ptr, queries=features.memory_queries(model))
    h, w = features.sizes[-1]
    return out.permute(1, 2, 0).view(batch, model.hidden_dim, h, w)


def condition_on_memory(model: SAM2Base, frame_idx: int, is_init_cond_frame: bool, features: FrameFeatures,
                        cond_outputs: Mapping[int, MemoryRecord], non_cond_outputs: Mapping[int, MemoryRecord],
                        num_frames: int, reverse: bool) -> torch.Tensor:
    """Stride-16 features ``(B, C, h, w)`` conditioned on the memory of past frames."""
    x = features.feats[-1]
    b, c = x.size(1), model.hidden_dim
    h, w = features.sizes[-1]
    if model.num_maskmem == 0:
        return x.permute(1, 2, 0).view(b, c, h, w)
    if is_init_cond_frame:
        return (x + model.no_mem_embed).permute(1, 2, 0).view(b, c, h, w)
    # Stored memories are bfloat16; attention runs in the features' dtype (the official code
    # relies on concatenation with float32 pointers for this and fails without pointers).
    plan = plan_memory(model, frame_idx, cond_outputs, non_cond_outputs, num_frames, reverse, batch=b)
    return attend_memory(model, features, [plan], num_frames)


def encode_memory(model: SAM2Base, features: FrameFeatures, high_res_masks: torch.Tensor,
                  object_score_logits: torch.Tensor, is_mask_from_pts: bool,
                  independent_objects: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Memory of a frame from its raw stride-16 features and mask logits ``(B, 1, S, S)``.

    Features of batch 1 are broadcast to the ``B`` masks. ``independent_objects``: the batch holds
    objects tracked independently (each encoded alone by the official code), so the optional
    non-overlap rule across the batch does not apply.
    -> ``maskmem_features (B, mem_dim, h, w)`` and ``maskmem_pos_enc (B, mem_dim, h, w)``.
    """
    t = model.cfg.tracker
    pix_feat = features.as_map(-1)
    if t.non_overlap_masks_for_mem_enc and not model.training and not independent_objects:
        high_res_masks = apply_non_overlapping_constraints(high_res_masks)
    if t.binarize_mask_from_pts_for_mem_enc and is_mask_from_pts and not model.training:
        mask_for_mem = (high_res_masks > 0).float()
    else:
        mask_for_mem = torch.sigmoid(high_res_masks)
    if t.sigmoid_scale_for_mem_enc != 1.0:
        mask_for_mem = mask_for_mem * t.sigmoid_scale_for_mem_enc
    if t.sigmoid_bias_for_mem_enc != 0.0:
        mask_for_mem = mask_for_mem + t.sigmoid_bias_for_mem_enc
    out = model.memory_encoder(pix_feat, mask_for_mem, skip_mask_sigmoid=True)
    maskmem_features, maskmem_pos = out["vision_features"], out["vision_pos_enc"][-1]
    if model.no_obj_embed_spatial is not None:
        absent = 1 - (object_score_logits > 0).float()
        maskmem_features = maskmem_features + absent[..., None, None] * model.no_obj_embed_spatial[
            ..., None, None].expand(*maskmem_features.shape)
    return maskmem_features, maskmem_pos


def track_step(model: SAM2Base, frame_idx: int, is_init_cond_frame: bool, features: FrameFeatures,
               point_inputs: PointInputs | None, mask_inputs: torch.Tensor | None,
               cond_outputs: Mapping[int, MemoryRecord], non_cond_outputs: Mapping[int, MemoryRecord],
               num_frames: int, reverse: bool = False, run_mem_encoder: bool = True,
               prev_sam_mask_logits: torch.Tensor | None = None) -> StepOutput:
    """Segment one object on one frame from its prompts and/or the memory of other frames."""
    high_res_features = [features.as_map(i) for i in range(len(features.feats) - 1)]
    t = model.cfg.tracker
    if mask_inputs is not None and t.use_mask_input_as_output_without_sam:
        pix_feat = features.as_map(-1)
        heads = use_mask_as_output(model, pix_feat, high_res_features, mask_inputs)
    else:
        pix_feat = condition_on_memory(model, frame_idx, is_init_cond_frame, features, cond_outputs,
                                       non_cond_outputs, num_frames, reverse)
        if prev_sam_mask_logits is not None:
            mask_inputs = prev_sam_mask_logits
        heads = forward_sam_heads(model, pix_feat, point_inputs, mask_inputs, high_res_features,
                                  use_multimask(model, is_init_cond_frame, point_inputs))
    out = StepOutput(heads, pix_feat=pix_feat, high_res_features=high_res_features)
    if run_mem_encoder and model.num_maskmem > 0:
        out.maskmem_features, out.maskmem_pos_enc = encode_memory(
            model, features, heads.high_res_masks, heads.object_score_logits, point_inputs is not None)
    return out
