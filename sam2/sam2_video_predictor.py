"""``SAM2VideoPredictor``: interactive multi-object video segmentation with the official API."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sam2.modeling.sam2_base import SAM2Base
from sam2.tracking.eviction import ReleasedFrameError, RetentionPolicy
from sam2.tracking.rollback import prompt_transaction
from sam2.tracking.sam_heads import NO_OBJ_SCORE, PointInputs
from sam2.tracking.tracker import FrameFeatures, apply_non_overlapping_constraints, track_step
from sam2.utils.frame_prefetch import FramePrefetcher
from sam2.utils.video_inputs import (
    check_frame_idx,
    check_mask,
    check_obj_id,
    check_video_points,
)
from sam2.video_propagation import consolidate_prompts, frame_features, propagation_order, track_frame
from sam2.video_session import FrameOutput, ObjectTrack, VideoSession


class SAM2VideoPredictor:
    """Tracks objects through a video from clicks, boxes or masks on any frames.

    Holds a :class:`SAM2Base`; attribute access not defined here (``image_size``, ``device``,
    ``state_dict`` ...) goes to the model. Each object is tracked independently with its own memory.
    Set ``show_progress = False`` to hide the progress bar of :meth:`propagate_in_video`, and
    ``batch_objects = True`` to track objects whose memories line up as one batch (see
    :mod:`sam2.video_propagation`; off by default: batched kernels may round the last bits differently,
    so an object's masks would depend slightly on which other objects are tracked).
    """

    show_progress: bool = True
    batch_objects: bool = False

    def __init__(self, model: SAM2Base, fill_hole_area: int = 0, non_overlap_masks: bool = False,
                 clear_non_cond_mem_around_input: bool = False,
                 add_all_frames_to_correct_as_cond: bool = False) -> None:
        self.model = model
        self.fill_hole_area = fill_hole_area
        self.non_overlap_masks = non_overlap_masks
        self.clear_non_cond_mem_around_input = clear_non_cond_mem_around_input
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond

    def __getattr__(self, name: str) -> Any:  # only called when normal lookup fails
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    def to(self, *args, **kwargs) -> SAM2VideoPredictor:
        self.model.to(*args, **kwargs)
        return self

    def eval(self) -> SAM2VideoPredictor:
        self.model.eval()
        return self

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> SAM2VideoPredictor:
        """Build from a Hub id such as ``facebook/sam2.1-hiera-large``."""
        from sam2.model_builder import build_video_model, hf_download  # not sam2.build_sam: no import circle

        config_name, ckpt_path = hf_download(model_id)
        model, options = build_video_model(config_name, ckpt_path, **kwargs)
        return cls(model, **options)

    # ------------------------------------------------------------------------------ session

    @torch.inference_mode()
    def init_state(self, video_path: Any, offload_video_to_cpu: bool = False, offload_state_to_cpu: bool = False,
                   async_loading_frames: bool = False, bounded_memory: bool = False) -> VideoSession:
        """Open a video (JPEG/PNG folder, video file, bytes, or a sequence of frames) lazily.

        ``bounded_memory=True`` (not in the official API) keeps, per object, only what later frames
        can still read under the model's memory selection: the prompted (conditioning) frames and the
        last few tracked frames (``max_obj_ptrs_in_encoder`` for object pointers, ``num_maskmem - 1``
        memories at the temporal stride). Results are handed over by :meth:`propagate_in_video` and
        not kept, so memory does not grow with the length of the video, and the masks are identical to
        the default mode's. What it gives up: a released frame cannot be refined (adding prompts to it
        for an object tracked there raises :class:`~sam2.tracking.eviction.ReleasedFrameError`; track
        it again with ``propagate_in_video`` first), tracking back over released frames raises, and
        masks returned for other objects on a released frame are empty (-1024).
        """
        from sam2.utils.video_frames import load_video_frames

        device = self.model.device
        frames = load_video_frames(video_path, image_size=self.model.image_size,
                                   offload_video_to_cpu=offload_video_to_cpu,
                                   async_loading_frames=async_loading_frames, compute_device=device)
        session = VideoSession(frames=frames, video_height=frames.video_height, video_width=frames.video_width,
                               device=device, storage_device=torch.device("cpu") if offload_state_to_cpu else device,
                               offload_video_to_cpu=offload_video_to_cpu, offload_state_to_cpu=offload_state_to_cpu,
                               bounded_memory=bool(bounded_memory),
                               retention=RetentionPolicy.from_model(self.model) if bounded_memory else None)
        self._features(session, 0)  # warm up the cache with the first frame
        return session

    @torch.inference_mode()
    def reset_state(self, inference_state: VideoSession) -> None:
        """Remove all objects, prompts and results (frames and cached features are kept)."""
        inference_state.objects.clear()

    def _object(self, session: VideoSession, obj_id: Any) -> ObjectTrack:
        """The object with ``obj_id``, created (appended) if new."""
        idx = session.obj_idx(obj_id)
        if idx is None:
            session.objects.append(ObjectTrack.bounded(obj_id) if session.bounded_memory else ObjectTrack(obj_id))
            idx = len(session.objects) - 1
        return session.objects[idx]

    # ------------------------------------------------------------------------------ prompts

    @torch.inference_mode()
    def add_new_points_or_box(self, inference_state: VideoSession, frame_idx: int, obj_id: Any, points=None,
                              labels=None, clear_old_points: bool = True, normalize_coords: bool = True,
                              box=None) -> tuple[int, list, torch.Tensor]:
        """Add clicks ``points (N, 2)`` with ``labels (N,)`` (1 = object, 0 = background) and/or a
        ``box (4,)`` XYXY for ``obj_id`` on ``frame_idx``. Returns ``(frame_idx, obj_ids, masks)``
        with mask logits ``(num_objects, 1, H, W)``."""
        s = inference_state
        check_frame_idx(frame_idx, s.num_frames)
        check_obj_id(obj_id)
        coords, labs = check_video_points(points, labels, box, clear_old_points)
        self._check_not_released(s, obj_id, frame_idx)
        if normalize_coords:
            coords = coords / torch.tensor([s.video_width, s.video_height])
        coords = (coords * self.model.image_size).to(s.device)
        labs = labs.to(s.device)
        with prompt_transaction(s, obj_id):  # a failure (e.g. an unreadable frame) changes nothing
            obj = self._object(s, obj_id)
            old = obj.point_inputs.get(frame_idx) if not clear_old_points else None
            if old is not None:
                coords = torch.cat([old.point_coords, coords], dim=1)
                labs = torch.cat([old.point_labels, labs], dim=1)
            point_inputs = PointInputs(coords, labs)
            obj.point_inputs[frame_idx] = point_inputs
            obj.mask_inputs.pop(frame_idx, None)
            return self._add_prompt(s, obj, frame_idx, point_inputs, None)

    add_new_points = add_new_points_or_box

    @torch.inference_mode()
    def add_new_mask(self, inference_state: VideoSession, frame_idx: int, obj_id: Any,
                     mask) -> tuple[int, list, torch.Tensor]:
        """Use a 2-D mask (bool or 0/1, any size) as the prompt of ``obj_id`` on ``frame_idx``."""
        s = inference_state
        check_frame_idx(frame_idx, s.num_frames)
        check_obj_id(obj_id)
        m = check_mask(mask)[None, None].float().to(s.device)
        self._check_not_released(s, obj_id, frame_idx)
        size = self.model.image_size
        if m.shape[-2:] != (size, size):
            m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            m = (m >= 0.5).float()
        with prompt_transaction(s, obj_id):  # a failure (e.g. an unreadable frame) changes nothing
            obj = self._object(s, obj_id)
            obj.mask_inputs[frame_idx] = m
            obj.point_inputs.pop(frame_idx, None)
            return self._add_prompt(s, obj, frame_idx, None, m)

    @staticmethod
    def _check_not_released(s: VideoSession, obj_id: Any, frame_idx: int) -> None:
        idx = s.obj_idx(obj_id)
        if idx is not None and s.objects[idx].is_released(frame_idx):
            raise ReleasedFrameError(
                f"frame {frame_idx} of object {obj_id!r} was tracked and then released by bounded memory "
                "(init_state(..., bounded_memory=True)), so it cannot be refined: its memory-conditioned "
                "features are gone. Track up to it again first (propagate_in_video(state, start_frame_idx="
                "<a prompted frame before it>, max_frame_num_to_track=...)), or use bounded_memory=False")

    def _add_prompt(self, s: VideoSession, obj: ObjectTrack, frame_idx: int, point_inputs: PointInputs | None,
                    mask_inputs: torch.Tensor | None) -> tuple[int, list, torch.Tensor]:
        is_init = frame_idx not in obj.tracked
        reverse = False if is_init else obj.tracked[frame_idx]
        is_cond = is_init or self.add_all_frames_to_correct_as_cond
        if not is_cond:
            self._warn_dropped_correction(s, obj, frame_idx)
        prev_logits = None
        prev = obj.latest_output(frame_idx, is_cond)
        if point_inputs is not None and prev is not None:
            prev_logits = torch.clamp(prev.pred_masks.to(s.device), -32.0, 32.0)
        out, _ = self._run_frame(s, obj, frame_idx, is_init, point_inputs, mask_inputs, reverse,
                                 run_mem_encoder=False, prev_sam_mask_logits=prev_logits)
        obj.pending(is_cond)[frame_idx] = out
        return frame_idx, s.obj_ids, self._video_res_masks(s, frame_idx, is_cond)

    def _warn_dropped_correction(self, s: VideoSession, obj: ObjectTrack, frame_idx: int) -> None:
        if s.warned_dropped_correction:
            return
        s.warned_dropped_correction = True
        warnings.warn(
            f"frame {frame_idx} of object {obj.obj_id!r} has already been tracked: this correction is returned "
            "now, but the next propagate_in_video recomputes the frame without it (official SAM 2 behaviour). "
            "To keep corrections, build the predictor with hydra_overrides_extra="
            "['++model.add_all_frames_to_correct_as_cond=true'] (or set "
            "predictor.add_all_frames_to_correct_as_cond = True before adding them).", UserWarning, stacklevel=3)

    @torch.inference_mode()
    def clear_all_prompts_in_frame(self, inference_state: VideoSession, frame_idx: int, obj_id: Any,
                                   need_output: bool = True):
        """Remove the prompts of ``obj_id`` on ``frame_idx``; the frame becomes an ordinary tracked frame."""
        s = inference_state
        check_frame_idx(frame_idx, s.num_frames)
        idx = s.obj_idx(obj_id)
        if idx is None:
            raise ValueError(f"unknown object id {obj_id!r}; existing object ids: {s.obj_ids}")
        obj = s.objects[idx]
        obj.point_inputs.pop(frame_idx, None)
        obj.mask_inputs.pop(frame_idx, None)
        obj.pending_cond.pop(frame_idx, None)
        obj.pending_non_cond.pop(frame_idx, None)
        out = obj.cond_outputs.pop(frame_idx, None)
        if out is not None:
            obj.non_cond_outputs[frame_idx] = out
            obj.tracked.pop(frame_idx, None)
        if not need_output:
            return None
        return frame_idx, s.obj_ids, self._video_res_masks(s, frame_idx, s.any_pending_cond(frame_idx))

    @torch.inference_mode()
    def remove_object(self, inference_state: VideoSession, obj_id: Any, strict: bool = False,
                      need_output: bool = True) -> tuple[list, list]:
        """Remove ``obj_id``; returns ``(obj_ids, [(frame_idx, masks), ...])`` for its prompted frames."""
        s = inference_state
        idx = s.obj_idx(obj_id)
        if idx is None:
            if strict:
                raise RuntimeError(f"Cannot remove object id {obj_id} as it doesn't exist. "
                                   f"All existing object ids: {s.obj_ids}.")
            return s.obj_ids, []
        if len(s.objects) == 1:
            self.reset_state(s)
            return s.obj_ids, []
        frames = s.objects[idx].input_frames()
        del s.objects[idx]
        updated = []
        if need_output:
            updated = [(t, self._video_res_masks(s, t, s.any_pending_cond(t))) for t in frames]
        return s.obj_ids, updated

    # ------------------------------------------------------------------------------ propagation

    @torch.inference_mode()
    def propagate_in_video_preflight(self, inference_state: VideoSession) -> None:
        """Encode the memory of newly prompted frames and make them conditioning frames."""
        consolidate_prompts(self, inference_state)

    @torch.inference_mode()
    def propagate_in_video(self, inference_state: VideoSession, start_frame_idx: int | None = None,
                           max_frame_num_to_track: int | None = None,
                           reverse: bool = False) -> Iterator[tuple[int, list, torch.Tensor]]:
        """Track every object through the video; yields ``(frame_idx, obj_ids, masks (N, 1, H, W))``.

        Starts at ``start_frame_idx`` (default: the earliest prompted frame) and visits
        ``max_frame_num_to_track + 1`` frames at most, backwards if ``reverse``.
        """
        s = inference_state
        order = propagation_order(self, s, start_frame_idx, max_frame_num_to_track, reverse)
        with FramePrefetcher(s.frames, order) as prefetch:
            for frame_idx in tqdm(order, desc="propagate in video",
                                  disable=len(order) < 2 or not self.show_progress):
                prefetch.reached(frame_idx)
                yield frame_idx, s.obj_ids, self._track_frame(s, frame_idx, reverse)

    def _track_frame(self, s: VideoSession, frame_idx: int, reverse: bool) -> torch.Tensor:
        """Every object's output on one frame -> video-res logits ``(N, 1, H, W)`` (see
        :func:`sam2.video_propagation.track_frame`; the streaming session calls this too)."""
        return track_frame(self, s, frame_idx, reverse)

    # ------------------------------------------------------------------------------ internals

    def _features(self, s: VideoSession, frame_idx: int) -> FrameFeatures:
        """Backbone features of one frame (see :func:`sam2.video_propagation.frame_features`)."""
        return frame_features(self.model, s, frame_idx)

    def _store_memory(self, s: VideoSession, mem: torch.Tensor, pos: torch.Tensor):
        """Memory features are kept in bfloat16 (as the official predictor does); the position
        encoding is identical for every frame and stored once."""
        if s.maskmem_pos_enc is None:
            s.maskmem_pos_enc = pos
        return mem.to(torch.bfloat16).to(s.storage_device), s.maskmem_pos_enc

    def _run_frame(self, s: VideoSession, obj: ObjectTrack, frame_idx: int, is_init: bool,
                   point_inputs: PointInputs | None, mask_inputs: torch.Tensor | None, reverse: bool,
                   run_mem_encoder: bool, prev_sam_mask_logits: torch.Tensor | None = None):
        """Track one object on one frame -> (stored :class:`FrameOutput`, low-res logits on device)."""
        step = track_step(self.model, frame_idx, is_init, self._features(s, frame_idx), point_inputs, mask_inputs,
                          obj.cond_outputs, obj.non_cond_outputs, s.num_frames, reverse, run_mem_encoder,
                          prev_sam_mask_logits)
        return self._frame_output(s, step.heads.low_res_masks, step.heads.obj_ptr, step.heads.object_score_logits,
                                  *self._stored_memory(s, step.maskmem_features, step.maskmem_pos_enc))

    def _stored_memory(self, s: VideoSession, mem: torch.Tensor | None, pos: torch.Tensor | None):
        return (None, None) if mem is None else self._store_memory(s, mem, pos)

    def _frame_output(self, s: VideoSession, pred: torch.Tensor, obj_ptr: torch.Tensor, scores: torch.Tensor,
                      mem: torch.Tensor | None, pos: torch.Tensor | None) -> tuple[FrameOutput, torch.Tensor]:
        """One object's result on one frame -> (stored :class:`FrameOutput`, low-res logits ``pred
        (1, 1, S/4, S/4)`` after hole filling, on device); ``mem`` is already stored (bfloat16)."""
        if self.fill_hole_area > 0:
            from sam2.utils.connected_components import fill_holes_in_mask_scores

            pred = fill_holes_in_mask_scores(pred, self.fill_hole_area)
        out = FrameOutput(pred_masks=pred.to(s.storage_device), obj_ptr=obj_ptr, object_score_logits=scores,
                          maskmem_features=mem, maskmem_pos_enc=pos)
        return out, pred

    def _video_res_masks(self, s: VideoSession, frame_idx: int, is_cond: bool) -> torch.Tensor:
        """Every object's latest logits on a frame at video resolution ``(N, 1, H, W)`` (-1024 where
        an object has no output there)."""
        h, w = s.video_height, s.video_width
        masks = torch.full((len(s.objects), 1, h, w), NO_OBJ_SCORE, dtype=torch.float32, device=s.storage_device)
        for i, obj in enumerate(s.objects):
            out = obj.latest_output(frame_idx, is_cond)
            if out is None and obj.is_released(frame_idx) and not s.warned_released:
                s.warned_released = True
                warnings.warn(f"the output of object {obj.obj_id!r} on frame {frame_idx} was released by bounded "
                              "memory; it is returned empty (-1024) here", UserWarning, stacklevel=3)
            if out is not None:
                pred = out.pred_masks
                if pred.shape[-2:] != (h, w):
                    pred = F.interpolate(pred, size=(h, w), mode="bilinear", align_corners=False)
                masks[i:i + 1] = pred
        return self._to_video_res(s, masks)

    def _to_video_res(self, s: VideoSession, masks: torch.Tensor) -> torch.Tensor:
        masks = masks.to(s.device)
        if masks.shape[-2:] != (s.video_height, s.video_width):
            masks = F.interpolate(masks, size=(s.video_height, s.video_width), mode="bilinear", align_corners=False)
        if self.non_overlap_masks:
            masks = apply_non_overlapping_constraints(masks)
        return masks

    @staticmethod
    def masks_to_numpy(video_res_masks: torch.Tensor) -> np.ndarray:
        """``(N, 1, H, W)`` logits -> ``(N, H, W)`` bool masks."""
        return (video_res_masks[:, 0] > 0).cpu().numpy()
