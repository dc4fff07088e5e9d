"""``sam2 train``: overrides, usage errors (exit 2, nothing written), a run, resume, and SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from train_loop_support import SIZE, make_shapes

from sam2.cli.main import main

MICRO_ARGS = ["--config", "sam2.1_hiera_micro_cpu", "--resolution", str(SIZE), "--num-frames", "3",
              "--max-objects", "2", "--batch-size", "2", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("cli") / "data", train_videos=4, val_videos=2)


def _data_args(shapes: Path) -> list[str]:
    return ["--img-folder", str(shapes / "train" / "JPEGImages"), "--gt-folder", str(shapes / "train" / "Annotations")]


def test_print_config_applies_every_override(shapes, tmp_path, capsys):
    args = ["train", *MICRO_ARGS, *_data_args(shapes), "--epochs", "3", "--lr", "2e-4", "--vision-lr", "1e-4",
            "--freeze", "image_encoder,sam_prompt_encoder", "--grad-accum", "2", "--output-dir", str(tmp_path / "x"),
            "--set", "trainer.log_every_steps=7", "--set", "optim.layer_decay=0.8", "--print-config"]
    assert main(args) == 0
    tree = yaml.safe_load(capsys.readouterr().out)
    ds = tree["data"]["datasets"][0]
    assert (ds["img_folder"], ds["batch_size"], ds["num_frames"], ds["max_num_objects"]) == \
        (str(shapes / "train" / "JPEGImages"), 2, 3, 2)
    assert tree["data"]["resolution"] == SIZE and tree["model"]["image_size"] is None
    assert tree["model"]["freeze"] == ["image_encoder", "sam_prompt_encoder"]
    assert (tree["optim"]["base_lr"], tree["optim"]["vision_lr"], tree["optim"]["layer_decay"]) == (2e-4, 1e-4, 0.8)
    t = tree["trainer"]
    assert (t["max_epochs"], t["grad_accum_steps"], t["log_every_steps"], t["device"]) == (3, 2, 7, "cpu")
    assert t["experiment_dir"] == str(tmp_path / "x") and not (tmp_path / "x").exists()


@pytest.mark.parametrize("extra, message", [
    (["--set", "trainer.nope=1"], "argument --set: 'trainer.nope=1': unknown key trainer.nope"),
    (["--set", "optim.base_lr"], "argument --set: 'optim.base_lr' is not of the form"),
    (["--set", "trainer.max_epochs=many"], "argument --set: .*trainer.max_epochs: expected an integer"),
    (["--epochs", "0"], "argument --epochs: must be at least 1"),
    (["--lr", "-1"], "argument --lr: must be > 0"),
    (["--freeze", "image_encoderr"], "argument --freeze: unknown freeze group 'image_encoderr'"),
    (["--resolution", "100"], "argument --config: .*multiple of 16"),
    (["--resume"], "argument --resume: no checkpoint at"),
    (["--checkpoint", "missing.pt"], "argument --checkpoint: 'missing.pt' is not an existing file"),
    (["--model", "sam2.1_hiera_huge"], "argument --config/--model: .*sam2.1_hiera_huge"),
])
def test_bad_arguments_exit_2_naming_them(shapes, tmp_path, capsys, extra, message):
    out = tmp_path / "exp"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *MICRO_ARGS, *_data_args(shapes), "--output-dir", str(out), *extra])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err), message
    assert not out.exists()


def test_bad_config_and_missing_data(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(tmp_path / "none.yaml")])
    assert exit_info.value.code == 2 and "argument --config" in capsys.readouterr().err
    empty = tmp_path / "empty"
    (empty / "JPEGImages").mkdir(parents=True)
    (empty / "Annotations").mkdir()
    code = main(["train", *MICRO_ARGS, "--img-folder", str(empty / "JPEGImages"), "--gt-folder",
                 str(empty / "Annotations"), "--output-dir", str(tmp_path / "exp")])
    assert code == 1 and not (tmp_path / "exp" / "checkpoints").exists()


def test_train_then_refuse_to_overwrite_then_resume(shapes, tmp_path, capsys):
    out = tmp_path / "exp"
    run = ["train", *MICRO_ARGS, *_data_args(shapes), "--output-dir", str(out)]
    assert main([*run, "--epochs", "1"]) == 0
    ckpt = out / "checkpoints" / "checkpoint.pt"
    first = torch.load(ckpt, weights_only=True)
    assert first["epoch"] == 1 and (out / "config.yaml").is_file() and (out / "metrics.jsonl").is_file()
    assert capsys.readouterr().out == ""  # -q: nothing but errors
    stamp = ckpt.stat().st_mtime_ns
    with pytest.raises(SystemExit) as exit_info:
        main([*run, "--epochs", "2"])
    assert exit_info.value.code == 2 and "--resume" in capsys.readouterr().err
    assert ckpt.stat().st_mtime_ns == stamp
    assert main([*run, "--epochs", "2", "--resume"]) == 0
    second = torch.load(ckpt, weights_only=True)
    assert second["epoch"] == 2 and second["steps"]["train"] == 2 * first["steps"]["train"]


def test_sigterm_stops_with_a_checkpoint_and_exit_143(shapes, tmp_path):
    out = tmp_path / "exp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sam2", "train", *MICRO_ARGS, *_data_args(shapes), "--output-dir", str(out),
           "--epochs", "200", "--set", "trainer.log_every_steps=1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no training step within 120 s"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "SIGTERM received: stopping after the current step" in stderr
    ckpt = torch.load(out / "checkpoints" / "checkpoint.pt", weights_only=True)
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert ckpt["steps"]["train"] == max(steps) >= 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint.pt"]
