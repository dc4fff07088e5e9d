"""The training-mode model (the official ``SAM2Train``): prompt simulation around a :class:`SAM2Base`.

:class:`TrainingModel` holds the model (it does not subclass it) and reuses :mod:`sam2.tracking` for
every frame. Per batch it draws a prompt plan (GT masks, or clicks / boxes, on one or more initial
frames), tracks every object through the clip in the plan's order, adds correction clicks on some
frames (each click re-runs the SAM heads on the same memory-conditioned features), and returns one
:class:`TrainFrameOutput` per frame with every step's candidate masks, IoUs and object scores: what
:class:`sam2.training.losses.MultiStepMultiMasksAndIous` reads.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
import torch.utils.checkpoint
from torch import nn

from sam2.modeling.sam2_base import SAM2Base
from sam2.tracking.sam_heads import HeadsOutput, PointInputs, forward_sam_heads
from sam2.tracking.tracker import FrameFeatures, StepOutput, encode_memory, track_step, use_multimask
from sam2.training.data.batch import VideoBatch
from sam2.training.prompt_plan import (
    PromptPlan,
    PromptSamplers,
    PromptSettings,
    draw_prompt_plan,
    initial_prompts,
)
from sam2.training.prompt_sampling import SAMPLING_METHODS, concat_points

__all__ = ["PromptSimulationConfig", "SAM2Train", "TrainFrameOutput", "TrainingModel"]

MODEL_RNG_SEED = 42  # the official training model's NumPy generator seed


@dataclass(frozen=True)
class PromptSimulationConfig:
    """Prompt simulation; the official ``SAM2Train`` constructor arguments with their defaults.

    ``_for_train`` values apply in training mode, ``_for_eval`` ones in eval mode. Clicks are drawn
    uniformly from the error region in training and by ``pt_sampling_for_eval`` in eval.
    :meth:`mose` gives the values of the official MOSE fine-tuning config.
    """

    prob_to_use_pt_input_for_train: float = 0.0
    prob_to_use_pt_input_for_eval: float = 0.0
    prob_to_use_box_input_for_train: float = 0.0
    prob_to_use_box_input_for_eval: float = 0.0
    num_frames_to_correct_for_train: int = 1
    num_frames_to_correct_for_eval: int = 1
    rand_frames_to_correct_for_train: bool = False
    rand_frames_to_correct_for_eval: bool = False
    num_init_cond_frames_for_train: int = 1
    num_init_cond_frames_for_eval: int = 1
    rand_init_cond_frames_for_train: bool = True
    rand_init_cond_frames_for_eval: bool = False
    add_all_frames_to_correct_as_cond: bool = False
    num_correction_pt_per_frame: int = 7
    pt_sampling_for_eval: str = "center"
    prob_to_sample_from_gt_for_train: float = 0.0
    use_act_ckpt_iterative_pt_sampling: bool = False
    forward_backbone_per_frame_for_eval: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name.startswith("prob_") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"{f.name} must be a probability in [0, 1], got {getattr(self, f.name)}")
        for mode in ("train", "eval"):
            n_init = getattr(self, f"num_init_cond_frames_for_{mode}")
            n_correct = getattr(self, f"num_frames_to_correct_for_{mode}")
            if n_init < 1:
                raise ValueError(f"num_init_cond_frames_for_{mode} must be >= 1, got {n_init}")
            if getattr(self, f"prob_to_use_pt_input_for_{mode}") > 0 and n_correct < n_init:
                raise ValueError(f"num_frames_to_correct_for_{mode} ({n_correct}) must be >= "
                                 f"num_init_cond_frames_for_{mode} ({n_init}) when point inputs are used")
        if self.num_correction_pt_per_frame < 0:
            raise ValueError(f"num_correction_pt_per_frame must be >= 0, got {self.num_correction_pt_per_frame}")
        if self.pt_sampling_for_eval not in SAMPLING_METHODS:
            raise ValueError(f"pt_sampling_for_eval must be one of {SAMPLING_METHODS}, got {self.pt_sampling_for_eval!r}")

    @classmethod
    def mose(cls, **changes: Any) -> PromptSimulationConfig:
        """The values of ``sam2.1_hiera_b+_MOSE_finetune.yaml`` (optionally changed)."""
        values: dict[str, Any] = dict(
            prob_to_use_pt_input_for_train=0.5, prob_to_use_box_input_for_train=0.5,
            num_frames_to_correct_for_train=2, rand_frames_to_correct_for_train=True,
            num_init_cond_frames_for_train=2, rand_init_cond_frames_for_train=True,
            add_all_frames_to_correct_as_cond=True, num_correction_pt_per_frame=7,
            prob_to_sample_from_gt_for_train=0.1, forward_backbone_per_frame_for_eval=True)
        values.update(changes)
        return cls(**values)

    def settings(self, training: bool) -> PromptSettings:
        """The values in force in training (``True``) or eval mode."""
        mode = "train" if training else "eval"
        return PromptSettings(
            prob_to_use_pt_input=getattr(self, f"prob_to_use_pt_input_for_{mode}"),
            prob_to_use_box_input=getattr(self, f"prob_to_use_box_input_for_{mode}"),
            num_frames_to_correct=getattr(self, f"num_frames_to_correct_for_{mode}"),
            rand_frames_to_correct=getattr(self, f"rand_frames_to_correct_for_{mode}"),
            num_init_cond_frames=getattr(self, f"num_init_cond_frames_for_{mode}"),
            rand_init_cond_frames=getattr(self, f"rand_init_cond_frames_for_{mode}"),
            point_sampling="uniform" if training else self.pt_sampling_for_eval,
            prob_to_sample_from_gt=self.prob_to_sample_from_gt_for_train if training else 0.0)


@dataclass
class TrainFrameOutput:
    """Everything the training model produced for one frame (``O`` objects, ``K`` steps).

    Per step ``k`` (initial prediction, then one per correction click), with ``M`` = 3 or 1 candidates:
    ``multistep_pred_multimasks[k] (O, M, S/4, S/4)`` and ``_high_res[k] (O, M, S, S)`` logits,
    ``multistep_pred_ious[k] (O, M)``, ``multistep_object_score_logits[k] (O, 1)``, the clicks so far
    ``multistep_point_inputs[k]``. The chosen (highest-IoU) mask of every step is concatenated in
    ``multistep_pred_masks (O, K, S/4, S/4)`` / ``_high_res (O, K, S, S)``. The final step gives
    ``pred_masks (O, 1, S/4, S/4)``, ``pred_masks_high_res``, ``obj_ptr (O, C)``,
    ``object_score_logits (O, 1)`` and the memory ``maskmem_features (O, mem_dim, S/16, S/16)``.
    ``point_inputs`` / ``mask_inputs`` are the frame's initial prompt. In the list returned by
    :meth:`TrainingModel.forward`, ``obj_ptr`` and the memory are detached (no loss reads them).
    """

    frame_idx: int
    is_init_cond_frame: bool
    is_corrected: bool
    stored_as_cond_frame: bool
    point_inputs: PointInputs | None
    mask_inputs: torch.Tensor | None
    multistep_pred_masks: torch.Tensor
    multistep_pred_masks_high_res: torch.Tensor
    multistep_pred_multimasks: list[torch.Tensor]
    multistep_pred_multimasks_high_res: list[torch.Tensor]
    multistep_pred_ious: list[torch.Tensor]
    multistep_point_inputs: list[PointInputs | None]
    multistep_object_score_logits: list[torch.Tensor]
    pred_masks: torch.Tensor
    pred_masks_high_res: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor
    maskmem_features: torch.Tensor | None
    maskmem_pos_enc: torch.Tensor | None

    @property
    def num_steps(self) -> int:
        return len(self.multistep_pred_ious)

    def detached_memory(self) -> TrainFrameOutput:
        """A copy whose pointer and memory tensors carry no graph."""
        def detach(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.detach()
        return replace(self, obj_ptr=self.obj_ptr.detach(), maskmem_features=detach(self.maskmem_features),
                       maskmem_pos_enc=detach(self.maskmem_pos_enc))


def check_batch(batch: VideoBatch, image_size: int) -> None:
    """Shape errors naming the field, before any computation."""
    img, masks, idx = batch.img_batch, batch.masks, batch.obj_to_frame_idx
    if img.dim() != 5 or img.shape[2] != 3 or tuple(img.shape[-2:]) != (image_size, image_size):
        raise ValueError(f"batch.img_batch must be (T, V, 3, {image_size}, {image_size}) for a model of image_size "
                         f"{image_size}, got {tuple(img.shape)}")
    t = img.shape[0]
    if masks.dtype != torch.bool or masks.dim() != 4 or masks.shape[0] != t or masks.shape[1] < 1 \
            or tuple(masks.shape[-2:]) != (image_size, image_size):
        raise ValueError(f"batch.masks must be bool (T={t}, O>=1, {image_size}, {image_size}), "
                         f"got {masks.dtype} {tuple(masks.shape)}")
    if tuple(idx.shape) != (t, masks.shape[1], 2):
        raise ValueError(f"batch.obj_to_frame_idx must be (T={t}, O={masks.shape[1]}, 2), got {tuple(idx.shape)}")
    video = idx[..., 1]
    if bool((video < 0).any()) or bool((video >= img.shape[1]).any()):
        raise ValueError(f"batch.obj_to_frame_idx names a video outside 0..{img.shape[1] - 1}")


class TrainingModel(nn.Module):
    """Training-mode SAM 2 (``SAM2Train``): ``forward(batch)`` -> one :class:`TrainFrameOutput` per frame.

    ``model`` is held as ``self.model`` (checkpoints store ``training_model.model.state_dict()``).
    ``freeze_image_encoder`` sets ``requires_grad = False`` on the image encoder. The prompt choices
    come from a NumPy generator seeded 42 (as in the official code): save it with :meth:`rng_state`
    and restore it with :meth:`set_rng_state` to resume exactly. ``samplers`` replaces the box and
    click samplers (tests replay recorded prompts through it).
    """

    def __init__(self, model: SAM2Base, prompts: PromptSimulationConfig | None = None,
                 freeze_image_encoder: bool = False, *, samplers: PromptSamplers | None = None) -> None:
        super().__init__()
        if not isinstance(model, SAM2Base):
            raise TypeError(f"model must be a SAM2Base, got {type(model).__name__}")
        self.model = model
        self.prompts = prompts if prompts is not None else PromptSimulationConfig()
        self.samplers = samplers if samplers is not None else PromptSamplers()
        self.rng = np.random.default_rng(MODEL_RNG_SEED)
        self.last_plan: PromptPlan | None = None
        if freeze_image_encoder:
            for p in model.image_encoder.parameters():
                p.requires_grad_(False)

    # ------------------------------------------------------------------------------ generator state

    def rng_state(self) -> dict[str, Any]:
        """The prompt generator's state (a plain dict, picklable)."""
        return copy.deepcopy(self.rng.bit_generator.state)

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`rng_state`."""
        expected = self.rng.bit_generator.state["bit_generator"]
        if not isinstance(state, dict) or state.get("bit_generator") != expected:
            raise ValueError(f"not a {expected} generator state: {str(state)[:80]}")
        self.rng.bit_generator.state = copy.deepcopy(state)

    # ------------------------------------------------------------------------------ forward

    def forward(self, batch: VideoBatch) -> list[TrainFrameOutput]:
        """Prompt, track and correct every object of ``batch``; outputs in frame order ``0..T-1``."""
        check_batch(batch, self.model.image_size)
        settings = self.prompts.settings(self.training)
        num_frames = batch.num_frames
        backbone = None
        if self.training or not self.prompts.forward_backbone_per_frame_for_eval:
            backbone = self.model._prepare_backbone_features(self.model.forward_image(batch.flat_img_batch))
        plan = draw_prompt_plan(self.rng, num_frames, settings)
        self.last_plan = plan
        gt = [batch.masks[t][:, None] for t in range(num_frames)]
        point_inputs, mask_inputs = initial_prompts(plan, gt, self.samplers, settings.point_sampling)
        cond: dict[int, TrainFrameOutput] = {}
        non_cond: dict[int, TrainFrameOutput] = {}
        img_idx = batch.flat_obj_to_img_idx
        for t in plan.processing_order:
            features = self._frame_features(backbone, batch, img_idx[t])
            out = self._track_frame(t, plan, features, point_inputs.get(t), mask_inputs.get(t), gt[t],
                                    cond, non_cond, num_frames, settings)
            (cond if out.stored_as_cond_frame else non_cond)[t] = out
        outputs = {**cond, **non_cond}
        return [outputs[t].detached_memory() for t in range(num_frames)]

    def _frame_features(self, backbone: tuple | None, batch: VideoBatch, img_ids: torch.Tensor) -> FrameFeatures:
        """The backbone features of each object's image on one frame (``B = O``)."""
        if backbone is None:  # eval, frame by frame: encode the distinct images of this frame only
            unique, inverse = torch.unique(img_ids, return_inverse=True)
            _, feats, pos, sizes = self.model._prepare_backbone_features(
                self.model.forward_image(batch.flat_img_batch[unique]))
            img_ids = inverse
        else:
            _, feats, pos, sizes = backbone
        return FrameFeatures([x[:, img_ids] for x in feats], [x[:, img_ids] for x in pos], sizes)

    def _track_frame(self, t: int, plan: PromptPlan, features: FrameFeatures, point_inputs: PointInputs | None,
                     mask_inputs: torch.Tensor | None, gt: torch.Tensor, cond: dict, non_cond: dict,
                     num_frames: int, settings: PromptSettings) -> TrainFrameOutput:
        """Track all objects on frame ``t``, add its correction clicks, encode its memory."""
        is_init = t in plan.init_cond_frames
        is_corrected = t in plan.frames_to_add_correction_pt
        step = track_step(self.model, t, is_init, features, point_inputs, mask_inputs, cond, non_cond,
                          num_frames, run_mem_encoder=False)
        steps, step_points = [step.heads], [point_inputs]
        if is_corrected:
            self._correct(step, is_init, gt, settings, steps, step_points)
        final = steps[-1]
        mem = pos = None
        if self.model.num_maskmem > 0:
            mem, pos = encode_memory(self.model, features, final.high_res_masks, final.object_score_logits,
                                     step_points[-1] is not None)
        return TrainFrameOutput(
            frame_idx=t, is_init_cond_frame=is_init, is_corrected=is_corrected,
            stored_as_cond_frame=is_init or (is_corrected and self.prompts.add_all_frames_to_correct_as_cond),
            point_inputs=point_inputs, mask_inputs=mask_inputs,
            multistep_pred_masks=torch.cat([h.low_res_masks for h in steps], dim=1),
            multistep_pred_masks_high_res=torch.cat([h.high_res_masks for h in steps], dim=1),
            multistep_pred_multimasks=[h.low_res_multimasks for h in steps],
            multistep_pred_multimasks_high_res=[h.high_res_multimasks for h in steps],
            multistep_pred_ious=[h.multi_ious for h in steps], multistep_point_inputs=step_points,
            multistep_object_score_logits=[h.object_score_logits for h in steps],
            pred_masks=final.low_res_masks, pred_masks_high_res=final.high_res_masks, obj_ptr=final.obj_ptr,
            object_score_logits=final.object_score_logits, maskmem_features=mem, maskmem_pos_enc=pos)

    def _correct(self, step: StepOutput, is_init: bool, gt: torch.Tensor, settings: PromptSettings,
                 steps: list[HeadsOutput], step_points: list[PointInputs | None]) -> None:
        """``num_correction_pt_per_frame`` clicks, each sampled from the current error (or from the GT
        alone with probability ``prob_to_sample_from_gt``) and followed by a new SAM-heads prediction
        with all clicks so far and the previous chosen low-res logits as mask prompt."""
        points = step_points[-1]
        for _ in range(self.prompts.num_correction_pt_per_frame):
            heads = steps[-1]
            from_gt = settings.prob_to_sample_from_gt > 0 and self.rng.random() < settings.prob_to_sample_from_gt
            reference = None if from_gt else heads.high_res_masks > 0
            new_points, new_labels = self.samplers.click(gt, reference, settings.point_sampling)
            points = concat_points(points, new_points, new_labels)
            multimask = use_multimask(self.model, is_init, points)
            steps.append(self._sam_heads(step, points, heads.low_res_masks, multimask))
            step_points.append(points)

    def _sam_heads(self, step: StepOutput, points: PointInputs, mask_inputs: torch.Tensor,
                   multimask: bool) -> HeadsOutput:
        if (self.prompts.use_act_ckpt_iterative_pt_sampling and not multimask and self.training
                and torch.is_grad_enabled()):
            return torch.utils.checkpoint.checkpoint(forward_sam_heads, self.model, step.pix_feat, points,
                                                     mask_inputs, step.high_res_features, multimask,
                                                     use_reentrant=False)
        return forward_sam_heads(self.model, step.pix_feat, points, mask_inputs, step.high_res_features, multimask)

    def extra_repr(self) -> str:
        return f"prompts={self.prompts}"


SAM2Train = TrainingModel  # the official name
