"""Long-video benchmark: peak memory against video length, default vs bounded memory, and streaming speed.

    python benchmarks/long_video.py                                   # the figures of the README
    python benchmarks/long_video.py --lengths 100 1000 --tiny-lengths 100 --json long.json
    python benchmarks/long_video.py --no-rss --stream-frames 6         # only streaming ms/frame

Memory: a synthetic 480p clip (a textured background with three moving discs, written once as an H.264
mp4 with PyAV) is tracked with three objects clicked on frame 0, through its first N frames, by
``propagate_in_video`` in the default mode (every frame's output kept, as the official predictor) and
with ``init_state(..., bounded_memory=True)``. Each (model, mode, N) runs in a fresh Python process that
reports its peak resident memory (``VmHWM``), so runs do not share allocator state; the caller consumes
every frame's masks as a ``(3, 480, 854)`` bool array and drops it. Models: ``micro`` is the in-package
micro model (``sam2/configs/micro``, 128-pixel input: fast enough on a CPU for 10,000 frames) and
``tiny`` is SAM 2.1 tiny at ``--tiny-image-size``; both with random weights (memory and speed do not
depend on the values).

Streaming: ``StreamingSession.track`` on the same clip, SAM 2.1 tiny at 1024 and 512 input, three
objects; the median ms per frame after the first two tracked frames.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import environment  # noqa: E402  (benchmarks/machine.py)
from video import make_background, make_frame, object_clicks, peak_rss_mib  # noqa: E402

from sam2.build_sam import build_sam2_video_predictor  # noqa: E402
from sam2.cli.media import Mp4Writer  # noqa: E402
from sam2.cli.selfcheck import MICRO_CONFIG  # noqa: E402

WIDTH, HEIGHT = 854, 480
TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"


def write_clip(path: Path, num_frames: int, seed: int = 0) -> Path:
    """The synthetic 480p clip (three moving discs on a textured background)."""
    background = make_background(WIDTH, HEIGHT, seed)
    with Mp4Writer(path, WIDTH, HEIGHT, fps=24) as writer:
        for i in range(num_frames):
            writer.write(make_frame(i, WIDTH, HEIGHT, background))
    return path


def build(model: str, image_size: int | None):
    config = str(MICRO_CONFIG) if model == "micro" else TINY
    extra = [f"++model.image_size={image_size}"] if image_size else []
    torch.manual_seed(0)
    predictor = build_sam2_video_predictor(config, None, device="cpu", hydra_overrides_extra=extra)
    predictor.show_progress = False
    return predictor


def held_outputs(state) -> int:
    return sum(len(o.cond_outputs) + len(o.non_cond_outputs) for o in state.objects)


# ----------------------------------------------------------------------------------- child runs

@torch.inference_mode()
def child_rss(args: argparse.Namespace) -> dict:
    """One (model, mode, length) memory run in this process."""
    predictor = build(args.model, args.image_size)
    base = peak_rss_mib()
    state = predictor.init_state(str(args.video), offload_video_to_cpu=True, bounded_memory=args.mode == "bounded")
    for k, point in enumerate(object_clicks(3, WIDTH, HEIGHT)):
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=k + 1, points=point, labels=np.array([1]))
    start = time.perf_counter()
    frames = 0
    for _, _, masks in predictor.propagate_in_video(state, max_frame_num_to_track=args.length - 1):
        kept = (masks[:, 0] > 0).numpy()  # what a caller does with each frame's result
        del kept
        frames += 1
    seconds = time.perf_counter() - start
    return {"model": args.model, "image_size": predictor.model.image_size, "mode": args.mode, "frames": frames,
            "peak_rss_mib": peak_rss_mib(), "rss_after_build_mib": base, "held_outputs": held_outputs(state),
            "seconds": seconds, "ms_per_frame": 1e3 * seconds / max(frames, 1)}


@torch.inference_mode()
def child_stream(args: argparse.Namespace) -> dict:
    from sam2.streaming import StreamingSession, open_source

    predictor = build("tiny", args.image_size)
    session = StreamingSession(predictor)
    times = []
    with open_source(str(args.video)) as source:
        for i, frame in enumerate(source):
            if i >= args.length:
                break
            start = time.perf_counter()
            result = session.track(frame)
            if i == 0:
                for k, point in enumerate(object_clicks(3, WIDTH, HEIGHT)):
                    result = session.add_new_points_or_box(k + 1, points=point, labels=[1])
            result.binary()
            times.append(1e3 * (time.perf_counter() - start))
    timed = times[3:] or times
    return {"model": "tiny", "image_size": args.image_size, "objects": 3, "frames": len(times),
            "ms_per_frame": statistics.median(timed), "fps": 1e3 / statistics.median(timed), "per_frame_ms": times}


def run_child(video: Path, kind: str, model: str, mode: str, length: int, image_size: int | None) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--video", str(video), "--model", model, "--mode", mode,
           "--length", str(length)]
    if image_size:
        cmd += ["--image-size", str(image_size)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------- report

def table(rows: list[dict]) -> str:
    lines = ["| model | input | mode | frames | peak RSS (MiB) | held outputs | ms/frame |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['image_size']} | {r['mode']} | {r['frames']:,} | {r['peak_rss_mib']:.0f} | "
                     f"{r['held_outputs']} | {r['ms_per_frame']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 10000], help="micro video lengths")
    p.add_argument("--tiny-lengths", type=int, nargs="*", default=[100], help="tiny video lengths")
    p.add_argument("--tiny-image-size", type=int, default=512, help="tiny input size of the memory runs")
    p.add_argument("--modes", nargs="+", default=["default", "bounded"], choices=["default", "bounded"])
    p.add_argument("--stream-frames", type=int, default=12, help="frames of each streaming timing (0: none)")
    p.add_argument("--no-rss", action="store_true", help="skip the memory runs")
    p.add_argument("--clip", type=Path, default=None, help="reuse / keep the synthetic clip at this path")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--child", choices=["rss", "stream"], help=argparse.SUPPRESS)
    p.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--model", default="micro", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="default", help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, default=100, help=argparse.SUPPRESS)
    p.add_argument("--image-size", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        print(json.dumps(child_rss(args) if args.child == "rss" else child_stream(args)))
        return
    longest = max([*args.lengths, *(args.tiny_lengths or []), args.stream_frames, 1])
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or Path(tmp) / "clip.mp4"
        if not clip.is_file() or _frames_of(clip) < longest:
            start = time.perf_counter()
            write_clip(clip, longest)
            print(f"wrote {longest} frames of {WIDTH}x{HEIGHT} to {clip} in {time.perf_counter() - start:.0f} s",
                  flush=True)
        rss, stream = [], []
        if not args.no_rss:
            plan = [("micro", None, n) for n in args.lengths] + [("tiny", args.tiny_image_size, n)
                                                                 for n in args.tiny_lengths or []]
            for model, size, n in plan:
                for mode in args.modes:
                    row = run_child(clip, "rss", model, mode, n, size)
                    rss.append(row)
                    print(json.dumps({k: v for k, v in row.items()}), flush=True)
        for size in (1024, 512) if args.stream_frames else ():
            row = run_child(clip, "stream", "tiny", "bounded", args.stream_frames, size)
            stream.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "per_frame_ms"}), flush=True)
    print(table(rss))
    for row in stream:
        print(f"streaming tiny @ {row['image_size']}: {row['ms_per_frame']:.0f} ms/frame ({row['fps']:.2f} fps), "
              f"3 objects, {row['frames']} frames")
    if args.json:
        args.json.write_text(json.dumps({"environment": environment(torch.device("cpu")), "rss": rss,
                                         "stream": stream}, indent=1))


def _frames_of(path: Path) -> int:
    from sam2.utils.video_decode import VideoFileSource

    source = VideoFileSource(str(path))
    try:
        return len(source)
    finally:
        source.close()


if __name__ == "__main__":
    main()
