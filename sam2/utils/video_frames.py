"""Lazy, bounded-memory source of preprocessed video frames for the video predictor.

:func:`load_video_frames` accepts a folder of image frames, a video file (or its bytes), a sequence of
RGB frames or a ``(T, H, W, 3)`` uint8 array, and returns a :class:`VideoFrames`. Only frame 0 is read
up front (to learn the frame size); other frames are read and preprocessed when indexed and kept in a
small LRU cache, so memory does not grow with the length of the video.

Preprocessing (:func:`~sam2.utils.frame_preprocess.preprocess_frame`, importable from here too) is bit-identical to the official JPEG-folder path: PIL bicubic
resize of the uint8 RGB frame to ``(S, S)``, ``/ 255`` in float64, cast to float32, then
``(x - mean) / std`` in float32. The official code decodes video files with decord and resizes with
FFmpeg's scaler, so frames of video files are not bit-identical to the official ones (here they are
decoded with PyAV and go through the same PIL resize as image frames).
"""

from __future__ import annotations

import logging
import operator
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sam2.utils.frame_preprocess import IMG_MEAN, IMG_STD, preprocess_frame
from sam2.utils.video_decode import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    FolderSource,
    FrameSource,
    MemorySource,
    VideoFileSource,
)

logger = logging.getLogger(__name__)

ACCEPTED_INPUTS = (
    "a folder of image frames ("
    + ", ".join(IMAGE_EXTENSIONS)
    + "), a video file ("
    + ", ".join(VIDEO_EXTENSIONS)
    + ") or its bytes, a list/tuple of (H, W, 3) uint8 arrays or PIL images, "
    "or a (T, H, W, 3) uint8 numpy array"
)


# ----------------------------------------------------------------------------------- lazy frames


class _Entry:
    __slots__ = ("raw", "tensor")

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw
        self.tensor: torch.Tensor | None = None


class VideoFrames:
    """Lazily loaded, preprocessed frames of one video.

    ``frames[i]`` is frame ``i`` as a normalized (3, S, S) float32 tensor on :attr:`device`; at most
    ``cache_size`` frames are kept in memory (least recently used are dropped). Callers must not modify
    returned tensors in place (they are cached). With ``prefetch=True`` a background thread reads the
    next ``cache_size - 1`` frames in the direction of the last accesses. Thread-safe.
    """

    def __init__(
        self,
        source: FrameSource,
        image_size: int = 1024,
        device: torch.device | str = "cpu",
        cache_size: int = 4,
        prefetch: bool = False,
        names: list[str] | None = None,
        mean: Sequence[float] = IMG_MEAN,
        std: Sequence[float] = IMG_STD,
    ) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self._source = source
        self.image_size = int(image_size)
        self.device = torch.device(device)
        self.cache_size = int(cache_size)
        self._mean, self._std = tuple(mean), tuple(std)
        self.frame_names = names if names is not None else [f"{i:05d}" for i in range(len(source))]
        self._num_frames = len(source)
        self._lock = threading.RLock()
        self._cache: OrderedDict[int, _Entry] = OrderedDict()
        self._closed = False
        self._thread_error: BaseException | None = None
        self._hint: tuple[int, int] | None = None  # (last accessed index, direction)
        self._last_access: int | None = None
        first = self._source.read(0)
        self.video_height, self.video_width = int(first.shape[0]), int(first.shape[1])
        self._insert(0, _Entry(first))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if prefetch and self.cache_size > 1:
            self._thread = threading.Thread(
                target=_prefetch_worker,
                args=(weakref.ref(self), self._wake, self._stop),
                name="sam2-frame-prefetch",
                daemon=True,
            )
            self._thread.start()
        self._finalizer = weakref.finalize(self, _shutdown, self._stop, self._wake, source)

    def __repr__(self) -> str:
        return (
            f"VideoFrames({self._source.description}, frames={self._num_frames}, "
            f"size={self.video_height}x{self.video_width}, image_size={self.image_size}, device={self.device})"
        )

    def __len__(self) -> int:
        return self._num_frames

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(self._num_frames):
            yield self[i]

    def __enter__(self) -> VideoFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_index(self, idx: Any) -> int:
        if isinstance(idx, (bool, np.bool_)):
            raise TypeError("frame index must be an integer, got a bool")
        try:
            i = operator.index(idx)
        except TypeError:
            raise TypeError(f"frame index must be an integer, got {type(idx).__name__}") from None
        if not 0 <= i < self._num_frames:
            raise IndexError(f"frame index {i} out of range for a video of {self._num_frames} frames")
        if self._thread_error is not None:
            raise RuntimeError("Failure in frame loading thread") from self._thread_error
        if self._closed:
            raise RuntimeError("the video frames were closed")
        return i

    def _insert(self, idx: int, entry: _Entry) -> None:
        self._cache[idx] = entry
        self._cache.move_to_end(idx)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _entry(self, idx: int, touch: bool = True) -> _Entry:
        """Cached entry of frame ``idx``, reading the frame if needed (call with the lock held)."""
        entry = self._cache.get(idx)
        if entry is None:
            raw = self._source.read(idx)
            if raw.shape[:2] != (self.video_height, self.video_width):
                raise ValueError(
                    f"frame {idx} has size {raw.shape[0]}x{raw.shape[1]} but frame 0 has size "
                    f"{self.video_height}x{self.video_width}; all frames of a video must have the same size"
                )
            entry = _Entry(raw)
            self._insert(idx, entry)
        elif touch:
            self._cache.move_to_end(idx)
        return entry

    def _tensor(self, entry: _Entry) -> torch.Tensor:
        if entry.tensor is None:
            entry.tensor = preprocess_frame(entry.raw, self.image_size, self._mean, self._std).to(self.device)
        return entry.tensor

    def _note_access(self, idx: int) -> None:
        if self._thread is None:
            return
        step = -1 if self._last_access is not None and idx < self._last_access else 1
        self._last_access = idx
        self._hint = (idx, step)
        self._wake.set()

    def __getitem__(self, idx: int) -> torch.Tensor:
        """Frame ``idx`` as a normalized (3, S, S) float32 tensor on :attr:`device`."""
        i = self._check_index(idx)
        with self._lock:
            tensor = self._tensor(self._entry(i))
        self._note_access(i)
        return tensor

    def preload(self, idx: int) -> None:
        """Read and preprocess frame ``idx`` into the cache without holding the cache lock while
        decoding (so another thread can read cached frames meanwhile); a no-op if it is cached."""
        i = self._check_index(idx)
        with self._lock:
            entry = self._cache.get(i)
            if entry is not None and entry.tensor is not None:
                return
        raw = entry.raw if entry is not None else self._source.read(i)
        if raw.shape[:2] != (self.video_height, self.video_width):
            return  # reported by the reader that needs the frame
        tensor = preprocess_frame(raw, self.image_size, self._mean, self._std).to(self.device)
        with self._lock:
            if self._closed:
                return
            entry = self._cache.get(i)
            if entry is None:
                entry = _Entry(raw)
                self._insert(i, entry)
            if entry.tensor is None:
                entry.tensor = tensor

    def raw_frame(self, idx: int) -> np.ndarray:
        """Original frame ``idx`` as a (H, W, 3) uint8 RGB array (a copy)."""
        i = self._check_index(idx)
        with self._lock:
            raw = self._entry(i).raw
        return np.array(raw, copy=True)

    def cached_indices(self) -> list[int]:
        """Indices of the frames currently held in memory, least recently used first."""
        with self._lock:
            return list(self._cache)

    def _prefetch_once(self) -> None:
        """Read the frames after the last accessed one (run by the prefetch thread)."""
        hint = self._hint
        if hint is None:
            return
        idx, step = hint
        for k in range(1, self.cache_size):
            j = idx + step * k
            if not 0 <= j < self._num_frames or self._stop.is_set() or self._hint != hint:
                return
            with self._lock:
                if self._closed:
                    return
                entry = self._entry(j, touch=False)
                self._tensor(entry)

    def close(self) -> None:
        """Stop the prefetch thread, release the decoder and drop cached frames."""
        with self._lock:
            self._closed = True
            self._cache.clear()
        self._finalizer()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)


def _shutdown(stop: threading.Event, wake: threading.Event, source: FrameSource) -> None:
    stop.set()
    wake.set()
    source.close()


def _prefetch_worker(ref: weakref.ref, wake: threading.Event, stop: threading.Event) -> None:
    """Body of the prefetch thread; holds only a weak reference so an unclosed VideoFrames can be freed."""
    while not stop.is_set():
        if not wake.wait(timeout=0.5):
            if ref() is None:
                return
            continue
        wake.clear()
        frames = ref()
        if frames is None or stop.is_set():
            return
        try:
            frames._prefetch_once()
        except BaseException as e:  # surfaced on the next access
            frames._thread_error = e
            return
        finally:
            del frames


# ----------------------------------------------------------------------------------- entry point


def load_video_frames(
    video_path: Any,
    image_size: int = 1024,
    offload_video_to_cpu: bool = False,
    async_loading_frames: bool = False,
    compute_device: torch.device | str = "cpu",
    cache_size: int = 4,
    img_mean: Sequence[float] = IMG_MEAN,
    img_std: Sequence[float] = IMG_STD,
) -> VideoFrames:
    """Open a video for lazy reading; returns a :class:`VideoFrames` of (3, S, S) float32 frames.

    ``video_path`` is a folder of image frames, a video file path, the bytes of a video file, a
    list/tuple of (H, W, 3) uint8 arrays or PIL images, or a (T, H, W, 3) uint8 array. Frames are on
    the CPU with ``offload_video_to_cpu`` and on ``compute_device`` otherwise. ``async_loading_frames``
    prefetches the next few frames in a background thread (not the whole video, unlike the official
    code, so memory stays bounded). ``cache_size`` frames at most are held in memory.
    """
    names = None
    if isinstance(video_path, (bytes, bytearray, memoryview)):
        source: FrameSource = VideoFileSource(bytes(video_path))
    elif isinstance(video_path, (str, os.PathLike)):
        path = Path(video_path).expanduser()
        if path.is_dir():
            folder = FolderSource(path)
            source, names = folder, folder.names
        elif path.is_file():
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                raise ValueError(f"{str(path)!r} is a single image; expected {ACCEPTED_INPUTS}")
            source = VideoFileSource(str(path))  # unknown extensions are tried with PyAV too
        else:
            raise FileNotFoundError(f"video path {str(path)!r} does not exist")
    elif isinstance(video_path, (np.ndarray, list, tuple)):
        source = MemorySource(video_path)
    else:
        raise TypeError(
            f"unsupported video input of type {type(video_path).__name__}; expected {ACCEPTED_INPUTS}"
        )
    device = torch.device("cpu") if offload_video_to_cpu else torch.device(compute_device)
    try:
        return VideoFrames(
            source, image_size, device, cache_size, async_loading_frames, names, mean=img_mean, std=img_std
        )
    except BaseException:
        source.close()
        raise
