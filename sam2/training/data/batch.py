"""The collated training batch: every clip of a batch with the same number of frames ``T``.

Objects of all videos are listed video by video (``O`` objects in all); inside the training model
every object is one element of the model batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class VideoBatch:
    """One collated batch (the official ``BatchedVideoDatapoint``).

    img_batch:          ``(T, V, 3, S, S)`` float32, normalised frames
    obj_to_frame_idx:   ``(T, O, 2)`` int32, per frame and object ``(t, video index)``
    masks:              ``(T, O, S, S)`` bool ground truth (all False where the object is absent)
    object_identifiers: ``(T, O, 3)`` int64 ``(video id, object id, source frame index)``
    frame_orig_size:    ``(T, O, 2)`` int64 ``(h, w)`` of the source frames
    dict_key:           name of the dataset / loss the batch belongs to (``"all"`` in MOSE)
    """

    img_batch: torch.Tensor
    obj_to_frame_idx: torch.Tensor
    masks: torch.Tensor
    object_identifiers: torch.Tensor
    frame_orig_size: torch.Tensor
    dict_key: str = "all"

    @property
    def num_frames(self) -> int:
        return self.img_batch.shape[0]

    @property
    def num_videos(self) -> int:
        return self.img_batch.shape[1]

    @property
    def num_objects(self) -> int:
        return self.masks.shape[1]

    @property
    def flat_img_batch(self) -> torch.Tensor:
        """Frames video-major: ``(V*T, 3, S, S)``."""
        return self.img_batch.transpose(0, 1).flatten(0, 1)

    @property
    def flat_obj_to_img_idx(self) -> torch.Tensor:
        """``(T, O)`` index into :attr:`flat_img_batch`: ``video * T + t``."""
        t, video = self.obj_to_frame_idx.unbind(-1)
        return video.long() * self.num_frames + t.long()

    def to(self, device: torch.device | str, non_blocking: bool = False) -> VideoBatch:
        move = {name: getattr(self, name).to(device, non_blocking=non_blocking)
                for name in ("img_batch", "obj_to_frame_idx", "masks", "object_identifiers", "frame_orig_size")}
        return replace(self, **move)
