"""One automatic-mask-generator timing run, with whichever ``sam2`` this interpreter imports.

    python benchmarks/amg_worker.py SPEC.json      # prints one line "RESULT {...}"

Run by ``benchmarks/amg.py`` in our environment and in the official one (``sam2==1.1.0``), so the same
calls time both. It uses only what both packages share: ``build_sam2``, ``SAM2AutomaticMaskGenerator``
and its ``_process_batch``. Spec keys: ``config``, ``checkpoint``, ``image`` (an .npy file), ``generator``
(constructor kwargs), ``mode`` (``stages`` or ``generate``), ``repeats``, ``torchvision_shim``.

``stages`` times, on one image: ``set_image`` (the image encoder); the mask decoder on the first point
batch (``decoder_s``); the rest of that batch — IoU filter, upsampling, stability, binarisation, boxes,
RLE — with the decoder replaced by a replay of its recorded output (``postprocess_s``, median of
``repeats``); and NMS of the batch's survivors. ``generate`` times ``generate(image)`` end to end.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch


class _Recorder(torch.nn.Module):
    """Runs the real mask decoder, keeps its outputs and the time it took."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder
        self.outputs: list[tuple] = []
        self.seconds = 0.0

    def forward(self, *args, **kwargs):
        start = time.perf_counter()
        out = tuple(self.decoder(*args, **kwargs))
        self.seconds += time.perf_counter() - start
        self.outputs.append(out)
        return out


class _Replay(torch.nn.Module):
    """Returns recorded decoder outputs in turn (the post-processing then runs on real numbers)."""

    def __init__(self, outputs: list[tuple]) -> None:
        super().__init__()
        self.outputs = outputs
        self.calls = 0

    def forward(self, *args, **kwargs):
        out = self.outputs[self.calls % len(self.outputs)]
        self.calls += 1
        return out


def _stages(generator, model, image: np.ndarray, repeats: int) -> dict:
    try:
        from sam2.utils.nms import batched_nms  # ours
    except ImportError:
        from torchvision.ops.boxes import batched_nms  # the official generator's NMS

    h, w = image.shape[:2]
    crop_box = [0, 0, w, h]
    start = time.perf_counter()
    generator.predictor.set_image(image)
    set_image_s = time.perf_counter() - start
    points = generator.point_grids[0][:generator.points_per_batch] * np.array([[w, h]])
    real = model.sam_mask_decoder
    recorder = _Recorder(real)
    model.sam_mask_decoder = recorder
    data = generator._process_batch(points, (h, w), crop_box, (h, w), normalize=True)
    model.sam_mask_decoder = _Replay(recorder.outputs)
    post = []
    for _ in range(repeats):
        start = time.perf_counter()
        data = generator._process_batch(points, (h, w), crop_box, (h, w), normalize=True)
        post.append(time.perf_counter() - start)
    model.sam_mask_decoder = real
    start = time.perf_counter()
    keep = batched_nms(data["boxes"].float(), data["iou_preds"], torch.zeros_like(data["boxes"][:, 0]),
                       iou_threshold=generator.box_nms_thresh)
    nms_s = time.perf_counter() - start
    iou = torch.cat([out[1].flatten() for out in recorder.outputs])
    return {"set_image_s": set_image_s, "decoder_s": recorder.seconds, "postprocess_s": statistics.median(post),
            "postprocess_runs_s": post, "nms_s": nms_s, "points": len(points), "candidates": int(iou.numel()),
            "passed_iou": int((iou > generator.pred_iou_thresh).sum()), "survivors": len(data["rles"]),
            "after_nms": int(keep.numel())}


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("torchvision_shim"):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import torchvision_shim

        torchvision_shim.install()
    import sam2
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.build_sam import build_sam2

    torch.set_grad_enabled(False)
    image = np.load(spec["image"])
    model = build_sam2(spec["config"], spec["checkpoint"], device="cpu")
    generator = SAM2AutomaticMaskGenerator(model, **spec["generator"])
    result = {"sam2": str(Path(sam2.__file__).parent), "threads": torch.get_num_threads(),
              "image_hw": list(image.shape[:2])}
    if spec["mode"] == "stages":
        result |= _stages(generator, model, image, spec["repeats"])
    else:
        times, masks = [], 0
        for _ in range(spec["repeats"]):
            start = time.perf_counter()
            masks = len(generator.generate(image))
            times.append(time.perf_counter() - start)
        result |= {"generate_s": statistics.median(times), "generate_runs_s": times, "masks": masks}
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
