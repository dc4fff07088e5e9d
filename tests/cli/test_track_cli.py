"""``sam2 track``: PNG / JSON lines / MP4 written frame by frame, equal to ``sam2 video`` and the streaming
API; --max-frames, prompts on later frames, Ctrl-C and a failing source keep what was written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2.utils.png_masks import load_ann_png
from tests.cli.conftest import MICRO, REPO_ROOT, listing, run_cli
from tests.cli.test_video_cli import H, T, W, frame, write_frames, write_mp4
from tests.streaming.live_media import growing_file, http_server, ts_bytes

PROMPTS = ["--prompt", "0:1:point=25,30", "--prompt", "0:2:box=55,35,85,65"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("track_inputs")
    return {"mp4": write_mp4(root / "clip.mp4"), "frames": write_frames(root / "frames")}


def pngs(folder: Path) -> dict[str, np.ndarray]:
    return {p.stem: load_ann_png(p)[0] for p in sorted(folder.glob("*.png"))}


def test_png_output_equals_sam2_video(inputs, model_args, tmp_path):
    ours, theirs = tmp_path / "track", tmp_path / "video"
    done = run_cli("track", str(inputs["mp4"]), *PROMPTS, "-o", str(ours), *model_args)
    assert done.returncode == 0, done.stderr
    assert f"tracked 2 objects on {T} frames" in done.stdout and "fps" in done.stdout
    ref = run_cli("video", str(inputs["mp4"]), *PROMPTS, "-o", str(theirs), "-q", *model_args)
    assert ref.returncode == 0, ref.stderr
    a, b = pngs(ours), pngs(theirs)
    assert list(a) == list(b) == [f"{t:05d}" for t in range(T)]
    for name in a:
        assert np.array_equal(a[name], b[name]), f"frame {name} differs from sam2 video"
    assert set(np.unique(a[f"{T - 1:05d}"])) >= {1, 2}
    assert listing(ours) == [f"{t:05d}.png" for t in range(T)]


def test_jsonl_rle_equals_the_streaming_api(inputs, model_args, synth_checkpoint, tmp_path):
    from pycocotools import mask as mask_utils

    from sam2.build_sam import build_sam2_video_predictor
    from sam2.streaming import StreamingSession, open_source

    out = tmp_path / "masks.jsonl"
    prompts = ["--prompt", "0:1:point=25,30", "--prompt", "2:3:box=55,35,85,65", "--prompt", "3:1:point=20,25,0"]
    done = run_cli("track", str(inputs["mp4"]), *prompts, "--format", "jsonl", "-o", str(out), "-q", *model_args)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(T))
    assert [[o["id"] for o in line["objects"]] for line in lines] == [[1], [1], [1, 3], [1, 3], [1, 3], [1, 3]]

    predictor = build_sam2_video_predictor(MICRO, synth_checkpoint, device="cpu",
                                           hydra_overrides_extra=["++model.non_overlap_masks=false"])
    session = StreamingSession(predictor, length_hint=T)
    with open_source(str(inputs["mp4"])) as source:
        for line, image in zip(lines, source):
            result = session.track(image)
            if result.frame_idx == 0:
                result = session.add_new_points_or_box(1, points=[[25, 30]], labels=[1])
            elif result.frame_idx == 2:
                result = session.add_new_points_or_box(3, box=[55, 35, 85, 65])
            elif result.frame_idx == 3:
                result = session.add_new_points_or_box(1, points=[[20, 25]], labels=[0])
            expected = result.binary()
            for i, obj in enumerate(line["objects"]):
                mask = mask_utils.decode(obj["rle"]).astype(bool)
                assert obj["rle"]["size"] == [H, W] and obj["area"] == int(mask.sum())
                assert np.array_equal(mask, expected[i]), f"frame {line['frame']} object {obj['id']}"


def test_mp4_output_max_frames_and_image_size(inputs, model_args, tmp_path):
    from sam2.utils.video_decode import VideoFileSource

    out = tmp_path / "live.mp4"
    done = run_cli("track", str(inputs["frames"]), *PROMPTS, "--format", "mp4", "--max-frames", "3",
                   "-o", str(out), "-q", *model_args)
    assert done.returncode == 0, done.stderr
    video = VideoFileSource(str(out))
    assert len(video) == 3 and video.read(0).shape == (H, W, 3)
    video.close()
    folder = tmp_path / "three"
    done = run_cli("track", str(inputs["frames"]), *PROMPTS, "--max-frames", "3", "--image-size", "256",
                   "-o", str(folder), "-q", *model_args)
    assert done.returncode == 0, done.stderr
    assert listing(folder) == ["f0.png", "f1.png", "f2.png"]  # frame names of the folder


@pytest.mark.parametrize("extra,message", [
    ([], "argument --prompt: give at least one prompt"),
    (["--prompt", "6:1:point=5,5"], "frame 6 is beyond the video (6 frames"),
    (["--prompt", "0:1:point=500,5"], "is outside the 96x72 image"),
    (["--prompt", "0:1:point=5,5", "--image-size", "500"], "argument --image-size: must be a multiple of 32"),
    (["--prompt", "0:1:point=5,5", "--idle-timeout", "0"], "argument --idle-timeout: must be > 0"),
    (["--prompt", "0:1:point=5,5", "--mask-threshold", "nan"], "argument --mask-threshold: must be a finite number"),
    (["--prompt", "0:1:point=5,5", "--fps", "inf"], "argument --fps: must be a finite number"),
])
def test_usage_errors_write_nothing(inputs, model_args, tmp_path, extra, message):
    out = tmp_path / "out"
    done = run_cli("track", str(inputs["frames"]), *extra, "-o", str(out), *model_args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not out.exists()


def test_missing_source_is_a_usage_error(model_args, tmp_path):
    done = run_cli("track", str(tmp_path / "nothing.mp4"), *PROMPTS, "-o", str(tmp_path / "out"), *model_args)
    assert done.returncode == 2 and "argument SOURCE: source" in done.stderr and "does not exist" in done.stderr


def test_source_failing_mid_stream_keeps_the_results(model_args, tmp_path):
    data = ts_bytes([frame(t % T) for t in range(24)])
    out = tmp_path / "cut"
    with http_server(data) as url:
        done = run_cli("track", f"{url}/cut.ts", *PROMPTS, "-o", str(out), *model_args)
    assert done.returncode == 1
    written = pngs(out)
    assert 0 < len(written) < 24 and sorted(written) == [f"{t:05d}" for t in range(len(written))]
    assert f"failed after {len(written)} frames" in done.stderr and "are kept in" in done.stderr


@pytest.mark.parametrize("sig,code,said", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_ctrl_c_stops_cleanly_and_keeps_what_was_written(model_args, tmp_path, sig, code, said):
    """Ctrl-C (or SIGTERM) while a file that is being written (over 4 s) is tracked."""
    data = ts_bytes([frame(t % T) for t in range(80)])
    out = tmp_path / "live"
    with growing_file(tmp_path / "live.ts", data, parts=20, delay=0.2) as path:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "sam2", "track", str(path), "--follow", "--idle-timeout",
                                 "120", *PROMPTS, "-o", str(out), *model_args], cwd=REPO_ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while len(list(out.glob("[0-9]*.png"))) < 5 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            proc.send_signal(sig)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == code, stderr
    assert f"stopped by {said} after" in stderr and "Traceback" not in stderr
    written = sorted(out.iterdir())
    assert 5 <= len(written) < 80 and all(p.suffix == ".png" and not p.name.startswith(".") for p in written)
    for p in written:
        with Image.open(p) as img:
            img.load()
