"""Typed results of a J&F evaluation, their text table and CSV file."""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["EvalResult", "ObjectScore", "VideoScore", "CSV_COLUMNS"]

CSV_COLUMNS = ("level", "sequence", "obj", "J&F", "J", "F")


def _mean(values: Sequence[float]) -> float:
    """Plain mean (float64, NumPy's pairwise summation as the official evaluator); NaN when empty."""
    if not values:
        return math.nan
    return float(np.array(values, dtype=np.float64).mean())


@dataclass(frozen=True)
class ObjectScore:
    """J and F (percent) of one object of one video.

    ``obj`` is the object id zero-padded to 3 digits (DAVIS layout) or the object folder name (SA-V
    layout). ``frames`` are the frames that counted (from the first one where the object appears in
    the ground truth or the prediction), with the per-frame values ``frame_j`` / ``frame_f`` in [0, 1].
    """

    video: str
    obj: str
    j: float
    f: float
    frames: tuple[str, ...] = ()
    frame_j: tuple[float, ...] = ()
    frame_f: tuple[float, ...] = ()

    @property
    def jf(self) -> float:
        """(J + F) / 2."""
        return (self.j + self.f) / 2


class _MeanOverObjects:
    """``j``, ``f`` and ``jf`` as plain means over ``self.objects`` (each an :class:`ObjectScore`)."""

    objects: tuple[ObjectScore, ...]

    @property
    def j(self) -> float:
        return _mean([o.j for o in self.objects])

    @property
    def f(self) -> float:
        return _mean([o.f for o in self.objects])

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


@dataclass(frozen=True)
class VideoScore(_MeanOverObjects):
    """The objects of one video; ``layout`` is ``"davis"`` or ``"sav"``. Means are over its objects."""

    video: str
    layout: str
    objects: tuple[ObjectScore, ...]


@dataclass(frozen=True)
class EvalResult(_MeanOverObjects):
    """Result of :func:`sam2.eval.evaluate`.

    The global ``j``, ``f`` are plain means over all (video, object) pairs, not over videos, and
    ``jf = (j + f) / 2``. ``missing_predictions`` lists ground-truth videos without a prediction folder
    and ``extra_predictions`` prediction folders without ground truth (both skipped).
    """

    videos: tuple[VideoScore, ...]
    gt_root: str = ""
    pred_root: str = ""
    missing_predictions: tuple[str, ...] = ()
    extra_predictions: tuple[str, ...] = ()

    @property
    def objects(self) -> tuple[ObjectScore, ...]:
        return tuple(o for v in self.videos for o in v.objects)

    def summary(self) -> str:
        """``Global score: J&F: 80.1 J: 78.0 F: 82.2`` (one decimal, as the official evaluator)."""
        return f"Global score: J&F: {self.jf:.1f} J: {self.j:.1f} F: {self.f:.1f}"

    def table(self) -> str:
        """Text table: one line per (video, object), then one per video, then the global score."""
        width = max([len("sequence"), len("Global score"), *(len(v.video) for v in self.videos)])
        obj_width = max([3, *(len(o.obj) for o in self.objects)])

        def line(name: str, obj: str, jf: float, j: float, f: float) -> str:
            return f"{name:<{width}}  {obj:>{obj_width}}  {jf:>6.1f} {j:>6.1f} {f:>6.1f}"

        header = f"{'sequence':<{width}}  {'obj':>{obj_width}}  {'J&F':>6} {'J':>6} {'F':>6}"
        lines = ["Per object:", header]
        lines += [line(o.video, o.obj, o.jf, o.j, o.f) for o in self.objects]
        lines += ["", "Per video (mean over its objects):", header.replace(" obj", "#obj", 1)]
        lines += [line(v.video, str(len(v.objects)), v.jf, v.j, v.f) for v in self.videos]
        lines += ["", line("Global score", str(len(self.objects)), self.jf, self.j, self.f), "", self.summary()]
        return "\n".join(lines)

    def rows(self) -> list[dict[str, str]]:
        """CSV rows (see :data:`CSV_COLUMNS`): the overall score, then each video followed by its objects."""

        def row(level: str, sequence: str, obj: str, jf: float, j: float, f: float) -> dict[str, str]:
            return {"level": level, "sequence": sequence, "obj": obj,
                    "J&F": f"{jf:.4f}", "J": f"{j:.4f}", "F": f"{f:.4f}"}

        rows = [row("overall", "Global score", "", self.jf, self.j, self.f)]
        for v in self.videos:
            rows.append(row("video", v.video, "", v.jf, v.j, v.f))
            rows += [row("object", o.video, o.obj, o.jf, o.j, o.f) for o in v.objects]
        return rows

    def write_csv(self, path: str | os.PathLike) -> Path:
        """Write :meth:`rows` to ``path`` (atomically: a complete file or none). Returns the path."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
                writer.writeheader()
                writer.writerows(self.rows())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
