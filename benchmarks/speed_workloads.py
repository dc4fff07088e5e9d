"""One timed workload of ``benchmarks/speed.py``, run in a fresh process by either Python environment.

    python speed_workloads.py WORKDIR SPEC.json      # prints one JSON line: {"times_ms": [...], ...}

This file imports only the public API that sam2-kit and the official ``sam2`` package share
(``sam2.build_sam``, ``SAM2ImagePredictor``, the video predictor), so the same code times both:
``speed.py`` runs it with our venv (our checkout on ``PYTHONPATH``) and with the official venv (nothing of
ours on the path). Inputs (checkpoints, the image, the JPEG frames) are written once by ``speed.py`` into
WORKDIR, so both sides read identical bytes.

The spec (a JSON object): ``workload`` (``set_image``, ``predict``, ``video``), ``config``,
``checkpoint``, ``device``, ``threads``, ``repeats``, ``warmup``, ``bf16`` (CUDA autocast),
``vos_optimized``, ``objects`` (video), ``count_flops``, ``torchvision_shim``
(see ``torchvision_shim.py``).
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _attention_flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    """Q @ K^T and P @ V of scaled dot-product attention (2 FLOPs per multiply-add)."""
    return 2 * math.prod(q_shape[:-2]) * q_shape[-2] * k_shape[-2] * (q_shape[-1] + v_shape[-1])


def flop_counter():
    """``FlopCounterMode`` that also counts the fused CPU attention kernel (absent from torch's table)."""
    from torch.utils.flop_counter import FlopCounterMode

    extra = {}
    cpu_sdpa = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_sdpa is not None:
        extra[cpu_sdpa] = _attention_flops
    return FlopCounterMode(display=False, custom_mapping=extra)


class Runner:
    """Builds the model of a spec and runs its workload; every phase is timed with ``perf_counter``."""

    def __init__(self, spec: dict, workdir: Path) -> None:
        self.spec = spec
        self.workdir = workdir
        self.device = torch.device(spec["device"])
        torch.set_num_threads(int(spec["threads"]))

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def context(self):
        """Inference mode, plus bf16 autocast on CUDA when asked (the official README's setting)."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.spec.get("bf16"):
            stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
        return stack

    def timed(self, fn) -> list[float]:
        """``warmup`` untimed calls, then ``repeats`` timed ones, in milliseconds."""
        for _ in range(self.spec["warmup"]):
            fn()
        times = []
        for _ in range(self.spec["repeats"]):
            self.sync()
            start = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - start) * 1e3)
        return times

    def count(self, fn) -> float | None:
        if not self.spec.get("count_flops"):
            return None
        counter = flop_counter()
        with counter:
            fn()
        return counter.get_total_flops() / 1e9

    def image_model(self):
        from sam2.build_sam import build_sam2

        return build_sam2(self.spec["config"], self.spec["checkpoint"], device=str(self.device))

    def image(self) -> np.ndarray:
        return np.load(self.workdir / "image.npy")

    def run(self) -> dict:
        return getattr(self, "run_" + self.spec["workload"])()

    def run_set_image(self) -> dict:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        predictor = SAM2ImagePredictor(self.image_model())
        image = self.image()
        with self.context():
            times = self.timed(lambda: predictor.set_image(image))
            gflop = self.count(lambda: predictor.set_image(image))
        return {"times_ms": times, "gflop": gflop}

    def run_predict(self) -> dict:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        predictor = SAM2ImagePredictor(self.image_model())
        image = self.image()
        point = np.array([[image.shape[1] * 0.4, image.shape[0] * 0.6]], dtype=np.float32)
        label = np.array([1], dtype=np.int32)

        def predict():
            return predictor.predict(point, label, multimask_output=True)

        with self.context():
            predictor.set_image(image)
            times = self.timed(predict)
            gflop = self.count(predict)
            masks, scores, _ = predict()
        return {"times_ms": times, "gflop": gflop, "mask_pixels": int(np.asarray(masks[0]).sum()),
                "score0": float(scores[0])}

    def run_video(self) -> dict:
        from sam2.build_sam import build_sam2_video_predictor

        predictor = build_sam2_video_predictor(self.spec["config"], self.spec["checkpoint"],
                                               device=str(self.device),
                                               vos_optimized=bool(self.spec.get("vos_optimized")))
        clicks = json.loads((self.workdir / "clicks.json").read_text())[: self.spec["objects"]]
        frames_dir = str(self.workdir / "frames")
        per_frame, init_ms, areas = [], [], []
        for _ in range(self.spec["repeats"]):
            times, _, init, last_area = self.propagate(predictor, clicks, frames_dir, count=False)
            per_frame += times
            init_ms.append(init)
            areas.append(last_area)
        flops = []
        if self.spec.get("count_flops"):  # one more pass, not timed: counting slows every op down
            flops = self.propagate(predictor, clicks, frames_dir, count=True)[1]
        return {"times_ms": per_frame, "gflop": statistics.median(flops) if flops else None,
                "init_ms": init_ms, "mask_pixels_last": areas[-1]}

    def propagate(self, predictor, clicks, frames_dir: str, count: bool):
        """One session: init, one click per object on frame 0, propagate. -> (ms per tracked frame,
        GFLOP per tracked frame when ``count``, init ms, mask pixels of the last frame). Frame 0 returns
        the prompts' output, not a tracking step, and is left out."""
        times, flops, area = [], [], 0
        with self.context():
            start = time.perf_counter()
            state = predictor.init_state(frames_dir)
            init_ms = (time.perf_counter() - start) * 1e3
            for obj_id, (x, y) in enumerate(clicks, start=1):
                predictor.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id,
                                                points=np.array([[x, y]], dtype=np.float32),
                                                labels=np.array([1], dtype=np.int32))
            frames = predictor.propagate_in_video(state)
            index = 0
            while True:
                counter = flop_counter() if count else contextlib.nullcontext()
                self.sync()
                start = time.perf_counter()
                with counter:
                    item = next(frames, None)
                self.sync()
                if item is None:
                    break
                if index > 0:
                    times.append((time.perf_counter() - start) * 1e3)
                    if count:
                        flops.append(counter.get_total_flops() / 1e9)
                area = int((item[2] > 0).sum())
                index += 1
        return times, flops, init_ms, area


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    workdir, spec_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    if spec.get("torchvision_shim"):
        import torchvision_shim  # benchmarks/torchvision_shim.py (this file's folder is on sys.path)

        torchvision_shim.install()
    import sam2

    result = Runner(spec, workdir).run()
    result["sam2_file"] = str(Path(sam2.__file__).resolve().parent)
    result["torch"] = torch.__version__
    result["threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
