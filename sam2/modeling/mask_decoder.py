"""Mask decoder: output tokens + prompt tokens -> mask logits, IoU scores and object score."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sam2.config import DecoderOptions
from sam2.modeling.common import MLP, LayerNorm2d, batch_shared
from sam2.modeling.transformer import TwoWayTransformer

NUM_MASK_TOKENS = 4  # token 0 = single mask, tokens 1-3 = multimask candidates
IOU_HEAD_HIDDEN = 256


@dataclass
class DecoderOutput:
    """``masks (B, M, 4h, 4w)`` logits, ``iou (B, M)``, ``tokens (B, M', C)`` (the mask tokens
    used for object pointers) and ``object_score_logits (B, 1)``; M = 3 or 1."""

    masks: torch.Tensor
    iou: torch.Tensor
    tokens: torch.Tensor
    object_score_logits: torch.Tensor

    def __iter__(self):  # official call sites unpack a 4-tuple
        return iter((self.masks, self.iou, self.tokens, self.object_score_logits))


class MaskDecoder(nn.Module):
    """SAM 2 mask decoder with high-resolution skip features and an object-score head."""

    def __init__(self, dim: int, options: DecoderOptions = DecoderOptions()) -> None:
        super().__init__()
        self.transformer_dim = dim
        self.options = options
        self.transformer = TwoWayTransformer(dim)
        self.iou_token = nn.Embedding(1, dim)
        self.num_mask_tokens = NUM_MASK_TOKENS
        self.mask_tokens = nn.Embedding(NUM_MASK_TOKENS, dim)
        self.obj_score_token = nn.Embedding(1, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.conv_s0 = nn.Conv2d(dim, dim // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(dim, dim // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, num_layers=3) for _ in range(NUM_MASK_TOKENS))
        self.iou_prediction_head = MLP(dim, IOU_HEAD_HIDDEN, NUM_MASK_TOKENS, num_layers=3, sigmoid_output=True)
        self.pred_obj_score_head = MLP(dim, dim, 1, num_layers=3)

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                sparse_prompt_embeddings: torch.Tensor, dense_prompt_embeddings: torch.Tensor,
                multimask_output: bool, repeat_image: bool,
                high_res_features: list[torch.Tensor] | None = None) -> DecoderOutput:
        """``image_embeddings (1 or B, C, h, w)``, ``image_pe (1, C, h, w)``, sparse ``(B, N, C)``,
        dense ``(B, C, h, w)``, ``high_res_features`` = [(.., C/8, 4h, 4w), (.., C/4, 2h, 2w)]."""
        masks, iou, mask_tokens, scores = self.predict_masks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
            repeat_image, high_res_features)
        if multimask_output:
            out_masks, out_iou = masks[:, 1:], iou[:, 1:]
        elif self.options.dynamic_multimask_via_stability and not self.training:
            out_masks, out_iou = self._dynamic_multimask_via_stability(masks, iou)
        else:
            out_masks, out_iou = masks[:, 0:1], iou[:, 0:1]
        tokens = mask_tokens[:, 1:] if multimask_output else mask_tokens[:, 0:1]
        return DecoderOutput(out_masks, out_iou, tokens, scores)

    def predict_masks(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                      sparse: torch.Tensor, dense: torch.Tensor, repeat_image: bool,
                      high_res_features: list[torch.Tensor] | None):
        """All 4 masks ``(B, 4, 4h, 4w)``, IoU ``(B, 4)``, mask tokens ``(B, 4, C)``, scores ``(B, 1)``."""
        output_tokens = torch.cat(
            [self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
        tokens = torch.cat((output_tokens, sparse), dim=1)
        batch = tokens.shape[0]
        if repeat_image and image_embeddings.shape[0] == 1 and (dense.shape[0] == 1 or batch_shared(dense)):
            # one image and one dense embedding (no mask prompt): the same sum for every prompt, broadcast
            src = (image_embeddings + dense[:1]).expand(batch, -1, -1, -1)
        else:
            if repeat_image:
                src = torch.repeat_interleave(image_embeddings, batch, dim=0)
            elif image_embeddings.shape[0] != batch:
                raise ValueError(f"image batch {image_embeddings.shape[0]} != prompt batch {batch}")
            else:
                src = image_embeddings
            src = src + dense
        if image_pe.size(0) != 1:
            raise ValueError("image_pe should have size 1 in batch dim (from `get_dense_pe()`)")
        pos_src = image_pe.expand(batch, -1, -1, -1)
        b, c, h, w = src.shape
        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, 1, :]
        mask_tokens_out = hs[:, 2:2 + NUM_MASK_TOKENS, :]

        src = src.transpose(1, 2).view(b, c, h, w)
        up1, norm1, act1, up2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        upscaled = act1(norm1(up1(src) + feat_s1))
        upscaled = act2(up2(upscaled) + feat_s0)
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        iou_pred = self.iou_prediction_head(iou_token_out)
        object_score_logits = self.pred_obj_score_head(hs[:, 0, :])
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def _stability_scores(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """IoU between the masks thresholded at +delta and -delta: ``(B, M, H, W)`` -> ``(B, M)``."""
        delta = self.options.dynamic_multimask_stability_delta
        flat = mask_logits.flatten(-2)
        inter = torch.sum(flat > delta, dim=-1).float()
        union = torch.sum(flat > -delta, dim=-1).float()
        return torch.where(union > 0, inter / union, 1.0)

    def _dynamic_multimask_via_stability(self, masks: torch.Tensor, iou: torch.Tensor):
        """Single-mask output that falls back to the best multimask candidate when token 0 is unstable."""
        multi_masks, multi_iou = masks[:, 1:], iou[:, 1:]
        best = torch.argmax(multi_iou, dim=-1)
        rows = torch.arange(multi_iou.size(0), device=iou.device)
        best_masks = multi_masks[rows, best].unsqueeze(1)
        best_iou = multi_iou[rows, best].unsqueeze(1)
        single_masks, single_iou = masks[:, 0:1], iou[:, 0:1]
        stable = self._stability_scores(single_masks) >= self.options.dynamic_multimask_stability_thresh
        out_masks = torch.where(stable[..., None, None].expand_as(single_masks), single_masks, best_masks)
        out_iou = torch.where(stable.expand_as(single_iou), single_iou, best_iou)
        return out_masks, out_iou
