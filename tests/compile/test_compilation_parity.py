"""Compiled models (real torch.compile with inductor and gcc, on the CPU) replay the micro image and
video fixtures at the same tolerances as the eager models.

Compiling takes the time here (every graph is a C++ build: about two minutes for the 1024-px micro image
encoder, 20-40 s for each of the others on 2 cores), so the replays are chosen to need few graphs: the
image test replays ``set_image`` and two single-image predictions with ``multimask_output=True`` and two
prompt tokens (one image-encoder graph, one mask-decoder graph, of the kind the video's clicks and tracking
use). Each of the fixture's other calls would add a graph (``multimask_output=False``, a mask input, a
new prompt count, a prompt batch, the batch of two images). Both tests run in one process with one
inductor cache (a temporary folder), so the video model reuses the image model's kernels where the
graphs are the same.
"""

from __future__ import annotations

import warnings

import pytest

from sam2.build_sam import build_sam2, build_sam2_video_predictor
from sam2.compilation import CompileOptions, compiled_components, cpu_compiler_problem, default_components
from sam2.sam2_image_predictor import SAM2ImagePredictor
from tests import reference as R
from tests.test_sam2_image_predictor import _check_prediction, _check_state
from tests.test_sam2_video_predictor import replay

pytestmark = [R.requires_reference,
              pytest.mark.skipif(cpu_compiler_problem() is not None, reason="no C++ compiler for inductor")]

IMAGE = "image_sam2.1_hiera_micro"
IMAGE_CALLS = ("set_image", "point_multimask", "return_logits")
VIDEO = "video_sam2.1_hiera_micro_a_single_click"


@pytest.fixture(scope="module", autouse=True)
def inductor_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.mktemp("inductor")))
        mp.delenv("SAM2_COMPILE", raising=False)
        yield


def test_compiled_image_model_replays_the_micro_fixture(tmp_path, record_error):
    sc = R.load_scenario(IMAGE)
    kwargs = {k: v for k, v in sc.spec["build"]["kwargs"].items() if k != "device"}
    model = build_sam2(sc.config, sc.checkpoint(tmp_path), device="cpu", compile="strict", **kwargs)
    assert compiled_components(model) == list(default_components("cpu"))  # all but the prompt encoder
    predictor = SAM2ImagePredictor(model, **sc.spec["predictor"]["kwargs"])
    calls = {call["id"]: call for call in sc.calls}
    assert calls["set_image"]["method"] == "set_image"
    predictor.set_image(**sc.decode_args(calls["set_image"]))
    _check_state(sc, predictor, calls["set_image"], record_error)
    for name in IMAGE_CALLS[1:]:
        call = calls[name]
        assert call["method"] == "predict"
        outputs = predictor.predict(**sc.decode_args(call))
        _check_prediction(sc, outputs, call["expected"], f"{sc.name}/{name}", record_error)
    assert model.compile_report.fallbacks == {}
    assert compiled_components(model) == list(default_components("cpu"))


def test_compiled_video_predictor_replays_a_micro_fixture(tmp_path, record_error):
    sc = R.load_scenario(VIDEO)
    kwargs = {k: v for k, v in sc.spec["build"]["kwargs"].items() if k not in ("device", "vos_optimized")}
    predictor = build_sam2_video_predictor(sc.config, sc.checkpoint(tmp_path), device="cpu", vos_optimized=True,
                                           compile=CompileOptions(strict=True), **kwargs)
    for key, value in (sc.spec["build"].get("after_build") or {}).items():
        setattr(predictor, key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to eager would warn: fail instead
        replay(sc, predictor, record_error)
    assert predictor.model.compile_report.fallbacks == {}
    assert compiled_components(predictor.model) == list(default_components("cpu"))
