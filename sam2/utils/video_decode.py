"""Frame sources for the video predictor: image folders, in-memory frames and video files (PyAV).

Every source gives the number of frames and ``read(idx)``, the original frame ``idx`` as a (H, W, 3)
uint8 RGB array. For video files (and in-memory video bytes), :class:`VideoDecoder` demuxes the packets
of the first video stream at open time (no decoding) to index the presentation timestamps, so the
frame count is exact. A frame is found by its timestamp: :meth:`VideoDecoder.read` seeks to the last
keyframe at or before it and decodes forward; reads moving forward within the current group of pictures
continue from the decoder's position instead of seeking again, so sequential reading costs one decode
per frame. Frames are converted to RGB with FFmpeg's scaler (``rgb24``); rotation metadata is ignored.
"""

from __future__ import annotations

import bisect
import io
import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

JPEG_EXTENSIONS = (".jpg", ".jpeg")
IMAGE_EXTENSIONS = JPEG_EXTENSIONS + (".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


class VideoDecoder:
    """Decoder of one video stream with exact frame count and seek-based random access.

    Args:
        source: path of a video file, or the bytes of an encoded video.
    """

    def __init__(self, source: str | os.PathLike | bytes) -> None:
        import av  # lazy: PyAV is only needed for video files

        self._av = av
        self._data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else None
        self.name = "<video bytes>" if self._data is not None else os.fspath(source)
        self._lock = threading.RLock()
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self._last_idx = -1  # index of the frame last produced by ``self._frames``
        self._warned_missing = False
        self._closed = False
        try:
            container = self._open()
            try:
                pts, key_pts = self._index_packets(container)
            finally:
                container.close()
        except av.FFmpegError as e:
            raise ValueError(f"cannot read video {self.name!r}: {e}") from e
        if not pts:
            raise ValueError(f"video {self.name!r} contains no video frames")
        # ``None`` timestamps: identify frames by decode order from the start (no seeking)
        self._pts: list[int] | None = None if None in pts else sorted(pts)
        self.num_frames = len(pts)
        if self._pts is None:
            self._key_idx = [0]
            logger.info(
                "video %s has packets without timestamps; random access decodes from the start", self.name
            )
        else:
            self._key_idx = sorted({bisect.bisect_left(self._pts, p) for p in key_pts} | {0})
        try:
            first = self.read(0)
        except BaseException:
            self.close()
            raise
        self.height, self.width = int(first.shape[0]), int(first.shape[1])

    # ------------------------------------------------------------------ container handling

    def _open(self) -> Any:
        if self._data is not None:
            container = self._av.open(io.BytesIO(self._data), mode="r")
        else:
            container = self._av.open(self.name, mode="r")
        if not container.streams.video:
            container.close()
            raise ValueError(f"{self.name!r} has no video stream")
        return container

    @staticmethod
    def _index_packets(container: Any) -> tuple[list[int | None], list[int]]:
        """Presentation timestamps of all frame packets, and those of keyframe packets."""
        stream = container.streams.video[0]
        pts: list[int | None] = []
        key_pts: list[int] = []
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:  # flush packet / edit-list discarded
                continue
            p = packet.pts if packet.pts is not None else packet.dts
            pts.append(p)
            if packet.is_keyframe and p is not None:
                key_pts.append(p)
        return pts, key_pts

    def _restart(self, key: int) -> None:
        """Position the decoder so that the next produced frame is keyframe ``key`` (or earlier)."""
        if self._frames is not None:
            self._frames.close()
        if self._container is None or key == 0 or self._pts is None:
            if self._container is not None:
                self._container.close()
            self._container = self._open()
            key = 0
        else:
            stream = self._container.streams.video[0]
            self._container.seek(self._pts[key], stream=stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._container.streams.video[0])
        self._last_idx = key - 1

    def _frame_index(self, frame: Any) -> int:
        if self._pts is None:
            return self._last_idx + 1
        p = frame.pts if frame.pts is not None else frame.dts
        if p is None:
            return self._last_idx + 1
        i = bisect.bisect_left(self._pts, p)
        if i < len(self._pts) and self._pts[i] == p:
            return i
        # timestamp not in the index (rounding in some containers): nearest indexed frame
        if i > 0 and (i == len(self._pts) or p - self._pts[i - 1] < self._pts[i] - p):
            return i - 1
        return i

    # ------------------------------------------------------------------ reading

    def read(self, idx: int) -> np.ndarray:
        """Frame ``idx`` as an RGB array of shape (H, W, 3), uint8."""
        if not 0 <= idx < self.num_frames:
            raise IndexError(f"frame index {idx} out of range for a video of {self.num_frames} frames")
        with self._lock:
            if self._closed:
                raise RuntimeError(f"video {self.name!r} was closed")
            try:
                return self._read_locked(idx)
            except self._av.FFmpegError as e:
                self._frames = None
                raise RuntimeError(f"failed to decode frame {idx} of {self.name!r}: {e}") from e

    def _read_locked(self, idx: int) -> np.ndarray:
        key_pos = bisect.bisect_right(self._key_idx, idx) - 1
        key = self._key_idx[key_pos]
        # continue forward from the current position unless a seek lands closer to the target
        if self._frames is None or idx <= self._last_idx or key > self._last_idx + 1:
            self._restart(key)
        first = True
        while True:
            assert self._frames is not None
            frame = next(self._frames, None)
            if frame is None:
                self._frames = None
                raise RuntimeError(f"frame {idx} of {self.name!r} not found: the video ended early")
            j = self._frame_index(frame)
            if first and j > idx and key_pos > 0:
                # the seek landed after the target: start from an earlier keyframe
                key_pos -= 1
                self._restart(self._key_idx[key_pos])
                continue
            first = False
            self._last_idx = max(j, self._last_idx)
            if j < idx:
                continue
            if j > idx and not self._warned_missing:
                warnings.warn(
                    f"frame {idx} of {self.name!r} was not produced by the decoder; returning frame {j}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._warned_missing = True
            return frame.to_ndarray(format="rgb24")

    def close(self) -> None:
        """Release the demuxer and decoder."""
        with self._lock:
            self._closed = True
            if self._frames is not None:
                self._frames.close()
                self._frames = None
            if self._container is not None:
                self._container.close()
                self._container = None


# ----------------------------------------------------------------------------------- frame sources


def check_array_frame(frame: Any, what: str) -> None:
    """Raise a TypeError/ValueError naming ``what`` unless ``frame`` is a (H, W, 3) uint8 array."""
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"{what}: expected a numpy array or PIL image, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"{what}: expected dtype uint8, got {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"{what}: expected shape (H, W, 3), got {tuple(frame.shape)}")


class FrameSource(Protocol):
    """Interface of the frame sources: frame count and ``read(idx)`` -> (H, W, 3) uint8 RGB array."""

    description: str

    def __len__(self) -> int: ...

    def read(self, idx: int) -> np.ndarray: ...

    def close(self) -> None: ...


def _natural_key(name: str) -> list[Any]:
    return [(0, int(part), "") if part.isdecimal() else (1, 0, part) for part in re.split(r"(\d+)", name)]


class FolderSource:
    """Image files of a folder. JPEGs only when there are any (as the official code); else PNG/BMP/TIFF/WebP."""

    def __init__(self, folder: Path) -> None:
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        jpegs = [p for p in files if p.suffix.lower() in JPEG_EXTENSIONS]
        chosen = jpegs or [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        if not chosen:
            raise ValueError(
                f"no image frames found in folder {str(folder)!r} (accepted extensions: {', '.join(IMAGE_EXTENSIONS)})"
            )
        if all(p.stem.isdecimal() for p in chosen):
            chosen.sort(key=lambda p: (int(p.stem), p.name))
        else:
            chosen.sort(key=lambda p: _natural_key(p.name))
        self.paths = chosen
        self.names = [p.stem for p in chosen]
        self.description = f"folder {str(folder)!r}"

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, idx: int) -> np.ndarray:
        path = self.paths[idx]
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except OSError as e:
            raise ValueError(f"cannot read image frame {idx} ({str(path)!r}): {e}") from e

    def close(self) -> None:
        pass


class MemorySource:
    """Frames held in memory: a sequence of arrays / PIL images, or a (T, H, W, 3) array."""

    def __init__(self, frames: Sequence[Any] | np.ndarray) -> None:
        if isinstance(frames, np.ndarray):
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
                raise ValueError(
                    f"a video array must be (T, H, W, 3) uint8, got shape {tuple(frames.shape)} dtype {frames.dtype}"
                )
        if len(frames) == 0:
            raise ValueError("the sequence of frames is empty")
        size0 = None
        for i, frame in enumerate(frames):
            if isinstance(frame, Image.Image):
                size = (frame.height, frame.width)
            else:
                check_array_frame(frame, f"frame {i}")
                size = frame.shape[:2]
            size0 = size0 or size
            if size != size0:
                raise ValueError(
                    f"frame {i} has size {size[0]}x{size[1]} but frame 0 has size {size0[0]}x{size0[1]}; "
                    "all frames of a video must have the same size"
                )
        self.frames = frames
        self.description = f"{len(frames)} in-memory frames"

    def __len__(self) -> int:
        return len(self.frames)

    def read(self, idx: int) -> np.ndarray:
        frame = self.frames[idx]
        if isinstance(frame, Image.Image):
            return np.asarray(frame.convert("RGB"))
        return frame

    def close(self) -> None:
        pass


class VideoFileSource:
    """Frames of a video file or of video bytes, read through :class:`VideoDecoder`."""

    def __init__(self, source: str | bytes) -> None:
        self.decoder = VideoDecoder(source)
        self.description = f"video {self.decoder.name!r}"

    def __len__(self) -> int:
        return self.decoder.num_frames

    def read(self, idx: int) -> np.ndarray:
        return self.decoder.read(idx)

    def close(self) -> None:
        self.decoder.close()
