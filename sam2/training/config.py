"""The typed training config: one dataclass tree holding everything a fine-tuning run reads.

``TrainConfig`` composes the model section (which weights, prompt simulation, freezing, activation
checkpointing, LoRA), the data pipeline (:class:`~sam2.training.data.config.DataConfig`), the loss
(:class:`~sam2.training.losses.LossConfig`), the optimizer (:class:`~sam2.training.optimizer.OptimConfig`)
and the loop (:class:`TrainerConfig`). Defaults are the official MOSE fine-tune recipe. Our YAML files
are these dataclasses as nested keys; :mod:`sam2.training.config_yaml` also reads the official schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sam2.config import ModelConfig
from sam2.training.data.config import DataConfig
from sam2.training.lora import LoraSettings
from sam2.training.losses import LossConfig
from sam2.training.model import PromptSimulationConfig
from sam2.training.optimizer import OptimConfig
from sam2.training.typed_tree import ConfigError

__all__ = ["HUB_CHECKPOINT", "ModelSection", "TrainConfig", "TrainerConfig", "ValidationConfig"]

HUB_CHECKPOINT = "hub"  # ``model.checkpoint: hub``: the released weights of ``model.config``


@dataclass(frozen=True)
class ModelSection:
    """Which model is trained and how.

    config:        release name (``sam2.1_hiera_b+``), official config name, or an inference YAML file
    model_config:  the model itself, when a file spelled it out (the official training YAML does);
                   takes precedence over ``config``
    checkpoint:    initial weights (official ``{"model": state_dict}`` layout, loaded strictly);
                   ``hub`` downloads the released weights of ``config``; null trains from random weights
    image_size:    model resolution ``S``; null takes ``data.resolution``
    drop_path_rate: Hiera stochastic depth (0.1 in the MOSE recipe); null keeps the model config's value
    freeze:        groups or parameter-name prefixes kept fixed (``image_encoder``, ``sam_prompt_encoder``,
                   ``sam_mask_decoder``, ``memory``, ...; see :mod:`sam2.training.freezing`)
    activation_checkpointing: recompute the Hiera trunk's activations in the backward pass (less memory)
    lora:          LoRA adapters through ``peft`` (merged back into plain checkpoints); null = none
    """

    config: str = "sam2.1_hiera_b+"
    model_config: ModelConfig | None = None
    checkpoint: str | None = None
    image_size: int | None = None
    drop_path_rate: float | None = None
    prompts: PromptSimulationConfig = field(default_factory=PromptSimulationConfig)
    freeze: tuple[str, ...] = ()
    activation_checkpointing: bool = False
    lora: LoraSettings | None = None


@dataclass(frozen=True)
class ValidationConfig:
    """J&F on a held-out split in the DAVIS layout (``img_folder/<video>/<frame>.jpg``,
    ``gt_folder/<video>/<frame>.png``), prompted with the first frame's masks, every ``every_epochs``
    epochs (0 = never). ``per_obj_png_file`` selects the SA-V per-object PNG layout."""

    every_epochs: int = 0
    img_folder: str | None = None
    gt_folder: str | None = None
    file_list_txt: str | None = None
    per_obj_png_file: bool = False


@dataclass(frozen=True)
class TrainerConfig:
    """The loop (official ``trainer.*`` values where they exist).

    seed:            Python / NumPy / torch are seeded with ``(seed + rank) * max_epochs``
    device:          null = cuda if available, else cpu
    grad_accum_steps: micro-batches per optimizer step (the loss of each is divided by this)
    checkpoint_every_steps: also write ``checkpoint.pt`` every N optimizer steps (0 = per epoch only)
    checkpoint_every_epochs: write ``checkpoint.pt`` after every N epochs (and always after the last)
    keep_every_epochs: also keep ``checkpoint_<epoch>.pt`` every N epochs (official ``save_freq``)
    experiment_dir:  logs, metrics and ``checkpoints/`` go here
    log_every_steps: one ``metrics.jsonl`` line (and TensorBoard scalars) every N optimizer steps
    """

    max_epochs: int = 40
    seed: int = 123
    device: str | None = None
    grad_accum_steps: int = 1
    checkpoint_every_steps: int = 0
    checkpoint_every_epochs: int = 1
    keep_every_epochs: int = 0
    experiment_dir: str = "sam2_logs/train"
    log_every_steps: int = 10
    tensorboard: bool = True
    progress_bar: bool = True
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def check(self) -> None:
        for name in ("max_epochs", "grad_accum_steps", "checkpoint_every_epochs", "log_every_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every_steps", "keep_every_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"trainer.{name} must be >= 0, got {getattr(self, name)}")
        val = self.validation
        if val.every_epochs < 0:
            raise ConfigError(f"trainer.validation.every_epochs must be >= 0, got {val.every_epochs}")
        if val.every_epochs:
            for name in ("img_folder", "gt_folder"):
                value = getattr(val, name)
                if not value:
                    raise ConfigError(f"trainer.validation.{name} is required when validation.every_epochs > 0")
                if not Path(value).is_dir():
                    raise ConfigError(f"trainer.validation.{name}: {value!r} is not a folder")

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.experiment_dir) / "checkpoints"


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    @property
    def image_size(self) -> int:
        """The model and data resolution ``S``."""
        return self.model.image_size or self.data.resolution

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the first value that cannot work (before any training)."""
        self.trainer.check()
        if self.model.image_size is not None and self.model.image_size != self.data.resolution:
            raise ConfigError(f"model.image_size ({self.model.image_size}) differs from data.resolution "
                              f"({self.data.resolution}); the frames are resized to the model's size")
        if self.image_size % 16:
            raise ConfigError(f"data.resolution must be a multiple of 16 (the backbone stride), got {self.image_size}")
        if self.model.drop_path_rate is not None and not 0.0 <= self.model.drop_path_rate < 1.0:
            raise ConfigError(f"model.drop_path_rate must be in [0, 1), got {self.model.drop_path_rate}")
        try:
            self.data.check()
        except ValueError as exc:
            raise ConfigError(f"data: {exc}") from exc
        check_optim = getattr(self.optim, "check", None)
        if check_optim is not None:
            try:
                check_optim()
            except ValueError as exc:
                raise ConfigError(f"optim: {exc}") from exc
