"""Tracking several objects on one frame as one batch when their memories line up.

Objects are tracked independently (each with its own memory), but on a given frame they share the
backbone features, and objects whose memories have the same layout (as many spatial memories and
as many object pointers: the common case when every object was prompted on the same frames) run
memory attention and the memory encoder together (the SAM heads, a few GFLOP, run per object). Per
object the arithmetic is the same as tracking it alone; the bits usually are too, but a batched
kernel may round the last bit differently for some shapes (hence opt-in in the predictor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sam2.modeling.sam2_base import SAM2Base
from sam2.tracking.sam_heads import HeadsOutput, forward_sam_heads
from sam2.tracking.tracker import (
    FrameFeatures,
    MemoryPlan,
    attend_memory,
    encode_memory,
    use_multimask,
)


def group_by_layout(plans: Sequence[MemoryPlan]) -> list[list[int]]:
    """Indices of ``plans`` grouped by :attr:`MemoryPlan.layout`, groups and members in order of
    first appearance."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, plan in enumerate(plans):
        groups.setdefault(plan.layout, []).append(i)
    return list(groups.values())


@dataclass
class BatchStep:
    """Result of :func:`track_objects`: per object its :class:`HeadsOutput` (batch 1 each), and the
    memories of all objects ``maskmem_features (B, mem_dim, h, w)`` with their position encoding
    ``(B, mem_dim, h, w)`` (``None`` without memory encoding)."""

    heads: list[HeadsOutput]
    maskmem_features: torch.Tensor | None = None
    maskmem_pos_enc: torch.Tensor | None = None


def track_objects(model: SAM2Base, features: FrameFeatures, plans: Sequence[MemoryPlan], num_frames: int,
                  run_mem_encoder: bool = True) -> BatchStep:
    """Track the objects of ``plans`` (one layout, batch 1 each, no prompts on this frame) on one frame.

    ``features`` are the frame's backbone features with batch 1; they are broadcast, never copied
    per object. Memory attention and the memory encoder run batched (measured: each row mostly gets the
    same bits as a batch of one); the SAM heads run per object, as their small matrix products (a few
    prompt tokens) round differently with the batch size. Row ``i`` belongs to ``plans[i]``.
    """
    plans = list(plans)
    if any(p.batch != 1 for p in plans):
        raise ValueError("track_objects takes one plan per object (batch 1 each)")
    pix_feat = attend_memory(model, features, plans, num_frames)  # (B, C, h, w)
    high_res_features = [features.as_map(i) for i in range(len(features.feats) - 1)]
    multimask = use_multimask(model, False, None)
    heads = [forward_sam_heads(model, pix_feat[i:i + 1], None, None, high_res_features, multimask)
             for i in range(len(plans))]
    out = BatchStep(heads)
    if run_mem_encoder and model.num_maskmem > 0:
        masks = torch.cat([h.high_res_masks for h in heads], dim=0)
        scores = torch.cat([h.object_score_logits for h in heads], dim=0)
        out.maskmem_features, out.maskmem_pos_enc = encode_memory(model, features, masks, scores, False,
                                                                  independent_objects=True)
    return out
