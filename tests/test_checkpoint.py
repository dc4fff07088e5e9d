"""Checkpoint round trip through ``build_sam2`` and the loader's error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sam2.build_sam import build_sam2, build_sam2_video_predictor
from sam2.checkpoint import SAM21_ONLY_KEYS, CheckpointError, load_into, read_state_dict
from sam2.config import get_preset
from sam2.modeling.sam2_base import SAM2Base
from tests import reference as R

pytestmark = R.requires_reference

MICRO20, MICRO21 = "sam2_hiera_micro", "sam2.1_hiera_micro"


@pytest.fixture(scope="module")
def micro_ckpts(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    return {m: R.write_checkpoint(d / f"{m}.pt", m, seed=3) for m in (MICRO20, MICRO21)}


@pytest.fixture(scope="module")
def tiny20_ckpt(tmp_path_factory) -> Path:
    """A full-size ``sam2_hiera_t`` checkpoint (150 MB) for the errors that name an official config."""
    return R.write_checkpoint(tmp_path_factory.mktemp("tiny") / "sam2_hiera_tiny.pt", "sam2_hiera_t")


def _state(model: str, seed: int = 3) -> dict[str, torch.Tensor]:
    return R.synth_module().synth_state_dict(R.manifest_path(model), seed=seed)


def _build_meta(config: str, ckpt) -> None:
    """``build_sam2`` on the meta device: only the checks before the actual copy run (cheap)."""
    with torch.device("meta"):
        build_sam2(config, ckpt, device="meta")


# ------------------------------------------------------------------------------ round trip

@pytest.mark.parametrize("model", [MICRO20, MICRO21])
def test_round_trip_loads_strictly_and_exactly(micro_ckpts, model: str) -> None:
    expected = _state(model)
    net = build_sam2(R.config_for(model), micro_ckpts[model], device="cpu")
    got = net.state_dict()
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    assert not net.training


def test_video_build_loads_the_same_checkpoint(micro_ckpts) -> None:
    expected = _state(MICRO21)
    predictor = build_sam2_video_predictor(R.config_for(MICRO21), micro_ckpts[MICRO21], device="cpu")
    got = predictor.state_dict()
    assert all(torch.equal(got[k], v) for k, v in expected.items())


def test_no_checkpoint_keeps_initial_weights() -> None:
    torch.manual_seed(0)
    a = build_sam2(R.config_for(MICRO21), None, device="cpu")
    assert isinstance(a, SAM2Base)


# ------------------------------------------------------------------------------ unreadable files

def test_missing_file_names_path_and_where_to_get_checkpoints(tmp_path) -> None:
    path = tmp_path / "nowhere" / "sam2.1_hiera_tiny.pt"
    with pytest.raises(FileNotFoundError) as info:
        build_sam2(R.config_for(MICRO21), path, device="cpu")
    msg = str(info.value)
    assert str(path) in msg
    assert "Hugging Face" in msg and "facebook/sam2.1-hiera-tiny" in msg
    assert "dl.fbaipublicfiles.com/segment_anything_2" in msg


def test_truncated_file(tmp_path, micro_ckpts) -> None:
    data = micro_ckpts[MICRO21].read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as info:
        build_sam2(R.config_for(MICRO21), path, device="cpu")
    assert str(path) in str(info.value)


def test_garbage_file(tmp_path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a checkpoint\n" * 10)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def test_file_without_model_key(tmp_path) -> None:
    path = tmp_path / "no_model.pt"
    torch.save({"state_dict": _state(MICRO21), "epoch": 3}, path)
    with pytest.raises(CheckpointError) as info:
        build_sam2(R.config_for(MICRO21), path, device="cpu")
    msg = str(info.value)
    assert str(path) in msg and "'model'" in msg and "state_dict" in msg and "epoch" in msg


def test_file_that_is_not_a_dict(tmp_path) -> None:
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="no 'model' state dict"):
        read_state_dict(path)


# ------------------------------------------------------------------------------ wrong model

def test_sam20_checkpoint_with_sam21_config(micro_ckpts) -> None:
    with pytest.raises(CheckpointError) as info:
        build_sam2(R.config_for(MICRO21), micro_ckpts[MICRO20], device="cpu")
    msg = str(info.value)
    assert "SAM 2.0 checkpoint but the config is SAM 2.1" in msg
    assert str(micro_ckpts[MICRO20]) in msg and R.config_for(MICRO21) in msg
    for key in SAM21_ONLY_KEYS:
        assert key in msg


def test_sam21_checkpoint_with_sam20_config(micro_ckpts) -> None:
    with pytest.raises(CheckpointError) as info:
        build_sam2(R.config_for(MICRO20), micro_ckpts[MICRO21], device="cpu")
    msg = str(info.value)
    assert "SAM 2.1 checkpoint but the config is SAM 2.0" in msg
    assert "unexpected keys" in msg and "obj_ptr_tpos_proj.weight" in msg


def test_official_sam20_checkpoint_with_sam21_config_names_fitting_config(tiny20_ckpt) -> None:
    with pytest.raises(CheckpointError) as info:
        _build_meta("configs/sam2.1/sam2.1_hiera_t.yaml", tiny20_ckpt)
    msg = str(info.value)
    assert "SAM 2.0 checkpoint but the config is SAM 2.1" in msg
    assert "'configs/sam2/sam2_hiera_t.yaml'" in msg


def test_tiny_checkpoint_with_large_config_names_fitting_config(tiny20_ckpt) -> None:
    with pytest.raises(CheckpointError) as info:
        _build_meta("configs/sam2/sam2_hiera_l.yaml", tiny20_ckpt)
    msg = str(info.value)
    assert "does not fit config configs/sam2/sam2_hiera_l.yaml" in msg
    assert "'configs/sam2/sam2_hiera_t.yaml'" in msg
    assert "shape mismatches" in msg and "image_encoder.trunk.patch_embed.proj.weight" in msg


def test_official_sam21_state_with_sam20_config_names_fitting_config() -> None:
    """The reverse direction with a 2.1 tiny state dict (2.0 tiny weights plus the three 2.1 keys)."""
    synth = R.synth_module()
    entries = {e["name"]: e for e in R.manifest("sam2.1_hiera_t")["keys"]}
    with torch.device("meta"):
        state = SAM2Base(get_preset("sam2.1_hiera_t")).state_dict()
    state.update({k: synth.synth_tensor(entries[k]) for k in SAM21_ONLY_KEYS})
    with torch.device("meta"):
        model = SAM2Base(get_preset("sam2_hiera_t"))
    with pytest.raises(CheckpointError) as info:
        load_into(model, state, "sam2.1_hiera_tiny.pt", "configs/sam2/sam2_hiera_t.yaml")
    msg = str(info.value)
    assert "SAM 2.1 checkpoint but the config is SAM 2.0" in msg
    assert "'configs/sam2.1/sam2.1_hiera_t.yaml'" in msg


def test_extra_and_missing_keys_are_named(tmp_path) -> None:
    state = _state(MICRO21)
    del state["sam_mask_decoder.iou_token.weight"]
    state["my_head.weight"] = torch.zeros(3)
    path = tmp_path / "edited.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as info:
        build_sam2(R.config_for(MICRO21), path, device="cpu")
    msg = str(info.value)
    assert "missing keys: sam_mask_decoder.iou_token.weight" in msg
    assert "unexpected keys: my_head.weight" in msg
    assert "SAM 2.0" not in msg and "SAM 2.1 checkpoint" not in msg


def test_mis_shaped_key_is_named(tmp_path) -> None:
    state = _state(MICRO21)
    state["no_mem_embed"] = torch.zeros(1, 1, 31)
    path = tmp_path / "mis_shaped.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match=r"no_mem_embed: checkpoint \(1, 1, 31\) vs model \(1, 1, 32\)"):
        build_sam2(R.config_for(MICRO21), path, device="cpu")


# ------------------------------------------------------------------------------ damaged values (issue 12)

def _edited(tmp_path: Path, edit) -> Path:
    state = _state(MICRO21)
    edit(state)
    path = tmp_path / "edited.pt"
    torch.save({"model": state}, path)
    return path


@pytest.mark.parametrize(("edit", "pattern"), [
    (lambda s: s.__setitem__("no_mem_embed", torch.zeros(1, 1, 32, dtype=torch.int64)),
     r"no_mem_embed: dtype torch.int64 where the model holds torch.float32"),
    (lambda s: s["sam_mask_decoder.iou_token.weight"].view(-1)[3:5].fill_(float("nan")),
     r"sam_mask_decoder.iou_token.weight: NaN or infinite values"),
    (lambda s: s["no_mem_embed"].view(-1)[0:1].fill_(float("inf")), r"no_mem_embed: NaN or infinite values"),
    (lambda s: s.__setitem__("no_mem_embed", [0.0] * 32), r"no_mem_embed \(list\) are not tensors"),
    (lambda s: s.__setitem__("maskmem_tpos_enc", "weights"), r"maskmem_tpos_enc \(str\) are not tensors"),
])
def test_unusable_weights_are_named_and_nothing_loads(tmp_path, edit, pattern) -> None:
    path = _edited(tmp_path, edit)
    with pytest.raises(CheckpointError, match=pattern):
        build_sam2(R.config_for(MICRO21), path, device="cpu")
    net = build_sam2(R.config_for(MICRO21), device="cpu")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(CheckpointError, match=pattern):
        load_into(net, read_state_dict(path), str(path), "micro")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # nothing was copied in
