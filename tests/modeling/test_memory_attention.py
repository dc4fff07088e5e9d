"""Memory attention: official state-dict layout and parity with the captured official calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2.config import MemoryAttentionConfig, get_preset
from sam2.config_yaml import load_yaml_config
from sam2.modeling.memory_attention import MemoryAttention
from tests import reference as R

MICRO = MemoryAttentionConfig(d_model=32, dim_feedforward=64, kv_in_dim=16)
PREFIX = "memory_attention."


@pytest.mark.parametrize("model", ["sam2.1_hiera_micro", "sam2_hiera_micro", "sam2.1_hiera_t"])
@R.requires_reference
def test_state_dict_matches_manifest(model: str) -> None:
    cfg = MICRO if "micro" in model else get_preset(model).memory_attention
    module = MemoryAttention(cfg)
    ours = [(k, list(v.shape)) for k, v in module.state_dict().items()]
    assert ours == R.manifest_entries(model, PREFIX)
    zeros = {k: torch.zeros(shape) for k, shape in R.manifest_entries(model, PREFIX)}
    module.load_state_dict(zeros, strict=True)


@R.requires_reference
def test_micro_yaml_gives_micro_config() -> None:
    path = R.REFERENCE_DIR / "configs" / "micro" / "sam2.1_hiera_micro.yaml"
    assert load_yaml_config(path).model.memory_attention == MICRO


@R.requires_reference
@pytest.mark.parametrize(("name", "index"), R.capture_cases("memory_attention"))
def test_matches_official_capture(name: str, index: int, record_error) -> None:
    sc = R.load_scenario(name)
    entry = sc.spec["memory_capture"]["memory_attention"][index]
    w = sc.spec["weights"]
    state = R.synth_module().synth_state_dict(str(R.manifest_path(sc.model)), seed=w["seed"],
                                             overrides=w.get("overrides") or None)
    module = MemoryAttention(MICRO).eval()
    module.load_state_dict(R.sub_state_dict(state, PREFIX), strict=True)

    def arg(key: str) -> torch.Tensor:
        ref = entry[key]
        array = sc.arrays[ref["npz_key"]]
        assert list(array.shape) == ref["shape"]
        return torch.from_numpy(array.astype(np.float32))

    n_ptr = entry["num_obj_ptr_tokens"]
    memory = arg("memory")
    assert (memory.shape[0] - n_ptr) % 4096 == 0
    with torch.no_grad():
        out = module(arg("curr"), memory, curr_pos=arg("curr_pos"), memory_pos=arg("memory_pos"),
                     num_obj_ptr_tokens=n_ptr)
    # The float16 storage of inputs and output alone accounts for about 2e-4.
    err = R.video_error(out, sc.expected(entry["output"]))
    record_error(name, "memory attention rel L2", err)
    assert err <= R.REL_L2_VIDEO, f"{name} output {index}: relative L2 error {err:.3g}"


def test_object_pointer_tokens_are_not_rotated() -> None:
    """Moving a pointer token changes nothing; moving a spatial token of a grid copy does."""
    torch.manual_seed(0)
    cfg = MemoryAttentionConfig(d_model=8, dim_feedforward=16, num_layers=1, kv_in_dim=4, feat_sizes=(4, 4))
    module = MemoryAttention(cfg).eval()
    curr, curr_pos = torch.randn(16, 2, 8), torch.randn(16, 2, 8)
    memory, memory_pos = torch.randn(32 + 3, 2, 4), torch.randn(32 + 3, 2, 4)
    with torch.no_grad():
        ref = module(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=3)
        perm_ptr = torch.cat([torch.arange(32), torch.tensor([34, 32, 33])])
        same = module(curr, memory[perm_ptr], curr_pos, memory_pos[perm_ptr], num_obj_ptr_tokens=3)
        swap_grids = torch.cat([torch.arange(16, 32), torch.arange(16), torch.arange(32, 35)])
        same_too = module(curr, memory[swap_grids], curr_pos, memory_pos[swap_grids], num_obj_ptr_tokens=3)
        perm_sp = torch.cat([torch.tensor([1, 0]), torch.arange(2, 35)])
        moved = module(curr, memory[perm_sp], curr_pos, memory_pos[perm_sp], num_obj_ptr_tokens=3)
    torch.testing.assert_close(same, ref)
    torch.testing.assert_close(same_too, ref)
    assert (moved - ref).abs().max() > 1e-4


def test_batch_mismatch_and_non_square_grid_raise() -> None:
    cfg = MemoryAttentionConfig(d_model=8, dim_feedforward=16, num_layers=1, kv_in_dim=4, feat_sizes=(4, 4))
    module = MemoryAttention(cfg).eval()
    with pytest.raises(ValueError, match="batch"):
        module(torch.randn(16, 2, 8), torch.randn(16, 1, 4))
    with pytest.raises(ValueError, match="square"):
        module(torch.randn(12, 1, 8), torch.randn(12, 1, 4))


def _micro_inputs(batch: int, memories: int = 2, pointers: int = 4, seed: int = 0):
    """Sequence-first inputs of the micro stack on its 64x64 grid: curr, curr_pos, memory, memory_pos."""
    g = torch.Generator().manual_seed(seed)
    hw, rows = 64 * 64, memories * 64 * 64 + pointers
    return (torch.randn(hw, 1, MICRO.d_model, generator=g), torch.randn(hw, 1, MICRO.d_model, generator=g),
            torch.randn(rows, batch, MICRO.kv_in_dim, generator=g), torch.randn(rows, batch, MICRO.kv_in_dim, generator=g))


def test_frame_queries_given_or_computed_give_the_same_bits() -> None:
    torch.manual_seed(0)
    module = MemoryAttention(MICRO).eval()
    curr, curr_pos, memory, memory_pos = _micro_inputs(batch=1)
    with torch.inference_mode():
        inside = module(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=4)
        queries = module.frame_queries(curr, curr_pos)
        given = module(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=4, queries=queries)
    assert queries.shape == (1, 64 * 64, MICRO.d_model)
    assert torch.equal(given, inside)


def test_queries_of_one_frame_are_shared_by_a_memory_batch() -> None:
    """Queries of batch 1 serve 3 objects' memories; each row equals that object attended alone."""
    torch.manual_seed(0)
    module = MemoryAttention(MICRO).eval()
    curr, curr_pos, memory, memory_pos = _micro_inputs(batch=3)
    with torch.inference_mode():
        queries = module.frame_queries(curr, curr_pos)
        shared = module(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=4, queries=queries)
        alone = [module(curr, memory[:, i:i + 1], curr_pos, memory_pos[:, i:i + 1], num_obj_ptr_tokens=4)
                 for i in range(3)]
    assert shared.shape == (64 * 64, 3, MICRO.d_model)
    for i, ref in enumerate(alone):
        torch.testing.assert_close(shared[:, i:i + 1], ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(alone[0], alone[1])  # the memories do differ per object


def test_queries_of_a_wrong_batch_are_refused() -> None:
    module = MemoryAttention(MICRO).eval()
    curr, curr_pos, memory, memory_pos = _micro_inputs(batch=3)
    queries = torch.zeros(2, 64 * 64, MICRO.d_model)
    with pytest.raises(ValueError, match="queries of batch 2 for memory of batch 3"):
        module(curr, memory, curr_pos, memory_pos, queries=queries)
    with pytest.raises(ValueError, match="batch sizes differ: curr 1, memory 3"):
        module(curr, memory, curr_pos, memory_pos)
