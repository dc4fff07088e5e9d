"""SAM2VideoPredictor through its public API: what a user expects from an interactive session.

New objects after tracking, removing objects, resetting, clearing prompts, propagation ranges, the
dropped-correction warning, CPU hole filling, offloading / async loading, and bounded frame memory.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from sam2.tracking.sam_heads import NO_OBJ_SCORE
from tests import reference as R
from tests.video_api_support import (
    IMAGE_SIZE,
    NUM_FRAMES,
    H,
    W,
    assert_same_run,
    assert_same_snapshot,
    build,
    click,
    make_frames,
    propagate,
    snapshot,
    stored_outputs,
    write_checkpoint,
)

pytestmark = R.requires_reference

ALL = list(range(NUM_FRAMES))
OBJ2_CLICK = {"points": np.array([[70.0, 20.0]], dtype=np.float32), "labels": np.array([1], dtype=np.int32)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return build(checkpoint)


@pytest.fixture(scope="module")
def frames():
    return make_frames()


@pytest.fixture(scope="module")
def baseline(predictor, frames):
    """One object clicked on frame 0 and propagated through the video in a fresh session."""
    state = predictor.init_state(frames)
    _, _, masks = click(predictor, state)
    return masks.clone(), propagate(predictor, state)


def present(masks: torch.Tensor) -> bool:
    return bool((masks > 0).any())


# ------------------------------------------------------------------------------ objects

def test_new_object_after_tracking_started(predictor, frames, baseline):
    state = predictor.init_state(frames)
    click(predictor, state)
    first = propagate(predictor, state)
    assert_same_run(first, baseline[1], "first propagation")
    assert all(present(m) for _, _, m in first), "the micro weights should predict the object present"

    _, obj_ids, masks = click(predictor, state, frame_idx=3, obj_id=2, **OBJ2_CLICK)
    assert obj_ids == [1, 2] and masks.shape == (2, 1, H, W)
    assert torch.equal(masks[0], first[3][2][0]), "object 1's tracked mask on frame 3 must be returned as is"
    assert present(masks[1])

    second = propagate(predictor, state)
    assert [f for f, _, _ in second] == ALL
    for (f, ids, m), (_, _, m_first) in zip(second, first):
        assert ids == [1, 2] and m.shape == (2, 1, H, W)
        assert torch.isfinite(m).all()
        assert torch.equal(m[0], m_first[0]), f"object 1 changed on frame {f} when object 2 was added"
        obj2 = state.objects[state.obj_idx(2)]
        assert f in obj2.cond_outputs or f in obj2.non_cond_outputs, f"object 2 has no output on frame {f}"
    assert torch.equal(second[3][2][1], masks[1]), "object 2's prompted frame must keep its prompt output"


def test_remove_object(predictor, frames, baseline):
    state = predictor.init_state(frames)
    click(predictor, state)
    click(predictor, state, frame_idx=1, obj_id=2, **OBJ2_CLICK)
    both = propagate(predictor, state)
    assert [ids for _, ids, _ in both] == [[1, 2]] * NUM_FRAMES

    obj_ids, updated = predictor.remove_object(state, 2)
    assert obj_ids == [1] and state.obj_ids == [1]
    assert [f for f, _ in updated] == [1]  # the frames where object 2 had prompts, now without it
    assert updated[0][1].shape == (1, 1, H, W)
    assert torch.equal(updated[0][1], both[1][2][:1])

    after = propagate(predictor, state)
    assert [f for f, _, _ in after] == ALL
    for (f, ids, m), (_, _, m_both) in zip(after, both):
        assert ids == [1] and m.shape == (1, 1, H, W), f"frame {f}"
        assert torch.equal(m[0], m_both[0])
    assert_same_run(after, baseline[1], "object 1 alone")

    # removing the last object resets the session
    obj_ids, updated = predictor.remove_object(state, 1)
    assert obj_ids == [] and updated == [] and state.objects == []
    with pytest.raises(RuntimeError, match="No input points or masks"):
        propagate(predictor, state)


def test_reset_state_clears_everything(predictor, frames, baseline):
    state = predictor.init_state(frames)
    click(predictor, state)
    click(predictor, state, frame_idx=2, obj_id="car", **OBJ2_CLICK)
    propagate(predictor, state, max_frame_num_to_track=3)
    predictor.reset_state(state)
    assert state.obj_ids == [] and state.objects == []
    assert state["obj_id_to_idx"] == {} and state.num_frames == NUM_FRAMES
    with pytest.raises(RuntimeError, match="No input points or masks"):
        propagate(predictor, state)
    # the session behaves like a fresh one afterwards (no leftover memory or prompts)
    _, obj_ids, masks = click(predictor, state)
    assert obj_ids == [1] and torch.equal(masks, baseline[0])
    assert_same_run(propagate(predictor, state), baseline[1], "after reset_state")


def test_clear_all_prompts_in_frame(predictor, frames, baseline):
    state = predictor.init_state(frames)
    click(predictor, state)
    only_first = snapshot(state)
    click(predictor, state, frame_idx=3, points=np.array([[50.0, 30.0]]), labels=np.array([0]))
    frame_idx, obj_ids, masks = predictor.clear_all_prompts_in_frame(state, 3, 1)
    assert (frame_idx, obj_ids) == (3, [1])
    assert torch.all(masks == NO_OBJ_SCORE), "no output is left for the object on the cleared frame"
    assert predictor.clear_all_prompts_in_frame(state, 3, 1, need_output=False) is None
    assert_same_snapshot(snapshot(state), only_first)

    # a cleared conditioning frame that was tracked becomes an ordinary tracked frame
    click(predictor, state, frame_idx=3, points=np.array([[50.0, 30.0]]), labels=np.array([0]))
    with_prompt = propagate(predictor, state)
    assert not torch.equal(with_prompt[4][2], baseline[1][4][2]), "the second prompt should change frame 4"
    _, _, masks = predictor.clear_all_prompts_in_frame(state, 3, 1)
    assert torch.equal(masks, with_prompt[3][2]), "its output is kept until the frame is tracked again"
    obj = state.objects[0]
    assert 3 not in obj.point_inputs and 3 not in obj.cond_outputs and 3 not in obj.tracked
    assert 3 in obj.non_cond_outputs
    assert_same_run(propagate(predictor, state), baseline[1], "prompt cleared")


# ------------------------------------------------------------------------------ propagation range

@pytest.fixture(scope="module")
def tracked_template(predictor, frames):
    state = predictor.init_state(frames)
    click(predictor, state)
    propagate(predictor, state)
    return state, copy.deepcopy(state.objects)


@pytest.fixture
def tracked(tracked_template):
    """The session after one full propagation (its objects restored for every test)."""
    state, objects = tracked_template
    state.objects = copy.deepcopy(objects)
    return state


@pytest.mark.parametrize("kwargs,expected", [
    ({"start_frame_idx": 2, "max_frame_num_to_track": 2}, [2, 3, 4]),
    ({"start_frame_idx": 4, "max_frame_num_to_track": 0}, [4]),
    ({"start_frame_idx": 3, "max_frame_num_to_track": 100}, [3, 4, 5]),
    ({"max_frame_num_to_track": 1}, [0, 1]),
    ({"reverse": True}, []),  # default start is the prompted frame 0: nothing before it
    ({"reverse": True, "start_frame_idx": 4, "max_frame_num_to_track": 2}, [4, 3, 2]),
    ({"reverse": True, "start_frame_idx": 2}, [2, 1, 0]),
])
def test_propagation_range(kwargs, expected, predictor, tracked, baseline):
    run = propagate(predictor, tracked, **kwargs)
    assert [f for f, _, _ in run] == expected
    by_frame = {f: m for f, _, m in baseline[1]}
    for f, ids, m in run:
        assert ids == [1] and m.shape == (1, 1, H, W)
        if not kwargs.get("reverse"):  # forward re-tracking sees the same memories as the first pass
            assert torch.equal(m, by_frame[f]), f"frame {f} differs from the full propagation"
    for f in expected:
        assert tracked.objects[0].tracked[f] == bool(kwargs.get("reverse")), "direction not recorded"


def test_reverse_tracking_from_the_last_frame(predictor, frames):
    last = NUM_FRAMES - 1
    state = predictor.init_state(frames)
    _, _, masks = click(predictor, state, frame_idx=last, points=np.array([[50.0, 36.0]]))
    forward = propagate(predictor, state)
    assert [f for f, _, _ in forward] == [last]
    run = propagate(predictor, state, reverse=True)
    assert [f for f, _, _ in run] == list(range(last, -1, -1))
    assert torch.equal(run[0][2], masks) and torch.equal(forward[0][2], masks)
    assert all(present(m) for _, _, m in run)
    obj = state.objects[0]
    assert sorted(obj.non_cond_outputs) == list(range(last)) and list(obj.cond_outputs) == [last]
    assert all(obj.tracked[f] is True for f in range(last + 1))


# ------------------------------------------------------------------------------ corrections

CORRECTION = {"points": np.array([[34.0, 40.0]], dtype=np.float32), "labels": np.array([0], dtype=np.int32),
              "clear_old_points": False}


def dropped_correction_warnings(caught) -> list:
    return [w for w in caught if issubclass(w.category, UserWarning) and "already been tracked" in str(w.message)]


def test_dropped_correction_warns_once(predictor, frames, baseline):
    state = predictor.init_state(frames)
    click(predictor, state)
    propagate(predictor, state)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, _, corrected = click(predictor, state, frame_idx=0, **CORRECTION)
        click(predictor, state, frame_idx=0, points=np.array([[20.0, 30.0]]), labels=np.array([1]),
              clear_old_points=False)
        click(predictor, state, frame_idx=2, **CORRECTION)
    found = dropped_correction_warnings(caught)
    assert len(found) == 1, f"expected one warning, got {[str(w.message) for w in found]}"
    assert "add_all_frames_to_correct_as_cond" in str(found[0].message)
    assert not torch.equal(corrected, baseline[0]), "the correction click should change the mask"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = propagate(predictor, state)
    assert not dropped_correction_warnings(caught)
    assert_same_run(run, baseline[1], "corrections dropped (official behaviour)")


def test_corrections_kept_as_conditioning_frames(checkpoint, frames, baseline):
    predictor = build(checkpoint, ("++model.add_all_frames_to_correct_as_cond=true",))
    assert predictor.add_all_frames_to_correct_as_cond is True
    state = predictor.init_state(frames)
    click(predictor, state)
    assert_same_run(propagate(predictor, state), baseline[1], "before the correction")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, _, corrected = click(predictor, state, frame_idx=2, **CORRECTION)
    assert not dropped_correction_warnings(caught)
    run = propagate(predictor, state)
    assert torch.equal(run[2][2], corrected), "the corrected frame keeps the correction"
    assert not torch.equal(run[3][2], baseline[1][3][2]), "later frames follow the correction"
    assert sorted(state.objects[0].cond_outputs) == [0, 2]


# ------------------------------------------------------------------------------ hole filling

HOLE_AREA = 40
SIDE = IMAGE_SIZE // 4  # frames at the low-res mask size, so returned masks are the low-res logits


def small_background_components(masks: torch.Tensor, max_area: int) -> int:
    """Number of 8-connected background (logit <= 0) regions of at most ``max_area`` pixels."""
    count = 0
    for plane in (masks[:, 0] <= 0).numpy():
        labels, n = ndimage.label(plane, structure=np.ones((3, 3), dtype=bool))
        areas = np.bincount(labels.ravel())[1:]
        count += int((areas <= max_area).sum())
    return count


def test_fill_hole_area_fills_small_holes_on_cpu(checkpoint):
    frames = make_frames(4, SIDE, SIDE)
    mask = np.zeros((SIDE, SIDE), dtype=bool)
    mask[20:110, 15:115] = True
    for y, x in ((30, 25), (30, 60), (75, 40), (90, 95)):
        mask[y:y + 4, x:x + 4] = False  # 16-pixel holes
    mask[50:64, 75:89] = False  # a 196-pixel hole, larger than HOLE_AREA

    outputs = {}
    for area in (0, HOLE_AREA):
        predictor = build(checkpoint, (f"++model.fill_hole_area={area}",))
        assert predictor.fill_hole_area == area
        state = predictor.init_state(frames)
        _, _, masks = predictor.add_new_mask(state, 0, 1, mask)
        outputs[area] = (masks.clone(), propagate(predictor, state))
    (raw, raw_run), (filled, filled_run) = outputs[0], outputs[HOLE_AREA]

    assert small_background_components(raw, HOLE_AREA) >= 4, "without filling the small holes stay"
    assert small_background_components(filled, HOLE_AREA) == 0
    changed = raw != filled
    assert torch.all(filled[changed] > 0) and torch.all(raw[changed] <= 0), "only holes may change, to foreground"
    assert bool(changed.any())
    assert filled[0, 0, 57, 82] <= 0, "holes larger than fill_hole_area must stay"
    assert any(small_background_components(m, HOLE_AREA) for _, _, m in raw_run[1:]), "tracked masks have holes"
    for f, _, m in filled_run:
        assert small_background_components(m, HOLE_AREA) == 0, f"frame {f} has a small hole"
    assert [f for f, _, _ in raw_run] == [0, 1, 2, 3]


# ------------------------------------------------------------------------------ options

def test_offload_options_give_the_same_results(predictor, frames, baseline):
    state = predictor.init_state(frames, offload_video_to_cpu=True, offload_state_to_cpu=True)
    assert state["offload_video_to_cpu"] and state["offload_state_to_cpu"]
    assert state.storage_device == torch.device("cpu") and state.frames.device == torch.device("cpu")
    _, _, masks = click(predictor, state)
    assert torch.equal(masks, baseline[0])
    assert_same_run(propagate(predictor, state), baseline[1], "offloaded")
    assert all(out.pred_masks.device.type == "cpu" for out in stored_outputs(state))


def test_async_loading_frames_gives_the_same_results(predictor, frames, baseline):
    state = predictor.init_state(frames, async_loading_frames=True)
    _, _, masks = click(predictor, state)
    assert torch.equal(masks, baseline[0])
    assert_same_run(propagate(predictor, state), baseline[1], "async loading")
    assert len(state.frames.cached_indices()) <= state.frames.cache_size
    state.frames.close()


# ------------------------------------------------------------------------------ memory

LONG = 48


def test_frame_cache_stays_bounded_on_a_long_video(checkpoint):
    """The session keeps at most ``cache_size`` preprocessed frames and one frame of backbone
    features, however long the video; per-frame state is the compact record (bf16 memory, one shared
    position encoding). A 256-px model input keeps this long video cheap."""
    predictor = build(checkpoint, image_size=256)
    frames = make_frames(LONG, 48, 64, seed=1)
    state = predictor.init_state(frames)
    loader = state.frames
    bound = loader.cache_size
    assert len(loader.cached_indices()) <= bound
    click(predictor, state, points=np.array([[20.0, 24.0]]))
    held = []
    for frame_idx, _, _ in predictor.propagate_in_video(state):
        held.append(len(loader.cached_indices()))
        assert state.cached_frame_idx == frame_idx
    assert len(held) == LONG
    assert max(held) <= bound, f"frame cache held {max(held)} frames (bound {bound})"
    assert all(i >= LONG - 1 - bound for i in loader.cached_indices()), "only recent frames are kept"

    outputs = stored_outputs(state)
    assert len(outputs) == LONG
    size = predictor.image_size
    for out in outputs:
        assert out.pred_masks.shape == (1, 1, size // 4, size // 4) and out.pred_masks.dtype == torch.float32
        assert out.maskmem_features.dtype == torch.bfloat16
        assert out.maskmem_features.shape[-2:] == (size // 16, size // 16)
        assert out.maskmem_pos_enc is outputs[0].maskmem_pos_enc, "the position encoding is stored once"
