"""``sam2 video``: DAVIS / per-object PNGs and overlay MP4 against the Python API, usage errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2.cli import media
from sam2.utils.png_masks import DAVIS_PALETTE, put_per_obj_mask
from sam2.utils.video_decode import VideoDecoder
from tests.cli.conftest import MICRO, listing, run_cli

T, H, W = 6, 72, 96


def frame(t: int, height: int = H, width: int = W) -> np.ndarray:
    """A yellow square moving right over a gradient, and a fixed blue disc."""
    ys, xs = np.mgrid[0:height, 0:width]
    img = np.stack([xs * 2, ys * 3, np.full_like(xs, 90)], axis=-1).astype(np.uint8)
    img[15:45, 10 + 4 * t:40 + 4 * t] = (230, 220, 40)
    img[((ys - 50) ** 2 + (xs - 70) ** 2) < 12 ** 2] = (30, 40, 200)
    return img


def write_frames(folder: Path, height: int = H, width: int = W) -> Path:
    folder.mkdir()
    for t in range(T):
        Image.fromarray(frame(t, height, width)).save(folder / f"f{t}.png")
    return folder


def write_mp4(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for t in range(T):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame(t), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("video_inputs")
    mask = np.zeros((H, W), np.uint8)
    mask[40:60, 60:80] = 255
    Image.fromarray(mask).save(root / "disc.png")
    Image.fromarray(mask[:50]).save(root / "small.png")
    return {"mp4": write_mp4(root / "clip.mp4"), "frames": write_frames(root / "frames"),
            "odd": write_frames(root / "odd", H - 1, W - 1), "mask": root / "disc.png", "small": root / "small.png"}


def api_masks(ckpt: str, video: Path, non_overlap: bool, prompts: list[tuple], **propagate) -> dict[int, dict]:
    """{frame: {obj_id: (H, W) bool}} from the Python API with the same prompts."""
    from sam2.build_sam import build_sam2_video_predictor

    predictor = build_sam2_video_predictor(
        MICRO, ckpt, device="cpu", hydra_overrides_extra=[f"++model.non_overlap_masks={str(non_overlap).lower()}"])
    state = predictor.init_state(str(video))
    for frame_idx, obj_id, kwargs in prompts:
        if "mask" in kwargs:
            predictor.add_new_mask(state, frame_idx, obj_id, kwargs["mask"])
        else:
            predictor.add_new_points_or_box(state, frame_idx, obj_id, **kwargs)
    return {t: {int(o): (logits[i, 0] > 0).numpy() for i, o in enumerate(ids)}
            for t, ids, logits in predictor.propagate_in_video(state, **propagate)}


TWO_OBJECTS = ["--prompt", "0:1:point=20,30", "--prompt", "0:1:point=35,25", "--prompt", "1:2:box=55,35,85,65"]
TWO_OBJECTS_API = [(0, 1, {"points": np.array([[20.0, 30.0], [35.0, 25.0]]), "labels": np.array([1, 1])}),
                   (1, 2, {"box": np.array([55.0, 35.0, 85.0, 65.0])})]


def test_davis_layout_from_mp4_matches_the_api(tmp_path, inputs, synth_checkpoint, model_args):
    out = tmp_path / "out"
    proc = run_cli("video", str(inputs["mp4"]), *TWO_OBJECTS, "-o", str(out), *model_args)
    assert proc.returncode == 0, proc.stderr
    assert "propagate in video: 100%" in proc.stderr  # progress bar
    assert listing(out) == [f"{t:05d}.png" for t in range(T)]
    expected = api_masks(synth_checkpoint, inputs["mp4"], True, TWO_OBJECTS_API)
    seen = set()
    for t in range(T):
        with Image.open(out / f"{t:05d}.png") as img:
            assert img.mode == "P" and bytes(img.getpalette()) == DAVIS_PALETTE
            ids = np.array(img)
        np.testing.assert_array_equal(ids, put_per_obj_mask(expected[t], H, W))
        seen |= set(np.unique(ids).tolist())
    assert seen == {0, 1, 2}  # both objects appear, pixel value = object id


def test_per_object_layout_from_frame_folder(tmp_path, inputs, synth_checkpoint, model_args):
    out = tmp_path / "out"
    proc = run_cli("video", str(inputs["frames"]), *TWO_OBJECTS, "--format", "per-object", "-o", str(out), "-q",
                   *model_args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    names = [f"f{t}.png" for t in range(T)]
    assert listing(out) == ["001", *[f"001/{n}" for n in names], "002", *[f"002/{n}" for n in names]]
    expected = api_masks(synth_checkpoint, inputs["frames"], False, TWO_OBJECTS_API)
    for t in range(T):
        for obj in (1, 2):
            with Image.open(out / f"{obj:03d}" / f"f{t}.png") as img:
                values = np.array(img)
            assert set(np.unique(values).tolist()) <= {0, 1}
            np.testing.assert_array_equal(values.astype(bool), expected[t][obj])
    assert any(expected[t][1].any() for t in range(T)) and any(expected[t][2].any() for t in range(T))


@pytest.mark.parametrize("options,propagate,frames", [
    (["--max-frames", "3"], {"max_frame_num_to_track": 2}, [0, 1, 2]),
    (["--start-frame", "4", "--reverse", "--max-frames", "2"],
     {"start_frame_idx": 4, "reverse": True, "max_frame_num_to_track": 1}, [3, 4]),
])
def test_mask_prompt_and_frame_range(tmp_path, inputs, synth_checkpoint, model_args, options, propagate, frames):
    out = tmp_path / "out"
    proc = run_cli("video", str(inputs["frames"]), "--prompt", f"0:3:mask={inputs['mask']}",
                   "--prompt", "4:3:point=75,50", *options, "-o", str(out), "-q", *model_args)
    assert proc.returncode == 0, proc.stderr
    assert listing(out) == [f"f{t}.png" for t in frames]
    disc = np.array(Image.open(inputs["mask"])) > 0
    expected = api_masks(synth_checkpoint, inputs["frames"], True,
                         [(0, 3, {"mask": disc}), (4, 3, {"points": np.array([[75.0, 50.0]]), "labels": np.array([1])})],
                         **propagate)
    for t in frames:
        np.testing.assert_array_equal(np.array(Image.open(out / f"f{t}.png")), put_per_obj_mask(expected[t], H, W))


def decoded(path: Path) -> list[np.ndarray]:
    decoder = VideoDecoder(path)
    try:
        return [decoder.read(i) for i in range(decoder.num_frames)]
    finally:
        decoder.close()


def test_overlay_mp4_has_the_input_frames_and_the_masks(tmp_path, inputs, synth_checkpoint, model_args):
    out = tmp_path / "out"
    proc = run_cli("video", str(inputs["mp4"]), *TWO_OBJECTS, "--start-frame", "1", "--format", "mp4",
                   "-o", str(out), *model_args)
    assert proc.returncode == 0, proc.stderr
    assert listing(out) == ["overlay.mp4"]
    assert "write mp4: 100%" in proc.stderr
    got, source = decoded(out / "overlay.mp4"), decoded(inputs["mp4"])
    assert len(got) == T and got[0].shape == (H, W, 3)
    expected = api_masks(synth_checkpoint, inputs["mp4"], True, TWO_OBJECTS_API, start_frame_idx=1)
    assert sorted(expected) == list(range(1, T))
    assert np.abs(got[0].astype(int) - source[0]).mean() < 3  # frame 0 was not processed: copied
    for t in range(1, T):
        masks = expected[t]
        want = media.overlay(source[t], list(masks.values()), [media.color(i) for i in masks])
        # compare 4x4 block means (the codec smooths the one-pixel mask outlines), separately where the
        # overlay changes the picture and elsewhere
        g, o, src = blocks(got[t]), blocks(want), blocks(source[t])
        drawn = np.abs(o - src).mean(axis=-1) > 20
        assert drawn.any(), t
        assert np.abs(g - o)[drawn].mean() < 0.25 * np.abs(g - src)[drawn].mean(), t
        assert np.abs(g - o)[~drawn].mean() < 4, t


def blocks(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[0] // 4 * 4, image.shape[1] // 4 * 4
    return image[:h, :w].astype(float).reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3))


def test_mp4_file_output_keeps_an_odd_frame_size(tmp_path, inputs, model_args):
    target = tmp_path / "result.mp4"
    proc = run_cli("video", str(inputs["odd"]), "--prompt", "0:7:point=20,30", "--format", "mp4", "--fps", "5",
                   "-o", str(target), "-q", *model_args)
    assert proc.returncode == 0, proc.stderr
    assert listing(tmp_path) == ["result.mp4"]
    frames = decoded(target)
    assert len(frames) == T and frames[0].shape == (H - 1, W - 1, 3)
    assert media.video_fps(target) == 5


@pytest.mark.parametrize("extra,named", [
    (["--prompt", "0:1:point=1"], "--prompt"),
    (["--prompt", "x:1:point=1,2"], "--prompt"),
    (["--prompt", "0:1"], "--prompt"),
    (["--prompt", "0:1:circle=1,2"], "--prompt"),
    (["--prompt", "0:1:point=1,2,7"], "--prompt"),
    (["--prompt", "0:1:box=50,50,10,10"], "--prompt"),
    (["--prompt", "0:1:mask={tmp}/missing.png"], "--prompt"),
    (["--prompt", "0:1:mask={small}"], "--prompt"),  # not the frame size
    (["--prompt", "6:1:point=10,10"], "--prompt"),  # frame beyond the 6-frame video
    (["--prompt", "0:1:point=100,10"], "--prompt"),  # outside the 96x72 frame
    (["--prompt", "0:0:point=10,10"], "--prompt"),  # object id 0 is the DAVIS background
    (["--prompt", "0:1:box=1,1,9,9", "--prompt", "0:1:box=2,2,9,9"], "--prompt"),
    (["--prompt", "0:1:point=5,5", "--prompt", "0:1:mask={mask}"], "--prompt"),
    ([], "--prompt"),
    (["--prompt", "0:1:point=10,10", "--format", "gif"], "--format"),
    (["--prompt", "0:1:point=10,10", "--start-frame", "6"], "--start-frame"),
    (["--prompt", "0:1:point=10,10", "--max-frames", "0"], "--max-frames"),
    (["--prompt", "0:1:point=10,10", "--model", "tiny"], "--model"),
    (["--prompt", "0:1:point=10,10", "--device", "cuda:x"], "--device"),
    (["--prompt", "0:1:point=10,10", "--mask-threshold", "nan"], "--mask-threshold"),
    (["--prompt", "0:1:point=10,10", "--format", "mp4", "--fps", "inf"], "--fps"),
    (["--prompt", "0:1:point=10,10", "--format", "mp4", "--fps", "nan"], "--fps"),
])
def test_usage_errors_exit_2_and_write_nothing(tmp_path, inputs, extra, named):
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{small}", str(inputs["small"]))
            .replace("{mask}", str(inputs["mask"])) for a in extra]
    proc = run_cli("video", str(inputs["frames"]), "-o", str(tmp_path / "out"), *argv)
    assert proc.returncode == 2, proc.stderr
    assert f"argument {named}" in proc.stderr and "Traceback" not in proc.stderr
    assert listing(tmp_path) == []


def test_video_argument_must_be_a_video(tmp_path, inputs):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    for video in (tmp_path / "missing.mp4", tmp_path / "empty", tmp_path / "broken.mp4", inputs["mask"]):
        proc = run_cli("video", str(video), "--prompt", "0:1:point=1,1", "-o", str(tmp_path / "out"))
        assert proc.returncode == 2 and "argument VIDEO" in proc.stderr, (video, proc.stderr)
    assert listing(tmp_path) == ["broken.mp4", "empty"]


def test_model_name_without_network_fails_clearly(tmp_path, inputs, offline_env):
    proc = run_cli("video", str(inputs["frames"]), "--prompt", "0:1:point=10,10", "--device", "cpu",
                   "-o", str(tmp_path / "out"), env=offline_env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "Hugging Face Hub" in proc.stderr and "--checkpoint FILE" in proc.stderr
    assert listing(tmp_path) == ["empty_hf_home"]


@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_signal_mid_run_leaves_no_staging_folder(tmp_path, synth_checkpoint, signame, code):
    """A long frame folder; the signal comes once the hidden staging folder exists (the model is
    loaded and tracking): exit 143 / 130, one line on stderr, nothing left behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.cli.conftest import REPO_ROOT

    video = tmp_path / "long"
    video.mkdir()
    for t in range(400):  # long enough that a busy machine's late signal still finds the run going
        Image.fromarray(frame(t % 10)).save(video / f"{t:05d}.png")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "sam2", "video", str(video), "--prompt", "0:1:point=20,30",
                             "-o", str(out), "--config", MICRO, "--checkpoint", synth_checkpoint, "--device", "cpu"],
                            cwd=REPO_ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.partial-*/output/*.png")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.02)
    proc.send_signal(getattr(signal, signame))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "no partial output" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long"]  # no out/, no .out.partial-*
