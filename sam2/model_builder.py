"""Model construction behind the official builders: config resolution, post-processing overrides,
strict checkpoint loading, Hub download.

:mod:`sam2.build_sam` (the official builder API) and ``SAM2VideoPredictor.from_pretrained`` both build
through here, so neither has to import the other.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sam2.checkpoint import load_checkpoint
from sam2.compilation import compile_model, resolve_request
from sam2.config_yaml import ResolvedConfig, apply_overrides, resolve_config
from sam2.modeling.sam2_base import SAM2Base
from sam2.registry import HF_MODEL_ID_TO_FILENAMES

log = logging.getLogger(__name__)

# What `apply_postprocessing=True` turns on; applied before the caller's overrides, so they win.
IMAGE_POSTPROCESSING = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
)
VIDEO_POSTPROCESSING = IMAGE_POSTPROCESSING + (
    "++model.binarize_mask_from_pts_for_mem_enc=true",
    "++model.fill_hole_area=8",
)


def default_device() -> torch.device:
    """CUDA if available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve(config_file: str | Path, overrides: Sequence[str], postprocessing: Sequence[str]) -> ResolvedConfig:
    """The config of ``config_file`` with the post-processing, then the caller's, overrides applied."""
    if isinstance(overrides, str):
        overrides = [overrides]
    try:
        overrides = list(overrides)
    except TypeError:
        raise ValueError(f"hydra_overrides_extra must be a list of strings, got {type(overrides).__name__}") from None
    bad = [o for o in overrides if not isinstance(o, str)]
    if bad:
        raise ValueError(f"hydra_overrides_extra must hold strings such as '++model.fill_hole_area=8'; "
                         f"got {bad[0]!r} ({type(bad[0]).__name__})")
    return apply_overrides(resolve_config(config_file), [*postprocessing, *overrides])


def check_mode(mode: object) -> str:
    """``mode`` of the builders: ``"eval"`` or ``"train"``."""
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    return str(mode)


def finish(model: torch.nn.Module, ckpt_path, config_file, device, mode: str, compile: Any = None,
           vos_optimized: bool = False, compile_image_encoder: bool = False):
    """Load the checkpoint strictly, move to ``device`` (default: CUDA if available), set ``mode`` and
    compile what :func:`sam2.compilation.resolve_request` asks for."""
    device = device if device is not None else default_device()
    options = resolve_request(compile, vos_optimized=vos_optimized, compile_image_encoder=compile_image_encoder,
                              device=device)
    load_checkpoint(model, ckpt_path, str(config_file))
    model = model.to(device)
    model = model.eval() if mode == "eval" else model.train()
    if options is not None:
        model.compile_report = compile_model(model, options)
    return model


def build_video_model(config_file: str | Path, ckpt_path: str | Path | None = None,
                      device: str | torch.device | None = None, mode: str = "eval",
                      hydra_overrides_extra: Sequence[str] = (), apply_postprocessing: bool = True,
                      vos_optimized: bool = False, compile: Any = None,
                      **kwargs: Any) -> tuple[SAM2Base, dict[str, Any]]:
    """The model of a video predictor and the predictor's keyword options (``fill_hole_area`` ...).

    ``vos_optimized`` compiles every component as the official VOS predictor does (see
    :mod:`sam2.compilation`); ``compile`` overrides it."""
    check_mode(mode)
    post = VIDEO_POSTPROCESSING if apply_postprocessing else ()
    resolved = resolve(config_file, hydra_overrides_extra, post)
    model = finish(SAM2Base(resolved.model), ckpt_path, config_file, device, mode, compile, vos_optimized,
                   resolved.compile_image_encoder)
    return model, dataclasses.asdict(resolved.model.video)


def hub_reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens within ``timeout`` seconds (no request sent)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def hf_download(model_id: str) -> tuple[str, str]:
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
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE and not hub_reachable(constants.ENDPOINT):  # fail now, not after retries
        raise RuntimeError(
            f"could not get {filename} of {model_id}: the Hugging Face Hub ({constants.ENDPOINT}) cannot be "
            f"reached (no network?) and the file is not in the Hub cache ({constants.HF_HUB_CACHE}). Download "
            "it elsewhere and pass it with ckpt_path / --checkpoint, or point HF_HOME at a filled cache.")
    try:
        ckpt_path = hf_hub_download(repo_id=model_id, filename=filename)
    except Exception as exc:
        raise RuntimeError(
            f"could not get {filename} of {model_id} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
            "Without network access, download the file elsewhere and pass it with ckpt_path / --checkpoint, "
            "or set HF_HUB_OFFLINE=1 with a filled Hub cache.") from exc
    return config_name, ckpt_path
