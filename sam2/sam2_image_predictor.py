"""``SAM2ImagePredictor``: compute an image embedding once, then predict masks for many prompts."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from sam2.modeling.sam2_base import SAM2Base
from sam2.utils.prompts import check_box, check_mask_input, check_points, prompt_batch_size
from sam2.utils.transforms import SAM2Transforms


class SAM2ImagePredictor:
    """Promptable segmentation of one image (or a batch of images) with a SAM 2 model."""

    def __init__(self, sam_model: SAM2Base, mask_threshold: float = 0.0, max_hole_area: float = 0.0,
                 max_sprinkle_area: float = 0.0, **kwargs: Any) -> None:
        self.model = sam_model
        self._transforms = SAM2Transforms(sam_model.image_size, mask_threshold, max_hole_area, max_sprinkle_area)
        self.mask_threshold = mask_threshold
        stride = sam_model.image_size // 4
        self._bb_feat_sizes = [(stride, stride), (stride // 2, stride // 2), (stride // 4, stride // 4)]
        self.reset_predictor()

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> SAM2ImagePredictor:
        """Build from a Hub id (``facebook/sam2.1-hiera-large``); kwargs go to the builder and to us."""
        from sam2.build_sam import build_sam2_hf

        return cls(build_sam2_hf(model_id, **kwargs), **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def reset_predictor(self) -> None:
        """Forget the current image(s)."""
        self._is_image_set = False
        self._features: dict | None = None
        self._orig_hw: list[tuple[int, int]] | None = None
        self._is_batch = False

    # ------------------------------------------------------------------------------ images

    def _embed(self, batch: torch.Tensor) -> dict:
        """``(B, 3, S, S)`` -> {"image_embed": (B, C, S/16, S/16), "high_res_feats": [(B, C/8, S/4, S/4),
        (B, C/4, S/8, S/8)]}, with ``no_mem_embed`` added to the image embedding."""
        backbone_out = self.model.forward_image(batch)
        _, vision_feats, _, _ = self.model._prepare_backbone_features(backbone_out)
        if self.model.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + self.model.no_mem_embed
        b = batch.shape[0]
        feats = [feat.permute(1, 2, 0).view(b, -1, *size)
                 for feat, size in zip(vision_feats[::-1], self._bb_feat_sizes[::-1])][::-1]
        return {"image_embed": feats[-1], "high_res_feats": feats[:-1]}

    @torch.no_grad()
    def set_image(self, image: np.ndarray | Image.Image) -> None:
        """Embed one HWC RGB image (uint8 array or PIL image)."""
        if isinstance(image, Image.Image):
            orig_hw = (image.size[1], image.size[0])
        elif isinstance(image, np.ndarray):
            orig_hw = tuple(image.shape[:2])
        else:
            raise NotImplementedError("Image format not supported")
        x = self._transforms(image)[None].to(self.device)
        self.reset_predictor()
        self._orig_hw = [orig_hw]
        self._features = self._embed(x)
        self._is_image_set = True

    @torch.no_grad()
    def set_image_batch(self, image_list: list[np.ndarray]) -> None:
        """Embed several HWC RGB images (they may differ in size)."""
        if not isinstance(image_list, list) or not image_list:
            raise ValueError("set_image_batch expects a non-empty list of HxWx3 numpy arrays")
        for i, image in enumerate(image_list):
            if not isinstance(image, np.ndarray):
                raise ValueError(f"image {i}: images are expected to be np.ndarray in RGB format, of shape HWC")
        batch = self._transforms.forward_batch(image_list).to(self.device)
        self.reset_predictor()
        self._orig_hw = [tuple(image.shape[:2]) for image in image_list]
        self._features = self._embed(batch)
        self._is_image_set = True
        self._is_batch = True

    def get_image_embedding(self) -> torch.Tensor:
        """The current image embedding ``(B, C, S/16, S/16)`` (including ``no_mem_embed``)."""
        if not self._is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) to generate an embedding.")
        return self._features["image_embed"]

    # ------------------------------------------------------------------------------ prompts

    def _prep_prompts(self, point_coords, point_labels, box, mask_logits, normalize_coords: bool, img_idx: int = -1):
        """Validate numpy/tensor prompts and move them to the model frame and device."""
        coords, labels = check_points(point_coords, point_labels)
        boxes = check_box(box)
        mask = check_mask_input(mask_logits, self.model.sam_prompt_encoder.mask_input_size)
        prompt_batch_size(coords, boxes, mask)
        device, orig_hw = self.device, self._orig_hw[img_idx]
        if coords is not None:
            coords = self._transforms.transform_coords(
                torch.as_tensor(coords, dtype=torch.float32, device=device), normalize_coords, orig_hw)
            labels = torch.as_tensor(labels, dtype=torch.int32, device=device)
            if coords.dim() == 2:
                coords, labels = coords[None], labels[None]
        if boxes is not None:
            boxes = self._transforms.transform_boxes(
                torch.as_tensor(boxes, dtype=torch.float32, device=device), normalize_coords, orig_hw)
        if mask is not None:
            mask = torch.as_tensor(mask, dtype=torch.float32, device=device)
            if mask.dim() == 3:
                mask = mask[None]
        return mask, coords, labels, boxes

    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None,
                multimask_output: bool = True, return_logits: bool = False,
                normalize_coords: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt (or a batch of prompts) on the current image.

        Points ``(N, 2)`` / ``(B, N, 2)`` with labels ``(N,)`` / ``(B, N)`` (1 = foreground,
        0 = background), box ``(4,)`` / ``(B, 4)`` XYXY, mask_input ``(1, 256, 256)`` /
        ``(B, 1, 256, 256)`` low-res logits. Returns masks ``([B,] C, H, W)`` float32 (0/1 unless
        ``return_logits``), IoU scores ``([B,] C)`` and low-res logits ``([B,] C, 256, 256)``.
        """
        if not self._is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
        mask, coords, labels, boxes = self._prep_prompts(point_coords, point_labels, box, mask_input,
                                                         normalize_coords)
        masks, iou, low_res = self._predict(coords, labels, boxes, mask, multimask_output, return_logits)
        return tuple(x.squeeze(0).float().detach().cpu().numpy() for x in (masks, iou, low_res))

    def predict_batch(self, point_coords_batch=None, point_labels_batch=None, box_batch=None,
                      mask_input_batch=None, multimask_output: bool = True, return_logits: bool = False,
                      normalize_coords: bool = True) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """``predict`` for every image of ``set_image_batch``; the i-th entry of each list is image i's prompt."""
        if not self._is_batch:
            raise RuntimeError("predict_batch needs images set with .set_image_batch(...)")
        num_images = len(self._orig_hw)
        prompt_lists = (point_coords_batch, point_labels_batch, box_batch, mask_input_batch)
        for name, value in zip(("point_coords_batch", "point_labels_batch", "box_batch", "mask_input_batch"),
                               prompt_lists):
            if value is not None and len(value) != num_images:
                raise ValueError(f"{name} has {len(value)} entries for {num_images} images")
        # Validate every image's prompts before any model work, so a bad entry fails fast.
        prepared = [self._prep_prompts(*[None if v is None else v[i] for v in prompt_lists], normalize_coords,
                                       img_idx=i) for i in range(num_images)]
        all_masks, all_ious, all_low_res = [], [], []
        for i, (mask, coords, labels, boxes) in enumerate(prepared):
            masks, iou, low_res = self._predict(coords, labels, boxes, mask, multimask_output,
                                                return_logits, img_idx=i)
            all_masks.append(masks.squeeze(0).float().cpu().numpy())
            all_ious.append(iou.squeeze(0).float().cpu().numpy())
            all_low_res.append(low_res.squeeze(0).float().cpu().numpy())
        return all_masks, all_ious, all_low_res

    @torch.no_grad()
    def _predict(self, point_coords: torch.Tensor | None, point_labels: torch.Tensor | None,
                 boxes: torch.Tensor | None = None, mask_input: torch.Tensor | None = None,
                 multimask_output: bool = True, return_logits: bool = False, img_idx: int = -1):
        """Prompts already in the model frame: points ``(B, N, 2)``, labels ``(B, N)``, boxes
        ``(B, 2, 2)`` or ``(B, 4)``, mask ``(B, 1, 256, 256)``. Returns torch tensors
        ``masks (B, C, H, W)``, ``iou (B, C)``, ``low_res (B, C, 256, 256)`` (clamped to +-32)."""
        if not self._is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
        if boxes is not None:
            box_coords = boxes.reshape(-1, 2, 2)
            box_labels = torch.tensor([[2, 3]], dtype=torch.int32, device=boxes.device).repeat(box_coords.size(0), 1)
            if point_coords is not None:
                point_coords = torch.cat([box_coords, point_coords], dim=1)
                point_labels = torch.cat([box_labels, point_labels], dim=1)
            else:
                point_coords, point_labels = box_coords, box_labels
        points = (point_coords, point_labels) if point_coords is not None else None
        sparse, dense = self.model.sam_prompt_encoder(points=points, boxes=None, masks=mask_input)
        batched = point_coords is not None and point_coords.shape[0] > 1
        high_res = [level[img_idx].unsqueeze(0) for level in self._features["high_res_feats"]]
        low_res, iou, _, _ = self.model.sam_mask_decoder(
            image_embeddings=self._features["image_embed"][img_idx].unsqueeze(0),
            image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=batched,
            high_res_features=high_res,
        )
        masks = self._transforms.postprocess_masks(low_res, self._orig_hw[img_idx])
        low_res = torch.clamp(low_res, -32.0, 32.0)
        if not return_logits:
            masks = masks > self.mask_threshold
        return masks, iou, low_res
