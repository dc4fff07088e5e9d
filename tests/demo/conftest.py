"""Fixtures of the demo backend tests: the micro model (128 px) with synthesized weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sam2.cli.selfcheck import MICRO_CONFIG
from tests.reference import FIXTURES_DIR, load_scenario, write_checkpoint


@pytest.fixture(scope="session")
def demo_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Micro-model weights: the synthesized ones of the reference video fixtures (object score head
    shifted so that tracked objects stay present and masks carry information) when the reference data is
    here, else random weights from a fixed seed."""
    path = tmp_path_factory.mktemp("demo_ckpt") / "sam2.1_hiera_micro_demo.pt"
    if FIXTURES_DIR.is_dir():
        weights = load_scenario("video_sam2.1_hiera_micro_b_two_objects_correction").spec["weights"]
        return write_checkpoint(path, "sam2.1_hiera_micro", weights["seed"], weights["overrides"])
    from sam2.build_sam import build_sam2

    torch.manual_seed(0)
    model = build_sam2(str(MICRO_CONFIG), None, device="cpu")
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def demo_predictor(demo_checkpoint: Path):
    """The ``SAM2VideoPredictor`` of the micro model, shared by the test apps (it holds no session state)."""
    from sam2.build_sam import build_sam2_video_predictor

    predictor = build_sam2_video_predictor(str(MICRO_CONFIG), str(demo_checkpoint), device="cpu")
    predictor.show_progress = False
    return predictor


@pytest.fixture(scope="session", autouse=True)
def demo_single_thread():
    """One OpenMP thread: the micro model only loses time to thread contention (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
