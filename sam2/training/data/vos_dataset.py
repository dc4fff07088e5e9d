"""One training sample: sample a clip from a raw video, load frames and masks, apply the transforms
(the official ``VOSDataset``).

A sample is a pure function of (seed, epoch, dataset, sample position): :func:`sample_rng` seeds its
NumPy generator from those numbers, and nothing else is random.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from sam2.training.data.config import TransformConfig
from sam2.training.data.raw_common import DatasetError, RawDataset, RawVideo, read_frames
from sam2.training.data.sampler import EvalSampler, RandomUniformSampler, SampledClip, SamplingError
from sam2.training.data.transforms import Clip, train_transforms

logger = logging.getLogger(__name__)

MAX_RETRIES = 100


@dataclass
class Sample:
    """images: ``(T, 3, S, S)`` float32; masks: ``(T, O, S, S)`` uint8 0/1 (zeros where the object is
    not annotated); object_ids / frame_indices: the ``O`` objects and ``T`` source frame indices;
    orig_size: ``(h, w)`` of the source frames."""

    images: torch.Tensor
    masks: torch.Tensor
    video_id: int
    object_ids: list[int]
    frame_indices: list[int]
    orig_size: tuple[int, int]


def sample_rng(seed: int, epoch: int, dataset_index: int, position: int) -> np.random.Generator:
    """The generator of one sample, from non-negative integers only (independent of workers and ranks)."""
    return np.random.default_rng([int(seed), int(epoch), int(dataset_index), int(position)])


class VOSDataset:
    """Samples of one raw dataset.

    In training a video that cannot give a sample (shorter than ``num_frames``, no object on any first
    frame) is replaced by a random other video (up to 100 times); a file that cannot be read is an error
    naming it (the official code would silently try another video).
    """

    def __init__(self, raw: RawDataset, sampler: RandomUniformSampler | EvalSampler, resolution: int,
                 transforms: TransformConfig, training: bool = True) -> None:
        self.raw = raw
        self.sampler = sampler
        self.resolution = int(resolution)
        self.transforms = transforms
        self.training = training

    def __len__(self) -> int:
        return len(self.raw)

    def get(self, idx: int, rng: np.random.Generator) -> Sample:
        for _ in range(MAX_RETRIES):
            video = self.raw.get_video(idx)
            try:
                clip = self.sampler.sample(video, rng)
            except SamplingError as exc:
                if not self.training:
                    raise
                logger.debug("%s; sampling another video", exc)
                idx = int(rng.integers(0, len(self.raw)))
                continue
            return self._build(video, clip, rng)
        raise SamplingError(f"no sample after {MAX_RETRIES} videos; too many videos are shorter than "
                            "num_frames or have no object on their frames")

    def _build(self, video: RawVideo, clip: SampledClip, rng: np.random.Generator) -> Sample:
        frames = read_frames(clip.frames)
        w, h = frames[0].size
        masks = torch.zeros(len(frames), len(clip.object_ids), h, w, dtype=torch.uint8)
        for t, (ref, img) in enumerate(zip(clip.frames, frames, strict=True)):
            if img.size != (w, h):
                raise DatasetError(f"frame {ref.describe()} of video {video.name!r} has size "
                                 f"{img.size[1]}x{img.size[0]} but its first sampled frame is {h}x{w}")
            loaded = video.segments.load(ref, clip.object_ids, (h, w))
            for o, obj_id in enumerate(clip.object_ids):
                if obj_id in loaded:
                    masks[t, o] = torch.from_numpy(np.asarray(loaded[obj_id], dtype=np.uint8))
        images, masks = train_transforms(Clip(frames, masks), self.transforms, self.resolution, rng)
        return Sample(images, masks, video.video_id, list(clip.object_ids),
                      [f.index for f in clip.frames], (h, w))
