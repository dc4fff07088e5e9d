"""Shared helpers of the public-API tests of ``SAM2VideoPredictor`` (not a test module).

Videos are generated here (a textured background with a bright moving rectangle); the model is the
SAM 2.1 micro config with synthesized weights whose object-score bias is the one the video fixtures
use, so that the object is predicted present on tracked frames and tracked masks carry information.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sam2.build_sam import build_sam2_video_predictor
from sam2.video_session import FrameOutput, VideoSession
from tests import reference as R

MODEL = "sam2.1_hiera_micro"
H, W = 72, 96  # generated frame size (even, so it can be written as yuv420p mp4)
NUM_FRAMES = 6
# Model input size. The behaviours tested with these helpers do not depend on it (the 1024 input of the
# micro config is covered by the fixture parity tests); 512 makes every tracked frame several times
# cheaper on a CPU (memory attention scales with the square of the number of feature tokens).
IMAGE_SIZE = 512
CLICK = np.array([[30.0, 36.0]], dtype=np.float32)  # inside the rectangle on frame 0
POSITIVE = np.array([1], dtype=np.int32)


def write_checkpoint(directory: Path) -> Path:
    """Micro checkpoint with the fixtures' 'present on tracked frames' weights."""
    return R.write_checkpoint(directory / f"{MODEL}.pt", MODEL, 0, R.tracking_weight_overrides(MODEL))


def build(checkpoint: Path, overrides: tuple[str, ...] = (), image_size: int = IMAGE_SIZE):
    """The micro predictor (default build: post-processing on) at model input size ``image_size``."""
    extra = [*overrides, f"++model.image_size={image_size}"]
    return build_sam2_video_predictor(R.config_for(MODEL), checkpoint, device="cpu", hydra_overrides_extra=extra)


def make_frames(n: int = NUM_FRAMES, h: int = H, w: int = W, seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB uint8 frames: a noisy background and a red rectangle moving right by 3 px a frame."""
    rng = np.random.default_rng(seed)
    background = rng.integers(30, 90, size=(h, w, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        frame = background.copy()
        y0, x0 = h // 4, w // 8 + 3 * i
        frame[y0:y0 + h // 2, x0:x0 + w // 3] = (220, 50, 40)
        frames.append(frame)
    return frames


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    pytest.importorskip("av")
    from sam2.cli.media import Mp4Writer

    height, width = frames[0].shape[:2]
    with Mp4Writer(path, width, height, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def click(predictor, state: VideoSession, frame_idx: int = 0, obj_id: Any = 1, points=CLICK, labels=POSITIVE,
          **kwargs):
    return predictor.add_new_points_or_box(state, frame_idx=frame_idx, obj_id=obj_id, points=points,
                                           labels=labels, **kwargs)


def propagate(predictor, state: VideoSession, **kwargs) -> list[tuple[int, list, torch.Tensor]]:
    """All yields of ``propagate_in_video`` (masks cloned, obj_ids copied)."""
    return [(f, list(ids), m.clone()) for f, ids, m in predictor.propagate_in_video(state, **kwargs)]


def assert_same_run(ours: list, expected: list, what: str = "") -> None:
    """Two propagations yield the same frames, object ids and bit-identical mask logits."""
    assert [f for f, _, _ in ours] == [f for f, _, _ in expected], f"{what}: frame order differs"
    for (f, ids, m), (_, ids_ref, m_ref) in zip(ours, expected):
        assert ids == ids_ref, f"{what}: obj_ids on frame {f}: {ids} != {ids_ref}"
        assert m.shape == m_ref.shape and m.dtype == m_ref.dtype, f"{what}: frame {f} shape/dtype"
        assert torch.equal(m, m_ref), f"{what}: masks of frame {f} differ (max abs {float((m - m_ref).abs().max())})"


# ------------------------------------------------------------------------------ session snapshots

def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clone(v) for v in value]
    if dataclasses.is_dataclass(value):
        return {f.name: _clone(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def snapshot(state: VideoSession) -> dict:
    """Everything a session holds about objects: ids, per-frame prompts, stored / pending outputs
    (every tensor of every :class:`FrameOutput`), tracked-frame directions, and the session flags."""
    objects = []
    for obj in state.objects:
        objects.append({
            "obj_id": obj.obj_id,
            "point_inputs": _clone(obj.point_inputs),
            "mask_inputs": _clone(obj.mask_inputs),
            "cond_outputs": _clone(obj.cond_outputs),
            "non_cond_outputs": _clone(obj.non_cond_outputs),
            "pending_cond": _clone(obj.pending_cond),
            "pending_non_cond": _clone(obj.pending_non_cond),
            "tracked": dict(obj.tracked),
        })
    return {"obj_ids": list(state.obj_ids), "objects": objects, "num_frames": state.num_frames,
            "size": (state.video_height, state.video_width),
            "warned_dropped_correction": state.warned_dropped_correction}


def assert_same_snapshot(a: Any, b: Any, path: str = "state") -> None:
    """Recursive exact comparison (dict keys in the same order, tensors bit-identical)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), f"{path}: tensor vs non-tensor"
        assert a.dtype == b.dtype and a.shape == b.shape, f"{path}: {a.dtype}{tuple(a.shape)} != {b.dtype}{tuple(b.shape)}"
        assert torch.equal(a, b), f"{path}: values differ"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same_snapshot(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_snapshot(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def stored_outputs(state: VideoSession) -> list[FrameOutput]:
    return [out for obj in state.objects for store in (obj.cond_outputs, obj.non_cond_outputs)
            for out in store.values()]
