"""Edges of the training model on the package's 128 px micro model (random weights, no fixtures)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sam2.build_sam import build_sam2
from sam2.cli.selfcheck import MICRO_CONFIG
from sam2.training.data.batch import VideoBatch
from sam2.training.losses import LossConfig, MultiStepMultiMasksAndIous
from sam2.training.model import PromptSimulationConfig, TrainingModel

S = 128


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_sam2(str(MICRO_CONFIG), None, device="cpu", apply_postprocessing=False)
    return {k: v.clone() for k, v in model.state_dict().items()}


def micro(weights) -> torch.nn.Module:
    model = build_sam2(str(MICRO_CONFIG), None, device="cpu", apply_postprocessing=False, mode="train")
    model.load_state_dict(weights)
    return model


def make_batch(num_frames: int = 3, videos: int = 1, objects_per_video: int = 2, seed: int = 0) -> VideoBatch:
    """Random frames; object ``k`` of each video is a moving rectangle (absent on frame 2 for ``k = 1``)."""
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(num_frames, videos, 3, S, S, generator=g)
    o = videos * objects_per_video
    masks = torch.zeros(num_frames, o, S, S, dtype=torch.bool)
    for t in range(num_frames):
        for j in range(o):
            k = j % objects_per_video
            if k == 1 and t == 2:
                continue
            y, x = 10 + 20 * k + 3 * t, 15 + 30 * k + 4 * t + 7 * (j // objects_per_video)
            masks[t, j, y:y + 30, x:x + 25] = True
    video = torch.arange(o) // objects_per_video
    idx = torch.stack([torch.arange(num_frames)[:, None].expand(-1, o), video[None].expand(num_frames, -1)], -1)
    ids = torch.zeros(num_frames, o, 3, dtype=torch.int64)
    return VideoBatch(img, idx.int(), masks, ids, torch.full((num_frames, o, 2), S))


def loss_of(outputs, batch) -> torch.Tensor:
    return MultiStepMultiMasksAndIous.from_config(LossConfig())(outputs, batch.masks)["core_loss"]


def test_constructor_and_batch_errors(weights):
    with pytest.raises(TypeError, match="model must be a SAM2Base"):
        TrainingModel(torch.nn.Linear(2, 2))
    tm = TrainingModel(micro(weights))
    batch = make_batch()
    with pytest.raises(ValueError, match=r"img_batch must be \(T, V, 3, 128, 128\)"):
        tm(dataclasses.replace(batch, img_batch=batch.img_batch[..., :64, :64]))
    with pytest.raises(ValueError, match="masks must be bool"):
        tm(dataclasses.replace(batch, masks=batch.masks.float()))
    with pytest.raises(ValueError, match="obj_to_frame_idx names a video outside 0..0"):
        tm(dataclasses.replace(batch, obj_to_frame_idx=batch.obj_to_frame_idx + 1))
    with pytest.raises(ValueError, match="not a PCG64 generator state"):
        tm.set_rng_state({"bit_generator": "MT19937"})


def test_rng_state_resumes_the_prompt_stream(weights):
    """Restoring the generator (and torch's) repeats the plan and the numbers exactly."""
    tm = TrainingModel(micro(weights), PromptSimulationConfig.mose()).train()
    batch = make_batch(num_frames=4)
    for _ in range(3):  # advance the stream
        tm(batch)
    state, torch_state = tm.rng_state(), torch.get_rng_state()
    first = tm(batch)
    plan = tm.last_plan
    tm(batch)
    tm.set_rng_state(state)
    torch.set_rng_state(torch_state)
    again = tm(batch)
    assert tm.last_plan == plan
    for a, b in zip(first, again):
        assert all(torch.equal(x, y) for x, y in zip(a.multistep_pred_ious, b.multistep_pred_ious))
        assert torch.equal(a.pred_masks, b.pred_masks)


def test_freeze_image_encoder_leaves_it_without_gradient(weights):
    tm = TrainingModel(micro(weights), PromptSimulationConfig.mose(), freeze_image_encoder=True).train()
    batch = make_batch()
    loss_of(tm(batch), batch).backward()
    encoder = dict(tm.model.image_encoder.named_parameters())
    assert all(not p.requires_grad and p.grad is None for p in encoder.values())
    assert tm.model.sam_mask_decoder.iou_token.weight.grad is not None


def test_image_batches_get_clicks_and_corrections(weights):
    """T = 1 with the default config (masks only) still takes the forced clicks path (SPEC §7.7)."""
    tm = TrainingModel(micro(weights)).train()
    batch = make_batch(num_frames=1)
    (out,) = tm(batch)
    assert tm.last_plan.use_pt_input and out.point_inputs is not None and out.is_corrected
    assert out.num_steps == 8 and [m.shape[1] for m in out.multistep_pred_multimasks] == [3] + [1] * 7
    assert out.multistep_point_inputs[-1].point_coords.shape == (2, out.point_inputs.point_coords.shape[1] + 7, 2)
    loss_of([out], batch).backward()
    assert tm.model.memory_attention.layers[0].linear1.weight.grad is None


def test_absent_object_box_prompt_is_a_negative_click(weights):
    """Box prompt on an initial frame where one object is absent: a negative click there, finite loss."""
    prompts = PromptSimulationConfig(prob_to_use_pt_input_for_train=1.0, prob_to_use_box_input_for_train=1.0,
                                     num_init_cond_frames_for_train=2, num_frames_to_correct_for_train=2,
                                     rand_init_cond_frames_for_train=False)
    tm = TrainingModel(micro(weights), prompts).train()
    batch = make_batch(num_frames=3)
    tm.rng = np.random.default_rng(1)
    for _ in range(20):  # draw until frame 2 (object 1 absent) is the second initial frame (p = 1/2)
        outputs = tm(batch)
        if tm.last_plan.init_cond_frames == [0, 2]:
            break
    assert tm.last_plan.init_cond_frames == [0, 2]
    labels = outputs[2].point_inputs.point_labels
    assert labels.tolist() == [[2, 3], [0, -1]]
    assert torch.isfinite(loss_of(outputs, batch))


def test_eval_per_frame_backbone_matches_the_batched_one(weights):
    """Eval with ``forward_backbone_per_frame_for_eval`` (2 videos: distinct images per frame) gives
    the numbers of the one-call backbone; objects of a video do not depend on the other video."""
    batch = make_batch(num_frames=3, videos=2)
    results = []
    for per_frame in (True, False):
        prompts = PromptSimulationConfig(forward_backbone_per_frame_for_eval=per_frame)
        tm = TrainingModel(micro(weights), prompts).eval()
        with torch.no_grad():
            results.append(tm(batch))
    single = dataclasses.replace(batch, img_batch=batch.img_batch[:, :1], obj_to_frame_idx=batch.obj_to_frame_idx[:, :2],
                                 masks=batch.masks[:, :2], object_identifiers=batch.object_identifiers[:, :2],
                                 frame_orig_size=batch.frame_orig_size[:, :2])
    with torch.no_grad():
        alone = TrainingModel(micro(weights)).eval()(single)
    for a, b, c in zip(*results, alone):
        assert torch.allclose(a.pred_masks, b.pred_masks, atol=1e-4, rtol=1e-4)
        assert torch.allclose(b.pred_masks[:2], c.pred_masks, atol=1e-4, rtol=1e-4)
        assert torch.allclose(a.obj_ptr, b.obj_ptr, atol=1e-5, rtol=1e-4)


def test_activation_checkpointed_corrections_give_the_same_gradients(weights):
    batch = make_batch(num_frames=1)
    grads = []
    for ckpt in (False, True):
        tm = TrainingModel(micro(weights), PromptSimulationConfig(use_act_ckpt_iterative_pt_sampling=ckpt)).train()
        torch.manual_seed(5)
        loss_of(tm(batch), batch).backward()
        grads.append({k: p.grad.clone() for k, p in tm.model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        assert torch.allclose(grads[0][k], grads[1][k], rtol=1e-4, atol=1e-6), k
