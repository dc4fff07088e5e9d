"""``sam2 vos``: semi-supervised VOS inference over a dataset (the official ``tools/vos_inference.py``)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from sam2.cli import common
from sam2.scale.cli_options import RAY_HELP, add_ray_arguments, path_or_url, refuse_urls, scale_options

log = logging.getLogger(__name__)

DESCRIPTION = """\
Track the objects given by input masks through every video of a dataset and write the predicted masks.

Inputs:  <base_video_dir>/<video>/<frame>.jpg (frames sorted by integer name)
         <input_mask_dir>/<video>/<frame>.png             DAVIS layout: index PNG, value = object id
         <input_mask_dir>/<video>/<obj_id>/<frame>.png    SA-V layout (--per_obj_png_file): binary PNGs
Output:  <output_mask_dir>/<video>/... in the same layout (palette PNGs; the input palette, else the
         DAVIS palette). In the DAVIS layout the smallest object id wins where masks overlap.

By default all objects are prompted with the masks of the first frame (every frame that has a mask
with --use_all_masks) and tracked forward; with --track_object_appearing_later_in_video each object is
tracked separately from its first non-empty mask. Masks are logits > --score_thresh.

Model: --model NAME (release name such as sam2.1_hiera_tiny, or a Hub id such as
facebook/sam2.1-hiera-tiny; downloaded from the Hugging Face Hub), or --sam2_cfg CONFIG with
--sam2_checkpoint FILE (the config may be omitted when the checkpoint has an official file name).
Default: the sam2.1_hiera_tiny weights from the Hub. On CUDA the model runs under bfloat16 autocast,
as the official script (--no_autocast for float32).

Video names (from --video_list_file or the sub-folders of --base_video_dir) must be plain folder
names; a name with a path separator or '..' is refused. Each video is written into a hidden staging
folder and moved into --output_mask_dir when it is complete, so an interrupted run (error, Ctrl-C,
SIGTERM: exit status 1, 130, 143) leaves no partial video; a rerun skips the finished videos
(--overwrite redoes them).

""" + RAY_HELP


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sam2 vos`` (options of the official script, with kebab-case aliases)."""
    p = subparsers.add_parser("vos", help="VOS inference over a dataset folder (tools/vos_inference.py)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)

    def opt(name: str, **kwargs: Any) -> None:
        flags = dict.fromkeys([f"--{name}", f"--{name.replace('_', '-')}"])  # official spelling first
        p.add_argument(*flags, dest=name, **kwargs)

    opt("base_video_dir", type=path_or_url(common.existing_dir), metavar="DIR", required=True, help="one sub-folder of JPEG frames per video")
    opt("input_mask_dir", type=path_or_url(common.existing_dir), metavar="DIR", required=True, help="input masks (PNG) per video")
    opt("output_mask_dir", type=path_or_url(Path), metavar="DIR", required=True, help="where to write the predicted masks")
    opt("video_list_file", type=common.existing_file, metavar="FILE", default=None,
        help="text file with one video name per line (default: every sub-folder of base_video_dir)")
    opt("score_thresh", type=common.finite_float, default=0.0, help="mask = logits > score_thresh (default 0.0)")
    opt("use_all_masks", action="store_true",
        help="prompt with every available input mask, not only the first frame's")
    opt("per_obj_png_file", action="store_true",
        help="SA-V layout (one binary PNG per object) for inputs and outputs; objects may overlap")
    opt("apply_postprocessing", action="store_true",
        help="builder post-processing (hole filling, dynamic multimask); off in the paper's evaluation")
    opt("track_object_appearing_later_in_video", action="store_true",
        help="track every object separately from its first mask (LVOS, YouTube-VOS)")
    opt("use_vos_optimized_video_predictor", action="store_true",
        help="vos_optimized=True: torch.compile every model component on CUDA (the first frames compile, "
             "slowly); on a CPU add --compile")
    opt("model", default=None, help="model name or Hub id (not with --sam2_cfg)")
    opt("sam2_cfg", default=None, help="config name (configs/sam2.1/sam2.1_hiera_b+.yaml) or YAML file")
    opt("sam2_checkpoint", type=common.existing_file, metavar="FILE", default=None, help="checkpoint .pt file")
    opt("device", default=None, help="torch device (default: cuda if available, else cpu)")
    opt("no_autocast", action="store_true", help="on CUDA, run in float32 instead of bfloat16 autocast")
    p.add_argument("--overwrite", action="store_true",
                   help="redo videos whose output folder exists (default: skip them, so an interrupted run "
                        "resumes where it stopped)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_ray_arguments(p, overwrite=False)
    p.set_defaults(func=common.interruptible(run), _parser=p)
    return p


def _check_videos(args: argparse.Namespace) -> list[str]:
    from sam2.eval.vos import list_videos

    parser = args._parser
    source = "--video_list_file" if args.video_list_file else "--base_video_dir"
    try:
        videos = list_videos(args.base_video_dir, args.video_list_file)
    except (ValueError, OSError) as exc:
        parser.error(f"argument {source}: {exc}")
    if not videos:
        parser.error(f"argument {source}: no video to process")
    missing = [v for v in videos if not (args.base_video_dir / v).is_dir()]
    if missing:
        parser.error(f"argument {source}: videos not found in {str(args.base_video_dir)!r}: {missing[:10]}")
    no_masks = [v for v in videos if not (args.input_mask_dir / v).is_dir()]
    if no_masks:
        parser.error(f"argument --input_mask_dir: no mask folder for videos {no_masks[:10]} "
                     f"in {str(args.input_mask_dir)!r}")
    return videos


def _run_video(infer: Any, predictor: Any, args: argparse.Namespace, video: str) -> None:
    """Write the masks of one video into a hidden staging folder, then move it to
    ``<output_mask_dir>/<video>`` in one step; on any error or interruption the staging folder goes."""
    staging = Path(tempfile.mkdtemp(prefix=f".{video}.partial-", dir=args.output_mask_dir))
    try:
        infer(predictor, args.base_video_dir, args.input_mask_dir, staging, video,
              score_thresh=args.score_thresh, use_all_masks=args.use_all_masks,
              per_obj_png_file=args.per_obj_png_file)
        target = args.output_mask_dir / video
        if target.exists():  # only with --overwrite
            shutil.rmtree(target)
        (staging / video).mkdir(exist_ok=True)  # a video may have produced no mask file
        os.replace(staging / video, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    """Validate the arguments, build the predictor, process every video; returns the exit code."""
    options = scale_options(args._parser, args)
    if options is not None:
        return _run_on_ray(args, options)
    refuse_urls(args._parser, (args.base_video_dir, "--base_video_dir"), (args.input_mask_dir, "--input_mask_dir"),
                (args.output_mask_dir, "--output_mask_dir"))
    common.check_output_dir(args._parser, args.output_mask_dir, flag="--output_mask_dir")
    spec = common.model_spec(args._parser, args.model, args.sam2_cfg, args.sam2_checkpoint,
                             config_flag="--sam2_cfg", checkpoint_flag="--sam2_checkpoint")
    videos = _check_videos(args)
    device = common.resolve_device(args._parser, args.device)
    done = [v for v in videos if (args.output_mask_dir / v).is_dir()] if not args.overwrite else []
    if done:
        log.warning("skipping %d video(s) already in %s (finished by an earlier run; --overwrite redoes them)",
                    len(done), args.output_mask_dir)
    todo = [v for v in videos if v not in done]

    import torch
    from tqdm import tqdm

    from sam2.eval.vos import vos_inference, vos_separate_inference_per_object

    overrides = ["++model.non_overlap_masks=" + ("false" if args.per_obj_png_file else "true")]
    try:
        predictor = common.build_model(spec, device, video=True, apply_postprocessing=args.apply_postprocessing,
                                       hydra_overrides_extra=overrides,
                                       vos_optimized=args.use_vos_optimized_video_predictor,
                                       checkpoint_flag="--sam2_checkpoint")
    except common.ModelLoadError as exc:
        log.error("%s", exc)
        return 1
    predictor.show_progress = False  # one bar over the videos, not one per video

    infer = vos_separate_inference_per_object if args.track_object_appearing_later_in_video else vos_inference
    log.info("prompting with %s", "all available masks" if args.use_all_masks else "the first frame's masks")
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                if device.type == "cuda" and not args.no_autocast else nullcontext())
    args.output_mask_dir.mkdir(parents=True, exist_ok=True)
    for video in tqdm(todo, desc="videos", unit="video", disable=args.quiet):
        log.info("video %s", video)
        try:
            with torch.inference_mode(), autocast:
                _run_video(infer, predictor, args, video)
        except (RuntimeError, ValueError, OSError) as exc:
            log.error("video %r: %s", video, exc)
            return 1
    if not args.quiet:
        skipped = f", skipped {len(done)} already done" if done else ""
        print(f"wrote the masks of {len(todo)} video(s){skipped}: {args.output_mask_dir}")
    return 0


def _run_on_ray(args: argparse.Namespace, options: Any) -> int:
    """``--ray``: the checks that need no model (local paths as the single-process run), then the job."""
    if not isinstance(args.output_mask_dir, str):
        common.check_output_dir(args._parser, args.output_mask_dir, flag="--output_mask_dir")
    if not any(isinstance(v, str) for v in (args.base_video_dir, args.input_mask_dir)):
        _check_videos(args)
    from sam2.scale.vos_job import run_from_args

    return run_from_args(args, options)
