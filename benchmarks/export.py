"""ONNX Runtime (CPU) against our PyTorch code (CPU): set_image, predict and video ms/frame.

    python benchmarks/export.py                                   # sam2.1 t and l
    python benchmarks/export.py --models sam2.1_hiera_t --frames 6 --repeats 3 --json export.json

For each model, ``build_sam2_video_predictor(config, None, device="cpu")`` (random weights: the run
time does not depend on them) is exported with ``sam2.export.to_onnx`` into a temporary folder. Then,
alternating PyTorch and ONNX Runtime run by run (A, B, A, B, ...) so that a busy machine slows both alike:

- ``set_image``: one random 1024x1024 RGB image (preprocessing + image encoder);
- ``predict``: one foreground click, ``multimask_output=True`` (decoder + upsampling + threshold);
- ``video``: one click on frame 0 of a generated ``--size`` clip, ``propagate_in_video`` over
  ``--frames`` frames, reported as milliseconds per frame (the whole session, init_state included).

Medians are reported with the ratio ORT / PyTorch (below 1: ONNX Runtime is faster). Both use
``--threads`` threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from machine import environment  # noqa: E402  (benchmarks/machine.py)
from video import make_background, make_frame  # noqa: E402  (benchmarks/video.py)

from sam2.build_sam import build_sam2_video_predictor  # noqa: E402
from sam2.registry import find_release  # noqa: E402
from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: E402

DEFAULT_MODELS = ("sam2.1_hiera_t", "sam2.1_hiera_l")


def write_clip(folder: Path, frames: int, width: int, height: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    background = make_background(width, height, seed=0)
    for i in range(frames):
        Image.fromarray(make_frame(i, width, height, background)).save(folder / f"{i:05d}.jpg", quality=95)
    return folder


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def _video_run(predictor, clip: Path, click: np.ndarray, frames: int) -> float:
    """ms per frame of one whole session: init_state, one click on frame 0, propagate."""
    def session():
        state = predictor.init_state(str(clip))
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=click, labels=np.array([1], np.int32))
        for _ in predictor.propagate_in_video(state):
            pass
    return _timed(session) / frames


def bench_model(name: str, args: argparse.Namespace, work: Path) -> dict:
    from sam2.export import OnnxImagePredictor, OnnxVideoPredictor, to_onnx

    config = find_release(name).config if not name.endswith(".yaml") else name
    torch.manual_seed(0)
    video_torch = build_sam2_video_predictor(config, None, device="cpu", compile=False)
    export_ms = _timed(lambda: to_onnx(video_torch, work / name, overwrite=True))
    image_torch = SAM2ImagePredictor(video_torch.model)
    image_ort = OnnxImagePredictor(work / name, threads=args.threads)
    video_ort = OnnxVideoPredictor(work / name)
    image = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    click = dict(point_coords=np.array([[500.0, 400.0]]), point_labels=np.array([1]))
    clip = write_clip(work / "clip", args.frames, *args.size)
    clip_click = np.array([[args.size[0] // 4, args.size[1] // 2]], dtype=np.float32)

    times: dict[str, dict[str, list[float]]] = {k: {"torch": [], "ort": []} for k in ("set_image", "predict", "video")}
    runners = {"torch": (image_torch, video_torch), "ort": (image_ort, video_ort)}
    for image_pred, _ in runners.values():  # warm-up (first-run allocations, lazy inits)
        image_pred.set_image(image)
        image_pred.predict(**click)
    for _ in range(args.repeats):
        for backend, (image_pred, _) in runners.items():
            times["set_image"][backend].append(_timed(lambda p=image_pred: p.set_image(image)))
            times["predict"][backend].append(_timed(lambda p=image_pred: p.predict(**click)))
    for _ in range(args.video_repeats):
        for backend, (_, video_pred) in runners.items():
            with torch.inference_mode():
                times["video"][backend].append(_video_run(video_pred, clip, clip_click, args.frames))
    medians = {k: {b: statistics.median(v) for b, v in per.items()} for k, per in times.items()}
    return {"model": name, "export_s": export_ms / 1000.0, "times_ms": times, "median_ms": medians,
            "onnx_mb": sum(p.stat().st_size for p in (work / name).glob("*.onnx")) / 2**20}


def table(results: list[dict]) -> str:
    lines = ["| model | phase | PyTorch ms | ORT ms | ORT / PyTorch |", "|---|---|---:|---:|---:|"]
    for r in results:
        for phase, unit in (("set_image", ""), ("predict", ""), ("video", " per frame")):
            t, o = r["median_ms"][phase]["torch"], r["median_ms"][phase]["ort"]
            lines.append(f"| {r['model']} | {phase}{unit} | {t:.1f} | {o:.1f} | {o / t:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--repeats", type=int, default=3, help="set_image / predict runs per backend (default 3)")
    p.add_argument("--video-repeats", type=int, default=2, help="video sessions per backend (default 2)")
    p.add_argument("--frames", type=int, default=6, help="frames of the generated clip (default 6)")
    p.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")), default=(480, 270),
                   help="clip size WxH (default 480x270)")
    p.add_argument("--threads", type=int, default=2, help="threads for PyTorch and ONNX Runtime (default 2)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory(prefix="sam2-export-bench-") as tmp:
        for name in args.models:
            results.append(bench_model(name, args, Path(tmp)))
            print(table(results[-1:]), flush=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"environment": environment(torch.device("cpu")), "settings": vars(args)
                                         | {"json": str(args.json)}, "results": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
