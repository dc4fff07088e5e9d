"""Training transforms of a clip, in the MOSE order and with torchvision's semantics (torchvision itself
is not required).

A :class:`Clip` holds PIL RGB frames and ``(T, O, H, W)`` uint8 0/1 masks. Every random draw comes from
the sample's NumPy generator. ``consistent`` transforms draw once for the whole clip:

1. horizontal flip (p 0.5);
2. affine about the image centre: rotation U(-25, 25) deg, x-shear U(-20, 20) deg; image bilinear with
   fill (123, 116, 103) (PIL), masks nearest with fill 0 (sampling grid as torchvision's tensor path);
   if an object's first-frame mask becomes empty the clip is left unchanged (``num_tentatives`` tries);
3. resize to ``S x S``: image PIL bilinear; masks bilinear with antialias, rounded (a 0.5 threshold);
4. colour jitter over the clip (brightness, contrast, saturation in a random order);
5. grayscale (p 0.05) of the whole clip;
6. colour jitter per frame;
7. to float in [0, 1] and normalise with the ImageNet mean and std.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance

from sam2.training.data.config import TransformConfig


@dataclass
class Clip:
    """frames: ``T`` PIL RGB images of one size; masks: ``(T, O, H, W)`` uint8 0/1."""

    frames: list[Image.Image]
    masks: torch.Tensor


def inverse_affine_matrix(center: tuple[float, float], angle: float, shear: tuple[float, float],
                          scale: float = 1.0) -> list[float]:
    """Output -> input pixel map ``[a, b, c, d, e, f]`` of a rotation/shear about ``center`` (degrees).

    The forward map is ``C * R(angle) * Shear(sx, sy) * Scale * C^-1`` (torchvision's convention).
    """
    rot = math.radians(angle)
    sx, sy = (math.radians(s) for s in shear)
    cx, cy = center
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [x / scale for x in (d, -b, 0.0, -c, a, 0.0)]
    m[2] += m[0] * -cx + m[1] * -cy + cx
    m[5] += m[3] * -cx + m[4] * -cy + cy
    return m


def affine_masks(masks: torch.Tensor, angle: float, shear: tuple[float, float]) -> torch.Tensor:
    """Nearest-neighbour affine of ``(N, H, W)`` uint8 masks about the centre, fill 0."""
    n, h, w = masks.shape
    theta = torch.tensor(inverse_affine_matrix((0.0, 0.0), angle, shear), dtype=torch.float32).view(1, 2, 3)
    xs = torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, steps=w)
    ys = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, steps=h)
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w)], dim=-1)  # (H, W, 3)
    grid = base.view(1, h * w, 3).bmm(theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h]))
    out = F.grid_sample(masks[None].float(), grid.view(1, h, w, 2), mode="nearest", padding_mode="zeros",
                        align_corners=False)
    return out[0].to(torch.uint8)  # nearest sampling of 0/1 values: already integral


def resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """``(..., H, W)`` uint8 -> ``(..., S, S)``: bilinear with antialias, then rounded (half to even)."""
    lead = masks.shape[:-2]
    flat = masks.reshape(1, -1, *masks.shape[-2:]).float()
    out = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.round().to(torch.uint8).reshape(*lead, size, size)


def jitter_params(rng: np.random.Generator, brightness: float, contrast: float, saturation: float
                  ) -> tuple[list[int], float, float, float]:
    """Order of the 4 adjustments (3 = hue, unused) and the brightness/contrast/saturation factors."""
    order = [int(i) for i in rng.permutation(4)]
    factors = [float(rng.uniform(max(0.0, 1.0 - x), 1.0 + x)) for x in (brightness, contrast, saturation)]
    return order, factors[0], factors[1], factors[2]


def apply_jitter(img: Image.Image, params: tuple[list[int], float, float, float]) -> Image.Image:
    order, b, c, s = params
    enhancers = {0: (ImageEnhance.Brightness, b), 1: (ImageEnhance.Contrast, c), 2: (ImageEnhance.Color, s)}
    for fn in order:
        if fn in enhancers:
            enhancer, factor = enhancers[fn]
            img = enhancer(img).enhance(factor)
    return img


def random_affine(clip: Clip, cfg: TransformConfig, rng: np.random.Generator) -> Clip:
    """Consistent rotation + x-shear of frames and masks; unchanged if a first-frame mask would vanish."""
    w, h = clip.frames[0].size
    for _ in range(cfg.affine_num_tentatives):
        angle = float(rng.uniform(-cfg.affine_degrees, cfg.affine_degrees))
        shear = (float(rng.uniform(-cfg.affine_shear, cfg.affine_shear)), 0.0)
        t, o = clip.masks.shape[:2]
        masks = affine_masks(clip.masks.reshape(t * o, h, w), angle, shear).reshape(t, o, h, w)
        if o and bool((masks[0].flatten(1).amax(dim=1) == 0).any()):
            continue
        matrix = inverse_affine_matrix((w * 0.5, h * 0.5), angle, shear)
        frames = [f.transform((w, h), Image.Transform.AFFINE, matrix, resample=Image.Resampling.BILINEAR,
                              fillcolor=tuple(cfg.affine_fill)) for f in clip.frames]
        return Clip(frames, masks)
    return clip


@functools.lru_cache(maxsize=4)
def _normalization_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32 value of every uint8 level, computed with the per-pixel float32 op sequence."""
    levels = torch.arange(256, dtype=torch.float32).div(255).view(1, 256)
    return ((levels - torch.tensor(mean).view(3, 1)) / torch.tensor(std).view(3, 1)).numpy()


def to_normalized_tensor(img: Image.Image, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """PIL RGB -> ``(3, H, W)`` float32 ``(x / 255 - mean) / std`` (by table lookup, bit-identical)."""
    pixels = np.asarray(img, dtype=np.uint8)
    table = _normalization_table(tuple(float(m) for m in mean), tuple(float(s) for s in std))
    out = np.empty((3, *pixels.shape[:2]), dtype=np.float32)
    for c in range(3):
        np.take(table[c], pixels[..., c], out=out[c])
    return torch.from_numpy(out)


def train_transforms(clip: Clip, cfg: TransformConfig, resolution: int, rng: np.random.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the MOSE transforms -> (``(T, 3, S, S)`` float32 frames, ``(T, O, S, S)`` uint8 masks)."""
    if cfg.augment:
        if rng.random() < cfg.hflip_prob:
            clip = Clip([f.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for f in clip.frames], clip.masks.flip(-1))
        clip = random_affine(clip, cfg, rng)
    frames = [f.resize((resolution, resolution), Image.Resampling.BILINEAR) for f in clip.frames]
    masks = resize_masks(clip.masks, resolution)
    if cfg.augment:
        params = jitter_params(rng, cfg.brightness, cfg.contrast, cfg.saturation)
        frames = [apply_jitter(f, params) for f in frames]
        if rng.random() < cfg.grayscale_prob:
            frames = [f.convert("L").convert("RGB") for f in frames]
        frames = [apply_jitter(f, jitter_params(rng, cfg.frame_brightness, cfg.frame_contrast,
                                                cfg.frame_saturation)) for f in frames]
    images = torch.stack([to_normalized_tensor(f, cfg.mean, cfg.std) for f in frames])
    return images, masks
