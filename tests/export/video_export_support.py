"""Shared setup of the video export tests: the fixture's PyTorch predictor and its ONNX export
(exported once per model and weight overrides, in a temporary folder kept for the test session)."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

from sam2.build_sam import build_sam2_video_predictor
from tests import reference as R

_ROOT = Path(tempfile.mkdtemp(prefix="sam2-export-video-"))
atexit.register(shutil.rmtree, _ROOT, True)


def build_predictor(sc: R.Scenario, directory: Path):
    """The PyTorch video predictor of a fixture (its weights, build options and attribute overrides)."""
    kwargs = {k: v for k, v in sc.spec["build"]["kwargs"].items() if k != "device"}
    predictor = build_sam2_video_predictor(sc.config, sc.checkpoint(directory), device="cpu", **kwargs)
    for key, value in (sc.spec["build"].get("after_build") or {}).items():
        setattr(predictor, key, value)
    return predictor


def weights_key(sc: R.Scenario) -> str:
    return f"{sc.model}-{json.dumps(sc.spec['weights'], sort_keys=True)}"


_SCENARIO_OF_KEY: dict[str, str] = {}


@functools.cache
def _export(key: str) -> Path:
    from sam2.export.onnx_export import to_onnx

    sc = R.load_scenario(_SCENARIO_OF_KEY[key])
    folder = _ROOT / f"export-{abs(hash(key))}"
    folder.mkdir()
    predictor = build_predictor(sc, folder)
    return to_onnx(predictor.model, folder / "onnx")


def exported(sc: R.Scenario) -> Path:
    """The export folder of ``sc``'s model and weights (shared by scenarios with the same weights)."""
    key = weights_key(sc)
    _SCENARIO_OF_KEY.setdefault(key, sc.name)
    return _export(key)
