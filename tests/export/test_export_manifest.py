"""Manifest checks: an export folder of another version, model or format, or with swapped or missing
files, is refused with a clear error before any graph is opened."""

from __future__ import annotations

import json

import pytest

from sam2 import __version__
from sam2.export.errors import ExportFormatError
from sam2.export.manifest import CONSTANTS_FILE, MANIFEST_FILE, load_constants, read_manifest
from tests.export.export_image_support import copy_export, micro_export, micro_model

pytest.importorskip("onnxruntime")


def _edit(folder, **changes) -> None:
    path = folder / MANIFEST_FILE
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_export_manifest_contents():
    manifest = read_manifest(micro_export())
    model = micro_model()
    assert manifest.model_name == "sam2.1_hiera_micro_128" and manifest.image_size == 128
    assert manifest.sam2_kit_version == __version__ and manifest.opset == 17
    assert [g.role for g in manifest.graphs] == ["image_encoder", "prompt_decoder"]
    decoder = manifest.graph("prompt_decoder")
    assert decoder.inputs[3].shape == ("num_prompts", "num_points", 2)
    assert set(manifest.variants) == {"fp16", "int8"}
    assert manifest.config["decoder"]["dynamic_multimask_via_stability"] is True
    assert len(manifest.fingerprint) == 64 and set(manifest.files) >= {CONSTANTS_FILE, "image_encoder.onnx"}
    constants = load_constants(micro_export())
    assert constants["no_mem_embed"].tolist() == model.no_mem_embed.detach().numpy().tolist()


def test_export_manifest_fingerprint_follows_weights():
    import torch

    from sam2.export.onnx_export import weights_fingerprint

    model = micro_model()
    before = weights_fingerprint(model)
    assert before == read_manifest(micro_export()).fingerprint
    with torch.no_grad():
        model.no_obj_ptr[0, 0] += 1.0
    try:
        assert weights_fingerprint(model) != before
    finally:
        with torch.no_grad():
            model.no_obj_ptr[0, 0] -= 1.0


@pytest.mark.parametrize("changes,message", [
    (dict(sam2_kit_version="0.0.1"), "exported by sam2-kit '0.0.1'"),
    (dict(format_version=99), "format version 99"),
    (dict(format="something-else"), "not a sam2-kit ONNX export"),
])
def test_export_manifest_refuses_other_versions(tmp_path, changes, message):
    from sam2.export import OnnxImagePredictor

    folder = copy_export(tmp_path)
    _edit(folder, **changes)
    with pytest.raises(ExportFormatError, match=message):
        OnnxImagePredictor(folder)


def test_export_manifest_version_check_can_be_waived(tmp_path):
    folder = copy_export(tmp_path)
    _edit(folder, sam2_kit_version="0.0.1")
    assert read_manifest(folder, check_version=False).sam2_kit_version == "0.0.1"


def test_export_manifest_refuses_another_model():
    from sam2.export import OnnxImagePredictor

    with pytest.raises(ExportFormatError, match="export of 'sam2.1_hiera_micro_128', not 'sam2.1_hiera_large'"):
        OnnxImagePredictor(micro_export(), expect_model="sam2.1_hiera_large")


def test_export_manifest_refuses_swapped_and_missing_files(tmp_path):
    folder = copy_export(tmp_path)
    (folder / "prompt_decoder.onnx").write_bytes((folder / "prompt_decoder.int8.onnx").read_bytes())
    with pytest.raises(ExportFormatError, match="prompt_decoder.onnx differs from the file exported"):
        read_manifest(folder)
    (folder / "prompt_decoder.onnx").unlink()
    with pytest.raises(ExportFormatError, match="prompt_decoder.onnx is listed .* but missing"):
        read_manifest(folder)


def test_export_manifest_refuses_non_exports(tmp_path):
    with pytest.raises(ExportFormatError, match="does not exist"):
        read_manifest(tmp_path / "nothing")
    with pytest.raises(ExportFormatError, match="has no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ExportFormatError, match="damaged or incomplete"):
        read_manifest(tmp_path)


def test_export_manifest_missing_graph_and_variant():
    manifest = read_manifest(micro_export())
    with pytest.raises(ExportFormatError, match="no 'memory_attention' graph .* --no-video"):
        manifest.graph("memory_attention")
    manifest.variants = {}
    with pytest.raises(ExportFormatError, match="no 'fp16' variant"):
        manifest.graph_file("image_encoder", "fp16")
