"""Uploaded files: saved under a server-chosen name, then identified by decoding them.

The name a browser sends with a file is never used as a path (nor trusted for its type): the bytes go to
a fresh temporary file, Pillow is asked to decode them as an image, and if it cannot, PyAV as a video
(its frame count, first and last frame). Anything neither can decode is refused with 415.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from sam2.demo.errors import DemoError
from sam2.demo.sessions import DemoLimits

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024


@dataclass
class Media:
    """A decoded upload: an image held in memory, or a video left in its (server-named) file."""

    kind: str  # "image" | "video"
    width: int
    height: int
    num_frames: int
    fps: float
    image: np.ndarray | None = None  # (H, W, 3) uint8 for images
    path: Path | None = None  # video file


def safe_name(filename: str | None, default: str = "upload") -> str:
    """A name for exported files made from the stem of the browser's file name: letters, digits, ``-``
    and ``_`` only, at most 64 characters (``default`` when nothing is left). Never used as a path here."""
    stem = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:64]
    return cleaned or default


async def save_upload(upload: Any, folder: Path, limits: DemoLimits) -> Path:
    """Copy an uploaded file (Starlette ``UploadFile``) to a new temp file in ``folder``; 413 past the limit."""
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".bin", dir=folder)
    path = Path(name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(CHUNK):
                size += len(chunk)
                if size > limits.max_upload_bytes:
                    raise DemoError(413, too_large_message(limits))
                out.write(chunk)
        if size == 0:
            raise DemoError(415, "the uploaded file is empty")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def save_stream(data: BinaryIO, folder: Path, limits: DemoLimits) -> Path:
    """Synchronous :func:`save_upload` for a file object (bundled samples, tests)."""
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".bin", dir=folder)
    path = Path(name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := data.read(CHUNK):
                size += len(chunk)
                if size > limits.max_upload_bytes:
                    raise DemoError(413, too_large_message(limits))
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def too_large_message(limits: DemoLimits) -> str:
    return (f"the file is larger than the upload limit of {limits.max_upload_mb:g} MB "
            "(sam2 demo --max-upload-mb)")


def decode_media(path: Path, limits: DemoLimits) -> Media:
    """Identify the file at ``path`` by decoding it; 415 when it is neither an image nor a video,
    413 when a video has more frames than allowed."""
    image = _decode_image(path)
    if image is not None:
        h, w = image.shape[:2]
        return Media("image", w, h, 1, 1.0, image=image)
    return _decode_video(path, limits)


def _decode_image(path: Path) -> np.ndarray | None:
    """``(H, W, 3)`` uint8 RGB if Pillow decodes the file (first frame of animated images), else None."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return np.array(img.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise DemoError(413, f"the image has too many pixels to be processed safely: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        log.debug("not an image: %s", exc)
        return None


def _decode_video(path: Path, limits: DemoLimits) -> Media:
    from sam2.cli.media import video_fps
    from sam2.utils.video_decode import VideoDecoder

    try:
        decoder = VideoDecoder(str(path))
    except (ValueError, RuntimeError, OSError) as exc:
        log.debug("not a video: %s", exc)
        raise DemoError(415, "the file is neither an image (JPEG, PNG, WebP, ...) nor a video (MP4, WebM, "
                             "MOV, ...) that can be decoded") from None
    try:
        n = decoder.num_frames
        if n > limits.max_frames:
            raise DemoError(413, f"the video has {n} frames; the limit is {limits.max_frames} frames "
                                 "(sam2 demo --max-frames)")
        try:
            decoder.read(n - 1)
        except (RuntimeError, ValueError) as exc:
            detail = str(exc).replace(repr(str(path)), "the upload")
            raise DemoError(415, f"the video cannot be decoded to its end: {detail}") from None
        width, height = decoder.width, decoder.height
    finally:
        decoder.close()
    fps = video_fps(path)
    return Media("video", width, height, n, float(fps) if fps else 24.0, path=path)
