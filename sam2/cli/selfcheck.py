"""``sam2 selfcheck``: run every pipeline offline on a tiny model with random weights."""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sam2.cli import common

MICRO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "micro" / "sam2.1_hiera_micro_128.yaml"

DESCRIPTION = f"""\
Check an installation without network access or downloaded weights: build a tiny SAM 2.1 model
(the package's micro config {MICRO_CONFIG.name}: Hiera embed_dim 16, 128x128 input) with random
weights from a fixed seed, and run every pipeline on generated images and videos:

  build          model construction from the YAML config
  checkpoint     save {{"model": state_dict}}, reload it strictly, same tensors; a damaged one is refused
  image          SAM2ImagePredictor with a click (3 masks) and a box (1 mask), repeatable results
  automatic      SAM2AutomaticMaskGenerator: coco_rle masks decode (pycocotools) to the binary masks
  video          an MP4 written and decoded with PyAV; SAM2VideoPredictor with click, box and mask
                 prompts tracks 3 objects over every frame, forwards and backwards
  command line   sam2 image / auto / video on the saved checkpoint, into a temporary folder

Runs on one CPU thread. One PASS/FAIL line per step, then the total time. Exit status 0 when every step passes, else 1.
The random weights do not segment anything meaningful; only the machinery is checked.
"""

H, W, NUM_FRAMES = 72, 96, 5


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sam2 selfcheck``."""
    p = subparsers.add_parser("selfcheck", help="verify the installation offline (tiny random model)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars (the PASS/FAIL lines remain)")
    p.set_defaults(func=run, _parser=p)
    return p


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def scene(shift: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 test picture: a bright square (moved right by ``shift``) and a disc on a gradient."""
    ys, xs = np.mgrid[0:H, 0:W]
    img = np.stack([xs * 2, ys * 3, np.full_like(xs, 90)], axis=-1).astype(np.uint8)
    img[15:45, 10 + shift:40 + shift] = (230, 220, 40)
    img[((ys - 50) ** 2 + (xs - 70) ** 2) < 12 ** 2] = (30, 40, 200)
    return img


class Checker:
    """The steps, sharing the model, the checkpoint and a scratch folder."""

    def __init__(self, device: Any, seed: int, tmp: Path, quiet: bool) -> None:
        self.device, self.seed, self.tmp, self.quiet = device, seed, tmp, quiet
        self.model: Any = None
        self.ckpt = tmp / "micro.pt"

    def build(self) -> str:
        import torch

        from sam2.build_sam import build_sam2

        torch.manual_seed(self.seed)
        self.model = build_sam2(str(MICRO_CONFIG), None, device=self.device)
        params = sum(p.numel() for p in self.model.parameters())
        _check(all(torch.isfinite(p).all() for p in self.model.parameters()), "non-finite initial weights")
        return f"{params:,} parameters, image size {self.model.image_size}"

    def checkpoint(self) -> str:
        import torch

        from sam2.build_sam import build_sam2
        from sam2.checkpoint import CheckpointError

        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save({"model": state}, self.ckpt)
        reloaded = build_sam2(str(MICRO_CONFIG), str(self.ckpt), device=self.device).state_dict()
        _check(list(reloaded) == list(state), "reloaded model has other keys")
        _check(all(torch.equal(reloaded[k].cpu(), v) for k, v in state.items()), "reloaded tensors differ")
        damaged = self.tmp / "damaged.pt"
        torch.save({"model": {k: v for k, v in list(state.items())[1:]}}, damaged)
        try:
            build_sam2(str(MICRO_CONFIG), str(damaged), device="cpu")
        except CheckpointError:
            pass
        else:
            raise AssertionError("a checkpoint with a missing key was accepted")
        return f"{len(state)} tensors, {self.ckpt.stat().st_size / 1e6:.1f} MB"

    def image(self) -> str:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        predictor = SAM2ImagePredictor(self.model)
        predictor.set_image(scene())
        point, label = np.array([[25.0, 30.0]]), np.array([1])
        masks, scores, logits = predictor.predict(point_coords=point, point_labels=label)
        low = self.model.image_size // 4
        _check(masks.shape == (3, H, W) and scores.shape == (3,) and logits.shape == (3, low, low),
               f"click: shapes {masks.shape}, {scores.shape}, {logits.shape}")
        _check(set(np.unique(masks)) <= {0.0, 1.0} and bool(np.all((scores >= 0) & (scores <= 1))),
               "click: masks not binary or scores outside [0, 1]")
        again, scores2, _ = predictor.predict(point_coords=point, point_labels=label)
        _check(np.array_equal(masks, again) and np.array_equal(scores, scores2), "results not repeatable")
        box_masks, box_scores, _ = predictor.predict(box=np.array([8.0, 12.0, 45.0, 48.0]), multimask_output=False)
        _check(box_masks.shape == (1, H, W) and box_scores.shape == (1,), f"box: shape {box_masks.shape}")
        return f"click scores {', '.join(f'{v:.3f}' for v in scores)}; box score {box_scores[0]:.3f}"

    def automatic(self) -> str:
        from pycocotools import mask as mask_utils

        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        kwargs = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
        rle = SAM2AutomaticMaskGenerator(self.model, output_mode="coco_rle", **kwargs).generate(scene())
        binary = SAM2AutomaticMaskGenerator(self.model, output_mode="binary_mask", **kwargs).generate(scene())
        _check(len(rle) == len(binary) > 0, f"{len(rle)} RLE masks vs {len(binary)} binary masks")
        for r, b in zip(rle, binary):
            decoded = mask_utils.decode(r["segmentation"]).astype(bool)
            _check(np.array_equal(decoded, b["segmentation"]), "an RLE mask does not decode to the binary mask")
            _check(r["area"] == int(decoded.sum()) == int(mask_utils.area(r["segmentation"])), "areas differ")
        return f"{len(rle)} mask{'' if len(rle) == 1 else 's'}, RLE round trip exact"

    def video(self) -> str:
        import torch

        from sam2.build_sam import build_sam2_video_predictor
        from sam2.cli.media import Mp4Writer
        from sam2.utils.video_decode import VideoDecoder

        path = self.tmp / "clip.mp4"
        with Mp4Writer(path, W, H, fps=10) as writer:
            for t in range(NUM_FRAMES):
                writer.write(scene(shift=4 * t))
        decoder = VideoDecoder(path)
        try:
            _check((decoder.num_frames, decoder.height, decoder.width) == (NUM_FRAMES, H, W),
                   f"decoded {decoder.num_frames} frames of {decoder.width}x{decoder.height}")
            _check(np.abs(decoder.read(2).astype(int) - scene(8)).mean() < 8, "decoded frame differs from the input")
        finally:
            decoder.close()
        predictor = build_sam2_video_predictor(str(MICRO_CONFIG), str(self.ckpt), device=self.device)
        predictor.show_progress = False  # a bar would interleave with the PASS lines
        with torch.inference_mode():
            state = predictor.init_state(str(path))
            predictor.add_new_points_or_box(state, 0, 1, points=np.array([[25, 30]]), labels=np.array([1]))
            predictor.add_new_points_or_box(state, 0, 2, box=np.array([55, 35, 85, 65]))
            disc = np.zeros((H, W), bool)
            disc[40:60, 60:80] = True
            predictor.add_new_mask(state, 2, 3, disc)
            forward = {t: m for t, _, m in predictor.propagate_in_video(state)}
            backward = {t: m for t, _, m in predictor.propagate_in_video(state, start_frame_idx=NUM_FRAMES - 1,
                                                                          reverse=True)}
        _check(sorted(forward) == list(range(NUM_FRAMES)) == sorted(backward), "not every frame was visited")
        _check(all(m.shape == (3, 1, H, W) and torch.isfinite(m).all() for m in forward.values()),
               "mask logits of the wrong shape or not finite")
        given = (forward[2][2, 0] > 0).cpu().numpy()
        iou = (given & disc).sum() / max(1, (given | disc).sum())
        _check(iou > 0.8, f"the mask prompt comes back with IoU {iou:.2f}")
        return f"{NUM_FRAMES}-frame MP4, 3 objects tracked both ways"

    def command_line(self) -> str:
        from PIL import Image

        from sam2.cli.main import main

        image = self.tmp / "scene.png"
        Image.fromarray(scene()).save(image)
        model = ["--config", str(MICRO_CONFIG), "--checkpoint", str(self.ckpt), "--device", str(self.device), "-q"]
        runs = {
            "image": ["image", str(image), "--point", "25,30", "-o", str(self.tmp / "cli_image")],
            "auto": ["auto", str(image), "--points-per-side", "4", "--pred-iou-thresh", "0",
                     "--stability-score-thresh", "0", "-o", str(self.tmp / "cli_auto")],
            "video": ["video", str(self.tmp / "clip.mp4"), "--prompt", "0:1:point=25,30", "--format", "mp4",
                      "-o", str(self.tmp / "cli_video.mp4")],
        }
        for name, argv in runs.items():
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = main([*argv, *model])
                except SystemExit as exc:  # usage error
                    code = exc.code
            _check(code == 0, f"sam2 {name} exited with status {code}")
        expected = [self.tmp / "cli_image" / "result.json", self.tmp / "cli_image" / "mask_0.png",
                    self.tmp / "cli_auto" / "annotations.json", self.tmp / "cli_video.mp4"]
        missing = [str(p.name) for p in expected if not p.is_file()]
        _check(not missing, f"missing outputs: {missing}")
        return "sam2 image, auto, video"


def run(args: argparse.Namespace) -> int:
    """Run every step, print PASS/FAIL lines; 0 when all pass."""
    device = common.resolve_device(args._parser, args.device)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the micro model is far too small to gain from more CPU threads
    try:
        return _run_steps(args, device)
    finally:
        torch.set_num_threads(threads)


def _run_steps(args: argparse.Namespace, device: Any) -> int:
    start = time.perf_counter()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="sam2-selfcheck-") as tmp:
        checker = Checker(device, args.seed, Path(tmp), args.quiet)
        steps: list[tuple[str, Callable[[], str]]] = [
            ("build", checker.build), ("checkpoint", checker.checkpoint), ("image", checker.image),
            ("automatic", checker.automatic), ("video", checker.video), ("command line", checker.command_line),
        ]
        for name, step in steps:
            t0 = time.perf_counter()
            if checker.model is None and name != "build":
                print(f"SKIP  {name:<13} (no model)", flush=True)
                failed += 1
                continue
            try:
                detail = step()
                print(f"PASS  {name:<13} {time.perf_counter() - t0:6.2f} s  {detail}", flush=True)
            except Exception as exc:  # a selfcheck reports every failure and goes on
                failed += 1
                print(f"FAIL  {name:<13} {time.perf_counter() - t0:6.2f} s  {type(exc).__name__}: {exc}", flush=True)
                if args.verbose:
                    traceback.print_exc()
    total = time.perf_counter() - start
    verdict = "all passed" if not failed else f"{failed} of {len(steps)} FAILED"
    print(f"selfcheck: {verdict} in {total:.1f} s (torch device {device})")
    return 0 if not failed else 1
