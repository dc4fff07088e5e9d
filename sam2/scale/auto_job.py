"""``sam2 auto --ray``: segment everything in a folder of images with Ray workers that each hold one
``SAM2AutomaticMaskGenerator``; the output is that of ``sam2 auto`` (``annotations.json``, ``overlays/``).

Each worker writes the overlay of an image and records the image's COCO annotations in the job's ledger
(:mod:`sam2.scale.ledger`); the driver then merges the records of every done image, in file-name order,
into ``annotations.json`` with image ids 1..N and annotation ids 1..M, the numbering of ``sam2 auto``. On
the same inputs and options the file is byte-for-byte the one ``sam2 auto`` writes. An unreadable image is
left out (listed in ``failures.jsonl``); ``sam2 auto`` would refuse the whole folder instead.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sam2.cli.common import ModelSpec
from sam2.scale.driver import execute, run_batch, set_worker_threads
from sam2.scale.ledger import InputError, JobSummary, Ledger
from sam2.scale.paths import Location, is_url, location
from sam2.scale.ray_runtime import ScaleOptions, for_workers, preflight

log = logging.getLogger(__name__)

ANNOTATIONS_FILE = "annotations.json"


@dataclass(frozen=True)
class AutoJob:
    """What every worker needs (pickled once per actor)."""

    spec: ModelSpec
    device: str | None
    generator: dict[str, Any]
    output: Location
    overlays: bool
    cpus: float


def pick_device(name: str | None) -> Any:
    """``torch.device(name)``; by default cuda when this worker was given a GPU, else cpu."""
    import torch

    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def read_image(source: Location) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file or URL; ``ValueError`` naming it when unreadable."""
    from sam2.cli import media

    local = source.local
    if local is not None:
        return media.read_rgb(local)
    try:
        return media.read_rgb(io.BytesIO(source.read_bytes()))  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"cannot read image {source.url!r}: {exc.__cause__}") from exc


class AutoWorker:
    """A Ray Data actor: one model and mask generator, images in, overlays and ledger records out."""

    def __init__(self, job: AutoJob) -> None:
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
        from sam2.cli.common import build_model

        set_worker_threads(job.cpus)
        self.job = job
        self.generator = SAM2AutomaticMaskGenerator(build_model(job.spec, pick_device(job.device)), **job.generator)
        self.ledger = Ledger(job.output)
        self.ledger.register_worker()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        return run_batch(self.ledger, batch, self._one)

    def _one(self, row: dict[str, str]) -> dict[str, Any]:
        import torch
        from PIL import Image

        from sam2.cli.auto import coco_records, draw

        image = read_image(Location(row["source"]))
        with torch.inference_mode():
            records = self.generator.generate(image)
        if self.job.overlays:
            buffer = io.BytesIO()
            Image.fromarray(draw(image, records)).save(buffer, format="PNG")
            self.job.output.child("overlays", row["overlay"]).write_bytes(buffer.getvalue())
        height, width = image.shape[:2]
        return {"image": {"file_name": row["key"], "path": row["path"], "width": int(width), "height": int(height)},
                "annotations": coco_records(records, image_id=0, first_id=0)}


def list_inputs(source: str | os.PathLike) -> list[dict[str, str]]:
    """One item per image (sorted by name): ``key`` (file name), ``source`` (URL or absolute path),
    ``path`` (as ``sam2 auto`` writes it: the input as given joined with the name), ``overlay`` name."""
    from sam2.cli.auto import overlay_names
    from sam2.utils.video_decode import IMAGE_EXTENSIONS

    where = location(source)
    if not where.exists():
        raise InputError(f"{str(source)!r} does not exist")
    text = str(source)
    if where.is_dir():
        names = [n for n in where.names() if Path(n).suffix.lower() in IMAGE_EXTENSIONS]
        if not names:
            raise InputError(f"no image ({', '.join(IMAGE_EXTENSIONS)}) in {text!r}")
        sources = [where.child(n).url for n in names]
        shown = [text.rstrip("/") + "/" + n if is_url(text) else str(Path(text) / n) for n in names]
    else:
        names, sources, shown = [where.url.rstrip("/").rsplit("/", 1)[-1]], [where.url], [text]
    overlays = overlay_names([Path(n) for n in names])
    return [{"key": n, "source": s, "path": p, "overlay": o} for n, s, p, o in zip(names, sources, shown, overlays)]


def merge(items: list[dict[str, str]], results: dict[str, dict[str, Any]], ledger: Ledger,
          info: dict[str, Any]) -> dict[str, Any]:
    """The COCO document of every done item, numbered in item order as ``sam2 auto`` numbers it."""
    done = ledger.done_keys()
    coco: dict[str, Any] = {"info": info, "images": [], "annotations": [], "categories": [{"id": 1, "name": "object"}]}
    for item in items:
        key = item["key"]
        if key not in results and key not in done:
            continue  # failed
        record = results[key] if key in results else ledger.record(key)
        image_id = len(coco["images"]) + 1
        coco["images"].append({"id": image_id, **record["image"]})
        first = len(coco["annotations"]) + 1
        coco["annotations"] += [{**ann, "id": first + k, "image_id": image_id}
                                for k, ann in enumerate(record["annotations"])]
    return coco


def segment_everything(source: str | os.PathLike, output: str | os.PathLike, spec: ModelSpec,
                       generator: dict[str, Any], options: ScaleOptions = ScaleOptions(), overlays: bool = True,
                       device: str | None = None) -> JobSummary:
    """``sam2 auto`` on Ray: every image of ``source`` (a file or folder, local or URL) into ``output``.

    ``generator``: keyword arguments of ``SAM2AutomaticMaskGenerator`` (``output_mode`` must be
    ``coco_rle``). Returns the job summary (failed images are in ``<output>/failures.jsonl``)."""
    if generator.get("output_mode") != "coco_rle":
        raise ValueError("generator output_mode must be 'coco_rle'")
    preflight(options)
    items = list_inputs(source)
    out = location(output)
    ledger = Ledger(out)
    settings = {"command": "auto", "input": location(source).url, "model": spec.describe(),
                "generator": generator, "overlays": overlays}
    job = AutoJob(for_workers(spec), device, generator, out, overlays, options.cpus_per_worker)
    out.mkdir()
    summary, results = execute(items, AutoWorker, job, ledger, settings, options, unit="image")
    info = {"description": "sam2 auto", "model": spec.describe(), "generator": generator}
    coco = merge(items, results, ledger, info)
    out.child(ANNOTATIONS_FILE).write_text(json.dumps(coco, allow_nan=False) + "\n")
    with_masks = {a["image_id"] for a in coco["annotations"]}
    empty = [img["file_name"] for img in coco["images"] if img["id"] not in with_masks and img["file_name"] in results]
    if empty:
        log.warning("%d image(s) without any mask passing the filters (e.g. %s); try lower --pred-iou-thresh / "
                    "--stability-score-thresh", len(empty), empty[0])
    return summary


def run_from_args(args: argparse.Namespace, options: ScaleOptions) -> int:
    """``sam2 auto --ray`` after the CLI's checks; returns the exit code."""
    from sam2.cli import common
    from sam2.cli.auto import generator_kwargs
    from sam2.scale.cli_options import guarded, report

    parser = args._parser
    spec = common.model_spec(parser, args.model, args.config, args.checkpoint)
    with guarded(parser, "IMAGE_OR_FOLDER", "-o/--output") as outcome:
        outcome.summary = segment_everything(args.input, args.output, spec, generator_kwargs(args), options,
                                             overlays=not args.no_overlay, device=args.device)
    return report(outcome, location(args.output), "image", args.quiet)
