"""``StreamingSession``: frame-by-frame tracking gives ``propagate_in_video``'s masks bit for bit, objects
come and go on the current frame, memory stays bounded, and bad frames raise clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sam2.streaming import StreamingSession
from sam2.tracking.eviction import RetentionPolicy
from tests import reference as R
from tests.streaming.stream_support import (
    CLIP_FRAMES,
    assert_rows_equal,
    held_outputs,
    micro,
    offline,
    prompt,
    staged,
    streamed,
)
from tests.video_api_support import assert_same_run

pytestmark = R.requires_reference

N = CLIP_FRAMES



@pytest.fixture(scope="module")
def obj1_alone(predictor, frames):
    return offline(predictor, frames, {0: [1]})


def test_stream_equals_propagate_in_video_and_stays_bounded(predictor, frames):
    expected = offline(predictor, frames, {0: [1, 2]})
    session = StreamingSession(predictor)
    counts = []
    ours = []
    for frame in frames:
        result = session.track(frame)
        if result.frame_idx == 0:
            assert result.obj_ids == [] and result.masks.shape == (0, 1, 72, 96)
            prompt(session, 1)
            result = prompt(session, 2)
        ours.append((result.frame_idx, result.obj_ids, result.masks.clone()))
        counts.append(held_outputs(session.state))
    assert_same_run(ours, expected, "stream vs propagate_in_video")
    assert max(counts) <= 2 * (RetentionPolicy.from_model(predictor.model).window() + 1)
    assert counts[-1] == counts[-5], "held outputs must stop growing"
    assert session.frame_idx == N - 1 and session.frame_size == (72, 96)


def test_object_added_later_leaves_the_others_unchanged(predictor, frames, obj1_alone):
    """Adding objects 2 (click) and 3 (box) on frame 8 does not re-process frames 0..7, equals the
    offline session prompted the same way, and object 1's masks are those of object 1 alone."""
    prompts = {0: [1], 8: [2, 3]}
    ours = streamed(StreamingSession(predictor), frames, prompts)
    assert_same_run(ours, staged(predictor, frames, prompts), "stream vs staged propagation")
    for (f, ids, masks), (_, _, alone) in zip(ours, obj1_alone):
        assert ids == ([1] if f < 8 else [1, 2, 3])
        assert_rows_equal(masks[:1], alone, f"object 1 on frame {f}")


def test_first_object_on_a_later_frame(predictor, frames):
    prompts = {5: [2]}
    ours = streamed(StreamingSession(predictor), frames, prompts)
    assert all(ids == [] and m.shape[0] == 0 for _, ids, m in ours[:5])
    assert_same_run(ours[5:], staged(predictor, frames, prompts), "object first prompted on frame 5")


def test_refinements_as_conditioning_frames_with_max_cond_frames(checkpoint, frames):
    """Corrections on the current frame (kept as conditioning frames), with only the 2 nearest
    conditioning frames attended: old ones are released and the masks still equal the offline ones."""
    predictor = micro(checkpoint, "++model.add_all_frames_to_correct_as_cond=true",
                      "++model.max_cond_frames_in_attn=2")
    prompts = {0: [1], 2: [1], 4: [1], 6: [1], 21: [1]}
    session = StreamingSession(predictor)
    ours = streamed(session, frames, prompts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = staged(predictor, frames, prompts)
    assert_same_run(ours, expected, "refined stream vs staged propagation")
    assert sorted(session.state.objects[0].cond_outputs) == [4, 6, 21]


def test_refinement_kept_as_tracked_memory_by_default(predictor, frames, obj1_alone):
    session = StreamingSession(predictor)
    ours = streamed(session, frames[:13], {0: [1], 10: [1]})
    for f in range(10):
        assert_rows_equal(ours[f][2], obj1_alone[f][2], f"frame {f} before the refinement")
    assert not torch.equal(ours[10][2], obj1_alone[10][2]), "the refinement must change frame 10"
    assert not torch.equal(ours[12][2], obj1_alone[12][2]), "later frames track from the refined frame"


def test_remove_objects_down_to_none_and_start_again(predictor, frames, obj1_alone):
    session = StreamingSession(predictor)
    streamed(session, frames[:6], {0: [1, 2]})
    result = session.remove_object(2)
    assert result.frame_idx == 5 and result.obj_ids == [1]
    assert_rows_equal(result.masks, obj1_alone[5][2], "object 1 after removing object 2")
    after = session.track(frames[6])
    assert after.obj_ids == [1]
    assert_rows_equal(after.masks, obj1_alone[6][2], "object 1 tracked on after the removal")
    last = session.remove_object(1)
    assert last.obj_ids == [] and last.masks.shape == (0, 1, 72, 96) and session.state.objects == []
    empty = session.track(frames[7])
    assert empty.frame_idx == 7 and empty.obj_ids == [] and empty.masks.shape[0] == 0
    again = prompt(session, 2)
    assert again.obj_ids == [2] and bool((again.masks > 0).any())
    assert session.track(frames[8]).obj_ids == [2]
    with pytest.raises(KeyError, match="unknown object id 7; existing object ids: \\[2\\]"):
        session.remove_object(7)
    assert session.remove_object(7, strict=False).obj_ids == [2]


def test_frame_of_another_size_raises_and_the_stream_goes_on(predictor, frames, obj1_alone):
    session = StreamingSession(predictor)
    streamed(session, frames[:3], {0: [1]})
    bigger = np.zeros((80, 96, 3), np.uint8)
    with pytest.raises(ValueError, match="frame 3 has size 96x80 .* stream started with 96x72"):
        session.track(bigger)
    assert session.frame_idx == 2
    result = session.track(frames[3])
    assert result.frame_idx == 3
    assert_rows_equal(result.masks, obj1_alone[3][2], "frame 3 after the rejected frame")


def test_pil_frames_and_bad_inputs(predictor, frames, obj1_alone):
    from PIL import Image

    session = StreamingSession(predictor)
    with pytest.raises(RuntimeError, match="no frame yet; call track\\(frame\\) first"):
        prompt(session, 1)
    with pytest.raises(TypeError, match="frame 0: expected a numpy array or PIL image, got list"):
        session.track([[0, 0, 0]])
    with pytest.raises(ValueError, match="frame 0: expected dtype uint8, got float32"):
        session.track(frames[0].astype(np.float32))
    session.track(Image.fromarray(frames[0]))
    assert_rows_equal(prompt(session, 1).masks, obj1_alone[0][2], "PIL frame 0")
    with pytest.raises(ValueError, match="length_hint must be a positive int"):
        StreamingSession(predictor, length_hint=0)
    with pytest.raises(TypeError, match="SAM2VideoPredictor or a SAM2Base"):
        StreamingSession("model")


def test_short_video_with_length_hint(predictor, frames):
    """Below 16 frames the official tracker scales pointer encodings by the video length: the hint."""
    short = frames[:6]
    expected = offline(predictor, short, {0: [1]})
    ours = streamed(StreamingSession(predictor, length_hint=6), short, {0: [1]})
    assert_same_run(ours, expected, "6-frame video with length_hint=6")
    session = StreamingSession(predictor, length_hint=2)
    session.track(short[0])
    session.track(short[1])
    with pytest.raises(ValueError, match="frame 2 is beyond the length hint of 2 frames"):
        session.track(short[2])


def test_bare_model_session(predictor, frames):
    """A bare ``SAM2Base`` gets a predictor with the default options (no hole filling)."""
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    plain = SAM2VideoPredictor(predictor.model)
    plain.show_progress = False
    expected = offline(plain, frames[:4], {0: [1]})
    assert_same_run(streamed(StreamingSession(predictor.model, length_hint=4), frames[:4], {0: [1]}), expected, "bare model")


@pytest.mark.parametrize("image_size", [256, pytest.param(1024, marks=pytest.mark.slow)])
def test_tiny_weights_stream_equals_propagate_in_video(tmp_path, image_size):
    """SAM 2.1 tiny fixture weights on the fixture's video (2 objects), at a 256 input (seconds) and at
    the official 1024 (minutes on a CPU: marked slow)."""
    from sam2.build_sam import build_sam2_video_predictor
    from sam2.utils.video_decode import FolderSource

    sc = R.load_scenario("video_sam2.1_hiera_t_t_two_objects_short")
    predictor = build_sam2_video_predictor(sc.config, sc.checkpoint(tmp_path), device="cpu",
                                           hydra_overrides_extra=[f"++model.image_size={image_size}"])
    predictor.show_progress = False
    calls = {c["id"]: sc.decode_args(c) for c in sc.calls}
    init = calls["00_init_state"]
    source = FolderSource(R.Path(init["video_path"]))
    frames = [source.read(i) for i in range(3)]
    state = predictor.init_state(**init)
    first = predictor.add_new_points_or_box(state, **calls["01_add_new_points_or_box"])
    first = predictor.add_new_points_or_box(state, **calls["02_add_new_points_or_box"])
    expected = [(f, ids, m.clone()) for f, ids, m in predictor.propagate_in_video(state, max_frame_num_to_track=2)]
    session = StreamingSession(predictor, length_hint=len(source))
    session.track(frames[0])
    for key in ("01_add_new_points_or_box", "02_add_new_points_or_box"):
        args = dict(calls[key])
        args.pop("frame_idx")
        result = session.add_new_points_or_box(**args)
    assert_rows_equal(result.masks, first[2], "tiny prompt output")
    ours = [(0, result.obj_ids, result.masks)] + [
        (r.frame_idx, r.obj_ids, r.masks) for r in session.stream(frames[1:])]
    assert_same_run(ours, expected, "tiny stream vs propagate_in_video")


@pytest.mark.parametrize("delay", [0.07, 0.23])
def test_interrupted_frame_is_forgotten_and_the_stream_goes_on(predictor, frames, delay):
    """A real SIGALRM raising KeyboardInterrupt while frames are tracked: wherever it lands, feeding
    the stream on from the next frame gives the uninterrupted masks."""
    import signal

    expected = streamed(StreamingSession(predictor), frames[:12], {0: [1, 2]})

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    session = StreamingSession(predictor)
    ours = streamed(session, frames[:2], {0: [1, 2]})
    try:
        signal.setitimer(signal.ITIMER_REAL, delay)
        with pytest.raises(KeyboardInterrupt):
            for frame in frames[2:12]:
                result = session.track(frame)
                ours.append((result.frame_idx, result.obj_ids, result.masks.clone()))
            signal.pause()  # all frames were tracked before the alarm: wait for it
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if session.frame_idx == len(ours):  # it landed after track() returned: the frame was tracked
        result = session.current_result()
        ours.append((result.frame_idx, result.obj_ids, result.masks.clone()))
    assert session.frame_idx == len(ours) - 1
    for frame in frames[len(ours):12]:
        result = session.track(frame)
        ours.append((result.frame_idx, result.obj_ids, result.masks.clone()))
    assert_same_run(ours, expected, "stream interrupted once")
