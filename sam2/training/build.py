"""Build what a run trains from its config: the model (initial weights, freezing, LoRA, activation
checkpointing) wrapped in the training model, and the loss."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from sam2.config import ModelConfig, with_updates
from sam2.config_yaml import resolve_config
from sam2.modeling.sam2_base import SAM2Base
from sam2.training.checkpoints import init_from_checkpoint
from sam2.training.config import HUB_CHECKPOINT, ModelSection, TrainConfig
from sam2.training.losses import MultiStepMultiMasksAndIous
from sam2.training.model import TrainingModel
from sam2.training.typed_tree import ConfigError

__all__ = ["build_loss", "build_training_model", "model_config_name", "resolve_model_config"]

log = logging.getLogger(__name__)

PACKAGE_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "micro"  # e.g. sam2.1_hiera_micro_128


def resolve_model_config(section: ModelSection, image_size: int) -> ModelConfig:
    """The model config of ``section`` at resolution ``image_size`` (with its stochastic-depth rate);
    :class:`ConfigError` if the config is unknown."""
    if section.model_config is not None:
        cfg = section.model_config
    else:
        packaged = PACKAGE_CONFIGS / f"{section.config.removesuffix('.yaml')}.yaml"
        name = str(packaged) if "/" not in section.config and packaged.is_file() else section.config
        try:
            cfg = resolve_config(name).model
        except ConfigError as exc:
            raise ConfigError(f"model.config: {exc}") from None
    if cfg.tracker.image_size != image_size:
        cfg = with_updates(cfg, tracker={"image_size": image_size})
    if section.drop_path_rate is not None:
        cfg = with_updates(cfg, trunk={"drop_path_rate": section.drop_path_rate})
    return cfg


def model_config_name(section: ModelSection) -> str:
    return section.model_config.name if section.model_config is not None else section.config


def checkpoint_path(section: ModelSection) -> Path | None:
    """The initial weights of ``section``: a local file, the Hub release of ``config`` (``hub``), or None."""
    if section.checkpoint is None:
        return None
    if section.checkpoint == HUB_CHECKPOINT:
        from sam2.cli.common import download_checkpoint
        from sam2.registry import find_release

        try:
            release = find_release(section.config)
        except KeyError as exc:
            raise ConfigError(f"model.checkpoint: hub needs model.config to be a release name, got "
                              f"{section.config!r} ({exc.args[0]})") from None
        return Path(download_checkpoint(release.hub_id, "model.checkpoint")[1])
    path = Path(section.checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model.checkpoint: initial weights {str(path)!r} not found")
    return path


def build_training_model(cfg: TrainConfig, device: torch.device, *, load_weights: bool = True) -> TrainingModel:
    """The training model of ``cfg`` on ``device``.

    Order: build, load the initial weights strictly (``load_weights``), freeze, add LoRA, switch on
    activation checkpointing. Errors (unknown freeze group, checkpoint that does not fit) come before
    any training.
    """
    section = cfg.model
    model_cfg = resolve_model_config(section, cfg.image_size)
    model = SAM2Base(model_cfg)
    ckpt = checkpoint_path(section) if load_weights else None
    if ckpt is not None:
        init_from_checkpoint(model, ckpt, model_config_name(section))
    elif load_weights:
        log.warning("model.checkpoint is not set: training from random weights")
    if section.freeze:
        from sam2.training.freezing import freeze

        try:
            summary = freeze(model, section.freeze)
        except ValueError as exc:
            raise ConfigError(f"model.freeze: {exc}") from exc
        log.info("froze %s: %s", ", ".join(section.freeze), summary)
    if section.lora is not None:
        from sam2.training.lora import add_lora

        try:
            summary = add_lora(model, section.lora)
        except ValueError as exc:
            raise ConfigError(f"model.lora: {exc}") from exc
        log.info("LoRA adapters: %s", summary)
    if section.activation_checkpointing:
        model.image_encoder.trunk.activation_checkpointing = True
    return TrainingModel(model, section.prompts).to(device).train()


def build_loss(cfg: TrainConfig) -> MultiStepMultiMasksAndIous:
    return MultiStepMultiMasksAndIous.from_config(cfg.loss)
