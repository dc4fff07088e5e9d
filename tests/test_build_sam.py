"""``build_sam2`` / ``build_sam2_video_predictor``: config names, YAML files, device, mode,
``apply_postprocessing`` and ``hydra_overrides_extra``.

Full-size models are built on the ``meta`` device (shapes only, no memory); behaviour is checked on
the micro models of the reference data with synthesized weights.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from sam2 import build_sam
from sam2.build_sam import build_sam2, build_sam2_video_predictor, default_device
from sam2.config import DecoderOptions, VideoOptions, get_preset
from sam2.config_yaml import ConfigError
from sam2.modeling.sam2_base import SAM2Base
from sam2.sam2_video_predictor import SAM2VideoPredictor
from tests import reference as R

pytestmark = R.requires_reference

MICRO20, MICRO21 = "sam2_hiera_micro", "sam2.1_hiera_micro"


def _meta_build(config, **kwargs) -> SAM2Base:
    with torch.device("meta"):
        return build_sam2(config, device="meta", **kwargs)


def _num_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def micro_ckpt(tmp_path_factory) -> Path:
    return R.write_checkpoint(tmp_path_factory.mktemp("micro") / "micro21.pt", MICRO21, seed=1)


# ------------------------------------------------------------------------------ config names

@pytest.mark.parametrize(("config", "preset"), [
    ("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_l"),
    ("configs/sam2/sam2_hiera_t.yaml", "sam2_hiera_t"),
    ("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_b+"),
    ("sam2_hiera_l.yaml", "sam2_hiera_l"),  # legacy top-level alias of the official package
    ("sam2.1_hiera_small", "sam2.1_hiera_s"),  # release (checkpoint) name
    ("sam2_hiera_tiny.pt", "sam2_hiera_t"),  # checkpoint file name
    ("sam2/configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_t"),  # package-qualified
])
def test_official_names_build_the_matching_model(config: str, preset: str) -> None:
    model = _meta_build(config)
    assert isinstance(model, SAM2Base)
    assert model.device.type == "meta"
    expected = get_preset(preset)
    assert model.cfg.trunk == expected.trunk
    assert model.cfg.tracker == expected.tracker
    assert model.cfg.memory_attention == expected.memory_attention
    assert model.cfg.memory_encoder == expected.memory_encoder
    man = R.manifest(preset)
    assert _num_parameters(model) == man["num_parameters"]
    assert list(model.state_dict()) == [e["name"] for e in man["keys"]]


def test_release_name_and_config_name_give_identical_models() -> None:
    a = _meta_build("configs/sam2/sam2_hiera_s.yaml")
    b = _meta_build("sam2_hiera_small")
    assert a.cfg == b.cfg


def test_unknown_config_name_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as info:
        build_sam2("configs/sam2.1/sam2.1_hiera_xxl.yaml", device="cpu")
    msg = str(info.value)
    assert "sam2.1_hiera_xxl.yaml" in msg
    assert "configs/sam2.1/sam2.1_hiera_l.yaml" in msg  # names what would be accepted


def test_missing_yaml_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "my_model.yaml"
    with pytest.raises(ConfigError, match="my_model.yaml"):
        build_sam2(str(path), device="cpu")


@pytest.mark.parametrize("model", [MICRO20, MICRO21])
@pytest.mark.parametrize("as_path", [False, True])
def test_yaml_path_builds_the_micro_model(model: str, as_path: bool) -> None:
    config = R.config_for(model)
    net = build_sam2(Path(config) if as_path else config, device="cpu")
    assert net.cfg.trunk.embed_dim == 16 and net.hidden_dim == 32 and net.mem_dim == 16
    assert net.cfg.is_sam21 == (model == MICRO21)
    man = R.manifest(model)
    assert _num_parameters(net) == man["num_parameters"]
    assert [(k, list(v.shape)) for k, v in net.state_dict().items()] == \
        [(e["name"], e["shape"]) for e in man["keys"]]


# ------------------------------------------------------------------------------ device and mode

@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_default_device_is_cpu_without_cuda(micro_ckpt) -> None:
    assert default_device() == torch.device("cpu")
    net = build_sam2(R.config_for(MICRO21), micro_ckpt)
    assert {p.device.type for p in net.parameters()} == {"cpu"}
    assert {b.device.type for b in net.buffers()} == {"cpu"}


def test_default_device_prefers_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert build_sam.default_device() == torch.device("cuda")


def test_explicit_device_is_used(micro_ckpt) -> None:
    net = build_sam2(R.config_for(MICRO21), micro_ckpt, device=torch.device("meta"))
    assert {p.device.type for p in net.parameters()} == {"meta"}


def test_mode_eval_and_train(micro_ckpt) -> None:
    state = torch.load(micro_ckpt, map_location="cpu", weights_only=True)["model"]
    evaluated = build_sam2(R.config_for(MICRO21), micro_ckpt, device="cpu")
    trained = build_sam2(R.config_for(MICRO21), micro_ckpt, device="cpu", mode="train")
    assert not any(m.training for m in evaluated.modules())
    assert all(m.training for m in trained.modules())
    for net in (evaluated, trained):  # the checkpoint is loaded in both modes
        got = net.state_dict()
        assert all(torch.equal(got[k], v) for k, v in state.items())


def test_video_predictor_mode(micro_ckpt) -> None:
    predictor = build_sam2_video_predictor(R.config_for(MICRO21), micro_ckpt, device="cpu", mode="train",
                                           vos_optimized=True)
    assert isinstance(predictor, SAM2VideoPredictor)
    assert predictor.model.training
    predictor = build_sam2_video_predictor(R.config_for(MICRO21), micro_ckpt, device="cpu")
    assert not predictor.model.training


# ------------------------------------------------------------------------------ apply_postprocessing

def test_apply_postprocessing_sets_decoder_options() -> None:
    on = build_sam2(R.config_for(MICRO21), device="meta").sam_mask_decoder.options
    off = build_sam2(R.config_for(MICRO21), device="meta", apply_postprocessing=False).sam_mask_decoder.options
    assert on == DecoderOptions(dynamic_multimask_via_stability=True, dynamic_multimask_stability_delta=0.05,
                                dynamic_multimask_stability_thresh=0.98)
    assert off.dynamic_multimask_via_stability is False


def test_apply_postprocessing_video_options() -> None:
    on = build_sam2_video_predictor(R.config_for(MICRO21), device="meta")
    off = build_sam2_video_predictor(R.config_for(MICRO21), device="meta", apply_postprocessing=False)
    assert on.fill_hole_area == 8 and off.fill_hole_area == 0
    assert on.model.cfg.tracker.binarize_mask_from_pts_for_mem_enc
    assert not off.model.cfg.tracker.binarize_mask_from_pts_for_mem_enc
    assert on.model.sam_mask_decoder.options.dynamic_multimask_via_stability
    assert not off.model.sam_mask_decoder.options.dynamic_multimask_via_stability


def _decoder_inputs(model: SAM2Base):
    """Fixed random image features and the prompt embeddings of one click."""
    g = torch.Generator().manual_seed(0)
    size = model.sam_image_embedding_size
    embed = torch.randn(1, model.hidden_dim, size, size, generator=g)
    high_res = [torch.randn(1, model.hidden_dim // 8, 4 * size, 4 * size, generator=g),
                torch.randn(1, model.hidden_dim // 4, 2 * size, 2 * size, generator=g)]
    points = (torch.tensor([[[300.0, 400.0]]]), torch.tensor([[1]], dtype=torch.int32))
    with torch.no_grad():
        sparse, dense = model.sam_prompt_encoder(points=points, boxes=None, masks=None)
    return embed, model.sam_prompt_encoder.get_dense_pe(), sparse, dense, high_res


def _single_mask(model: SAM2Base) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's single-mask output (``multimask_output=False``): masks and IoU."""
    embed, pe, sparse, dense, high_res = _decoder_inputs(model)
    with torch.no_grad():
        out = model.sam_mask_decoder(embed, pe, sparse, dense, multimask_output=False, repeat_image=False,
                                     high_res_features=high_res)
    return out.masks, out.iou


def _micro(ckpt, **kwargs) -> SAM2Base:
    return build_sam2(R.config_for(MICRO21), ckpt, device="cpu", **kwargs)


def test_postprocessing_changes_single_mask_choice(micro_ckpt) -> None:
    """Dynamic multimask: an unstable single-mask output is replaced by the best multimask candidate."""
    never_stable = ["++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=1.5"]
    always_stable = ["++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.0"]
    plain = _micro(micro_ckpt, apply_postprocessing=False)
    embed, pe, sparse, dense, high_res = _decoder_inputs(plain)
    with torch.no_grad():  # all 4 mask tokens: 0 = single-mask output, 1-3 = multimask candidates
        all_masks, all_iou, _, _ = plain.sam_mask_decoder.predict_masks(embed, pe, sparse, dense, False, high_res)
    plain_masks, plain_iou = _single_mask(plain)
    assert torch.equal(plain_masks, all_masks[:, 0:1]) and torch.equal(plain_iou, all_iou[:, 0:1])

    best = int(torch.argmax(all_iou[0, 1:])) + 1
    masks, iou = _single_mask(_micro(micro_ckpt, hydra_overrides_extra=never_stable))
    assert torch.equal(masks, all_masks[:, best:best + 1]) and torch.equal(iou, all_iou[:, best:best + 1])
    assert not torch.equal(masks, plain_masks)

    masks, _ = _single_mask(_micro(micro_ckpt, hydra_overrides_extra=always_stable))
    assert torch.equal(masks, plain_masks)

    # The default threshold (0.98) decides by the stability of token 0.
    delta = 0.05
    single = all_masks[0, 0].flatten()
    stability = float((single > delta).sum()) / max(float((single > -delta).sum()), 1.0)
    masks, _ = _single_mask(_micro(micro_ckpt))
    expected = all_masks[:, 0:1] if stability >= 0.98 else all_masks[:, best:best + 1]
    assert torch.equal(masks, expected)

    # Training mode never switches (as in the official decoder).
    masks, _ = _single_mask(_micro(micro_ckpt, mode="train", hydra_overrides_extra=never_stable))
    assert torch.allclose(masks, plain_masks)


# ------------------------------------------------------------------------------ hydra_overrides_extra

def test_known_model_overrides_are_applied() -> None:
    net = build_sam2(R.config_for(MICRO21), device="meta", hydra_overrides_extra=[
        "++model.num_maskmem=3",
        "++model.max_obj_ptrs_in_encoder=4",
        "++model.sigmoid_scale_for_mem_enc=10.0",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.1",
        "++model.compile_image_encoder=true",  # compiles lazily: nothing runs here
        "++model.use_high_res_features_in_sam=true",  # fixed flag, official value
    ])
    t = net.cfg.tracker
    assert (t.num_maskmem, t.max_obj_ptrs_in_encoder, t.sigmoid_scale_for_mem_enc) == (3, 4, 10.0)
    assert net.num_maskmem == 3 and tuple(net.maskmem_tpos_enc.shape) == (3, 1, 1, 16)
    assert net.sam_mask_decoder.options.dynamic_multimask_stability_delta == 0.1
    # untouched fields keep the YAML values
    assert t.image_size == 1024 and t.no_obj_embed_spatial


def test_override_forms_and_order() -> None:
    net = build_sam2(R.config_for(MICRO21), device="meta",
                     hydra_overrides_extra=["model.max_obj_ptrs_in_encoder=4", "+model.max_obj_ptrs_in_encoder=5"])
    assert net.cfg.tracker.max_obj_ptrs_in_encoder == 5  # later overrides win
    net = build_sam2(R.config_for(MICRO21), device="meta", hydra_overrides_extra="++model.num_maskmem=2")
    assert net.num_maskmem == 2  # a single string is one override


def test_overrides_on_an_official_name() -> None:
    net = _meta_build("configs/sam2.1/sam2.1_hiera_t.yaml", hydra_overrides_extra=["++model.num_maskmem=5"])
    assert net.num_maskmem == 5
    assert dataclasses.replace(net.cfg.tracker, num_maskmem=7) == get_preset("sam2.1_hiera_t").tracker


def test_video_overrides_reach_the_predictor() -> None:
    predictor = build_sam2_video_predictor(R.config_for(MICRO21), device="meta", hydra_overrides_extra=[
        "++model.non_overlap_masks=true",
        "++model.clear_non_cond_mem_around_input=true",
        "++model.add_all_frames_to_correct_as_cond=true",
    ])
    assert predictor.non_overlap_masks and predictor.clear_non_cond_mem_around_input
    assert predictor.add_all_frames_to_correct_as_cond
    assert predictor.fill_hole_area == 8  # still the postprocessing default


def test_caller_overrides_win_over_postprocessing() -> None:
    predictor = build_sam2_video_predictor(R.config_for(MICRO21), device="meta", hydra_overrides_extra=[
        "++model.fill_hole_area=0",
        "++model.binarize_mask_from_pts_for_mem_enc=false",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=false",
    ])
    assert predictor.fill_hole_area == 0
    assert not predictor.model.cfg.tracker.binarize_mask_from_pts_for_mem_enc
    assert not predictor.model.sam_mask_decoder.options.dynamic_multimask_via_stability
    net = build_sam2(R.config_for(MICRO21), device="meta", hydra_overrides_extra=[
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.5"])
    assert net.sam_mask_decoder.options.dynamic_multimask_stability_thresh == 0.5
    assert net.sam_mask_decoder.options.dynamic_multimask_via_stability  # the rest of postprocessing stays


def test_video_options_apply_without_postprocessing() -> None:
    predictor = build_sam2_video_predictor(R.config_for(MICRO21), device="meta", apply_postprocessing=False,
                                           hydra_overrides_extra=["++model.fill_hole_area=3"])
    assert predictor.fill_hole_area == 3
    assert dataclasses.asdict(VideoOptions(fill_hole_area=3)) == {
        k: getattr(predictor, k) for k in dataclasses.asdict(VideoOptions())}


def test_target_override() -> None:
    net = build_sam2(R.config_for(MICRO21), device="meta",
                     hydra_overrides_extra=["++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor"])
    assert isinstance(net, SAM2Base)
    with pytest.raises(ConfigError, match="my.models.Custom"):
        build_sam2(R.config_for(MICRO21), device="meta", hydra_overrides_extra=["++model._target_=my.models.Custom"])


def test_unknown_override_key_lists_supported_keys() -> None:
    with pytest.raises(ConfigError) as info:
        build_sam2(R.config_for(MICRO21), device="meta", hydra_overrides_extra=["++model.bogus_flag=true"])
    msg = str(info.value)
    assert "model.bogus_flag" in msg and "Supported" in msg
    for key in ("num_maskmem", "fill_hole_area", "dynamic_multimask_via_stability", "_target_"):
        assert key in msg


def test_unknown_decoder_option_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"model\.sam_mask_decoder_extra_args\.bogus"):
        build_sam2(R.config_for(MICRO21), device="meta",
                   hydra_overrides_extra=["++model.sam_mask_decoder_extra_args.bogus=1"])


@pytest.mark.parametrize(("override", "pattern"), [
    ("++model.fill_hole_area", "not of the form"),  # no '='
    ("fill_hole_area=0", "only keys under 'model.'"),
    ("++trainer.max_epochs=3", "only keys under 'model.'"),
    ("++model.num_maskmem=[1", "cannot parse"),
    ("++model.num_maskmem=abc", "expects a int"),
    ("++model.num_maskmem=2.5", "expects a int"),
    ("++model.multimask_output_in_sam=3", "expects a bool"),
    ("++model.use_high_res_features_in_sam=false", "other values are not supported"),
])
def test_malformed_overrides(override: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        build_sam2(R.config_for(MICRO21), device="meta", hydra_overrides_extra=[override])
    assert override in str(info.value)


# ------------------------------------------------------------------------------ hardening (issue 12)

@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"mode": "test"}, "mode must be 'eval' or 'train', got 'test'"),
    ({"mode": None}, "mode must be 'eval' or 'train'"),
    ({"hydra_overrides_extra": [3]}, "hydra_overrides_extra must hold strings.*got 3 .int."),
    ({"hydra_overrides_extra": ["++model.fill_hole_area=8", None]}, "hydra_overrides_extra must hold strings"),
    ({"hydra_overrides_extra": 5}, "hydra_overrides_extra must be a list of strings"),
    ({"hydra_overrides_extra": ["++model.image_size=1000"]}, "image_size must be a positive multiple of 32"),
    ({"hydra_overrides_extra": ["++model.image_size=-32"]}, "image_size must be a positive multiple of 32"),
    ({"hydra_overrides_extra": ["++model.memory_temporal_stride_for_eval=0"]},
     "memory_temporal_stride_for_eval must be >= 1, got 0"),
])
@pytest.mark.parametrize("builder", [build_sam2, build_sam2_video_predictor])
def test_bad_builder_arguments_are_named(builder, kwargs, pattern, micro_ckpt) -> None:
    with pytest.raises(ValueError, match=pattern):
        builder(R.config_for(MICRO21), micro_ckpt, device="cpu", **kwargs)


@pytest.mark.parametrize(("old", "new", "pattern"), [
    ("num_maskmem: 7", "num_maskmem: seven", "num_maskmem must be int, got 'seven'"),
    ("image_size: 1024", "image_size: 1000", "image_size must be a positive multiple of 32"),
])
def test_bad_yaml_values_name_the_file_and_key(tmp_path, old, new, pattern) -> None:
    text = Path(R.config_for(MICRO21)).read_text()
    assert old in text
    path = tmp_path / "edited.yaml"
    path.write_text(text.replace(old, new))
    with pytest.raises(ConfigError, match=pattern) as info:
        build_sam2(str(path), device="meta")
    assert str(path) in str(info.value)


def test_non_utf8_config_file_is_named(tmp_path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(Path(R.config_for(MICRO21)).read_text().replace("# ", "# caf\xe9 ").encode("latin-1"))
    with pytest.raises(ConfigError, match="not a UTF-8 text file") as info:
        build_sam2(str(path), device="meta")
    assert str(path) in str(info.value)


def _imported_modules(path: Path) -> set[str]:
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):  # nested (lazy) imports count too
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_no_import_circle_between_builder_and_video_predictor() -> None:
    import sam2.sam2_video_predictor as vp

    assert "sam2.build_sam" not in _imported_modules(Path(vp.__file__))
    assert "sam2.sam2_video_predictor" in _imported_modules(Path(build_sam.__file__))


def test_video_predictor_from_pretrained_builds_like_the_builder(micro_ckpt, monkeypatch) -> None:
    import sam2.model_builder as mb

    monkeypatch.setattr(mb, "hf_download", lambda model_id: (R.config_for(MICRO21), str(micro_ckpt)))
    ours = SAM2VideoPredictor.from_pretrained("facebook/sam2.1-hiera-tiny", device="cpu",
                                              hydra_overrides_extra=["++model.fill_hole_area=3"])
    built = build_sam2_video_predictor(R.config_for(MICRO21), micro_ckpt, device="cpu",
                                       hydra_overrides_extra=["++model.fill_hole_area=3"])
    assert ours.fill_hole_area == built.fill_hole_area == 3
    for (k, a), (_, b) in zip(ours.model.state_dict().items(), built.model.state_dict().items()):
        assert torch.equal(a, b), k
