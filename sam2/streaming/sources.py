"""Live frame sources for streaming sessions: camera devices, network streams, (growing) files,
folders of frames and in-memory frames, each read one frame at a time as ``(H, W, 3)`` uint8 RGB.

:func:`open_source` picks the kind from its argument. Video is decoded with PyAV (FFmpeg) in decode
order from the start, converted with FFmpeg's scaler to ``rgb24`` (as the offline frame loader does).
A source that cannot be opened, or fails while frames are read, raises :class:`SourceError` naming it
and, mid-stream, the number of frames it gave before failing.
"""

from __future__ import annotations

import io
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

URL_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class SourceError(RuntimeError):
    """A frame source could not be opened, or failed while it was read."""


class FrameSource:
    """An iterator of RGB frames with a ``description``, a frame count ``length`` (None when
    unknown: cameras, network streams, growing files) and ``fps`` (None when unknown)."""

    description = "frames"
    length: int | None = None
    fps: float | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        count = 0
        try:
            for frame in self._frames():
                yield frame
                count += 1
        except SourceError:
            raise
        except Exception as exc:  # any decoder / reader failure, reported with where it happened
            raise SourceError(f"{self.description} failed after {count} frames: {type(exc).__name__}: {exc}") from exc

    def _frames(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device, connection or file."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class IterableSource(FrameSource):
    """Frames from any iterable (a list of arrays / PIL images, a ``(T, H, W, 3)`` array, a generator)."""

    def __init__(self, frames: Iterable[Any], description: str = "the frame iterable") -> None:
        self._iterable = frames
        self.description = description
        self.length = len(frames) if hasattr(frames, "__len__") else None  # type: ignore[arg-type]

    def _frames(self) -> Iterator[Any]:
        yield from self._iterable


class FolderFrames(FrameSource):
    """The image frames of a folder, in the order of the offline loader."""

    def __init__(self, folder: Path) -> None:
        from sam2.utils.video_decode import FolderSource

        try:
            self._folder = FolderSource(folder)
        except (OSError, ValueError) as exc:
            raise SourceError(f"cannot open folder {str(folder)!r}: {exc}") from exc
        self.description = f"folder {str(folder)!r}"
        self.length = len(self._folder)
        self.names = list(self._folder.names)

    def _frames(self) -> Iterator[np.ndarray]:
        for i in range(len(self._folder)):
            yield self._folder.read(i)


class GrowingFile(io.RawIOBase):
    """A file read while another program appends to it: at its end, reads wait for more data and
    report the end only after ``idle_timeout`` seconds without growth."""

    def __init__(self, path: Path, idle_timeout: float, poll_interval: float = 0.05) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        self.idle_timeout = idle_timeout
        self.poll_interval = poll_interval
        self._ended = False
        self.interrupted = False  # Ctrl-C while waiting for data: re-raised by the reading source

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False  # read as a pipe: FFmpeg then does not look for the (moving) end of the file

    def readinto(self, buffer: Any) -> int:
        deadline = time.monotonic() + self.idle_timeout
        while True:
            n = self._file.readinto(buffer)
            if n:
                return n
            if self._ended or time.monotonic() >= deadline:
                self._ended = True  # the end: later reads at the end return at once
                return 0
            try:
                time.sleep(self.poll_interval)
            except KeyboardInterrupt:  # raised inside FFmpeg's read callback, which would swallow it
                self.interrupted = self._ended = True
                return 0

    def close(self) -> None:
        self._file.close()
        super().close()


class AVSource(FrameSource):
    """A video decoded with PyAV: a file, a growing file, a network stream or a camera device."""

    def __init__(self, target: Any, description: str, options: dict[str, str] | None = None,
                 container_format: str | None = None, count_frames: bool = False, timeout: float | None = None,
                 raw: Any = None) -> None:
        import av

        self._av = av
        self.description = description
        self._raw = raw
        try:
            if count_frames:
                self.length = _count_packets(av, target)
            self._container = av.open(raw if raw is not None else target, mode="r", format=container_format,
                                      options=options or {}, timeout=timeout)
        except (av.FFmpegError, OSError, ValueError) as exc:
            if raw is not None:
                raw.close()
            raise SourceError(f"cannot open {description}: {exc}") from exc
        if not self._container.streams.video:
            self.close()
            raise SourceError(f"{description} has no video stream")
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None

    def _frames(self) -> Iterator[np.ndarray]:
        stream = self._container.streams.video[0]
        for frame in self._container.decode(stream):
            yield frame.to_ndarray(format="rgb24")
        if getattr(self._raw, "interrupted", False):
            raise KeyboardInterrupt

    def close(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        if container is not None:
            container.close()
        if self._raw is not None:
            self._raw.close()


def _count_packets(av: Any, path: str) -> int:
    """Exact number of video frames of a file (demuxing only, no decoding)."""
    with av.open(path, mode="r") as container:
        if not container.streams.video:
            return 0
        return sum(1 for p in container.demux(container.streams.video[0]) if p.size and not p.is_discard)


def camera_target(index: int) -> tuple[str, str]:
    """``(device name, FFmpeg input format)`` of camera ``index`` on this platform."""
    if sys.platform.startswith("linux"):
        return f"/dev/video{index}", "v4l2"
    if sys.platform == "darwin":
        return str(index), "avfoundation"
    if sys.platform.startswith("win"):
        raise SourceError("camera indices are not supported on Windows; pass a DirectShow device as a URL-like "
                          "string, or frames read with another library")
    raise SourceError(f"camera indices are not supported on {sys.platform}")


def open_source(source: Any, follow: bool = False, idle_timeout: float = 5.0, timeout: float = 10.0,
                options: dict[str, str] | None = None) -> FrameSource:
    """A :class:`FrameSource` for ``source``.

    ``source`` is a camera index (``0`` or ``"0"``), a URL (``rtsp://``, ``http(s)://``, ``udp://``,
    ...), a video file, a folder of image frames, or an iterable of frames. With ``follow`` a file is
    read while it grows (a streamable container such as MPEG-TS or Matroska), ending after
    ``idle_timeout`` seconds without new data. ``timeout`` (seconds) bounds opening and each read of
    network streams and cameras; ``options`` are FFmpeg options (e.g. ``{"rtsp_transport": "tcp"}``).
    """
    import av

    if isinstance(source, FrameSource):
        return source
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool) or (
            isinstance(source, str) and source.isdecimal() and not Path(source).exists()):
        name, fmt = camera_target(int(source))
        if fmt not in av.formats_available:
            raise SourceError(f"cannot open camera {int(source)} ({name}): this FFmpeg build has no {fmt!r} input "
                              "device; read the camera with another library and pass its frames")
        return AVSource(name, f"camera {int(source)} ({name})", options, fmt, timeout=timeout)
    if isinstance(source, str) and URL_PATTERN.match(source):
        return AVSource(source, f"stream {source!r}", options, timeout=timeout)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.is_dir():
            return FolderFrames(path)
        if not path.is_file():
            raise SourceError(f"source {str(path)!r} does not exist (expected a camera index, a URL, a video file "
                              "or a folder of frames)")
        if follow:
            raw = GrowingFile(path, idle_timeout)
            return AVSource(str(path), f"growing file {str(path)!r}", options, raw=raw)
        return AVSource(str(path), f"video {str(path)!r}", options, count_frames=True)
    if isinstance(source, (bytes, bytearray)):
        raise TypeError("video bytes are not a live source; write them to a file or use init_state")
    if isinstance(source, Iterable):
        return IterableSource(source)
    raise TypeError(f"unsupported source of type {type(source).__name__}: expected a camera index, a URL, a video "
                    "file, a folder of frames or an iterable of frames")
