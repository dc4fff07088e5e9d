"""Shared helpers of the bounded-memory and streaming tests (not a test module).

The micro model runs at a 128-pixel input here: long enough videos (past the 16-frame pointer window)
stay cheap on a CPU, and the behaviours tested do not depend on the input size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sam2.streaming import StreamingSession
from tests.video_api_support import CLICK, POSITIVE, build, propagate

CLIP_FRAMES = 24  # frames of the shared test clip: past the 16-frame object-pointer window

SMALL = 128
OBJ2 = {"points": np.array([[70.0, 20.0]], dtype=np.float32), "labels": np.array([1], dtype=np.int32)}
OBJ3_BOX = {"box": np.array([40.0, 10.0, 90.0, 60.0], dtype=np.float32)}


def micro(checkpoint, *overrides: str, image_size: int = SMALL):
    predictor = build(checkpoint, tuple(overrides), image_size=image_size)
    predictor.show_progress = False
    return predictor


def prompt(target: Any, obj_id: int, frame_idx: int | None = None, state=None) -> Any:
    """The test prompt of object 1 (click), 2 (click) or 3 (box) on a predictor or a streaming session."""
    kwargs = {1: {"points": CLICK, "labels": POSITIVE}, 2: OBJ2, 3: OBJ3_BOX}[obj_id]
    if isinstance(target, StreamingSession):
        return target.add_new_points_or_box(obj_id, **kwargs)
    return target.add_new_points_or_box(state, frame_idx=frame_idx, obj_id=obj_id, **kwargs)


def offline(predictor, frames, prompts: dict[int, list[int]], bounded: bool = False, **kwargs) -> list:
    """``propagate_in_video`` over the whole video after the prompts ``{frame: [obj ids]}``."""
    state = predictor.init_state(frames, bounded_memory=bounded)
    for frame_idx, objs in sorted(prompts.items()):
        for obj_id in objs:
            prompt(predictor, obj_id, frame_idx, state)
    return propagate(predictor, state, **kwargs)


def streamed(session: StreamingSession, frames, prompts: dict[int, list[int]]) -> list:
    """Feed the frames one by one, prompting ``{frame: [obj ids]}`` when the frame arrives; -> one
    ``(frame_idx, obj_ids, masks)`` per frame (after its prompts), like ``propagate_in_video``."""
    out = []
    for frame in frames:
        result = session.track(frame)
        for obj_id in prompts.get(result.frame_idx, []):
            result = prompt(session, obj_id)
        out.append((result.frame_idx, list(result.obj_ids), result.masks.clone()))
    return out


def held_outputs(state) -> int:
    """Per-frame outputs (tracked and prompted) the session holds, all objects together."""
    return sum(len(o.cond_outputs) + len(o.non_cond_outputs) for o in state.objects)


def assert_rows_equal(ours: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    assert ours.shape == ref.shape, f"{what}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    assert torch.equal(ours, ref), f"{what}: max abs diff {float((ours - ref).abs().max())}"


def staged(predictor, frames, prompts: dict[int, list[int]], bounded: bool = False) -> list:
    """The offline equivalent of :func:`streamed`: track up to a prompted frame (included), prompt it
    (a refinement of a tracked object is then a correction, as in a stream), track on from it with
    ``propagate_in_video(start_frame_idx=..., max_frame_num_to_track=...)``, and so on."""
    state = predictor.init_state(frames, bounded_memory=bounded)
    bounds = sorted(prompts)
    out: list = []
    for i, k in enumerate(bounds):
        if i > 0:
            out += propagate(predictor, state, start_frame_idx=bounds[i - 1], max_frame_num_to_track=k - bounds[i - 1])
            out.pop()  # frame k again below, with its prompts
        for obj_id in prompts[k]:
            prompt(predictor, obj_id, k, state)
    last = bounds[-1]
    return out + propagate(predictor, state, start_frame_idx=last, max_frame_num_to_track=len(frames) - 1 - last)
