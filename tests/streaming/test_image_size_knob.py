"""``++model.image_size=512``: every derived size follows the input size, weights load unchanged, and
streaming / bounded tracking work (the numbers differ from 1024: a different input, not a bug)."""

from __future__ import annotations

import pytest
import torch

from sam2.streaming import StreamingSession
from tests import reference as R
from tests.streaming.stream_support import prompt, streamed
from tests.video_api_support import build, make_frames, write_checkpoint

pytestmark = R.requires_reference


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.mark.parametrize("size", [512, 256])
def test_derived_sizes_follow_the_input_size(checkpoint, size):
    predictor = build(checkpoint, image_size=size)  # the same checkpoint as at 1024: strict loading
    model = predictor.model
    grid = size // 16
    assert model.image_size == size and model.sam_image_embedding_size == grid
    assert model.sam_prompt_encoder.image_embedding_size == (grid, grid)
    assert model.sam_prompt_encoder.mask_input_size == (4 * grid, 4 * grid)
    assert model.sam_prompt_encoder.input_image_size == (size, size)
    frames = make_frames(3)
    session = StreamingSession(predictor, length_hint=3)
    streamed(session, frames, {0: [1]})
    obj = session.state.objects[0]
    out = obj.non_cond_outputs[2]
    assert out.pred_masks.shape == (1, 1, 4 * grid, 4 * grid)
    assert out.maskmem_features.shape[-2:] == (grid, grid) and out.maskmem_pos_enc.shape[-2:] == (grid, grid)
    features = session.state.cached_features
    pos = model._prepare_backbone_features(features)[3]
    assert pos == [(4 * grid, 4 * grid), (2 * grid, 2 * grid), (grid, grid)]
    rope = model.memory_attention.layers[0].self_attn
    assert rope.rope_table(grid * grid, torch.device("cpu")).shape[0] == grid * grid


def test_input_size_changes_the_numbers(checkpoint):
    frames = make_frames(2)
    results = []
    for size in (512, 256):
        session = StreamingSession(build(checkpoint, image_size=size), length_hint=2)
        session.track(frames[0])
        results.append(prompt(session, 1).masks)
    assert results[0].shape == results[1].shape == (1, 1, 72, 96)
    assert not torch.equal(results[0], results[1])
    assert ((results[0] > 0) == (results[1] > 0)).float().mean() > 0.5  # the same object, roughly
