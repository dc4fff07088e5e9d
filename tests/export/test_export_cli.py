"""``sam2 export onnx``: a real export of the micro model, and every bad argument refused with a clear
message and nothing written (no output folder, no staging folder left behind)."""

from __future__ import annotations

import argparse
import logging

import pytest

from sam2.cli import export as export_cli
from sam2.cli.selfcheck import MICRO_CONFIG
from tests import reference as R
from tests.export.export_image_support import micro_model

pytest.importorskip("onnxruntime")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sam2")
    export_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    path = tmp_path_factory.mktemp("ckpt") / "micro.pt"
    torch.save({"model": micro_model().state_dict()}, path)
    return path


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_export_cli_writes_a_working_export(tmp_path, checkpoint, capsys):
    import numpy as np

    from sam2.export import OnnxImagePredictor

    out = tmp_path / "out"
    assert _run(["export", "onnx", str(MICRO_CONFIG), "--checkpoint", str(checkpoint), "-o", str(out),
                 "--no-video"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["constants.npz", "image_encoder.onnx", "manifest.json",
                                                     "prompt_decoder.onnx"]
    assert "wrote" in capsys.readouterr().err
    predictor = OnnxImagePredictor(out, expect_model="sam2.1_hiera_micro_128")
    predictor.set_image(np.zeros((20, 30, 3), np.uint8))
    assert predictor.predict(point_coords=[[5, 5]], point_labels=[1])[0].shape == (3, 20, 30)
    # a second export into the same folder needs --overwrite, then replaces it whole
    with pytest.raises(SystemExit):
        _run(["export", "onnx", str(MICRO_CONFIG), "--checkpoint", str(checkpoint), "-o", str(out), "--no-video"])
    assert "is not empty (pass --overwrite" in capsys.readouterr().err
    (out / "stray.txt").write_text("x")
    assert _run(["export", "onnx", str(MICRO_CONFIG), "--checkpoint", str(checkpoint), "-o", str(out),
                 "--no-video", "--overwrite", "-q"]) == 0
    assert not (out / "stray.txt").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("argv,message", [
    (["sam2.1_hiera_gigantic", "--checkpoint", "CKPT"], "argument MODEL_OR_CONFIG: config 'sam2.1_hiera_gigantic'"),
    ([str(MICRO_CONFIG)], "argument --checkpoint: required with the config"),
    ([str(MICRO_CONFIG), "--checkpoint", "CKPT", "--opset", "13"], "argument --opset: must be at least 17"),
    ([str(MICRO_CONFIG), "--checkpoint", "missing.pt"], "argument --checkpoint"),
])
def test_export_cli_usage_errors(tmp_path, checkpoint, capsys, argv, message):
    argv = [str(checkpoint) if a == "CKPT" else a for a in argv]
    with pytest.raises(SystemExit) as exc:
        _run(["export", "onnx", *argv, "-o", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_export_cli_output_is_a_file(tmp_path, checkpoint, capsys):
    target = tmp_path / "file.onnx"
    target.write_text("keep me")
    with pytest.raises(SystemExit):
        _run(["export", "onnx", str(MICRO_CONFIG), "--checkpoint", str(checkpoint), "-o", str(target)])
    assert f"{target} exists and is not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me" and _leftovers(tmp_path) == []


@R.requires_reference
def test_export_cli_checkpoint_of_another_model(tmp_path, caplog):
    """A SAM 2 checkpoint (no SAM 2.1 keys) with the SAM 2.1 micro config: error, nothing written."""
    ckpt = R.write_checkpoint(tmp_path / "sam2_micro.pt", "sam2_hiera_micro")
    with caplog.at_level(logging.ERROR):
        code = _run(["export", "onnx", str(MICRO_CONFIG), "--checkpoint", str(ckpt), "-o", str(tmp_path / "out")])
    assert code == 1
    assert f"checkpoint {ckpt} cannot be used with" in caplog.text and "no_obj_embed_spatial" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sam2_micro.pt"]


def test_export_to_onnx_api_errors(tmp_path):
    from sam2.export import ExportError, to_onnx

    with pytest.raises(ExportError, match="unknown model or config 'nope'"):
        to_onnx("nope", tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(ExportError, match="is not empty; pass overwrite=True"):
        to_onnx(micro_model(), tmp_path / "b")
    with pytest.raises(ExportError, match="opset must be an integer >= 17"):
        to_onnx(micro_model(), tmp_path / "c", opset=11)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_export_failure_midway_leaves_old_export(tmp_path, monkeypatch):
    """A failure after some graphs were written removes the staging folder and keeps the old export."""
    from sam2.export import onnx_export

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous export")

    def broken_video(model, folder, opset):
        assert (folder / "image_encoder.onnx").is_file()  # the image graphs were already staged
        raise RuntimeError("video export failed")

    monkeypatch.setattr(onnx_export, "_export_video", broken_video)
    with pytest.raises(RuntimeError, match="video export failed"):
        onnx_export.to_onnx(micro_model(), out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
