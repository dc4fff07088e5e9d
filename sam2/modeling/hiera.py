"""Hiera image trunk: windowed multi-scale attention blocks with query pooling between stages.

Tensors inside the trunk are channels-last ``(B, H, W, C)``; the outputs are ``(B, C, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from sam2.config import HieraConfig
from sam2.modeling.common import MLP


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(B, H, W, C)`` -> ``(B * nWin, window, window, C)`` after zero-padding H, W to multiples."""
    b, h, w, c = x.shape
    pad_h, pad_w = (window - h % window) % window, (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


def window_unpartition(windows: torch.Tensor, window: int, padded_hw: tuple[int, int],
                       hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`, cropped to ``hw``: -> ``(B, H, W, C)``."""
    hp, wp = padded_hw
    h, w = hw
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.reshape(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w, :] if (hp > h or wp > w) else x


def pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling of a channels-last map ``(B, H, W, C)`` -> ``(B, H/2, W/2, C)`` (odd edges dropped).

    A contiguous map goes through ``max_pool2d`` (its channels-last kernel, no copy). A strided one (the
    queries inside the attention's qkv output) without autograd takes the maximum of its four strided
    quarters instead: the same values (NaN propagates in both), without the layout copies ``max_pool2d``
    would make. With autograd ``max_pool2d`` is kept, whose gradient goes to one element of a tie."""
    if x.requires_grad or x.is_contiguous():
        return F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=2, stride=2).permute(0, 2, 3, 1)
    x = x[:, : x.shape[1] // 2 * 2, : x.shape[2] // 2 * 2]
    top = torch.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2])
    return torch.maximum(top, torch.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2]))


def add_windows(shortcut: torch.Tensor, windows: torch.Tensor, window: int) -> torch.Tensor | None:
    """``shortcut (B, H, W, C) + window_unpartition(windows)`` in one pass, when no padding was added
    (``H``, ``W`` multiples of ``window``) and ``shortcut`` is contiguous; ``None`` otherwise.

    The windows ``(B * nWin, window, window, C)`` are read through a strided view, so the unpartitioned
    copy is never written; each element is the same single addition as before."""
    b, h, w, c = shortcut.shape
    if h % window or w % window or not shortcut.is_contiguous():
        return None
    nh, nw = h // window, w // window
    grid = windows.view(b, nh, nw, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return (shortcut.view(b, nh, window, nw, window, c) + grid).view(b, h, w, c)


class PatchEmbed(nn.Module):
    """7x7 / stride 4 convolution: ``(B, 3, H, W)`` -> ``(B, H/4, W/4, C)``."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Self-attention inside windows; optionally max-pools the queries 2x2 (stage transitions)."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, pool_queries: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.pool_queries = pool_queries
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        q, k, v = torch.unbind(self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1), 2)
        if self.pool_queries:
            q = pool_2x2(q.reshape(b, h, w, -1))
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


def stochastic_depth(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero whole samples of a residual branch ``(B, ...)`` with probability ``p`` in training and
    rescale the kept ones by ``1 / (1 - p)``; identity otherwise."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block; the first block of a stage widens channels and halves H, W.

    ``drop_path`` is the stochastic-depth probability of both residual branches (training only).
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, window_size: int, pool_queries: bool,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.drop_path = drop_path
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.pool_queries = pool_queries
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, pool_queries)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, 4 * dim_out, dim_out, num_layers=2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = pool_2x2(self.proj(x))
        window = self.window_size
        h, w = x.shape[1:3]
        if window > 0:
            x, padded_hw = window_partition(x, window)
        x = self.attn(x)
        if self.pool_queries and window > 0:
            window //= 2
            h, w = shortcut.shape[1:3]
            padded_hw = (h + (window - h % window) % window, w + (window - w % window) % window)
        summed = None
        if window > 0 and not (self.training and self.drop_path > 0):
            summed = add_windows(shortcut, x, window)
        if summed is not None:
            x = summed
        else:
            if window > 0:
                x = window_unpartition(x, window, padded_hw, (h, w))
            x = shortcut + stochastic_depth(x, self.drop_path, self.training)
        return x + stochastic_depth(self.mlp(self.norm2(x)), self.drop_path, self.training)


class Hiera(nn.Module):
    """Hierarchical trunk: ``(B, 3, S, S)`` -> 4 maps ``(B, E * 2^i, S / 2^(i+2), S / 2^(i+2))``.

    ``activation_checkpointing = True`` recomputes each block's activations during the backward pass
    instead of storing them (less memory, one extra block forward); it acts only in training mode with
    gradients enabled and does not change any number.
    """

    def __init__(self, cfg: HieraConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stage_ends = cfg.stage_ends
        pool_blocks = [end + 1 for end in self.stage_ends[:-1]][: cfg.q_pool]
        self.patch_embed = PatchEmbed(cfg.embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.embed_dim, *cfg.window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(
            torch.zeros(1, cfg.embed_dim, cfg.window_spec[0], cfg.window_spec[0]))
        dim, heads, stage = cfg.embed_dim, cfg.num_heads, 1
        # stochastic depth grows linearly from 0 (first block) to drop_path_rate (last block)
        drop_rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        blocks = []
        for i in range(cfg.depth):
            window = cfg.window_spec[stage - 1]
            if i in cfg.global_att_blocks:
                window = 0
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out, heads, stage = dim * 2, heads * 2, stage + 1
            blocks.append(MultiScaleBlock(dim, dim_out, heads, window, pool_queries=i in pool_blocks,
                                          drop_path=drop_rates[i]))
            dim = dim_out
        self.blocks = nn.ModuleList(blocks)
        self.channel_list = cfg.channel_list
        self.activation_checkpointing = False
        self._pos_cache: dict = {}

    def _pos_embed(self, hw: tuple[int, int]) -> torch.Tensor:
        """Background embedding resized to ``hw`` plus the tiled window embedding: contiguous ``(1, H, W, E)``.

        Without autograd the table is kept per size, device and dtype, and rebuilt when either parameter
        is replaced or changed in place (its storage or version counter moves); never while compiling."""
        cacheable = not torch.is_grad_enabled() and not torch.compiler.is_compiling()
        if cacheable:
            params = (self.pos_embed, self.pos_embed_window)
            key = (tuple(hw), str(self.pos_embed.device), self.pos_embed.dtype,
                   tuple((p.data_ptr(), p._version) for p in params))
            if self._pos_cache.get("key") == key:
                return self._pos_cache["table"]
        bg = F.interpolate(self.pos_embed, size=hw, mode="bicubic")
        win = self.pos_embed_window
        bg = bg + win.tile([a // b for a, b in zip(bg.shape, win.shape)])
        table = bg.permute(0, 2, 3, 1).contiguous()
        if cacheable:
            self._pos_cache = {"key": key, "table": table}
        return table

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        # the contiguous table first: the sum is laid out like it (channels-last, contiguous), which spares
        # the blocks' layer norms a copy of the strided convolution output
        x = self._pos_embed(x.shape[1:3]) + x
        outputs = []
        checkpointed = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            if checkpointed:
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
