"""``sam2 video``: track objects through a video from prompts on some frames (``SAM2VideoPredictor``)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from sam2.cli import common, media

log = logging.getLogger(__name__)

FORMATS = ("davis", "per-object", "mp4")

DESCRIPTION = f"""\
Track objects through a video with SAM2VideoPredictor, from prompts given on any frames.

VIDEO: a video file (mp4, mov, mkv, avi, webm, ... anything FFmpeg reads) or a folder of frames
(JPEG; else PNG/BMP/TIFF/WebP; sorted by number / natural order). Frames are numbered from 0.

Prompts (repeat --prompt; OBJ is an integer object id, coordinates in pixels of the frame):
  FRAME:OBJ:point=X,Y[,LABEL]   a click, LABEL 1 (default) = object, 0 = background; several clicks
                                for the same FRAME:OBJ are combined into one prompt
  FRAME:OBJ:box=X0,Y0,X1,Y1     a box (at most one per FRAME:OBJ; may be combined with clicks)
  FRAME:OBJ:mask=PNG            a mask image of the frame's size (pixels > 0 = object); not combined
                                with clicks or a box on the same FRAME:OBJ
Tracking starts at the first prompted frame (or --start-frame) and runs to the end of the video
(backwards to frame 0 with --reverse), for at most --max-frames frames. Masks are logits >
--mask-threshold.

Output (--format):
  davis       OUT/<frame>.png: one palette PNG per processed frame (DAVIS palette), pixel value =
              object id (1..255), 0 = background; objects do not overlap
  per-object  OUT/<obj:03d>/<frame>.png: one binary PNG (0/1, DAVIS palette) per object and processed
              frame (the SA-V layout); objects may overlap
  mp4         OUT/overlay.mp4 (or OUT itself when it ends in .mp4): the video with the masks drawn in
              the DAVIS colour of their object id; same frame count and size as the input, frames that
              were not processed are copied unchanged (H.264 via PyAV)
<frame> is the frame file's name without extension for a folder of frames, else the 5-digit index.
A progress bar shows the tracking (-q hides it). Nothing is written when an argument is wrong (exit
status 2) or the run fails (exit status 1).

{common.MODEL_HELP}"""


@dataclass(frozen=True)
class Prompt:
    """One ``--prompt`` value."""

    frame: int
    obj: int
    kind: str  # "point" | "box" | "mask"
    value: Any  # (x, y, label) | (x0, y0, x1, y1) | Path
    text: str


def prompt(value: str) -> Prompt:
    """argparse type of ``FRAME:OBJ:point=X,Y[,LABEL]``, ``FRAME:OBJ:box=X0,Y0,X1,Y1``, ``FRAME:OBJ:mask=PNG``."""
    forms = "FRAME:OBJ:point=X,Y[,LABEL], FRAME:OBJ:box=X0,Y0,X1,Y1 or FRAME:OBJ:mask=PNG"
    parts = value.split(":", 2)
    if len(parts) != 3 or "=" not in parts[2]:
        raise argparse.ArgumentTypeError(f"{value!r} is not of the form {forms}")
    try:
        frame, obj = int(parts[0]), int(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: FRAME and OBJ must be integers ({forms})") from None
    if frame < 0 or obj < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: FRAME and OBJ must be >= 0")
    kind, arg = parts[2].split("=", 1)
    try:
        if kind == "point":
            parsed: Any = common.point(arg)
        elif kind == "box":
            parsed = common.box(arg)
        elif kind == "mask":
            parsed = common.existing_file(arg)
        else:
            raise argparse.ArgumentTypeError(f"unknown prompt kind {kind!r}; use point, box or mask")
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None
    return Prompt(frame, obj, kind, parsed, value)


@dataclass
class _Group:
    """All prompts of one (frame, object)."""

    points: list[tuple[float, float, int]] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class VideoInfo:
    """What the command needs to know about the input before running the model."""

    num_frames: int
    height: int
    width: int
    names: list[str]
    fps: Fraction | None


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sam2 video``."""
    p = subparsers.add_parser("video", help="track objects through a video from point / box / mask prompts",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", metavar="VIDEO", type=common.existing_path, help="video file or folder of frames")
    p.add_argument("--prompt", type=prompt, action="append", default=[], metavar="FRAME:OBJ:KIND=VALUE",
                   help="point=X,Y[,LABEL], box=X0,Y0,X1,Y1 or mask=PNG for object OBJ on frame FRAME "
                        "(repeatable, at least one)")
    p.add_argument("-o", "--output", metavar="OUT", type=Path, required=True,
                   help="output folder (or .mp4 file with --format mp4)")
    p.add_argument("--format", choices=FORMATS, default="davis", help="output layout (default davis)")
    p.add_argument("--start-frame", type=common.non_negative_int, default=None, metavar="FRAME",
                   help="frame where tracking starts (default: the first prompted frame)")
    p.add_argument("--max-frames", type=common.positive_int, default=None, metavar="N",
                   help="process at most N frames, the start frame included (default: all)")
    p.add_argument("--reverse", action="store_true", help="track backwards, towards frame 0")
    p.add_argument("--mask-threshold", type=common.finite_float, default=0.0, metavar="T", help="mask = logits > T (default 0)")
    p.add_argument("--no-postprocessing", action="store_true",
                   help="build the model without the builder's post-processing (hole filling, "
                        "stability-based multimask choice)")
    p.add_argument("--fps", type=common.positive_float, default=None,
                   help="frame rate of the MP4 (default: the input video's, 24 for a folder of frames)")
    common.add_model_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=common.interruptible(run), _parser=p)
    return p


def probe(path: Path) -> VideoInfo:
    """Frame count, size and names of a video file or frame folder; ``ValueError`` if unreadable."""
    from sam2.utils.video_decode import IMAGE_EXTENSIONS, FolderSource, VideoFileSource

    if path.is_dir():
        source: Any = FolderSource(path)
        first = source.read(0)
        return VideoInfo(len(source), first.shape[0], first.shape[1], list(source.names), None)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise ValueError(f"{str(path)!r} is a single image; give a video file or a folder of frames")
    source = VideoFileSource(str(path))
    try:
        n, h, w = len(source), source.decoder.height, source.decoder.width
    finally:
        source.close()
    return VideoInfo(n, h, w, [f"{i:05d}" for i in range(n)], media.video_fps(path))


def _read_mask(parser: argparse.ArgumentParser, p: Prompt, info: VideoInfo) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(p.value) as img:
            single = img.mode in ("1", "L", "P", "I", "I;16", "F")
            mask = np.array(img if single else img.convert("L")) > 0
    except (OSError, SyntaxError, ValueError) as exc:
        parser.error(f"argument --prompt: {p.text!r}: cannot read the mask: {exc}")
    if mask.shape != (info.height, info.width):
        parser.error(f"argument --prompt: {p.text!r}: the mask is {mask.shape[1]}x{mask.shape[0]} but the "
                     f"video frames are {info.width}x{info.height}")
    return mask


def group_prompts(parser: argparse.ArgumentParser, prompts: list[Prompt], info: VideoInfo,
                  fmt: str) -> dict[tuple[int, int], _Group]:
    """Check every prompt against the video and merge them per (frame, object)."""
    if not prompts:
        parser.error("argument --prompt: give at least one prompt")
    groups: dict[tuple[int, int], _Group] = {}
    for p in prompts:
        if p.frame >= info.num_frames:
            parser.error(f"argument --prompt: {p.text!r}: frame {p.frame} is beyond the video "
                         f"({info.num_frames} frames, 0..{info.num_frames - 1})")
        if fmt == "davis" and not 1 <= p.obj <= 255:
            parser.error(f"argument --prompt: {p.text!r}: with --format davis object ids must be 1..255")
        g = groups.setdefault((p.frame, p.obj), _Group())
        if p.kind == "point":
            common.check_inside(parser, "--prompt", [p.value[:2]], info.width, info.height, repr(p.text))
            g.points.append(p.value)
        elif p.kind == "box":
            if g.box is not None:
                parser.error(f"argument --prompt: {p.text!r}: a second box for frame {p.frame}, object {p.obj}")
            common.check_inside(parser, "--prompt", [p.value[:2], p.value[2:]], info.width, info.height,
                                repr(p.text))
            g.box = p.value
        else:
            if g.mask is not None:
                parser.error(f"argument --prompt: {p.text!r}: a second mask for frame {p.frame}, object {p.obj}")
            g.mask = _read_mask(parser, p, info)
        if g.mask is not None and (g.points or g.box is not None):
            parser.error(f"argument --prompt: {p.text!r}: a mask cannot be combined with clicks or a box "
                         f"on the same frame and object (frame {p.frame}, object {p.obj})")
    return groups


def add_prompts(predictor: Any, state: Any, groups: dict[tuple[int, int], _Group]) -> None:
    """Give every (frame, object) prompt to the predictor, by frame then object id."""
    for (frame, obj), g in sorted(groups.items()):
        if g.mask is not None:
            predictor.add_new_mask(state, frame, obj, g.mask)
            continue
        points = np.array([p[:2] for p in g.points], dtype=np.float32) if g.points else None
        labels = np.array([p[2] for p in g.points], dtype=np.int32) if g.points else None
        box = np.array(g.box, dtype=np.float32) if g.box is not None else None
        predictor.add_new_points_or_box(state, frame, obj, points=points, labels=labels, box=box)


def _write_mp4(target: Path, args: argparse.Namespace, info: VideoInfo, packed: dict[int, tuple]) -> None:
    """The input frames with the tracked masks drawn on them."""
    from tqdm import tqdm

    from sam2.utils.video_decode import FolderSource, VideoFileSource

    source: Any = FolderSource(args.video) if args.video.is_dir() else VideoFileSource(str(args.video))
    fps = args.fps or info.fps or 24
    try:
        with media.Mp4Writer(target, info.width, info.height, fps) as writer:
            for t in tqdm(range(info.num_frames), desc="write mp4", unit="frame", disable=args.quiet):
                frame = source.read(t)
                if t in packed:
                    ids, bits = packed[t]
                    masks = np.unpackbits(bits, count=len(ids) * info.height * info.width)
                    masks = masks.reshape(len(ids), info.height, info.width).astype(bool)
                    frame = media.overlay(frame, list(masks), [media.color(i) for i in ids])
                writer.write(frame)
    finally:
        source.close()


def run(args: argparse.Namespace) -> int:
    """Validate, track, write; returns the exit code."""
    parser = args._parser
    single_file = args.format == "mp4" and args.output.suffix.lower() == ".mp4"
    if single_file:
        if args.output.is_dir():
            parser.error(f"argument --output: {str(args.output)!r} is a folder")
        common.check_output_dir(parser, args.output.parent)
    else:
        common.check_output_dir(parser, args.output)
    try:
        info = probe(args.video)
    except (ValueError, OSError) as exc:
        parser.error(f"argument VIDEO: {exc}")
    groups = group_prompts(parser, args.prompt, info, args.format)
    if args.start_frame is not None and args.start_frame >= info.num_frames:
        parser.error(f"argument --start-frame: frame {args.start_frame} is beyond the video ({info.num_frames} frames)")
    spec = common.model_spec(parser, args.model, args.config, args.checkpoint)
    device = common.resolve_device(parser, args.device)

    import torch

    overlap = "false" if args.format == "per-object" else "true"
    try:
        predictor = common.build_model(spec, device, video=True, apply_postprocessing=not args.no_postprocessing,
                                       hydra_overrides_extra=[f"++model.non_overlap_masks={overlap}"])
    except common.ModelLoadError as exc:
        log.error("%s", exc)
        return 1
    predictor.show_progress = not args.quiet
    from sam2.utils.png_masks import save_masks_to_dir

    packed: dict[int, tuple] = {}
    processed = 0
    max_track = None if args.max_frames is None else args.max_frames - 1
    try:
        with common.StagedOutput(args.output, single_file=single_file) as folder, torch.inference_mode():
            state = predictor.init_state(str(args.video), offload_video_to_cpu=True)
            add_prompts(predictor, state, groups)
            for t, obj_ids, logits in predictor.propagate_in_video(
                    state, start_frame_idx=args.start_frame, max_frame_num_to_track=max_track, reverse=args.reverse):
                masks = (logits[:, 0] > args.mask_threshold).cpu().numpy()
                processed += 1
                if args.format == "mp4":
                    packed[t] = (list(obj_ids), np.packbits(masks))
                else:
                    per_obj = {int(o): masks[i] for i, o in enumerate(obj_ids)}
                    save_masks_to_dir(folder, "", info.names[t], per_obj, info.height, info.width,
                                      per_obj_png_file=args.format == "per-object")
            if args.format == "mp4":
                _write_mp4(folder / (args.output.name if single_file else "overlay.mp4"), args, info, packed)
    except (ValueError, RuntimeError, OSError) as exc:
        log.error("%s", exc)
        return 1
    if not args.quiet:
        objects = sorted({o for _, o in groups})
        print(f"tracked objects {objects} on {processed} of {info.num_frames} frames: {args.output}")
    return 0
