"""The SAM 2 model: every module and parameter of an official checkpoint, and the image forward.

The tracking logic that uses the memory modules lives in :mod:`sam2.tracking`; this class only
owns the weights (with the official state-dict names) and the per-frame image features.
"""

from __future__ import annotations

import torch
from torch import nn

from sam2.config import ModelConfig
from sam2.modeling.common import MLP
from sam2.modeling.image_encoder import ImageEncoder
from sam2.modeling.mask_decoder import MaskDecoder
from sam2.modeling.memory_attention import MemoryAttention
from sam2.modeling.memory_encoder import MemoryEncoder
from sam2.modeling.prompt_encoder import PromptEncoder
from sam2.utils.non_overlap import apply_non_overlapping_constraints

NUM_FEATURE_LEVELS = 3  # strides 4, 8 and 16 reach the mask decoder


class SAM2Base(nn.Module):
    """All SAM 2 / 2.1 weights. ``forward_image`` runs the image encoder for ``(B, 3, S, S)``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hidden, mem = cfg.hidden_dim, cfg.mem_dim
        t = cfg.tracker
        self.image_size = t.image_size
        self.backbone_stride = t.backbone_stride
        self.hidden_dim, self.mem_dim = hidden, mem
        self.num_maskmem = t.num_maskmem
        self.directly_add_no_mem_embed = True
        self.sam_image_embedding_size = t.image_size // t.backbone_stride

        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(t.num_maskmem, 1, 1, mem))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, hidden))
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem)) if t.no_obj_embed_spatial else None
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc, self.no_obj_ptr,
                  self.no_obj_embed_spatial):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

        self.image_encoder = ImageEncoder(cfg.trunk, cfg.neck)
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.memory_attention = MemoryAttention(cfg.memory_attention)
        self.memory_encoder = MemoryEncoder(cfg.memory_encoder)
        size = self.sam_image_embedding_size
        self.sam_prompt_encoder = PromptEncoder(hidden, (size, size), (t.image_size, t.image_size))
        self.sam_mask_decoder = MaskDecoder(hidden, cfg.decoder)
        self.obj_ptr_proj = MLP(hidden, hidden, hidden, num_layers=3)
        self.obj_ptr_tpos_proj = nn.Linear(hidden, mem) if t.proj_tpos_enc_in_obj_ptrs else nn.Identity()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _apply_non_overlapping_constraints(self, pred_masks: torch.Tensor) -> torch.Tensor:
        """``(N, 1, H, W)`` logits: per pixel only the highest object keeps its logit, the others are
        clamped to at most -10 (official name; ``tools/vos_inference.py`` calls it on the predictor)."""
        return apply_non_overlapping_constraints(pred_masks)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            "SAM2Base has no single forward pass; use SAM2ImagePredictor, SAM2VideoPredictor or "
            "SAM2AutomaticMaskGenerator.")

    def forward_image(self, img_batch: torch.Tensor) -> dict:
        """Image encoder plus the decoder's 1x1 projections of the two high-resolution levels."""
        out = self.image_encoder(img_batch)
        fpn = list(out["backbone_fpn"])
        fpn[0] = self.sam_mask_decoder.conv_s0(fpn[0])
        fpn[1] = self.sam_mask_decoder.conv_s1(fpn[1])
        out["backbone_fpn"] = fpn
        return out

    def _prepare_backbone_features(self, backbone_out: dict):
        """Flatten the last 3 levels to sequence-first ``(H*W, B, C)``.

        Returns ``(backbone_out, vision_feats, vision_pos_embeds, feat_sizes)``.
        """
        backbone_out = backbone_out.copy()
        fpn = backbone_out["backbone_fpn"][-NUM_FEATURE_LEVELS:]
        pos = backbone_out["vision_pos_enc"][-NUM_FEATURE_LEVELS:]
        feat_sizes = [(x.shape[-2], x.shape[-1]) for x in pos]
        vision_feats = [x.flatten(2).permute(2, 0, 1) for x in fpn]
        vision_pos_embeds = [x.flatten(2).permute(2, 0, 1) for x in pos]
        return backbone_out, vision_feats, vision_pos_embeds, feat_sizes
