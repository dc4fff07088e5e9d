"""Shared pieces of the CLI tests: running ``python -m sam2`` and a synthesized micro checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sam2.cli.selfcheck import MICRO_CONFIG
from tests.reference import FIXTURES_DIR, load_scenario, write_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
MICRO = str(MICRO_CONFIG)  # 128-pixel input: fast; same state-dict keys as the reference micro model


def run_cli(*argv: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m sam2 ARGV`` from the repository root; stdout and stderr captured as text. One
    OpenMP thread: the micro models only lose time to thread start-up and contention."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "sam2", *argv], cwd=REPO_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def listing(folder: Path) -> list[str]:
    """Every path under ``folder`` (hidden ones included), relative and sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(autouse=True)
def single_thread():
    """Compute the Python API references on one thread too (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synth_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Synthesized ``sam2.1_hiera_micro`` weights whose object score head is shifted by +1 (as in the
    reference video fixtures), so that tracked objects stay present and masks carry information."""
    if not FIXTURES_DIR.is_dir():
        pytest.skip(f"reference data not found at {FIXTURES_DIR.parent} (set SAM2_REFERENCE_DIR)")
    weights = load_scenario("video_sam2.1_hiera_micro_b_two_objects_correction").spec["weights"]
    path = tmp_path_factory.mktemp("ckpt") / "micro_present.pt"
    write_checkpoint(path, "sam2.1_hiera_micro", weights["seed"], weights["overrides"])
    return str(path)


@pytest.fixture
def model_args(synth_checkpoint: str) -> list[str]:
    """Model options of every CLI run: the package's micro config with the synthesized weights."""
    return ["--config", MICRO, "--checkpoint", synth_checkpoint, "--device", "cpu"]


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    """No network and an empty Hugging Face cache."""
    home = tmp_path / "empty_hf_home"
    home.mkdir()
    return {"HF_HUB_OFFLINE": "1", "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub")}
