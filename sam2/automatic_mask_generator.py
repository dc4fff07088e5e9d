"""Automatic mask generation: prompt SAM 2 with a grid of points over the image (and optional crops).

Drop-in for the official ``SAM2AutomaticMaskGenerator`` (same constructor, defaults, records). Two
deliberate differences: when no mask survives a multi-crop run the result is ``[]`` instead of an
``IndexError``, and ``min_mask_region_area > 0`` really removes small holes and sprinkles on a CPU (the
image predictor does it with :mod:`sam2.utils.connected_components`).

The same masks come out faster than in the official order: candidates are filtered on their predicted
IoU before they are upsampled, the survivors are upsampled and scored a few at a time
(:mod:`sam2.utils.amg_candidates`), and run lengths and boxes come from :mod:`sam2.utils.amg_rle`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sam2.sam2_image_predictor import SAM2ImagePredictor
from sam2.utils.amg import (
    MaskData,
    area_from_rle,
    batch_iterator,
    batched_mask_to_box,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    coco_encode_rle,
    concat_mask_data,
    generate_crop_boxes,
    is_box_near_crop_edge,
    mask_to_rle_pytorch,
    remove_small_regions,
    rle_to_mask,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)
from sam2.utils.amg_candidates import score_and_binarize
from sam2.utils.amg_decode import LOW_RES_CLAMP, decode_low_res, upscale_logits
from sam2.utils.amg_rle import boxes_from_rle, masks_to_rle
from sam2.utils.amg_settings import check_generate_image, checked_settings
from sam2.utils.nms import batched_nms, box_area

logger = logging.getLogger(__name__)

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")


def _require_pycocotools() -> None:
    try:
        from pycocotools import mask as _mask_utils  # noqa: F401
    except ImportError:
        logger.error("output_mode='coco_rle' needs pycocotools: pip install pycocotools")
        raise


class SAM2AutomaticMaskGenerator:
    """Segment everything in an image by prompting the model with a grid of single positive points.

    ``progress`` (not in the official API; default ``None``) may be set to a callable that
    :meth:`generate` calls as ``progress(done, total)`` after every batch of points of every crop.
    """

    progress: Callable[[int, int], None] | None = None

    def __init__(
        self,
        model: torch.nn.Module,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
        **kwargs: Any,
    ) -> None:
        """Store the settings and build the image predictor.

        ``points_per_side`` (or explicit normalised ``point_grids``, one ``(P, 2)`` array per crop layer)
        sets the prompts; masks are kept when their predicted IoU is > ``pred_iou_thresh`` and their
        stability score is >= ``stability_score_thresh``; duplicates are removed by box NMS within a crop
        (``box_nms_thresh``) and across crops (``crop_nms_thresh``). ``min_mask_region_area`` is the
        largest hole / sprinkle (on the 256x256 low-res logits) the predictor removes. ``use_m2m`` refines
        every mask once with its own low-res logits as mask prompt. Extra ``kwargs`` are ignored.
        """
        if (points_per_side is None) == (point_grids is None):
            raise AssertionError("Exactly one of points_per_side or point_grid must be provided.")
        if output_mode not in OUTPUT_MODES:
            raise AssertionError(f"Unknown output_mode {output_mode}.")
        settings = checked_settings(
            points_per_side, point_grids, crop_n_layers, points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh, stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset, mask_threshold=mask_threshold,
            box_nms_thresh=box_nms_thresh, crop_nms_thresh=crop_nms_thresh, crop_overlap_ratio=crop_overlap_ratio,
            crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            min_mask_region_area=min_mask_region_area, output_mode=output_mode, use_m2m=use_m2m,
            multimask_output=multimask_output,
        )
        if output_mode == "coco_rle":
            _require_pycocotools()
        # Every checked setting becomes an attribute of the same name (the official attribute names).
        vars(self).update(settings)
        self.point_grids = point_grids if points_per_side is None else build_all_layer_point_grids(
            points_per_side, self.crop_n_layers, self.crop_n_points_downscale_factor)
        area = self.min_mask_region_area  # the predictor cleans holes and specks up to this size
        self.predictor = SAM2ImagePredictor(model, max_hole_area=area, max_sprinkle_area=area)

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> SAM2AutomaticMaskGenerator:
        """Build the model with ``build_sam2_hf(model_id, **kwargs)`` and a generator with the same kwargs."""
        from sam2.build_sam import build_sam2_hf

        model = build_sam2_hf(model_id, **kwargs)
        return cls(model, **kwargs)

    @torch.no_grad()
    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Masks of an HWC uint8 RGB image ``(H, W, 3)``, one record dict per mask.

        Record keys: ``segmentation`` (per ``output_mode``), ``area``, ``bbox`` (XYWH), ``predicted_iou``,
        ``point_coords`` (``[[x, y]]``), ``stability_score``, ``crop_box`` (XYWH).
        """
        check_generate_image(image)
        data = self._generate_masks(image)
        rles = data["rles"]
        if self.output_mode == "coco_rle":
            segmentations = [coco_encode_rle(rle) for rle in rles]
        elif self.output_mode == "binary_mask":
            segmentations = [rle_to_mask(rle) for rle in rles]
        else:
            segmentations = rles
        data["segmentations"] = segmentations
        records = []
        for i in range(len(segmentations)):
            records.append({
                "segmentation": segmentations[i],
                "area": area_from_rle(rles[i]),
                "bbox": box_xyxy_to_xywh(data["boxes"][i]).tolist(),
                "predicted_iou": data["iou_preds"][i].item(),
                "point_coords": [data["points"][i].tolist()],
                "stability_score": data["stability_score"][i].item(),
                "crop_box": box_xyxy_to_xywh(data["crop_boxes"][i]).tolist(),
            })
        return records

    def _generate_masks(self, image: np.ndarray) -> MaskData:
        """Run every crop, merge them with NMS across crops, return columns as numpy arrays."""
        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
        per_batch = self.points_per_batch
        self._batches = [0, sum(-(-len(self.point_grids[i]) // per_batch) for i in layer_idxs)]  # done, total
        data = concat_mask_data([self._process_crop(image, crop_box, layer_idx, orig_size)
                                 for crop_box, layer_idx in zip(crop_boxes, layer_idxs)])
        if len(crop_boxes) > 1:
            # prefer masks from smaller crops
            scores = (1 / box_area(data["crop_boxes"])).to(data["boxes"].device)
            keep = batched_nms(
                data["boxes"].float(), scores, torch.zeros_like(data["boxes"][:, 0]),
                iou_threshold=self.crop_nms_thresh,
            )
            data.filter(keep)
        data.to_numpy()
        return data

    def _process_crop(self, image: np.ndarray, crop_box: list[int], crop_layer_idx: int,
                      orig_size: tuple[int, ...]) -> MaskData:
        """Masks of one crop ``[x0, y0, x1, y1]``, NMS-filtered, with boxes and points in the image frame."""
        x0, y0, x1, y1 = crop_box
        cropped = image[y0:y1, x0:x1, :]
        cropped_size = cropped.shape[:2]
        self.predictor.set_image(cropped)
        points_scale = np.array(cropped_size)[None, ::-1]
        points_for_image = self.point_grids[crop_layer_idx] * points_scale
        parts = []
        for (points,) in batch_iterator(self.points_per_batch, points_for_image):
            parts.append(self._process_batch(points, cropped_size, crop_box, orig_size, normalize=True))
            self._batches[0] += 1
            if self.progress is not None:
                self.progress(*self._batches)
        self.predictor.reset_predictor()
        data = concat_mask_data(parts)
        keep = batched_nms(
            data["boxes"].float(), data["iou_preds"], torch.zeros_like(data["boxes"][:, 0]),
            iou_threshold=self.box_nms_thresh,
        )
        data.filter(keep)
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        num = len(data["rles"])
        data["crop_boxes"] = torch.tensor(crop_box, dtype=torch.int64).reshape(1, 4).repeat(num, 1)
        return data

    def _process_batch(self, points: np.ndarray, im_size: tuple[int, ...], crop_box: list[int],
                       orig_size: tuple[int, ...], normalize: bool = False) -> MaskData:
        """Predict, filter and RLE-encode the masks of a batch of ``(P, 2)`` crop-frame points.

        Same masks and scores as the official order (upsample every candidate, filter on predicted IoU,
        then on stability): the IoU filter needs no mask, so it runs on the low-res candidates first, and
        only the survivors are upsampled, scored and binarised, a few at a time.
        """
        orig_h, orig_w = orig_size
        device = self.predictor.device
        points_t = torch.as_tensor(points, dtype=torch.float32, device=device)
        in_points = self.predictor._transforms.transform_coords(points_t, normalize=normalize, orig_hw=im_size)
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        low_res, iou_preds = decode_low_res(
            self.predictor, in_points[:, None, :], in_labels[:, None], multimask_output=self.multimask_output)
        channels = low_res.shape[1]
        points_rep = points_t.repeat_interleave(channels, dim=0)
        low_res, iou_preds = low_res.flatten(0, 1), iou_preds.flatten(0, 1)
        if self.use_m2m:
            in_points = self.predictor._transforms.transform_coords(points_rep, normalize=normalize, orig_hw=im_size)
            labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
            clamped = torch.clamp(low_res, -LOW_RES_CLAMP, LOW_RES_CLAMP)
            low_res, iou_preds = self._refine_low_res(in_points, labels, clamped, self.points_per_batch)
            channels = 1
        if self.pred_iou_thresh > 0.0:
            passed = iou_preds > self.pred_iou_thresh
            low_res, iou_preds, points_rep = low_res[passed], iou_preds[passed], points_rep[passed]
        scored = score_and_binarize(
            low_res, lambda lr: upscale_logits(self.predictor, lr, im_size, channels), self.mask_threshold,
            self.stability_score_offset, self.stability_score_thresh, out_hw=tuple(im_size[:2]), group=channels)
        data = MaskData(iou_preds=iou_preds[scored.index], points=points_rep[scored.index],
                        stability_score=scored.stability_score)
        masks = scored.masks
        if list(crop_box) == [0, 0, orig_w, orig_h]:
            # no crop edge that is not an image edge: the edge filter keeps everything, and the boxes can
            # be read from the run lengths
            data["rles"] = masks_to_rle(masks)
            data["boxes"] = boxes_from_rle(data["rles"]).to(masks.device)
            return data
        data["boxes"] = batched_mask_to_box(masks)
        keep = ~is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h])
        if not torch.all(keep):
            data.filter(keep)
            masks = masks[keep]
        data["rles"] = masks_to_rle(uncrop_masks(masks, crop_box, orig_h, orig_w))
        return data

    def _refine_low_res(self, points: torch.Tensor, point_labels: torch.Tensor, low_res_masks: torch.Tensor,
                        points_per_batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`refine_with_m2m` before upsampling: raw low-res logits ``(N, 256, 256)`` and IoU ``(N,)``."""
        new_low_res, new_ious = [], []
        for cur_points, cur_labels, cur_low_res in batch_iterator(
            points_per_batch, points, point_labels, low_res_masks
        ):
            low_res, ious = decode_low_res(self.predictor, cur_points[:, None, :], cur_labels[:, None],
                                           mask_input=cur_low_res[:, None, :, :], multimask_output=False)
            new_low_res.append(low_res)
            new_ious.append(ious)
        return torch.cat(new_low_res, dim=0).squeeze(1), torch.cat(new_ious, dim=0).squeeze(1)

    def refine_with_m2m(self, points: torch.Tensor, point_labels: torch.Tensor,
                        low_res_masks: torch.Tensor, points_per_batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One mask-to-mask refinement step: re-prompt each ``(N, 2)`` point with its own ``(N, 256, 256)``
        low-res logits. Returns masks ``(N, 1, H, W)`` and IoU predictions ``(N, 1)``."""
        low_res, ious = self._refine_low_res(points, point_labels, low_res_masks, points_per_batch)
        masks = upscale_logits(self.predictor, low_res, self.predictor._orig_hw[-1], channels=1)
        return masks[:, None], ious[:, None]

    @staticmethod
    def postprocess_small_regions(mask_data: MaskData, min_area: int, nms_thresh: float) -> MaskData:
        """Fill holes and remove islands smaller than ``min_area`` in every RLE mask, then drop duplicates.

        Changed masks get score 0 and unchanged ones 1 for an NMS on the recomputed boxes, so an unchanged
        mask wins over a cleaned-up copy of it. Kept changed masks get new RLEs and boxes. Not used by
        :meth:`generate` (as in the official SAM 2).
        """
        if len(mask_data["rles"]) == 0:
            return mask_data
        new_masks, scores = [], []
        for rle in mask_data["rles"]:
            mask = rle_to_mask(rle)
            mask, changed_holes = remove_small_regions(mask, min_area, mode="holes")
            mask, changed_islands = remove_small_regions(mask, min_area, mode="islands")
            new_masks.append(torch.as_tensor(np.ascontiguousarray(mask)).unsqueeze(0))
            scores.append(float(not (changed_holes or changed_islands)))
        masks = torch.cat(new_masks, dim=0)
        boxes = batched_mask_to_box(masks)
        keep = batched_nms(
            boxes.float(), torch.as_tensor(scores), torch.zeros_like(boxes[:, 0]), iou_threshold=nms_thresh
        )
        for i in keep.tolist():
            if scores[i] == 0.0:
                mask_data["rles"][i] = mask_to_rle_pytorch(masks[i].unsqueeze(0))[0]
                mask_data["boxes"][i] = boxes[i]
        mask_data.filter(keep)
        return mask_data
