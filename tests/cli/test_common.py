"""Shared CLI pieces: prompt parsing, model choice, staged output writing, ``--help`` texts."""

from __future__ import annotations

import argparse

import pytest

from sam2.cli import common
from sam2.cli.main import SUBCOMMANDS, build_parser
from sam2.cli.video import prompt
from tests.cli.conftest import listing, run_cli


@pytest.mark.parametrize("text,expected", [
    ("10,20", (10.0, 20.0, 1)), ("10.5,20,0", (10.5, 20.0, 0)), (" 3 , 4 , 1 ", (3.0, 4.0, 1)),
])
def test_point_parses_coordinates_and_label(text, expected):
    assert common.point(text) == expected


@pytest.mark.parametrize("text", ["10", "1,2,3,4", "a,b", "1,2,0.5", "1,2,2", "nan,1", "1,inf", ""])
def test_point_rejects_malformed_values(text):
    with pytest.raises(argparse.ArgumentTypeError):
        common.point(text)


def test_box_needs_ordered_corners():
    assert common.box("1,2,30,40") == (1.0, 2.0, 30.0, 40.0)
    for bad in ("1,2,3", "30,2,1,40", "1,40,30,2", "1,1,1,5"):
        with pytest.raises(argparse.ArgumentTypeError):
            common.box(bad)


def test_video_prompt_kinds(tmp_path):
    mask = tmp_path / "m.png"
    mask.write_bytes(b"")
    p = prompt("3:7:point=10,20,0")
    assert (p.frame, p.obj, p.kind, p.value) == (3, 7, "point", (10.0, 20.0, 0))
    assert prompt("0:1:box=1,2,3,4").value == (1.0, 2.0, 3.0, 4.0)
    assert prompt(f"2:5:mask={mask}").value == mask
    for bad in ("0:1:point=1", "-1:1:point=1,2", "0:-2:point=1,2", "0:1:line=1,2", "a:b:point=1,2", "0:1:mask=nope.png"):
        with pytest.raises(argparse.ArgumentTypeError, match="point|box|mask|FRAME|>= 0"):
            prompt(bad)


def spec_of(*argv: str) -> common.ModelSpec:
    parser = argparse.ArgumentParser()
    common.add_model_arguments(parser)
    args = parser.parse_args(argv)
    return common.model_spec(parser, args.model, args.config, args.checkpoint)


def test_model_choice(tmp_path):
    official = tmp_path / "sam2_hiera_large.pt"
    official.write_bytes(b"")
    other = tmp_path / "weights.pt"
    other.write_bytes(b"")
    assert spec_of() == common.ModelSpec(hub_id="facebook/sam2.1-hiera-tiny")
    assert spec_of("--model", "sam2_hiera_small") == common.ModelSpec(hub_id="facebook/sam2-hiera-small")
    assert spec_of("--model", "facebook/sam2.1-hiera-base-plus").hub_id == "facebook/sam2.1-hiera-base-plus"
    assert spec_of("--checkpoint", str(official)) == common.ModelSpec(
        config="configs/sam2/sam2_hiera_l.yaml", checkpoint=str(official))
    assert spec_of("--checkpoint", str(other), "--model", "sam2.1_hiera_tiny").config == \
        "configs/sam2.1/sam2.1_hiera_t.yaml"
    assert spec_of("--checkpoint", str(other), "--config", "sam2.1_hiera_s").config == "sam2.1_hiera_s"


@pytest.mark.parametrize("argv,named", [
    (["--model", "sam2.1_hiera_tiny", "--config", "sam2.1_hiera_t"], "--model"),
    (["--model", "unknown"], "--model"),
    (["--config", "my.yaml"], "--config"),
    (["--checkpoint", "{other}"], "--checkpoint"),
    (["--checkpoint", "{other}", "--config", "{bad_yaml}"], "--config"),
    (["--checkpoint", "{official}", "--model", "sam2.1_hiera_tiny"], "--model"),  # a large checkpoint
])
def test_model_choice_errors_name_the_argument(tmp_path, capsys, argv, named):
    (tmp_path / "weights.pt").write_bytes(b"")
    (tmp_path / "bad.yaml").write_text("model: {}\n")
    (tmp_path / "sam2_hiera_large.pt").write_bytes(b"")
    argv = [a.replace("{other}", str(tmp_path / "weights.pt")).replace("{bad_yaml}", str(tmp_path / "bad.yaml"))
            .replace("{official}", str(tmp_path / "sam2_hiera_large.pt")) for a in argv]
    with pytest.raises(SystemExit) as info:
        spec_of(*argv)
    assert info.value.code == 2 and f"argument {named}" in capsys.readouterr().err


def test_staged_output_publishes_only_on_success(tmp_path):
    target = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError), common.StagedOutput(target) as folder:
        (folder / "half.png").write_bytes(b"x")
        assert folder.parent.parent == tmp_path  # staged next to the nearest existing folder
        raise RuntimeError("failed half way")
    assert listing(tmp_path) == []
    with common.StagedOutput(target) as folder:
        (folder / "sub").mkdir()
        (folder / "sub" / "one.txt").write_text("1")
        (folder / "top.txt").write_text("new")
    assert listing(tmp_path) == ["a", "a/b", "a/b/out", "a/b/out/sub", "a/b/out/sub/one.txt", "a/b/out/top.txt"]


def test_staged_output_merges_into_an_existing_folder(tmp_path):
    target = tmp_path / "out"
    (target / "sub").mkdir(parents=True)
    (target / "sub" / "old.txt").write_text("old")
    (target / "top.txt").write_text("old")
    with common.StagedOutput(target) as folder:
        (folder / "sub").mkdir()
        (folder / "sub" / "new.txt").write_text("new")
        (folder / "top.txt").write_text("new")
    assert listing(tmp_path) == ["out", "out/sub", "out/sub/new.txt", "out/sub/old.txt", "out/top.txt"]
    assert (target / "top.txt").read_text() == "new"


def test_staged_single_file(tmp_path):
    target = tmp_path / "video.mp4"
    with common.StagedOutput(target, single_file=True) as folder:
        (folder / "video.mp4").write_bytes(b"data")
    assert listing(tmp_path) == ["video.mp4"] and target.read_bytes() == b"data"


def test_help_lists_every_subcommand():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for name in SUBCOMMANDS:
        assert name in proc.stdout
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == set(SUBCOMMANDS)


@pytest.mark.parametrize("name,words", [
    ("image", ["--point", "--box", "--multimask", "--no-multimask", "--mask-threshold", "mask_<i>.png",
               "overlay.png", "result.json"]),
    ("auto", ["--points-per-side", "--points-per-batch", "--pred-iou-thresh", "--stability-score-thresh",
              "--stability-score-offset", "--box-nms-thresh", "--crop-n-layers", "--crop-nms-thresh",
              "--crop-overlap-ratio", "--crop-n-points-downscale-factor", "--min-mask-region-area", "--use-m2m",
              "--no-multimask", "annotations.json", "COCO"]),
    ("video", ["--prompt", "point=X,Y", "box=X0,Y0,X1,Y1", "mask=PNG", "--format", "davis", "per-object", "mp4",
               "--reverse", "--start-frame", "--max-frames"]),
    ("selfcheck", ["PASS", "--device", "--seed"]),
])
def test_subcommand_help_documents_the_options(name, words):
    proc = run_cli(name, "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for word in [*words, "-q"] + (["--model", "--config", "--checkpoint", "--device", "HF_HUB_OFFLINE"]
                                  if name != "selfcheck" else []):
        assert word in text, word


def test_model_beside_checkpoint_is_said_aloud(tmp_path, caplog):
    (tmp_path / "weights.pt").write_bytes(b"")
    with caplog.at_level("WARNING"):
        spec = spec_of("--checkpoint", str(tmp_path / "weights.pt"), "--model", "sam2.1_hiera_small")
    assert spec.config == "configs/sam2.1/sam2.1_hiera_s.yaml"
    assert "using the config configs/sam2.1/sam2.1_hiera_s.yaml" in caplog.text and "nothing is downloaded" in caplog.text


@pytest.mark.parametrize("kind,value,ok", [
    (common.finite_float, "0.5", 0.5), (common.finite_float, "-3", -3.0), (common.finite_float, "nan", None),
    (common.finite_float, "inf", None), (common.finite_float, "-inf", None), (common.finite_float, "x", None),
    (common.positive_float, "24", 24.0), (common.positive_float, "0", None), (common.positive_float, "inf", None),
    (common.non_negative_float, "0", 0.0), (common.non_negative_float, "-1", None),
    (common.unit_float, "nan", None), (common.crop_layers, "4", 4), (common.crop_layers, "5", None),
    (common.crop_layers, "40", None), (common.crop_layers, "-1", None),
])
def test_number_types_refuse_nan_inf_and_out_of_range(kind, value, ok):
    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError):
            kind(value)
    else:
        assert kind(value) == ok


@pytest.mark.parametrize("how,code", [("sigint", 130), ("sigterm", 143)])
def test_interruptible_removes_staged_output_and_gives_the_shell_code(tmp_path, caplog, how, code):
    import os
    import signal

    def run(args):
        with common.StagedOutput(tmp_path / "out") as folder:
            (folder / "half.png").write_bytes(b"x")
            if how == "sigint":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM did not interrupt")

    previous = signal.getsignal(signal.SIGTERM)
    assert common.interruptible(run)(argparse.Namespace()) == code
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler is put back
    assert listing(tmp_path) == [] and "no partial output" in caplog.text
