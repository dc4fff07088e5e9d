"""Running the prompt encoder + mask decoder on one frame's features, with object-presence gating."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sam2.modeling.sam2_base import SAM2Base

NO_OBJ_SCORE = -1024.0  # mask logit used where the object is predicted absent


@dataclass
class PointInputs:
    """Click / box-corner prompts in the model frame: ``coords (B, P, 2)``, ``labels (B, P)`` int32."""

    point_coords: torch.Tensor
    point_labels: torch.Tensor

    def __getitem__(self, key: str) -> torch.Tensor:  # official dict-style access
        return getattr(self, key)


@dataclass
class HeadsOutput:
    """Best mask ``low_res (B, 1, S/4, S/4)`` / ``high_res (B, 1, S, S)`` logits, its IoU ``(B, 1)``,
    the object pointer ``(B, C)`` and the object-score logit ``(B, 1)``; plus every candidate
    ``low_res_multimasks (B, M, S/4, S/4)`` / ``high_res_multimasks (B, M, S, S)`` and
    ``multi_ious (B, M)`` (M = 3 or 1; what the training loss sees)."""

    low_res_masks: torch.Tensor
    high_res_masks: torch.Tensor
    ious: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor
    low_res_multimasks: torch.Tensor
    high_res_multimasks: torch.Tensor
    multi_ious: torch.Tensor


def gate_pointer(model: SAM2Base, obj_ptr: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Replace the pointer of absent objects by the learned ``no_obj_ptr``; ``present (B, 1)`` float."""
    return present * obj_ptr + (1 - present) * model.no_obj_ptr


def forward_sam_heads(model: SAM2Base, backbone_features: torch.Tensor, point_inputs: PointInputs | None,
                      mask_inputs: torch.Tensor | None, high_res_features: list[torch.Tensor],
                      multimask_output: bool) -> HeadsOutput:
    """``backbone_features (B, C, h, w)`` (memory-conditioned or not) + prompts -> :class:`HeadsOutput`."""
    b = backbone_features.size(0)
    device = backbone_features.device
    if point_inputs is not None:
        coords, labels = point_inputs.point_coords, point_inputs.point_labels
    else:  # a single padding point
        coords = torch.zeros(b, 1, 2, device=device)
        labels = -torch.ones(b, 1, dtype=torch.int32, device=device)
    encoder = model.sam_prompt_encoder
    mask_prompt = None
    if mask_inputs is not None:
        mask_prompt = mask_inputs
        if mask_inputs.shape[-2:] != encoder.mask_input_size:
            mask_prompt = F.interpolate(mask_inputs.float(), size=encoder.mask_input_size, mode="bilinear",
                                        align_corners=False, antialias=True)
    sparse, dense = encoder(points=(coords, labels), boxes=None, masks=mask_prompt)
    low_multi, ious, tokens, scores = model.sam_mask_decoder(
        image_embeddings=backbone_features, image_pe=encoder.get_dense_pe(), sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense, multimask_output=multimask_output, repeat_image=False,
        high_res_features=high_res_features)
    present = scores > 0
    low_multi = torch.where(present[:, None, None], low_multi, NO_OBJ_SCORE).float()
    size = model.image_size
    high_multi = F.interpolate(low_multi, size=(size, size), mode="bilinear", align_corners=False)
    token = tokens[:, 0]
    low, high, best_iou = low_multi, high_multi, ious
    if multimask_output:
        best = torch.argmax(ious, dim=-1)
        rows = torch.arange(b, device=device)
        low, high = low_multi[rows, best].unsqueeze(1), high_multi[rows, best].unsqueeze(1)
        best_iou = ious[rows, best].unsqueeze(1)
        if tokens.size(1) > 1:
            token = tokens[rows, best]
    obj_ptr = gate_pointer(model, model.obj_ptr_proj(token), present.float())
    return HeadsOutput(low, high, best_iou, obj_ptr, scores, low_multi, high_multi, ious)


def use_mask_as_output(model: SAM2Base, backbone_features: torch.Tensor, high_res_features: list[torch.Tensor],
                       mask_inputs: torch.Tensor) -> HeadsOutput:
    """A mask prompt ``(B, 1, S, S)`` becomes the output directly (logits +-10); the pointer comes
    from the SAM heads run on the raw features with the downsampled mask as prompt."""
    m = mask_inputs.float()
    high = m * 20.0 - 10.0
    low = F.interpolate(high, size=(high.size(-2) // 4, high.size(-1) // 4), mode="bilinear",
                        align_corners=False, antialias=True)
    ious = mask_inputs.new_ones(mask_inputs.size(0), 1).float()
    heads = forward_sam_heads(model, backbone_features, None, model.mask_downsample(m), high_res_features,
                              multimask_output=False)
    present = torch.any(mask_inputs.flatten(1).float() > 0.0, dim=1)[..., None].float()
    scores = present * 20.0 - 10.0
    return HeadsOutput(low, high, ious, gate_pointer(model, heads.obj_ptr, present), scores, low, high, ious)
