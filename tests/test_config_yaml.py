"""The YAML reader (``sam2.config_yaml``): official-schema files -> typed config, and its errors.

The micro YAMLs of the reference data are in the official Hydra schema. Full-size official-schema files
are written here by giving the micro tree the widths of the official models; they must read back as
exactly the built-in presets.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from sam2.config import ModelConfig, get_preset
from sam2.config_yaml import ConfigError, load_yaml_config, model_config_from_dict, resolve_config
from sam2.modeling.sam2_base import SAM2Base
from tests import reference as R

pytestmark = R.requires_reference

MICRO20, MICRO21 = "sam2_hiera_micro", "sam2.1_hiera_micro"


def _tree(model: str = MICRO21) -> dict:
    return yaml.safe_load(Path(R.config_for(model)).read_text())


def _write(tmp_path: Path, tree: dict, name: str = "model.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def _get(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def _set(tree: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = tree
    for part in parents:
        node = node[part]
    node[last] = value


# YAML path (under model.) -> how to read the same value from the typed config
FIELD_MAP = {
    "image_encoder.trunk.embed_dim": lambda c: c.trunk.embed_dim,
    "image_encoder.trunk.num_heads": lambda c: c.trunk.num_heads,
    "image_encoder.trunk.stages": lambda c: list(c.trunk.stages),
    "image_encoder.trunk.global_att_blocks": lambda c: list(c.trunk.global_att_blocks),
    "image_encoder.trunk.window_pos_embed_bkg_spatial_size": lambda c: list(c.trunk.window_pos_embed_bkg_spatial_size),
    "image_encoder.neck.d_model": lambda c: c.neck.d_model,
    "image_encoder.neck.backbone_channel_list": lambda c: c.trunk.channel_list,
    "image_encoder.neck.position_encoding.num_pos_feats": lambda c: c.hidden_dim,
    "memory_attention.d_model": lambda c: c.memory_attention.d_model,
    "memory_attention.num_layers": lambda c: c.memory_attention.num_layers,
    "memory_attention.layer.dim_feedforward": lambda c: c.memory_attention.dim_feedforward,
    "memory_attention.layer.dropout": lambda c: c.memory_attention.dropout,
    "memory_attention.layer.self_attention.rope_theta": lambda c: c.memory_attention.rope_theta,
    "memory_attention.layer.self_attention.feat_sizes": lambda c: list(c.memory_attention.feat_sizes),
    "memory_attention.layer.cross_attention.kv_in_dim": lambda c: c.memory_attention.kv_in_dim,
    "memory_encoder.out_dim": lambda c: c.memory_encoder.out_dim,
    "memory_encoder.in_dim": lambda c: c.memory_encoder.in_dim,
    "memory_encoder.position_encoding.num_pos_feats": lambda c: c.mem_dim,
    "memory_encoder.mask_downsampler.embed_dim": lambda c: c.memory_encoder.downsampler_embed_dim,
    "memory_encoder.fuser.num_layers": lambda c: c.memory_encoder.fuser_num_layers,
    "memory_encoder.fuser.layer.dim": lambda c: c.memory_encoder.in_dim,
}
TRACKER_FIELDS = [f.name for f in dataclasses.fields(type(get_preset("sam2_hiera_t").tracker))]


# ------------------------------------------------------------------------------ micro YAMLs

@pytest.mark.parametrize("model", [MICRO20, MICRO21])
def test_micro_yaml_values_reach_the_typed_config(model: str) -> None:
    tree = _tree(model)
    resolved = load_yaml_config(R.config_for(model))
    cfg = resolved.model
    assert isinstance(cfg, ModelConfig)
    assert cfg.name == model
    assert resolved.target == tree["model"]["_target_"]
    for dotted, read in FIELD_MAP.items():
        assert read(cfg) == _get(tree["model"], dotted), dotted
    for key in TRACKER_FIELDS:  # every tracker flag the YAML sets is taken over
        if key in tree["model"]:
            assert getattr(cfg.tracker, key) == tree["model"][key], key
    assert cfg.is_sam21 == (model == MICRO21)


def test_sam20_and_sam21_micro_differ_only_in_the_21_flags() -> None:
    a, b = load_yaml_config(R.config_for(MICRO20)).model, load_yaml_config(R.config_for(MICRO21)).model
    changed = {f for f in TRACKER_FIELDS if getattr(a.tracker, f) != getattr(b.tracker, f)}
    assert changed == {"no_obj_embed_spatial", "add_tpos_enc_to_obj_ptrs", "proj_tpos_enc_in_obj_ptrs",
                       "use_signed_tpos_enc_to_obj_ptrs"}
    assert dataclasses.replace(a, name="x", tracker=b.tracker) == dataclasses.replace(b, name="x")


def test_resolve_config_reads_yaml_files_and_yml_suffix(tmp_path) -> None:
    path = _write(tmp_path, _tree(), "copy.yml")
    assert resolve_config(path).model == dataclasses.replace(load_yaml_config(R.config_for(MICRO21)).model,
                                                             name="copy")


def test_changed_values_propagate(tmp_path) -> None:
    tree = _tree()
    _set(tree, "model.num_maskmem", 3)
    _set(tree, "model.image_encoder.trunk.stages", [1, 1, 3, 1])
    _set(tree, "model.image_encoder.trunk.global_att_blocks", [2, 4])
    _set(tree, "model.memory_attention.num_layers", 2)
    tree["model"]["fill_hole_area"] = 5
    tree["model"]["sam_mask_decoder_extra_args"] = {"dynamic_multimask_via_stability": True,
                                                    "dynamic_multimask_stability_thresh": 0.9}
    cfg = load_yaml_config(_write(tmp_path, tree)).model
    assert cfg.tracker.num_maskmem == 3
    assert cfg.trunk.stages == (1, 1, 3, 1) and cfg.trunk.global_att_blocks == (2, 4)
    assert cfg.memory_attention.num_layers == 2
    assert cfg.video.fill_hole_area == 5
    assert cfg.decoder.dynamic_multimask_via_stability and cfg.decoder.dynamic_multimask_stability_thresh == 0.9
    with torch.device("meta"):
        net = SAM2Base(cfg)
    assert len(net.image_encoder.trunk.blocks) == 6
    assert len(net.memory_attention.layers) == 2
    assert tuple(net.maskmem_tpos_enc.shape) == (3, 1, 1, 16)


# ------------------------------------------------------------------------------ official-schema copies

WIDTHS = {  # the official hidden width 256 and memory width 64
    "image_encoder.neck.d_model": 256,
    "image_encoder.neck.position_encoding.num_pos_feats": 256,
    "memory_attention.d_model": 256,
    "memory_attention.layer.d_model": 256,
    "memory_attention.layer.dim_feedforward": 2048,
    "memory_attention.layer.self_attention.embedding_dim": 256,
    "memory_attention.layer.cross_attention.embedding_dim": 256,
    "memory_attention.layer.cross_attention.kv_in_dim": 64,
    "memory_encoder.out_dim": 64,
    "memory_encoder.in_dim": 256,
    "memory_encoder.position_encoding.num_pos_feats": 64,
    "memory_encoder.mask_downsampler.embed_dim": 256,
    "memory_encoder.fuser.layer.dim": 256,
}
TRUNKS = {
    "t": {"embed_dim": 96, "num_heads": 1},  # stages etc. as in micro
    "l": {"embed_dim": 144, "num_heads": 2, "stages": [2, 6, 36, 4], "global_att_blocks": [23, 33, 43],
          "window_pos_embed_bkg_spatial_size": [7, 7], "window_spec": [8, 4, 16, 8]},
}


def _official_tree(version: str, size: str) -> dict:
    tree = _tree(MICRO21 if version == "sam2.1" else MICRO20)
    for dotted, value in WIDTHS.items():
        _set(tree["model"], dotted, value)
    trunk = tree["model"]["image_encoder"]["trunk"]
    trunk.update(TRUNKS[size])
    d = trunk["embed_dim"]
    tree["model"]["image_encoder"]["neck"]["backbone_channel_list"] = [8 * d, 4 * d, 2 * d, d]
    return tree


@pytest.mark.parametrize("version", ["sam2", "sam2.1"])
@pytest.mark.parametrize("size", ["t", "l"])
def test_official_schema_copy_reads_as_the_preset(tmp_path, version: str, size: str) -> None:
    preset = f"{version}_hiera_{size}"
    path = _write(tmp_path, _official_tree(version, size), f"{preset}.yaml")
    cfg = load_yaml_config(path).model
    assert cfg == get_preset(preset)
    with torch.device("meta"):
        net = SAM2Base(cfg)
    assert sum(p.numel() for p in net.parameters()) == R.manifest(preset)["num_parameters"]


def test_official_schema_accepts_video_predictor_target(tmp_path) -> None:
    tree = _official_tree("sam2.1", "t")
    tree["model"]["_target_"] = "sam2.sam2_video_predictor.SAM2VideoPredictor"
    resolved = load_yaml_config(_write(tmp_path, tree))
    assert resolved.target == "sam2.sam2_video_predictor.SAM2VideoPredictor"
    assert resolved.model == dataclasses.replace(get_preset("sam2.1_hiera_t"), name="model")


# ------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("dotted", [
    "model.bogus_flag",
    "model.image_encoder.trunk.bogus",
    "model.image_encoder.neck.position_encoding.bogus",
    "model.memory_attention.layer.cross_attention.bogus",
    "model.memory_encoder.fuser.layer.bogus",
    "model.sam_mask_decoder_extra_args.bogus",
])
def test_unknown_key_names_its_path_and_the_file(tmp_path, dotted: str) -> None:
    tree = _tree()
    tree["model"].setdefault("sam_mask_decoder_extra_args", {})
    _set(tree, dotted, 1)
    path = _write(tmp_path, tree)
    with pytest.raises(ConfigError) as info:
        load_yaml_config(path)
    msg = str(info.value)
    assert f"unknown key {dotted}" in msg
    assert str(path) in msg


def test_unknown_top_level_key(tmp_path) -> None:
    tree = _tree()
    tree["trainer"] = {"max_epochs": 3}
    with pytest.raises(ConfigError, match="trainer"):
        load_yaml_config(_write(tmp_path, tree))


@pytest.mark.parametrize("dotted", ["model._target_", "model.image_encoder.trunk._target_",
                                    "model.memory_encoder.position_encoding._target_"])
def test_unknown_target_is_named(tmp_path, dotted: str) -> None:
    tree = _tree()
    _set(tree, dotted, "my_lab.models.FancyModule")
    with pytest.raises(ConfigError) as info:
        load_yaml_config(_write(tmp_path, tree))
    msg = str(info.value)
    assert "my_lab.models.FancyModule" in msg and dotted in msg


@pytest.mark.parametrize(("dotted", "value"), [
    ("model.image_encoder.scalp", 2),
    ("model.image_encoder.neck.fpn_interp_model", "bilinear"),
    ("model.memory_attention.layer.activation", "gelu"),
    ("model.pred_obj_scores", False),
])
def test_values_fixed_in_every_official_config_are_enforced(tmp_path, dotted: str, value) -> None:
    tree = _tree()
    _set(tree, dotted, value)
    with pytest.raises(ConfigError, match="not supported") as info:
        load_yaml_config(_write(tmp_path, tree))
    assert dotted in str(info.value)


@pytest.mark.parametrize(("dotted", "value"), [
    ("model.image_encoder.neck.backbone_channel_list", [128, 64, 32, 8]),
    ("model.memory_attention.d_model", 64),
    ("model.memory_encoder.in_dim", 16),
    ("model.memory_attention.layer.cross_attention.kv_in_dim", 32),
])
def test_inconsistent_widths_are_rejected(tmp_path, dotted: str, value) -> None:
    tree = _tree()
    _set(tree, dotted, value)
    with pytest.raises(ConfigError) as info:
        load_yaml_config(_write(tmp_path, tree))
    assert "must equal" in str(info.value)


def test_missing_section(tmp_path) -> None:
    tree = _tree()
    del tree["model"]["memory_encoder"]
    with pytest.raises(ConfigError, match=r"model\.memory_encoder is missing"):
        load_yaml_config(_write(tmp_path, tree))
    tree = _tree()
    del tree["model"]["image_encoder"]["neck"]["position_encoding"]
    with pytest.raises(ConfigError, match=r"model\.image_encoder\.neck\.position_encoding is missing"):
        load_yaml_config(_write(tmp_path, tree))


def test_missing_file(tmp_path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(FileNotFoundError):
        load_yaml_config(path)
    with pytest.raises(ConfigError) as info:
        resolve_config(path)
    assert str(path) in str(info.value)


def test_malformed_yaml(tmp_path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  image_encoder: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_config(path)
    assert "not valid YAML" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "model: 3\n"])
def test_not_a_model_mapping(tmp_path, text: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="top-level 'model:' mapping"):
        load_yaml_config(path)


def test_dict_entry_point_does_not_modify_its_input() -> None:
    tree = _tree()
    before = copy.deepcopy(tree)
    model_config_from_dict(tree, "in-memory")
    assert tree == before
