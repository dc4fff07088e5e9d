"""Saving a trainer into a checkpoint and restoring it, so that a resumed run continues exactly.

The checkpoint layout is described in :mod:`sam2.training.checkpoints`. Every process contributes its
generators and data position (gathered to the main process, which alone writes); on resume every
process takes its own entry back, so a run must resume with the same number of processes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sam2.checkpoint import CheckpointError, load_into
from sam2.training.checkpoints import atomic_save, read_training_checkpoint, restore_rng
from sam2.training.typed_tree import to_tree

if TYPE_CHECKING:
    from sam2.training.trainer import Trainer

__all__ = ["TrainState", "load_checkpoint_into", "save_checkpoint"]

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Progress of a run. ``epoch`` counts finished epochs (as the official ``"epoch"`` entry),
    ``step`` optimizer steps, ``batches_in_epoch`` the batches of the current epoch already used."""

    epoch: int = 0
    step: int = 0
    batches_in_epoch: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    time_elapsed: float = 0.0
    val_runs: int = 0
    log_window: dict[str, list[float]] = field(default_factory=dict)  # loss values since the last log line


def _lora_tensors(trainer: Trainer) -> dict[str, Any]:
    """Unmerged trainable tensors of a LoRA run (adapters, and whatever else trains)."""
    sam = trainer.model.model
    trainable = {name for name, p in sam.named_parameters() if p.requires_grad}
    return {k: v.detach().clone() for k, v in sam.state_dict().items() if k in trainable}


def save_checkpoint(trainer: Trainer, path: Path) -> None:
    """Write ``path`` (main process; every process must call this, for the gather)."""
    states = trainer.dist.gather(trainer.rank_state())
    if not trainer.dist.is_main:
        return
    sam = trainer.model.model
    lora = trainer.cfg.model.lora is not None
    if lora:
        from sam2.training.lora import merge_lora

        model_state = merge_lora(sam)
    else:
        model_state = sam.state_dict()
    state = trainer.state
    content: dict[str, Any] = {
        "model": model_state,
        "optimizer": trainer.optimizer.state_dict(),
        "epoch": state.epoch,
        "loss": {},
        "steps": {"train": state.step, "val": state.val_runs},
        "time_elapsed": trainer.elapsed(),
        "best_meter_values": {},
        "train_dataset": [s["data"] for s in states],
        "rng": [s["rng"] for s in states],
        "trainer_state": {**asdict(state), "time_elapsed": trainer.elapsed()},
        "world_size": trainer.dist.world_size,
        "config": to_tree(trainer.cfg),
    }
    if trainer.scaler is not None:
        content["scaler"] = trainer.scaler.state_dict()
    if lora:
        content["lora"] = _lora_tensors(trainer)
    atomic_save(content, path)
    log.info("checkpoint %s (epoch %d, step %d)", path, state.epoch, state.step)


def load_checkpoint_into(trainer: Trainer, path: Path) -> None:
    """Restore model, optimizer, scaler, progress, data position and every generator from ``path``."""
    content = read_training_checkpoint(path)
    world = int(content.get("world_size", 1))
    if world != trainer.dist.world_size:
        raise CheckpointError(f"checkpoint {path} was written by a run of {world} processes; resume it with "
                              f"the same number (this run has {trainer.dist.world_size})")
    sam = trainer.model.model
    if trainer.cfg.model.lora is not None:
        if "lora" not in content:
            raise CheckpointError(f"checkpoint {path} holds no LoRA adapters but the config adds them")
        tensors = content["lora"]
        expected = {name for name, p in sam.named_parameters() if p.requires_grad}
        if set(tensors) != expected:
            diff = sorted(set(tensors) ^ expected)[:5]
            raise CheckpointError(f"checkpoint {path}: its LoRA tensors do not fit the config (e.g. {diff})")
        sam.load_state_dict(tensors, strict=False)
    else:
        if "lora" in content:
            raise CheckpointError(f"checkpoint {path} is from a LoRA run; set the same model.lora to resume it")
        load_into(sam, content["model"], str(path), trainer.cfg.model.config)
    try:
        trainer.optimizer.load_state_dict(content["optimizer"])
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from exc
    if trainer.scaler is not None and "scaler" in content:
        trainer.scaler.load_state_dict(content["scaler"])
    known = {f.name for f in fields(TrainState)}
    saved = {k: v for k, v in (content.get("trainer_state") or {}).items() if k in known}
    trainer.state = TrainState(**{**saved, "epoch": int(content["epoch"]),
                                  "step": int(content["steps"]["train"])})
    rank = trainer.dist.rank
    if "train_dataset" in content:
        try:
            trainer.loader.load_state_dict(content["train_dataset"][rank])
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {path}: {exc}") from exc
    if "rng" in content:  # last: nothing after this may draw before training continues
        prompt = restore_rng(content["rng"][rank])
        if prompt is not None:
            trainer.model.set_rng_state(prompt)
    else:
        log.warning("checkpoint %s has no generator states: the run continues with fresh random draws", path)
