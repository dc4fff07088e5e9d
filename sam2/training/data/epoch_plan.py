"""The batches of one epoch on one rank, as pure index arithmetic (no data is read here).

Per dataset, as the official ``RepeatFactorWrapper`` + ``DistributedSampler`` + ``BatchSampler``:

1. repeat factors: index ``i`` appears ``floor(r) + [u_i < r - floor(r)]`` times, ``u = torch.rand`` from a
   generator seeded ``seed + epoch`` (``r`` = ``multiplier``), listed in index order;
2. shuffle that list with ``torch.randperm`` from a generator seeded ``seed + epoch`` (same on all ranks),
   pad it by repeating its head to a multiple of ``world_size``, and take ``rank::world_size``;
3. cut the rank's list into batches of ``batch_size`` (the last, short one dropped with ``drop_last``).

Datasets are interleaved as the official ``MixedDataLoader``: each step draws a dataset with
probabilities proportional to its number of batches (or ``dataset_prob``) from a generator seeded
``42 + seed`` at the start of every epoch; a drawn dataset with no batch left gets probability 0.
Every sample is identified by its position in the list of step 1, which seeds its random draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

MIXING_SEED = 42


@dataclass(frozen=True)
class PlannedBatch:
    """One batch: its dataset and, per sample, (position in the epoch's repeated list, dataset item)."""

    dataset: int
    positions: tuple[int, ...]
    items: tuple[int, ...]


def repeated_indices(num_items: int, multiplier: float, seed: int, epoch: int) -> torch.Tensor:
    """Dataset indices of one epoch after repeat factors, in index order (1-D int64)."""
    whole = math.floor(multiplier)
    frac = multiplier - whole
    g = torch.Generator().manual_seed(seed + epoch)
    draws = torch.rand(num_items, generator=g)
    counts = whole + (draws < frac).long()
    return torch.repeat_interleave(torch.arange(num_items), counts)


def rank_positions(total: int, shuffle: bool, seed: int, epoch: int, rank: int, world_size: int) -> list[int]:
    """Positions (into a list of ``total``) taken by ``rank``, padded like ``DistributedSampler``."""
    if total == 0:
        return []
    if shuffle:
        order = torch.randperm(total, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    else:
        order = list(range(total))
    padded_total = math.ceil(total / world_size) * world_size
    pad = padded_total - total
    order += (order * math.ceil(pad / total))[:pad]
    return order[rank:padded_total:world_size]


def dataset_batches(dataset: int, num_items: int, multiplier: float, batch_size: int, shuffle: bool,
                    drop_last: bool, seed: int, epoch: int, rank: int, world_size: int) -> list[PlannedBatch]:
    repeated = repeated_indices(num_items, multiplier, seed, epoch)
    positions = rank_positions(len(repeated), shuffle, seed, epoch, rank, world_size)
    stop = len(positions) - len(positions) % batch_size if drop_last else len(positions)
    batches = []
    for start in range(0, stop, batch_size):
        chunk = positions[start:start + batch_size]
        batches.append(PlannedBatch(dataset, tuple(chunk), tuple(int(repeated[p]) for p in chunk)))
    return batches


def mixing_order(batch_counts: Sequence[int], dataset_prob: Sequence[float] | None, seed: int) -> list[int]:
    """The dataset of every step of the epoch (``sum(batch_counts)`` steps at most)."""
    if dataset_prob is None:
        total = sum(batch_counts)
        prob = torch.tensor([c / total if total else 0.0 for c in batch_counts], dtype=torch.float64)
    else:
        prob = torch.tensor(list(dataset_prob), dtype=torch.float64)
    left = list(batch_counts)
    g = torch.Generator().manual_seed(MIXING_SEED + seed)
    order: list[int] = []
    while bool((prob > 0).any()):
        d = int(torch.multinomial(prob, 1, generator=g).item())
        if left[d] == 0:
            prob[d] = 0.0
            continue
        left[d] -= 1
        order.append(d)
    return order


def plan_epoch(num_items: Sequence[int], multipliers: Sequence[float], batch_sizes: Sequence[int], *,
               shuffle: bool, drop_last: bool, dataset_prob: Sequence[float] | None, seed: int, epoch: int,
               rank: int, world_size: int) -> list[PlannedBatch]:
    """All batches of ``epoch`` on ``rank``, in the order they are served."""
    per_dataset = [dataset_batches(d, n, m, b, shuffle, drop_last, seed, epoch, rank, world_size)
                   for d, (n, m, b) in enumerate(zip(num_items, multipliers, batch_sizes, strict=True))]
    if len(per_dataset) == 1:
        return per_dataset[0]
    cursors = [0] * len(per_dataset)
    plan = []
    for d in mixing_order([len(b) for b in per_dataset], dataset_prob, seed):
        plan.append(per_dataset[d][cursors[d]])
        cursors[d] += 1
    return plan
