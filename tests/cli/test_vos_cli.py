"""``sam2 vos``: argument checking (exit 2, nothing written) and end-to-end runs with the micro model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2.cli.main import build_parser, main
from sam2.cli.selfcheck import MICRO_CONFIG
from sam2.utils.png_masks import DAVIS_PALETTE, read_mask_png, save_ann_png
from tests.reference import FIXTURES_DIR, requires_reference, write_checkpoint

SOURCE_VIDEO = FIXTURES_DIR / "inputs" / "videos" / "bedroom_a"
NUM_FRAMES = 3
H, W = 180, 320


def rect(rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[rows[0]: rows[1], cols[0]: cols[1]] = True
    return m


OBJ1, OBJ2 = rect((40, 120), (30, 150)), rect((60, 160), (180, 300))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """``videos/bedroom`` (3 frames of bedroom_a), DAVIS masks ``masks/`` and SA-V masks ``sav_masks/``."""
    video = tmp_path / "videos" / "bedroom"
    video.mkdir(parents=True)
    for t in range(NUM_FRAMES):
        shutil.copy(SOURCE_VIDEO / f"{t:05d}.jpg", video / f"{t:05d}.jpg")
    (tmp_path / "masks" / "bedroom").mkdir(parents=True)
    ids = np.where(OBJ1, 1, np.where(OBJ2, 2, 0)).astype(np.uint8)
    save_ann_png(tmp_path / "masks" / "bedroom" / "00000.png", ids, list(range(256)) * 3)
    for obj, mask in ((1, OBJ1), (2, OBJ2)):
        folder = tmp_path / "sav_masks" / "bedroom" / f"{obj:03d}"
        folder.mkdir(parents=True)
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "00000.png")
    return tmp_path


def base_args(root: Path, *extra: str) -> list[str]:
    return ["vos", "--base_video_dir", str(root / "videos"), "--input_mask_dir", str(root / "masks"),
            "--output_mask_dir", str(root / "out"), *extra]


def test_kebab_case_aliases_parse_like_official_names(tmp_path):
    parser = build_parser()
    snake = parser.parse_args(["vos", "--base_video_dir", str(tmp_path), "--input_mask_dir", str(tmp_path),
                               "--output_mask_dir", "o", "--per_obj_png_file", "--score_thresh", "0.5",
                               "--track_object_appearing_later_in_video", "--use_all_masks"])
    kebab = parser.parse_args(["vos", "--base-video-dir", str(tmp_path), "--input-mask-dir", str(tmp_path),
                               "--output-mask-dir", "o", "--per-obj-png-file", "--score-thresh", "0.5",
                               "--track-object-appearing-later-in-video", "--use-all-masks"])
    assert {k: v for k, v in vars(snake).items() if k != "_parser"} == \
        {k: v for k, v in vars(kebab).items() if k != "_parser"}
    assert snake.score_thresh == 0.5 and snake.per_obj_png_file and snake.sam2_cfg is None


@requires_reference
@pytest.mark.parametrize("extra,named", [
    (["--base_video_dir", "{tmp}/nowhere"], "--base_video_dir"),
    (["--model", "sam2.1_hiera_tiny", "--sam2_cfg", "configs/sam2.1/sam2.1_hiera_t.yaml"], "--model"),
    (["--model", "no_such_model"], "--model"),
    (["--sam2_checkpoint", "{tmp}/weights.pt"], "--sam2_checkpoint"),
    (["--sam2_cfg", "{tmp}/my.yaml"], "--sam2_cfg"),
    (["--video_list_file", "{tmp}/list.txt"], "--video_list_file"),
    (["--input_mask_dir", "{tmp}"], "--input_mask_dir"),  # no bedroom/ folder there
    (["--device", "bogus"], "--device"),
    (["--score_thresh", "high"], "--score_thresh"),
])
def test_usage_errors_exit_2_and_write_nothing(dataset, capsys, extra, named):
    (dataset / "weights.pt").write_bytes(b"")
    (dataset / "list.txt").write_text("bedroom\nmissing_video\n")
    argv = base_args(dataset, *[a.replace("{tmp}", str(dataset)) for a in extra])
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert named in capsys.readouterr().err
    assert not (dataset / "out").exists()


@requires_reference
def test_output_dir_must_be_a_folder(dataset, capsys):
    (dataset / "out").write_text("a file")
    with pytest.raises(SystemExit) as info:
        main(base_args(dataset))
    assert info.value.code == 2 and "--output_mask_dir" in capsys.readouterr().err


@requires_reference
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_device_without_cuda(dataset, capsys):
    with pytest.raises(SystemExit) as info:
        main(base_args(dataset, "--device", "cuda"))
    assert info.value.code == 2 and "CUDA is not available" in capsys.readouterr().err
    assert not (dataset / "out").exists()


# ------------------------------------------------------------------------ end to end (micro model)

@pytest.fixture(scope="module")
def micro_checkpoint(tmp_path_factory) -> tuple[str, str]:
    pytest.importorskip("sam2.build_sam")
    pytest.importorskip("sam2.sam2_video_predictor")
    ckpt = write_checkpoint(tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_micro.pt", "sam2.1_hiera_micro")
    return str(MICRO_CONFIG), str(ckpt)  # the package's 128-pixel micro config: same weights, fast


def model_args(micro_checkpoint: tuple[str, str]) -> list[str]:
    cfg, ckpt = micro_checkpoint
    return ["--sam2_cfg", cfg, "--sam2_checkpoint", ckpt, "--device", "cpu", "-q"]


@requires_reference
def test_end_to_end_davis_layout_then_eval(dataset, micro_checkpoint):
    assert main(base_args(dataset, *model_args(micro_checkpoint))) == 0
    out = dataset / "out" / "bedroom"
    assert sorted(p.name for p in out.iterdir()) == [f"{t:05d}.png" for t in range(NUM_FRAMES)]
    for t in range(NUM_FRAMES):
        ids = read_mask_png(out / f"{t:05d}.png")
        assert ids.shape == (H, W) and set(np.unique(ids).tolist()) <= {0, 1, 2}
        with Image.open(out / f"{t:05d}.png") as img:
            assert img.mode == "P" and img.getpalette()[:768] == list(range(256)) * 3  # input palette

    from sam2.eval import evaluate

    result = evaluate(dataset / "masks", dataset / "out", skip_first_and_last=False, num_processes=1)
    assert [o.obj for o in result.objects] == ["001", "002"]
    assert all(0.0 <= o.j <= 100.0 and 0.0 <= o.f <= 100.0 for o in result.objects)


@requires_reference
def test_end_to_end_sav_layout(dataset, micro_checkpoint):
    argv = base_args(dataset, "--per_obj_png_file", *model_args(micro_checkpoint))
    argv[argv.index("--input_mask_dir") + 1] = str(dataset / "sav_masks")
    assert main(argv) == 0
    out = dataset / "out" / "bedroom"
    assert sorted(p.name for p in out.iterdir()) == ["001", "002"]
    for obj in ("001", "002"):
        names = sorted(p.name for p in (out / obj).iterdir())
        assert names == [f"{t:05d}.png" for t in range(NUM_FRAMES)]
        mask = read_mask_png(out / obj / "00002.png")
        assert mask.shape == (H, W) and set(np.unique(mask).tolist()) <= {0, 1}
        with Image.open(out / obj / "00002.png") as img:
            assert bytes(img.getpalette()[:768]) == DAVIS_PALETTE  # grey inputs have no palette


@requires_reference
def test_end_to_end_objects_appearing_later(dataset, micro_checkpoint):
    ids = np.where(OBJ2, 3, 0).astype(np.uint8)
    save_ann_png(dataset / "masks" / "bedroom" / "00001.png", ids)  # a new object (id 3) on frame 1
    assert main(base_args(dataset, "--track_object_appearing_later_in_video", *model_args(micro_checkpoint))) == 0
    out = dataset / "out" / "bedroom"
    assert len(list(out.iterdir())) == NUM_FRAMES
    assert not (read_mask_png(out / "00000.png") == 3).any()  # not tracked before its first mask
    # without the flag, the new object on a later input frame is an error (exit 1)
    assert main(base_args(dataset, "--use_all_masks", "--overwrite", *model_args(micro_checkpoint))) == 1
    assert len(list(out.iterdir())) == NUM_FRAMES  # the failed redo left the finished video as it was


# ------------------------------------------------------------------------ hardening (issue 12)

def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("line", ["../masks/bedroom", "/tmp", "bedroom/../../masks", "..", "a\\..\\b"])
def test_list_file_names_cannot_leave_their_roots(dataset, capsys, line):
    (dataset / "list.txt").write_text(f"bedroom\n{line}\n")
    before = _tree(dataset)
    with pytest.raises(SystemExit) as info:
        main(base_args(dataset, "--video_list_file", str(dataset / "list.txt"), "--sam2_checkpoint",
                       str(dataset / "list.txt"), "--sam2_cfg", str(MICRO_CONFIG)))
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "--video_list_file" in err and "line 2" in err and "not a plain name" in err
    assert _tree(dataset) == before  # nothing read as a video, nothing written


def test_video_names_are_plain_in_the_api(dataset):
    from sam2.eval.vos import vos_inference

    with pytest.raises(ValueError, match="not a plain name"):
        vos_inference(object(), dataset / "videos", dataset / "masks", dataset / "out", "../videos/bedroom")
    assert not (dataset / "out").exists()


def _two_videos(dataset: Path) -> None:
    shutil.copytree(dataset / "videos" / "bedroom", dataset / "videos" / "room2")
    shutil.copytree(dataset / "masks" / "bedroom", dataset / "masks" / "room2")


@requires_reference
@pytest.mark.parametrize("how, code", [("sigint", 130), ("sigterm", 143), ("error", 1)])
def test_interrupted_run_leaves_no_partial_video_and_resumes(dataset, micro_checkpoint, monkeypatch, capsys,
                                                             how, code):
    import os
    import signal

    import sam2.eval.vos as vos_module

    _two_videos(dataset)
    real_save, calls = vos_module.save_masks_to_dir, []

    def save_then_stop(out_dir, video, *args, **kwargs):
        real_save(out_dir, video, *args, **kwargs)
        calls.append(video)
        if video == "room2" and calls.count("room2") == 2:  # in the middle of the second video
            if how == "sigint":
                raise KeyboardInterrupt
            if how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            raise OSError("disk full")

    monkeypatch.setattr(vos_module, "save_masks_to_dir", save_then_stop)
    assert main(base_args(dataset, *model_args(micro_checkpoint))) == code
    out = dataset / "out"
    assert sorted(p.name for p in out.iterdir()) == ["bedroom"]  # no room2, no hidden staging folder
    assert len(list((out / "bedroom").iterdir())) == NUM_FRAMES
    assert "Traceback" not in capsys.readouterr().err
    finished = (out / "bedroom" / "00000.png").stat().st_mtime_ns

    monkeypatch.setattr(vos_module, "save_masks_to_dir", real_save)
    assert main(base_args(dataset, *model_args(micro_checkpoint))) == 0  # resumes with room2 only
    assert sorted(p.name for p in out.iterdir()) == ["bedroom", "room2"]
    assert (out / "bedroom" / "00000.png").stat().st_mtime_ns == finished
    assert len(list((out / "room2").iterdir())) == NUM_FRAMES


def test_unwritable_output_is_a_usage_error_before_the_model(dataset, capsys):
    (dataset / "afile").write_text("not a folder")
    argv = base_args(dataset)  # default model: the Hub would be asked only after the checks
    argv[argv.index("--output_mask_dir") + 1] = str(dataset / "afile" / "out")
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and "argument --output_mask_dir: cannot write into" in capsys.readouterr().err
