"""Score and binarise the candidate masks of the automatic mask generator, a few at a time.

The straightforward pipeline (the official one) upsamples every candidate of a point batch to the image
size at once — 192 float planes of ``H x W`` for 64 points, over a gigabyte for a 1500x1000 image — and
then makes three passes over them (two stability thresholds, then the mask threshold). Here candidates
are upsampled in chunks (a tenth of that memory), each chunk is scored and binarised right away, and only
the boolean masks of the candidates that pass the stability filter are kept. Every mask plane is computed
by the same operations as before, so scores and masks are identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sam2.utils.amg import calculate_stability_score

CHUNK_BYTES = 128 * 2**20  # float32 logits upsampled at once (~20 planes of 1500x1000: threads stay busy)


@dataclass
class ScoredMasks:
    """Candidates that passed the stability filter.

    ``index (K,)`` int64 rows of the input candidates, in input order; ``stability_score (K,)`` float32;
    ``masks (K, H, W)`` bool (``logits > mask_threshold``).
    """

    index: torch.Tensor
    stability_score: torch.Tensor
    masks: torch.Tensor


def chunk_size(height: int, width: int, group: int = 1, chunk_bytes: int = CHUNK_BYTES) -> int:
    """How many ``(H, W)`` float32 planes fit in ``chunk_bytes``, rounded down to a multiple of ``group``
    (at least ``group``)."""
    planes = chunk_bytes // max(1, 4 * height * width)
    return max(group, planes - planes % group)


def score_and_binarize(low_res: torch.Tensor, upscale: Callable[[torch.Tensor], torch.Tensor],
                       mask_threshold: float, stability_offset: float, stability_thresh: float,
                       out_hw: tuple[int, int], group: int = 1, chunk: int | None = None) -> ScoredMasks:
    """Upsample, score and threshold raw low-res logits ``(N, h, w)`` chunk by chunk.

    ``upscale`` maps ``(k, h, w)`` logits to ``(k, H, W)`` with ``out_hw = (H, W)``; chunks hold a multiple
    of ``group`` candidates (``upscale`` works on groups of that many planes). The stability
    score is :func:`calculate_stability_score` of the upsampled logits; candidates with a score below
    ``stability_thresh`` are dropped when ``stability_thresh > 0`` (as the generator's filter does).
    """
    height, width = out_hw
    n = low_res.shape[0]
    step = chunk if chunk is not None else chunk_size(height, width, group)
    device = low_res.device
    indices, scores, masks = [], [], []
    for start in range(0, n, step):
        logits = upscale(low_res[start:start + step])
        score = calculate_stability_score(logits, mask_threshold, stability_offset)
        rows = torch.arange(start, start + logits.shape[0], device=device)
        if stability_thresh > 0.0:
            passed = score >= stability_thresh
            if not bool(passed.any()):
                continue
            if not bool(passed.all()):
                logits, score, rows = logits[passed], score[passed], rows[passed]
        indices.append(rows)
        scores.append(score)
        masks.append(logits > mask_threshold)
    if not indices:
        return ScoredMasks(torch.zeros(0, dtype=torch.int64, device=device),
                           torch.zeros(0, dtype=torch.float32, device=device),
                           torch.zeros(0, height, width, dtype=torch.bool, device=device))
    return ScoredMasks(torch.cat(indices), torch.cat(scores), torch.cat(masks))
