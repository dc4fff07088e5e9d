"""How one training batch is prompted: GT masks or clicks/boxes, on which frames, corrected where.

:func:`draw_prompt_plan` makes the same draws, in the same order, from the same NumPy generator
(``default_rng(42)``) as the official training model, so a run reproduces its choices; the click
positions and box jitter come from the torch generator (:mod:`sam2.training.prompt_sampling`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from sam2.tracking.sam_heads import PointInputs
from sam2.training.prompt_sampling import get_next_point, sample_box_points

BoxSampler = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
ClickSampler = Callable[[torch.Tensor, "torch.Tensor | None", str], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class PromptSettings:
    """The prompt-simulation values in force for one mode (train or eval)."""

    prob_to_use_pt_input: float
    prob_to_use_box_input: float
    num_frames_to_correct: int
    rand_frames_to_correct: bool
    num_init_cond_frames: int
    rand_init_cond_frames: bool
    point_sampling: str  # "uniform" in training
    prob_to_sample_from_gt: float  # per correction click; 0 in eval


@dataclass
class PromptPlan:
    """The prompt choices of one batch (shared by all of its objects)."""

    use_pt_input: bool
    init_cond_frames: list[int]
    frames_not_in_init_cond: list[int]
    frames_to_add_correction_pt: list[int]
    use_box: dict[int, bool] = field(default_factory=dict)  # per initial frame, point input only

    @property
    def processing_order(self) -> list[int]:
        return self.init_cond_frames + self.frames_not_in_init_cond


@dataclass
class PromptSamplers:
    """The samplers the training model calls; tests swap in replays of recorded prompts."""

    box: BoxSampler = sample_box_points
    click: ClickSampler = get_next_point


def check_settings(s: PromptSettings, num_frames: int) -> None:
    """Errors naming the argument, before any draw."""
    if s.num_init_cond_frames < 1:
        raise ValueError(f"num_init_cond_frames must be >= 1, got {s.num_init_cond_frames}")
    if num_frames > 1 and s.num_init_cond_frames > num_frames:
        raise ValueError(f"num_init_cond_frames ({s.num_init_cond_frames}) exceeds the {num_frames} frames per clip")
    if num_frames > 1 and s.prob_to_use_pt_input > 0 and s.num_frames_to_correct > num_frames:
        raise ValueError(f"num_frames_to_correct ({s.num_frames_to_correct}) exceeds the {num_frames} frames per clip")


def draw_prompt_plan(rng: np.random.Generator, num_frames: int, settings: PromptSettings) -> PromptPlan:
    """Draw the plan of a clip of ``num_frames`` frames (official order of draws, §2.5)."""
    check_settings(settings, num_frames)
    p_pt, n_correct, n_init = settings.prob_to_use_pt_input, settings.num_frames_to_correct, settings.num_init_cond_frames
    if num_frames == 1:  # images: always clicks or a box, corrected on the one frame
        p_pt, n_correct, n_init = 1.0, 1, 1
    use_pt = bool(rng.random() < p_pt)
    if settings.rand_init_cond_frames and n_init > 1:
        n_init = int(rng.integers(1, n_init, endpoint=True))
    if use_pt and settings.rand_frames_to_correct and n_correct > n_init:
        n_correct = int(rng.integers(n_init, n_correct, endpoint=True))
    init = [0]
    if n_init > 1:
        init += [int(t) for t in rng.choice(range(1, num_frames), n_init - 1, replace=False)]
    rest = [t for t in range(num_frames) if t not in init]
    use_box = {t: bool(rng.random() < settings.prob_to_use_box_input) for t in init} if use_pt else {}
    if not use_pt:
        corrected: list[int] = []
    elif n_correct <= n_init:
        corrected = list(init)
    else:
        corrected = init + [int(t) for t in rng.choice(rest, n_correct - n_init, replace=False)]
    return PromptPlan(use_pt, init, rest, corrected, use_box)


def box_prompt(gt_masks: torch.Tensor, samplers: PromptSamplers, method: str) -> PointInputs:
    """A jittered box per object ``(O, 2, 2)``. An object absent from the frame (empty GT) has no box;
    it gets one negative click from ``samplers.click`` plus a padding point (label -1) instead of
    the official meaningless box (SPEC-training §3.2 / §12.7)."""
    points, labels = samplers.box(gt_masks)
    empty = ~gt_masks.flatten(1).any(dim=1)
    if bool(empty.any()):
        click, click_label = samplers.click(gt_masks[empty], None, method)
        pad = torch.zeros_like(click)
        pad_label = -torch.ones_like(click_label)
        points, labels = points.clone().float(), labels.clone()
        points[empty] = torch.cat([click.float(), pad], dim=1)
        labels[empty] = torch.cat([click_label.to(labels.dtype), pad_label.to(labels.dtype)], dim=1)
    return PointInputs(points.float(), labels.to(torch.int32))


def initial_prompts(plan: PromptPlan, gt_masks: list[torch.Tensor], samplers: PromptSamplers,
                    method: str) -> tuple[dict[int, PointInputs], dict[int, torch.Tensor]]:
    """Prompts of the initial conditioning frames, in plan order (that is the order of the torch
    draws). ``gt_masks[t] (O, 1, S, S)`` bool -> (point inputs, mask inputs) by frame."""
    points: dict[int, PointInputs] = {}
    masks: dict[int, torch.Tensor] = {}
    for t in plan.init_cond_frames:
        if not plan.use_pt_input:
            masks[t] = gt_masks[t]
        elif plan.use_box[t]:
            points[t] = box_prompt(gt_masks[t], samplers, method)
        else:
            coords, labels = samplers.click(gt_masks[t], None, method)
            points[t] = PointInputs(coords, labels)
    return points, masks
