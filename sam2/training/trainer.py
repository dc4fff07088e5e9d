"""The training loop of the official recipe (SPEC-training §6), resumable to the bit.

Per optimizer step: ``zero_grad``; for each of ``grad_accum_steps`` micro-batches a forward (under
bfloat16 autocast on CUDA only), the loss, a check that it is finite, and ``backward`` of
``core_loss / grad_accum_steps``; then the schedules at ``where = (epoch + i / steps_per_epoch) /
max_epochs``, gradient clipping and the AdamW step. Checkpoints every ``checkpoint_every_steps`` steps
and after epochs; metrics as JSON lines (and TensorBoard); optional validation J&F.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sam2.training.build import build_loss, build_training_model
from sam2.training.checkpoints import CHECKPOINT_NAME, capture_rng, preserved_rng
from sam2.training.config import TrainConfig
from sam2.training.distributed import DistContext, wrap_ddp
from sam2.training.losses import CORE_LOSS_KEY
from sam2.training.metrics_log import MetricsLog
from sam2.training.optimizer import build_optimizer
from sam2.training.resume import TrainState, load_checkpoint_into, save_checkpoint

__all__ = ["TrainResult", "Trainer", "seed_everything"]

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) as the official trainer does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    """How a run ended: ``stopped_by`` is the signal number when it was interrupted."""

    epochs: int
    steps: int
    last_loss: float | None
    checkpoint: Path | None
    stopped_by: int | None = None
    validation: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Build everything of ``cfg`` (checking it first), optionally resume, then :meth:`fit`.

    ``loader`` replaces the data loader built from ``cfg.data`` (anything with ``set_epoch``,
    ``__len__``, ``__iter__`` yielding :class:`VideoBatch`, ``state_dict`` / ``load_state_dict``).
    ``resume``: a checkpoint path to continue from. Set :attr:`stop_signal` (e.g. from a signal handler)
    to stop after the current step with a checkpoint.
    """

    def __init__(self, cfg: TrainConfig, device: torch.device, *, dist: DistContext | None = None,
                 loader: Any = None, resume: str | Path | None = None) -> None:
        cfg.check()
        self.cfg, self.device = cfg, device
        self.dist = dist or DistContext()
        self.stop_signal: int | None = None
        self._started: float | None = None
        tcfg = cfg.trainer
        self.exp_dir = Path(tcfg.experiment_dir)
        self.ckpt_path = tcfg.checkpoint_dir / CHECKPOINT_NAME
        if resume is None and self.ckpt_path.exists():
            raise FileExistsError(f"{self.ckpt_path} already exists: resume that run (--resume) or choose "
                                  "another experiment directory (--output-dir)")
        seed_everything((tcfg.seed + self.dist.rank) * tcfg.max_epochs)
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cudnn.benchmark = True
        if loader is None:
            from sam2.training.data.loader import build_train_loader

            loader = build_train_loader(cfg.data, rank=self.dist.rank, world_size=self.dist.world_size,
                                        seed=tcfg.seed)
        self.loader = loader
        if tcfg.validation.every_epochs:
            from sam2.training.validation import check_split

            check_split(tcfg.validation)
        lora = cfg.model.lora is not None
        self.model = build_training_model(cfg, device, load_weights=resume is None or lora)
        self.optimizer = build_optimizer(self.model.model, cfg.optim)
        self.loss = build_loss(cfg)
        self.ddp_model: nn.Module = wrap_ddp(self.model, self.dist, device)
        use_amp = cfg.optim.amp_enabled and device.type == "cuda"
        self.amp_dtype = cfg.optim.autocast_dtype if use_amp else None
        if cfg.optim.amp_enabled and device.type != "cuda":
            log.info("automatic mixed precision applies on CUDA only: training in float32 on %s", device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.state = TrainState()
        self.metrics = MetricsLog(self.exp_dir, enabled=self.dist.is_main, tensorboard=tcfg.tensorboard)
        if resume is not None:
            load_checkpoint_into(self, Path(resume))  # also restores every random generator
            self.metrics.truncate_after(self.state.step)
            log.info("resumed from %s at epoch %d, step %d", resume, self.state.epoch, self.state.step)

    # ---------------------------------------------------------------------------------------- loop

    def fit(self) -> TrainResult:
        """Train until ``max_epochs`` (or a stop request); returns how it ended."""
        tcfg = self.cfg.trainer
        validations: list[dict[str, float]] = []
        last_loss = None
        self._started = time.monotonic()
        try:
            while self.state.epoch < tcfg.max_epochs:
                last_loss = self._train_epoch(self.state.epoch) or last_loss
                if self.stop_signal is not None:
                    break
                self._finish_epoch(validations)
        finally:
            self.state.time_elapsed = self.elapsed()
            self._started = None
            self.metrics.close()
        written = self.ckpt_path if self.ckpt_path.exists() else None
        return TrainResult(self.state.epoch, self.state.step, last_loss, written, self.stop_signal, validations)

    def elapsed(self) -> float:
        """Seconds of training so far, over all runs of this experiment."""
        running = time.monotonic() - self._started if self._started is not None else 0.0
        return self.state.time_elapsed + running

    def _finish_epoch(self, validations: list[dict[str, float]]) -> None:
        tcfg, state = self.cfg.trainer, self.state
        mean = state.epoch_loss_sum / max(state.epoch_loss_count, 1)
        means = self.dist.mean({"loss": mean}, self.device)
        self.metrics.write("epoch", state.step, {"epoch": state.epoch + 1, **means})
        state.epoch += 1
        state.batches_in_epoch, state.epoch_loss_sum, state.epoch_loss_count = 0, 0.0, 0
        last = state.epoch == tcfg.max_epochs
        if last or state.epoch % tcfg.checkpoint_every_epochs == 0:
            save_checkpoint(self, self.ckpt_path)
        if tcfg.keep_every_epochs and state.epoch % tcfg.keep_every_epochs == 0:
            save_checkpoint(self, tcfg.checkpoint_dir / f"checkpoint_{state.epoch}.pt")
        if tcfg.validation.every_epochs and (last or state.epoch % tcfg.validation.every_epochs == 0):
            validations.append(self.validate())

    def validate(self) -> dict[str, float]:
        """J&F of the current weights on the validation split (main process; the others wait)."""
        from sam2.training.validation import validate

        scores: dict[str, float] = {}
        if self.dist.is_main:
            with preserved_rng():
                scores = validate(self.model.model, self.cfg.trainer.validation, self.device)
            self.metrics.write("val", self.state.step, {"epoch": self.state.epoch, **scores})
        self.dist.barrier()
        self.state.val_runs += 1
        return scores

    def _train_epoch(self, epoch: int) -> float | None:
        tcfg, state = self.cfg.trainer, self.state
        self.loader.set_epoch(epoch)
        num_batches = len(self.loader)
        accum = tcfg.grad_accum_steps
        steps_in_epoch = math.ceil(num_batches / accum)
        step_in_epoch = math.ceil(state.batches_in_epoch / accum)
        batches = iter(self.loader)
        bar = tqdm(total=steps_in_epoch, initial=step_in_epoch, desc=f"epoch {epoch + 1}/{tcfg.max_epochs}",
                   disable=not (self.dist.is_main and tcfg.progress_bar), dynamic_ncols=True, leave=False)
        window = state.log_window  # kept in checkpoints, so a resumed run logs the same means
        last_loss = None
        with bar:
            while state.batches_in_epoch < num_batches:
                micro = []
                for _ in range(min(accum, num_batches - state.batches_in_epoch)):
                    with preserved_rng():  # the data never draws from the model's generators
                        micro.append(next(batches))
                where = (epoch + step_in_epoch / steps_in_epoch) / tcfg.max_epochs
                values = self._optimizer_step(micro, where)
                state.step += 1
                step_in_epoch += 1
                state.batches_in_epoch += len(micro)
                last_loss = values[CORE_LOSS_KEY]
                state.epoch_loss_sum += last_loss
                state.epoch_loss_count += 1
                for key, value in values.items():
                    window.setdefault(key, []).append(value)
                bar.set_postfix(loss=f"{state.epoch_loss_sum / state.epoch_loss_count:.4g}")
                bar.update(1)
                if state.step % tcfg.log_every_steps == 0:
                    self._log_window(window, epoch, where)
                    window.clear()
                if self.dist.any(self.stop_signal is not None, self.device):
                    self.stop_signal = self.stop_signal or 0
                    save_checkpoint(self, self.ckpt_path)
                    return last_loss
                if tcfg.checkpoint_every_steps and state.step % tcfg.checkpoint_every_steps == 0 \
                        and state.batches_in_epoch < num_batches:
                    save_checkpoint(self, self.ckpt_path)
        return last_loss

    def _log_window(self, window: dict[str, list[float]], epoch: int, where: float) -> None:
        means = self.dist.mean({k: sum(v) / len(v) for k, v in window.items()}, self.device)
        lrs = self.optimizer.lrs()
        self.metrics.write("train", self.state.step, {"epoch": epoch + 1, "where": where, "lr": max(lrs),
                                                      "lr_min": min(lrs), **means})

    def _optimizer_step(self, micro: list[Any], where: float) -> dict[str, float]:
        """One optimizer step over the micro-batches ``micro``; returns the mean loss values."""
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for i, batch in enumerate(micro):
            last = i == len(micro) - 1
            sync = contextlib.nullcontext() if last or not self.dist.enabled else self.ddp_model.no_sync()
            with sync:
                losses = self._forward_loss(batch.to(self.device, non_blocking=True))
                core = losses[CORE_LOSS_KEY] / len(micro)
                (self.scaler.scale(core) if self.scaler is not None else core).backward()
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + float(value.detach()) / len(micro)
        self.optimizer.set_progress(where)
        norm_before, _ = self.optimizer.clip_gradients(self.scaler)
        self.optimizer.step(self.scaler)
        if self.scaler is not None:
            self.scaler.update()
        totals["grad_norm"] = norm_before
        return totals

    def _forward_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        enabled = self.amp_dtype is not None
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16, enabled=enabled):
            outputs = self.ddp_model(batch)
            losses = self.loss(outputs, batch.masks)
        core = losses[CORE_LOSS_KEY]
        if not torch.isfinite(core):
            detail = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in losses.items())
            raise FloatingPointError(
                f"non-finite loss at step {self.state.step + 1} (epoch {self.state.epoch + 1}, batch "
                f"{self.state.batches_in_epoch + 1}): {detail}. Training stopped; the last checkpoint is "
                f"{self.ckpt_path if self.ckpt_path.exists() else 'not written yet'}. Lower the learning rate "
                "or check the data.")
        return losses

    def rank_state(self) -> dict[str, Any]:
        """What this process alone knows: its generators and its data position."""
        return {"rng": capture_rng(self.model.rng_state()), "data": self.loader.state_dict()}
