"""Axial rotary position embedding (RoPE) for tokens laid out on a 2-D grid.

A head of width ``D`` is viewed as ``D / 2`` complex numbers (channel pairs ``(2m, 2m + 1)``).
The first ``D / 4`` pairs rotate with the token's column ``x``, the last ``D / 4`` with its row
``y``; both halves use the frequencies ``theta ** (-4 j / D)``, ``j = 0 .. D/4 - 1``.
Token ``n`` of a grid ``end_x`` wide sits at ``x = n % end_x``, ``y = n // end_x``.
"""

from __future__ import annotations

import torch


def axial_frequencies(dim: int, theta: float) -> torch.Tensor:
    """``(dim // 4,)`` float32 angular frequencies of one axis."""
    exponents = torch.arange(dim // 4, dtype=torch.float32) * 4 / dim
    return 1.0 / (theta**exponents)


def compute_axial_cis(dim: int, end_x: int, end_y: int, theta: float = 10000.0) -> torch.Tensor:
    """Unit rotations of an ``end_x`` x ``end_y`` grid: complex64 ``(end_x * end_y, dim // 2)``.

    Angles are formed in float32 (position times frequency) and turned into ``cos + i sin``.
    """
    if dim % 4 != 0:
        raise ValueError(f"RoPE head dim must be a multiple of 4, got {dim}")
    index = torch.arange(end_x * end_y, dtype=torch.float32)
    cols = index % end_x
    rows = torch.div(index, end_x, rounding_mode="floor")
    freqs = axial_frequencies(dim, theta)
    angle_x = torch.outer(cols, freqs)
    angle_y = torch.outer(rows, freqs)
    cis_x = torch.polar(torch.ones_like(angle_x), angle_x)
    cis_y = torch.polar(torch.ones_like(angle_y), angle_y)
    return torch.cat([cis_x, cis_y], dim=-1)


def rotate(x: torch.Tensor, cis: torch.Tensor) -> torch.Tensor:
    """Rotate ``x (..., N, D)`` by ``cis (N, D / 2)`` in float32; returns ``x``'s dtype."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * cis).flatten(-2).type_as(x)


def tile_cis(cis: torch.Tensor, repeats: int) -> torch.Tensor:
    """``(N, D / 2)`` -> ``(repeats * N, D / 2)``: the table repeated along the sequence."""
    return cis.unsqueeze(0).expand(repeats, -1, -1).flatten(0, 1)


def apply_rotary_enc(q: torch.Tensor, k: torch.Tensor, cis: torch.Tensor,
                     repeat_freqs_k: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate queries ``(B, heads, Nq, D)`` and keys ``(B, heads, Nk, D)`` by ``cis (Nq, D / 2)``.

    With ``repeat_freqs_k`` the keys are ``Nk / Nq`` stacked copies of the query grid, each
    rotated like the queries. Empty keys (``Nk == 0``) are returned unchanged.
    """
    q_out = rotate(q, cis)
    n_q, n_k = q.shape[-2], k.shape[-2]
    if n_k == 0:
        return q_out, k
    if repeat_freqs_k:
        if n_k % n_q != 0:
            raise ValueError(f"{n_k} keys are not a whole number of {n_q}-token grids")
        cis = tile_cis(cis, n_k // n_q)
    elif n_k != n_q:
        raise ValueError(f"{n_k} keys need repeat_freqs_k to match {n_q} queries")
    return q_out, rotate(k, cis)
