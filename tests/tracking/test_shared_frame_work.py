"""What memory attention computes from the frame alone runs once per frame, whatever the number of objects.

Three objects are tracked one by one (the default, as the official code does); the frame-only part of
memory attention (:meth:`MemoryAttention.frame_queries`) must run once per tracked frame, and the
results must be bit for bit those of recomputing it for every object.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2.tracking.tracker import FrameFeatures
from tests import reference as R
from tests.video_api_support import build, click, make_frames, propagate, write_checkpoint

pytestmark = R.requires_reference

CLICKS = [np.array([[30.0, 36.0]], dtype=np.float32), np.array([[70.0, 20.0]], dtype=np.float32),
          np.array([[12.0, 60.0]], dtype=np.float32)]
NUM_FRAMES = 4


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return build(write_checkpoint(tmp_path_factory.mktemp("ckpt")))


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
