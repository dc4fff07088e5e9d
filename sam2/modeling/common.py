"""Small building blocks shared by several modules: MLP, LayerNorm2d, multi-head attention, table caches."""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch
import torch.nn.functional as F
from torch import nn


def cached_table(cache: dict, key: Hashable, build: Callable[[], torch.Tensor],
                 max_entries: int | None = None) -> torch.Tensor:
    """``cache[key]``, made by ``build()`` on a miss. While compiling the cache is neither read nor
    written (a dict changed inside a compiled graph fails its guards and the graph is compiled again).
    With ``max_entries`` the cache is emptied before it would hold more."""
    if torch.compiler.is_compiling():
        return build()
    table = cache.get(key)
    if table is None:
        if max_entries is not None and len(cache) >= max_entries:
            cache.clear()
        table = cache[key] = build()
    return table


class MLP(nn.Module):
    """``num_layers`` Linear layers with an activation between them (keys ``layers.{k}``)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int,
                 activation: type[nn.Module] = nn.ReLU, sigmoid_output: bool = False) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims_in, dims_out))
        self.act = activation()
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """Normalise each pixel of a ``(B, C, H, W)`` map over its ``C`` channels, then scale and shift
    per channel (``weight``, ``bias``: ``(C,)``). Written out instead of ``F.layer_norm`` so that the
    channel axis stays where it is."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=1, keepdim=True)
        spread = (centred.square().mean(dim=1, keepdim=True) + self.eps).sqrt()  # (B, 1, H, W)
        per_channel = (-1, 1, 1)
        return (centred / spread) * self.weight.view(per_channel) + self.bias.view(per_channel)


def batch_shared(x: torch.Tensor) -> bool:
    """True when ``x (B, ...)``, ``B > 1``, is one row broadcast over the batch (batch stride 0, as left by
    ``expand``): whatever is computed per row from it alone is the same for every row."""
    return x.dim() > 1 and x.shape[0] > 1 and x.stride(0) == 0


def project(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``linear(x)`` for ``x (B, N, C)``; a batch-shared ``x`` is projected once and broadcast again."""
    if batch_shared(x):
        return linear(x[:1]).expand(x.shape[0], *x.shape[1:-1], -1)
    return linear(x)


def add_shared(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b`` for two tensors of one shape; when both are batch-shared, added once and broadcast."""
    if batch_shared(a) and batch_shared(b) and a.shape == b.shape:
        return (a[:1] + b[:1]).expand_as(a)
    return a + b


class Attention(nn.Module):
    """Multi-head attention with optional channel downsampling.

    ``q (B, Nq, C)``, ``k (B, Nk, Ckv)``, ``v (B, Nk, Ckv)`` -> ``(B, Nq, C)``; the internal width
    is ``C / downsample_rate``, split into ``num_heads`` heads.
    """

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1,
                 dropout: float = 0.0, kv_in_dim: int | None = None) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.kv_in_dim = kv_in_dim if kv_in_dim is not None else embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads != 0:
            raise ValueError("num_heads must divide embedding_dim.")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.dropout_p = dropout

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, C)`` -> ``(B, heads, N, C / heads)``."""
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, heads, N, c)`` -> ``(B, N, heads * c)``."""
        b, h, n, c = x.shape
        return x.transpose(1, 2).reshape(b, n, h * c)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        p = self.dropout_p if self.training else 0.0
        return self.out_proj(self.merge_heads(F.scaled_dot_product_attention(q, k, v, dropout_p=p)))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = self.split_heads(project(self.q_proj, q))
        k = self.split_heads(project(self.k_proj, k))
        v = self.split_heads(project(self.v_proj, v))
        return self.attend(q, k, v)
