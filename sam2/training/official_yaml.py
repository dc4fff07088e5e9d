"""Reader of the official training YAML schema (``sam2.1_hiera_b+_MOSE_finetune.yaml`` and users' files
in its shape) onto :class:`~sam2.training.config.TrainConfig`, without Hydra.

``scratch``, ``dataset`` and ``vos`` hold values the rest refers to through ``${...}``; ``trainer.*``
``_target_`` trees are mapped key by key (model, data, optim, loss, checkpoint, logging, distributed);
``launcher`` gives the experiment folder and ``submitit`` is ignored (use ``srun torchrun``). An unknown
key or an unsupported ``_target_`` is a :class:`ConfigError` naming its dotted path.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

from sam2.config import PRESETS, with_updates
from sam2.config_yaml import ConfigError, model_config_from_dict
from sam2.training.config import ModelSection, TrainConfig, TrainerConfig
from sam2.training.data.config import DataConfig
from sam2.training.interpolation import Interpolator
from sam2.training.losses import LossConfig
from sam2.training.model import PromptSimulationConfig
from sam2.training.official_data import data_from_official
from sam2.training.official_node import Node
from sam2.training.official_optim import optim_from_official

__all__ = ["is_official_tree", "train_config_from_official"]

log = logging.getLogger(__name__)

_PROMPT_KEYS = {f.name for f in dataclasses.fields(PromptSimulationConfig)}
# Trainer / logging / distributed keys that only concern the official machinery.
_IGNORED_TRAINER = ("val_epoch_freq", "cuda", "env", "meters", "skip_saving_ckpts", "empty_gpu_mem_cache_after_eval",
                    "skip_first_val")
_IGNORED_LOGGING = ("log_dir", "log_level_primary", "log_level_secondary", "log_scalar_frequency",
                    "log_visual_frequency", "scalar_keys_to_log")


def is_official_tree(tree: Any) -> bool:
    """Whether a parsed YAML file is in the official training schema (a ``trainer`` with ``_target_``)."""
    return isinstance(tree, dict) and isinstance(tree.get("trainer"), dict) and "_target_" in tree["trainer"]


def _model_section(node: Node, where: str) -> tuple[ModelSection, int]:
    """``trainer.model`` -> (model section, the model's image_size)."""
    node.target("training.model.sam2.SAM2Train")
    prompts = {k: node.get(k) for k in sorted(_PROMPT_KEYS) if node.has(k)}
    freeze = ("image_encoder",) if node.get("freeze_image_encoder", False) else ()
    rest = node.resolve_rest()
    drop_path = None
    # The stochastic-depth rate goes to model.drop_path_rate, so that the architecture can match a preset.
    trunk = rest.get("image_encoder", {}).get("trunk") if isinstance(rest.get("image_encoder"), dict) else None
    if isinstance(trunk, dict) and "drop_path_rate" in trunk:
        drop_path = float(trunk.pop("drop_path_rate"))
    rest["_target_"] = "sam2.modeling.sam2_base.SAM2Base"
    try:
        resolved = model_config_from_dict({"model": rest}, where)
    except ConfigError as exc:
        raise ConfigError(re.sub(r"(?<=[\s'])model\.", "trainer.model.", str(exc))) from None
    try:
        prompt_cfg = PromptSimulationConfig(**prompts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: trainer.model: {exc}") from None
    image_size = resolved.model.tracker.image_size
    for name, preset in PRESETS.items():  # a released architecture: name it instead of spelling it out
        sized = with_updates(preset, tracker={"image_size": image_size})
        if dataclasses.replace(sized, name=resolved.model.name) == resolved.model:
            return ModelSection(config=name, drop_path_rate=drop_path, prompts=prompt_cfg, freeze=freeze), image_size
    model_cfg = dataclasses.replace(resolved.model, name=Path(where).stem)
    section = ModelSection(config=model_cfg.name, model_config=model_cfg, drop_path_rate=drop_path,
                           prompts=prompt_cfg, freeze=freeze)
    return section, image_size


def _loss(node: Node, dict_keys: set[str], where: str) -> LossConfig:
    configs: dict[str, LossConfig] = {}
    for key in node.keys():
        entry = node.node(key)
        entry.target("training.loss_fns.MultiStepMultiMasksAndIous")
        kwargs = {f.name: entry.get(f.name) for f in dataclasses.fields(LossConfig) if entry.has(f.name)}
        entry.finish()
        try:
            configs[key] = LossConfig(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {entry.path}: {exc}") from None
    missing = sorted(dict_keys - set(configs))
    if missing:
        raise ConfigError(f"{where}: trainer.loss has no entry for the datasets' dict_key {missing[0]!r}")
    distinct = {repr(c) for c in configs.values()}
    if len(distinct) > 1:
        raise ConfigError(f"{where}: trainer.loss: sam2-kit uses one loss for every dataset; the entries "
                          f"{sorted(configs)} differ")
    if not configs:
        raise ConfigError(f"{where}: trainer.loss is empty")
    return next(iter(configs.values()))


def _checkpoint(node: Node, where: str) -> tuple[str | None, int]:
    """``trainer.checkpoint`` -> (initial weights path, keep_every_epochs)."""
    node.ignore("save_dir", "initialize_after_preemption", "resume_from")
    keep = int(node.get("save_freq", 0) or 0)
    if node.get("save_list", None):
        raise ConfigError(f"{where}: trainer.checkpoint.save_list is not supported; use save_freq")
    if node.get("skip_saving_parameters", None):
        raise ConfigError(f"{where}: trainer.checkpoint.skip_saving_parameters is not supported (sam2-kit "
                          "checkpoints always hold every parameter)")
    path = None
    if node.has("model_weight_initializer"):
        init = node.node("model_weight_initializer")
        if init.raw_is_null():
            init.finish()
        else:
            init.target("training.utils.checkpoint_utils.load_state_dict_into_model")
            init.ignore("_partial_")
            if init.get("strict", True) is not True:
                raise ConfigError(f"{where}: {init.path}.strict: sam2-kit loads initial weights strictly")
            for key in ("ignore_unexpected_keys", "ignore_missing_keys"):
                if init.get(key, None):
                    raise ConfigError(f"{where}: {init.path}.{key} is not supported (strict loading)")
            state = init.node("state_dict")
            state.target("training.utils.checkpoint_utils.load_checkpoint_and_apply_kernels")
            path = state.get("checkpoint_path", None)
            keys = state.get("ckpt_state_dict_keys", ["model"])
            if list(keys) != ["model"]:
                raise ConfigError(f"{where}: {state.path}.ckpt_state_dict_keys must be ['model'], got {keys!r}")
            if state.get("ckpt_kernels", None):
                raise ConfigError(f"{where}: {state.path}.ckpt_kernels is not supported")
            state.finish()
            init.finish()
    node.finish()
    return path, keep


def _trainer_misc(trainer: Node, where: str) -> dict[str, Any]:
    """Logging and distributed sections -> TrainerConfig values."""
    values: dict[str, Any] = {}
    if trainer.has("logging"):
        logging_node = trainer.node("logging")
        logging_node.ignore(*_IGNORED_LOGGING)
        if logging_node.has("log_freq"):
            values["log_every_steps"] = int(logging_node.get("log_freq"))
        if logging_node.has("tensorboard_writer"):
            tb = logging_node.node("tensorboard_writer")
            tb.target("training.utils.logger.make_tensorboard_logger")
            tb.ignore("log_dir", "flush_secs")
            values["tensorboard"] = bool(tb.get("should_log", True))
            tb.finish()
        logging_node.finish()
    if trainer.has("distributed"):
        dist = trainer.node("distributed")
        backend = dist.get("backend", "nccl")
        if backend not in ("nccl", "gloo"):
            raise ConfigError(f"{where}: trainer.distributed.backend {backend!r} is not supported (nccl or gloo)")
        dist.ignore("find_unused_parameters", "timeout_mins", "gradient_as_bucket_view", "static_graph")
        if dist.get("comms_dtype", None) is not None:
            raise ConfigError(f"{where}: trainer.distributed.comms_dtype is not supported")
        dist.finish()
    return values


def train_config_from_official(tree: dict, where: str) -> TrainConfig:
    """Map a parsed official training YAML onto a :class:`TrainConfig`."""
    top = Node(tree, "", Interpolator(tree, where), where)
    top.ignore("scratch", "dataset", "vos", "submitit")
    experiment_dir = None
    if top.has("launcher"):
        launcher = top.node("launcher")
        experiment_dir = launcher.get("experiment_log_dir", None)
        launcher.ignore("num_nodes", "gpus_per_node")
        launcher.finish()
    trainer = top.node("trainer")
    trainer.target("training.trainer.Trainer")
    trainer.ignore(*_IGNORED_TRAINER)
    mode = trainer.get("mode", "train")
    if mode not in ("train_only", "train"):
        raise ConfigError(f"{where}: trainer.mode {mode!r} is not supported (train_only; validation is "
                          "trainer.validation in sam2-kit)")
    accelerator = trainer.get("accelerator", "cuda")
    if accelerator not in ("cuda", "cpu"):
        raise ConfigError(f"{where}: trainer.accelerator must be cuda or cpu, got {accelerator!r}")
    model, image_size = _model_section(trainer.node("model"), where)
    data: DataConfig = data_from_official(trainer.node("data"), where)
    if data.resolution != image_size:
        raise ConfigError(f"{where}: the model's image_size ({image_size}) differs from the resize size "
                          f"RandomResizeAPI.sizes ({data.resolution})")
    optim = optim_from_official(trainer.node("optim"), where)
    loss = _loss(trainer.node("loss"), {d.dict_key for d in data.datasets}, where)
    init_path, keep = _checkpoint(trainer.node("checkpoint"), where) if trainer.has("checkpoint") else (None, 0)
    misc = _trainer_misc(trainer, where)
    values = dict(max_epochs=int(trainer.get("max_epochs")), seed=int(trainer.get("seed_value", 123)),
                  device=accelerator, keep_every_epochs=keep,
                  experiment_dir=experiment_dir or str(Path("sam2_logs") / Path(where).stem), **misc)
    trainer.finish()
    top.finish()
    model = dataclasses.replace(model, checkpoint=init_path)
    return TrainConfig(model=model, data=data, loss=loss, optim=optim, trainer=TrainerConfig(**values))
