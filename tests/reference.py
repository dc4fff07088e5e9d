"""One helper for the golden reference data in ``../shared/reference`` (fixtures, manifests, weights).

Tests load scenarios, decode their arguments and compare results only through this module.
The folder can be moved with ``SAM2_REFERENCE_DIR``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("SAM2_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference"))
FIXTURES_DIR = REFERENCE_DIR / "fixtures"

requires_reference = pytest.mark.skipif(
    not FIXTURES_DIR.is_dir(), reason=f"reference data not found at {REFERENCE_DIR} (set SAM2_REFERENCE_DIR)"
)

# Tolerances of ../shared/reference/README.md
REL_L2_IMAGE = 1e-4
REL_L2_VIDEO = 1e-3
REL_L2_FLOAT16 = 2e-3
ABS_SCORE = 1e-4
ABS_STABILITY = 2e-3
MAX_FLIP_FRACTION = 1e-3
FLIP_LOGIT_BAND = 0.05


@functools.cache
def synth_module():
    """The reference ``synth_weights`` module (not part of our package)."""
    spec = importlib.util.spec_from_file_location("synth_weights", REFERENCE_DIR / "synth_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def manifest_path(model: str) -> Path:
    sub = "micro/" if "micro" in model else ""
    return REFERENCE_DIR / "manifests" / f"{sub}{model}.json"


@functools.cache
def manifest(model: str) -> dict:
    return json.loads(manifest_path(model).read_text())


def config_for(model: str) -> str:
    """Config argument for ``build_sam2``: the official name, or the micro YAML path."""
    if "micro" in model:
        return str(REFERENCE_DIR / "configs" / "micro" / f"{model}.yaml")
    version = "sam2.1" if model.startswith("sam2.1") else "sam2"
    return f"configs/{version}/{model}.yaml"


def write_checkpoint(path: Path, model: str, seed: int = 0, overrides: dict | None = None) -> Path:
    synth_module().write_checkpoint(str(path), str(manifest_path(model)), seed=seed, overrides=overrides)
    return path


def tracking_weight_overrides(model: str) -> dict:
    """The synthesized-weight overrides the video fixtures of ``model`` use so that objects are
    predicted present on tracked frames (read from the first such fixture; ``{}`` if none)."""
    for name in scenario_names("video"):
        spec = json.loads((FIXTURES_DIR / f"{name}.json").read_text())
        overrides = spec["weights"].get("overrides") or {}
        if Path(spec["manifest"]).stem == model and overrides:
            return dict(overrides)
    return {}


@functools.cache
def decoded_inputs() -> dict[str, np.ndarray]:
    with np.load(FIXTURES_DIR / "inputs" / "decoded.npz") as data:
        return {k: data[k] for k in data.files}


def image(name: str) -> np.ndarray:
    return decoded_inputs()[f"image/{name}"]


def scenario_names(kind: str) -> list[str]:
    if not FIXTURES_DIR.is_dir():
        return []
    return sorted(p.stem for p in FIXTURES_DIR.glob(f"{kind}_*.json"))


@dataclass
class Scenario:
    """One fixture: the JSON description and its npz arrays."""

    name: str
    spec: dict
    arrays: dict[str, np.ndarray]

    @property
    def model(self) -> str:
        return Path(self.spec["manifest"]).stem

    @property
    def config(self) -> str:
        cfg = self.spec["config"]
        return str(REFERENCE_DIR / cfg) if cfg.startswith("configs/micro") else cfg

    @property
    def calls(self) -> list[dict]:
        return self.spec.get("calls") or self.spec.get("runs") or []

    def checkpoint(self, directory: Path) -> Path:
        w = self.spec["weights"]
        return write_checkpoint(directory / f"{self.model}.pt", self.model, w["seed"], w.get("overrides") or None)

    def decode(self, value: Any) -> Any:
        """Turn an encoded argument into the value the API is called with."""
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if isinstance(value, dict):
            if "array" in value:
                return np.asarray(value["array"], dtype=value.get("dtype", "float32"))
            if "image" in value:
                return image(value["image"])
            if "npz_key" in value:
                return self.arrays[value["npz_key"]]
            return {k: self.decode(v) for k, v in value.items()}
        return value

    def decode_args(self, call: dict) -> dict[str, Any]:
        args = {k: self.decode(v) for k, v in call.get("args", {}).items()}
        if "video_path" in args:
            args["video_path"] = str(FIXTURES_DIR / args["video_path"])
        return args

    def expected(self, ref: dict) -> np.ndarray:
        return self.arrays[ref["npz_key"]]


@functools.cache
def load_scenario(name: str) -> Scenario:
    spec = json.loads((FIXTURES_DIR / f"{name}.json").read_text())
    with np.load(FIXTURES_DIR / spec["npz"]) as data:
        arrays = {k: data[k] for k in data.files}
    return Scenario(name, spec, arrays)


# ----------------------------------------------------------------------------------- comparisons

def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def rel_l2(ours: Any, ref: Any) -> float:
    a, b = to_numpy(ours).astype(np.float64), to_numpy(ref).astype(np.float64)
    assert a.shape == b.shape, f"shape {a.shape} != reference {b.shape}"
    denom = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denom) if denom > 0 else float(np.linalg.norm(a - b))


def assert_close_array(ours: Any, ref: np.ndarray, tol: float, what: str = "") -> float:
    """Relative L2 check; float16-stored references are compared after rounding ours to float16."""
    a = to_numpy(ours)
    if ref.dtype == np.float16:
        a = a.astype(np.float16)
        tol = max(tol, REL_L2_FLOAT16)
    err = rel_l2(a, ref)
    assert err <= tol, f"{what}: relative L2 error {err:.3g} > {tol:g}"
    return err


def assert_logit_signs(ours: Any, ref: np.ndarray, what: str = "") -> None:
    a, b = to_numpy(ours), ref.astype(np.float32)
    flips = (a > 0) != (b > 0)
    n = int(flips.sum())
    assert n <= MAX_FLIP_FRACTION * flips.size, f"{what}: {n} of {flips.size} logit signs differ"
    if n:
        worst = float(np.abs(b[flips]).max())
        assert worst < FLIP_LOGIT_BAND, f"{what}: a logit sign differs where |ref| = {worst:.3g}"


def assert_masks_match(ours: Any, ref: np.ndarray, what: str = "") -> None:
    a, b = to_numpy(ours) > 0.5, ref.astype(bool)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    n = int((a != b).sum())
    assert n <= MAX_FLIP_FRACTION * a.size, f"{what}: {n} of {a.size} mask pixels differ"


def assert_scores(ours: Any, ref: Any, tol: float = ABS_SCORE, what: str = "") -> float:
    a, b = to_numpy(ours).astype(np.float64), np.asarray(ref, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    err = float(np.abs(a - b).max()) if a.size else 0.0
    assert err <= tol, f"{what}: absolute error {err:.3g} > {tol:g}"
    return err


# Sub-module checks (modeling tests): manifest slices, state-dict slices, captured memories.

def manifest_entries(model: str, prefix: str) -> list[tuple[str, list[int]]]:
    """``(name without prefix, shape)`` of the manifest keys under ``prefix``, in order."""
    return [(k["name"][len(prefix):], k["shape"]) for k in manifest(model)["keys"]
            if k["name"].startswith(prefix)]


def sub_state_dict(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def video_error(ours: torch.Tensor, ref: np.ndarray) -> float:
    """Relative L2 error, ours rounded to float16 first where the reference was stored so."""
    a = to_numpy(ours)
    return rel_l2(a.astype(np.float16) if ref.dtype == np.float16 else a, ref)


def capture_cases(section: str) -> list[tuple[str, int]]:
    """``(scenario, index)`` of every micro ``memory_capture`` entry of ``section``."""
    cases = []
    for name in scenario_names("video"):
        if "micro" not in name:
            continue
        entries = (load_scenario(name).spec.get("memory_capture") or {}).get(section, [])
        cases += [(name, i) for i in range(len(entries))]
    return cases


# ----------------------------------------------------------------------------------- training fixtures

TRAINING_FIXTURES_DIR = FIXTURES_DIR / "training"


@functools.cache
def load_training_fixture(name: str) -> Scenario:
    """``fixtures/training/<name>.json`` and its npz (empty when the fixture has none)."""
    spec = json.loads((TRAINING_FIXTURES_DIR / f"{name}.json").read_text())
    arrays: dict[str, np.ndarray] = {}
    npz = TRAINING_FIXTURES_DIR / f"{name}.npz"
    if npz.is_file():
        with np.load(npz) as data:
            arrays = {k: data[k] for k in data.files}
    return Scenario(name, spec, arrays)


def expect_recorded_error(expected: dict, what: str, fn, *args, **kwargs) -> None:
    """A fixture call that raised in the official run: ``fn(*args, **kwargs)`` (a generator is run to its
    end) must raise an exception of the recorded type name (``expected["raises"]``) with the recorded
    message (``expected["message"]``)."""
    import inspect

    with pytest.raises(Exception) as info:
        result = fn(*args, **kwargs)
        if inspect.isgenerator(result):
            list(result)
    assert type(info.value).__name__ == expected["raises"], f"{what}: raised {type(info.value).__name__}"
    assert str(info.value) == expected["message"], f"{what}: message {info.value}"
