"""Export of the video-only graphs (memory attention, memory encoder) and the constants they need.

The image encoder and the prompt encoder + mask decoder are shared with the image path
(:mod:`sam2.export.image_graphs`); everything that selects memories, gates pointers or picks masks is
plain numpy in :mod:`sam2.export.memory_bank` / :mod:`sam2.export.runtime_video`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sam2.export.graph_spec import GraphSpec, TensorSpec
from sam2.export.image_graphs import onnx_export
from sam2.export.video_modules import MemoryAttentionGraph, MemoryEncoderGraph
from sam2.modeling.sam2_base import SAM2Base

MEMORY_ATTENTION_FILE = "memory_attention.onnx"
MEMORY_ENCODER_FILE = "memory_encoder.onnx"


def export_memory_attention(model: SAM2Base, out_dir: Path, opset: int) -> GraphSpec:
    """Write ``memory_attention.onnx`` (dynamic ``num_memories`` and ``num_ptr_tokens``)."""
    c, m, h = model.hidden_dim, model.mem_dim, model.sam_image_embedding_size
    inputs = (TensorSpec("image_embed", (1, c, h, h)), TensorSpec("vision_pos_embed", (1, c, h, h)),
              TensorSpec("memory", ("num_memories", h * h, m)), TensorSpec("memory_pos", ("num_memories", h * h, m)),
              TensorSpec("obj_ptr_tokens", ("num_ptr_tokens", m)), TensorSpec("obj_ptr_pos", ("num_ptr_tokens", m)))
    outputs = (TensorSpec("pix_feat", (1, c, h, h)),)
    spec = GraphSpec(
        role="memory_attention", file=MEMORY_ATTENTION_FILE, inputs=inputs, outputs=outputs,
        notes={"memory": "spatial memories (maskmem_features flattened row-major, channels last); num_memories >= 1",
               "memory_pos": "maskmem_pos_enc + maskmem_tpos_enc[num_maskmem - t_pos - 1]",
               "obj_ptr_tokens": "object pointers split into hidden_dim / mem_dim tokens each; may be empty",
               "pix_feat": "memory-conditioned features for the prompt_decoder graph"})
    gen = torch.Generator().manual_seed(0)
    args = (torch.randn(1, c, h, h, generator=gen), torch.randn(1, c, h, h, generator=gen),
            torch.randn(3, h * h, m, generator=gen), torch.randn(3, h * h, m, generator=gen),
            torch.randn(6, m, generator=gen), torch.randn(6, m, generator=gen))
    axes = {"memory": {0: "num_memories"}, "memory_pos": {0: "num_memories"},
            "obj_ptr_tokens": {0: "num_ptr_tokens"}, "obj_ptr_pos": {0: "num_ptr_tokens"}}
    onnx_export(MemoryAttentionGraph(model), args, out_dir, spec, axes, opset)
    return spec


def export_memory_encoder(model: SAM2Base, out_dir: Path, opset: int) -> GraphSpec:
    """Write ``memory_encoder.onnx`` (fixed shapes)."""
    c, m, h = model.hidden_dim, model.mem_dim, model.sam_image_embedding_size
    inputs = (TensorSpec("image_embed", (1, c, h, h)), TensorSpec("mask_logits", (1, 1, 4 * h, 4 * h)),
              TensorSpec("object_score_logits", (1, 1)), TensorSpec("binarize", (1,)))
    if model.no_obj_embed_spatial is None:  # SAM 2: the score is unused and the exporter drops the input
        inputs = tuple(t for t in inputs if t.name != "object_score_logits")
    outputs = (TensorSpec("maskmem_features", (1, m, h, h)), TensorSpec("maskmem_pos_enc", (1, m, h, h)))
    spec = GraphSpec(
        role="memory_encoder", file=MEMORY_ENCODER_FILE, inputs=inputs, outputs=outputs,
        notes={"image_embed": "raw image-encoder features (no memory conditioning)",
               "mask_logits": "the chosen low-res mask logits of the frame (upsampled to SxS inside)",
               "binarize": "1.0 to threshold the mask instead of the sigmoid (binarize_mask_from_pts_for_mem_enc)",
               "maskmem_features": "the PyTorch predictor stores these rounded to bfloat16"})
    gen = torch.Generator().manual_seed(0)
    args = (torch.randn(1, c, h, h, generator=gen), torch.randn(1, 1, 4 * h, 4 * h, generator=gen),
            torch.tensor([[-0.5]]), torch.zeros(1))
    names = ["image_embed", "mask_logits", "object_score_logits", "binarize"]
    onnx_export(MemoryEncoderGraph(model), args, out_dir, spec, {}, opset, input_names=names)
    return spec


def video_constants(model: SAM2Base) -> dict[str, np.ndarray]:
    """Tensors the numpy memory bank needs beyond export-image's constants (state-dict names)."""
    out: dict[str, np.ndarray] = {}
    proj = model.obj_ptr_tpos_proj
    if isinstance(proj, torch.nn.Linear):
        out["obj_ptr_tpos_proj.weight"] = proj.weight.detach().float().cpu().numpy()
        out["obj_ptr_tpos_proj.bias"] = proj.bias.detach().float().cpu().numpy()
    out["mask_downsample.weight"] = model.mask_downsample.weight.detach().float().cpu().numpy()
    out["mask_downsample.bias"] = model.mask_downsample.bias.detach().float().cpu().numpy()
    return out


def export_video_graphs(model: SAM2Base, out_dir: Path, opset: int) -> tuple[list[GraphSpec], dict[str, np.ndarray]]:
    """Write the video graphs into ``out_dir``; -> (their specs, extra constants for constants.npz)."""
    model.eval()
    specs = [export_memory_attention(model, out_dir, opset), export_memory_encoder(model, out_dir, opset)]
    return specs, video_constants(model)
