"""``OnnxImagePredictor``: the ``SAM2ImagePredictor`` calls on ONNX Runtime and NumPy (no PyTorch).

What a C++ / JS port does, step by step (see ``manifest.json`` for names and shapes):

1. ``set_image``: resize the RGB image to ``S x S`` (antialiased bilinear, :mod:`runtime_transforms`),
   normalize, run ``image_encoder``; add ``no_mem_embed (1, 1, C)`` from ``constants.npz`` to
   ``image_embed`` (broadcast over the grid).
2. ``predict``: scale clicks / box corners to the ``S x S`` frame, put box corners (labels 2, 3) first,
   append a padding point ``(0, 0)`` / label ``-1`` (no points at all for a mask-only prompt), run
   ``prompt_decoder``; pick tokens 1-3 (multimask) or token 0 (falling back to the best of 1-3 when its
   stability score is below the threshold), upsample the logits to the image size (bilinear),
   threshold at 0, and clamp the returned low-res logits to +-32.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from sam2.export.manifest import Manifest, load_constants, read_manifest
from sam2.export.runtime_prompts import pack_prompt
from sam2.export.runtime_transforms import preprocess_image, select_masks, upscale_masks

log = logging.getLogger(__name__)

LOW_RES_CLAMP = 32.0


def open_session(path: Path, providers: list[str] | None = None, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` for ``path`` (CPU unless ``providers`` say otherwise)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # shape-merge notes of the traced Hiera graph are harmless
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options,
                                providers=providers or ["CPUExecutionProvider"])


def _as_rgb_array(image: Any) -> np.ndarray:
    """A PIL image (converted to RGB, without importing PIL here) or an HWC array."""
    if hasattr(image, "convert") and hasattr(image, "size") and not isinstance(image, np.ndarray):
        return np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise NotImplementedError("Image format not supported")
    return image


class OnnxImagePredictor:
    """Promptable segmentation of one image with an export folder of ``sam2 export onnx``.

    ``precision`` picks the fp32 graphs or a variant written with ``--fp16`` / ``--int8``.
    ``expect_model`` refuses an export of another model; ``check_version`` one of another sam2-kit version.
    ``max_hole_area`` / ``max_sprinkle_area`` are accepted for call compatibility and must stay 0.
    """

    def __init__(self, export_dir: str | Path, mask_threshold: float = 0.0, max_hole_area: float = 0.0,
                 max_sprinkle_area: float = 0.0, precision: str = "fp32", providers: list[str] | None = None,
                 expect_model: str | None = None, check_version: bool = True, threads: int | None = None) -> None:
        if max_hole_area > 0 or max_sprinkle_area > 0:
            raise ValueError("max_hole_area / max_sprinkle_area > 0 (hole and speck removal) is not available in "
                             "the ONNX predictor; leave them at 0")
        self.export_dir = Path(export_dir)
        self.manifest: Manifest = read_manifest(self.export_dir, expect_model, check_version)
        self.mask_threshold = mask_threshold
        self.image_size = self.manifest.image_size
        decoder_cfg = self.manifest.config["decoder"]
        self._dynamic = bool(decoder_cfg["dynamic_multimask_via_stability"])
        self._delta = float(decoder_cfg["dynamic_multimask_stability_delta"])
        self._thresh = float(decoder_cfg["dynamic_multimask_stability_thresh"])
        self._no_mem_embed = load_constants(self.export_dir)["no_mem_embed"].reshape(1, -1, 1, 1)
        self._encoder = open_session(self.export_dir / self.manifest.graph_file("image_encoder", precision),
                                     providers, threads)
        self._decoder = open_session(self.export_dir / self.manifest.graph_file("prompt_decoder", precision),
                                     providers, threads)
        self.reset_predictor()

    def reset_predictor(self) -> None:
        """Forget the current image(s)."""
        self._is_image_set = False
        self._is_batch = False
        self._features: list[dict[str, np.ndarray]] = []
        self._orig_hw: list[tuple[int, int]] | None = None

    def _embed(self, image: Any) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
        rgb = _as_rgb_array(image)
        feat0, feat1, embed, _ = self._encoder.run(None, {"image": preprocess_image(rgb, self.image_size)})
        features = {"image_embed": (embed + self._no_mem_embed).astype(np.float32),
                    "high_res_feat_0": feat0, "high_res_feat_1": feat1}
        return features, tuple(rgb.shape[:2])

    def set_image(self, image: Any) -> None:
        """Embed one HWC RGB image (uint8 array, float array in [0, 1], or PIL image)."""
        features, orig_hw = self._embed(image)
        self.reset_predictor()
        self._features, self._orig_hw = [features], [orig_hw]
        self._is_image_set = True

    def set_image_batch(self, image_list: list[np.ndarray]) -> None:
        """Embed several HWC RGB images (they may differ in size), one encoder run each."""
        if not isinstance(image_list, list) or not image_list:
            raise ValueError("set_image_batch expects a non-empty list of HxWx3 numpy arrays")
        for i, image in enumerate(image_list):
            if not isinstance(image, np.ndarray):
                raise ValueError(f"image {i}: images are expected to be np.ndarray in RGB format, of shape HWC")
        embedded = [self._embed(image) for image in image_list]
        self.reset_predictor()
        self._features = [f for f, _ in embedded]
        self._orig_hw = [hw for _, hw in embedded]
        self._is_image_set = self._is_batch = True

    def get_image_embedding(self) -> np.ndarray:
        """The current image embedding(s) ``(B, C, S/16, S/16)`` (including ``no_mem_embed``)."""
        if not self._is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) to generate an embedding.")
        return np.concatenate([f["image_embed"] for f in self._features], axis=0)

    def features(self, img_idx: int = 0) -> dict[str, np.ndarray]:
        """Decoder-ready features of image ``img_idx``: ``image_embed`` (with ``no_mem_embed``),
        ``high_res_feat_0`` and ``high_res_feat_1``."""
        if not self._is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) first.")
        return self._features[img_idx]

    def decode(self, coords: np.ndarray, labels: np.ndarray, mask: np.ndarray, has_mask: np.ndarray,
               img_idx: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Run ``prompt_decoder`` on image ``img_idx``: all four tokens' ``low_res_masks (B, 4, h, w)``,
        ``iou_predictions (B, 4)``, ``object_score_logits (B, 1)``, ``obj_ptr (B, 4, C)``."""
        feeds = dict(self.features(img_idx), point_coords=coords, point_labels=labels, mask_input=mask,
                     has_mask_input=has_mask)
        return tuple(self._decoder.run(None, feeds))

    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None,
                multimask_output: bool = True, return_logits: bool = False,
                normalize_coords: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt (or a batch of prompts) on the current image.

        Same arguments and returns as ``SAM2ImagePredictor.predict``: points ``(N, 2)`` / ``(B, N, 2)``,
        labels ``(N,)`` / ``(B, N)``, box ``(4,)`` / ``(B, 4)`` XYXY, mask_input ``(1, h, w)`` /
        ``(B, 1, h, w)`` low-res logits -> masks ``([B,] C, H, W)`` float32, IoU ``([B,] C)`` and low-res
        logits ``([B,] C, h, w)`` (batch axis dropped when B = 1).
        """
        if not self._is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
        out = self._predict(point_coords, point_labels, box, mask_input, multimask_output, return_logits,
                            normalize_coords, 0)
        return tuple(x[0] for x in out) if out[0].shape[0] == 1 else out

    def predict_batch(self, point_coords_batch=None, point_labels_batch=None, box_batch=None,
                      mask_input_batch=None, multimask_output: bool = True, return_logits: bool = False,
                      normalize_coords: bool = True) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """``predict`` for every image of ``set_image_batch``; entry i of each list is image i's prompt."""
        if not self._is_batch:
            raise RuntimeError("predict_batch needs images set with .set_image_batch(...)")
        num_images = len(self._orig_hw)
        lists = {"point_coords_batch": point_coords_batch, "point_labels_batch": point_labels_batch,
                 "box_batch": box_batch, "mask_input_batch": mask_input_batch}
        for name, value in lists.items():
            if value is not None and len(value) != num_images:
                raise ValueError(f"{name} has {len(value)} entries for {num_images} images")
        results = [self._predict(*[None if v is None else v[i] for v in lists.values()], multimask_output,
                                 return_logits, normalize_coords, i) for i in range(num_images)]
        return tuple([r[k][0] if r[k].shape[0] == 1 else r[k] for r in results] for k in range(3))

    def _predict(self, point_coords, point_labels, box, mask_input, multimask_output: bool, return_logits: bool,
                 normalize_coords: bool, img_idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> masks ``(B, M, H, W)``, IoU ``(B, M)``, clamped low-res logits ``(B, M, h, w)``."""
        orig_hw = self._orig_hw[img_idx]
        packed = pack_prompt(point_coords, point_labels, box, mask_input, normalize_coords, orig_hw,
                             self.image_size)
        low_all, iou_all, _, _ = self.decode(packed.coords, packed.labels, packed.mask, packed.has_mask, img_idx)
        low_res, iou = select_masks(low_all, iou_all, multimask_output, self._dynamic, self._delta, self._thresh)
        masks = upscale_masks(low_res, orig_hw)
        if not return_logits:
            masks = (masks > self.mask_threshold).astype(np.float32)
        low_res = np.clip(low_res, -LOW_RES_CLAMP, LOW_RES_CLAMP)
        return tuple(np.asarray(x, dtype=np.float32) for x in (masks, iou, low_res))
