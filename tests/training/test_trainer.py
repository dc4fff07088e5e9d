"""The training loop on the micro model at 64 px with a tiny generated DAVIS-layout dataset: finite
losses, official-layout checkpoints, exact resume, gradient accumulation, errors before training."""

from __future__ import annotations

import dataclasses
import json
import signal

import pytest
import torch
from train_loop_support import ListLoader, make_shapes, merge_batches, micro_config, micro_yaml, model_state

from sam2.build_sam import build_sam2
from sam2.checkpoint import CheckpointError
from sam2.training.checkpoints import CHECKPOINT_NAME
from sam2.training.data.loader import build_train_loader
from sam2.training.trainer import Trainer

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes") / "data")


def _records(exp, kind="train"):
    lines = (exp / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_train_writes_official_checkpoint_that_build_sam2_loads(shapes, tmp_path):
    exp = tmp_path / "exp"
    val = {"every_epochs": 1, "img_folder": str(shapes / "val" / "JPEGImages"),
           "gt_folder": str(shapes / "val" / "Annotations")}
    cfg = micro_config(shapes, exp, ("trainer.max_epochs", 1), ("trainer.validation", val), ("trainer.tensorboard", True))
    trainer = Trainer(cfg, CPU)
    before = model_state(trainer)
    result = trainer.fit()
    assert result.steps == 3 and result.epochs == 1 and result.stopped_by is None
    (scores,) = result.validation
    assert scores["videos"] == 2 and 0.0 <= scores["J"] <= 100.0 and scores["J&F"] == (scores["J"] + scores["F"]) / 2
    assert _records(exp, "val") == [{"kind": "val", "step": 3, "epoch": 1, **scores}]
    assert any((exp / "tensorboard").iterdir())
    records = _records(exp)
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        assert all(torch.isfinite(torch.tensor(r[k])) for k in ("core_loss", "loss_mask", "grad_norm"))
    assert records[0]["lr"] == pytest.approx(cfg.optim.base_lr) and records[-1]["lr"] < records[0]["lr"]
    ckpt = torch.load(exp / "checkpoints" / CHECKPOINT_NAME, weights_only=True)
    assert {"model", "optimizer", "epoch", "steps", "train_dataset", "rng"} <= set(ckpt)
    assert ckpt["epoch"] == 1 and ckpt["steps"]["train"] == 3
    # The training checkpoint itself loads strictly (at another image size, which changes no key).
    loaded = build_sam2(str(micro_yaml()), str(exp / "checkpoints" / CHECKPOINT_NAME), device="cpu")
    after = model_state(trainer)
    assert any(not torch.equal(before[k], after[k]) for k in before), "no weight changed"
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, after[key]), key


def _stop_after(trainer: Trainer, step: int) -> None:
    """Make ``trainer`` receive SIGTERM during optimizer step ``step`` (as from a signal handler)."""
    original = trainer._optimizer_step

    def step_and_maybe_stop(*args):
        out = original(*args)
        if trainer.state.step + 1 == step:
            trainer.stop_signal = signal.SIGTERM
        return out

    trainer._optimizer_step = step_and_maybe_stop


def test_resume_mid_epoch_gives_bit_identical_weights(shapes, tmp_path):
    # Random prompts (clicks, boxes, GT masks), dropout 0.1, stochastic depth and data augmentation all
    # draw from the generators that a resume must restore.
    log3 = ("trainer.log_every_steps", 3)  # the log line of step 3 averages steps from both sides of the stop
    drop = ("model.drop_path_rate", 0.1)
    full = Trainer(micro_config(shapes, tmp_path / "full", log3, drop), CPU)
    assert full.model.model.image_encoder.trunk.blocks[-1].drop_path == pytest.approx(0.1)
    full.fit()
    expected = model_state(full)

    exp = tmp_path / "cut"
    first = Trainer(micro_config(shapes, exp, log3, drop), CPU)
    _stop_after(first, 2)  # epoch 1 of 2 has 3 steps: stop in the middle of it
    stopped = first.fit()
    assert stopped.stopped_by == signal.SIGTERM and stopped.steps == 2 and stopped.epochs == 0
    ckpt = exp / "checkpoints" / CHECKPOINT_NAME
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(micro_config(shapes, exp, log3, drop), CPU)
    resumed = Trainer(micro_config(shapes, exp, log3, drop), CPU, resume=ckpt)
    result = resumed.fit()
    assert result.steps == 6 and result.epochs == 2
    got = model_state(resumed)
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    full_log = (tmp_path / "full" / "metrics.jsonl").read_text()
    assert (exp / "metrics.jsonl").read_text() == full_log and full_log.count('"kind": "train"') == 2


def test_gradient_accumulation_matches_one_big_batch(shapes, tmp_path):
    settings = [("model.prompts.prob_to_use_pt_input_for_train", 0.0), ("trainer.max_epochs", 1),
                ("model.prompts.num_init_cond_frames_for_train", 1), ("data.datasets.0.batch_size", 1),
                ("data.transforms.augment", False)]
    cfg = micro_config(shapes, tmp_path / "data", *settings, dropout=0.0)
    loader = build_train_loader(cfg.data, seed=0)
    loader.set_epoch(0)
    singles = list(loader)[:2]
    assert [b.num_objects for b in singles] == [2, 2]
    grads = {}
    for name, batches, accum in (("big", [merge_batches(singles)], 1), ("accum", singles, 2)):
        run_cfg = micro_config(shapes, tmp_path / name, *settings, ("trainer.grad_accum_steps", accum), dropout=0.0)
        trainer = Trainer(run_cfg, CPU, loader=ListLoader(batches))
        trainer.fit()
        grads[name] = torch.cat([p.grad.flatten() for p in trainer.model.model.parameters() if p.grad is not None])
        assert trainer.state.step == 1
    big, accum = grads["big"], grads["accum"]
    assert big.shape == accum.shape
    assert float((big - accum).norm() / big.norm()) < 1e-4
    assert _records(tmp_path / "big")[0]["core_loss"] == pytest.approx(_records(tmp_path / "accum")[0]["core_loss"],
                                                                       rel=1e-5)


def test_missing_dataset_folder_fails_before_anything_is_written(shapes, tmp_path):
    exp = tmp_path / "exp"
    cfg = micro_config(shapes, exp, ("data.datasets.0.gt_folder", str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match="nowhere"):
        Trainer(cfg, CPU)
    assert not exp.exists()


def test_checkpoint_that_does_not_fit_is_named(shapes, tmp_path):
    bad = tmp_path / "tiny.pt"
    torch.save({"model": {"image_encoder.trunk.pos_embed": torch.zeros(1)}}, bad)
    cfg = micro_config(shapes, tmp_path / "exp", ("model.checkpoint", str(bad)))
    with pytest.raises(CheckpointError, match="tiny.pt"):
        Trainer(cfg, CPU)


def test_non_finite_loss_stops_with_a_clear_error(shapes, tmp_path):
    cfg = micro_config(shapes, tmp_path / "exp", ("data.datasets.0.batch_size", 1))
    loader = build_train_loader(cfg.data, seed=0)
    loader.set_epoch(0)
    batch = next(iter(loader))
    broken = dataclasses.replace(batch, img_batch=torch.full_like(batch.img_batch, float("nan")))
    trainer = Trainer(cfg, CPU, loader=ListLoader([broken]))
    with pytest.raises(FloatingPointError, match="non-finite loss at step 1"):
        trainer.fit()


def test_lora_run_writes_a_merged_plain_checkpoint_and_resumes(shapes, tmp_path):
    from sam2.training.lora import merge_lora

    lora = {"rank": 2, "targets": ["decoder_attn"]}
    settings = [("model.lora", lora), ("trainer.max_epochs", 1), ("data.datasets.0.batch_size", 1)]
    cfg = micro_config(shapes, tmp_path / "exp", *settings)
    loader = build_train_loader(cfg.data, seed=0)
    loader.set_epoch(0)
    batches = list(loader)[:2]
    trainer = Trainer(cfg, CPU, loader=ListLoader(batches))
    _stop_after(trainer, 1)
    trainer.fit()
    ckpt_path = tmp_path / "exp" / "checkpoints" / CHECKPOINT_NAME
    ckpt = torch.load(ckpt_path, weights_only=True)
    merged = merge_lora(trainer.model.model)
    assert set(ckpt["model"]) == set(merged) and all(torch.equal(ckpt["model"][k], merged[k]) for k in merged)
    assert not any("lora_" in k or "base_layer" in k for k in ckpt["model"])
    plain = tmp_path / "plain.pt"
    torch.save({"model": ckpt["model"]}, plain)
    build_sam2(str(micro_yaml()), str(plain), device="cpu")
    resumed = Trainer(micro_config(shapes, tmp_path / "exp", *settings), CPU, loader=ListLoader(batches),
                      resume=ckpt_path)
    adapters = {k: v for k, v in model_state(resumed).items() if "lora_" in k}
    saved = {k: v for k, v in model_state(trainer).items() if "lora_" in k}
    assert adapters and all(torch.equal(adapters[k], saved[k]) for k in saved)
    assert resumed.fit().steps == 2


def test_torchrun_environment_is_checked(monkeypatch):
    from sam2.training.distributed import context_from_env, init_distributed

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert context_from_env().world_size == 1 and not init_distributed(CPU).enabled
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    ctx = context_from_env()
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (1, 2, 1, False)
    with pytest.raises(RuntimeError, match="MASTER_ADDR is not set: start the processes with torchrun"):
        init_distributed(CPU)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(RuntimeError, match="RANK=2, WORLD_SIZE=2"):
        context_from_env()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(RuntimeError, match="RANK='x' is not an integer"):
        context_from_env()


def test_a_checkpoint_with_only_the_official_entries_resumes_at_the_next_epoch(shapes, tmp_path):
    settings = [("data.datasets.0.batch_size", 1), ("trainer.max_epochs", 2), ("trainer.keep_every_epochs", 1)]
    cfg = micro_config(shapes, tmp_path / "exp", *settings)
    loader = build_train_loader(cfg.data, seed=0)
    loader.set_epoch(0)
    batches = list(loader)[:1]
    Trainer(cfg, CPU, loader=ListLoader(batches)).fit()
    ckpt = torch.load(tmp_path / "exp" / "checkpoints" / "checkpoint_1.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["steps"]["train"]) == (1, 1)
    official = tmp_path / "official.pt"
    keys = ("model", "optimizer", "epoch", "loss", "steps", "time_elapsed", "best_meter_values")
    torch.save({k: ckpt[k] for k in keys}, official)
    two_ranks = tmp_path / "two_ranks.pt"
    torch.save({**ckpt, "world_size": 2}, two_ranks)
    with pytest.raises(CheckpointError, match="written by a run of 2 processes"):
        Trainer(cfg, CPU, loader=ListLoader(batches), resume=two_ranks)
    resumed = Trainer(cfg, CPU, loader=ListLoader(batches), resume=official)
    assert (resumed.state.epoch, resumed.state.step) == (1, 1)
    assert [r["step"] for r in _records(tmp_path / "exp")] == [1]  # the log is cut back to the checkpoint
    result = resumed.fit()
    assert (result.epochs, result.steps) == (2, 2)
    assert [r["step"] for r in _records(tmp_path / "exp")] == [1, 2]
