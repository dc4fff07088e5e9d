"""Regenerate the bundled demo samples (run from anywhere): ``python sam2/demo/samples/make_samples.py``.

* ``moving_shapes.mp4``: 48 frames of 320x192 at 12 fps (4 s): a red disc, a green square and a blue
  triangle moving over a textured background (H.264 via the package's ``Mp4Writer``);
* ``still_shapes.jpg``: a 320x240 picture of the same kind of scene.

Both are drawn from a fixed seed, so the files are the same on every run (with the same codec build).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent


def background(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([60 + xs * 80 // width, 70 + ys * 60 // height, np.full_like(xs, 110)], axis=-1)
    noise = rng.normal(0, 6, size=(height, width, 1))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def draw_scene(img: Image.Image, t: float) -> Image.Image:
    w, h = img.size
    pen = ImageDraw.Draw(img)
    cx, cy, r = w * (0.2 + 0.5 * t), h * (0.35 + 0.15 * np.sin(6.28 * t)), h * 0.13
    pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(220, 50, 40))
    sx, sy, s = w * (0.75 - 0.35 * t), h * 0.62, h * 0.12
    pen.rectangle([sx - s, sy - s, sx + s, sy + s], fill=(60, 190, 80))
    tx, ty, k = w * 0.5, h * (0.8 - 0.5 * t), h * 0.12
    pen.polygon([(tx, ty - k), (tx - k, ty + k), (tx + k, ty + k)], fill=(50, 80, 220))
    return img


def main() -> None:
    from sam2.cli.media import Mp4Writer

    width, height, frames = 320, 192, 48
    base = background(width, height, seed=1)
    with Mp4Writer(HERE / "moving_shapes.mp4", width, height, fps=12) as writer:
        for i in range(frames):
            writer.write(np.asarray(draw_scene(base.copy(), i / (frames - 1))))
    draw_scene(background(320, 240, seed=2), 0.3).save(HERE / "still_shapes.jpg", quality=85)
    for name in ("moving_shapes.mp4", "still_shapes.jpg"):
        print(f"{name}: {(HERE / name).stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
