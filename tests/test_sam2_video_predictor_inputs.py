"""SAM2VideoPredictor through its public API: every frame source, and bad inputs.

Same frames from any lossless source must give bit-identical tracking; a bad video, frame index,
object id or prompt must raise a clear error and leave the session exactly as it was.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests import reference as R
from tests.video_api_support import (
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
    write_checkpoint,
    write_mp4,
)

pytestmark = R.requires_reference


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return build(write_checkpoint(tmp_path_factory.mktemp("ckpt")))


@pytest.fixture(scope="module")
def frames():
    return make_frames()


def track(predictor, video) -> tuple[torch.Tensor, list]:
    """Open ``video``, click on frame 0, propagate: (prompt masks, propagation yields)."""
    state = predictor.init_state(video)
    assert (state.num_frames, state.video_height, state.video_width) == (NUM_FRAMES, H, W)
    _, obj_ids, masks = click(predictor, state)
    assert obj_ids == [1]
    return masks.clone(), propagate(predictor, state)


@pytest.fixture(scope="module")
def reference_run(predictor, frames):
    """Tracking on the list of uint8 arrays: what every lossless source must reproduce."""
    return track(predictor, frames)


# ------------------------------------------------------------------------------ frame sources

def _png_folder(frames, tmp_path):
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"{i:05d}.png")
    return str(tmp_path)


SOURCES = {
    "numpy_stack": lambda frames, tmp_path: np.stack(frames),
    "pil_images": lambda frames, tmp_path: [Image.fromarray(f) for f in frames],
    "png_folder": _png_folder,
    "png_folder_pathlike": lambda frames, tmp_path: type(tmp_path)(_png_folder(frames, tmp_path)),
    "tuple_of_arrays": lambda frames, tmp_path: tuple(f.copy() for f in frames),
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_lossless_sources_track_identically(source, predictor, frames, reference_run, tmp_path):
    masks, run = track(predictor, SOURCES[source](frames, tmp_path))
    ref_masks, ref_run = reference_run
    assert torch.equal(masks, ref_masks)
    assert_same_run(run, ref_run, source)
    assert [f for f, _, _ in run] == list(range(NUM_FRAMES))
    assert all(m.shape == (1, 1, H, W) for _, _, m in run)


def test_jpeg_folder_tracks_like_its_decoded_frames(predictor, frames, tmp_path):
    """JPEG is lossy: the folder must track exactly like the arrays PIL decodes from its files."""
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"{i}.jpg", quality=90)
    decoded = [np.asarray(Image.open(tmp_path / f"{i}.jpg").convert("RGB")) for i in range(NUM_FRAMES)]
    assert not np.array_equal(decoded[0], frames[0])  # really lossy: the test compares the right thing
    masks, run = track(predictor, str(tmp_path))
    ref_masks, ref_run = track(predictor, decoded)
    assert torch.equal(masks, ref_masks)
    assert_same_run(run, ref_run, "jpeg folder")


def test_mp4_file_and_bytes(predictor, frames, tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", frames)
    state = predictor.init_state(str(path))
    assert (state.num_frames, state.video_height, state.video_width) == (NUM_FRAMES, H, W)
    assert (state["num_frames"], state["video_height"], state["video_width"]) == (NUM_FRAMES, H, W)
    # lossy, but recognisably the same picture
    err = np.abs(state.frames.raw_frame(3).astype(np.int16) - frames[3].astype(np.int16)).mean()
    assert err < 12, f"decoded frame 3 is far from the encoded one (mean abs error {err:.1f})"
    _, obj_ids, masks = click(predictor, state)
    assert obj_ids == [1] and masks.shape == (1, 1, H, W) and masks.dtype == torch.float32
    run = propagate(predictor, state)
    assert [f for f, _, _ in run] == list(range(NUM_FRAMES))
    for _, ids, m in run:
        assert ids == [1] and m.shape == (1, 1, H, W) and torch.isfinite(m).all()
    from_bytes = predictor.init_state(path.read_bytes())
    assert (from_bytes.num_frames, from_bytes.video_height, from_bytes.video_width) == (NUM_FRAMES, H, W)


# ------------------------------------------------------------------------------ bad video sources

def _write_text_as_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 10)
    return str(path)


def _empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return str(tmp_path / "empty")


def _folder_without_images(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "readme.txt").write_text("no frames here")
    return str(folder)


def _single_image(tmp_path):
    Image.fromarray(make_frames(1)[0]).save(tmp_path / "one.png")
    return str(tmp_path / "one.png")


BAD_SOURCES = [
    ("empty_folder", _empty_folder, ValueError, "no image frames"),
    ("folder_without_images", _folder_without_images, ValueError, "no image frames"),
    ("text_renamed_mp4", _write_text_as_mp4, ValueError, "cannot read video .*notes.mp4"),
    ("garbage_bytes", lambda tmp_path: b"\x00\x01garbage" * 100, ValueError, "cannot read video"),
    ("missing_path", lambda tmp_path: str(tmp_path / "missing.mp4"), FileNotFoundError, "missing.mp4"),
    ("single_image", _single_image, ValueError, "single image"),
    ("empty_list", lambda tmp_path: [], ValueError, "empty"),
    ("float_frames", lambda tmp_path: [np.zeros((H, W, 3), np.float32)], ValueError, "uint8"),
    ("grey_frames", lambda tmp_path: [np.zeros((H, W), np.uint8)], ValueError, r"\(H, W, 3\)"),
    ("mixed_sizes", lambda tmp_path: [np.zeros((H, W, 3), np.uint8), np.zeros((H, W + 2, 3), np.uint8)],
     ValueError, "same size"),
    ("not_a_video", lambda tmp_path: 42, TypeError, "unsupported video input"),
]


@pytest.fixture(scope="module")
def prompted(predictor):
    """A session with object 1 clicked on frame 0 and tracked, and object 2 clicked on frame 2
    (pending: not yet propagated), so it holds prompts, stored and pending outputs."""
    state = predictor.init_state(make_frames())
    click(predictor, state)
    propagate(predictor, state)
    click(predictor, state, frame_idx=2, obj_id=2, points=np.array([[60.0, 40.0]]), labels=np.array([1]))
    return state


@pytest.mark.parametrize("name,make,exc,match", BAD_SOURCES, ids=[b[0] for b in BAD_SOURCES])
def test_bad_video_source_raises_clear_error(name, make, exc, match, predictor, prompted, tmp_path):
    before = snapshot(prompted)
    with pytest.raises(exc, match=match):
        predictor.init_state(make(tmp_path))
    assert_same_snapshot(snapshot(prompted), before)  # other sessions of the predictor untouched


# ------------------------------------------------------------------------------ bad calls

N = NUM_FRAMES
PT = np.array([[40.0, 30.0]], dtype=np.float32)
LB = np.array([1], dtype=np.int32)
MASK = np.zeros((H, W), dtype=bool)
MASK[20:40, 30:60] = True


def add(frame_idx=1, obj_id=1, **kw):
    kw.setdefault("points", PT)
    kw.setdefault("labels", LB)
    return lambda p, s: p.add_new_points_or_box(s, frame_idx=frame_idx, obj_id=obj_id, **kw)


def add_mask(frame_idx=1, obj_id=1, mask=MASK):
    return lambda p, s: p.add_new_mask(s, frame_idx=frame_idx, obj_id=obj_id, mask=mask)


def prop(**kw):
    return lambda p, s: list(p.propagate_in_video(s, **kw))


def clear(frame_idx=0, obj_id=1):
    return lambda p, s: p.clear_all_prompts_in_frame(s, frame_idx=frame_idx, obj_id=obj_id)


BAD_CALLS = [
    # frame indices
    ("points_frame_negative", add(frame_idx=-1), IndexError, "out of range"),
    ("points_frame_too_large", add(frame_idx=N), IndexError, "out of range"),
    ("points_frame_numpy_too_large", add(frame_idx=np.int64(N + 5)), IndexError, "out of range"),
    ("points_frame_float", add(frame_idx=1.0), TypeError, "frame_idx must be an int"),
    ("mask_frame_negative", add_mask(frame_idx=-1), IndexError, "out of range"),
    ("mask_frame_too_large", add_mask(frame_idx=N), IndexError, "out of range"),
    ("propagate_start_negative", prop(start_frame_idx=-1), IndexError, "start_frame_idx"),
    ("propagate_start_too_large", prop(start_frame_idx=N), IndexError, "start_frame_idx"),
    ("propagate_reverse_start_too_large", prop(start_frame_idx=N + 3, reverse=True), IndexError, "start_frame_idx"),
    ("propagate_negative_max_frames", prop(max_frame_num_to_track=-1), ValueError, "max_frame_num_to_track"),
    ("propagate_float_max_frames", prop(max_frame_num_to_track=2.5), TypeError, "max_frame_num_to_track must be an int"),
    ("propagate_str_max_frames", prop(max_frame_num_to_track="3"), TypeError, "max_frame_num_to_track must be an int"),
    ("clear_frame_negative", clear(frame_idx=-1), IndexError, "out of range"),
    ("clear_frame_too_large", clear(frame_idx=N), IndexError, "out of range"),
    # object ids
    ("clear_unknown_object", clear(obj_id=99), ValueError, "unknown object id 99"),
    ("remove_unknown_object_strict", lambda p, s: p.remove_object(s, 99, strict=True), RuntimeError,
     "Cannot remove object id 99"),
    ("points_obj_id_float", add(obj_id=1.5), TypeError, "obj_id"),
    ("points_obj_id_none", add(obj_id=None), TypeError, "obj_id"),
    # malformed clicks (a new object id, so a leak would register it)
    ("points_three_coords", add(obj_id=7, points=np.ones((1, 3)), labels=LB), ValueError, "point_coords"),
    ("points_1d", add(obj_id=7, points=np.array([40.0, 30.0]), labels=LB), ValueError, "point_coords"),
    ("points_batch_of_two", add(obj_id=7, points=np.ones((2, 1, 2)), labels=np.ones((2, 1))), ValueError,
     r"\(N, 2\)"),
    ("points_labels_mismatch", add(obj_id=7, points=np.ones((2, 2)), labels=LB), ValueError, "point_labels"),
    ("points_nan", add(obj_id=7, points=np.array([[np.nan, 3.0]])), ValueError, "NaN"),
    ("points_inf", add(obj_id=1, points=np.array([[np.inf, 3.0]])), ValueError, "NaN or infinite"),
    ("labels_four", add(obj_id=7, labels=np.array([4])), ValueError, "-1 .padding., 0 .background., 1"),
    ("labels_minus_two", add(obj_id=1, labels=np.array([-2])), ValueError, "-1 .padding., 0 .background., 1"),
    ("labels_fractional", add(obj_id=7, labels=np.array([0.5])), ValueError, "integers"),
    ("labels_without_points", add(obj_id=7, points=None, labels=LB), ValueError, "together"),
    ("points_without_labels", add(obj_id=7, points=PT, labels=None), ValueError, "together"),
    ("no_points_no_box", add(obj_id=7, points=None, labels=None), ValueError, "at least one of points or box"),
    ("points_strings", add(obj_id=7, points=[["a", "b"]]), ValueError, "numeric"),
    # malformed boxes
    ("box_three_values", add(obj_id=7, points=None, labels=None, box=np.array([1.0, 2.0, 3.0])), ValueError, "box"),
    ("box_two_boxes", add(obj_id=7, points=None, labels=None, box=np.ones((2, 4))), ValueError, "4 values"),
    ("box_nan", add(obj_id=7, points=None, labels=None, box=np.array([1.0, np.nan, 3.0, 4.0])), ValueError, "NaN"),
    ("box_without_clearing", add(obj_id=1, box=np.array([1.0, 2.0, 30.0, 40.0]), clear_old_points=False),
     ValueError, "cannot add box without clearing old points"),
    # malformed masks
    ("mask_3d", add_mask(obj_id=7, mask=np.ones((1, H, W), bool)), ValueError, "2-D"),
    ("mask_1d", add_mask(obj_id=7, mask=np.ones(W, bool)), ValueError, "2-D"),
    ("mask_empty", add_mask(obj_id=7, mask=np.zeros((0, 0), bool)), ValueError, "non-empty"),
    ("mask_nan_tensor", add_mask(obj_id=1, mask=torch.full((H, W), float("nan"))), ValueError, "NaN"),
    ("mask_ragged", add_mask(obj_id=7, mask=[[1, 0], [1]]), ValueError, "could not be read"),
]


@pytest.mark.parametrize("name,call,exc,match", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_call_raises_and_leaves_session_unchanged(name, call, exc, match, predictor, prompted):
    before = snapshot(prompted)
    with pytest.raises(exc, match=match):
        call(predictor, prompted)
    assert_same_snapshot(snapshot(prompted), before)


def test_unknown_object_without_strict_is_a_no_op(predictor, prompted):
    before = snapshot(prompted)
    obj_ids, updated = predictor.remove_object(prompted, 99)
    assert obj_ids == [1, 2] and updated == []
    assert_same_snapshot(snapshot(prompted), before)


def test_propagation_after_bad_calls_equals_a_clean_session(predictor, frames):
    """A session that saw every bad call tracks exactly like one that never did."""

    def setup():
        state = predictor.init_state(frames)
        click(predictor, state)
        first = propagate(predictor, state, max_frame_num_to_track=2)
        click(predictor, state, frame_idx=2, obj_id=2, points=np.array([[60.0, 40.0]]), labels=np.array([1]))
        return state, first

    clean, clean_first = setup()
    clean_run = propagate(predictor, clean)

    noisy, noisy_first = setup()
    assert_same_run(noisy_first, clean_first, "before the bad calls")
    for name, call, exc, _ in BAD_CALLS:
        with pytest.raises(exc):
            call(predictor, noisy)
        assert noisy.obj_ids == [1, 2], f"{name} changed the object ids"
    noisy_run = propagate(predictor, noisy)
    assert_same_run(noisy_run, clean_run, "after the bad calls")
    assert_same_snapshot(snapshot(noisy), snapshot(clean))
    assert [ids for _, ids, _ in noisy_run] == [[1, 2]] * NUM_FRAMES


# ------------------------------------------------------------------------------ failures after validation

@pytest.fixture
def folder_session(predictor, frames, tmp_path):
    """A PNG-folder session: object 1 clicked on frame 0 and tracked to frame 1, object 2 clicked
    on frame 1 (pending); then frame 2's file is damaged (frames are read lazily)."""
    state = predictor.init_state(_png_folder(frames, tmp_path))
    click(predictor, state)
    propagate(predictor, state, max_frame_num_to_track=1)
    click(predictor, state, frame_idx=1, obj_id=2, points=np.array([[60.0, 40.0]]), labels=np.array([1]))
    good = (tmp_path / "00002.png").read_bytes()
    (tmp_path / "00002.png").write_bytes(b"not a png")
    return state, tmp_path / "00002.png", good


UNREADABLE_FRAME_CALLS = [
    ("new_object_points", add(frame_idx=2, obj_id=7)),
    ("new_object_box", add(frame_idx=2, obj_id="car", points=None, labels=None, box=np.array([5.0, 5, 30, 30]))),
    ("new_object_mask", add_mask(frame_idx=2, obj_id=7)),
    ("existing_object_points_added", add(frame_idx=2, obj_id=1, clear_old_points=False)),
    ("existing_object_mask", add_mask(frame_idx=2, obj_id=2)),
]


@pytest.mark.parametrize("name,call", UNREADABLE_FRAME_CALLS, ids=[c[0] for c in UNREADABLE_FRAME_CALLS])
def test_prompt_on_unreadable_frame_leaves_no_phantom(name, call, predictor, frames, folder_session):
    state, damaged, good = folder_session
    before = snapshot(state)
    with pytest.raises((OSError, ValueError, RuntimeError), match="00002"):
        call(predictor, state)
    assert_same_snapshot(snapshot(state), before)
    damaged.write_bytes(good)  # the session still tracks: no phantom object blocks propagation
    run = propagate(predictor, state)
    assert [ids for _, ids, _ in run] == [[1, 2]] * NUM_FRAMES


def test_interrupted_prompt_on_existing_object_restores_its_inputs(predictor, folder_session, monkeypatch):
    state, _, _ = folder_session
    before = snapshot(state)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(predictor, "_run_frame", interrupted)
    with pytest.raises(KeyboardInterrupt):
        click(predictor, state, frame_idx=1, obj_id=2, points=np.array([[10.0, 10.0]]), labels=np.array([0]),
              clear_old_points=False)
    assert_same_snapshot(snapshot(state), before)


# ------------------------------------------------------------------------------ official private helpers

def test_official_scripts_private_helpers(predictor):
    """``tools/vos_inference.py --track_object_appearing_later_in_video`` merges per-object logits with
    ``predictor._apply_non_overlapping_constraints``: highest object per pixel wins (first on ties),
    the others are clamped to at most -10; a single object is returned as is."""
    scores = torch.tensor([[1.0, 3.0, -2.0, -20.0], [1.0, 2.0, 4.0, -30.0]]).reshape(2, 1, 1, 4)
    out = predictor._apply_non_overlapping_constraints(scores)
    assert out[:, 0, 0].tolist() == [[1.0, 3.0, -10.0, -20.0], [-10.0, -10.0, 4.0, -30.0]]
    single = torch.ones(1, 1, 2, 2)
    assert predictor._apply_non_overlapping_constraints(single) is single
    assert predictor.model._apply_non_overlapping_constraints(scores).equal(out)  # SAM2Base has it too
