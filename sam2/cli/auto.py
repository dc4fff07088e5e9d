"""``sam2 auto``: segment everything in images (``SAM2AutomaticMaskGenerator``), COCO-style RLE output."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from sam2.cli import common, media
from sam2.scale.cli_options import RAY_HELP, add_ray_arguments, path_or_url, refuse_urls, scale_options

log = logging.getLogger(__name__)

DESCRIPTION = f"""\
Segment everything in one image, or in every image of a folder (not recursive), with
SAM2AutomaticMaskGenerator: the model is prompted with a grid of points, and the masks that pass the
quality filters are kept after non-maximum suppression. Generator options and their defaults are those
of the official SAM2AutomaticMaskGenerator (the official notebooks use e.g. --points-per-side 64
--pred-iou-thresh 0.7 --stability-score-thresh 0.92 --crop-n-layers 1 for denser results).

Output folder OUT (created; files of the same name are replaced):
  annotations.json     COCO-style: "images" (id, file_name, path, width, height), "annotations" (id,
                       image_id, category_id 1, segmentation = COCO RLE {{"size": [h, w], "counts": str}}
                       as written by pycocotools, area, bbox [x, y, w, h], iscrowd 0, predicted_iou,
                       stability_score, point_coords, crop_box), "categories" ([{{"id": 1}}]);
                       loadable with pycocotools.coco.COCO. Masks are in the generator's order.
  overlays/<stem>.png  each image with its masks drawn (largest first), unless --no-overlay
A progress bar counts the point batches (over every crop) of each image, and an image where no mask
passes the filters gets a hint (-q hides both). Nothing is written when an argument is wrong
(exit status 2) or the run fails (exit status 1).

{common.MODEL_HELP}
{RAY_HELP}"""

GENERATOR_OPTIONS = (
    # (option, type, default, help)
    ("points_per_side", common.positive_int, 32, "points sampled along each side of the image"),
    ("points_per_batch", common.positive_int, 64, "points run through the model at once (memory/speed)"),
    ("pred_iou_thresh", common.finite_float, 0.8, "keep masks whose predicted IoU is > this"),
    ("stability_score_thresh", common.finite_float, 0.95, "keep masks whose stability score is >= this"),
    ("stability_score_offset", common.finite_float, 1.0, "logit offset used for the stability score"),
    ("mask_threshold", common.finite_float, 0.0, "mask = logits > this"),
    ("box_nms_thresh", common.unit_float, 0.7, "box IoU above which duplicate masks are removed"),
    ("crop_n_layers", common.crop_layers, 0,
     "layers of image crops (layer i adds 2^i x 2^i crops; at most 4: 341 crops)"),
    ("crop_nms_thresh", common.unit_float, 0.7, "box IoU for duplicates across crops"),
    ("crop_overlap_ratio", common.unit_float, 512 / 1500, "overlap of neighbouring crops"),
    ("crop_n_points_downscale_factor", common.positive_int, 1, "points per side shrink by this per crop layer"),
    ("min_mask_region_area", common.non_negative_int, 0,
     "remove holes and specks up to this area (low-res pixels); 0 = off"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sam2 auto``."""
    p = subparsers.add_parser("auto", help="segment everything in an image or a folder of images",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IMAGE_OR_FOLDER", type=path_or_url(common.existing_path),
                   help="an image file, or a folder whose images (JPEG, PNG, BMP, TIFF, WebP) are all processed "
                        "(with --ray also a URL)")
    p.add_argument("-o", "--output", metavar="OUT", type=path_or_url(Path), required=True,
                   help="output folder (with --ray also a URL)")
    gen = p.add_argument_group("mask generator (official defaults)")
    for name, kind, default, text in GENERATOR_OPTIONS:
        shown = f"{default:.4g}" if isinstance(default, float) else default
        gen.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=default,
                         metavar="X" if kind in (common.finite_float, common.unit_float) else "N",
                         help=f"{text} (default {shown})")
    gen.add_argument("--use-m2m", action="store_true", help="refine each mask once with its own logits")
    gen.add_argument("--multimask", dest="multimask", action=argparse.BooleanOptionalAction, default=True,
                     help="3 candidate masks per point (default) or 1")
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay PNGs")
    common.add_model_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_ray_arguments(p)
    p.set_defaults(func=common.interruptible(run), _parser=p)
    return p


def list_images(parser: argparse.ArgumentParser, path: Path) -> list[Path]:
    """The image files to process (sorted by name); usage error when there is none or one is unreadable."""
    from sam2.utils.video_decode import IMAGE_EXTENSIONS

    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            parser.error(f"argument IMAGE_OR_FOLDER: no image ({', '.join(IMAGE_EXTENSIONS)}) in {str(path)!r}")
    else:
        files = [path]
    for f in files:
        try:
            media.image_size(f)
        except ValueError as exc:
            parser.error(f"argument IMAGE_OR_FOLDER: {exc}")
    return files


def overlay_names(files: list[Path]) -> list[str]:
    """``<stem>.png`` per file; files sharing a stem keep their extension in the name (``a_jpg.png``)."""
    stems = [f.stem for f in files]
    return [f"{f.stem}.png" if stems.count(f.stem) == 1 else f"{f.stem}_{f.suffix.lstrip('.')}.png"
            for f in files]


def _check_generator_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The generator's own checks (e.g. a crop layer left without points), before the model loads."""
    from sam2.utils.amg_settings import checked_settings

    kwargs = generator_kwargs(args)
    try:
        checked_settings(kwargs.pop("points_per_side"), None, kwargs.pop("crop_n_layers"), **kwargs)
    except ValueError as exc:
        name = str(exc).split()[0].split("=")[0]  # the messages start with the setting's name
        parser.error(f"argument --{name.replace('_', '-')}: {exc}")


def generator_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ``SAM2AutomaticMaskGenerator`` from the options."""
    kwargs = {name: getattr(args, name) for name, *_ in GENERATOR_OPTIONS}
    return dict(kwargs, use_m2m=args.use_m2m, multimask_output=args.multimask, output_mode="coco_rle")


def coco_records(records: list[dict], image_id: int, first_id: int) -> list[dict]:
    """Generator records (``coco_rle`` mode) -> COCO annotations numbered from ``first_id``."""
    out = []
    for k, rec in enumerate(records):
        out.append({"id": first_id + k, "image_id": image_id, "category_id": 1,
                    "segmentation": rec["segmentation"], "area": int(rec["area"]),
                    "bbox": [float(v) for v in rec["bbox"]], "iscrowd": 0,
                    "predicted_iou": float(rec["predicted_iou"]), "stability_score": float(rec["stability_score"]),
                    "point_coords": rec["point_coords"], "crop_box": [float(v) for v in rec["crop_box"]]})
    return out


def draw(image: np.ndarray, records: list[dict]) -> np.ndarray:
    """Overlay of the records' masks, largest first so that small masks stay visible."""
    from pycocotools import mask as mask_utils

    order = sorted(range(len(records)), key=lambda i: -records[i]["area"])
    masks = [mask_utils.decode(records[i]["segmentation"]).astype(bool) for i in order]
    return media.overlay(image, masks, [media.color(i + 1) for i in range(len(masks))], alpha=0.45)


@contextmanager
def _batch_bar(generator: Any, label: str, quiet: bool) -> Iterator[None]:
    """A progress bar over the point batches (of every crop) of one image."""
    from tqdm import tqdm

    with tqdm(desc=label, unit="batch", disable=quiet, leave=False) as bar:
        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        generator.progress = advance
        try:
            yield
        finally:
            generator.progress = None


def _check_single_process(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """URLs and --overwrite belong to --ray runs."""
    if args.overwrite:
        parser.error("argument --overwrite: only with --ray (sam2 auto always rewrites its outputs)")
    refuse_urls(parser, (args.input, "IMAGE_OR_FOLDER"), (args.output, "-o/--output"))


def run(args: argparse.Namespace) -> int:
    """Validate, generate the masks of every image, write; returns the exit code."""
    parser = args._parser
    options = scale_options(parser, args)
    if options is None:
        _check_single_process(parser, args)
    else:
        if not isinstance(args.output, str):
            common.check_output_dir(parser, args.output)
        _check_generator_options(parser, args)
        from sam2.scale.auto_job import run_from_args

        return run_from_args(args, options)
    common.check_output_dir(parser, args.output)
    files = list_images(parser, args.input)
    _check_generator_options(parser, args)
    spec = common.model_spec(parser, args.model, args.config, args.checkpoint)
    device = common.resolve_device(parser, args.device)

    import torch
    from PIL import Image

    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    common.say(args.quiet, "loading the model ...")
    try:
        model = common.build_model(spec, device)
    except common.ModelLoadError as exc:
        log.error("%s", exc)
        return 1
    generator = SAM2AutomaticMaskGenerator(model, **generator_kwargs(args))
    coco: dict[str, Any] = {"info": {"description": "sam2 auto", "model": spec.describe(),
                                     "generator": generator_kwargs(args)},
                            "images": [], "annotations": [], "categories": [{"id": 1, "name": "object"}]}
    try:
        with common.StagedOutput(args.output) as folder:
            if not args.no_overlay:
                (folder / "overlays").mkdir()
            names = overlay_names(files)
            for image_id, (path, name) in enumerate(zip(files, names), start=1):
                image = media.read_rgb(path)
                with torch.inference_mode(), _batch_bar(generator, f"{image_id}/{len(files)} {path.name}",
                                                         args.quiet):
                    records = generator.generate(image)
                if not records:
                    log.warning("%s: no mask passed the filters (predicted IoU > %g, stability >= %g); try lower "
                                "--pred-iou-thresh / --stability-score-thresh, e.g. 0.6 and 0.8", path,
                                args.pred_iou_thresh, args.stability_score_thresh)
                coco["images"].append({"id": image_id, "file_name": path.name, "path": str(path),
                                       "width": int(image.shape[1]), "height": int(image.shape[0])})
                coco["annotations"] += coco_records(records, image_id, len(coco["annotations"]) + 1)
                if not args.no_overlay:
                    Image.fromarray(draw(image, records)).save(folder / "overlays" / name)
                log.info("%s: %d masks", path, len(records))
            (folder / "annotations.json").write_text(json.dumps(coco, allow_nan=False) + "\n")
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1
    if not args.quiet:
        print(f"{len(coco['annotations'])} masks in {len(files)} image(s): {args.output / 'annotations.json'}")
    return 0
