"""Bounded-memory mode of ``SAM2VideoPredictor.init_state``: same masks as the default mode, memory that
does not grow with the video, and clear errors where a released frame would be needed."""

from __future__ import annotations

import itertools
import warnings

import pytest

from sam2.tracking.eviction import ReleasedFrameError, ReleasedFrames, RetentionPolicy
from sam2.tracking.memory_selection import previous_frame
from tests import reference as R
from tests.streaming.stream_support import CLIP_FRAMES, held_outputs, micro, offline, prompt
from tests.video_api_support import assert_same_run, make_frames, propagate

pytestmark = R.requires_reference

N = CLIP_FRAMES  # frames: past the 16-frame pointer window



# ------------------------------------------------------------------------------ the retention rule

def frames_read(g: int, reverse: bool, nm: int, stride: int, ptrs: int) -> set[int]:
    """Tracked frames that the tracker's memory selection reads when it tracks frame ``g``."""
    if nm == 0:
        return set()
    read = {previous_frame(g, nm - t_pos, stride, reverse) for t_pos in range(1, nm)}
    step = 1 if reverse else -1
    read |= {g + step * d for d in range(1, ptrs)}
    return read


@pytest.mark.parametrize("nm,stride,ptrs", [(7, 1, 16), (7, 3, 4), (7, 2, 16), (3, 5, 1), (2, 1, 1), (1, 1, 6),
                                            (0, 1, 16), (7, 4, 2)])
@pytest.mark.parametrize("reverse", [False, True])
def test_retention_rule_keeps_exactly_what_later_frames_read(nm, stride, ptrs, reverse):
    """For every current frame f, a frame behind f is kept iff tracking f or a later frame reads it."""
    policy = RetentionPolicy(nm, stride, ptrs)
    sign = -1 if reverse else 1
    for f in range(0, 60):
        f = f * sign
        later = [f + sign * k for k in range(0, 3 * policy.window())]
        read = set().union(*(frames_read(g, reverse, nm, stride, ptrs) for g in later))
        for t in range(f - sign * 2 * policy.window(), f, sign):
            assert policy.still_needed(t, f, reverse) == (t in read), (f, t)
        assert policy.still_needed(f, f, reverse) and policy.still_needed(f + sign, f, reverse)


def test_released_frames_interval_set():
    released = ReleasedFrames()
    for t in itertools.chain(range(0, 10), range(20, 25), [15, 11, 13, 12, 14, 10]):
        released.add(t)
    assert released.intervals() == [(0, 15), (20, 24)]
    released.discard(7)
    released.discard(0)
    released.discard(24)
    released.discard(99)
    assert released.intervals() == [(1, 6), (8, 15), (20, 23)]
    assert 5 in released and 7 not in released and 0 not in released and "5" not in released
    released.add(7)
    assert released.intervals() == [(1, 15), (20, 23)]


# ------------------------------------------------------------------------------ same masks

@pytest.mark.parametrize("overrides", [(), ("++model.memory_temporal_stride_for_eval=3",
                                            "++model.max_obj_ptrs_in_encoder=4")], ids=["default", "stride3_ptrs4"])
def test_bounded_gives_the_same_masks_forward_and_back(checkpoint, frames, overrides):
    """Two objects (one prompted later), forward over the video, then backward from the last frame."""
    predictor = micro(checkpoint, *overrides)
    runs, held = [], []
    for bounded in (False, True):
        state = predictor.init_state(frames, bounded_memory=bounded)
        prompt(predictor, 1, 0, state)
        prompt(predictor, 2, 5, state)
        run = propagate(predictor, state)
        held.append(held_outputs(state))
        run += propagate(predictor, state, start_frame_idx=N - 1, reverse=True)
        runs.append(run)
    assert_same_run(runs[1], runs[0], "bounded vs default")
    policy = RetentionPolicy.from_model(predictor.model)
    assert held[0] == 2 * N
    assert held[1] <= 2 * (policy.window() + 1), f"bounded mode holds {held[1]} outputs"


def test_memory_does_not_grow_with_length(predictor, frames):
    state = predictor.init_state(frames, bounded_memory=True)
    prompt(predictor, 1, 0, state)
    counts = [held_outputs(state) for _ in predictor.propagate_in_video(state)]
    window = RetentionPolicy.from_model(predictor.model).window()
    assert max(counts) <= window + 1
    assert counts[-1] == counts[window + 5], "the number of held outputs must stop growing"
    obj = state.objects[0]
    assert len(obj.tracked) <= window + 1 and len(obj.released.intervals()) == 1


def test_tiny_weights_bounded_equals_default(tmp_path):
    """The same check on the SAM 2.1 tiny fixture weights (128-pixel input, 18 frames)."""
    sc = R.load_scenario("video_sam2.1_hiera_t_t_two_objects_short")
    from sam2.build_sam import build_sam2_video_predictor

    predictor = build_sam2_video_predictor(sc.config, sc.checkpoint(tmp_path), device="cpu",
                                           hydra_overrides_extra=["++model.image_size=128"])
    predictor.show_progress = False
    frames = make_frames(18)
    default = offline(predictor, frames, {0: [1, 2]})
    bounded = offline(predictor, frames, {0: [1, 2]}, bounded=True)
    assert_same_run(bounded, default, "tiny bounded vs default")


# ------------------------------------------------------------------------------ what it gives up

def test_refining_a_released_frame_raises_and_retracking_allows_it(predictor, frames):
    state = predictor.init_state(frames, bounded_memory=True)
    prompt(predictor, 1, 0, state)
    propagate(predictor, state)
    with pytest.raises(ReleasedFrameError, match="frame 5 of object 1 was tracked and then released"):
        prompt(predictor, 1, 5, state)
    # a kept frame whose own memory was released: also a clear error
    with pytest.raises(ReleasedFrameError, match="needs the output of frame [0-9] of object 1"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the dropped-correction notice comes first
        prompt(predictor, 1, 10, state)
    # re-tracking up to the frame makes it refinable again, with the default mode's result
    propagate(predictor, state, start_frame_idx=0, max_frame_num_to_track=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _, _, refined = prompt(predictor, 1, 5, state)
        ref_state = predictor.init_state(frames)
        prompt(predictor, 1, 0, ref_state)
        propagate(predictor, ref_state)
        _, _, expected = prompt(predictor, 1, 5, ref_state)
    assert (refined == expected).all()


def test_refining_the_last_tracked_frame_works(predictor, frames):
    """The frame where a pass stopped keeps everything its own tracking step reads."""
    results = []
    for bounded in (False, True):
        state = predictor.init_state(frames, bounded_memory=bounded)
        prompt(predictor, 1, 0, state)
        propagate(predictor, state, max_frame_num_to_track=20)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            results.append(prompt(predictor, 1, 20, state)[2])
    assert (results[0] == results[1]).all()


def test_tracking_back_over_released_frames_raises(predictor, frames):
    state = predictor.init_state(frames, bounded_memory=True)
    prompt(predictor, 1, 3, state)
    propagate(predictor, state)
    with pytest.raises(ReleasedFrameError, match="needs the output of frame [4-7] of object 1"):
        propagate(predictor, state, start_frame_idx=3, reverse=True)


def test_other_objects_on_a_released_frame_are_returned_empty_with_a_warning(predictor, frames):
    state = predictor.init_state(frames, bounded_memory=True)
    prompt(predictor, 1, 0, state)
    propagate(predictor, state)
    with pytest.warns(UserWarning, match="object 1 on frame 3 was released by bounded memory"):
        _, obj_ids, masks = prompt(predictor, 2, 3, state)
    assert obj_ids == [1, 2] and bool((masks[0] == -1024.0).all()) and bool((masks[1] > 0).any())


def test_default_mode_is_unchanged(predictor, frames):
    state = predictor.init_state(frames[:5])
    assert not state.bounded_memory and state.retention is None
    prompt(predictor, 1, 0, state)
    assert state.objects[0].released is None and type(state.objects[0].non_cond_outputs) is dict
