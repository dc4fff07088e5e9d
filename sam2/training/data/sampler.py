"""Frame and object sampling (the official ``RandomUniformSampler`` / ``EvalSampler``).

Randomness comes from the NumPy generator of the sample (seeded from seed, epoch and sample index), not
from a global generator, so a sample is the same whichever worker builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sam2.training.data.raw_common import FrameRef, RawVideo

MAX_RETRIES = 1000


class SamplingError(RuntimeError):
    """The video cannot give a sample (too short, or no object on the first frame of any window)."""


@dataclass
class SampledClip:
    frames: list[FrameRef]
    object_ids: list[int]


@dataclass
class RandomUniformSampler:
    """``num_frames`` consecutive listed frames from a uniform start, reversed with ``reverse_time_prob``;
    objects: up to ``max_num_objects`` of those visible on the first sampled frame, in random order.
    A window without a visible object is redrawn (up to 1000 times)."""

    num_frames: int
    max_num_objects: int
    reverse_time_prob: float = 0.0

    def sample(self, video: RawVideo, rng: np.random.Generator) -> SampledClip:
        n = len(video.frames)
        if n < self.num_frames:
            raise SamplingError(f"video {video.name!r} has {n} frames, fewer than num_frames={self.num_frames}")
        for _ in range(MAX_RETRIES):
            start = int(rng.integers(0, n - self.num_frames + 1))
            frames = video.frames[start:start + self.num_frames]
            if rng.random() < self.reverse_time_prob:
                frames = frames[::-1]
            visible = video.segments.visible_objects(frames[0])
            if visible:
                break
        else:
            raise SamplingError(f"video {video.name!r}: no object visible on the first frame of "
                                f"{MAX_RETRIES} sampled windows")
        count = min(len(visible), self.max_num_objects)
        chosen = rng.choice(len(visible), size=count, replace=False)
        return SampledClip(list(frames), [visible[int(i)] for i in chosen])


@dataclass
class EvalSampler:
    """All frames in order and all objects visible on the first frame."""

    def sample(self, video: RawVideo, rng: np.random.Generator | None = None) -> SampledClip:
        frames = sorted(video.frames, key=lambda f: f.index)
        visible = video.segments.visible_objects(frames[0])
        if not visible:
            raise SamplingError(f"video {video.name!r}: no object visible on its first frame")
        return SampledClip(frames, visible)
