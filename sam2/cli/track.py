"""``sam2 track``: track objects in a live or recorded source frame by frame (``StreamingSession``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sam2.cli import common, video
from sam2.cli.track_outputs import FORMATS, open_writer

log = logging.getLogger(__name__)

DESCRIPTION = f"""\
Track objects in a stream, one frame at a time, in memory that does not grow with the number of frames
(StreamingSession). Results are written as each frame is tracked.

SOURCE: a camera index (0, 1, ...; Linux v4l2 / macOS avfoundation, when FFmpeg has the device), a URL
(rtsp://, http(s)://, udp://, ... anything FFmpeg opens), a video file (with --follow: a file still
being written, in a streamable container such as MPEG-TS), or a folder of frames. Frames are numbered
from 0 in arrival order.

Prompts: the same syntax as "sam2 video" (repeat --prompt; OBJ is an integer object id, coordinates in
pixels of the frame); a prompt on frame FRAME is applied when that frame arrives:
  FRAME:OBJ:point=X,Y[,LABEL]   a click (LABEL 1 = object, default; 0 = background)
  FRAME:OBJ:box=X0,Y0,X1,Y1     a box
  FRAME:OBJ:mask=PNG            a mask image of the frame's size (pixels > 0 = object)
A prompt for an object that is already tracked refines it on that frame.

Output (--format), written as results come:
  png    OUT/<frame>.png: a DAVIS palette PNG per frame, pixel value = object id (1..255)
  mp4    OUT/overlay.mp4 (or OUT itself when it ends in .mp4): the frames with the masks drawn
  jsonl  OUT/masks.jsonl (or OUT itself when it ends in .jsonl): a JSON line per frame,
         {{"frame": t, "name": ..., "objects": [{{"id": ..., "area": ..., "rle": COCO RLE}}]}}
<frame> is the frame file's name for a folder of frames, else the 5-digit index. A status line shows
the frame rate (-q hides it). --max-frames N stops after N frames. Ctrl-C stops cleanly: what was
written is kept and complete (exit status 130). A source that fails mid-stream is reported and the
results written so far are kept (exit status 1).

--image-size 512 runs the model at 512 x 512 input instead of the config's (1024 for the official
models): about 3-4x faster, different (usually coarser) masks.

{common.MODEL_HELP}"""

UNKNOWN = 2**62  # frame count of a live source (for prompt checks)


def image_size(value: str) -> int:
    """argparse type: a positive multiple of 32 (the backbone's total stride)."""
    size = common.positive_int(value)
    if size % 32:
        raise argparse.ArgumentTypeError(f"must be a multiple of 32, got {size}")
    return size


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sam2 track``."""
    p = subparsers.add_parser("track", help="track objects in a live stream / camera / file, frame by frame",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE", help="camera index, URL, video file or folder of frames")
    p.add_argument("--prompt", type=video.prompt, action="append", default=[], metavar="FRAME:OBJ:KIND=VALUE",
                   help="point=X,Y[,LABEL], box=X0,Y0,X1,Y1 or mask=PNG for object OBJ on frame FRAME "
                        "(repeatable, at least one)")
    p.add_argument("-o", "--output", metavar="OUT", type=Path, required=True,
                   help="output folder (or .mp4 / .jsonl file with --format mp4 / jsonl)")
    p.add_argument("--format", choices=FORMATS, default="png", help="output (default png)")
    p.add_argument("--max-frames", type=common.positive_int, default=None, metavar="N",
                   help="stop after N frames (default: until the source ends or Ctrl-C)")
    p.add_argument("--image-size", type=image_size, default=None, metavar="S",
                   help="model input size (e.g. 512; default: the config's)")
    p.add_argument("--follow", action="store_true", help="SOURCE is a file still being written: wait for new data")
    p.add_argument("--idle-timeout", type=common.positive_float, default=5.0, metavar="SEC",
                   help="with --follow, end after SEC seconds without new data (default 5)")
    p.add_argument("--timeout", type=common.positive_float, default=10.0, metavar="SEC",
                   help="network / camera open and read timeout (default 10)")
    p.add_argument("--mask-threshold", type=common.finite_float, default=0.0, metavar="T", help="mask = logits > T (default 0)")
    p.add_argument("--fps", type=common.positive_float, default=None,
                   help="frame rate of the MP4 (default: the source's, 24 when unknown)")
    common.add_model_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no status line or summary")
    p.set_defaults(func=common.interruptible(run), _parser=p)
    return p


def _open(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Any, Any, np.ndarray]:
    """Open SOURCE and read its first frame -> (source, frame iterator, first frame); usage error if not."""
    from sam2.streaming.sources import SourceError, open_source

    try:
        source = open_source(args.source, follow=args.follow, idle_timeout=args.idle_timeout, timeout=args.timeout)
        frames = iter(source)
        first = next(frames, None)
    except SourceError as exc:
        parser.error(f"argument SOURCE: {exc}")
    if first is None:
        source.close()
        parser.error(f"argument SOURCE: {source.description} has no frames")
    return source, frames, first


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.format != "png" and args.output.suffix.lower() == f".{args.format}":
        if args.output.is_dir():
            parser.error(f"argument --output: {str(args.output)!r} is a folder")
        common.check_output_dir(parser, args.output.parent)
    else:
        common.check_output_dir(parser, args.output)


def run(args: argparse.Namespace) -> int:
    """Validate, open, track frame by frame while writing; returns the exit code."""
    parser = args._parser
    _check_args(parser, args)
    if not args.prompt:
        parser.error("argument --prompt: give at least one prompt")
    source, frames, first = _open(parser, args)
    try:
        return _run_opened(parser, args, source, frames, first)
    finally:
        source.close()


def _run_opened(parser: argparse.ArgumentParser, args: argparse.Namespace, source: Any, frames: Any,
                first: np.ndarray) -> int:
    names = getattr(source, "names", None)
    info = video.VideoInfo(source.length or UNKNOWN, first.shape[0], first.shape[1], names or [], None)
    groups = video.group_prompts(parser, args.prompt, info, "davis" if args.format == "png" else args.format)
    spec = common.model_spec(parser, args.model, args.config, args.checkpoint)
    device = common.resolve_device(parser, args.device)
    overrides = [f"++model.non_overlap_masks={'false' if args.format == 'jsonl' else 'true'}"]
    if args.image_size is not None:
        overrides.append(f"++model.image_size={args.image_size}")
    try:
        predictor = common.build_model(spec, device, video=True, hydra_overrides_extra=overrides)
    except common.ModelLoadError as exc:
        log.error("%s", exc)
        return 1
    from sam2.streaming import SourceError, StreamingSession

    session = StreamingSession(predictor, length_hint=source.length)
    writer = open_writer(args.format, args.output, args.fps or source.fps or 24)
    by_frame: dict[int, list] = {}
    for (frame_idx, obj), g in sorted(groups.items()):
        by_frame.setdefault(frame_idx, []).append((obj, g))
    status = _Status(args.quiet)
    count, code = 0, 0
    try:
        frame: np.ndarray | None = first
        while frame is not None and (args.max_frames is None or count < args.max_frames):
            result = session.track(frame)
            for obj, g in by_frame.pop(result.frame_idx, []):
                result = _apply(session, obj, g)
            name = names[result.frame_idx] if names else f"{result.frame_idx:05d}"
            writer.write(result.frame_idx, name, frame, [int(o) for o in result.obj_ids],
                         result.binary(args.mask_threshold))
            count += 1
            status.update(count, result.obj_ids)
            frame = next(frames, None)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM through common.interruptible
        status.end()
        terminated = isinstance(exc, common.Terminated)
        print(f"stopped by {'SIGTERM' if terminated else 'Ctrl-C'} after {count} frames; results kept in "
              f"{writer.target}", file=sys.stderr)
        code = common.EXIT_SIGTERM if terminated else common.EXIT_SIGINT
    except SourceError as exc:
        status.end()
        log.error("%s; the results of the %d frames tracked before are kept in %s", exc, count, writer.target)
        code = 1
    except (ValueError, RuntimeError, OSError) as exc:
        status.end()
        log.error("frame %d: %s; the results of the %d frames before are kept in %s", count, exc, count,
                  writer.target)
        code = 1
    finally:
        writer.close()
    if code == 0:
        status.end()
        if by_frame:
            log.warning("the source ended before the prompts on frames %s", sorted(by_frame))
        if not args.quiet:
            fps = count / max(time.perf_counter() - status.start, 1e-9)
            print(f"tracked {len(session.obj_ids)} objects on {count} frames ({fps:.2f} fps): {writer.target}")
    return code


def _apply(session: Any, obj: int, g: Any) -> Any:
    """Give one (frame, object) prompt group to the session -> the frame's result after it."""
    if g.mask is not None:
        return session.add_new_mask(obj, g.mask)
    points = np.array([p[:2] for p in g.points], dtype=np.float32) if g.points else None
    labels = np.array([p[2] for p in g.points], dtype=np.int32) if g.points else None
    box = np.array(g.box, dtype=np.float32) if g.box is not None else None
    return session.add_new_points_or_box(obj, points=points, labels=labels, box=box)


class _Status:
    """A one-line status on stderr: frames, live frame rate (over the last second or so), objects."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet or not sys.stderr.isatty()
        self.start = self.mark = time.perf_counter()
        self.mark_count = 0
        self.fps = 0.0
        self.shown = False

    def update(self, count: int, obj_ids: list) -> None:
        now = time.perf_counter()
        if now - self.mark >= 1.0:
            self.fps = (count - self.mark_count) / (now - self.mark)
            self.mark, self.mark_count = now, count
        elif count and not self.fps:
            self.fps = count / max(now - self.start, 1e-9)
        if not self.quiet:
            sys.stderr.write(f"\rframe {count}  {self.fps:6.2f} fps  objects {list(obj_ids)}   ")
            sys.stderr.flush()
            self.shown = True

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            self.shown = False
