"""``sam2 image``: masks of one image from point and box prompts (``SAM2ImagePredictor``)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from sam2.cli import common, media

log = logging.getLogger(__name__)

DESCRIPTION = f"""\
Segment one image from clicks and/or boxes with SAM2ImagePredictor.

Prompts (pixel coordinates of the original image, origin at the top-left corner):
  --point X,Y[,LABEL]   a click; LABEL 1 (default) = on the object, 0 = background. Repeat for more
                        clicks on the same object.
  --box X0,Y0,X1,Y1     a box around the object; may be combined with clicks. Several --box (without
                        --point) segment several objects at once, one prediction per box.
By default the model returns 3 candidate masks when the prompt is a single click (ambiguous) and 1
mask otherwise (the official recommendation); --multimask / --no-multimask force either.

Output folder OUT (created; files of the same name are replaced):
  mask_<i>.png   one binary mask per returned mask (0 = background, 255 = object), image size
  overlay.png    the image with the best-scoring mask of each prompt and the prompts drawn on it
  result.json    image path and size, model, prompts, multimask setting, and per mask: file,
                 prompt index, predicted IoU score, area (pixels), bbox [x, y, w, h]; "best" lists
                 the index of the best-scoring mask of each prompt
Nothing is written when an argument is wrong (exit status 2) or the run fails (exit status 1).

{common.MODEL_HELP}"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sam2 image``."""
    p = subparsers.add_parser("image", help="segment an image from points / boxes",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", metavar="IMAGE", type=common.existing_file, help="input image (JPEG, PNG, ...)")
    p.add_argument("-o", "--output", metavar="OUT", type=Path, required=True, help="output folder")
    p.add_argument("--point", metavar="X,Y[,LABEL]", type=common.point, action="append", default=[],
                   help="click prompt (repeatable); LABEL 1 = object (default), 0 = background")
    p.add_argument("--box", metavar="X0,Y0,X1,Y1", type=common.box, action="append", default=[],
                   help="box prompt (repeatable without --point: one object per box)")
    multi = p.add_mutually_exclusive_group()
    multi.add_argument("--multimask", dest="multimask", action="store_const", const=True, default=None,
                       help="return 3 candidate masks per prompt")
    multi.add_argument("--no-multimask", dest="multimask", action="store_const", const=False,
                       help="return 1 mask per prompt")
    p.add_argument("--mask-threshold", type=common.finite_float, default=0.0, metavar="T",
                   help="mask = logits > T (default 0.0)")
    p.add_argument("--max-hole-area", type=common.non_negative_float, default=0.0, metavar="PIXELS",
                   help="fill holes up to this area in the low-res masks (default 0: off)")
    p.add_argument("--max-sprinkle-area", type=common.non_negative_float, default=0.0, metavar="PIXELS",
                   help="remove specks up to this area in the low-res masks (default 0: off)")
    common.add_model_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=common.interruptible(run), _parser=p)
    return p


def _check_prompts(args: argparse.Namespace, width: int, height: int) -> None:
    parser = args._parser
    if not args.point and not args.box:
        parser.error("argument --point/--box: give at least one prompt")
    if args.point and len(args.box) > 1:
        parser.error("argument --box: several boxes cannot be combined with --point")
    for x, y, label in args.point:
        common.check_inside(parser, "--point", [(x, y)], width, height, f"{x:g},{y:g},{label}")
    for b in args.box:
        shown = ",".join(f"{v:g}" for v in b)
        common.check_inside(parser, "--box", [b[:2], b[2:]], width, height, shown)


def predict(predictor: Any, points: list[tuple[float, float, int]], boxes: list[tuple[float, ...]],
            multimask: bool) -> tuple[np.ndarray, np.ndarray]:
    """Masks ``(P, C, H, W)`` bool and scores ``(P, C)`` for P prompts (one per box, or one prompt)."""
    coords = np.array([p[:2] for p in points], dtype=np.float32) if points else None
    labels = np.array([p[2] for p in points], dtype=np.int32) if points else None
    box = np.array(boxes, dtype=np.float32) if boxes else None
    if box is not None and len(box) == 1:
        box = box[0]
    masks, scores, _ = predictor.predict(point_coords=coords, point_labels=labels, box=box,
                                         multimask_output=multimask)
    if masks.ndim == 3:  # a single prompt
        masks, scores = masks[None], scores[None]
    return masks > 0.5, scores


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0, 0, 0, 0]
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def write_outputs(folder: Path, args: argparse.Namespace, image: np.ndarray, masks: np.ndarray,
                  scores: np.ndarray, multimask: bool, spec: common.ModelSpec) -> dict:
    """Write the mask PNGs, the overlay and result.json into ``folder``; returns the JSON content."""
    from PIL import Image

    records, best = [], []
    for prompt in range(masks.shape[0]):
        best.append(len(records) + int(np.argmax(scores[prompt])))
        for k in range(masks.shape[1]):
            name = f"mask_{len(records)}.png"
            Image.fromarray(masks[prompt, k].astype(np.uint8) * 255).save(folder / name)
            records.append({"file": name, "prompt": prompt, "score": float(scores[prompt, k]),
                            "area": int(masks[prompt, k].sum()), "bbox": _bbox(masks[prompt, k])})
    chosen = [masks[i // masks.shape[1], i % masks.shape[1]] for i in best]
    shown = media.overlay(image, chosen, [media.color(i + 1) for i in range(len(chosen))])
    Image.fromarray(media.draw_prompts(shown, args.point, args.box)).save(folder / "overlay.png")
    result = {
        "image": str(args.image), "width": int(image.shape[1]), "height": int(image.shape[0]),
        "model": spec.describe(),
        "prompts": {"points": [[x, y] for x, y, _ in args.point], "labels": [lab for _, _, lab in args.point],
                    "boxes": [list(b) for b in args.box]},
        "multimask_output": multimask, "mask_threshold": args.mask_threshold,
        "masks": records, "best": best,
    }
    (folder / "result.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result


def run(args: argparse.Namespace) -> int:
    """Validate, predict, write; returns the exit code."""
    parser = args._parser
    common.check_output_dir(parser, args.output)
    try:
        width, height = media.image_size(args.image)
    except ValueError as exc:
        parser.error(f"argument IMAGE: {exc}")
    _check_prompts(args, width, height)
    spec = common.model_spec(parser, args.model, args.config, args.checkpoint)
    device = common.resolve_device(parser, args.device)
    multimask = args.multimask if args.multimask is not None else (len(args.point) == 1 and not args.box)

    import torch

    from sam2.sam2_image_predictor import SAM2ImagePredictor

    try:
        image = media.read_rgb(args.image)
        common.say(args.quiet, "loading the model ...")
        model = common.build_model(spec, device)
    except (ValueError, common.ModelLoadError) as exc:
        log.error("%s", exc)
        return 1
    predictor = SAM2ImagePredictor(model, mask_threshold=args.mask_threshold,
                                   max_hole_area=args.max_hole_area, max_sprinkle_area=args.max_sprinkle_area)
    with torch.inference_mode():
        common.say(args.quiet, f"embedding the {image.shape[1]}x{image.shape[0]} image (the slow step on a CPU) ...")
        predictor.set_image(image)
        common.say(args.quiet, "predicting the masks ...")
        masks, scores = predict(predictor, args.point, args.box, multimask)
    try:
        with common.StagedOutput(args.output) as folder:
            result = write_outputs(folder, args, image, masks, scores, multimask, spec)
    except (OSError, ValueError) as exc:  # ValueError: a non-finite score cannot go into standard JSON
        log.error("cannot write the results: %s", exc)
        return 1
    if not args.quiet:
        for rec in result["masks"]:
            print(f"{args.output / rec['file']}: score {rec['score']:.4f}, area {rec['area']}")
        print(f"overlay: {args.output / 'overlay.png'}, details: {args.output / 'result.json'}")
    return 0
