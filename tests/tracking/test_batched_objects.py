"""Several objects on one frame: the work they share, and objects tracked as one batch.

The micro model (input 512) tracks three objects. What memory attention computes from the frame alone
runs once per frame and gives the bits of computing it per object. Objects tracked as one batch give
the same results as objects tracked one by one; a spy around :func:`track_objects` records which
objects were batched on which frame, so each test also proves which path it exercised.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sam2.video_propagation as propagation
from sam2.tracking.batched import group_by_layout
from sam2.tracking.tracker import FrameFeatures, MemoryPlan
from tests import reference as R
from tests.video_api_support import build, click, make_frames, propagate, write_checkpoint

pytestmark = R.requires_reference

CLICKS = [np.array([[30.0, 36.0]], dtype=np.float32), np.array([[70.0, 20.0]], dtype=np.float32),
          np.array([[12.0, 60.0]], dtype=np.float32)]
NUM_FRAMES = 4


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return build(write_checkpoint(tmp_path_factory.mktemp("ckpt")))


@pytest.fixture
def batch_sizes(monkeypatch):
    """Sizes of the batches tracked together, in call order."""
    sizes: list[int] = []
    real = propagation.track_objects

    def spy(model, features, plans, num_frames, run_mem_encoder=True):
        sizes.append(len(plans))
        return real(model, features, plans, num_frames, run_mem_encoder)

    monkeypatch.setattr(propagation, "track_objects", spy)
    return sizes


def run(predictor, prompt_frames: list[int], batch: bool, **state_kwargs):
    """Click object ``k + 1`` on ``prompt_frames[k]``, propagate; -> (yields, session)."""
    predictor.batch_objects = batch
    try:
        state = predictor.init_state(make_frames(NUM_FRAMES), **state_kwargs)
        for k, frame_idx in enumerate(prompt_frames):
            click(predictor, state, frame_idx=frame_idx, obj_id=k + 1, points=CLICKS[k])
        return propagate(predictor, state), state
    finally:
        del predictor.batch_objects  # back to the class default


def assert_close_runs(batched, alone, state_b, state_a) -> None:
    assert [(f, ids) for f, ids, _ in batched] == [(f, ids) for f, ids, _ in alone]
    for (f, _, m), (_, _, m_ref) in zip(batched, alone):
        R.assert_close_array(m, R.to_numpy(m_ref), R.REL_L2_VIDEO, f"masks of frame {f}")
        R.assert_masks_match(m > 0, R.to_numpy(m_ref > 0), f"binary masks of frame {f}")
    for obj_b, obj_a in zip(state_b.objects, state_a.objects):
        assert list(obj_b.non_cond_outputs) == list(obj_a.non_cond_outputs)
        for t, out in obj_b.non_cond_outputs.items():
            ref = obj_a.non_cond_outputs[t]
            R.assert_close_array(out.obj_ptr, R.to_numpy(ref.obj_ptr), R.REL_L2_VIDEO, f"obj_ptr {t}")
            R.assert_close_array(out.maskmem_features, R.to_numpy(ref.maskmem_features), R.REL_L2_VIDEO,
                                 f"memory {t}")
            assert out.maskmem_features.dtype == torch.bfloat16 and out.maskmem_features.shape[0] == 1
            assert torch.equal(torch.sign(out.object_score_logits), torch.sign(ref.object_score_logits))


def test_objects_prompted_together_are_batched_and_match_one_by_one(predictor, batch_sizes):
    alone, state_a = run(predictor, [0, 0, 0], batch=False)
    assert batch_sizes == []
    batched, state_b = run(predictor, [0, 0, 0], batch=True)
    assert batch_sizes == [3] * (NUM_FRAMES - 1)  # every tracked frame, all three objects at once
    assert_close_runs(batched, alone, state_b, state_a)


def test_objects_whose_memories_do_not_line_up_fall_back_to_one_by_one(predictor, batch_sizes):
    # Object 2 is prompted on frame 2. Frame 1: it reads its later prompt and its frame 0 (two
    # spatial memories, objects 1 and 3 one), so it runs alone and 1 + 3 share a batch; frame 2: it
    # keeps its prompt's output, 1 + 3 batch; frame 3: all three read as many memories and
    # pointers (at other frame distances) and run as one batch.
    alone, state_a = run(predictor, [0, 2, 0], batch=False)
    batched, state_b = run(predictor, [0, 2, 0], batch=True)
    assert batch_sizes == [2, 2, 3]
    assert_close_runs(batched, alone, state_b, state_a)


def test_bounded_memory_keeps_batched_results_identical(predictor, batch_sizes):
    unbounded, _ = run(predictor, [0, 0, 0], batch=True)
    bounded, _ = run(predictor, [0, 0, 0], batch=True, bounded_memory=True)
    assert batch_sizes and set(batch_sizes) == {3}
    for (f, ids, m), (f2, ids2, m2) in zip(bounded, unbounded):
        assert (f, ids) == (f2, ids2) and torch.equal(m, m2), f"frame {f}"


def _plan(num_frames: int, num_pointers: int) -> MemoryPlan:
    return MemoryPlan(frames=[(0, None)] * num_frames, pointers=[(1, torch.zeros(1, 4))] * num_pointers)


def test_batching_is_opt_in(predictor, batch_sizes):
    assert type(predictor).batch_objects is False
    state = predictor.init_state(make_frames(2))
    for k in range(3):
        click(predictor, state, obj_id=k + 1, points=CLICKS[k])
    propagate(predictor, state)
    assert batch_sizes == []


def test_group_by_layout_keeps_order_and_splits_on_counts():
    plans = [_plan(2, 3), _plan(1, 1), _plan(2, 3), _plan(2, 2), _plan(1, 1)]
    assert group_by_layout(plans) == [[0, 2], [1, 4], [3]]
    assert group_by_layout([]) == []


def track_three(predictor) -> list:
    state = predictor.init_state(make_frames(NUM_FRAMES))
    for k, points in enumerate(CLICKS):
        click(predictor, state, frame_idx=0, obj_id=k + 1, points=points)
    return propagate(predictor, state)


def test_frame_queries_run_once_per_tracked_frame(predictor, monkeypatch):
    calls: list[int] = []
    module = predictor.model.memory_attention
    real = module.frame_queries

    def counted(curr, curr_pos=None):
        calls.append(curr.shape[1])
        return real(curr, curr_pos)

    monkeypatch.setattr(module, "frame_queries", counted)
    shared = track_three(predictor)
    assert calls == [1] * (NUM_FRAMES - 1)  # frames 1..3, batch 1, for 3 objects each

    monkeypatch.setattr(FrameFeatures, "memory_queries",
                        lambda self, model: model.memory_attention.frame_queries(self.feats[-1], self.pos[-1]))
    calls.clear()
    alone = track_three(predictor)
    assert calls == [1] * (3 * (NUM_FRAMES - 1))  # the same work per object
    assert [(f, ids) for f, ids, _ in shared] == [(f, ids) for f, ids, _ in alone]
    for (_, _, a), (_, _, b) in zip(shared, alone):
        assert torch.equal(a, b)


def test_training_mode_recomputes_the_queries(predictor):
    """Dropout differs per call in training, so nothing is kept there."""
    features = predictor._features(predictor.init_state(make_frames(1)), 0)
    model = predictor.model
    with torch.no_grad():
        first = features.memory_queries(model)
        assert features.memory_queries(model) is first
        model.train()
        try:
            assert features.memory_queries(model) is not first
        finally:
            model.eval()
