"""Demo server benchmark: server time of a click, on a frame whose embedding is cached and on a new frame.

    python benchmarks/demo.py                                  # sam2.1_hiera_t on the CPU, 5 clicks each
    python benchmarks/demo.py --repeats 9 --size 1280x720 --json demo.json

The model is built from its official config with synthesized weights (``synth_weights.py`` of the reference
data and the model's manifest; random weights from ``build_sam2`` when the reference data is absent: the
run time does not depend on the weight values). The app of ``sam2.demo.create_app`` is driven in-process
through FastAPI's TestClient (no network): a session is opened on a generated MP4 (``--frames`` frames of
``--size``), which embeds frame 0; one untimed click warms up. Then:

* cached frame: ``--repeats`` clicks on frame 0 for object 1, each at a new point (the embedding of frame
  0 is cached in the session, so a click runs the prompt encoder, the mask decoder and the upsampling);
* new frame: one click on each of frames 1..``--repeats`` (each frame is decoded, preprocessed and
  embedded by the image encoder first).

For each click the wall time of the whole request (routing, queue, model, RLE encoding, JSON) and the
model part (the ``Server-Timing: model`` header) are recorded; medians are reported in milliseconds.
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

from sam2.build_sam import build_sam2_video_predictor  # noqa: E402
from sam2.cli.media import Mp4Writer  # noqa: E402
from sam2.registry import find_release  # noqa: E402

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference"


def synthesized_checkpoint(preset: str, folder: Path) -> Path | None:
    """Write synthesized weights of ``preset`` (e.g. sam2.1_hiera_t) if the reference data is present."""
    import importlib.util

    script, manifest = REFERENCE_DIR / "synth_weights.py", REFERENCE_DIR / "manifests" / f"{preset}.json"
    if not (script.is_file() and manifest.is_file()):
        return None
    spec = importlib.util.spec_from_file_location("synth_weights", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = folder / f"{preset}.pt"
    module.write_checkpoint(str(path), str(manifest), seed=0)
    return path


def write_clip(path: Path, frames: int, width: int, height: int) -> Path:
    """Moving discs over a noisy gradient (H.264)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(40, 160, width, dtype=np.float32)[None, :, None]
    base = np.clip(ramp + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.ogrid[:height, :width]
    with Mp4Writer(path, width, height, fps=24) as writer:
        for i in range(frames):
            img = base.copy()
            for k, colour in enumerate(((230, 40, 40), (40, 200, 60), (40, 80, 230))):
                cx, cy = width * (k + 1) // 4 + 6 * i, height // 2
                img[(yy - cy) ** 2 + (xx - cx) ** 2 <= (height // 8) ** 2] = colour
            writer.write(img)
    return path


def timed_click(client, sid: str, frame: int, x: float, y: float) -> tuple[float, float]:
    """(request ms, model ms) of one click."""
    start = time.perf_counter()
    r = client.post(f"/api/sessions/{sid}/points",
                    json={"frame": frame, "object_id": 1, "points": [[x, y]], "labels": [1]})
    wall = (time.perf_counter() - start) * 1000
    r.raise_for_status()
    model = float(r.headers["server-timing"].split("model;dur=")[1])
    return wall, model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="sam2.1_hiera_t", help="preset / release name (default sam2.1_hiera_t)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--frames", type=int, default=12, help="frames of the generated clip (> --repeats)")
    p.add_argument("--size", default="854x480", help="WIDTHxHEIGHT of the clip (default 854x480)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--json", type=Path, default=None, help="write the environment and every time here")
    args = p.parse_args()
    if args.frames <= args.repeats:
        p.error("--frames must be larger than --repeats")
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    from fastapi.testclient import TestClient

    from sam2.demo import create_app

    device = torch.device(args.device)
    release = find_release(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = synthesized_checkpoint(release.preset, Path(tmp))
        predictor = build_sam2_video_predictor(release.config, str(ckpt) if ckpt else None, device=device)
        clip = write_clip(Path(tmp) / "clip.mp4", args.frames, width, height)
        with TestClient(create_app(predictor, model_name=args.model, samples_dir=None)) as client:
            start = time.perf_counter()
            r = client.post("/api/sessions", files={"file": ("clip.mp4", clip.read_bytes())})
            r.raise_for_status()
            open_ms = (time.perf_counter() - start) * 1000
            sid = r.json()["session_id"]
            timed_click(client, sid, 0, width / 4, height / 2)  # warm-up
            rng = np.random.default_rng(1)
            cached = [timed_click(client, sid, 0, *rng.uniform(0.1, 0.9, 2) * (width, height))
                      for _ in range(args.repeats)]
            new = [timed_click(client, sid, t, width / 4 + 6 * t, height / 2) for t in range(1, args.repeats + 1)]
    result = {
        "environment": environment(device), "model": args.model, "weights": "synthesized" if ckpt else "random",
        "video": {"frames": args.frames, "width": width, "height": height}, "open_session_ms": open_ms,
        "cached_frame": {"request_ms": [c[0] for c in cached], "model_ms": [c[1] for c in cached]},
        "new_frame": {"request_ms": [c[0] for c in new], "model_ms": [c[1] for c in new]},
    }
    print(f"{args.model} on {device} ({torch.get_num_threads()} threads), {width}x{height} video, "
          f"{args.repeats} clicks each, medians:")
    print("| click | request ms | model ms |\n|---|---:|---:|")
    for label, key in (("frame with cached embedding", "cached_frame"), ("new frame", "new_frame")):
        times = result[key]
        print(f"| {label} | {statistics.median(times['request_ms']):.1f} | "
              f"{statistics.median(times['model_ms']):.1f} |")
    print(f"open session (decode + embed frame 0): {open_ms:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
