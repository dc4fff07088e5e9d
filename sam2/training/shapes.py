"""A generated video-segmentation dataset of moving shapes, in the DAVIS layout (train and val splits).

Every video shows a few coloured ellipses and rectangles that move, turn and bounce off the borders over
a textured background; later objects pass in front of earlier ones. Written as::

    <root>/<split>/JPEGImages/<video>/00000.jpg     frames
    <root>/<split>/Annotations/<video>/00000.png    palette PNG, pixel value = object id (0 = background)
    <root>/shapes.json                              the settings and every object's shape and colour

Small and fast to make, so that fine-tuning (``sam2 train``) and its J&F evaluation can be shown
end to end on a CPU in minutes. Everything is decided by the seed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sam2.utils.png_masks import save_ann_png

__all__ = ["ShapesConfig", "ShapesDataset", "ShapesSplit", "generate_shapes_dataset", "render_video"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
MIN_VISIBLE_FIRST_FRAME = 0.6  # share of each object's area that must be unoccluded on frame 0


@dataclass(frozen=True)
class ShapesConfig:
    """Size of the generated dataset. ``objects`` = (min, max) objects per video."""

    train_videos: int = 12
    val_videos: int = 4
    num_frames: int = 10
    height: int = 128
    width: int = 128
    objects: tuple[int, int] = (2, 3)
    seed: int = 0
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        checks = [
            (self.train_videos >= 0 and self.val_videos >= 0, "video counts must be >= 0"),
            (self.train_videos + self.val_videos > 0, "at least one video is needed"),
            (self.num_frames >= 2, f"num_frames must be >= 2, got {self.num_frames}"),
            (min(self.height, self.width) >= 32, f"frames must be at least 32x32, got {self.width}x{self.height}"),
            (1 <= self.objects[0] <= self.objects[1] <= 20, f"objects must be 1 <= min <= max <= 20, got "
                                                            f"{self.objects}"),
            (1 <= self.jpeg_quality <= 100, f"jpeg_quality must be in 1..100, got {self.jpeg_quality}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"ShapesConfig: {message}")


@dataclass(frozen=True)
class ShapesSplit:
    """One split: frame and mask roots (the ``img_folder`` / ``gt_folder`` of a training dataset)."""

    img_folder: Path
    gt_folder: Path
    videos: tuple[str, ...]


@dataclass(frozen=True)
class ShapesDataset:
    root: Path
    train: ShapesSplit
    val: ShapesSplit
    config: ShapesConfig


@dataclass
class _Shape:
    """One object: kind, colour, half-axes (px), centre, velocity (px / frame), angle and turn rate."""

    kind: str
    colour: tuple[int, int, int]
    half: tuple[float, float]
    centre: list[float]
    velocity: list[float]
    angle: float
    turn: float
    trajectory: list[tuple[float, float]] = field(default_factory=list)

    def footprint(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """(H, W) bool area covered at the current position."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        u = (xs - self.centre[0]) * c + (ys - self.centre[1]) * s
        v = -(xs - self.centre[0]) * s + (ys - self.centre[1]) * c
        a, b = self.half
        if self.kind == "ellipse":
            return (u / a) ** 2 + (v / b) ** 2 <= 1.0
        return (np.abs(u) <= a) & (np.abs(v) <= b)

    def step(self, height: int, width: int) -> None:
        """Move one frame, bouncing so that the centre stays ``max(half)`` away from the borders."""
        margin = max(self.half)
        for axis, size in ((0, width), (1, height)):
            self.centre[axis] += self.velocity[axis]
            low, high = margin, size - 1 - margin
            if self.centre[axis] < low or self.centre[axis] > high:
                self.velocity[axis] = -self.velocity[axis]
                self.centre[axis] = float(np.clip(self.centre[axis], low, high))
        self.angle += self.turn


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float texture: smooth colour blotches, stripes and grain, in muted colours."""
    coarse = rng.uniform(60, 190, size=(6, 6, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.float32)
    smooth = 0.5 * smooth + 0.5 * smooth.mean(axis=-1, keepdims=True)  # half desaturated
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    theta, period = rng.uniform(0, np.pi), rng.uniform(6, 16)
    stripes = 18.0 * np.sin(2 * np.pi * (xs * np.cos(theta) + ys * np.sin(theta)) / period)
    grain = rng.normal(0, 6, size=(height, width, 1)).astype(np.float32)
    return smooth + stripes[..., None] + grain


def _colours(rng: np.random.Generator, count: int) -> list[tuple[int, int, int]]:
    """Saturated colours with hues spread around the wheel (random start)."""
    start = rng.uniform(0, 1)
    out = []
    for k in range(count):
        hue = (start + k / count) % 1.0
        rgb = Image.new("HSV", (1, 1), (int(hue * 255), 230, int(rng.uniform(190, 250)))).convert("RGB")
        out.append(tuple(int(c) for c in rgb.getpixel((0, 0))))
    return out


def _new_shapes(rng: np.random.Generator, cfg: ShapesConfig) -> list[_Shape]:
    count = int(rng.integers(cfg.objects[0], cfg.objects[1], endpoint=True))
    side = min(cfg.height, cfg.width)
    shapes = []
    for colour in _colours(rng, count):
        half = (float(rng.uniform(0.08, 0.18) * side), float(rng.uniform(0.08, 0.18) * side))
        margin = max(half)
        speed, heading = rng.uniform(0.02, 0.045) * side, rng.uniform(0, 2 * np.pi)
        shapes.append(_Shape(
            kind=str(rng.choice(["ellipse", "rectangle"])), colour=colour, half=half,
            centre=[float(rng.uniform(margin, cfg.width - 1 - margin)),
                    float(rng.uniform(margin, cfg.height - 1 - margin))],
            velocity=[float(speed * np.cos(heading)), float(speed * np.sin(heading))],
            angle=float(rng.uniform(0, np.pi)), turn=float(rng.uniform(-0.08, 0.08))))
    return shapes


def _compose(shapes: list[_Shape], background: np.ndarray, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Paint the shapes in order -> (H, W, 3) uint8 frame, (H, W) uint8 ids, visible share per object."""
    height, width = background.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image, ids = background.copy(), np.zeros((height, width), np.uint8)
    areas = []
    for obj_id, shape in enumerate(shapes, start=1):
        area = shape.footprint(ys, xs)
        shade = 1.0 + 0.12 * ((xs - shape.centre[0]) / max(shape.half))  # a gentle left-right shading
        image[area] = np.asarray(shape.colour, np.float32) * shade[area][:, None]
        ids[area] = obj_id
        areas.append(area.sum())
    image += rng.normal(0, 3, size=image.shape).astype(np.float32)
    visible = [float((ids == k).sum() / max(a, 1)) for k, a in enumerate(areas, start=1)]
    return np.clip(image, 0, 255).astype(np.uint8), ids, visible


def render_video(rng: np.random.Generator, cfg: ShapesConfig) -> tuple[list[np.ndarray], list[np.ndarray],
                                                                       list[_Shape]]:
    """Frames ``(H, W, 3)`` uint8, id masks ``(H, W)`` uint8 and the objects of one generated video.

    Object placements are redrawn (up to 50 times) until every object is at least
    ``MIN_VISIBLE_FIRST_FRAME`` unoccluded on the first frame.
    """
    background = _background(rng, cfg.height, cfg.width)
    for _ in range(50):
        shapes = _new_shapes(rng, cfg)
        frame, ids, visible = _compose(shapes, background, rng)
        if min(visible) >= MIN_VISIBLE_FIRST_FRAME:
            break
    frames, masks = [frame], [ids]
    for shape in shapes:
        shape.trajectory.append((shape.centre[0], shape.centre[1]))
    for _ in range(cfg.num_frames - 1):
        for shape in shapes:
            shape.step(cfg.height, cfg.width)
            shape.trajectory.append((shape.centre[0], shape.centre[1]))
        frame, ids, _ = _compose(shapes, background, rng)
        frames.append(frame)
        masks.append(ids)
    return frames, masks, shapes


def _write_video(split_root: Path, name: str, frames: list[np.ndarray], masks: list[np.ndarray],
                 quality: int) -> None:
    img_dir, gt_dir = split_root / "JPEGImages" / name, split_root / "Annotations" / name
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    for t, (frame, mask) in enumerate(zip(frames, masks)):
        Image.fromarray(frame).save(img_dir / f"{t:05d}.jpg", quality=quality)
        save_ann_png(gt_dir / f"{t:05d}.png", mask)


def generate_shapes_dataset(root: str | os.PathLike, config: ShapesConfig = ShapesConfig()) -> ShapesDataset:
    """Write the dataset under ``root`` (which must not exist or be empty) and describe it.

    Raises ``FileExistsError`` naming ``root`` when it already holds files, so nothing is overwritten.
    """
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{str(root)!r} exists and is not an empty folder; choose a new folder for the "
                              "generated dataset")
    root.mkdir(parents=True, exist_ok=True)
    counts = {"train": config.train_videos, "val": config.val_videos}
    described: dict[str, dict] = {}
    splits = {}
    for split_index, split in enumerate(SPLITS):
        names = []
        for v in range(counts[split]):
            rng = np.random.default_rng([config.seed, split_index, v])
            frames, masks, shapes = render_video(rng, config)
            name = f"{split}_{v:03d}"
            _write_video(root / split, name, frames, masks, config.jpeg_quality)
            described[name] = {"split": split, "objects": [
                {"id": k, "kind": s.kind, "colour": list(s.colour), "half_axes": list(s.half),
                 "centres": [list(c) for c in s.trajectory]} for k, s in enumerate(shapes, start=1)]}
            names.append(name)
        splits[split] = ShapesSplit(root / split / "JPEGImages", root / split / "Annotations", tuple(names))
    meta = {"config": asdict(config), "videos": described}
    (root / "shapes.json").write_text(json.dumps(meta, indent=1))
    log.info("wrote %d train and %d val videos of %d frames to %s", config.train_videos, config.val_videos,
             config.num_frames, root)
    return ShapesDataset(root, splits["train"], splits["val"], config)
