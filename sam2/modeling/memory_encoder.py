"""Memory encoder: fuses a frame's image features with its predicted mask into a memory.

The mask (``(B, 1, 1024, 1024)``) is downsampled 16x by strided convolutions, added to the
projected image features (``(B, in_dim, 64, 64)``), refined by ConvNeXt blocks and projected to
``out_dim`` channels; a sine position encoding of the result is returned alongside.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sam2.config import MemoryEncoderConfig
from sam2.modeling.common import LayerNorm2d
from sam2.modeling.position_encoding import PositionEmbeddingSine

DOWNSAMPLE_KERNEL = 3
DOWNSAMPLE_STRIDE = 2
DOWNSAMPLE_PADDING = 1
DOWNSAMPLE_TOTAL_STRIDE = 16
CX_KERNEL = 7
CX_PADDING = 3
CX_LAYER_SCALE_INIT = 1e-6


class MaskDownSampler(nn.Module):
    """``(B, 1, H, W)`` -> ``(B, embed_dim, H / 16, W / 16)``.

    Four (conv 3x3 stride 2, LayerNorm2d, GELU) stages widen 1 -> 4 -> 16 -> 64 -> 256 channels,
    then a 1x1 conv maps to ``embed_dim`` (keys ``encoder.{0,1,3,4,6,7,9,10,12}``).
    """

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential()
        channels, stride = 1, 1
        while stride < DOWNSAMPLE_TOTAL_STRIDE:
            out_channels = channels * DOWNSAMPLE_STRIDE**2
            self.encoder.append(nn.Conv2d(channels, out_channels, DOWNSAMPLE_KERNEL,
                                          DOWNSAMPLE_STRIDE, DOWNSAMPLE_PADDING))
            self.encoder.append(LayerNorm2d(out_channels))
            self.encoder.append(nn.GELU())
            channels, stride = out_channels, stride * DOWNSAMPLE_STRIDE
        self.encoder.append(nn.Conv2d(channels, embed_dim, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block ``(B, C, H, W)`` -> ``(B, C, H, W)``.

    Depthwise 7x7 conv, LayerNorm2d, Linear C -> 4C, GELU, Linear 4C -> C, per-channel scale
    ``gamma``, residual.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=CX_KERNEL, padding=CX_PADDING, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), CX_LAYER_SCALE_INIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(y)))
        y = (self.gamma * y).permute(0, 3, 1, 2)
        return x + y


class Fuser(nn.Module):
    """``num_layers`` :class:`CXBlock` applied in order (keys ``layers.{i}``)."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """``pix_feat (B, in_dim, h, w)`` + ``masks (B, 1, 16h, 16w)`` -> memory ``(B, out_dim, h, w)``."""

    def __init__(self, cfg: MemoryEncoderConfig) -> None:
        super().__init__()
        if cfg.downsampler_embed_dim != cfg.in_dim:
            raise ValueError(f"mask downsampler width {cfg.downsampler_embed_dim} must equal "
                             f"in_dim {cfg.in_dim} (its output is added to the image features)")
        self.mask_downsampler = MaskDownSampler(cfg.downsampler_embed_dim)
        self.pix_feat_proj = nn.Conv2d(cfg.in_dim, cfg.in_dim, kernel_size=1)
        self.fuser = Fuser(cfg.in_dim, cfg.fuser_num_layers)
        self.position_encoding = PositionEmbeddingSine(cfg.out_dim)
        self.out_proj = nn.Conv2d(cfg.in_dim, cfg.out_dim, kernel_size=1)

    def forward(self, pix_feat: torch.Tensor, masks: torch.Tensor,
                skip_mask_sigmoid: bool = False) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Returns ``{"vision_features": (B, out_dim, h, w), "vision_pos_enc": [(B, out_dim, h, w)]}``.

        ``masks`` are logits passed through a sigmoid unless ``skip_mask_sigmoid`` (the tracker
        passes already scaled probabilities).
        """
        if not skip_mask_sigmoid:
            masks = F.sigmoid(masks)
        masks = self.mask_downsampler(masks)
        x = self.pix_feat_proj(pix_feat.to(masks.device)) + masks
        x = self.out_proj(self.fuser(x))
        pos = self.position_encoding(x).to(x.dtype)
        return {"vision_features": x, "vision_pos_enc": [pos]}
