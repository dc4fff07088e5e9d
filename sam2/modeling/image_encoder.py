"""Image encoder: Hiera trunk + FPN neck, returning multi-scale features and their positions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sam2.config import HieraConfig, NeckConfig
from sam2.modeling.hiera import Hiera
from sam2.modeling.position_encoding import PositionEmbeddingSine

# Levels (0 = highest resolution) that receive the upsampled coarser map in the FPN.
TOP_DOWN_LEVELS = (2, 3)


class _LateralConv(nn.Sequential):
    """1x1 lateral convolution, stored as ``convs.{j}.conv`` like the official checkpoints."""

    def __init__(self, in_channels: int, d_model: int) -> None:
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_channels, d_model, kernel_size=1))


class FpnNeck(nn.Module):
    """Projects the 4 trunk maps to ``d_model`` channels; the stride-16 level also gets the
    nearest-upsampled stride-32 level added. ``convs[0]`` takes the deepest map."""

    def __init__(self, cfg: NeckConfig, backbone_channel_list: list[int]) -> None:
        super().__init__()
        self.position_encoding = PositionEmbeddingSine(cfg.d_model)
        self.convs = nn.ModuleList(_LateralConv(c, cfg.d_model) for c in backbone_channel_list)

    def forward(self, xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        n = len(self.convs) - 1
        out: list[torch.Tensor] = [None] * (n + 1)  # type: ignore[list-item]
        pos: list[torch.Tensor] = [None] * (n + 1)  # type: ignore[list-item]
        prev = None
        for i in range(n, -1, -1):
            lateral = self.convs[n - i](xs[i])
            if i in TOP_DOWN_LEVELS and prev is not None:
                top_down = F.interpolate(prev.to(torch.float32), scale_factor=2.0, mode="nearest")
                prev = lateral + top_down
            else:
                prev = lateral
            out[i] = prev
            pos[i] = self.position_encoding(prev).to(prev.dtype)
        return out, pos


class ImageEncoder(nn.Module):
    """``(B, 3, S, S)`` -> dict with ``backbone_fpn`` (3 maps, strides 4/8/16), ``vision_pos_enc``
    (their sine encodings) and ``vision_features`` (the stride-16 map). The stride-32 level is
    dropped after the FPN (``scalp = 1`` in every official config)."""

    def __init__(self, trunk_cfg: HieraConfig, neck_cfg: NeckConfig) -> None:
        super().__init__()
        self.trunk = Hiera(trunk_cfg)
        self.neck = FpnNeck(neck_cfg, self.trunk.channel_list)

    def forward(self, x: torch.Tensor) -> dict:
        features, pos = self.neck(self.trunk(x))
        features, pos = features[:-1], pos[:-1]
        return {"vision_features": features[-1], "vision_pos_enc": pos, "backbone_fpn": features}
