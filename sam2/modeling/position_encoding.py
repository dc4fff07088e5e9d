"""Position encodings: 2-D sine encoding of feature maps and random-Fourier encoding of points."""

from __future__ import annotations

import math

import torch
from torch import nn

from sam2.modeling.common import cached_table


class PositionEmbeddingSine(nn.Module):
    """Normalized 2-D sine/cosine encoding of a feature map.

    ``(B, C, H, W)`` -> ``(B, num_pos_feats, H, W)``: the first half of the channels encodes the
    row, the second half the column; channel ``2j`` is a sine and ``2j + 1`` the cosine of the
    same frequency. Coordinates are 1-based and scaled to ``(0, 2*pi]``.
    """

    def __init__(self, num_pos_feats: int, temperature: int = 10000) -> None:
        super().__init__()
        if num_pos_feats % 2 != 0:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        self.num_pos_feats = num_pos_feats // 2
        self.temperature = temperature
        self.scale = 2 * math.pi
        self._cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def _encode_axis(self, coords: torch.Tensor) -> torch.Tensor:
        """``(..., 1)`` float coordinates -> ``(..., num_pos_feats)`` interleaved sin/cos."""
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=coords.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        pos = coords / dim_t
        return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)

    def _grid(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """``(num_pos_feats, h, w)`` encoding of an ``h x w`` grid."""
        eps = 1e-6
        rows = torch.arange(1, h + 1, dtype=torch.float32, device=device)
        cols = torch.arange(1, w + 1, dtype=torch.float32, device=device)
        y = (rows / (h + eps) * self.scale).view(h, 1, 1).expand(h, w, 1)
        xx = (cols / (w + eps) * self.scale).view(1, w, 1).expand(h, w, 1)
        return torch.cat((self._encode_axis(y), self._encode_axis(xx)), dim=-1).permute(2, 0, 1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        pos = cached_table(self._cache, (h, w, str(x.device)), lambda: self._grid(h, w, x.device))
        return pos[None].expand(b, -1, -1, -1)


class PositionEmbeddingRandom(nn.Module):
    """Random-Fourier encoding of normalized (x, y) coordinates (SAM prompt encoder).

    The ``(2, num_pos_feats)`` Gaussian matrix is a checkpoint buffer.
    """

    def __init__(self, num_pos_feats: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def _pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        """``(..., 2)`` in [0, 1] -> ``(..., 2 * num_pos_feats)`` (sines then cosines)."""
        coords = 2 * coords - 1
        coords = coords @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Dense encoding of an ``(h, w)`` grid of cell centres -> ``(C, h, w)``."""
        h, w = size
        grid = torch.ones((h, w), device=self.positional_encoding_gaussian_matrix.device, dtype=torch.float32)
        y = (grid.cumsum(dim=0) - 0.5) / h
        x = (grid.cumsum(dim=1) - 0.5) / w
        return self._pe_encoding(torch.stack([x, y], dim=-1)).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Pixel coordinates ``(B, N, 2)`` in an ``(H, W)`` frame -> ``(B, N, C)``."""
        coords = coords.clone()
        coords[:, :, 0] = coords[:, :, 0] / image_size[1]
        coords[:, :, 1] = coords[:, :, 1] / image_size[0]
        return self._pe_encoding(coords.to(torch.float))
