"""Hub loading offline: ``build_sam2_hf``, ``build_sam2_video_predictor_hf`` and ``from_pretrained``.

A Hugging Face Hub cache is laid out in a temporary folder exactly as ``huggingface_hub`` writes it
(``models--facebook--sam2.1-hiera-tiny/{refs/main, blobs/<sha256>, snapshots/<commit>/<file> -> blob}``)
and filled with a synthesized ``sam2.1_hiera_t`` checkpoint. ``HF_HUB_OFFLINE=1`` is set, so nothing can
reach the network.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import torch

from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES, build_sam2_hf, build_sam2_video_predictor_hf
from sam2.config import get_preset
from sam2.modeling.sam2_base import SAM2Base
from sam2.sam2_image_predictor import SAM2ImagePredictor
from sam2.sam2_video_predictor import SAM2VideoPredictor
from tests import reference as R

hf_constants = pytest.importorskip("huggingface_hub.constants")
hf_errors = pytest.importorskip("huggingface_hub.errors")

pytestmark = R.requires_reference

MODEL_ID = "facebook/sam2.1-hiera-tiny"
FILENAME = "sam2.1_hiera_tiny.pt"
COMMIT = "1b2c3d4e5f60718293a4b5c6d7e8f90123456789"


def _repo_dir(cache: Path, model_id: str) -> Path:
    return cache / ("models--" + model_id.replace("/", "--"))


def _add_to_cache(cache: Path, model_id: str, filename: str | None, source: Path | None) -> None:
    """One repo of the cache: ``refs/main`` -> commit, the file as a blob and a snapshot symlink."""
    repo = _repo_dir(cache, model_id)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    if filename is None:
        return
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    blobs = repo / "blobs"
    blobs.mkdir(exist_ok=True)
    blob = blobs / digest.hexdigest()
    os.replace(source, blob)
    (snapshot / filename).symlink_to(os.path.relpath(blob, snapshot))


@pytest.fixture(scope="module")
def hub_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("hf_home")
    cache = home / "hub"
    written = R.write_checkpoint(home / "download.tmp", "sam2.1_hiera_t", seed=0)
    _add_to_cache(cache, MODEL_ID, FILENAME, written)
    # A repo whose snapshot exists but lacks the checkpoint (an interrupted download).
    _add_to_cache(cache, "facebook/sam2.1-hiera-small", None, None)
    return home


@pytest.fixture(scope="module")
def expected_state(hub_home) -> dict[str, torch.Tensor]:
    path = _repo_dir(hub_home / "hub", MODEL_ID) / "snapshots" / COMMIT / FILENAME
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.fixture
def offline_hub(hub_home, monkeypatch) -> Path:
    """Point huggingface_hub at the local cache, offline. Its constants are read at import time,
    so the module attributes are patched along with the environment."""
    cache = hub_home / "hub"
    monkeypatch.setenv("HF_HOME", str(hub_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HOME", str(hub_home))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return cache


def _assert_weights(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


# ------------------------------------------------------------------------------ loading

def test_build_sam2_hf_loads_the_cached_checkpoint(offline_hub, expected_state) -> None:
    model = build_sam2_hf(MODEL_ID, device="cpu")
    assert isinstance(model, SAM2Base)
    assert not model.training
    preset = get_preset("sam2.1_hiera_t")
    assert (model.cfg.trunk, model.cfg.tracker) == (preset.trunk, preset.tracker)
    assert model.sam_mask_decoder.options.dynamic_multimask_via_stability  # builder defaults apply
    _assert_weights(model, expected_state)


def test_build_sam2_hf_passes_builder_kwargs(offline_hub) -> None:
    model = build_sam2_hf(MODEL_ID, device="cpu", mode="train", apply_postprocessing=False)
    assert model.training
    assert not model.sam_mask_decoder.options.dynamic_multimask_via_stability


def test_build_video_predictor_hf(offline_hub, expected_state) -> None:
    predictor = build_sam2_video_predictor_hf(MODEL_ID, device="cpu",
                                              hydra_overrides_extra=["++model.non_overlap_masks=true"])
    assert isinstance(predictor, SAM2VideoPredictor)
    assert predictor.fill_hole_area == 8 and predictor.non_overlap_masks
    _assert_weights(predictor.model, expected_state)


def test_image_predictor_from_pretrained(offline_hub, expected_state) -> None:
    predictor = SAM2ImagePredictor.from_pretrained(MODEL_ID, device="cpu", mask_threshold=0.25)
    assert isinstance(predictor, SAM2ImagePredictor)
    assert predictor.mask_threshold == 0.25
    assert predictor.device.type == "cpu"
    _assert_weights(predictor.model, expected_state)


def test_video_predictor_from_pretrained(offline_hub, expected_state) -> None:
    predictor = SAM2VideoPredictor.from_pretrained(MODEL_ID, device="cpu",
                                                   hydra_overrides_extra=["++model.fill_hole_area=0"])
    assert isinstance(predictor, SAM2VideoPredictor)
    assert predictor.fill_hole_area == 0
    _assert_weights(predictor.model, expected_state)


def test_cached_checkpoint_is_used_without_network_even_when_online(offline_hub, expected_state,
                                                                    monkeypatch) -> None:
    """Without HF_HUB_OFFLINE a cached file must not cost a request (offline users would wait for
    huggingface_hub's retries): any metadata request fails this test."""
    import huggingface_hub.file_download as hf_download

    def no_network(*args, **kwargs):
        raise AssertionError("the Hub was contacted although the checkpoint is cached")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_download, "get_hf_file_metadata", no_network)
    with pytest.raises(AssertionError, match="the Hub was contacted"):  # the guard is effective
        hf_download.hf_hub_download(MODEL_ID, FILENAME)
    _assert_weights(build_sam2_hf(MODEL_ID, device="cpu"), expected_state)


# ------------------------------------------------------------------------------ errors

def test_unknown_model_id_names_the_known_ones(offline_hub) -> None:
    with pytest.raises(KeyError) as info:
        build_sam2_hf("facebook/sam3-hiera-huge")
    msg = str(info.value)
    assert "facebook/sam3-hiera-huge" in msg
    for model_id in HF_MODEL_ID_TO_FILENAMES:
        assert model_id in msg
    with pytest.raises(KeyError, match="facebook/sam2.1-hiera-large"):
        SAM2ImagePredictor.from_pretrained("sam2.1_hiera_tiny")  # a release name is not a Hub id


@pytest.mark.parametrize("model_id", ["facebook/sam2.1-hiera-small",  # snapshot without the file
                                      "facebook/sam2-hiera-large"])  # repo absent from the cache
def test_file_missing_from_offline_cache(offline_hub, model_id: str) -> None:
    filename = HF_MODEL_ID_TO_FILENAMES[model_id][1]
    for build in (build_sam2_hf, build_sam2_video_predictor_hf):
        with pytest.raises(RuntimeError) as info:
            build(model_id, device="cpu")
        msg = str(info.value)
        assert model_id in msg and filename in msg
        assert "Without network access" in msg
        assert "ckpt_path" in msg and "HF_HUB_OFFLINE=1" in msg
        # the cache was searched offline (no network attempt) and the Hub error is chained
        assert isinstance(info.value.__cause__, hf_errors.LocalEntryNotFoundError)


def test_missing_huggingface_hub_package(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'sam2-kit\[hub\]'"):
        build_sam2_hf(MODEL_ID)


def test_official_model_id_mapping() -> None:
    assert len(HF_MODEL_ID_TO_FILENAMES) == 8
    assert HF_MODEL_ID_TO_FILENAMES["facebook/sam2-hiera-tiny"] == ("configs/sam2/sam2_hiera_t.yaml",
                                                                    "sam2_hiera_tiny.pt")
    assert HF_MODEL_ID_TO_FILENAMES["facebook/sam2.1-hiera-base-plus"] == ("configs/sam2.1/sam2.1_hiera_b+.yaml",
                                                                           "sam2.1_hiera_base_plus.pt")
    assert HF_MODEL_ID_TO_FILENAMES["facebook/sam2.1-hiera-large"] == ("configs/sam2.1/sam2.1_hiera_l.yaml",
                                                                       "sam2.1_hiera_large.pt")
