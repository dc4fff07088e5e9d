"""The frames of a stream as the video predictor sees them: only the current frame is held."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
from PIL import Image

from sam2.utils.video_decode import check_array_frame
from sam2.utils.video_frames import IMG_MEAN, IMG_STD, preprocess_frame

UNKNOWN_LENGTH = sys.maxsize  # the length a stream reports when it is not known


def as_rgb_array(frame: Any, frame_idx: int) -> np.ndarray:
    """A numpy ``(H, W, 3)`` uint8 RGB frame or a PIL image -> ``(H, W, 3)`` uint8 array; a
    TypeError / ValueError naming frame ``frame_idx`` otherwise."""
    if isinstance(frame, Image.Image):
        return np.asarray(frame if frame.mode == "RGB" else frame.convert("RGB"))
    check_array_frame(frame, f"frame {frame_idx}")
    return frame


class StreamFrames:
    """``frames[i]`` of a stream for :class:`~sam2.sam2_video_predictor.SAM2VideoPredictor`: the
    current frame as a normalized ``(3, S, S)`` float32 tensor; earlier frames are not kept.

    ``len()`` is the length hint (the number of frames of a recorded video) or :data:`UNKNOWN_LENGTH`;
    the tracker reads it only to scale object-pointer temporal encodings on videos shorter than
    ``max_obj_ptrs_in_encoder`` frames.
    """

    def __init__(self, image_size: int, device: torch.device, length_hint: int | None = None) -> None:
        self.image_size = int(image_size)
        self.device = device
        self.length_hint = length_hint
        self.current_idx = -1
        self.video_height = self.video_width = 0
        self._current: torch.Tensor | None = None
        self._previous: tuple | None = None

    def __len__(self) -> int:
        return UNKNOWN_LENGTH if self.length_hint is None else self.length_hint

    def push(self, frame: Any) -> np.ndarray:
        """Make ``frame`` (RGB uint8 array or PIL image) the next current frame -> its RGB array.

        Raises (before changing anything) when its size differs from the first frame's, or when the
        stream would run past its length hint.
        """
        idx = self.current_idx + 1
        rgb = as_rgb_array(frame, idx)
        h, w = int(rgb.shape[0]), int(rgb.shape[1])
        if idx > 0 and (h, w) != (self.video_height, self.video_width):
            raise ValueError(f"frame {idx} has size {w}x{h} (width x height) but the stream started with "
                             f"{self.video_width}x{self.video_height}; all frames of a stream must have the same "
                             "size (start a new session for a new size)")
        if self.length_hint is not None and idx >= self.length_hint:
            raise ValueError(f"frame {idx} is beyond the length hint of {self.length_hint} frames given to the session")
        tensor = preprocess_frame(rgb, self.image_size, IMG_MEAN, IMG_STD).to(self.device)
        self._previous = (self._current, self.current_idx, self.video_height, self.video_width)
        self.video_height, self.video_width = h, w
        self._current, self.current_idx = tensor, idx
        return rgb

    def rollback(self) -> None:
        """Undo the last :meth:`push` (once): the frame before becomes the current frame again."""
        if self._previous is not None:
            self._current, self.current_idx, self.video_height, self.video_width = self._previous
            self._previous = None

    def __getitem__(self, idx: int) -> torch.Tensor:
        if self._current is None or idx != self.current_idx:
            held = "no frame yet" if self._current is None else f"only frame {self.current_idx}"
            raise IndexError(f"frame {idx} is not held by the stream ({held}): a streaming session keeps only "
                             "the current frame")
        return self._current
