"""Validation during training: J&F of the current weights on a held-out split (``sam2.eval``).

Every validation video is tracked by the inference video predictor around the model being trained
(first-frame masks as prompts, the semi-supervised VOS protocol of ``sam2 vos``), the masks are
written to a scratch folder and scored against the ground truth with :func:`sam2.eval.evaluate`.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch

from sam2.eval import evaluate
from sam2.eval.vos import list_videos, vos_inference
from sam2.modeling.sam2_base import SAM2Base
from sam2.training.config import ValidationConfig

__all__ = ["validate"]

log = logging.getLogger(__name__)


def validate(model: SAM2Base, cfg: ValidationConfig, device: torch.device) -> dict[str, float]:
    """``{"J&F", "J", "F", "videos"}`` (percent) of ``model`` on the split of ``cfg``.

    The model is put in eval mode for the duration and returned to its previous mode; no gradient is kept.
    """
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    assert cfg.img_folder is not None and cfg.gt_folder is not None
    videos = list_videos(cfg.img_folder, cfg.file_list_txt)
    if not videos:
        raise FileNotFoundError(f"validation: no video folder in {cfg.img_folder!r}")
    was_training = model.training
    predictor = SAM2VideoPredictor(model)
    model.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="sam2-val-") as out, torch.inference_mode():
            autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
            with autocast:
                for video in videos:
                    vos_inference(predictor, cfg.img_folder, cfg.gt_folder, out, video,
                                  per_obj_png_file=cfg.per_obj_png_file)
            result = evaluate(cfg.gt_folder, out, num_processes=1, videos=videos)
    finally:
        model.train(was_training)
    scores = {"J&F": float(result.jf), "J": float(result.j), "F": float(result.f), "videos": len(videos)}
    log.info("validation on %d videos: J&F %.2f (J %.2f, F %.2f)", len(videos), scores["J&F"], scores["J"],
             scores["F"])
    return scores


def check_split(cfg: ValidationConfig) -> None:
    """``FileNotFoundError`` naming the folder when the split cannot be read (before training)."""
    for name in ("img_folder", "gt_folder"):
        value = getattr(cfg, name)
        if value is None or not Path(value).is_dir():
            raise FileNotFoundError(f"trainer.validation.{name}: {value!r} is not a folder")
    if not list_videos(cfg.img_folder, cfg.file_list_txt):
        raise FileNotFoundError(f"trainer.validation.img_folder: no video folder in {cfg.img_folder!r}")
