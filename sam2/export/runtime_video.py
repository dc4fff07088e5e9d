"""``OnnxVideoPredictor``: the video predictor's API on onnxruntime and numpy only (no PyTorch).

Per object and frame, tracking runs four graphs of an export folder:

1. ``image_encoder``: frame -> raw stride-16 features, their position encoding, two high-res levels
   (once per frame, shared by all objects);
2. ``memory_attention`` (skipped on an object's first prompted frame, which adds ``no_mem_embed``
   instead): features conditioned on the memories chosen by :mod:`sam2.export.memory_bank`;
3. ``prompt_decoder``: clicks (or a lone padding point) and an optional low-res mask prompt -> four
   mask tokens; :func:`~sam2.export.runtime_masks.select_tracking_output` picks one;
4. ``memory_encoder``: raw features + chosen mask -> the frame's memory (rounded to bfloat16).

Mask prompts skip the decoder's mask choice (``use_mask_input_as_output_without_sam``): the mask itself
(as +-10 logits) is the output and the decoder only supplies the object pointer.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sam2.export.memory_bank import MemorySettings, build_memory, no_memory_features, to_bfloat16
from sam2.export.runtime_masks import (
    NO_OBJ_SCORE,
    HeadsResult,
    StabilityRule,
    gate_pointer,
    mask_downsample,
    resize,
    select_tracking_output,
)
from sam2.export.runtime_video_prompts import mask_prompt, prompt_points
from sam2.export.runtime_video_state import (
    FrameRecord,
    ObjectState,
    OnnxVideoState,
    VideoFrames,
    preprocess_frame,
)

log = logging.getLogger(__name__)

GRAPHS = ("image_encoder", "prompt_decoder", "memory_attention", "memory_encoder")
PAD = (np.zeros((1, 1, 2), np.float32), -np.ones((1, 1), np.float32))  # padding point (x, y), label -1


class OnnxVideoPredictor:
    """Interactive multi-object video segmentation from an export folder (``sam2 export onnx``).

    ``num_threads`` caps onnxruntime's threads per graph (0 = its default). Same calls and results as
    ``SAM2VideoPredictor`` (numpy arrays instead of tensors): ``init_state``,
    ``add_new_points_or_box``, ``add_new_mask``, ``propagate_in_video``, ``reset_state``. Each object is
    tracked independently with its own memory bank.
    """

    def __init__(self, folder: str | Path, providers: list[str] | None = None, precision: str = "fp32",
                 fill_hole_area: int = 0, non_overlap_masks: bool = False,
                 add_all_frames_to_correct_as_cond: bool | None = None, expect_model: str | None = None,
                 num_threads: int = 0) -> None:
        import onnxruntime as ort

        from sam2.export.manifest import load_constants, read_manifest

        folder = Path(folder)
        manifest = read_manifest(folder, expect_model=expect_model)
        self.constants = load_constants(folder)
        if fill_hole_area:
            raise ValueError("fill_hole_area > 0 is not supported by OnnxVideoPredictor (use 0)")
        if non_overlap_masks:
            raise ValueError("non_overlap_masks=True is not supported by OnnxVideoPredictor")
        cfg = manifest.config
        self.tracker = cfg["tracker"]
        video = cfg.get("video", {})
        self.add_all_frames_to_correct_as_cond = bool(
            video.get("add_all_frames_to_correct_as_cond", False) if add_all_frames_to_correct_as_cond is None
            else add_all_frames_to_correct_as_cond)
        self.image_size = int(self.tracker["image_size"])
        self.settings = MemorySettings.from_config(self.tracker)
        dec = cfg.get("decoder", {})
        self.stability = StabilityRule(bool(dec.get("dynamic_multimask_via_stability", False)),
                                       float(dec.get("dynamic_multimask_stability_delta", 0.05)),
                                       float(dec.get("dynamic_multimask_stability_thresh", 0.98)))
        self.hidden_dim = int(self.constants["no_obj_ptr"].shape[-1])
        files = {role: manifest.graph_file(role, precision) for role in GRAPHS}
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if num_threads:  # 0: onnxruntime's default (one thread per physical core)
            opts.intra_op_num_threads = num_threads
            opts.inter_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = providers or ["CPUExecutionProvider"]
        self.sessions = {r: ort.InferenceSession(str(folder / files[r]), opts, providers=providers) for r in GRAPHS}

    def _run(self, role: str, **inputs: np.ndarray) -> list[np.ndarray]:
        """Run a graph; inputs it does not declare are not sent (e.g. ``object_score_logits`` of the
        memory encoder of SAM 2 models, which have no ``no_obj_embed_spatial``)."""
        session = self.sessions[role]
        names = {i.name for i in session.get_inputs()}
        return session.run(None, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items() if k in names})

    # ------------------------------------------------------------------------------ session

    def init_state(self, video_path: Any, **_ignored: Any) -> OnnxVideoState:
        """Open a folder of JPEG/PNG frames, a ``(T, H, W, 3)`` uint8 array or a list of frames."""
        state = OnnxVideoState(VideoFrames(video_path))
        self._features(state, 0)
        return state

    def reset_state(self, inference_state: OnnxVideoState) -> None:
        inference_state.objects.clear()

    def _object(self, s: OnnxVideoState, obj_id: Any) -> ObjectState:
        idx = s.obj_idx(obj_id)
        if idx is None:
            s.objects.append(ObjectState(obj_id))
            idx = len(s.objects) - 1
        return s.objects[idx]

    @staticmethod
    def _check_frame(s: OnnxVideoState, frame_idx: int, name: str = "frame_idx") -> None:
        if not isinstance(frame_idx, (int, np.integer)) or not 0 <= frame_idx < s.num_frames:
            raise ValueError(f"{name} {frame_idx!r} is out of range for a video of {s.num_frames} frames")

    # ------------------------------------------------------------------------------ prompts

    def add_new_points_or_box(self, inference_state: OnnxVideoState, frame_idx: int, obj_id: Any, points=None,
                              labels=None, clear_old_points: bool = True, normalize_coords: bool = True,
                              box=None) -> tuple[int, list, np.ndarray]:
        """Clicks ``points (N, 2)`` with ``labels (N,)`` and/or a ``box (4,)`` for ``obj_id`` ->
        ``(frame_idx, obj_ids, video_res_masks (num_objects, 1, H, W))``."""
        s = inference_state
        self._check_frame(s, frame_idx)
        coords, labs = prompt_points(points, labels, box, clear_old_points)
        if normalize_coords:
            coords = coords / np.asarray([s.video_width, s.video_height], dtype=np.float32)
        coords = (coords * np.float32(self.image_size)).astype(np.float32)
        obj = self._object(s, obj_id)
        old = obj.point_inputs.get(frame_idx) if not clear_old_points else None
        if old is not None:
            coords, labs = np.concatenate([old[0], coords], 1), np.concatenate([old[1], labs], 1)
        obj.point_inputs[frame_idx] = (coords, labs)
        obj.mask_inputs.pop(frame_idx, None)
        return self._add_prompt(s, obj, frame_idx, (coords, labs), None)

    add_new_points = add_new_points_or_box

    def add_new_mask(self, inference_state: OnnxVideoState, frame_idx: int, obj_id: Any,
                     mask) -> tuple[int, list, np.ndarray]:
        """A 2-D mask (bool or 0/1, any size) as the prompt of ``obj_id`` on ``frame_idx``."""
        s = inference_state
        self._check_frame(s, frame_idx)
        m = mask_prompt(mask, self.image_size)
        obj = self._object(s, obj_id)
        obj.mask_inputs[frame_idx] = m
        obj.point_inputs.pop(frame_idx, None)
        return self._add_prompt(s, obj, frame_idx, None, m)

    def _add_prompt(self, s: OnnxVideoState, obj: ObjectState, frame_idx: int, points, mask):
        is_init = frame_idx not in obj.tracked
        reverse = False if is_init else obj.tracked[frame_idx]
        is_cond = is_init or self.add_all_frames_to_correct_as_cond
        if not is_cond:
            warnings.warn(f"frame {frame_idx} of object {obj.obj_id!r} was already tracked: this correction is "
                          "dropped by the next propagate_in_video (official behaviour)", UserWarning, stacklevel=3)
        prev_logits = None
        prev = obj.latest_output(frame_idx, is_cond)
        if points is not None and prev is not None:
            prev_logits = np.clip(prev.pred_masks, -32.0, 32.0)
        rec = self._run_frame(s, obj, frame_idx, is_init, points, mask, reverse, False, prev_logits)
        obj.pending(is_cond)[frame_idx] = rec
        return frame_idx, s.obj_ids, self._video_res_masks(s, frame_idx, is_cond)

    def clear_all_prompts_in_frame(self, inference_state: OnnxVideoState, frame_idx: int, obj_id: Any,
                                   need_output: bool = True):
        """Remove the prompts of ``obj_id`` on ``frame_idx``; the frame becomes an ordinary tracked frame."""
        s = inference_state
        self._check_frame(s, frame_idx)
        idx = s.obj_idx(obj_id)
        if idx is None:
            raise ValueError(f"unknown object id {obj_id!r}; existing object ids: {s.obj_ids}")
        obj = s.objects[idx]
        for store in (obj.point_inputs, obj.mask_inputs, obj.pending_cond, obj.pending_non_cond):
            store.pop(frame_idx, None)
        rec = obj.cond_outputs.pop(frame_idx, None)
        if rec is not None:
            obj.non_cond_outputs[frame_idx] = rec
            obj.tracked.pop(frame_idx, None)
        if not need_output:
            return None
        return frame_idx, s.obj_ids, self._video_res_masks(s, frame_idx, _any_pending_cond(s, frame_idx))

    def remove_object(self, inference_state: OnnxVideoState, obj_id: Any, strict: bool = False,
                      need_output: bool = True) -> tuple[list, list]:
        """Remove ``obj_id``; returns ``(obj_ids, [(frame_idx, masks), ...])`` for its prompted frames."""
        s = inference_state
        idx = s.obj_idx(obj_id)
        if idx is None:
            if strict:
                raise RuntimeError(f"Cannot remove object id {obj_id} as it doesn't exist. "
                                   f"All existing object ids: {s.obj_ids}.")
            return s.obj_ids, []
        if len(s.objects) == 1:
            self.reset_state(s)
            return s.obj_ids, []
        obj = s.objects.pop(idx)
        frames = sorted(set(obj.point_inputs) | set(obj.mask_inputs))
        if not need_output:
            return s.obj_ids, []
        return s.obj_ids, [(t, self._video_res_masks(s, t, _any_pending_cond(s, t))) for t in frames]

    # ------------------------------------------------------------------------------ propagation

    def propagate_in_video_preflight(self, s: OnnxVideoState) -> None:
        """Encode the memory of newly prompted frames and make them conditioning frames."""
        if not s.objects:
            raise RuntimeError("No input points or masks are provided for any object; please add inputs first.")
        for obj in s.objects:
            if not obj.cond_outputs and not obj.pending_cond:
                raise RuntimeError(f"No input points or masks are provided for object id {obj.obj_id}; "
                                   "please add inputs first.")
        for obj in s.objects:
            for is_cond in (False, True):
                store = obj.cond_outputs if is_cond else obj.non_cond_outputs
                for frame_idx, rec in obj.pending(is_cond).items():
                    if rec.maskmem_features is None:
                        self._encode_memory(s, frame_idx, rec, from_points=True)
                    store[frame_idx] = rec
                obj.pending(is_cond).clear()
            for frame_idx in obj.cond_outputs:
                obj.non_cond_outputs.pop(frame_idx, None)

    def propagate_in_video(self, inference_state: OnnxVideoState, start_frame_idx: int | None = None,
                           max_frame_num_to_track: int | None = None,
                           reverse: bool = False) -> Iterator[tuple[int, list, np.ndarray]]:
        """Track every object; yields ``(frame_idx, obj_ids, video_res_masks (N, 1, H, W))``."""
        s = inference_state
        if start_frame_idx is not None:
            self._check_frame(s, start_frame_idx, "start_frame_idx")
        if max_frame_num_to_track is not None and max_frame_num_to_track < 0:
            raise ValueError(f"max_frame_num_to_track must be >= 0, got {max_frame_num_to_track}")
        self.propagate_in_video_preflight(s)
        if start_frame_idx is None:
            start_frame_idx = min(t for obj in s.objects for t in obj.cond_outputs)
        if max_frame_num_to_track is None:
            max_frame_num_to_track = s.num_frames
        if reverse:
            end = max(start_frame_idx - max_frame_num_to_track, 0)
            order = range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else range(0)
        else:
            end = min(start_frame_idx + max_frame_num_to_track, s.num_frames - 1)
            order = range(start_frame_idx, end + 1)
        for frame_idx in order:
            masks = []
            for obj in s.objects:
                if frame_idx in obj.cond_outputs:
                    pred = obj.cond_outputs[frame_idx].pred_masks
                else:
                    rec = self._run_frame(s, obj, frame_idx, False, None, None, reverse, True)
                    obj.non_cond_outputs[frame_idx] = rec
                    pred = rec.pred_masks
                obj.tracked[frame_idx] = reverse
                masks.append(pred)
            yield frame_idx, s.obj_ids, self._to_video_res(s, np.concatenate(masks, axis=0))

    # ------------------------------------------------------------------------------ internals

    def _features(self, s: OnnxVideoState, frame_idx: int) -> dict[str, np.ndarray]:
        """Image-encoder outputs of one frame (the most recent frame is cached)."""
        if s.cached_frame_idx != frame_idx:
            image = preprocess_frame(s.frames._read(frame_idx), self.image_size)
            names = [o.name for o in self.sessions["image_encoder"].get_outputs()]
            s.cached_features = dict(zip(names, self._run("image_encoder", image=image)))
            s.cached_frame_idx = frame_idx
        return s.cached_features

    def _run_frame(self, s: OnnxVideoState, obj: ObjectState, frame_idx: int, is_init: bool, points, mask,
                   reverse: bool, run_mem_encoder: bool, prev_logits: np.ndarray | None = None) -> FrameRecord:
        """Track one object on one frame -> its :class:`FrameRecord` (memory encoded if asked)."""
        f = self._features(s, frame_idx)
        if mask is not None and self.tracker["use_mask_input_as_output_without_sam"]:
            heads = self._mask_as_output(f, mask)
        else:
            pix = self._condition(s, obj, f, frame_idx, is_init, reverse)
            num_pts = 0 if points is None else points[1].shape[1]
            t = self.tracker
            multimask = (t["multimask_output_in_sam"] and (is_init or t["multimask_output_for_tracking"])
                         and t["multimask_min_pt_num"] <= num_pts <= t["multimask_max_pt_num"])
            mask_in = prev_logits if prev_logits is not None else mask
            heads = self._heads(pix, f, points, mask_in, multimask)
        rec = FrameRecord(heads.low_res, heads.obj_ptr, heads.object_score_logits)
        if run_mem_encoder:
            self._encode_memory(s, frame_idx, rec, from_points=points is not None)
        return rec

    def _condition(self, s: OnnxVideoState, obj: ObjectState, f, frame_idx: int, is_init: bool,
                   reverse: bool) -> np.ndarray:
        if self.settings.num_maskmem == 0:
            return f["image_embed"]
        if is_init:
            return no_memory_features(f["image_embed"], self.constants["no_mem_embed"])
        mem = build_memory(frame_idx, obj.cond_outputs, obj.non_cond_outputs, s.num_frames, reverse,
                           self.settings, self.hidden_dim, self.constants)
        return self._run("memory_attention", image_embed=f["image_embed"], vision_pos_embed=f["vision_pos_embed"],
                         memory=mem.memory, memory_pos=mem.memory_pos, obj_ptr_tokens=mem.obj_ptr_tokens,
                         obj_ptr_pos=mem.obj_ptr_pos)[0]

    def _decode(self, pix: np.ndarray, f, points, mask_in: np.ndarray | None):
        """prompt_decoder on ``pix``: clicks + padding point (or two padding points) and a mask prompt."""
        if points is None:
            coords, labels = PAD
        else:
            coords, labels = points
        coords = np.concatenate([coords, PAD[0]], axis=1)
        labels = np.concatenate([labels.astype(np.float32), PAD[1]], axis=1)
        low = 4 * pix.shape[-1]
        has = mask_in is not None
        if has and mask_in.shape[-2:] != (low, low):
            mask_in = resize(mask_in, (low, low), antialias=True)
        return self._run("prompt_decoder", image_embed=pix, high_res_feat_0=f["high_res_feat_0"],
                         high_res_feat_1=f["high_res_feat_1"], point_coords=coords, point_labels=labels,
                         mask_input=mask_in if has else np.zeros((1, 1, low, low), np.float32),
                         has_mask_input=np.asarray([1.0 if has else 0.0], np.float32))

    def _heads(self, pix, f, points, mask_in, multimask: bool) -> HeadsResult:
        masks, ious, scores, ptrs = self._decode(pix, f, points, mask_in)
        return select_tracking_output(masks, ious, scores, ptrs, multimask, self.stability,
                                      self.constants["no_obj_ptr"])

    def _mask_as_output(self, f, mask: np.ndarray) -> HeadsResult:
        """A mask prompt ``(1, 1, S, S)`` is the output (+-10 logits); the decoder, run on the raw
        features with the downsampled mask as prompt, gives the pointer."""
        high = mask * np.float32(20.0) - np.float32(10.0)
        low = resize(high, (high.shape[-2] // 4, high.shape[-1] // 4), antialias=True)
        prompt = mask_downsample(mask, self.constants["mask_downsample.weight"], self.constants["mask_downsample.bias"])
        heads = self._heads(f["image_embed"], f, None, prompt, multimask=False)
        present = np.asarray([[1.0 if (mask > 0).any() else 0.0]], np.float32)
        ptr = gate_pointer(heads.obj_ptr, present, self.constants["no_obj_ptr"])
        return HeadsResult(low, np.ones((1, 1), np.float32), ptr, present * 20.0 - 10.0)

    def _encode_memory(self, s: OnnxVideoState, frame_idx: int, rec: FrameRecord, from_points: bool) -> None:
        f = self._features(s, frame_idx)
        binarize = bool(self.tracker.get("binarize_mask_from_pts_for_mem_enc")) and from_points
        feats, pos = self._run("memory_encoder", image_embed=f["image_embed"], mask_logits=rec.pred_masks,
                               object_score_logits=rec.object_score_logits,
                               binarize=np.asarray([1.0 if binarize else 0.0], np.float32))
        rec.maskmem_features, rec.maskmem_pos_enc = to_bfloat16(feats), pos

    def _video_res_masks(self, s: OnnxVideoState, frame_idx: int, is_cond: bool) -> np.ndarray:
        """Every object's latest logits on a frame ``(N, 1, H, W)`` (-1024 where it has none)."""
        masks = np.full((len(s.objects), 1, *self._low_res_hw()), NO_OBJ_SCORE, np.float32)
        has = np.zeros(len(s.objects), bool)
        for i, obj in enumerate(s.objects):
            rec = obj.latest_output(frame_idx, is_cond)
            if rec is not None:
                masks[i], has[i] = rec.pred_masks[0], True
        out = self._to_video_res(s, masks)
        out[~has] = NO_OBJ_SCORE
        return out

    def _low_res_hw(self) -> tuple[int, int]:
        return self.image_size // 4, self.image_size // 4

    @staticmethod
    def _to_video_res(s: OnnxVideoState, masks: np.ndarray) -> np.ndarray:
        return resize(masks, (s.video_height, s.video_width))


def _any_pending_cond(s: OnnxVideoState, frame_idx: int) -> bool:
    return any(frame_idx in o.pending_cond for o in s.objects)
