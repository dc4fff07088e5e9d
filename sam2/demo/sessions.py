"""Demo sessions: one opened image or video each, its prompts (in a ``VideoSession``) and its masks.

Every session is a video session of :class:`~sam2.sam2_video_predictor.SAM2VideoPredictor`; an image is a
one-frame video. The predictor keeps the backbone features of the last frame it looked at, so further
clicks on the same frame do not recompute the image embedding. The masks of every frame that has been
segmented are kept as COCO RLEs (small) so that any frame can be shown or exported without the model.

Methods named ``*_job`` touch the model or the predictor's state: they run only on the model thread
(:class:`~sam2.demo.worker.ModelWorker`). Everything else is safe from any thread.
"""

from __future__ import annotations

import io
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sam2.demo import rle
from sam2.demo.errors import DemoError

log = logging.getLogger(__name__)

JPEG_CACHE_BYTES = 16 * 1024 * 1024  # encoded frames kept per session for scrubbing


@dataclass(frozen=True)
class DemoLimits:
    """What one person may ask of the server (all configurable with ``sam2 demo`` options)."""

    max_objects: int = 32  # objects per session
    max_upload_mb: float = 200.0  # size of an uploaded file
    max_frames: int = 2000  # frames of an uploaded video
    session_idle_s: int = 1800  # a session unused this long is closed
    max_sessions: int = 32  # sessions open at once (oldest idle ones are not evicted: a new one is refused)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def as_json(self) -> dict[str, Any]:
        return {"max_objects": self.max_objects, "max_upload_mb": self.max_upload_mb,
                "max_frames": self.max_frames, "session_idle_s": self.session_idle_s,
                "max_sessions": self.max_sessions}


@dataclass
class DemoSession:
    """One opened image or video.

    ``masks[frame][object_id] = (rle, score)`` holds the latest mask of every object on every frame
    segmented so far (``score`` is None for video predictions).
    """

    id: str
    kind: str  # "video" | "image"
    name: str  # safe name (letters, digits, - and _) used inside exported files
    state: Any  # sam2.video_session.VideoSession
    width: int
    height: int
    num_frames: int
    fps: float
    upload_path: Path | None = None  # server-chosen temp file of an uploaded video, deleted on close
    masks: dict[int, dict[int, tuple[dict, float | None]]] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)
    propagation: Any = None  # the running or queued sam2.demo.propagation.Propagation
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _jpegs: OrderedDict[int, bytes] = field(default_factory=OrderedDict, repr=False)
    _display: Any = field(default=None, repr=False)  # decoder of the frames shown (apart from the model's)

    # ------------------------------------------------------------------------------ description

    def describe(self) -> dict[str, Any]:
        return {"session_id": self.id, "kind": self.kind, "name": self.name, "num_frames": self.num_frames,
                "width": self.width, "height": self.height, "fps": self.fps}

    @property
    def object_ids(self) -> list[int]:
        """Objects that have prompts, in the order they were created (read without the model lock:
        the list is replaced, never edited in place, by the predictor's callers here)."""
        return [int(o) for o in list(self.state.obj_ids)]

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def check_open(self) -> None:
        if self.closed:
            raise DemoError(404, f"session {self.id} was closed")

    def check_frame(self, frame: int) -> None:
        if not 0 <= frame < self.num_frames:
            raise DemoError(404, f"frame {frame} does not exist in session {self.id}: it has "
                                 f"{self.num_frames} frame(s), numbered 0..{self.num_frames - 1}")

    def check_object(self, obj_id: int) -> None:
        if obj_id not in self.object_ids:
            raise DemoError(404, f"object {obj_id} does not exist in session {self.id}; "
                                 f"its objects are {self.object_ids}")

    def check_new_object(self, obj_id: int, limits: DemoLimits) -> None:
        ids = self.object_ids
        if obj_id not in ids and len(ids) >= limits.max_objects:
            raise DemoError(409, f"too many objects: session {self.id} already has {len(ids)}, the limit "
                                 f"is {limits.max_objects} (sam2 demo --max-objects); remove one first")

    # ------------------------------------------------------------------------------ masks

    def record(self, frame: int, obj_ids: list, logits: Any, scores: list[float | None] | None = None
               ) -> dict[str, Any]:
        """Store the masks ``(N, 1, H, W)`` logits > 0 of ``obj_ids`` on ``frame``; returns FrameMasks."""
        masks = (logits[:, 0] > 0).cpu().numpy()
        rles = rle.encode(masks)
        scores = scores or [None] * len(rles)
        entry = {int(o): (r, s) for o, r, s in zip(obj_ids, rles, scores)}
        with self._lock:
            self.masks[frame] = entry
        return frame_masks(frame, entry)

    def frame_result(self, frame: int) -> dict[str, Any]:
        """FrameMasks of the stored masks of ``frame`` (empty list if none)."""
        with self._lock:
            entry = dict(self.masks.get(frame, {}))
        return frame_masks(frame, entry)

    def snapshot(self) -> dict[int, dict[int, dict]]:
        """``{frame: {object_id: rle}}`` of every segmented frame, sorted by frame and object id."""
        with self._lock:
            items = [(t, dict(e)) for t, e in self.masks.items()]
        return {t: {o: e[o][0] for o in sorted(e)} for t, e in sorted(items) if e}

    def forget_objects(self, obj_ids: set[int]) -> None:
        with self._lock:
            for entry in self.masks.values():
                for o in obj_ids:
                    entry.pop(o, None)

    def jpeg(self, frame: int) -> bytes:
        """Frame ``frame`` encoded as JPEG at its original size (recently used ones are cached)."""
        from PIL import Image

        with self._lock:
            data = self._jpegs.get(frame)
            if data is not None:
                self._jpegs.move_to_end(frame)
                return data
        try:
            raw = self._display_frame(frame)
        except RuntimeError:  # the session was closed under us
            self.check_open()
            raise
        buf = io.BytesIO()
        Image.fromarray(raw).save(buf, format="JPEG", quality=90)
        data = buf.getvalue()
        with self._lock:
            self._jpegs[frame] = data
            while sum(len(v) for v in self._jpegs.values()) > JPEG_CACHE_BYTES and len(self._jpegs) > 1:
                self._jpegs.popitem(last=False)
        return data

    def _display_frame(self, frame: int) -> np.ndarray:
        """Original frame for the page, read with a decoder of its own so that showing frames does not
        make the model's decoder seek back and forth during a propagation."""
        if self.upload_path is None:
            return self.state.frames.raw_frame(frame)
        with self._lock:
            self.check_open()
            if self._display is None:
                from sam2.utils.video_decode import VideoFileSource

                self._display = VideoFileSource(str(self.upload_path))
            display = self._display
        return display.read(frame)

    def raw_frames(self) -> Iterator[np.ndarray]:
        """Every original frame ``(H, W, 3)`` uint8, in order (a separate decoder for videos)."""
        if self.upload_path is None:
            for t in range(self.num_frames):
                yield self.state.frames.raw_frame(t)
            return
        from sam2.utils.video_decode import VideoFileSource

        source = VideoFileSource(str(self.upload_path))
        try:
            for t in range(self.num_frames):
                yield source.read(t)
        finally:
            source.close()

    # ------------------------------------------------------------------------------ model jobs

    def add_points_job(self, predictor: Any, limits: DemoLimits, frame: int, obj_id: int, points: list,
                       labels: list, box: list | None, clear_old_points: bool) -> dict[str, Any]:
        """Clicks (and/or a box) for one object on one frame -> FrameMasks of that frame."""
        self.check_open()
        self.check_frame(frame)
        self.check_new_object(obj_id, limits)
        if not points and box is None:
            raise DemoError(422, "give at least one point or a box")
        if len(points) != len(labels):
            raise DemoError(422, f"{len(points)} point(s) but {len(labels)} label(s): give one label per point")
        for x, y in points + ([box[:2], box[2:]] if box is not None else []):
            if not (0 <= x <= self.width and 0 <= y <= self.height):
                raise DemoError(422, f"point ({x:g}, {y:g}) is outside the {self.width}x{self.height} frame")
        if box is not None and not (box[0] < box[2] and box[1] < box[3]):
            raise DemoError(422, f"box {box} must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
        coords = np.array(points, dtype=np.float32).reshape(-1, 2) if points else None
        labs = np.array(labels, dtype=np.int32) if points else None
        try:
            _, obj_ids, logits = predictor.add_new_points_or_box(
                self.state, frame, obj_id, points=coords, labels=labs,
                box=None if box is None else np.array(box, dtype=np.float32), clear_old_points=clear_old_points)
        except ValueError as exc:
            raise DemoError(422, str(exc)) from None
        return self.record(frame, obj_ids, logits)

    def add_mask_job(self, predictor: Any, limits: DemoLimits, frame: int, obj_id: int,
                     mask_rle: dict) -> dict[str, Any]:
        """A mask (COCO RLE at the frame's size) as the prompt of one object on one frame."""
        self.check_open()
        self.check_frame(frame)
        self.check_new_object(obj_id, limits)
        mask = rle.decode(mask_rle, self.height, self.width)
        try:
            _, obj_ids, logits = predictor.add_new_mask(self.state, frame, obj_id, mask)
        except ValueError as exc:
            raise DemoError(422, str(exc)) from None
        return self.record(frame, obj_ids, logits)

    def clear_frame_job(self, predictor: Any, frame: int, obj_id: int | None) -> dict[str, Any]:
        """Remove the prompts of one object (or all) on ``frame``; an object left without any prompt is
        removed (it could not be tracked any more)."""
        self.check_open()
        self.check_frame(frame)
        if obj_id is not None:
            self.check_object(obj_id)
        targets = [obj_id] if obj_id is not None else self.object_ids
        result = None
        for o in targets:
            result = predictor.clear_all_prompts_in_frame(self.state, frame, o, need_output=True)
        orphans = {o for o in targets if not self._has_prompts(o)}
        for o in orphans:
            predictor.remove_object(self.state, o, need_output=False)
        self.forget_objects(orphans)
        if result is None or not self.state.objects:
            with self._lock:
                self.masks.pop(frame, None)
            return frame_masks(frame, {})
        _, obj_ids, logits = result
        keep = [i for i, o in enumerate(obj_ids) if int(o) not in orphans]
        return self.record(frame, [obj_ids[i] for i in keep], logits[keep])

    def _has_prompts(self, obj_id: int) -> bool:
        idx = self.state.obj_idx(obj_id)
        return idx is not None and bool(self.state.objects[idx].input_frames())

    def remove_object_job(self, predictor: Any, obj_id: int) -> dict[str, Any]:
        self.check_open()
        self.check_object(obj_id)
        predictor.remove_object(self.state, obj_id, need_output=False)
        self.forget_objects({obj_id})
        return {"objects": self.object_ids}

    def release_job(self) -> None:
        """Free the frames, features and outputs (run on the model thread, after any running job)."""
        try:
            self.state.frames.close()
        finally:
            self.state.objects.clear()
            self.state.cached_features = None
            with self._lock:
                self.masks.clear()
                self._jpegs.clear()
                if self._display is not None:
                    self._display.close()
                    self._display = None
            if self.upload_path is not None:
                self.upload_path.unlink(missing_ok=True)


def frame_masks(frame: int, entry: dict[int, tuple[dict, float | None]]) -> dict[str, Any]:
    """The FrameMasks JSON of one frame."""
    return {"frame": frame, "masks": [{"object_id": o, "rle": r, "score": s} for o, (r, s) in entry.items()]}


def new_session_id() -> str:
    """An unguessable session id (128 random bits, URL-safe)."""
    return secrets.token_urlsafe(16)
