"""Explicit state of one video being segmented: frames, objects, their prompts and outputs.

``SAM2VideoPredictor.init_state`` returns a :class:`VideoSession`; official callers that only pass
it back to the predictor (or read ``state["num_frames"]`` and similar) keep working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from sam2.tracking.eviction import GuardedOutputs, ReleasedFrames, RetentionPolicy
from sam2.tracking.sam_heads import PointInputs


@dataclass
class FrameOutput:
    """What is kept for one object on one frame (all that later frames need from it).

    ``pred_masks (1, 1, S/4, S/4)`` low-res logits, ``obj_ptr (1, C)``, ``object_score_logits (1, 1)``,
    and once encoded ``maskmem_features (1, mem_dim, S/16, S/16)`` (bfloat16) with its position
    encoding (shared by all frames).
    """

    pred_masks: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor
    maskmem_features: torch.Tensor | None = None
    maskmem_pos_enc: torch.Tensor | None = None


@dataclass
class ObjectTrack:
    """Prompts and outputs of one object, keyed by frame index.

    ``cond_outputs`` are conditioning frames (prompted), ``non_cond_outputs`` tracked frames;
    ``pending_*`` hold outputs of interactions not yet consolidated by a propagation;
    ``tracked[frame] = reverse`` records in which direction a frame was last tracked.
    In bounded mode (:meth:`bounded`) ``released`` holds the tracked frames whose outputs were
    dropped because no later frame can read them (see :mod:`sam2.tracking.eviction`).
    """

    obj_id: Any
    point_inputs: dict[int, PointInputs] = field(default_factory=dict)
    mask_inputs: dict[int, torch.Tensor] = field(default_factory=dict)
    cond_outputs: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond_outputs: dict[int, FrameOutput] = field(default_factory=dict)
    pending_cond: dict[int, FrameOutput] = field(default_factory=dict)
    pending_non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)
    released: ReleasedFrames | None = None

    @classmethod
    def bounded(cls, obj_id: Any) -> ObjectTrack:
        """An object whose tracked outputs can be released; reading a released one raises."""
        released = ReleasedFrames()
        return cls(obj_id, non_cond_outputs=GuardedOutputs(obj_id, released), released=released)

    def is_released(self, frame_idx: int) -> bool:
        return self.released is not None and frame_idx in self.released

    def pending(self, is_cond: bool) -> dict[int, FrameOutput]:
        return self.pending_cond if is_cond else self.pending_non_cond

    def latest_output(self, frame_idx: int, is_cond: bool) -> FrameOutput | None:
        """Pending output for the frame, else the conditioning one, else the tracked one."""
        for store in (self.pending(is_cond), self.cond_outputs, self.non_cond_outputs):
            if frame_idx in store:
                return store[frame_idx]
        return None

    def input_frames(self) -> list[int]:
        return sorted(set(self.point_inputs) | set(self.mask_inputs))


@dataclass
class VideoSession:
    """One video: lazily loaded frames, the objects in index order and a one-frame feature cache."""

    frames: Any  # sam2.utils.video_frames.VideoFrames
    video_height: int
    video_width: int
    device: torch.device
    storage_device: torch.device
    offload_video_to_cpu: bool = False
    offload_state_to_cpu: bool = False
    objects: list[ObjectTrack] = field(default_factory=list)
    cached_frame_idx: int | None = None
    cached_features: Any = None  # backbone output (``forward_image``) of cached_frame_idx
    frame_features: Any = None  # FrameFeatures of cached_features (shared by the objects on that frame)
    maskmem_pos_enc: torch.Tensor | None = None  # memory position encoding, same for every frame
    warned_dropped_correction: bool = False
    # bounded memory (init_state(..., bounded_memory=True)): per object, only what later frames can read
    bounded_memory: bool = False
    retention: RetentionPolicy | None = None
    warned_released: bool = False

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def obj_ids(self) -> list[Any]:
        return [o.obj_id for o in self.objects]

    def obj_idx(self, obj_id: Any) -> int | None:
        for i, o in enumerate(self.objects):
            if o.obj_id == obj_id:
                return i
        return None

    def any_pending_cond(self, frame_idx: int) -> bool:
        return any(frame_idx in o.pending_cond for o in self.objects)

    # Read-only dict-style access for official callers (``state["num_frames"]`` ...).
    _COMPAT_KEYS = ("num_frames", "video_height", "video_width", "obj_ids", "device", "storage_device",
                    "offload_video_to_cpu", "offload_state_to_cpu")

    def __getitem__(self, key: str) -> Any:
        if key == "images":
            return self.frames
        if key == "obj_id_to_idx":
            return {o.obj_id: i for i, o in enumerate(self.objects)}
        if key == "obj_idx_to_id":
            return dict(enumerate(self.obj_ids))
        if key in self._COMPAT_KEYS:
            return getattr(self, key)
        raise KeyError(f"{key!r}: the session is a VideoSession object; available keys: "
                       f"{', '.join(self._COMPAT_KEYS)}, images, obj_id_to_idx, obj_idx_to_id")
