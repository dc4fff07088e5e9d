"""Collate samples of one dataset into a :class:`VideoBatch` (the official ``collate_fn``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sam2.training.data.batch import VideoBatch
from sam2.training.data.vos_dataset import Sample


def collate(samples: Sequence[Sample], dict_key: str = "all") -> VideoBatch:
    """Stack ``V`` samples of ``T`` frames each; objects are listed video by video, in each sample's order.

    Returns img_batch ``(T, V, 3, S, S)``, masks ``(T, O, S, S)`` bool, obj_to_frame_idx ``(T, O, 2)``
    int32 ``(t, video)``, object_identifiers ``(T, O, 3)`` int64 ``(video id, object id, frame index)``
    and frame_orig_size ``(T, O, 2)`` int64 ``(h, w)``.
    """
    if not samples:
        raise ValueError("cannot collate an empty batch")
    lengths = {s.images.shape[0] for s in samples}
    if len(lengths) != 1:
        raise ValueError(f"all clips of a batch must have the same number of frames, got {sorted(lengths)}")
    (num_t,) = lengths
    img_batch = torch.stack([s.images for s in samples], dim=1)
    masks = torch.cat([s.masks for s in samples], dim=1).bool()
    to_frame, identifiers, sizes = [], [], []
    for v, s in enumerate(samples):
        num_o = len(s.object_ids)
        t_idx = torch.arange(num_t).view(num_t, 1).expand(num_t, num_o)
        to_frame.append(torch.stack([t_idx, torch.full_like(t_idx, v)], dim=-1))
        ids = torch.tensor(s.object_ids, dtype=torch.int64).view(1, num_o).expand(num_t, num_o)
        frames = torch.tensor(s.frame_indices, dtype=torch.int64).view(num_t, 1).expand(num_t, num_o)
        identifiers.append(torch.stack([torch.full_like(ids, s.video_id), ids, frames], dim=-1))
        sizes.append(torch.tensor(s.orig_size, dtype=torch.int64).view(1, 1, 2).expand(num_t, num_o, 2))
    return VideoBatch(
        img_batch=img_batch,
        obj_to_frame_idx=torch.cat(to_frame, dim=1).to(torch.int32),
        masks=masks,
        object_identifiers=torch.cat(identifiers, dim=1).contiguous(),
        frame_orig_size=torch.cat(sizes, dim=1).contiguous(),
        dict_key=dict_key,
    )
