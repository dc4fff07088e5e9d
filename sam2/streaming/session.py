"""``StreamingSession``: track objects in a stream of frames, one frame at a time, in bounded memory.

The session holds a :class:`~sam2.sam2_video_predictor.SAM2VideoPredictor` and runs its tracking step
(``sam2.tracking``) on each new frame, so a recorded video fed frame by frame gives the masks of
``propagate_in_video``, bit for bit. Only the current frame and, per object, what later frames can
still read under the model's memory selection are kept (:mod:`sam2.tracking.eviction`).

    session = StreamingSession(build_sam2_video_predictor(config, checkpoint))
    session.track(first_frame)                        # no objects yet: 0 masks
    session.add_new_points_or_box(1, points=[[210, 350]], labels=[1])
    for frame in frames:
        result = session.track(frame)                 # masks of every object on this frame
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sam2.modeling.sam2_base import SAM2Base
from sam2.sam2_video_predictor import SAM2VideoPredictor
from sam2.streaming.frames import StreamFrames
from sam2.streaming.sources import open_source
from sam2.tracking.eviction import RetentionPolicy, release_old_cond_frames
from sam2.video_session import VideoSession


@dataclass
class StreamResult:
    """The masks of every object on one frame: ``masks (N, 1, H, W)`` float32 logits at the frame's
    size (object ``obj_ids[i]`` in row ``i``; a mask is ``logits > 0``)."""

    frame_idx: int
    obj_ids: list[Any]
    masks: torch.Tensor

    def binary(self, threshold: float = 0.0) -> np.ndarray:
        """``(N, H, W)`` bool masks."""
        return (self.masks[:, 0] > threshold).cpu().numpy()


class StreamingSession:
    """Objects tracked through frames given one at a time (numpy ``(H, W, 3)`` uint8 RGB or PIL).

    Args:
        predictor: a video predictor (its post-processing options are used) or a bare ``SAM2Base``.
        length_hint: number of frames of a recorded video, when known. Only videos shorter than
            ``max_obj_ptrs_in_encoder`` (16) frames need it to match ``propagate_in_video`` exactly
            (the tracker scales object-pointer temporal encodings by the video length there).
        offload_state_to_cpu: keep the per-object memory on the CPU (as ``init_state`` does).

    Prompts always apply to the current frame (the last one given to :meth:`track`). Adding an object
    does not re-process earlier frames nor change other objects' results; refining an object on the
    current frame replaces its output there, and later frames track from the refined output (as a
    conditioning frame if the predictor has ``add_all_frames_to_correct_as_cond``, else as that frame's
    tracked memory).
    """

    def __init__(self, predictor: SAM2VideoPredictor | SAM2Base, length_hint: int | None = None,
                 offload_state_to_cpu: bool = False) -> None:
        if isinstance(predictor, SAM2Base):
            predictor = SAM2VideoPredictor(predictor)
        if not isinstance(predictor, SAM2VideoPredictor):
            raise TypeError(f"predictor must be a SAM2VideoPredictor or a SAM2Base, got {type(predictor).__name__}")
        if length_hint is not None and (isinstance(length_hint, bool) or not isinstance(length_hint, int)
                                        or length_hint < 1):
            raise ValueError(f"length_hint must be a positive int or None, got {length_hint!r}")
        self.predictor = predictor
        model = predictor.model
        device = model.device
        self.frames = StreamFrames(model.image_size, device, length_hint)
        self.state = VideoSession(frames=self.frames, video_height=0, video_width=0, device=device,
                                  storage_device=torch.device("cpu") if offload_state_to_cpu else device,
                                  offload_state_to_cpu=offload_state_to_cpu, bounded_memory=True,
                                  retention=RetentionPolicy.from_model(model))
        # In a stream a correction is never recomputed away: no dropped-correction notice.
        self.state.warned_dropped_correction = True

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> StreamingSession:
        """A session on a Hub model such as ``facebook/sam2.1-hiera-tiny``."""
        return cls(SAM2VideoPredictor.from_pretrained(model_id), **kwargs)

    # ------------------------------------------------------------------------------ properties

    @property
    def frame_idx(self) -> int:
        """Index of the current frame (-1 before the first :meth:`track`)."""
        return self.frames.current_idx

    @property
    def obj_ids(self) -> list[Any]:
        return self.state.obj_ids

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(height, width)`` of the stream's frames (0, 0 before the first frame)."""
        return self.state.video_height, self.state.video_width

    # ------------------------------------------------------------------------------ tracking

    @torch.inference_mode()
    def track(self, frame: Any) -> StreamResult:
        """Make ``frame`` the current frame and track every object on it -> its :class:`StreamResult`.

        A frame of another size than the first raises ``ValueError`` and leaves the session as it was;
        so does an interruption (``KeyboardInterrupt``) while the frame is tracked: the frame is then
        forgotten and the stream can go on with the next one.
        """
        s = self.state
        if s.objects:  # memory of what was prompted / refined on the frame before
            self.predictor.propagate_in_video_preflight(s)
        rgb = self.frames.push(frame)
        s.video_height, s.video_width = int(rgb.shape[0]), int(rgb.shape[1])
        idx = self.frames.current_idx
        if not s.objects:
            return StreamResult(idx, [], torch.zeros(0, 1, *self.frame_size, device=s.device))
        try:
            masks = self.predictor._track_frame(s, idx, reverse=False)
        except BaseException:
            self._forget_frame(idx)
            raise
        self._release_prompts(idx)
        return StreamResult(idx, s.obj_ids, masks)

    def _forget_frame(self, frame_idx: int) -> None:
        """Undo a partly tracked frame: no object keeps an output there, the frame before is current."""
        s = self.state
        for obj in s.objects:
            obj.non_cond_outputs.pop(frame_idx, None)
            obj.tracked.pop(frame_idx, None)
        self.frames.rollback()
        s.cached_frame_idx, s.cached_features = None, None

    def stream(self, frames: Iterable[Any] | str | os.PathLike | int) -> Iterator[StreamResult]:
        """:meth:`track` every frame of ``frames`` in turn: an iterable of frames, a
        :class:`~sam2.streaming.sources.FrameSource`, or what :func:`~sam2.streaming.sources.open_source`
        opens (camera index, URL, video file, folder; closed at the end)."""
        if isinstance(frames, (str, os.PathLike, int)):
            with open_source(frames) as source:
                yield from self.stream(source)
            return
        for frame in frames:
            yield self.track(frame)

    def _release_prompts(self, frame_idx: int) -> None:
        """Drop conditioning frames that can never be selected again, and prompts of frames gone."""
        s = self.state
        max_cond = self.predictor.model.cfg.tracker.max_cond_frames_in_attn
        for obj in s.objects:
            release_old_cond_frames(obj.cond_outputs, obj.tracked, frame_idx, max_cond, s.retention)
            for inputs in (obj.point_inputs, obj.mask_inputs):
                for t in [t for t in inputs if t < frame_idx and t not in obj.cond_outputs
                          and t not in obj.non_cond_outputs]:
                    del inputs[t]

    # ------------------------------------------------------------------------------ prompts

    def _current(self, what: str) -> int:
        if self.frames.current_idx < 0:
            raise RuntimeError(f"{what}: no frame yet; call track(frame) first (prompts apply to the current frame)")
        return self.frames.current_idx

    def _result(self, frame_idx: int, obj_ids: list, masks: torch.Tensor) -> StreamResult:
        return StreamResult(frame_idx, list(obj_ids), masks)

    @torch.inference_mode()
    def add_new_points_or_box(self, obj_id: Any, points: Any = None, labels: Any = None, box: Any = None,
                              clear_old_points: bool = True, normalize_coords: bool = True) -> StreamResult:
        """Clicks ``points (N, 2)`` in pixels of the frame with ``labels (N,)`` (1 = object, 0 =
        background) and/or a ``box (4,)`` XYXY for ``obj_id`` on the current frame: a new object, or a
        refinement of an existing one. -> every object's masks on the current frame."""
        idx = self._current("add_new_points_or_box")
        return self._result(*self.predictor.add_new_points_or_box(
            self.state, idx, obj_id, points=points, labels=labels, clear_old_points=clear_old_points,
            normalize_coords=normalize_coords, box=box))

    @torch.inference_mode()
    def add_new_mask(self, obj_id: Any, mask: Any) -> StreamResult:
        """A 2-D mask (bool or 0/1, any size) as the prompt of ``obj_id`` on the current frame."""
        idx = self._current("add_new_mask")
        return self._result(*self.predictor.add_new_mask(self.state, idx, obj_id, mask))

    @torch.inference_mode()
    def remove_object(self, obj_id: Any, strict: bool = True) -> StreamResult:
        """Forget ``obj_id`` -> the remaining objects' masks on the current frame. Unknown ids raise
        ``KeyError`` (``strict``) or are ignored."""
        s = self.state
        if s.obj_idx(obj_id) is None:
            if strict:
                raise KeyError(f"unknown object id {obj_id!r}; existing object ids: {s.obj_ids}")
        else:
            self.predictor.remove_object(s, obj_id, need_output=False)
        return self.current_result()

    @torch.inference_mode()
    def reset(self) -> None:
        """Remove every object (the stream goes on from the current frame)."""
        self.predictor.reset_state(self.state)

    def current_result(self) -> StreamResult:
        """Every object's latest masks on the current frame (with pending prompts / refinements)."""
        idx = self._current("current_result")
        s = self.state
        if not s.objects:
            return StreamResult(idx, [], torch.zeros(0, 1, *self.frame_size, device=s.device))
        return StreamResult(idx, s.obj_ids, self.predictor._video_res_masks(s, idx, s.any_pending_cond(idx)))
