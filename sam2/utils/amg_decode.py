"""Point prompts -> low-resolution mask logits, and their upsampling, as two separate steps.

``SAM2ImagePredictor._predict`` decodes the prompts and at once upsamples every candidate mask to the
image size. The automatic mask generator discards most candidates on their predicted IoU alone, so it
decodes first (:func:`decode_low_res`), filters, and upsamples only the survivors
(:func:`upscale_logits`). Both steps run the same operations as ``_predict`` on the same inputs, so the
upsampled logits are bit-identical to the ones ``_predict`` returns (tested).

Bilinear upsampling and the optional hole / sprinkle removal treat every mask plane on its own, but
PyTorch's CPU kernel picks its code path (and so its rounding) from the number of channels: with one
thread, planes upsampled as ``(k, 1, h, w)`` differ in the last bit from the same planes upsampled as
``(B, 3, h, w)``. :func:`upscale_logits` therefore regroups a subset into the decoder's own channel count
(3 candidate masks per point, or 1), padding the last group with zero planes, which gives the same bits.
"""

from __future__ import annotations

import torch

LOW_RES_CLAMP = 32.0  # the predictor clamps the low-res logits it returns (used as mask prompts) to +-32


@torch.no_grad()
def decode_low_res(predictor, point_coords: torch.Tensor, point_labels: torch.Tensor,
                   mask_input: torch.Tensor | None = None,
                   multimask_output: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode point prompts (already in the model frame) against the predictor's current image.

    ``point_coords (B, N, 2)``, ``point_labels (B, N)``, optional ``mask_input (B, 1, 256, 256)``.
    Returns the raw (unclamped) low-res logits ``(B, C, 256, 256)`` and the predicted IoU ``(B, C)``,
    ``C`` = 3 with ``multimask_output`` else 1.
    """
    if not predictor._is_image_set:
        raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
    model = predictor.model
    features = predictor._features
    sparse, dense = model.sam_prompt_encoder(points=(point_coords, point_labels), boxes=None, masks=mask_input)
    high_res = [level[-1].unsqueeze(0) for level in features["high_res_feats"]]
    low_res, iou, _, _ = model.sam_mask_decoder(
        image_embeddings=features["image_embed"][-1].unsqueeze(0),
        image_pe=model.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask_output,
        repeat_image=point_coords.shape[0] > 1,
        high_res_features=high_res,
    )
    return low_res, iou


def upscale_logits(predictor, low_res: torch.Tensor, orig_hw: tuple[int, int], channels: int) -> torch.Tensor:
    """Raw low-res logits ``(N, h, w)`` -> image-size logits ``(N, H, W)`` through the predictor's own
    post-processing (optional hole / sprinkle removal, then bilinear upsampling), run on groups of
    ``channels`` planes as the decoder emitted them (see the module docstring)."""
    n, h, w = low_res.shape
    pad = (-n) % channels
    if pad:
        low_res = torch.cat([low_res, low_res.new_zeros(pad, h, w)])
    grouped = low_res.reshape(-1, channels, h, w)
    return predictor._transforms.postprocess_masks(grouped, orig_hw).flatten(0, 1)[:n]
