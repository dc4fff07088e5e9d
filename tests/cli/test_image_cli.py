"""``sam2 image``: outputs against the Python API, usage errors (exit 2, nothing written), no network (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli.conftest import MICRO, listing, run_cli
from tests.reference import FIXTURES_DIR, config_for

TRUCK = FIXTURES_DIR / "inputs" / "images" / "truck.jpg"  # 320 x 213


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    """A 320x213 PNG (the size of the truck image) for the argument checks."""
    path = tmp_path / "picture.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (213, 320, 3), dtype=np.uint8)).save(path)
    return path


def api_predict(config: str, ckpt: str, image_path: Path, **prompt) -> tuple[np.ndarray, np.ndarray]:
    """Masks and scores of the Python API for the same image and prompt."""
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(build_sam2(config, ckpt, device="cpu"))
    predictor.set_image(np.array(Image.open(image_path).convert("RGB")))
    masks, scores, _ = predictor.predict(**prompt)
    return masks, scores


def read_masks(out: Path, result: dict) -> np.ndarray:
    arrays = []
    for rec in result["masks"]:
        with Image.open(out / rec["file"]) as img:
            assert img.mode == "L"
            arrays.append(np.array(img))
    return np.stack(arrays)


def check_against_api(out: Path, masks: np.ndarray, scores: np.ndarray) -> dict:
    result = json.loads((out / "result.json").read_text())
    written = read_masks(out, result)
    flat_masks = masks.reshape(-1, *masks.shape[-2:])
    assert written.shape == flat_masks.shape
    assert set(np.unique(written).tolist()) <= {0, 255}
    np.testing.assert_array_equal(written, flat_masks.astype(np.uint8) * 255)
    np.testing.assert_allclose([m["score"] for m in result["masks"]], scores.reshape(-1), rtol=0, atol=1e-6)
    assert [m["area"] for m in result["masks"]] == [int(m.sum()) for m in flat_masks]
    with Image.open(out / "overlay.png") as img:
        assert img.size == (masks.shape[-1], masks.shape[-2]) and img.mode == "RGB"
    return result


def test_single_click_gives_three_masks_like_the_api(tmp_path, synth_checkpoint):
    """The reference micro config (1024-pixel input) with the default multimask choice."""
    config = config_for("sam2.1_hiera_micro")
    out = tmp_path / "out"
    proc = run_cli("image", str(TRUCK), "--point", "160,100", "-o", str(out),
                   "--config", config, "--checkpoint", synth_checkpoint, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    masks, scores = api_predict(config, synth_checkpoint, TRUCK, point_coords=np.array([[160.0, 100.0]]),
                                point_labels=np.array([1]), multimask_output=True)
    assert masks.shape == (3, 213, 320)
    result = check_against_api(out, masks, scores)
    assert result["multimask_output"] is True
    assert (result["width"], result["height"]) == (320, 213)
    assert result["prompts"] == {"points": [[160.0, 100.0]], "labels": [1], "boxes": []}
    assert result["model"] == {"config": config, "checkpoint": synth_checkpoint}
    assert result["best"] == [int(np.argmax(scores))]
    assert "mask_0.png" in proc.stdout


def test_clicks_and_box_give_one_mask_and_merge_into_existing_folder(tmp_path, synth_checkpoint, model_args):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("not ours")
    proc = run_cli("image", str(TRUCK), "--point", "160,100", "--point", "40,30,0", "--box", "60,40,300,190",
                   "-o", str(out), "-q", *model_args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    masks, scores = api_predict(MICRO, synth_checkpoint, TRUCK, point_coords=np.array([[160.0, 100.0], [40.0, 30.0]]),
                                point_labels=np.array([1, 0]), box=np.array([60.0, 40.0, 300.0, 190.0]),
                                multimask_output=False)
    result = check_against_api(out, masks, scores)
    assert result["multimask_output"] is False and len(result["masks"]) == 1
    assert result["prompts"]["labels"] == [1, 0]
    assert listing(out) == ["keep.txt", "mask_0.png", "overlay.png", "result.json"]


def test_several_boxes_are_several_prompts(tmp_path, synth_checkpoint, model_args):
    out = tmp_path / "out"
    proc = run_cli("image", str(TRUCK), "--box", "10,10,150,120", "--box", "160,60,310,200", "--multimask",
                   "-o", str(out), "-q", *model_args)
    assert proc.returncode == 0, proc.stderr
    boxes = np.array([[10.0, 10.0, 150.0, 120.0], [160.0, 60.0, 310.0, 200.0]])
    masks, scores = api_predict(MICRO, synth_checkpoint, TRUCK, box=boxes, multimask_output=True)
    assert masks.shape == (2, 3, 213, 320)
    result = check_against_api(out, masks, scores)
    assert [m["prompt"] for m in result["masks"]] == [0, 0, 0, 1, 1, 1]
    assert result["best"] == [int(np.argmax(scores[0])), 3 + int(np.argmax(scores[1]))]


@pytest.mark.parametrize("extra,named", [
    (["--point", "1,2,3,4"], "--point"),
    (["--point", "x,y"], "--point"),
    (["--point", "10,10,5"], "--point"),  # label must be 0 or 1
    (["--point", "400,10"], "--point"),  # outside the 320x213 image
    (["--box", "1,2,3"], "--box"),
    (["--box", "50,50,10,10"], "--box"),  # corners swapped
    (["--box", "10,10,150,120", "--box", "1,1,5,5", "--point", "20,20"], "--box"),
    ([], "--point/--box"),  # no prompt at all
    (["--point", "10,10", "--model", "no_such_model"], "--model"),
    (["--point", "10,10", "--config", "{tmp}/nowhere.yaml", "--checkpoint", "{tmp}/w.pt"], "--config"),
    (["--point", "10,10", "--checkpoint", "{tmp}/w.pt"], "--checkpoint"),  # cannot tell the config
    (["--point", "10,10", "--checkpoint", "{tmp}/missing.pt"], "--checkpoint"),
    (["--point", "10,10", "--device", "bogus"], "--device"),
    (["--point", "10,10", "--mask-threshold", "high"], "--mask-threshold"),
    (["--point", "10,10", "--mask-threshold", "nan"], "--mask-threshold"),
    (["--point", "10,10", "--max-hole-area", "nan"], "--max-hole-area"),
    (["--point", "10,10", "--max-sprinkle-area", "-5"], "--max-sprinkle-area"),
])
def test_usage_errors_exit_2_and_write_nothing(tmp_path, picture, extra, named):
    (tmp_path / "w.pt").write_bytes(b"")
    before = listing(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    proc = run_cli("image", str(picture), "-o", str(tmp_path / "out"), *argv)
    assert proc.returncode == 2, proc.stderr
    assert f"argument {named}" in proc.stderr and "Traceback" not in proc.stderr
    assert listing(tmp_path) == before


def test_missing_or_unreadable_image_is_a_usage_error(tmp_path):
    (tmp_path / "fake.jpg").write_text("not a picture")
    for image in (tmp_path / "missing.jpg", tmp_path / "fake.jpg"):
        proc = run_cli("image", str(image), "--point", "1,1", "-o", str(tmp_path / "out"))
        assert proc.returncode == 2 and "argument IMAGE" in proc.stderr
    assert listing(tmp_path) == ["fake.jpg"]


def test_output_that_is_a_file_is_a_usage_error(tmp_path, picture):
    (tmp_path / "out").write_text("a file")
    proc = run_cli("image", str(picture), "--point", "1,1", "-o", str(tmp_path / "out"))
    assert proc.returncode == 2 and "argument --output" in proc.stderr
    assert (tmp_path / "out").read_text() == "a file"


def test_model_name_without_network_fails_clearly(tmp_path, picture, offline_env):
    before = listing(tmp_path)
    proc = run_cli("image", str(picture), "--point", "10,10", "--model", "facebook/sam2.1-hiera-tiny",
                   "--device", "cpu", "-o", str(tmp_path / "out"), env=offline_env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "sam2.1_hiera_tiny.pt" in proc.stderr and "Hugging Face Hub" in proc.stderr
    assert "--checkpoint FILE" in proc.stderr and "HF_HUB_OFFLINE is set" in proc.stderr
    assert "set HF_HUB_OFFLINE=1" not in proc.stderr  # it is set already: do not ask for it again
    assert "sam2 selfcheck" in proc.stderr and offline_env["HF_HUB_CACHE"] in proc.stderr
    assert listing(tmp_path) == before


def test_default_model_without_network_fails_fast_and_quietly(tmp_path, picture, offline_env):
    """HF_HUB_OFFLINE not set and the Hub unreachable (a closed local port stands in for 'no network'):
    one message, no retry warnings, within seconds; it names --checkpoint, the cache and selfcheck."""
    import time

    env = {k: v for k, v in offline_env.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    before = listing(tmp_path)
    start = time.monotonic()
    proc = run_cli("image", str(picture), "--point", "10,10", "--device", "cpu", "-o", str(tmp_path / "out"),
                   env={**env, "HF_HUB_OFFLINE": ""})
    assert time.monotonic() - start < 30
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") <= 3, proc.stderr  # the error and its fix line, nothing else
    assert "cannot be reached" in proc.stderr and "--checkpoint FILE" in proc.stderr
    assert env["HF_HUB_CACHE"] in proc.stderr and "sam2 selfcheck" in proc.stderr
    assert "retry" not in proc.stderr.lower()
    assert listing(tmp_path) == before


def test_broken_checkpoint_fails_with_exit_1_and_writes_nothing(tmp_path, picture):
    (tmp_path / "sam2.1_hiera_tiny.pt").write_bytes(b"garbage")
    before = listing(tmp_path)
    proc = run_cli("image", str(picture), "--point", "10,10", "--checkpoint", str(tmp_path / "sam2.1_hiera_tiny.pt"),
                   "--device", "cpu", "-o", str(tmp_path / "out"))
    assert proc.returncode == 1 and "cannot read checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert listing(tmp_path) == before
