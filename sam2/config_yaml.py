"""Thin reader of the official Hydra-style YAML configs and ``++model.<key>=<value>`` overrides.

No Hydra: the YAML tree is walked against a fixed schema and mapped onto the dataclasses of
:mod:`sam2.config`. Keys that every official config sets to the same value are accepted only
with that value; anything unknown is a :class:`ConfigError` naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from sam2.config import (
    DecoderOptions,
    HieraConfig,
    MemoryAttentionConfig,
    MemoryEncoderConfig,
    ModelConfig,
    NeckConfig,
    TrackerConfig,
    VideoOptions,
    get_preset,
)
from sam2.config_checks import config_problems
from sam2.registry import find_release

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A config file or override that sam2-kit cannot map onto a model."""


MODEL_TARGETS = {
    "sam2.modeling.sam2_base.SAM2Base",
    "sam2.sam2_video_predictor.SAM2VideoPredictor",
    "sam2.sam2_video_predictor.SAM2VideoPredictorVOS",
}

# node path -> (expected _target_, {yaml key: dataclass field name or ("fixed", value)})
FIXED = "fixed"
_SCHEMA: dict[str, tuple[str | None, dict[str, Any]]] = {
    "image_encoder": ("sam2.modeling.backbones.image_encoder.ImageEncoder",
                      {"scalp": (FIXED, 1), "trunk": None, "neck": None}),
    "image_encoder.trunk": ("sam2.modeling.backbones.hieradet.Hiera", {
        "embed_dim": "embed_dim", "num_heads": "num_heads", "stages": "stages",
        "global_att_blocks": "global_att_blocks", "window_spec": "window_spec",
        "window_pos_embed_bkg_spatial_size": "window_pos_embed_bkg_spatial_size", "q_pool": "q_pool",
        "q_stride": (FIXED, [2, 2]), "dim_mul": (FIXED, 2.0), "head_mul": (FIXED, 2.0),
        "drop_path_rate": "drop_path_rate", "return_interm_layers": (FIXED, True), "weights_path": (FIXED, None)}),
    "image_encoder.neck": ("sam2.modeling.backbones.image_encoder.FpnNeck", {
        "d_model": "d_model", "position_encoding": None, "backbone_channel_list": None,
        "fpn_top_down_levels": (FIXED, [2, 3]), "fpn_interp_model": (FIXED, "nearest"),
        "fuse_type": (FIXED, "sum"), "kernel_size": (FIXED, 1), "stride": (FIXED, 1), "padding": (FIXED, 0)}),
    "memory_attention": ("sam2.modeling.memory_attention.MemoryAttention", {
        "d_model": "d_model", "num_layers": "num_layers", "pos_enc_at_input": (FIXED, True), "layer": None,
        "batch_first": (FIXED, True)}),
    "memory_attention.layer": ("sam2.modeling.memory_attention.MemoryAttentionLayer", {
        "activation": (FIXED, "relu"), "dim_feedforward": "dim_feedforward", "dropout": "dropout",
        "pos_enc_at_attn": (FIXED, False), "d_model": None, "pos_enc_at_cross_attn_keys": (FIXED, True),
        "pos_enc_at_cross_attn_queries": (FIXED, False), "self_attention": None, "cross_attention": None}),
    "memory_attention.layer.self_attention": ("sam2.modeling.sam.transformer.RoPEAttention", {
        "rope_theta": "rope_theta", "feat_sizes": "feat_sizes", "embedding_dim": None,
        "num_heads": (FIXED, 1), "downsample_rate": (FIXED, 1), "dropout": None,
        "rope_k_repeat": (FIXED, False)}),
    "memory_attention.layer.cross_attention": ("sam2.modeling.sam.transformer.RoPEAttention", {
        "rope_theta": None, "feat_sizes": None, "rope_k_repeat": (FIXED, True), "embedding_dim": None,
        "num_heads": (FIXED, 1), "downsample_rate": (FIXED, 1), "dropout": None, "kv_in_dim": "kv_in_dim"}),
    "memory_encoder": ("sam2.modeling.memory_encoder.MemoryEncoder", {
        "out_dim": "out_dim", "in_dim": "in_dim", "position_encoding": None, "mask_downsampler": None,
        "fuser": None}),
    "memory_encoder.mask_downsampler": ("sam2.modeling.memory_encoder.MaskDownSampler", {
        "embed_dim": "downsampler_embed_dim", "kernel_size": (FIXED, 3), "stride": (FIXED, 2),
        "padding": (FIXED, 1), "total_stride": (FIXED, 16)}),
    "memory_encoder.fuser": ("sam2.modeling.memory_encoder.Fuser", {
        "layer": None, "num_layers": "fuser_num_layers", "input_projection": (FIXED, False)}),
    "memory_encoder.fuser.layer": ("sam2.modeling.memory_encoder.CXBlock", {
        "dim": None, "kernel_size": (FIXED, 7), "padding": (FIXED, 3), "layer_scale_init_value": None,
        "use_dwconv": (FIXED, True), "drop_path": (FIXED, 0.0)}),
}

_POSITION_ENCODING = ("sam2.modeling.position_encoding.PositionEmbeddingSine",
                      {"num_pos_feats": None, "normalize": (FIXED, True), "scale": (FIXED, None),
                       "temperature": (FIXED, 10000)})

# Top-level model keys that every official config sets to one value (folded into code).
_FIXED_MODEL_KEYS = {
    "use_high_res_features_in_sam": True, "directly_add_no_mem_embed": True,
    "iou_prediction_use_sigmoid": True, "pred_obj_scores": True, "pred_obj_scores_mlp": True,
    "fixed_no_obj_ptr": True, "soft_no_obj_ptr": False, "use_obj_ptrs_in_encoder": True,
    "use_mlp_for_obj_ptr_proj": True, "use_multimask_token_for_obj_ptr": True,
}
_COMPILE_KEY = "compile_image_encoder"  # torch.compile of the image encoder (sam2.compilation)
_TRACKER_KEYS = {f.name for f in dataclasses.fields(TrackerConfig)}
_VIDEO_KEYS = {f.name for f in dataclasses.fields(VideoOptions)}
_DECODER_KEYS = {f.name for f in dataclasses.fields(DecoderOptions)}


@dataclasses.dataclass(frozen=True)
class ResolvedConfig:
    """A model config plus what the YAML / overrides said about the model class."""

    model: ModelConfig
    target: str = "sam2.modeling.sam2_base.SAM2Base"
    compile_image_encoder: bool = False


def _compile_flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def _as_tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _walk(node: dict, path: str, where: str, out: dict[str, dict[str, Any]]) -> None:
    """Validate ``node`` against the schema entry at ``path`` and collect its field values."""
    target, keys = _POSITION_ENCODING if path.endswith("position_encoding") else _SCHEMA[path]
    if not isinstance(node, dict):
        raise ConfigError(f"{where}: model.{path} must be a mapping, got {node!r}")
    got_target = node.get("_target_")
    if got_target != target:
        raise ConfigError(f"{where}: model.{path}._target_ is {got_target!r}; sam2-kit supports {target!r}")
    values = out.setdefault(path, {})
    for key, value in node.items():
        if key == "_target_":
            continue
        if key not in keys:
            raise ConfigError(f"{where}: unknown key model.{path}.{key}")
        rule = keys[key]
        if isinstance(rule, tuple):
            if not _same(value, rule[1]):
                raise ConfigError(f"{where}: model.{path}.{key} = {value!r} is not supported "
                                  f"(every official SAM 2 config uses {rule[1]!r})")
        elif isinstance(value, dict) and "_target_" in value:
            _walk(value, f"{path}.{key}", where, out)
        else:
            values[key if rule is None else rule] = _as_tuple(value)


def _check_equal(where: str, what: str, a: Any, b: Any) -> None:
    if not _same(a, b):
        raise ConfigError(f"{where}: {what} is {a!r} but must equal {b!r}")


def model_config_from_dict(tree: dict, where: str = "<config>") -> ResolvedConfig:
    """Map a parsed official-schema YAML tree (with a top-level ``model`` key) onto our dataclasses."""
    if not isinstance(tree, dict) or not isinstance(tree.get("model"), dict):
        raise ConfigError(f"{where}: expected a top-level 'model:' mapping (official SAM 2 config schema)")
    unknown_top = set(tree) - {"model"}
    if unknown_top:
        raise ConfigError(f"{where}: unknown top-level keys {sorted(unknown_top)} (only 'model' is read)")
    model = dict(tree["model"])
    target = model.pop("_target_", None)
    if target not in MODEL_TARGETS:
        raise ConfigError(f"{where}: model._target_ is {target!r}; supported: {sorted(MODEL_TARGETS)}")
    nodes: dict[str, dict[str, Any]] = {}
    tracker, video, decoder = {}, {}, {}
    compile_image_encoder = False
    for section in ("image_encoder", "memory_attention", "memory_encoder"):
        if section not in model:
            raise ConfigError(f"{where}: model.{section} is missing")
        _walk(model.pop(section), section, where, nodes)
    for key, value in model.items():
        if key in _FIXED_MODEL_KEYS:
            if value != _FIXED_MODEL_KEYS[key]:
                raise ConfigError(f"{where}: model.{key} = {value!r} is not supported "
                                  f"(every official config uses {_FIXED_MODEL_KEYS[key]!r})")
        elif key == _COMPILE_KEY:
            compile_image_encoder = _compile_flag(value, f"{where}: model.{key}")
        elif key in _TRACKER_KEYS:
            tracker[key] = _as_tuple(value)
        elif key in _VIDEO_KEYS:
            video[key] = value
        elif key == "sam_mask_decoder_extra_args":
            for k, v in (value or {}).items():
                if k not in _DECODER_KEYS:
                    raise ConfigError(f"{where}: unknown key model.sam_mask_decoder_extra_args.{k}")
                decoder[k] = v
        else:
            raise ConfigError(f"{where}: unknown key model.{key}")

    for path in list(_SCHEMA) + [f"{p}.position_encoding" for p in ("image_encoder.neck", "memory_encoder")]:
        if path not in nodes:
            raise ConfigError(f"{where}: model.{path} is missing")
    trunk = HieraConfig(**nodes["image_encoder.trunk"])
    neck_vals = nodes["image_encoder.neck"]
    neck = NeckConfig(d_model=neck_vals["d_model"])
    _check_equal(where, "model.image_encoder.neck.backbone_channel_list",
                 neck_vals.get("backbone_channel_list"), trunk.channel_list)
    _check_equal(where, "model.image_encoder.neck.position_encoding.num_pos_feats",
                 nodes["image_encoder.neck.position_encoding"].get("num_pos_feats"), neck.d_model)
    # The top-level d_model goes last so that every nested width is checked against it below.
    ma_vals = {**nodes["memory_attention.layer"], **nodes["memory_attention.layer.self_attention"],
               **nodes["memory_attention.layer.cross_attention"], **nodes["memory_attention"]}
    attn = MemoryAttentionConfig(**{k: v for k, v in ma_vals.items()
                                    if k in {f.name for f in dataclasses.fields(MemoryAttentionConfig)}})
    for sub in ("layer", "layer.self_attention", "layer.cross_attention"):
        for key in ("d_model", "embedding_dim"):
            if key in nodes[f"memory_attention.{sub}"]:
                _check_equal(where, f"model.memory_attention.{sub}.{key}",
                             nodes[f"memory_attention.{sub}"][key], attn.d_model)
    _check_equal(where, "model.memory_attention.d_model", attn.d_model, neck.d_model)
    enc = MemoryEncoderConfig(**nodes["memory_encoder"], **nodes["memory_encoder.mask_downsampler"],
                              **nodes["memory_encoder.fuser"])
    _check_equal(where, "model.memory_encoder.in_dim", enc.in_dim, neck.d_model)
    _check_equal(where, "model.memory_encoder.mask_downsampler.embed_dim", enc.downsampler_embed_dim, enc.in_dim)
    _check_equal(where, "model.memory_encoder.fuser.layer.dim", nodes["memory_encoder.fuser.layer"].get("dim"),
                 enc.in_dim)
    _check_equal(where, "model.memory_encoder.position_encoding.num_pos_feats",
                 nodes["memory_encoder.position_encoding"].get("num_pos_feats"), enc.out_dim)
    _check_equal(where, "model.memory_attention.layer.cross_attention.kv_in_dim", attn.kv_in_dim, enc.out_dim)
    cfg = ModelConfig(name=Path(where).stem, trunk=trunk, neck=neck, memory_attention=attn,
                      memory_encoder=enc, tracker=TrackerConfig(**tracker),
                      decoder=DecoderOptions(**decoder), video=VideoOptions(**video))
    problems = config_problems(cfg)
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return ResolvedConfig(cfg, target, compile_image_encoder)


def load_yaml_config(path: str | Path) -> ResolvedConfig:
    """Read one YAML file in the official schema."""
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start}); "
                          "a config must be YAML text in UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return model_config_from_dict(tree, str(path))


def resolve_config(config_file: str | Path) -> ResolvedConfig:
    """An existing YAML file, an official config name (``configs/sam2.1/sam2.1_hiera_l.yaml``,
    legacy ``sam2_hiera_l.yaml``) or a model name (``sam2.1_hiera_tiny``) -> config."""
    path = Path(config_file)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return load_yaml_config(path)
    name = str(config_file)
    for prefix in ("sam2/", "pkg://sam2/"):
        name = name.removeprefix(prefix)
    try:
        release = find_release(name)
    except KeyError:
        raise ConfigError(
            f"config {str(config_file)!r} is neither an existing YAML file nor an official config name "
            f"such as 'configs/sam2.1/sam2.1_hiera_l.yaml' or 'configs/sam2/sam2_hiera_t.yaml'") from None
    return ResolvedConfig(get_preset(release.preset))


def parse_override(text: str) -> tuple[str, Any]:
    """``++model.a.b=value`` -> (``"a.b"``, parsed value)."""
    body = text.strip().lstrip("+")
    if "=" not in body:
        raise ConfigError(f"override {text!r} is not of the form ++model.<key>=<value>")
    key, raw = body.split("=", 1)
    if not key.startswith("model."):
        raise ConfigError(f"override {text!r}: only keys under 'model.' are supported")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot parse the value: {exc}") from exc
    return key[len("model."):], value


def apply_overrides(resolved: ResolvedConfig, overrides: Iterable[str]) -> ResolvedConfig:
    """Apply ``++model.<key>=<value>`` overrides in order (later ones win)."""
    cfg, target, compile_image_encoder = resolved.model, resolved.target, resolved.compile_image_encoder
    for text in overrides:
        key, value = parse_override(text)
        if key == "_target_":
            if value not in MODEL_TARGETS:
                raise ConfigError(f"override {text!r}: model class {value!r} is not supported")
            target = value
        elif key == _COMPILE_KEY:
            compile_image_encoder = _compile_flag(value, f"override {text!r}")
        elif key in _FIXED_MODEL_KEYS:
            if value != _FIXED_MODEL_KEYS[key]:
                raise ConfigError(f"override {text!r}: every official config uses {_FIXED_MODEL_KEYS[key]!r}; "
                                  "other values are not supported")
        elif key in _TRACKER_KEYS:
            cfg = dataclasses.replace(cfg, tracker=_replace(cfg.tracker, key, value, text))
        elif key in _VIDEO_KEYS:
            cfg = dataclasses.replace(cfg, video=_replace(cfg.video, key, value, text))
        elif key.startswith("sam_mask_decoder_extra_args.") and key.split(".", 1)[1] in _DECODER_KEYS:
            cfg = dataclasses.replace(cfg, decoder=_replace(cfg.decoder, key.split(".", 1)[1], value, text))
        else:
            raise ConfigError(
                f"override {text!r}: unknown or unsupported key model.{key}. Supported: model._target_, "
                f"model.sam_mask_decoder_extra_args.<{'|'.join(sorted(_DECODER_KEYS))}>, and model.<key> for "
                f"{', '.join(sorted(_TRACKER_KEYS | _VIDEO_KEYS))}")
    problems = config_problems(cfg)
    if problems:
        raise ConfigError(f"config {cfg.name!r} after the overrides: " + "; ".join(problems))
    return ResolvedConfig(cfg, target, compile_image_encoder)


def _replace(section: Any, key: str, value: Any, text: str) -> Any:
    current = getattr(section, key)
    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif isinstance(current, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(current, int) and not isinstance(value, int):
            ok = float(value).is_integer()
            value = int(value)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"override {text!r}: model.{key} expects a {type(current).__name__}, got {value!r}")
    return dataclasses.replace(section, **{key: _as_tuple(value)})
