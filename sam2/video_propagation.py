"""Propagation of every object through a video for :class:`~sam2.sam2_video_predictor.SAM2VideoPredictor`.

On each frame the backbone runs once (:func:`frame_features`), and so does the part of memory attention
that reads the frame alone (the first layer's self-attention), shared by every object. The objects
tracked there are grouped by the layout of their memories (:func:`sam2.tracking.batched.group_by_layout`)
and each group of two or more runs memory attention and the memory encoder as one batch
(:func:`sam2.tracking.batched.track_objects`); a lone object runs alone (the same arithmetic). Batching
is opt-in: ``predictor.batch_objects = True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from sam2.modeling.sam2_base import SAM2Base
from sam2.tracking.batched import group_by_layout, track_objects
from sam2.tracking.eviction import release_behind
from sam2.tracking.tracker import FrameFeatures, encode_memory, plan_memory
from sam2.utils.video_inputs import check_frame_idx, check_max_frames
from sam2.video_session import FrameOutput, ObjectTrack, VideoSession

if TYPE_CHECKING:
    from sam2.sam2_video_predictor import SAM2VideoPredictor


def propagation_order(predictor: SAM2VideoPredictor, s: VideoSession, start_frame_idx: int | None,
                      max_frame_num_to_track: int | None, reverse: bool) -> range:
    """Check the arguments of ``propagate_in_video``, consolidate new prompts, -> the frames to visit
    (from the earliest prompted frame by default)."""
    if start_frame_idx is not None:
        check_frame_idx(start_frame_idx, s.num_frames, "start_frame_idx")
    max_frame_num_to_track = check_max_frames(max_frame_num_to_track)
    predictor.propagate_in_video_preflight(s)
    if start_frame_idx is None:
        start_frame_idx = min(t for obj in s.objects for t in obj.cond_outputs)
    if max_frame_num_to_track is None:
        max_frame_num_to_track = s.num_frames
    return frame_order(s.num_frames, start_frame_idx, max_frame_num_to_track, reverse)


def frame_order(num_frames: int, start_frame_idx: int, max_frame_num_to_track: int, reverse: bool) -> range:
    """Frames a propagation visits: ``max_frame_num_to_track + 1`` at most from ``start_frame_idx``."""
    if reverse:
        end = max(start_frame_idx - max_frame_num_to_track, 0)
        return range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else range(0)
    end = min(start_frame_idx + max_frame_num_to_track, num_frames - 1)
    return range(start_frame_idx, end + 1)


def frame_features(model: SAM2Base, s: VideoSession, frame_idx: int) -> FrameFeatures:
    """Backbone features of one frame. The most recent frame's backbone output is cached, and so is its
    :class:`FrameFeatures`, which every object tracked on the frame shares (with what memory attention
    computes from the frame alone)."""
    if s.cached_frame_idx != frame_idx or s.cached_features is None or s.frame_features is None:
        image = s.frames[frame_idx].to(s.device).float().unsqueeze(0)
        s.cached_features = model.forward_image(image)
        s.cached_frame_idx = frame_idx
        _, feats, pos, sizes = model._prepare_backbone_features(s.cached_features)
        s.frame_features = FrameFeatures(feats, pos, sizes)
    return s.frame_features


def track_frame(predictor: SAM2VideoPredictor, s: VideoSession, frame_idx: int, reverse: bool) -> torch.Tensor:
    """Every object's output on one frame (prompted frames keep theirs) -> video-res logits
    ``(N, 1, H, W)``; in bounded mode, then release what later frames cannot read."""
    preds: list[torch.Tensor | None] = [None] * len(s.objects)
    todo: list[int] = []
    for i, obj in enumerate(s.objects):
        if frame_idx in obj.cond_outputs:
            preds[i] = obj.cond_outputs[frame_idx].pred_masks.to(s.device)
            if predictor.clear_non_cond_mem_around_input:
                clear_non_cond_mem_around(predictor.model, obj, frame_idx)
        else:
            todo.append(i)
    for group in _groups(predictor, s, frame_idx, reverse, todo):
        if len(group) == 1:
            obj = s.objects[group[0]]
            out, preds[group[0]] = predictor._run_frame(s, obj, frame_idx, False, None, None, reverse,
                                                        run_mem_encoder=True)
            obj.non_cond_outputs[frame_idx] = out
        else:
            for i, (out, pred) in zip(group, _track_group(predictor, s, frame_idx, reverse, group)):
                s.objects[i].non_cond_outputs[frame_idx] = out
                preds[i] = pred
    for obj in s.objects:
        obj.tracked[frame_idx] = reverse
    result = predictor._to_video_res(s, torch.cat(preds, dim=0))
    if s.bounded_memory:
        for obj in s.objects:
            release_behind(obj.non_cond_outputs, obj.tracked, obj.released, frame_idx, reverse, s.retention)
    return result


def _groups(predictor: SAM2VideoPredictor, s: VideoSession, frame_idx: int, reverse: bool,
            todo: list[int]) -> list[list[int]]:
    """Object indices to track together (groups of one are tracked alone)."""
    model = predictor.model
    if len(todo) < 2 or not predictor.batch_objects or model.num_maskmem == 0:
        return [[i] for i in todo]
    plans = [_plan(predictor, s, s.objects[i], frame_idx, reverse) for i in todo]
    return [[todo[k] for k in group] for group in group_by_layout(plans)]


def _plan(predictor: SAM2VideoPredictor, s: VideoSession, obj: ObjectTrack, frame_idx: int, reverse: bool):
    return plan_memory(predictor.model, frame_idx, obj.cond_outputs, obj.non_cond_outputs, s.num_frames, reverse)


def _track_group(predictor: SAM2VideoPredictor, s: VideoSession, frame_idx: int, reverse: bool,
                 group: list[int]) -> list[tuple[FrameOutput, torch.Tensor]]:
    """Track the objects of ``group`` (same memory layout) on one frame as one batch."""
    plans = [_plan(predictor, s, s.objects[i], frame_idx, reverse) for i in group]
    step = track_objects(predictor.model, predictor._features(s, frame_idx), plans, s.num_frames)
    mem, pos = predictor._store_memory(s, step.maskmem_features, step.maskmem_pos_enc[:1])  # one bf16 cast
    return [predictor._frame_output(s, h.low_res_masks, h.obj_ptr, h.object_score_logits, mem[k:k + 1], pos)
            for k, h in enumerate(step.heads)]


def consolidate_prompts(predictor: SAM2VideoPredictor, s: VideoSession) -> None:
    """Encode the memory of newly prompted frames and make them conditioning (or tracked) frames."""
    if not s.objects:
        raise RuntimeError("No input points or masks are provided for any object; please add inputs first.")
    for obj in s.objects:
        if not obj.cond_outputs and not obj.pending_cond:
            raise RuntimeError(f"No input points or masks are provided for object id {obj.obj_id}; "
                               "please add inputs first.")
    size = predictor.model.image_size
    for obj in s.objects:
        for is_cond in (False, True):
            store = obj.cond_outputs if is_cond else obj.non_cond_outputs
            for frame_idx, out in obj.pending(is_cond).items():
                if out.maskmem_features is None:
                    high_res = F.interpolate(out.pred_masks.to(s.device), size=(size, size), mode="bilinear",
                                             align_corners=False)
                    features = predictor._features(s, frame_idx)
                    mem, pos = encode_memory(predictor.model, features, high_res, out.object_score_logits, True)
                    out.maskmem_features, out.maskmem_pos_enc = predictor._store_memory(s, mem, pos)
                store[frame_idx] = out
                if predictor.clear_non_cond_mem_around_input:
                    clear_non_cond_mem_around(predictor.model, obj, frame_idx)
            obj.pending(is_cond).clear()
        for frame_idx in obj.cond_outputs:
            obj.non_cond_outputs.pop(frame_idx, None)


def clear_non_cond_mem_around(model: SAM2Base, obj: ObjectTrack, frame_idx: int) -> None:
    """Forget tracked outputs within the memory window around a prompted frame."""
    reach = model.cfg.tracker.memory_temporal_stride_for_eval * model.num_maskmem
    for t in range(frame_idx - reach, frame_idx + reach + 1):
        obj.non_cond_outputs.pop(t, None)
