"""The two image-path graphs (image encoder, prompt encoder + mask decoder) and the one export call.

Both wrappers reuse the model's own modules, so the exported numbers are the PyTorch numbers. The
encoder's outputs are the raw features the video path needs as well; everything that depends on the
caller (``no_mem_embed``, multimask choice, padding point) stays outside the graphs.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from sam2.export.graph_spec import GraphSpec, TensorSpec
from sam2.modeling.sam2_base import SAM2Base

log = logging.getLogger(__name__)

ENCODER_FILE = "image_encoder.onnx"
DECODER_FILE = "prompt_decoder.onnx"
EXPORTER = "torch.onnx.export(dynamo=False) (TorchScript tracer)"


def onnx_export(module: nn.Module, args: tuple[torch.Tensor, ...], out_dir: Path, spec: GraphSpec,
                dynamic_axes: dict[str, dict[int, str]], opset: int, input_names: list[str] | None = None) -> None:
    """Export ``module(*args)`` to ``out_dir / spec.file`` with the input and output names of ``spec``
    (``input_names`` when the module takes an input the graph may drop): the one place that picks the
    exporter and its settings.

    The TorchScript tracer is used (``dynamo=False``): it keeps named dynamic axes on every input we mark
    (including a point count of 0) and exports the whole micro model in seconds.
    """
    module.eval()
    names_in = input_names if input_names is not None else [t.name for t in spec.inputs]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python bools of constant shapes
        torch.onnx.export(module, args, str(Path(out_dir) / spec.file), input_names=names_in,
                          output_names=[t.name for t in spec.outputs], dynamic_axes=dynamic_axes,
                          opset_version=opset, do_constant_folding=True, dynamo=False)


class ImageEncoderGraph(nn.Module):
    """``image (1, 3, S, S)`` normalized -> ``high_res_feat_0 (1, C/8, S/4, S/4)``,
    ``high_res_feat_1 (1, C/4, S/8, S/8)``, ``image_embed (1, C, S/16, S/16)`` (raw, without
    ``no_mem_embed``) and ``vision_pos_embed (1, C, S/16, S/16)``."""

    def __init__(self, model: SAM2Base) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        out = self.model.forward_image(image)
        fpn, pos = out["backbone_fpn"], out["vision_pos_enc"]
        return fpn[0], fpn[1], fpn[2], pos[2]


class PromptDecoderGraph(nn.Module):
    """Prompt encoder + mask decoder for ``B`` prompts on one image's features.

    Inputs: ``image_embed (1, C, h, w)``, ``high_res_feat_0 (1, C/8, 4h, 4w)``, ``high_res_feat_1
    (1, C/4, 2h, 2w)``, ``point_coords (B, N, 2)`` in the model frame (padding point included by the
    caller, N may be 0), ``point_labels (B, N)`` float, ``mask_input (B, 1, 4h, 4w)``, ``has_mask_input (1,)``.
    Outputs all four mask tokens: ``low_res_masks (B, 4, 4h, 4w)``, ``iou_predictions (B, 4)``,
    ``object_score_logits (B, 1)`` and ``obj_ptr (B, 4, C)`` (``obj_ptr_proj`` of each mask token).
    """

    def __init__(self, model: SAM2Base) -> None:
        super().__init__()
        self.encoder = model.sam_prompt_encoder
        self.decoder = model.sam_mask_decoder
        self.obj_ptr_proj = model.obj_ptr_proj

    def forward(self, image_embed, high_res_feat_0, high_res_feat_1, point_coords, point_labels, mask_input,
                has_mask_input):
        b = point_coords.shape[0]
        sparse = self.encoder._embed_points(point_coords, point_labels, pad=False)
        h, w = self.encoder.image_embedding_size
        no_mask = self.encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(b, -1, h, w)
        has = has_mask_input.reshape(1, 1, 1, 1)
        dense = has * self.encoder.mask_downscaling(mask_input) + (1.0 - has) * no_mask
        masks, iou, tokens, scores = self.decoder.predict_masks(
            image_embed, self.encoder.get_dense_pe(), sparse, dense, repeat_image=True,
            high_res_features=[high_res_feat_0, high_res_feat_1])
        return masks, iou, scores, self.obj_ptr_proj(tokens)


def _sizes(model: SAM2Base) -> tuple[int, int, int]:
    """``(S, C, h)``: image size, hidden dim and the stride-16 grid size."""
    return model.image_size, model.hidden_dim, model.sam_image_embedding_size


def _feature_specs(model: SAM2Base) -> tuple[TensorSpec, TensorSpec, TensorSpec]:
    _, c, h = _sizes(model)
    return (TensorSpec("image_embed", (1, c, h, h)), TensorSpec("high_res_feat_0", (1, c // 8, 4 * h, 4 * h)),
            TensorSpec("high_res_feat_1", (1, c // 4, 2 * h, 2 * h)))


def export_image_encoder(model: SAM2Base, out_dir: Path, opset: int) -> GraphSpec:
    """Write ``image_encoder.onnx`` into ``out_dir``; returns its :class:`GraphSpec`."""
    s, c, h = _sizes(model)
    embed, feat0, feat1 = _feature_specs(model)
    spec = GraphSpec(
        role="image_encoder", file=ENCODER_FILE, inputs=(TensorSpec("image", (1, 3, s, s)),),
        outputs=(feat0, feat1, embed, TensorSpec("vision_pos_embed", (1, c, h, h))),
        notes={"input": "RGB resized to SxS (antialiased bilinear of the [0, 1] image), ImageNet-normalized",
               "image_embed": "raw: the image predictor adds no_mem_embed from constants.npz"})
    dummy = torch.randn(1, 3, s, s)
    onnx_export(ImageEncoderGraph(model), (dummy,), out_dir, spec, {}, opset)
    return spec


def export_prompt_decoder(model: SAM2Base, out_dir: Path, opset: int) -> GraphSpec:
    """Write ``prompt_decoder.onnx`` (dynamic ``num_prompts`` and ``num_points``); returns its spec."""
    _, c, h = _sizes(model)
    embed, feat0, feat1 = _feature_specs(model)
    inputs = (embed, feat0, feat1, TensorSpec("point_coords", ("num_prompts", "num_points", 2)),
              TensorSpec("point_labels", ("num_prompts", "num_points")),
              TensorSpec("mask_input", ("num_prompts", 1, 4 * h, 4 * h)), TensorSpec("has_mask_input", (1,)))
    outputs = (TensorSpec("low_res_masks", ("num_prompts", 4, 4 * h, 4 * h)),
               TensorSpec("iou_predictions", ("num_prompts", 4)),
               TensorSpec("object_score_logits", ("num_prompts", 1)),
               TensorSpec("obj_ptr", ("num_prompts", 4, c)))
    spec = GraphSpec(
        role="prompt_decoder", file=DECODER_FILE, inputs=inputs, outputs=outputs,
        notes={"point_coords": "model frame (0..S), the caller appends the padding point (label -1)",
               "point_labels": "1 positive, 0 negative, 2/3 box corners, -1 padding",
               "low_res_masks": "token 0 = single mask, 1-3 = multimask candidates; not clamped",
               "obj_ptr": "obj_ptr_proj of each mask token, not gated by object presence"})
    gen = torch.Generator().manual_seed(0)
    args = (torch.randn(1, c, h, h, generator=gen), torch.randn(1, c // 8, 4 * h, 4 * h, generator=gen),
            torch.randn(1, c // 4, 2 * h, 2 * h, generator=gen), torch.rand(2, 3, 2, generator=gen) * 4 * h,
            torch.tensor([[1.0, 0.0, -1.0], [2.0, 3.0, -1.0]]), torch.randn(2, 1, 4 * h, 4 * h, generator=gen),
            torch.ones(1))
    axes = {"point_coords": {0: "num_prompts", 1: "num_points"}, "point_labels": {0: "num_prompts", 1: "num_points"},
            "mask_input": {0: "num_prompts"}}
    axes.update({t.name: {0: "num_prompts"} for t in outputs})
    onnx_export(PromptDecoderGraph(model), args, out_dir, spec, axes, opset)
    return spec
