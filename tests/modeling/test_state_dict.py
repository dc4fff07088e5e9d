"""Our ``state_dict()`` has exactly the official checkpoint layout (keys, order, shapes, dtypes).

Models are built on the ``meta`` device: no memory is allocated and even the large model builds in
a fraction of a second, while names, shapes, dtypes and parameter-vs-buffer are those of a real build.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from sam2.build_sam import build_sam2_video_predictor
from sam2.config_yaml import resolve_config
from sam2.modeling.sam2_base import SAM2Base
from tests import reference as R

pytestmark = R.requires_reference

OFFICIAL = [f"{v}_hiera_{s}" for v in ("sam2", "sam2.1") for s in ("t", "s", "b+", "l")]
MICRO = ["sam2_hiera_micro", "sam2.1_hiera_micro"]
ALL_MODELS = OFFICIAL + MICRO


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _layout(sd: dict[str, torch.Tensor]) -> list[tuple[str, list[int], str]]:
    return [(k, list(v.shape), _dtype_name(v)) for k, v in sd.items()]


def _manifest_layout(model: str) -> list[tuple[str, list[int], str]]:
    return [(e["name"], list(e["shape"]), e["dtype"]) for e in R.manifest(model)["keys"]]


def _build_meta(model: str) -> SAM2Base:
    cfg = resolve_config(R.config_for(model)).model
    with torch.device("meta"):
        return SAM2Base(cfg)


def _assert_same_layout(ours: list, ref: list, what: str) -> None:
    ours_keys, ref_keys = [k for k, _, _ in ours], [k for k, _, _ in ref]
    missing = [k for k in ref_keys if k not in set(ours_keys)]
    extra = [k for k in ours_keys if k not in set(ref_keys)]
    assert not missing and not extra, f"{what}: missing {missing[:5]}, extra {extra[:5]}"
    first = next((i for i, (a, b) in enumerate(zip(ours_keys, ref_keys)) if a != b), None)
    assert first is None, f"{what}: key order differs at {first}: {ours_keys[first]!r} vs {ref_keys[first]!r}"
    bad = [(a, b) for a, b in zip(ours, ref) if a != b]
    assert not bad, f"{what}: shape/dtype differs: {bad[:5]}"


@pytest.mark.parametrize("model", ALL_MODELS)
def test_state_dict_matches_manifest(model: str) -> None:
    net = _build_meta(model)
    man = R.manifest(model)
    sd = net.state_dict()
    assert next(iter(sd.values())).device.type == "meta"
    _assert_same_layout(_layout(sd), _manifest_layout(model), model)
    assert len(sd) == man["num_keys"]
    assert sum(p.numel() for p in net.parameters()) == man["num_parameters"]
    assert sum(v.numel() for v in sd.values()) == man["num_state_dict_elements"]
    # parameter vs buffer, and the class of the module owning each tensor (drives the weight synthesis)
    params = {k for k, _ in net.named_parameters()}
    owner = {}
    for mod_name, mod in net.named_modules():
        for name, _ in [*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False)]:
            owner[f"{mod_name}.{name}" if mod_name else name] = type(mod).__name__
    for entry in man["keys"]:
        kind = "parameter" if entry["name"] in params else "buffer"
        assert kind == entry["kind"], f"{entry['name']}: {kind} vs manifest {entry['kind']}"
        assert owner[entry["name"]] == entry["module"], entry["name"]
    assert [k for k in sd if k not in params] == man["buffers_in_state_dict"]


@pytest.mark.parametrize("model", ALL_MODELS)
def test_video_build_has_the_same_state_dict(model: str) -> None:
    with torch.device("meta"):
        predictor = build_sam2_video_predictor(R.config_for(model), device="meta")
    assert R.manifest(model)["video_predictor_build"]["same_key_order"]
    _assert_same_layout(_layout(predictor.state_dict()), _manifest_layout(model), f"{model} (video build)")


def test_meta_build_equals_cpu_build_layout() -> None:
    """Building on ``meta`` does not change the layout (checked once, on the micro model)."""
    cfg = resolve_config(R.config_for("sam2.1_hiera_micro")).model
    torch.manual_seed(0)
    cpu = SAM2Base(cfg)
    assert isinstance(cpu, nn.Module)
    assert _layout(cpu.state_dict()) == _layout(_build_meta("sam2.1_hiera_micro").state_dict())


@pytest.mark.parametrize("model", [*MICRO, "sam2.1_hiera_t"])
def test_synth_fingerprint(model: str) -> None:
    """Our copy of the weight synthesis reproduces the reference checksums (rel 1e-9)."""
    synth = R.synth_module()
    ref = json.loads((R.REFERENCE_DIR / "manifests" / "synth_fingerprints.json").read_text())
    expected = ref["fingerprints"][model]
    state = synth.synth_state_dict(R.manifest_path(model), seed=ref["seed"])
    assert _layout(state) == _manifest_layout(model)
    got = synth.fingerprint(state)
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-9), f"{model} {key}: {got[key]!r} vs {value!r}"
