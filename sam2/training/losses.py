"""The training loss of the official recipe: ``MultiStepMultiMasksAndIous`` and its helpers.

Per frame and prediction step the loss scores every candidate mask with a focal and a dice term,
keeps the candidate with the smallest weighted sum, regresses the predicted IoUs onto the real ones
and, optionally, supervises the object-score logit. Everything is divided by the object count of the
batch (averaged over ranks under ``torch.distributed``) and **summed** over steps and frames
(SPEC-training §4). The function names, keyword names and loss keys are those of the official code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CORE_LOSS_KEY", "LOSS_KEYS", "LossConfig", "MultiStepMultiMasksAndIous", "StepLossTerms",
    "dice_loss", "iou_loss", "object_score_loss", "sigmoid_focal_loss",
]

CORE_LOSS_KEY = "core_loss"
LOSS_KEYS = ("loss_mask", "loss_dice", "loss_iou", "loss_class")
_REQUIRED_WEIGHTS = ("loss_mask", "loss_dice", "loss_iou")
_OUTPUT_FIELDS = ("multistep_pred_multimasks_high_res", "multistep_pred_ious", "multistep_object_score_logits")


# ----------------------------------------------------------------------------------- helper terms

def _per_item(loss: Tensor, num_objects: float, loss_on_multimask: bool) -> Tensor:
    """``(N, M)`` values divided by ``num_objects``, or their sum when not per candidate."""
    return loss / num_objects if loss_on_multimask else loss.sum() / num_objects


def dice_loss(inputs: Tensor, targets: Tensor, num_objects: float, loss_on_multimask: bool = False) -> Tensor:
    """Soft dice loss ``1 - (2|p y| + 1) / (|p| + |y| + 1)`` with ``p = sigmoid(inputs)``.

    The overlap is ``2 sum p y`` in float32 (not the equivalent ``|p| + |y| - |p - y|_1``, which
    loses precision through cancellation when the prediction is almost perfect).

    inputs, targets: ``(N, M, H, W)`` when ``loss_on_multimask`` (result ``(N, M)``), otherwise
    ``(N, ...)`` (result: the scalar sum over ``N``). Divided by ``num_objects``.
    """
    probs = inputs.sigmoid()
    if loss_on_multimask:
        _require_4d("dice_loss", inputs, targets)
        probs, targets = probs.flatten(2), targets.flatten(2)
    else:
        probs, targets = probs.flatten(1), targets.flatten(1)
    total = probs.sum(-1) + targets.sum(-1)
    overlap = 2 * (probs * targets).sum(-1)
    loss = 1 - (overlap + 1) / (total + 1)
    return _per_item(loss, num_objects, loss_on_multimask)


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, num_objects: float, alpha: float = 0.25,
                       gamma: float = 2, loss_on_multimask: bool = False) -> Tensor:
    """Focal loss ``alpha_t * BCE(x, y) * (1 - p_t) ** gamma`` (no ``alpha_t`` when ``alpha < 0``).

    inputs, targets: ``(N, M, H, W)`` when ``loss_on_multimask`` (result ``(N, M)``: the mean over
    pixels), otherwise ``(N, D)`` (result: the scalar sum over ``N`` of the mean over ``D``).
    Divided by ``num_objects``.
    """
    probs = inputs.sigmoid()
    bce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = probs * targets + (1 - probs) * (1 - targets)
    loss = bce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if loss_on_multimask:
        if loss.dim() != 4:
            raise ValueError(f"sigmoid_focal_loss: loss_on_multimask needs (N, M, H, W) inputs, got "
                             f"{tuple(inputs.shape)}")
        return loss.flatten(2).mean(-1) / num_objects
    return loss.mean(1).sum() / num_objects


def iou_loss(inputs: Tensor, targets: Tensor, pred_ious: Tensor, num_objects: float,
             loss_on_multimask: bool = False, use_l1_loss: bool = False) -> Tensor:
    """L1 or squared error between ``pred_ious`` ``(N, M)`` and the IoU of ``inputs > 0`` with
    ``targets > 0`` (both ``(N, M, H, W)``; union clamped to 1, so empty vs empty scores 0).

    The real IoU carries no gradient. Result ``(N, M)`` when ``loss_on_multimask``, else the scalar sum;
    divided by ``num_objects``.
    """
    _require_4d("iou_loss", inputs, targets)
    pred, gt = inputs.flatten(2) > 0, targets.flatten(2) > 0
    intersection = (pred & gt).sum(-1).float()
    union = (pred | gt).sum(-1).float()
    actual_ious = intersection / torch.clamp(union, min=1.0)
    if pred_ious.shape != actual_ious.shape:
        raise ValueError(f"iou_loss: pred_ious {tuple(pred_ious.shape)} does not match the masks "
                         f"{tuple(inputs.shape[:2])}")
    if use_l1_loss:
        loss = F.l1_loss(pred_ious, actual_ious, reduction="none")
    else:
        loss = F.mse_loss(pred_ious, actual_ious, reduction="none")
    return _per_item(loss, num_objects, loss_on_multimask)


def object_score_loss(object_score_logits: Tensor, target_present: Tensor, num_objects: float,
                      alpha: float = -1.0, gamma: float = 0.0) -> Tensor:
    """The object-score term: focal loss of the ``(N, 1)`` score logits against presence ``(N, 1)``
    (plain BCE for ``alpha < 0, gamma = 0``), summed over objects and divided by ``num_objects``."""
    return sigmoid_focal_loss(object_score_logits, target_present, num_objects, alpha=alpha, gamma=gamma)


def _require_4d(name: str, inputs: Tensor, targets: Tensor) -> None:
    if inputs.dim() != 4 or targets.dim() != 4:
        raise ValueError(f"{name}: expected (N, M, H, W) inputs and targets, got {tuple(inputs.shape)} and "
                         f"{tuple(targets.shape)}")


# ----------------------------------------------------------------------------------- configuration

def _mose_weights() -> dict[str, float]:
    return {"loss_mask": 20.0, "loss_dice": 1.0, "loss_iou": 1.0, "loss_class": 1.0}


@dataclass
class LossConfig:
    """Constructor arguments of ``MultiStepMultiMasksAndIous`` (official keyword names), MOSE values.

    ``weight_dict`` without ``loss_class`` gets ``loss_class: 0.0`` (in this config's own copy).
    """

    weight_dict: dict[str, float] = field(default_factory=_mose_weights)
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    supervise_all_iou: bool = True
    iou_use_l1_loss: bool = True
    pred_obj_scores: bool = True
    focal_gamma_obj_score: float = 0.0
    focal_alpha_obj_score: float = -1.0

    def __post_init__(self) -> None:
        if not isinstance(self.weight_dict, Mapping):
            raise TypeError(f"loss weight_dict must be a mapping of loss key to weight, got "
                            f"{type(self.weight_dict).__name__}")
        missing = [k for k in _REQUIRED_WEIGHTS if k not in self.weight_dict]
        if missing:
            raise ValueError(f"loss weight_dict lacks {missing} (needs {list(_REQUIRED_WEIGHTS)}, "
                             f"optionally 'loss_class')")
        unknown = sorted(set(self.weight_dict) - set(LOSS_KEYS))
        if unknown:
            raise ValueError(f"loss weight_dict has unknown keys {unknown}; the loss computes {list(LOSS_KEYS)}")
        weights = {k: float(_number(f"weight_dict[{k!r}]", v)) for k, v in self.weight_dict.items()}
        for key, value in weights.items():
            if value < 0:
                raise ValueError(f"loss weight_dict[{key!r}] must be >= 0, got {value}")
        weights.setdefault("loss_class", 0.0)
        self.weight_dict = weights
        for name in ("focal_alpha", "focal_alpha_obj_score"):
            if _number(name, getattr(self, name)) > 1:
                raise ValueError(f"loss {name} must be <= 1 (negative disables it), got {getattr(self, name)}")
        for name in ("focal_gamma", "focal_gamma_obj_score"):
            if _number(name, getattr(self, name)) < 0:
                raise ValueError(f"loss {name} must be >= 0, got {getattr(self, name)}")
        for name in ("supervise_all_iou", "iou_use_l1_loss", "pred_obj_scores"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"loss {name} must be true or false, got {getattr(self, name)!r}")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"loss {name} must be a finite number, got {value!r}")
    return value


# ----------------------------------------------------------------------------------- the loss

@dataclass
class StepLossTerms:
    """The loss of one prediction step of one frame (all already divided by the object count).

    focal_per_mask, dice_per_mask, iou_loss_per_mask: ``(O, M)``; best_mask_index: ``(O,)`` (the
    supervised candidate); target_present: ``(O,)`` bool, the GT mask is non-empty (with
    ``pred_obj_scores`` it masks the mask and IoU terms and is the object-score target; without, every
    object is supervised); loss_mask / loss_dice / loss_iou / loss_class: scalars.
    """

    focal_per_mask: Tensor
    dice_per_mask: Tensor
    iou_loss_per_mask: Tensor
    best_mask_index: Tensor
    target_present: Tensor
    loss_mask: Tensor
    loss_dice: Tensor
    loss_iou: Tensor
    loss_class: Tensor


class MultiStepMultiMasksAndIous(nn.Module):
    """Multi-step, multi-mask loss of the training model (official name and keyword arguments).

    ``forward(outs_batch, targets)``: ``outs_batch`` holds one item per frame (a mapping or an object
    with the attributes ``multistep_pred_multimasks_high_res`` — per step ``(O, M, H, W)`` logits —,
    ``multistep_pred_ious`` — ``(O, M)`` — and ``multistep_object_score_logits`` — ``(O, 1)``);
    ``targets`` is ``(T, O, H, W)``. Returns ``loss_mask``, ``loss_dice``, ``loss_iou``, ``loss_class``
    and ``core_loss`` (their weighted sum), each summed over frames and steps.

    Unlike the official class, the caller's ``weight_dict`` is copied, not modified.
    """

    def __init__(self, weight_dict: Mapping[str, float], focal_alpha: float = 0.25, focal_gamma: float = 2,
                 supervise_all_iou: bool = False, iou_use_l1_loss: bool = False, pred_obj_scores: bool = False,
                 focal_gamma_obj_score: float = 0.0, focal_alpha_obj_score: float = -1):
        super().__init__()
        self.config = LossConfig(
            weight_dict=dict(weight_dict), focal_alpha=focal_alpha, focal_gamma=focal_gamma,
            supervise_all_iou=supervise_all_iou, iou_use_l1_loss=iou_use_l1_loss,
            pred_obj_scores=pred_obj_scores, focal_gamma_obj_score=focal_gamma_obj_score,
            focal_alpha_obj_score=focal_alpha_obj_score)
        for f in fields(LossConfig):
            setattr(self, f.name, getattr(self.config, f.name))

    @classmethod
    def from_config(cls, cfg: LossConfig) -> MultiStepMultiMasksAndIous:
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(LossConfig)})

    def extra_repr(self) -> str:
        return ", ".join(f"{f.name}={getattr(self.config, f.name)!r}" for f in fields(LossConfig))

    # --------------------------------------------------------------------------- public entry points

    def forward(self, outs_batch: Sequence[Any], targets: Tensor) -> dict[str, Tensor]:
        """Losses of a clip: ``outs_batch`` (``T`` frame outputs), ``targets`` ``(T, O, H, W)``."""
        if targets.dim() != 4:
            raise ValueError(f"loss targets must be (T, O, H, W), got shape {tuple(targets.shape)}")
        if len(outs_batch) != targets.shape[0]:
            raise ValueError(f"loss got {len(outs_batch)} frame outputs for {targets.shape[0]} target frames")
        if len(outs_batch) == 0:
            raise ValueError("loss got no frames")
        num_objects = self.normalizer(targets)
        totals: dict[str, Tensor] = {}
        for outputs, frame_targets in zip(outs_batch, targets):
            for key, value in self.frame_losses(outputs, frame_targets, num_objects).items():
                totals[key] = totals[key] + value if key in totals else value
        return totals

    @staticmethod
    def normalizer(targets: Tensor) -> float:
        """The object count every term is divided by: ``O`` (``targets.shape[1]``), averaged over ranks
        when ``torch.distributed`` is initialised, at least 1."""
        count = torch.tensor(float(targets.shape[1]), device=targets.device, dtype=torch.float)
        world_size = 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(count)
            world_size = torch.distributed.get_world_size()
        return torch.clamp(count / world_size, min=1).item()

    def frame_losses(self, outputs: Any, targets: Tensor, num_objects: float) -> dict[str, Tensor]:
        """The four losses of one frame summed over its steps, and their weighted sum ``core_loss``.

        targets: ``(O, H, W)``.
        """
        steps = self.frame_steps(outputs, targets, num_objects)
        losses = {key: sum((getattr(s, key) for s in steps[1:]), getattr(steps[0], key)) for key in LOSS_KEYS}
        losses[CORE_LOSS_KEY] = self.weighted_sum(losses)
        return losses

    def frame_steps(self, outputs: Any, targets: Tensor, num_objects: float) -> list[StepLossTerms]:
        """The :class:`StepLossTerms` of every prediction step of one frame (targets ``(O, H, W)``)."""
        masks, ious, scores = (_output_field(outputs, name) for name in _OUTPUT_FIELDS)
        if not (len(masks) == len(ious) == len(scores)):
            raise ValueError(f"frame output has {len(masks)} mask, {len(ious)} IoU and {len(scores)} "
                             "object-score steps; they must match")
        if len(masks) == 0:
            raise ValueError("frame output has no prediction steps")
        target_masks = targets.unsqueeze(1).float()
        return [self.step_terms(m, target_masks, q, z, num_objects) for m, q, z in zip(masks, ious, scores)]

    def step_terms(self, src_masks: Tensor, target_masks: Tensor, ious: Tensor, object_score_logits: Tensor,
                   num_objects: float) -> StepLossTerms:
        """One step: logits ``(O, M, H, W)``, targets ``(O, 1, H, W)``, IoUs ``(O, M)``, scores ``(O, 1)``."""
        if src_masks.dim() != 4 or src_masks.shape[0] != target_masks.shape[0] \
                or src_masks.shape[-2:] != target_masks.shape[-2:]:
            raise ValueError(f"predicted masks {tuple(src_masks.shape)} do not fit the targets "
                             f"{tuple(target_masks.shape)} (expected (O, M, H, W))")
        target_masks = target_masks.to(src_masks.dtype).expand_as(src_masks)
        focal = sigmoid_focal_loss(src_masks, target_masks, num_objects, alpha=self.focal_alpha,
                                   gamma=self.focal_gamma, loss_on_multimask=True)
        dice = dice_loss(src_masks, target_masks, num_objects, loss_on_multimask=True)
        target_present = (target_masks[:, 0] > 0).flatten(1).any(dim=-1)
        if self.pred_obj_scores:
            present = target_present[:, None].to(focal.dtype)
            loss_class = object_score_loss(object_score_logits, present, num_objects,
                                           alpha=self.focal_alpha_obj_score, gamma=self.focal_gamma_obj_score)
        else:
            present = torch.ones(focal.shape[0], 1, dtype=focal.dtype, device=focal.device)
            loss_class = torch.tensor(0.0, dtype=focal.dtype, device=focal.device)
        iou = iou_loss(src_masks, target_masks, ious, num_objects, loss_on_multimask=True,
                       use_l1_loss=self.iou_use_l1_loss)
        best, loss_mask, loss_dice, loss_iou = self._select_candidate(focal, dice, iou)
        return StepLossTerms(
            focal_per_mask=focal, dice_per_mask=dice, iou_loss_per_mask=iou, best_mask_index=best,
            target_present=target_present, loss_mask=(loss_mask * present).sum(), loss_dice=(loss_dice * present).sum(),
            loss_iou=(loss_iou * present).sum(), loss_class=loss_class)

    def weighted_sum(self, losses: Mapping[str, Tensor]) -> Tensor:
        """``sum_k weight_k * losses[k]`` over the keys with a non-zero weight (in ``weight_dict`` order)."""
        total: Tensor | float = 0.0
        for key, weight in self.weight_dict.items():
            if key not in losses:
                raise ValueError(f"{type(self).__name__} does not compute {key!r}")
            if weight != 0:
                total = total + losses[key] * weight
        return torch.as_tensor(total)

    # --------------------------------------------------------------------------- internals

    def _select_candidate(self, focal: Tensor, dice: Tensor, iou: Tensor
                          ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The candidate with the smallest weighted focal + dice (first on ties) and its ``(O, 1)`` terms."""
        num_candidates = focal.shape[1]
        if num_candidates == 1:
            best = torch.zeros(focal.shape[0], dtype=torch.long, device=focal.device)
            return best, focal, dice, iou
        combo = focal * self.weight_dict["loss_mask"] + dice * self.weight_dict["loss_dice"]
        best = torch.argmin(combo, dim=-1)
        rows = torch.arange(combo.shape[0], device=combo.device)
        iou_term = iou.mean(dim=-1) if self.supervise_all_iou else iou[rows, best]
        return best, focal[rows, best].unsqueeze(1), dice[rows, best].unsqueeze(1), iou_term.unsqueeze(1)


def _output_field(outputs: Any, name: str) -> Sequence[Tensor]:
    if isinstance(outputs, Mapping):
        if name not in outputs:
            raise KeyError(f"frame output lacks {name!r} (has {sorted(outputs)})")
        return outputs[name]
    if not hasattr(outputs, name):
        raise KeyError(f"frame output {type(outputs).__name__} has no attribute {name!r}")
    return getattr(outputs, name)
