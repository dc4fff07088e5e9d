"""State of one video in :class:`~sam2.export.runtime_video.OnnxVideoPredictor` (numpy only).

Frames are decoded and preprocessed on demand (PIL bicubic resize to ``S x S``, ``/ 255`` in float64,
float32 cast, ImageNet normalization in float32: the PyTorch video predictor's preprocessing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")


def normalization_table() -> np.ndarray:
    """``(3, 256)`` float32: normalized value of every uint8 level per channel."""
    levels = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
    mean = np.asarray(IMG_MEAN, dtype=np.float32)[:, None]
    std = np.asarray(IMG_STD, dtype=np.float32)[:, None]
    return ((levels[None, :] - mean) / std).astype(np.float32)


def preprocess_frame(rgb: np.ndarray, size: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> ``(1, 3, S, S)`` float32 model input."""
    from PIL import Image

    resized = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((size, size), Image.Resampling.BICUBIC))
    table = normalization_table()
    return np.stack([table[c][resized[..., c]] for c in range(3)])[None]


class VideoFrames:
    """A folder of JPEG/PNG frames (sorted by their integer names) or an in-memory ``(T, H, W, 3)`` uint8
    array / list of ``(H, W, 3)`` arrays."""

    def __init__(self, source: Any) -> None:
        self.paths: list[Path] | None = None
        self.arrays: list[np.ndarray] | None = None
        if isinstance(source, (str, os.PathLike)):
            folder = Path(source)
            if not folder.is_dir():
                raise ValueError(f"video_path {str(folder)!r} is not a folder of JPEG/PNG frames")
            paths = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS]
            if not paths:
                raise ValueError(f"video_path {str(folder)!r} holds no {'/'.join(FRAME_EXTENSIONS)} frames")
            try:
                self.paths = sorted(paths, key=lambda p: int(p.stem))
            except ValueError:
                raise ValueError(f"frame names in {str(folder)!r} must be integers (e.g. 00000.jpg)") from None
            first = self._read(0)
        else:
            arrays = [np.asarray(f) for f in source]
            if not arrays:
                raise ValueError("video frames: got an empty sequence")
            for i, a in enumerate(arrays):
                if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
                    raise ValueError(f"video frame {i}: expected an (H, W, 3) uint8 RGB array, got "
                                     f"{a.dtype} {a.shape}")
            self.arrays = arrays
            first = arrays[0]
        self.height, self.width = int(first.shape[0]), int(first.shape[1])

    def __len__(self) -> int:
        return len(self.paths) if self.paths is not None else len(self.arrays)

    def _read(self, idx: int) -> np.ndarray:
        if self.arrays is not None:
            return self.arrays[idx]
        from PIL import Image

        with Image.open(self.paths[idx]) as im:
            return np.asarray(im.convert("RGB"))


@dataclass
class FrameRecord:
    """One object on one frame: ``pred_masks (1, 1, S/4, S/4)`` logits, ``obj_ptr (1, C)``,
    ``object_score_logits (1, 1)``; once encoded ``maskmem_features (1, mem_dim, h, w)`` (bfloat16-rounded)
    and ``maskmem_pos_enc (1, mem_dim, h, w)``."""

    pred_masks: np.ndarray
    obj_ptr: np.ndarray
    object_score_logits: np.ndarray
    maskmem_features: np.ndarray | None = None
    maskmem_pos_enc: np.ndarray | None = None


@dataclass
class ObjectState:
    """Prompts and records of one object, keyed by frame index (same layout as the PyTorch session)."""

    obj_id: Any
    point_inputs: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    mask_inputs: dict[int, np.ndarray] = field(default_factory=dict)
    cond_outputs: dict[int, FrameRecord] = field(default_factory=dict)
    non_cond_outputs: dict[int, FrameRecord] = field(default_factory=dict)
    pending_cond: dict[int, FrameRecord] = field(default_factory=dict)
    pending_non_cond: dict[int, FrameRecord] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)

    def pending(self, is_cond: bool) -> dict[int, FrameRecord]:
        return self.pending_cond if is_cond else self.pending_non_cond

    def latest_output(self, frame_idx: int, is_cond: bool) -> FrameRecord | None:
        for store in (self.pending(is_cond), self.cond_outputs, self.non_cond_outputs):
            if frame_idx in store:
                return store[frame_idx]
        return None


@dataclass
class OnnxVideoState:
    """One video: frames, objects in creation order and a one-frame feature cache."""

    frames: VideoFrames
    objects: list[ObjectState] = field(default_factory=list)
    cached_frame_idx: int | None = None
    cached_features: dict[str, np.ndarray] | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def video_height(self) -> int:
        return self.frames.height

    @property
    def video_width(self) -> int:
        return self.frames.width

    @property
    def obj_ids(self) -> list[Any]:
        return [o.obj_id for o in self.objects]

    def obj_idx(self, obj_id: Any) -> int | None:
        return next((i for i, o in enumerate(self.objects) if o.obj_id == obj_id), None)

    def __getitem__(self, key: str) -> Any:  # official dict-style reads
        if key in ("num_frames", "video_height", "video_width", "obj_ids"):
            return getattr(self, key)
        raise KeyError(key)
