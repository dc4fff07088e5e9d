"""J&F evaluation of predicted video masks against ground truth, following the SA-V evaluator.

Folder layouts (decided per ground-truth video folder):

* DAVIS: ``<gt_root>/<video>/<frame>.png`` index images (value = object id, 0 = background); the
  video is one evaluation unit in which every id is an object.
* SA-V: ``<gt_root>/<video>/<obj>/<frame>.png`` binary masks (value > 0 = object, at most two
  distinct values per file); every object folder is a unit with one object named after the folder.

Predictions use the same relative paths under ``pred_root`` and the same image sizes. Per unit, the
frames evaluated are its sorted ground-truth PNG names without the first and the last one (unless
``skip_first_and_last=False``); extra prediction files are ignored. On each frame every object seen so
far in the ground truth *or* the prediction of that unit is scored (:mod:`sam2.eval.metrics`), so an
object counts from the first frame where it appears in either. Objects that never appear in the
evaluated ground truth are not reported (in the SA-V layout this is an error, as in the official tool).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sam2.eval.metrics import BOUNDARY_THRESHOLD, boundary_f_measure, boundary_radius, disk, region_similarity
from sam2.eval.results import EvalResult, ObjectScore, VideoScore
from sam2.utils.png_masks import read_mask_png

__all__ = ["ObjectAccumulator", "evaluate", "evaluate_video"]

log = logging.getLogger(__name__)


class ObjectAccumulator:
    """Per-object J and F over the frames of one evaluation unit, with the cumulative object set.

    Feed (H, W) integer arrays (0 = background, other values = object ids) frame by frame.
    """

    def __init__(self, bound_th: float = BOUNDARY_THRESHOLD) -> None:
        self.bound_th = bound_th
        self.ids_in_gt: set[int] = set()
        self.ids_seen: set[int] = set()
        self.frames: dict[int, list[str]] = defaultdict(list)
        self.j: dict[int, list[float]] = defaultdict(list)
        self.f: dict[int, list[float]] = defaultdict(list)

    def add_frame(self, pred: np.ndarray, gt: np.ndarray, frame: str = "") -> None:
        """Score every object seen so far on this frame; ``pred`` and ``gt`` are (H, W) id arrays."""
        gt_ids = {int(i) for i in np.unique(gt) if i != 0}
        pred_ids = {int(i) for i in np.unique(pred) if i != 0}
        self.ids_in_gt |= gt_ids
        self.ids_seen |= gt_ids | pred_ids
        footprint = disk(boundary_radius(*pred.shape, bound_th=self.bound_th))
        for obj in sorted(self.ids_seen):
            if obj in gt_ids or obj in pred_ids:
                obj_pred, obj_gt = pred == obj, gt == obj
                j, f = region_similarity(obj_pred, obj_gt), boundary_f_measure(obj_pred, obj_gt, footprint)
            else:  # empty in both: J = 1 and F = 1 by definition
                j, f = 1.0, 1.0
            self.frames[obj].append(frame)
            self.j[obj].append(j)
            self.f[obj].append(f)

    def scores(self) -> dict[int, tuple[float, float]]:
        """``{object_id: (J, F)}`` in percent (100 * mean over counted frames), ids present in the GT only."""
        return {obj: (float(np.mean(self.j[obj])) * 100, float(np.mean(self.f[obj])) * 100)
                for obj in sorted(self.ids_in_gt)}

    def object_score(self, video: str, name: str, obj: int) -> ObjectScore:
        j, f = self.scores()[obj]
        return ObjectScore(video, name, j, f, tuple(self.frames[obj]), tuple(self.j[obj]), tuple(self.f[obj]))


def _visible(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if not n.startswith("."))


@dataclass(frozen=True)
class _Unit:
    """One evaluation unit: a DAVIS video (``obj`` None) or one SA-V object folder."""

    obj: str | None
    gt_dir: Path
    pred_dir: Path
    frames: list[str]


def _scan_video(gt_video: Path, pred_video: Path) -> tuple[str, list[_Unit]]:
    """Layout (``"davis"`` / ``"sav"``) and evaluation units of one ground-truth video folder."""
    entries = _visible(os.listdir(gt_video))
    if not entries:
        raise ValueError(f"ground-truth video folder {str(gt_video)!r} is empty")
    if all(name.endswith(".png") for name in entries):
        return "davis", [_Unit(None, gt_video, pred_video, entries)]
    strays = [name for name in entries if not (gt_video / name).is_dir()]
    if strays:
        raise ValueError(
            f"ground-truth video folder {str(gt_video)!r} mixes layouts: expected only <frame>.png files "
            f"(DAVIS layout) or only object folders (SA-V layout), found {strays[:5]}"
        )
    units = []
    for obj in entries:
        frames = [n for n in _visible(os.listdir(gt_video / obj)) if n.endswith(".png")]
        if not (pred_video / obj).is_dir():
            raise FileNotFoundError(
                f"prediction of object {obj!r} of video {gt_video.name!r} not found: "
                f"{str(pred_video / obj)!r} is not a folder"
            )
        units.append(_Unit(obj, gt_video / obj, pred_video / obj, frames))
    return "sav", units


def _read_pair(unit: _Unit, frame: str, binary: bool) -> tuple[np.ndarray, np.ndarray]:
    """(pred, gt) id arrays of one frame; SA-V masks become 0/1 after checking they hold one object."""
    gt_path, pred_path = unit.gt_dir / frame, unit.pred_dir / frame
    if not pred_path.is_file():
        raise FileNotFoundError(
            f"predicted mask {str(pred_path)!r} not found (needed for ground truth {str(gt_path)!r})"
        )
    gt, pred = read_mask_png(gt_path), read_mask_png(pred_path)
    if gt.shape != pred.shape:
        raise ValueError(
            f"size mismatch: ground truth {str(gt_path)!r} is {gt.shape[1]}x{gt.shape[0]} (WxH) but "
            f"prediction {str(pred_path)!r} is {pred.shape[1]}x{pred.shape[0]}"
        )
    if binary:
        for array, path in ((gt, gt_path), (pred, pred_path)):
            if len(np.unique(array)) > 2:
                raise ValueError(f"{str(path)!r} holds more than one object; the SA-V layout expects one "
                                 "binary mask per PNG")
        gt, pred = (gt > 0).astype(np.uint8), (pred > 0).astype(np.uint8)
    return pred, gt


def evaluate_video(gt_root: str | os.PathLike, pred_root: str | os.PathLike, video: str,
                   skip_first_and_last: bool = True, bound_th: float = BOUNDARY_THRESHOLD) -> VideoScore:
    """Evaluate one video folder ``<root>/<video>`` (either layout) -> :class:`VideoScore`."""
    gt_video, pred_video = Path(gt_root) / video, Path(pred_root) / video
    if not pred_video.is_dir():
        raise FileNotFoundError(f"prediction folder of video {video!r} not found: {str(pred_video)!r}")
    layout, units = _scan_video(gt_video, pred_video)
    objects = []
    for unit in units:
        frames = unit.frames[1:-1] if skip_first_and_last else unit.frames
        acc = ObjectAccumulator(bound_th)
        for frame in frames:
            pred, gt = _read_pair(unit, frame, binary=layout == "sav")
            acc.add_frame(pred, gt, frame)
        if layout == "davis":
            objects += [acc.object_score(video, f"{obj:03d}", obj) for obj in acc.scores()]
        elif 1 in acc.ids_in_gt:
            objects.append(acc.object_score(video, unit.obj, 1))
        else:
            raise ValueError(
                f"object folder {str(unit.gt_dir)!r} has no foreground pixel in any of the {len(frames)} "
                "evaluated ground-truth frames, so it cannot be scored (the first and last frames are "
                "skipped unless skip_first_and_last=False)"
            )
    if not objects:
        log.warning("video %r has no object in its evaluated ground-truth frames; it adds no score", video)
    return VideoScore(video, layout, tuple(objects))


@dataclass(frozen=True)
class _VideoJob:
    """Picklable per-video task for the worker pool."""

    gt_root: str
    pred_root: str
    skip_first_and_last: bool
    bound_th: float

    def __call__(self, video: str) -> VideoScore:
        return evaluate_video(self.gt_root, self.pred_root, video, self.skip_first_and_last, self.bound_th)


def _subdirs(root: Path) -> list[str]:
    return [name for name in _visible(os.listdir(root)) if (root / name).is_dir()]


def _resolve_gt_root(gt_root: Path, pred_root: Path) -> Path:
    """Accept a dataset root holding ``Annotations/`` (official rule: only when the folder counts differ),
    and in it the DAVIS evaluation resolution ``Annotations/480p/`` when there is one."""
    entries, pred_entries = os.listdir(gt_root), os.listdir(pred_root)
    annotations = gt_root / "Annotations"
    if len(entries) != len(pred_entries) and annotations.is_dir():
        davis = annotations / "480p"
        if davis.is_dir():
            log.info("using %s as the ground-truth root (DAVIS layout)", davis)
            return davis
        inner = _visible(os.listdir(annotations))
        if inner and not inner[0].endswith(".png"):
            log.info("using %s as the ground-truth root", annotations)
            return annotations
    return gt_root


def _run_jobs(job: _VideoJob, videos: Sequence[str], num_processes: int | None,
              progress: bool) -> list[VideoScore]:
    processes = min(num_processes or os.cpu_count() or 1, len(videos))
    bar = tqdm(total=len(videos), desc="videos", unit="video", disable=not progress)
    results: dict[str, VideoScore] = {}
    with bar:
        if processes <= 1:
            for video in videos:
                results[video] = job(video)
                bar.update()
        else:
            with multiprocessing.Pool(processes) as pool:
                for score in pool.imap_unordered(job, videos):
                    results[score.video] = score
                    bar.update()
    return [results[v] for v in videos]


def evaluate(gt_root: str | os.PathLike, pred_root: str | os.PathLike, *, num_processes: int | None = None,
             strict: bool = False, skip_first_and_last: bool = True, progress: bool = False,
             bound_th: float = BOUNDARY_THRESHOLD, videos: Sequence[str] | None = None) -> EvalResult:
    """Evaluate every video folder present in both roots -> :class:`EvalResult` (J, F in percent).

    ``num_processes`` worker processes (default: one per CPU, at most one per video; 1 runs in this
    process). ``strict`` raises ``ValueError`` when the two roots do not hold the same video folders
    (otherwise only their intersection is evaluated). ``skip_first_and_last`` drops the first and last
    ground-truth frame of every unit (standard semi-supervised protocol). ``progress`` shows a tqdm
    bar. ``videos`` restricts the evaluation to these names. Missing or unreadable files raise
    ``FileNotFoundError`` / ``ValueError`` naming them.
    """
    gt_path, pred_path = Path(gt_root), Path(pred_root)
    for what, root in (("ground-truth", gt_path), ("prediction", pred_path)):
        if not root.is_dir():
            raise FileNotFoundError(f"{what} root {str(root)!r} is not a folder")
    gt_path = _resolve_gt_root(gt_path, pred_path)
    gt_videos, pred_videos = set(_subdirs(gt_path)), set(_subdirs(pred_path))
    missing, extra = sorted(gt_videos - pred_videos), sorted(pred_videos - gt_videos)
    if strict and (missing or extra):
        raise ValueError(
            f"ground truth {str(gt_path)!r} and predictions {str(pred_path)!r} differ: videos without "
            f"prediction {missing[:10]}{' ...' if len(missing) > 10 else ''}, predictions without ground "
            f"truth {extra[:10]}{' ...' if len(extra) > 10 else ''}"
        )
    if missing:
        log.warning("%d ground-truth videos have no prediction folder and are skipped: %s", len(missing),
                    ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    selected = sorted(gt_videos & pred_videos)
    if videos is not None:
        unknown = sorted(set(videos) - set(selected))
        if unknown:
            raise ValueError(f"videos not present in both roots: {unknown[:10]}")
        selected = sorted(set(videos))
    if not selected:
        raise ValueError(f"no video to evaluate: no sub-folder of {str(gt_path)!r} has a matching "
                         f"sub-folder in {str(pred_path)!r}")
    job = _VideoJob(str(gt_path), str(pred_path), skip_first_and_last, bound_th)
    scores = _run_jobs(job, selected, num_processes, progress)
    return EvalResult(tuple(scores), str(gt_path), str(pred_path), tuple(missing), tuple(extra))
