"""OnnxVideoPredictor beyond the fixtures: the memory-bank rules against the PyTorch tracker, a run with
torch imports blocked, bad input. (Growing memory and pointer counts: the parity test of scenario b.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sam2.export import memory_bank as MB
from sam2.tracking import memory_selection, object_pointers
from tests import reference as R
from tests.export.video_export_support import exported

pytest.importorskip("onnxruntime")
pytestmark = R.requires_reference

SCENARIO = "video_sam2.1_hiera_micro_c_reverse"  # weights with objects present on tracked frames


def frames(n: int) -> np.ndarray:
    """The first ``n`` frames of the fixture clip ``(n, 180, 320, 3)`` uint8."""
    decoded = R.decoded_inputs()
    keys = sorted(k for k in decoded if k.startswith("video/bedroom_a/") and k[-5:].isdigit())
    return np.stack([decoded[k] for k in keys[:n]])


class Rec:
    def __init__(self, t: int) -> None:
        self.obj_ptr = np.full((1, 4), float(t), np.float32)


@pytest.mark.parametrize("stride,reverse,max_cond", [(1, False, -1), (3, False, 2), (2, True, 2), (1, True, -1)])
def test_memory_selection_follows_the_pytorch_tracker(stride, reverse, max_cond):
    cond = {t: Rec(t) for t in (0, 9, 17)}
    non_cond = {t: Rec(t) for t in range(30) if t not in cond}
    s = MB.MemorySettings(num_maskmem=7, max_cond_frames_in_attn=max_cond, memory_temporal_stride_for_eval=stride,
                          max_obj_ptrs_in_encoder=16, use_signed_tpos_enc_to_obj_ptrs=True)
    for frame in (1, 8, 12, 20, 29):
        sel, unsel = MB.select_closest_cond_frames(frame, cond, max_cond)
        assert (sel, unsel) == memory_selection.select_closest_cond_frames(frame, cond, max_cond)
        ours = MB.memory_frames(frame, sel, unsel, non_cond, s, reverse)
        theirs = memory_selection.memory_frames(frame, sel, unsel, non_cond, 7, stride, reverse)
        assert [(t, r.obj_ptr[0, 0]) for t, r in ours] == [(t, r.obj_ptr[0, 0]) for t, r in theirs]
        ours_p = MB.collect_pointers(frame, sel, unsel, non_cond, 30, s, reverse)
        theirs_p = object_pointers.collect_pointers(frame, sel, unsel, non_cond, 30, 16, True, True, reverse)
        assert [(d, p[0, 0]) for d, p in ours_p] == [(d, p[0, 0]) for d, p in theirs_p]


def test_sine_encoding_and_bfloat16_match_torch():
    pos = np.array([-3, 0, 1, 7, 15], np.float32) / np.float32(15)
    ref = object_pointers.get_1d_sine_pe(torch.from_numpy(pos), 32).numpy()
    np.testing.assert_allclose(MB.sine_encoding(pos, 32), ref, rtol=0, atol=2e-6)
    x = torch.randn(4096) * 50
    assert np.array_equal(MB.to_bfloat16(x.numpy()), x.to(torch.bfloat16).float().numpy())


NO_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, Block())
import numpy as np
from sam2.export import OnnxVideoPredictor
frames = np.load(sys.argv[2])
p = OnnxVideoPredictor(sys.argv[1], num_threads=1)
state = p.init_state(frames)
_, ids, masks = p.add_new_points_or_box(state, 1, "a", points=[[100, 50]], labels=[1])
out = list(p.propagate_in_video(state, max_frame_num_to_track=2))
assert [f for f, _, _ in out] == [1, 2, 3] and out[0][2].shape == (1, 1, 180, 320), out
assert "torch" not in sys.modules
print("ok", ids)
"""


def test_runtime_runs_without_torch(tmp_path):
    sc = R.load_scenario(SCENARIO)
    video = tmp_path / "frames.npy"
    np.save(video, frames(4))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(NO_TORCH), str(exported(sc)), str(video)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok ['a']" in proc.stdout


def test_bad_inputs_raise_clear_errors():
    from sam2.export.runtime_video import OnnxVideoPredictor

    p = OnnxVideoPredictor(exported(R.load_scenario(SCENARIO)), num_threads=1)
    state = p.init_state(frames(3))
    with pytest.raises(ValueError, match="frame_idx 3 is out of range"):
        p.add_new_points_or_box(state, 3, 1, points=[[1, 2]], labels=[1])
    with pytest.raises(ValueError, match="points and labels must be provided together"):
        p.add_new_points_or_box(state, 0, 1, points=[[1, 2]])
    with pytest.raises(ValueError, match="cannot add box without clearing old points"):
        p.add_new_points_or_box(state, 0, 1, box=[1, 2, 3, 4], clear_old_points=False)
    with pytest.raises(ValueError, match="2-D"):
        p.add_new_mask(state, 0, 1, np.zeros((2, 3, 4)))
    with pytest.raises(RuntimeError, match="No input points or masks"):
        list(p.propagate_in_video(state))
    with pytest.raises(ValueError, match="uint8"):
        p.init_state(np.zeros((2, 8, 8, 3), np.float32))
    assert state.obj_ids == []  # nothing was half-added
