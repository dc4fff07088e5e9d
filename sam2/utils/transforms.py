"""Image preprocessing, prompt-coordinate scaling and mask post-processing of the image predictor."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def pil_to_rgb_array(image: Image.Image) -> np.ndarray:
    """A PIL image as ``(H, W, 3)`` RGB: uint8 for 8-bit modes, float32 in [0, 1] for high bit depths.

    16-bit grey (``I;16*``, and ``I`` holding 0..65535, as 16-bit PNGs open) is scaled by 1/65535;
    32-bit float grey (``F``) must already hold values in [0, 1]. Anything else in those modes has no
    defined brightness and raises ``ValueError`` (PIL's own conversion would clip it to 255 or 0).
    """
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
        grey = np.asarray(image).astype(np.int64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise ValueError(f"a PIL image of mode {image.mode!r} must hold 16-bit values 0..65535, found "
                             f"{grey.min()}..{grey.max()}; convert it to 8-bit RGB or a float array in [0, 1]")
        return np.repeat((grey.astype(np.float32) / 65535.0)[..., None], 3, axis=-1)
    if image.mode == "F":
        grey = np.asarray(image, dtype=np.float32)
        if not np.isfinite(grey).all() or (grey.size and (grey.min() < 0.0 or grey.max() > 1.0)):
            raise ValueError("a PIL image of mode 'F' must hold finite values in [0, 1]; "
                             "scale it first or pass an 8-bit RGB image")
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"))


def image_to_tensor(image: np.ndarray | Image.Image) -> torch.Tensor:
    """HWC RGB image -> ``(3, H, W)`` float32 in [0, 1]; uint8 is divided by 255.

    Float arrays are taken as already in [0, 1] (as the official predictor does).
    """
    if isinstance(image, Image.Image):
        image = pil_to_rgb_array(image)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected an HxWx3 RGB numpy array or a PIL image, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got an array of shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if image.dtype == np.uint8:
        # torch.tensor copies, so read-only arrays (np.asarray of a PIL image, memory maps) do not warn
        return torch.tensor(image).permute(2, 0, 1).contiguous().float().div(255)
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
            raise ValueError("a float image must hold finite values in [0, 1]; pass uint8 for 0-255 values")
        return torch.tensor(image, dtype=torch.float32).permute(2, 0, 1).contiguous()
    raise ValueError(f"unsupported image dtype {image.dtype}; expected uint8 (0-255) or float in [0, 1]")


class SAM2Transforms:
    """Resize to ``resolution`` x ``resolution`` (aspect ratio not kept), normalize, and map
    prompts and masks between the original image frame and the model frame."""

    def __init__(self, resolution: int, mask_threshold: float, max_hole_area: float = 0.0,
                 max_sprinkle_area: float = 0.0) -> None:
        self.resolution = resolution
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area
        self.mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]

    def __call__(self, image: np.ndarray | Image.Image) -> torch.Tensor:
        """HWC image -> normalized ``(3, S, S)`` (antialiased bilinear resize of the [0, 1] image)."""
        x = image_to_tensor(image)
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x[None], size=(self.resolution, self.resolution), mode="bilinear",
                              align_corners=False, antialias=True)[0]
        return (x - self.mean) / self.std

    def forward_batch(self, images: list[np.ndarray]) -> torch.Tensor:
        return torch.stack([self(img) for img in images], dim=0)

    def transform_coords(self, coords: torch.Tensor, normalize: bool = False,
                         orig_hw: tuple[int, int] | None = None) -> torch.Tensor:
        """``(..., 2)`` (x, y) -> model frame. With ``normalize`` the input is in pixels of an
        ``orig_hw`` image, otherwise already relative in [0, 1]."""
        if normalize:
            h, w = orig_hw
            coords = coords.clone()
            coords[..., 0] = coords[..., 0] / w
            coords[..., 1] = coords[..., 1] / h
        return coords * self.resolution

    def transform_boxes(self, boxes: torch.Tensor, normalize: bool = False,
                        orig_hw: tuple[int, int] | None = None) -> torch.Tensor:
        """``(..., 4)`` XYXY -> ``(B, 2, 2)`` corner points in the model frame."""
        return self.transform_coords(boxes.reshape(-1, 2, 2), normalize, orig_hw)

    def postprocess_masks(self, masks: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
        """Low-res logits ``(B, C, h, w)`` -> ``(B, C, H, W)`` after optional hole / sprinkle removal."""
        masks = masks.float()
        if self.max_hole_area > 0 or self.max_sprinkle_area > 0:
            from sam2.utils.connected_components import remove_holes_and_sprinkles

            masks = remove_holes_and_sprinkles(masks, self.mask_threshold, self.max_hole_area,
                                               self.max_sprinkle_area)
        return F.interpolate(masks, tuple(orig_hw), mode="bilinear", align_corners=False)
