"""One real local Ray runtime for the whole test session (Ray starts slowly), a synthesized micro
checkpoint, and small image / video datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2.cli.selfcheck import MICRO_CONFIG
from tests.reference import FIXTURES_DIR, write_checkpoint

ray = pytest.importorskip("ray")

IMAGES = FIXTURES_DIR / "inputs" / "images"
SOURCE_VIDEO = FIXTURES_DIR / "inputs" / "videos" / "bedroom_a"
MICRO = str(MICRO_CONFIG)
# few points and no quality filter: well under a second per image with the micro model, masks kept
AMG = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]

requires_fixtures = pytest.mark.skipif(not FIXTURES_DIR.is_dir(), reason=f"reference data not found at {FIXTURES_DIR}")


@pytest.fixture(scope="session")
def ray_session():
    """``ray.init`` once (2 CPUs, no dashboard, 200 MB object store); the jobs reuse it."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def micro_ckpt(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_checkpoint(tmp_path_factory.mktemp("ckpt") / "micro.pt", "sam2.1_hiera_micro"))


@pytest.fixture(autouse=True)
def single_thread():
    """The single-process references run on one thread, as each Ray worker (1 CPU) does."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def image_folder(root: Path, names: dict[str, str]) -> Path:
    """``root/images`` with ``{name: fixture image}`` copies; a source of ``None`` writes a corrupt JPEG."""
    folder = root / "images"
    folder.mkdir(parents=True)
    for name, source in names.items():
        if source is None:
            (folder / name).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        else:
            shutil.copy(IMAGES / source, folder / name)
    return folder


def tree(root: Path, skip: tuple[str, ...] = (".sam2-scale", "failures.jsonl")) -> dict[str, bytes]:
    """{relative path: bytes} of every file under ``root`` except the scale-out bookkeeping."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] not in skip}


def video_dataset(root: Path, videos: list[str], corrupt: str | None = None) -> Path:
    """``videos/<v>`` (3 frames of bedroom_a) with DAVIS masks ``masks/<v>/00000.png`` (2 objects);
    ``corrupt`` is a video whose second frame is not a JPEG."""
    from sam2.utils.png_masks import save_ann_png

    ids = np.zeros((180, 320), np.uint8)
    ids[40:120, 30:150] = 1
    ids[60:160, 180:300] = 2
    for video in videos + ([corrupt] if corrupt else []):
        frames = root / "videos" / video
        frames.mkdir(parents=True)
        for t in range(3):
            shutil.copy(SOURCE_VIDEO / f"{t:05d}.jpg", frames / f"{t:05d}.jpg")
        (root / "masks" / video).mkdir(parents=True)
        save_ann_png(root / "masks" / video / "00000.png", ids, list(range(256)) * 3)
    if corrupt:
        (root / "videos" / corrupt / "00001.jpg").write_bytes(b"garbage")
    return root


def open_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img.convert("RGB"))
