"""Image reading, mask overlays and MP4 writing for the ``sam2`` sub-commands."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB array of an image file; ``ValueError`` naming the file if unreadable.
    16-bit and float grey images are scaled to 0..255 (see :func:`sam2.utils.transforms.pil_to_rgb_array`)."""
    from PIL import Image

    from sam2.utils.transforms import pil_to_rgb_array

    try:
        with Image.open(path) as img:
            rgb = pil_to_rgb_array(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {str(path)!r}: {exc}") from exc
    if rgb.dtype != np.uint8:  # 16-bit / float grey in [0, 1]
        rgb = np.round(rgb * 255.0).astype(np.uint8)
    return np.array(rgb)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header; ``ValueError`` if it is not an image."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{str(path)!r} is not a readable image: {exc}") from exc


def color(index: int) -> tuple[int, int, int]:
    """RGB colour of object / mask number ``index`` (>= 1): the DAVIS palette entry, cycling after 255."""
    from sam2.utils.png_masks import DAVIS_PALETTE

    i = (index - 1) % 255 + 1
    return DAVIS_PALETTE[3 * i], DAVIS_PALETTE[3 * i + 1], DAVIS_PALETTE[3 * i + 2]


def _eroded(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1, constant_values=False)
    return (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
            & padded[1:-1, :-2] & padded[1:-1, 2:])


def overlay(image: np.ndarray, masks: list[np.ndarray], colors: list[tuple[int, int, int]],
            alpha: float = 0.5) -> np.ndarray:
    """Blend each (H, W) bool mask in its colour onto the RGB ``image`` (later masks on top), with a
    white outline."""
    out = image.astype(np.float32)
    for mask, rgb in zip(masks, colors):
        m = np.asarray(mask, dtype=bool)
        out[m] = (1 - alpha) * out[m] + alpha * np.asarray(rgb, dtype=np.float32)
        out[m & ~_eroded(m)] = 255.0
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def draw_prompts(image: np.ndarray, points: list[tuple[float, float, int]],
                 boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Boxes as green rectangles, clicks as green (object) / red (background) dots."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(image)
    pen = ImageDraw.Draw(img)
    r = max(3, round(min(img.size) / 60))
    for x0, y0, x1, y1 in boxes:
        pen.rectangle([x0, y0, x1, y1], outline=(0, 255, 0), width=max(1, r // 2))
    for x, y, label in points:
        fill = (0, 255, 0) if label == 1 else (255, 0, 0)
        pen.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=(255, 255, 255))
    return np.asarray(img)


def video_fps(path: Path) -> Fraction | None:
    """Average frame rate of a video file, if the container tells it."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
    except (av.FFmpegError, IndexError):
        return None
    return Fraction(rate) if rate else None


class Mp4Writer:
    """H.264 (libx264; MPEG-4 part 2 when absent) MP4 writer of (H, W, 3) uint8 RGB frames, via PyAV.

    Odd frame sizes are kept exactly by using 4:4:4 chroma (libx264 only).
    """

    def __init__(self, path: Path, width: int, height: int, fps: Fraction | float = 24) -> None:
        import av

        self._av = av
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        even = width % 2 == 0 and height % 2 == 0
        if codec != "libx264" and not even:
            raise ValueError(f"cannot encode a {width}x{height} video without libx264 (odd size)")
        self.container: Any = av.open(str(path), mode="w")
        try:
            self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(100_000))
            self.stream.width, self.stream.height = width, height
            self.stream.pix_fmt = "yuv420p" if even else "yuv444p"
            if codec == "libx264":
                self.stream.options = {"crf": "18", "preset": "veryfast"}
        except BaseException:
            self.container.close()
            raise
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB frame."""
        video_frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self.stream.encode(video_frame):
            self.container.mux(packet)
        self.count += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
        finally:
            self.container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
