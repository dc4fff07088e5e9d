"""Official builder API: ``build_sam2``, ``build_sam2_video_predictor`` and their Hub variants."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from sam2.checkpoint import load_checkpoint
from sam2.config_yaml import ResolvedConfig, apply_overrides, resolve_config
from sam2.modeling.sam2_base import SAM2Base
from sam2.registry import HF_MODEL_ID_TO_FILENAMES

if TYPE_CHECKING:
    from sam2.sam2_video_predictor import SAM2VideoPredictor

log = logging.getLogger(__name__)

__all__ = ["HF_MODEL_ID_TO_FILENAMES", "build_sam2", "build_sam2_hf", "build_sam2_video_predictor",
           "build_sam2_video_predictor_hf", "default_device"]

# What `apply_postprocessing=True` turns on; applied before the caller's overrides, so they win.
_IMAGE_POSTPROCESSING = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
)
_VIDEO_POSTPROCESSING = _IMAGE_POSTPROCESSING + (
    "++model.binarize_mask_from_pts_for_mem_enc=true",
    "++model.fill_hole_area=8",
)


def default_device() -> torch.device:
    """CUDA if available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _resolve(config_file: str | Path, overrides: Sequence[str], postprocessing: Sequence[str]) -> ResolvedConfig:
    if isinstance(overrides, str):
        overrides = [overrides]
    return apply_overrides(resolve_config(config_file), [*postprocessing, *overrides])


def _finish(model: torch.nn.Module, ckpt_path, config_file, device, mode: str):
    load_checkpoint(model, ckpt_path, str(config_file))
    model = model.to(device if device is not None else default_device())
    return model.eval() if mode == "eval" else model.train()


def build_sam2(config_file: str | Path, ckpt_path: str | Path | None = None,
               device: str | torch.device | None = None, mode: str = "eval",
               hydra_overrides_extra: Sequence[str] = (), apply_postprocessing: bool = True,
               **kwargs) -> SAM2Base:
    """Build the SAM 2 model of ``config_file`` (official name or YAML file) and load ``ckpt_path``."""
    resolved = _resolve(config_file, hydra_overrides_extra, _IMAGE_POSTPROCESSING if apply_postprocessing else ())
    return _finish(SAM2Base(resolved.model), ckpt_path, config_file, device, mode)


def build_sam2_video_predictor(config_file: str | Path, ckpt_path: str | Path | None = None,
                               device: str | torch.device | None = None, mode: str = "eval",
                               hydra_overrides_extra: Sequence[str] = (), apply_postprocessing: bool = True,
                               vos_optimized: bool = False, **kwargs) -> SAM2VideoPredictor:
    """Build a :class:`~sam2.sam2_video_predictor.SAM2VideoPredictor` (same weights as ``build_sam2``).

    ``vos_optimized`` is accepted for compatibility; sam2-kit runs the same eager code either way.
    """
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    post = _VIDEO_POSTPROCESSING if apply_postprocessing else ()
    resolved = _resolve(config_file, hydra_overrides_extra, post)
    if vos_optimized:
        log.info("vos_optimized=True: sam2-kit does not torch.compile; running the eager model")
    model = _finish(SAM2Base(resolved.model), ckpt_path, config_file, device, mode)
    return SAM2VideoPredictor(model, **dataclasses.asdict(resolved.model.video))


def _hf_download(model_id: str) -> tuple[str, str]:
    """Download the checkpoint of ``model_id`` from the Hub -> (config name, local checkpoint path)."""
    if model_id not in HF_MODEL_ID_TO_FILENAMES:
        raise KeyError(f"unknown Hugging Face model id {model_id!r}; known: {sorted(HF_MODEL_ID_TO_FILENAMES)}")
    config_name, filename = HF_MODEL_ID_TO_FILENAMES[model_id]
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise ImportError("loading from the Hugging Face Hub needs huggingface_hub: "
                          "pip install 'sam2-kit[hub]'") from exc
    try:  # a cached checkpoint is used as is: released checkpoints never change, and this needs no network
        return config_name, hf_hub_download(repo_id=model_id, filename=filename, local_files_only=True)
    except Exception:  # not in the cache yet (LocalEntryNotFoundError): ask the Hub
        pass
    try:
        ckpt_path = hf_hub_download(repo_id=model_id, filename=filename)
    except Exception as exc:
        raise RuntimeError(
            f"could not get {filename} of {model_id} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
            "Without network access, download the file elsewhere and pass it with ckpt_path / --checkpoint, "
            "or set HF_HUB_OFFLINE=1 with a filled Hub cache.") from exc
    return config_name, ckpt_path


def build_sam2_hf(model_id: str, **kwargs) -> SAM2Base:
    """``build_sam2`` with the config and checkpoint of a Hub model id (``facebook/sam2.1-hiera-large``)."""
    config_name, ckpt_path = _hf_download(model_id)
    return build_sam2(config_file=config_name, ckpt_path=ckpt_path, **kwargs)


def build_sam2_video_predictor_hf(model_id: str, **kwargs) -> SAM2VideoPredictor:
    """``build_sam2_video_predictor`` for a Hub model id."""
    config_name, ckpt_path = _hf_download(model_id)
    return build_sam2_video_predictor(config_file=config_name, ckpt_path=ckpt_path, **kwargs)
