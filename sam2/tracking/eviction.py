"""Bounded memory: which stored per-frame outputs later frames can still use, and releasing the rest.

The memory selection of the tracker (:mod:`sam2.tracking.memory_selection`, :mod:`.object_pointers`)
reads, for a frame ``g`` tracked forward, the tracked outputs of frame ``g - 1``, of up to
``num_maskmem - 2`` earlier frames on the grid of the temporal stride ``r``
(``((g - 2) // r) * r - k * r``), and the object pointers of frames ``g - 1 .. g - (P - 1)`` with
``P = max_obj_ptrs_in_encoder``; conditioning frames are read by their own rule. Once frame ``f`` is
tracked, a tracked output behind ``f`` that neither ``f`` itself (refining it runs its tracking step
again) nor any later frame in the same direction reads can be released without changing any later
result. Backward tracking is the mirror image.

Released frames are remembered as a few intervals (:class:`ReleasedFrames`), and the stores of a
bounded object (:class:`GuardedOutputs`) raise :class:`ReleasedFrameError` when the tracker asks for a
released frame (for example a backward pass over frames released by a forward pass): results are never
silently computed from a memory that is missing.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sam2.modeling.sam2_base import SAM2Base


class ReleasedFrameError(RuntimeError):
    """Tracking or refining needs the output of a frame that bounded memory released."""


@dataclass(frozen=True)
class RetentionPolicy:
    """The memory-selection parameters that decide what later frames read (from the model config)."""

    num_maskmem: int
    stride: int
    max_obj_ptrs: int

    @classmethod
    def from_model(cls, model: SAM2Base) -> RetentionPolicy:
        t = model.cfg.tracker
        return cls(model.num_maskmem, max(1, t.memory_temporal_stride_for_eval), t.max_obj_ptrs_in_encoder)

    def window(self) -> int:
        """How many frames behind the current one may still be read (a bound, for sizing)."""
        return max(self.max_obj_ptrs, self.stride * max(self.num_maskmem - 1, 1)) + 1

    def still_needed(self, t: int, frame_idx: int, reverse: bool = False) -> bool:
        """Can tracking (or refining) frame ``frame_idx`` or a later one (in the tracking direction)
        read the tracked output of frame ``t``? Frames at or ahead of ``frame_idx`` always count."""
        if reverse:  # backward tracking mirrors forward tracking: frame g reads -(forward reads of -g)
            t, frame_idx = -t, -frame_idx
        if t >= frame_idx:
            return True
        if self.num_maskmem == 0:  # no memory at all: nothing is read
            return False
        if self.max_obj_ptrs >= 2 and t >= frame_idx - (self.max_obj_ptrs - 1):  # pointers of g-1 .. g-(P-1)
            return True
        if self.num_maskmem >= 2 and t == frame_idx - 1:  # the previous frame's memory
            return True
        if self.num_maskmem < 3 or t % self.stride != 0:
            return False
        lowest = ((frame_idx - 2) // self.stride) * self.stride - (self.num_maskmem - 3) * self.stride
        return t >= lowest


class ReleasedFrames:
    """A set of frame indices stored as sorted, disjoint, non-adjacent inclusive intervals."""

    def __init__(self) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []

    def __contains__(self, t: object) -> bool:
        if not isinstance(t, int):
            return False
        i = bisect.bisect_right(self._lo, t) - 1
        return i >= 0 and t <= self._hi[i]

    def __bool__(self) -> bool:
        return bool(self._lo)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._lo, self._hi))

    def intervals(self) -> list[tuple[int, int]]:
        return list(self)

    def add(self, t: int) -> None:
        if t in self:
            return
        i = bisect.bisect_right(self._lo, t)  # interval i - 1 ends before t, interval i starts after t
        joins_left = i > 0 and self._hi[i - 1] == t - 1
        joins_right = i < len(self._lo) and self._lo[i] == t + 1
        if joins_left and joins_right:
            self._hi[i - 1] = self._hi[i]
            del self._lo[i], self._hi[i]
        elif joins_left:
            self._hi[i - 1] = t
        elif joins_right:
            self._lo[i] = t
        else:
            self._lo.insert(i, t)
            self._hi.insert(i, t)

    def discard(self, t: int) -> None:
        i = bisect.bisect_right(self._lo, t) - 1
        if i < 0 or t > self._hi[i]:
            return
        lo, hi = self._lo[i], self._hi[i]
        del self._lo[i], self._hi[i]
        if t + 1 <= hi:
            self._lo.insert(i, t + 1)
            self._hi.insert(i, hi)
        if lo <= t - 1:
            self._lo.insert(i, lo)
            self._hi.insert(i, t - 1)

    def clear(self) -> None:
        self._lo.clear()
        self._hi.clear()

    def __repr__(self) -> str:
        return f"ReleasedFrames({self.intervals()})"


class GuardedOutputs(dict):
    """Per-frame outputs of one object in bounded mode: ``get`` of a released frame raises
    :class:`ReleasedFrameError`; storing a frame again takes it out of the released set."""

    def __init__(self, obj_id: Any, released: ReleasedFrames) -> None:
        super().__init__()
        self.obj_id = obj_id
        self.released = released

    def get(self, t: Any, default: Any = None) -> Any:
        if not dict.__contains__(self, t) and t in self.released:
            raise ReleasedFrameError(
                f"tracking needs the output of frame {t} of object {self.obj_id!r}, which bounded memory "
                "(init_state(..., bounded_memory=True)) released after tracking past it; a session in "
                "bounded mode can only continue in the direction it tracked. Track again from a prompted "
                "frame, or use the default mode (bounded_memory=False) to keep every frame")
        return dict.get(self, t, default)

    def __setitem__(self, t: Any, value: Any) -> None:
        self.released.discard(t)
        dict.__setitem__(self, t, value)

    def pop(self, t: Any, *default: Any) -> Any:
        self.released.discard(t)
        return dict.pop(self, t, *default)


def release_behind(non_cond_outputs: dict, tracked: dict, released: ReleasedFrames, frame_idx: int,
                   reverse: bool, policy: RetentionPolicy) -> list[int]:
    """Drop the tracked outputs that neither ``frame_idx`` nor a later frame can read; remember them
    as released.

    -> the released frame indices.
    """
    gone = [t for t in non_cond_outputs if not policy.still_needed(t, frame_idx, reverse)]
    for t in gone:
        dict.pop(non_cond_outputs, t)
        tracked.pop(t, None)
        released.add(t)
    return gone


def release_old_cond_frames(cond_outputs: dict, tracked: dict, frame_idx: int, max_cond_frames: int,
                            policy: RetentionPolicy) -> list[int]:
    """Forward-only sessions (streaming): drop conditioning frames that can never be selected again.

    With ``max_cond_frames_in_attn = K > 0``, a frame tracked after ``frame_idx`` selects the ``K``
    conditioning frames nearest to it; when all prompts are at or before ``frame_idx`` those are the
    ``K`` latest, so older ones are only read if they lie in the window of tracked frames
    (:meth:`RetentionPolicy.still_needed`). ``K + 1`` are kept: with more than ``K`` the selection
    orders its result by distance (as with all of them), with ``K`` or fewer it keeps dict order,
    which would change the order of the memory tokens. -> the dropped frame indices.
    """
    if max_cond_frames < 0 or len(cond_outputs) <= max_cond_frames + 1:
        return []
    if any(t > frame_idx for t in cond_outputs):
        return []  # prompts ahead: the selection is not monotone, keep everything
    keep = set(sorted(cond_outputs)[-(max_cond_frames + 1):])
    gone = [t for t in cond_outputs if t not in keep and not policy.still_needed(t, frame_idx)]
    for t in gone:
        del cond_outputs[t]
        tracked.pop(t, None)
    return gone
