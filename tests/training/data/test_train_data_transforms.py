"""Transforms: shapes, dtypes, mask/frame alignment, the mask resize rule, determinism per generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sam2.training.data.config import TransformConfig
from sam2.training.data.transforms import (
    Clip,
    affine_masks,
    inverse_affine_matrix,
    jitter_params,
    random_affine,
    resize_masks,
    train_transforms,
)

MEAN = torch.tensor(TransformConfig().mean).view(3, 1, 1)
STD = torch.tensor(TransformConfig().std).view(3, 1, 1)


def _clip(num_t: int = 2, h: int = 40, w: int = 56, box=(12, 16, 26, 36)) -> Clip:
    """Grey frames with a white box, and the box as the mask of the only object."""
    y0, x0, y1, x1 = box
    rgb = np.full((h, w, 3), 30, np.uint8)
    rgb[y0:y1, x0:x1] = 250
    masks = torch.zeros(num_t, 1, h, w, dtype=torch.uint8)
    masks[:, :, y0:y1, x0:x1] = 1
    return Clip([Image.fromarray(rgb) for _ in range(num_t)], masks)


def _bright(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L")) > 140


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_mask_resize_is_bilinear_rounded_not_nearest():
    row = torch.tensor([[0, 1], [0, 1]], dtype=torch.uint8)
    assert resize_masks(row, 4)[0].tolist() == [0, 0, 1, 1]
    thin = torch.zeros(16, 16, dtype=torch.uint8)
    thin[:, 5] = 1  # a 1-pixel line vanishes when shrunk 4x (antialiased average < 0.5)
    assert resize_masks(thin, 4).sum() == 0
    wide = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    wide[..., 4:12] = 1
    out = resize_masks(wide, 8)
    assert out.shape == (2, 3, 8, 8) and out.dtype == torch.uint8
    assert out[0, 0, 0].tolist() == [0, 0, 1, 1, 1, 1, 0, 0]


def test_affine_matrix_and_mask_rotation():
    assert inverse_affine_matrix((0.0, 0.0), 0.0, (0.0, 0.0)) == pytest.approx([1, 0, 0, 0, 1, 0])
    m = torch.zeros(1, 8, 8, dtype=torch.uint8)
    m[0, 1, 2:5] = 1
    m[0, 2, 2] = 1
    rotated = affine_masks(m, 90.0, (0.0, 0.0))
    # a positive angle turns clockwise on screen (torchvision's convention)
    assert torch.equal(rotated, torch.rot90(m, k=-1, dims=(-2, -1)))
    assert torch.equal(affine_masks(m, 0.0, (0.0, 0.0)), m)


@pytest.mark.parametrize("seed", range(4))
def test_random_affine_moves_frames_and_masks_together(seed):
    clip = _clip()
    out = random_affine(clip, TransformConfig(), np.random.default_rng(seed))
    for t in range(2):
        assert _iou(_bright(out.frames[t]), out.masks[t, 0].numpy().astype(bool)) > 0.85
    assert not torch.equal(out.masks, clip.masks)  # the box is central: never left unchanged


def test_random_affine_gives_up_when_a_first_frame_mask_would_vanish():
    clip = _clip(box=(0, 0, 1, 1))  # one corner pixel: any clear rotation moves it out of the image
    cfg = TransformConfig(affine_degrees=45.0, affine_shear=0.0)
    seed = next(s for s in range(100) if abs(np.random.default_rng(s).uniform(-45, 45)) > 20)
    out = random_affine(clip, cfg, np.random.default_rng(seed))
    assert out is clip


def test_train_transforms_shapes_alignment_and_determinism():
    clip = _clip(num_t=3)
    cfg = TransformConfig()
    images, masks = train_transforms(clip, cfg, 32, np.random.default_rng(7))
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.float32
    assert masks.shape == (3, 1, 32, 32) and masks.dtype == torch.uint8 and set(masks.unique().tolist()) <= {0, 1}
    grey = (images * STD + MEAN).mean(1)  # back to [0, 1]
    for t in range(3):
        assert _iou((grey[t] > 0.55).numpy(), masks[t, 0].numpy().astype(bool)) > 0.8
    again, again_masks = train_transforms(_clip(num_t=3), cfg, 32, np.random.default_rng(7))
    assert torch.equal(images, again) and torch.equal(masks, again_masks)
    other = [train_transforms(_clip(num_t=3), cfg, 32, np.random.default_rng(s))[0] for s in range(8, 11)]
    assert all(not torch.equal(images, o) for o in other)


def test_horizontal_flip_keeps_alignment():
    cfg = TransformConfig(hflip_prob=1.0, affine_degrees=0.0, affine_shear=0.0, brightness=0, contrast=0,
                          saturation=0, grayscale_prob=0, frame_brightness=0, frame_contrast=0,
                          frame_saturation=0)
    clip = _clip(num_t=1, h=32, w=32, box=(4, 2, 12, 10))
    images, masks = train_transforms(clip, cfg, 32, np.random.default_rng(0))
    expected = torch.zeros(32, 32, dtype=torch.uint8)
    expected[4:12, 22:30] = 1
    assert torch.equal(masks[0, 0], expected)
    grey = (images * STD + MEAN).mean(1)[0]
    assert torch.equal(grey > 0.5, expected.bool())


def test_without_augmentation_only_resize_and_normalise():
    clip = _clip(num_t=2)
    images, masks = train_transforms(clip, TransformConfig(augment=False), 24, np.random.default_rng(0))
    resized = np.asarray(clip.frames[0].resize((24, 24), Image.Resampling.BILINEAR), dtype=np.float32)
    expected = (torch.from_numpy(resized / 255.0).permute(2, 0, 1) - MEAN) / STD
    assert torch.allclose(images[0], expected, atol=1e-6)
    assert torch.equal(masks, resize_masks(clip.masks, 24))


def test_grayscale_and_jitter_ranges():
    cfg = TransformConfig(grayscale_prob=1.0)
    rgb = np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    clip = Clip([Image.fromarray(rgb)] * 2, torch.ones(2, 1, 20, 20, dtype=torch.uint8))
    images, _ = train_transforms(clip, cfg, 20, np.random.default_rng(3))
    pixels = (images * STD + MEAN) * 255
    assert torch.allclose(pixels[:, 0], pixels[:, 1], atol=1e-3) and torch.allclose(pixels[:, 1], pixels[:, 2], atol=1e-3)
    rng = np.random.default_rng(0)
    draws = [jitter_params(rng, 0.1, 0.03, 0.05) for _ in range(300)]
    assert all(sorted(order) == [0, 1, 2, 3] for order, *_ in draws)
    b, c, s = (np.array([d[i] for d in draws]) for i in (1, 2, 3))
    assert 0.9 <= b.min() < 0.92 and 1.08 < b.max() <= 1.1
    assert 0.97 <= c.min() and c.max() <= 1.03 and 0.95 <= s.min() and s.max() <= 1.05
