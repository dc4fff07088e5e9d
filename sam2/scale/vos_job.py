"""``sam2 vos --ray``: semi-supervised VOS inference over a dataset with Ray workers that each hold one
video predictor; the output folders are those of ``sam2 vos`` (DAVIS or SA-V PNG layout per video).

A worker writes one video's masks into a staging folder and moves it to ``<output_mask_dir>/<video>``
(one rename on a local filesystem; an upload on an object store), then records the video in the job's
ledger. A video that fails (unreadable frame, missing or inconsistent input masks) is listed in
``failures.jsonl`` and the other videos go on. Remote inputs are downloaded one video at a time into the
worker's temporary folder.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sam2.cli.common import ModelSpec
from sam2.scale.auto_job import pick_device
from sam2.scale.driver import execute, run_batch, set_worker_threads
from sam2.scale.ledger import InputError, JobSummary, Ledger
from sam2.scale.paths import Location, location
from sam2.scale.ray_runtime import ScaleOptions, for_workers, preflight

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VosSettings:
    """The ``sam2 vos`` options that change results (see ``sam2 vos --help``)."""

    score_thresh: float = 0.0
    use_all_masks: bool = False
    per_obj_png_file: bool = False
    apply_postprocessing: bool = False
    track_object_appearing_later_in_video: bool = False
    use_vos_optimized_video_predictor: bool = False
    autocast: bool = True


@dataclass(frozen=True)
class VosJob:
    """What every worker needs (pickled once per actor)."""

    spec: ModelSpec
    device: str | None
    settings: VosSettings
    videos: Location
    masks: Location
    output: Location
    cpus: float


class VosWorker:
    """A Ray Data actor: one video predictor, videos in, mask folders and ledger records out."""

    def __init__(self, job: VosJob) -> None:
        from sam2.cli.common import build_model

        set_worker_threads(job.cpus)
        self.job = job
        self.device = pick_device(job.device)
        overrides = ["++model.non_overlap_masks=" + ("false" if job.settings.per_obj_png_file else "true")]
        self.predictor = build_model(job.spec, self.device, video=True, hydra_overrides_extra=overrides,
                                     apply_postprocessing=job.settings.apply_postprocessing,
                                     vos_optimized=job.settings.use_vos_optimized_video_predictor,
                                     checkpoint_flag="--sam2_checkpoint")
        self.predictor.show_progress = False
        self.ledger = Ledger(job.output)
        self.ledger.register_worker()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        return run_batch(self.ledger, batch, self._one)

    def _one(self, row: dict[str, str]) -> dict[str, Any]:
        import torch

        from sam2.eval.vos import vos_inference, vos_separate_inference_per_object

        job, s = self.job, self.job.settings
        video = row["key"]
        infer = vos_separate_inference_per_object if s.track_object_appearing_later_in_video else vos_inference
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                    if self.device.type == "cuda" and s.autocast else nullcontext())
        out_local = job.output.local
        work = Path(tempfile.mkdtemp(prefix=f".{video}.partial-", dir=out_local))
        try:
            frames, masks = self._inputs(video, work)
            with torch.inference_mode(), autocast:
                written = infer(self.predictor, frames, masks, work / "out", video, score_thresh=s.score_thresh,
                                use_all_masks=s.use_all_masks, per_obj_png_file=s.per_obj_png_file)
            (work / "out" / video).mkdir(parents=True, exist_ok=True)  # a video may have produced no mask
            job.output.child(video).publish_dir(work / "out" / video)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return {"frames": int(written)}

    def _inputs(self, video: str, work: Path) -> tuple[Path, Path]:
        """Local folders holding ``<video>/`` frames and masks (downloaded into ``work`` when remote)."""
        folders = []
        for name, where in (("frames", self.job.videos), ("masks", self.job.masks)):
            local = where.local
            if local is None:
                where.child(video).download(work / name / video)
                local = work / name
            folders.append(local)
        return folders[0], folders[1]


def list_items(videos: Location, masks: Location, video_list: str | os.PathLike | None) -> list[dict[str, str]]:
    """One item per video (``key`` = video name), from the list file or the sub-folders of ``videos``."""
    from sam2.eval.vos import list_videos
    from sam2.utils.safe_names import plain_name

    if video_list is not None:
        names = list_videos(".", video_list)
    elif videos.local is not None:
        names = list_videos(videos.local)
    else:
        names = [plain_name(n, f"video folder in {videos.url!r}") for n in videos.names(dirs=True)]
    if not names:
        raise InputError(f"no video to process in {videos.url!r}")
    return [{"key": n} for n in names]


def track_videos(base_video_dir: str | os.PathLike, input_mask_dir: str | os.PathLike,
                 output_mask_dir: str | os.PathLike, spec: ModelSpec, settings: VosSettings = VosSettings(),
                 options: ScaleOptions = ScaleOptions(), video_list_file: str | os.PathLike | None = None,
                 device: str | None = None) -> JobSummary:
    """``sam2 vos`` on Ray: every video of ``base_video_dir`` (local or URL) into ``output_mask_dir``."""
    preflight(options)
    videos, masks, out = location(base_video_dir), location(input_mask_dir), location(output_mask_dir)
    for where in (videos, masks):
        if not where.is_dir():
            raise InputError(f"{where.url!r} is not a folder")
    try:
        items = list_items(videos, masks, video_list_file)
    except (ValueError, OSError) as exc:
        raise InputError(str(exc)) from exc
    ledger = Ledger(out)
    recorded = {"command": "vos", "input": videos.url, "masks": masks.url, "model": spec.describe(),
                **{k: v for k, v in vars(settings).items() if k != "use_vos_optimized_video_predictor"}}
    out.mkdir()
    job = VosJob(for_workers(spec), device, settings, videos, masks, out, options.cpus_per_worker)
    summary, _ = execute(items, VosWorker, job, ledger, recorded, options, unit="video")
    return summary


def run_from_args(args: argparse.Namespace, options: ScaleOptions) -> int:
    """``sam2 vos --ray`` after the CLI's checks; returns the exit code."""
    from sam2.cli import common
    from sam2.scale.cli_options import guarded, report

    parser = args._parser
    spec = common.model_spec(parser, args.model, args.sam2_cfg, args.sam2_checkpoint,
                             config_flag="--sam2_cfg", checkpoint_flag="--sam2_checkpoint")
    settings = VosSettings(score_thresh=args.score_thresh, use_all_masks=args.use_all_masks,
                           per_obj_png_file=args.per_obj_png_file, apply_postprocessing=args.apply_postprocessing,
                           track_object_appearing_later_in_video=args.track_object_appearing_later_in_video,
                           use_vos_optimized_video_predictor=args.use_vos_optimized_video_predictor,
                           autocast=not args.no_autocast)
    with guarded(parser, "--base_video_dir", "--output_mask_dir") as outcome:
        outcome.summary = track_videos(args.base_video_dir, args.input_mask_dir, args.output_mask_dir, spec,
                                       settings, options, args.video_list_file, args.device)
    return report(outcome, location(args.output_mask_dir), "video", args.quiet)
