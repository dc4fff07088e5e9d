"""The optimizer of the official recipe: AdamW over the parameter groups of ``param_groups.py``, cosine
learning-rate schedules, constant weight decay, and global-norm gradient clipping (SPEC-training §5).

``build_optimizer(model, cfg)`` returns a :class:`TrainOptimizer`; per training step the loop calls
``zero_grad()``, backward, ``set_progress(where)`` with ``where`` the fraction of training done,
``clip_gradients()`` and ``step()``, as the official trainer does.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sam2.training.param_groups import ParamGroupSpec, ParamSpec, param_groups, per_parameter, strip_prefix

__all__ = ["AMP_DTYPES", "OptimConfig", "ParamGroupSpec", "ParamSpec", "TrainOptimizer", "build_optimizer",
           "param_groups", "per_parameter", "training_progress"]

log = logging.getLogger(__name__)

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
LR_SCHEDULES = ("cosine", "constant")
_PROGRESS_SLACK = 1e-6


def _mose_overrides() -> dict[str, float]:
    return {"*pos_embed*": 1.0}


@dataclass
class OptimConfig:
    """Optimizer settings; defaults are the MOSE fine-tune values (``trainer.optim`` of the official YAML).

    The lr of a group goes from ``base_lr`` (``vision_lr`` for ``vision_param_names``; None: ``base_lr``
    everywhere) to ``base_lr_end`` / ``vision_lr_end`` (None: a tenth of the start) along a cosine
    (``lr_schedule: constant`` keeps the start), times the layer-decay multiplier
    ``layer_decay ** (L - layer_id)`` of ``layer_decay_apply_to`` (None disables layer decay).
    """

    base_lr: float = 5.0e-6
    vision_lr: float | None = 3.0e-6
    base_lr_end: float | None = None
    vision_lr_end: float | None = None
    lr_schedule: str = "cosine"
    vision_param_names: tuple[str, ...] = ("image_encoder.*",)
    weight_decay: float = 0.1
    no_weight_decay_param_names: tuple[str, ...] = ("*bias*",)
    no_weight_decay_module_cls_names: tuple[str, ...] = ("torch.nn.LayerNorm",)
    layer_decay: float | None = 0.9
    layer_decay_min: float | None = None
    layer_decay_apply_to: str = "image_encoder.trunk"
    layer_decay_overrides: dict[str, float] = field(default_factory=_mose_overrides)
    gradient_clip_max_norm: float | None = 0.1
    gradient_clip_norm_type: float = 2.0
    amp_enabled: bool = True
    amp_dtype: str = "bfloat16"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1.0e-8

    def __post_init__(self) -> None:
        for name in ("base_lr", "vision_lr", "base_lr_end", "vision_lr_end", "weight_decay"):
            _check_number(name, getattr(self, name), optional=name != "base_lr" and name != "weight_decay")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"optim lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.layer_decay is not None:
            _check_number("layer_decay", self.layer_decay, positive=True)
            if self.layer_decay > 1:
                raise ValueError(f"optim layer_decay must be in (0, 1], got {self.layer_decay}")
        _check_number("layer_decay_min", self.layer_decay_min, optional=True)
        if not isinstance(self.layer_decay_overrides, Mapping):
            raise TypeError("optim layer_decay_overrides must map a name pattern to an lr multiplier, got "
                            f"{type(self.layer_decay_overrides).__name__}")
        for pattern, value in self.layer_decay_overrides.items():
            _check_number(f"layer_decay_overrides[{pattern!r}]", value)
        for name in ("vision_param_names", "no_weight_decay_param_names", "no_weight_decay_module_cls_names"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"optim {name} must be a list of strings, got {value!r}")
            setattr(self, name, tuple(value))
        _check_number("gradient_clip_max_norm", self.gradient_clip_max_norm, optional=True, positive=True)
        _check_number("gradient_clip_norm_type", self.gradient_clip_norm_type, positive=True,
                      allow_inf=True)
        if not isinstance(self.amp_enabled, bool):
            raise TypeError(f"optim amp_enabled must be true or false, got {self.amp_enabled!r}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"optim amp_dtype must be one of {list(AMP_DTYPES)}, got {self.amp_dtype!r}")
        betas = tuple(self.betas)
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise ValueError(f"optim betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        _check_number("eps", self.eps, positive=True)

    @property
    def autocast_dtype(self) -> torch.dtype:
        """The ``torch.dtype`` of ``amp_dtype``."""
        return AMP_DTYPES[self.amp_dtype]


def _check_number(name: str, value: Any, optional: bool = False, positive: bool = False,
                  allow_inf: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
            or (math.isinf(value) and not allow_inf):
        raise ValueError(f"optim {name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"optim {name} must be {'> 0' if positive else '>= 0'}, got {value}")


@dataclass
class TrainOptimizer:
    """AdamW with the recipe's groups, schedules and clipping.

    optimizer: the ``torch.optim.AdamW`` (group ``i`` is ``groups[i]``; frozen parameters are left out,
    so a group may be empty); groups: the full group table; where: the last applied progress.
    """

    optimizer: torch.optim.AdamW
    groups: list[ParamGroupSpec]
    config: OptimConfig
    where: float = 0.0

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def set_progress(self, where: float) -> None:
        """Apply the schedules at ``where`` (fraction of training done, ``(epoch + i / iters) / epochs``).

        At ``where >= 1`` the values are left as they are (with a warning), as the official trainer does.
        """
        if isinstance(where, bool) or not isinstance(where, (int, float)) or not math.isfinite(where) \
                or where < 0 or where > 1 + _PROGRESS_SLACK:
            raise ValueError(f"training progress 'where' must be in [0, 1], got {where!r}")
        if where >= 1:
            log.warning("training progress %s >= 1: keeping the current learning rates", where)
            return
        for spec, group in zip(self.groups, self.optimizer.param_groups):
            group["lr"] = spec.lr_at(where)
            group["weight_decay"] = spec.weight_decay
        self.where = float(where)

    def clip_gradients(self, scaler: torch.amp.GradScaler | None = None) -> tuple[float, float]:
        """Unscale (if a ``scaler`` is given) and clip all gradients to one global norm of at most
        ``gradient_clip_max_norm``; return the norm before and after (equal when clipping is off)."""
        if scaler is not None:
            scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return 0.0, 0.0
        norm_type = self.config.gradient_clip_norm_type
        if self.config.gradient_clip_max_norm is None:
            before = torch.nn.utils.get_total_norm(grads, norm_type=norm_type).item()
            return before, before
        before = torch.nn.utils.clip_grad_norm_(self.params, max_norm=float(self.config.gradient_clip_max_norm),
                                                norm_type=norm_type).item()
        after = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None],
                                              norm_type=norm_type).item()
        return before, after

    def step(self, scaler: torch.amp.GradScaler | None = None) -> None:
        """One AdamW update (through ``scaler.step``, which skips non-finite gradients, if given)."""
        if scaler is not None:
            scaler.step(self.optimizer)
        else:
            self.optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """The ``torch.optim.AdamW`` state dict (the official checkpoint's ``optimizer`` entry)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        groups = state.get("param_groups") if isinstance(state, Mapping) else None
        if not isinstance(groups, list) or "state" not in state:
            raise ValueError("optimizer state must be a torch optimizer state dict with 'state' and 'param_groups'")
        ours = [len(g["params"]) for g in self.optimizer.param_groups]
        theirs = [len(g["params"]) for g in groups]
        if ours != theirs:
            raise ValueError(f"optimizer state does not fit this model and config: its {len(theirs)} groups hold "
                             f"{theirs} parameters, ours {len(ours)} hold {ours}")
        # torch keeps tensors that already have the right dtype and device, so a live state dict of
        # another optimizer would be shared with it; copy
        self.optimizer.load_state_dict(copy.deepcopy(dict(state)))


def build_optimizer(model: nn.Module, cfg: OptimConfig | None = None, prefix: str = "") -> TrainOptimizer:
    """AdamW over ``model``'s parameter groups (``prefix`` is stripped from parameter names, for wrapped
    models), with the schedules applied at ``where = 0``. Parameters with ``requires_grad=False`` are not
    optimized."""
    cfg = OptimConfig() if cfg is None else cfg
    groups = param_groups(model, cfg, prefix)
    by_name = {strip_prefix(n, prefix): p for n, p in model.named_parameters()}
    torch_groups = [{"params": [by_name[n] for n in g.names if by_name[n].requires_grad],
                     "lr": g.lr_at(0.0), "weight_decay": g.weight_decay} for g in groups]
    if not any(g["params"] for g in torch_groups):
        raise ValueError("every parameter of the model is frozen (requires_grad=False): nothing to optimize")
    optimizer = torch.optim.AdamW(torch_groups, lr=cfg.base_lr, betas=cfg.betas, eps=cfg.eps,
                                  weight_decay=cfg.weight_decay)
    train_optimizer = TrainOptimizer(optimizer, groups, cfg)
    train_optimizer.set_progress(0.0)
    return train_optimizer



def training_progress(epoch: int, iteration: int, iters_per_epoch: int, max_epochs: int) -> float:
    """``where`` before the optimizer step of ``iteration`` (0-based) of ``epoch`` (0-based):
    ``(epoch + iteration / iters_per_epoch) / max_epochs``, as the official trainer computes it."""
    if iters_per_epoch <= 0 or max_epochs <= 0:
        raise ValueError(f"iters_per_epoch and max_epochs must be > 0, got {iters_per_epoch} and {max_epochs}")
    if not (0 <= iteration < iters_per_epoch) or epoch < 0:
        raise ValueError(f"iteration {iteration} of epoch {epoch} is outside 0..{iters_per_epoch - 1}")
    return (epoch + float(iteration) / iters_per_epoch) / max_epochs
