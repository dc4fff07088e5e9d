"""Typed model configuration: one dataclass per component, one preset per released model.

These dataclasses are the single source of truth for model sizes and flags. The official
Hydra YAML files are read into them by :mod:`sam2.config_yaml`; nothing here reads files.
Widths that the official code fixes (mask-decoder MLP 2048, 8 decoder heads, IoU head 256,
16 mask-input channels) are plain constants in the modules that use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class HieraConfig:
    """Hiera trunk. Stage widths double from ``embed_dim``; heads double from ``num_heads``."""

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (2, 3, 16, 3)
    global_att_blocks: tuple[int, ...] = (12, 16, 20)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14)
    q_pool: int = 3
    drop_path_rate: float = 0.0  # stochastic depth (training only; 0.1 in the official fine-tune recipe)

    @property
    def depth(self) -> int:
        return sum(self.stages)

    @property
    def stage_ends(self) -> list[int]:
        ends, total = [], 0
        for n in self.stages:
            total += n
            ends.append(total - 1)
        return ends

    @property
    def channel_list(self) -> list[int]:
        """Output width of each stage, deepest first (what the FPN neck consumes)."""
        return [self.embed_dim * 2**i for i in reversed(range(len(self.stages)))]


@dataclass(frozen=True)
class NeckConfig:
    """FPN neck; its sine position encoding has ``d_model`` features."""

    d_model: int = 256


@dataclass(frozen=True)
class MemoryAttentionConfig:
    """Memory attention (RoPE self/cross attention, 1 head). ``kv_in_dim`` = memory width."""

    d_model: int = 256
    dim_feedforward: int = 2048
    num_layers: int = 4
    kv_in_dim: int = 64
    rope_theta: float = 10000.0
    feat_sizes: tuple[int, int] = (64, 64)
    dropout: float = 0.1


@dataclass(frozen=True)
class MemoryEncoderConfig:
    """Memory encoder: mask downsampler, pixel projection, 2 ConvNeXt blocks, output projection."""

    in_dim: int = 256
    out_dim: int = 64
    downsampler_embed_dim: int = 256
    fuser_num_layers: int = 2


@dataclass(frozen=True)
class TrackerConfig:
    """Flags of the tracking model (``SAM2Base``) that some official config or user varies.

    The four fields marked (2.1) are what differs between SAM 2 and SAM 2.1. Flags that are
    the same in every official config are written as plain code instead.
    """

    num_maskmem: int = 7
    image_size: int = 1024
    backbone_stride: int = 16
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    max_cond_frames_in_attn: int = -1
    memory_temporal_stride_for_eval: int = 1
    max_obj_ptrs_in_encoder: int = 16
    multimask_output_in_sam: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    multimask_output_for_tracking: bool = True
    only_obj_ptrs_in_the_past_for_eval: bool = True
    use_mask_input_as_output_without_sam: bool = True
    non_overlap_masks_for_mem_enc: bool = False
    binarize_mask_from_pts_for_mem_enc: bool = False
    # (2.1) SAM 2.1 switches
    no_obj_embed_spatial: bool = False
    add_tpos_enc_to_obj_ptrs: bool = False
    proj_tpos_enc_in_obj_ptrs: bool = False
    use_signed_tpos_enc_to_obj_ptrs: bool = False


@dataclass(frozen=True)
class DecoderOptions:
    """Mask-decoder behaviour switched on by ``apply_postprocessing`` in the builders."""

    dynamic_multimask_via_stability: bool = False
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98


@dataclass(frozen=True)
class VideoOptions:
    """Options of the video predictor (not part of the model weights)."""

    fill_hole_area: int = 0
    non_overlap_masks: bool = False
    clear_non_cond_mem_around_input: bool = False
    add_all_frames_to_correct_as_cond: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build one SAM 2 / SAM 2.1 model."""

    name: str
    trunk: HieraConfig = field(default_factory=HieraConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    memory_attention: MemoryAttentionConfig = field(default_factory=MemoryAttentionConfig)
    memory_encoder: MemoryEncoderConfig = field(default_factory=MemoryEncoderConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    decoder: DecoderOptions = field(default_factory=DecoderOptions)
    video: VideoOptions = field(default_factory=VideoOptions)

    @property
    def hidden_dim(self) -> int:
        return self.neck.d_model

    @property
    def mem_dim(self) -> int:
        return self.memory_encoder.out_dim

    @property
    def is_sam21(self) -> bool:
        return self.tracker.no_obj_embed_spatial or self.tracker.proj_tpos_enc_in_obj_ptrs


SAM21_TRACKER = TrackerConfig(
    no_obj_embed_spatial=True,
    add_tpos_enc_to_obj_ptrs=True,
    proj_tpos_enc_in_obj_ptrs=True,
    use_signed_tpos_enc_to_obj_ptrs=True,
)

TRUNKS: dict[str, HieraConfig] = {
    "t": HieraConfig(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9),
                     window_pos_embed_bkg_spatial_size=(7, 7)),
    "s": HieraConfig(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13),
                     window_pos_embed_bkg_spatial_size=(7, 7)),
    "b+": HieraConfig(embed_dim=112, num_heads=2),
    "l": HieraConfig(embed_dim=144, num_heads=2, stages=(2, 6, 36, 4), global_att_blocks=(23, 33, 43),
                     window_spec=(8, 4, 16, 8), window_pos_embed_bkg_spatial_size=(7, 7)),
}


def _preset(version: str, size: str) -> ModelConfig:
    prefix = "sam2.1" if version == "2.1" else "sam2"
    tracker = SAM21_TRACKER if version == "2.1" else TrackerConfig()
    return ModelConfig(name=f"{prefix}_hiera_{size}", trunk=TRUNKS[size], tracker=tracker)


PRESETS: dict[str, ModelConfig] = {
    cfg.name: cfg for cfg in (_preset(v, s) for v in ("2", "2.1") for s in ("t", "s", "b+", "l"))
}


def get_preset(name: str) -> ModelConfig:
    """Preset by model name, e.g. ``"sam2.1_hiera_t"``."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown model preset {name!r}; known presets: {sorted(PRESETS)}") from None


def with_updates(cfg: ModelConfig, **sections: dict) -> ModelConfig:
    """Copy of ``cfg`` with some fields of its sections replaced, e.g. ``tracker={"num_maskmem": 0}``."""
    return replace(cfg, **{name: replace(getattr(cfg, name), **vals) for name, vals in sections.items()})
