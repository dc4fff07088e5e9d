"""Semi-supervised VOS inference over a dataset folder (equivalent of the official ``tools/vos_inference.py``).

Inputs: ``<base_video_dir>/<video>/<frame>.jpg`` and the prompt masks ``<input_mask_dir>/<video>/...``
in the DAVIS layout (one index PNG per frame) or, with ``per_obj_png_file``, the SA-V layout (one binary
PNG per object folder and frame), see :mod:`sam2.utils.png_masks`. Outputs are written to
``<output_mask_dir>`` in the same layout. The predictor is any object with the official video-predictor
API (``init_state``, ``add_new_mask``, ``propagate_in_video``, ``reset_state``).

Two modes:

* :func:`vos_inference`: all objects are prompted together on the input frames (frame 0 only, or every
  frame with a mask PNG with ``use_all_masks``) and tracked forward from the first input frame.
* :func:`vos_separate_inference_per_object` (``--track_object_appearing_later_in_video``): each object
  is tracked on its own from its first non-empty mask (or all of them with ``use_all_masks``); the
  per-object logits are then merged per frame (non-overlap constraint unless ``per_obj_png_file``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sam2.utils.non_overlap import apply_non_overlapping_constraints
from sam2.utils.png_masks import DAVIS_PALETTE, load_masks_from_dir, save_masks_to_dir
from sam2.utils.safe_names import child_path, plain_name
from sam2.utils.video_frames import FolderSource

__all__ = ["apply_non_overlapping_constraints", "frame_names", "list_videos", "vos_inference",
           "vos_separate_inference_per_object"]

log = logging.getLogger(__name__)

NO_OBJ_SCORE = -1024.0  # logit of frames where an object is not tracked
_FLAG_HINT = ("Use --track_object_appearing_later_in_video (track_object_appearing_later_in_video=True) "
              "for datasets whose objects do not all appear on the first frame (e.g. LVOS, YouTube-VOS).")


def list_videos(base_video_dir: str | os.PathLike, video_list_file: str | os.PathLike | None = None) -> list[str]:
    """Video names: the non-empty stripped lines of ``video_list_file``, else every sub-folder (sorted).

    A listed name must be a plain folder name (no separator, not ``..``, not absolute): ``ValueError``
    naming the file and line otherwise, so no path outside the dataset is ever read or written."""
    if video_list_file is not None:
        lines = Path(video_list_file).read_text().splitlines()
        return [plain_name(name.strip(), f"video name on line {i} of {str(video_list_file)!r}")
                for i, name in enumerate(lines, start=1) if name.strip()]
    base = Path(base_video_dir)
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


def frame_names(video_dir: str | os.PathLike) -> list[str]:
    """Frame names (file stems) of a frame folder, in the order the video predictor loads them."""
    return FolderSource(Path(video_dir)).names


def _init(predictor: Any, video_dir: Path) -> tuple[Any, list[str]]:
    names = frame_names(video_dir)
    state = predictor.init_state(video_path=str(video_dir), async_loading_frames=False)
    return state, names


def _frame_size(video_dir: Path, name: str) -> tuple[int, int]:
    """(H, W) of a video from one of its frames (used only when no object output exists)."""
    from PIL import Image

    matches = sorted(p for p in video_dir.iterdir() if p.stem == name)
    with Image.open(matches[0]) as img:
        return img.height, img.width


def vos_inference(predictor: Any, base_video_dir: str | os.PathLike, input_mask_dir: str | os.PathLike,
                  output_mask_dir: str | os.PathLike, video_name: str, score_thresh: float = 0.0,
                  use_all_masks: bool = False, per_obj_png_file: bool = False) -> int:
    """Prompt all objects on the input frame(s), propagate forward, write masks; returns frames written.

    Raises ``RuntimeError`` when there is no input mask / no object, when an input frame lacks its mask
    file, or when an object id first appears on a later input frame.
    """
    video_dir = child_path(base_video_dir, video_name, "video name")
    mask_dir = Path(input_mask_dir) / video_name
    state, names = _init(predictor, video_dir)
    if not use_all_masks:
        input_frames = [0]
    else:
        if per_obj_png_file:
            obj_dirs = [d for d in mask_dir.iterdir() if d.is_dir()] if mask_dir.is_dir() else []
            input_frames = [i for i, n in enumerate(names) if any((d / f"{n}.png").exists() for d in obj_dirs)]
        else:
            input_frames = [i for i, n in enumerate(names) if (mask_dir / f"{n}.png").exists()]
        if not input_frames:
            raise RuntimeError(f"video {video_name!r}: no input mask found in {str(mask_dir)!r} for any of its "
                               f"{len(names)} frames")

    palette = None
    object_ids: set[int] | None = None
    for frame_idx in input_frames:
        try:
            per_obj, frame_palette = load_masks_from_dir(input_mask_dir, video_name, names[frame_idx],
                                                         per_obj_png_file)
        except FileNotFoundError as exc:
            raise RuntimeError(f"video {video_name!r}: no input mask for frame {frame_idx} "
                               f"({names[frame_idx]!r}): {exc}. {_FLAG_HINT}") from exc
        palette = frame_palette or palette
        if object_ids is None:
            object_ids = set(per_obj)
        for obj_id, obj_mask in per_obj.items():
            if obj_id not in object_ids:
                raise RuntimeError(f"video {video_name!r}: object id {obj_id} appears on input frame {frame_idx} "
                                   f"but not on the first input frame {input_frames[0]}. {_FLAG_HINT}")
            predictor.add_new_mask(state, frame_idx=frame_idx, obj_id=obj_id, mask=obj_mask)
    if not object_ids:
        raise RuntimeError(f"video {video_name!r}: no object in the input masks of frames {input_frames}. "
                           f"{_FLAG_HINT}")

    out_palette = palette or DAVIS_PALETTE
    written = 0
    for frame_idx, obj_ids, logits in predictor.propagate_in_video(state):
        binary = (logits > score_thresh).cpu().numpy()  # (N, 1, H, W)
        height, width = binary.shape[-2:]
        per_obj = {int(obj_id): binary[i] for i, obj_id in enumerate(obj_ids)}
        save_masks_to_dir(output_mask_dir, video_name, names[frame_idx], per_obj, height, width,
                          per_obj_png_file, out_palette)
        written += 1
    return written


def _collect_inputs(input_mask_dir: str | os.PathLike, video_name: str, names: Sequence[str],
                    per_obj_png_file: bool, use_all_masks: bool
                    ) -> tuple[dict[int, dict[int, np.ndarray]], list[int] | None]:
    """``{obj_id: {frame_idx: mask}}`` of the non-empty input masks (first one per object unless all)."""
    inputs: dict[int, dict[int, np.ndarray]] = {}
    palette = None
    for frame_idx, name in enumerate(names):
        per_obj, frame_palette = load_masks_from_dir(input_mask_dir, video_name, name, per_obj_png_file,
                                                     allow_missing=True)
        palette = frame_palette or palette
        for obj_id, obj_mask in per_obj.items():
            frames = inputs.setdefault(obj_id, {})
            if not obj_mask.any() or (frames and not use_all_masks):
                continue
            log.info("video %r: object %d prompted with the mask of frame %d", video_name, obj_id, frame_idx)
            frames[frame_idx] = obj_mask
    return {k: v for k, v in inputs.items() if v}, palette


def vos_separate_inference_per_object(predictor: Any, base_video_dir: str | os.PathLike,
                                      input_mask_dir: str | os.PathLike, output_mask_dir: str | os.PathLike,
                                      video_name: str, score_thresh: float = 0.0, use_all_masks: bool = False,
                                      per_obj_png_file: bool = False) -> int:
    """Track each object separately from its own input frame(s); write every frame; returns frames written.

    Frames before an object's first input frame get no mask for it. Unless ``per_obj_png_file``, the
    per-object logits of a frame go through :func:`apply_non_overlapping_constraints` before thresholding.
    """
    video_dir = child_path(base_video_dir, video_name, "video name")
    state, names = _init(predictor, video_dir)
    inputs, palette = _collect_inputs(input_mask_dir, video_name, names, per_obj_png_file, use_all_masks)
    object_ids = sorted(inputs)
    logits_per_obj: dict[int, dict[int, np.ndarray]] = {obj_id: {} for obj_id in object_ids}
    for obj_id in object_ids:
        predictor.reset_state(state)
        frames = sorted(inputs[obj_id])
        for frame_idx in frames:
            predictor.add_new_mask(state, frame_idx=frame_idx, obj_id=obj_id, mask=inputs[obj_id][frame_idx])
        for frame_idx, _, logits in predictor.propagate_in_video(state, start_frame_idx=frames[0], reverse=False):
            logits_per_obj[obj_id][frame_idx] = logits.float().cpu().numpy()  # (1, 1, H, W)

    any_output = next((o[f] for o in logits_per_obj.values() for f in o), None)
    height, width = any_output.shape[-2:] if any_output is not None else _frame_size(video_dir, names[0])
    out_palette = palette or DAVIS_PALETTE
    for frame_idx, name in enumerate(names):
        scores = torch.full((len(object_ids), 1, height, width), NO_OBJ_SCORE, dtype=torch.float32)
        for i, obj_id in enumerate(object_ids):
            if frame_idx in logits_per_obj[obj_id]:
                scores[i] = torch.from_numpy(logits_per_obj[obj_id][frame_idx]).reshape(1, height, width)
        if not per_obj_png_file:
            scores = apply_non_overlapping_constraints(scores)
        binary = (scores > score_thresh).numpy()
        per_obj = {obj_id: binary[i] for i, obj_id in enumerate(object_ids)}
        save_masks_to_dir(output_mask_dir, video_name, name, per_obj, height, width, per_obj_png_file,
                          out_palette)
    return len(names)
