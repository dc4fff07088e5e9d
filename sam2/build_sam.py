"""Official builder API: ``build_sam2``, ``build_sam2_video_predictor`` and their Hub variants."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from sam2.compilation import CompileOptions
from sam2.model_builder import (
    IMAGE_POSTPROCESSING,
    build_video_model,
    check_mode,
    default_device,
    finish,
    hf_download,
    resolve,
)
from sam2.modeling.sam2_base import SAM2Base
from sam2.registry import HF_MODEL_ID_TO_FILENAMES
from sam2.sam2_video_predictor import SAM2VideoPredictor

log = logging.getLogger(__name__)

__all__ = ["HF_MODEL_ID_TO_FILENAMES", "build_sam2", "build_sam2_hf", "build_sam2_video_predictor",
           "build_sam2_video_predictor_hf", "default_device"]


def build_sam2(config_file: str | Path, ckpt_path: str | Path | None = None,
               device: str | torch.device | None = None, mode: str = "eval",
               hydra_overrides_extra: Sequence[str] = (), apply_postprocessing: bool = True,
               compile: bool | str | CompileOptions | None = None, **kwargs) -> SAM2Base:
    """Build the SAM 2 model of ``config_file`` (official name or YAML file) and load ``ckpt_path``.

    ``compile``: ``True`` (or ``"strict"``, or :class:`~sam2.compilation.CompileOptions`) runs the
    submodules through ``torch.compile``; default: the ``SAM2_COMPILE`` environment variable, else the
    config's ``compile_image_encoder``. See :mod:`sam2.compilation`.
    """
    check_mode(mode)
    resolved = resolve(config_file, hydra_overrides_extra, IMAGE_POSTPROCESSING if apply_postprocessing else ())
    return finish(SAM2Base(resolved.model), ckpt_path, config_file, device, mode, compile,
                  compile_image_encoder=resolved.compile_image_encoder)


def build_sam2_video_predictor(config_file: str | Path, ckpt_path: str | Path | None = None,
                               device: str | torch.device | None = None, mode: str = "eval",
                               hydra_overrides_extra: Sequence[str] = (), apply_postprocessing: bool = True,
                               vos_optimized: bool = False,
                               compile: bool | str | CompileOptions | None = None, **kwargs) -> SAM2VideoPredictor:
    """Build a :class:`~sam2.sam2_video_predictor.SAM2VideoPredictor` (same weights as ``build_sam2``).

    ``vos_optimized=True`` compiles the image encoder, memory attention (dynamic shapes), memory
    encoder, prompt encoder and mask decoder with ``torch.compile``, as the official VOS predictor does;
    the predictor class and its API stay the same. ``compile`` as in :func:`build_sam2` (it wins over
    ``vos_optimized``; ``compile=False`` turns compilation off).
    """
    model, options = build_video_model(config_file, ckpt_path, device, mode, hydra_overrides_extra,
                                       apply_postprocessing, vos_optimized, compile)
    return SAM2VideoPredictor(model, **options)


def build_sam2_hf(model_id: str, **kwargs) -> SAM2Base:
    """``build_sam2`` with the config and checkpoint of a Hub model id (``facebook/sam2.1-hiera-large``)."""
    config_name, ckpt_path = hf_download(model_id)
    return build_sam2(config_file=config_name, ckpt_path=ckpt_path, **kwargs)


def build_sam2_video_predictor_hf(model_id: str, **kwargs) -> SAM2VideoPredictor:
    """``build_sam2_video_predictor`` for a Hub model id."""
    config_name, ckpt_path = hf_download(model_id)
    return build_sam2_video_predictor(config_file=config_name, ckpt_path=ckpt_path, **kwargs)
