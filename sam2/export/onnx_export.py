"""``to_onnx``: export a SAM 2 model to a folder of ONNX graphs, a constants file and a manifest.

Everything is written into a hidden staging folder next to the destination, every graph is checked
with ``onnx.checker``, and only then is the folder renamed into place: a failed export leaves nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from sam2.export.errors import ExportError
from sam2.export.graph_spec import GraphSpec
from sam2.export.image_graphs import EXPORTER, export_image_encoder, export_prompt_decoder
from sam2.export.manifest import CONSTANTS_FILE, Manifest, write_manifest
from sam2.modeling.sam2_base import SAM2Base

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
MIN_OPSET = 17  # LayerNormalization is a single op from 17 on
CONSTANT_KEYS = ("no_mem_embed", "no_mem_pos_enc", "no_obj_ptr", "maskmem_tpos_enc", "no_obj_embed_spatial")


def load_model(model_or_config: str | Path | SAM2Base, checkpoint: str | Path | None = None,
               ) -> tuple[SAM2Base, str]:
    """A model instance, or a release name / config (name or YAML) with ``checkpoint`` -> (model, name).

    Without ``checkpoint`` a release name is downloaded from the Hugging Face Hub; a config needs one.
    A predictor (anything whose ``.model`` is a :class:`SAM2Base`) exports its model.
    """
    inner = getattr(model_or_config, "model", None)
    if isinstance(inner, SAM2Base):
        model_or_config = inner
    if isinstance(model_or_config, SAM2Base):
        if checkpoint is not None:
            raise ExportError("pass either a model instance or a checkpoint, not both")
        return model_or_config.eval(), model_or_config.cfg.name
    from sam2.build_sam import build_sam2
    from sam2.checkpoint import CheckpointError
    from sam2.config_yaml import ConfigError, resolve_config
    from sam2.registry import find_release

    try:
        cfg = resolve_config(model_or_config).model
    except ConfigError as exc:
        raise ExportError(f"unknown model or config {str(model_or_config)!r}: {exc}") from None
    try:
        release = find_release(str(model_or_config))
    except KeyError:
        release = None
    name = release.name if release is not None else cfg.name
    if checkpoint is None:
        if release is None:
            raise ExportError(f"config {str(model_or_config)!r} needs a checkpoint (--checkpoint FILE)")
        from sam2.model_builder import hf_download

        try:
            config, checkpoint = hf_download(release.hub_id)
        except Exception as exc:  # no network, no huggingface_hub, no cache
            raise ExportError(f"cannot download the checkpoint of {release.name} ({type(exc).__name__}: {exc}); "
                              "pass --checkpoint FILE") from None
        model_or_config = config
    try:
        model = build_sam2(str(model_or_config), str(checkpoint), device="cpu", compile=False)
    except (CheckpointError, FileNotFoundError) as exc:
        raise ExportError(f"checkpoint {checkpoint} cannot be used with {str(model_or_config)!r}: {exc}") from None
    return model, name


def weights_fingerprint(model: SAM2Base) -> str:
    """SHA-256 of the typed config and every state-dict tensor (name, shape, float32 bytes)."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(model.cfg), sort_keys=True).encode())
    for key, tensor in model.state_dict().items():
        digest.update(f"{key}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def image_constants(model: SAM2Base) -> dict[str, np.ndarray]:
    """The small learned tensors the runtime layers use, keyed by state-dict name."""
    out = {}
    for key in CONSTANT_KEYS:
        value = getattr(model, key, None)
        if value is not None:
            out[key] = value.detach().to(torch.float32).cpu().numpy()
    return out


def check_destination(out_dir: Path, overwrite: bool) -> None:
    """Refuse an output path that is a file, or a non-empty folder without ``overwrite``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"output {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ExportError(f"output folder {out_dir} is not empty; pass overwrite=True (--overwrite) to replace it")


def _check_graphs(folder: Path, graphs: list[GraphSpec]) -> None:
    import onnx

    for spec in graphs:
        path = folder / spec.file
        try:
            onnx.checker.check_model(str(path), full_check=True)
        except Exception as exc:
            raise ExportError(f"graph {spec.file} failed onnx.checker: {exc}") from exc


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence onnxruntime.quantization, which logs one line per tensor on the root logger and prints
    value infos on stdout."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _write_variants(folder: Path, graphs: list[GraphSpec], fp16: bool, int8: bool) -> dict[str, dict[str, str]]:
    """``<role>.fp16.onnx`` (float16 weights and math, float32 inputs/outputs) and ``<role>.int8.onnx``
    (dynamic int8 quantization of the weights) next to the fp32 graphs."""
    variants: dict[str, dict[str, str]] = {}
    if fp16:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        variants["fp16"] = {}
        for spec in graphs:
            name = spec.file.replace(".onnx", ".fp16.onnx")
            half = convert_float_to_float16(onnx.load(str(folder / spec.file)), keep_io_types=True)
            onnx.save(half, str(folder / name))
            variants["fp16"][spec.role] = name
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        variants["int8"] = {}
        for spec in graphs:
            name = spec.file.replace(".onnx", ".int8.onnx")
            with _quiet():
                quantize_dynamic(str(folder / spec.file), str(folder / name), weight_type=QuantType.QInt8)
            variants["int8"][spec.role] = name
    return variants


def _export_video(model: SAM2Base, folder: Path, opset: int) -> tuple[list[GraphSpec], dict[str, np.ndarray]]:
    from sam2.export.video_graphs import export_video_graphs

    return export_video_graphs(model, folder, opset)


def _publish(staged: Path, out_dir: Path) -> None:
    """Move the finished ``staged`` folder to ``out_dir`` (replacing an old export only now)."""
    if out_dir.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        out_dir.rename(trash / "old")
        staged.rename(out_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        staged.rename(out_dir)


def to_onnx(model_or_config: str | Path | SAM2Base, out_dir: str | Path, checkpoint: str | Path | None = None,
            opset: int = DEFAULT_OPSET, fp16: bool = False, int8: bool = False, video: bool = True,
            overwrite: bool = False) -> Path:
    """Export ``model_or_config`` (a model, or a release name / config with ``checkpoint``) to ``out_dir``.

    Writes ``image_encoder.onnx``, ``prompt_decoder.onnx``, the video graphs (unless ``video=False``),
    optional ``*.fp16.onnx`` / ``*.int8.onnx`` variants, ``constants.npz`` and ``manifest.json``.
    Returns ``out_dir``. Raises :class:`ExportError` before writing anything for a bad argument.
    """
    out_dir = Path(out_dir).absolute()
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ExportError(f"opset must be an integer >= {MIN_OPSET}, got {opset!r}")
    check_destination(out_dir, overwrite)
    import onnx  # noqa: F401  (fail early, before the model is built, when the [export] extra is missing)

    model, name = load_model(model_or_config, checkpoint)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        log.info("exporting %s to %s (opset %d)", name, out_dir, opset)
        graphs = [export_image_encoder(model, staged, opset), export_prompt_decoder(model, staged, opset)]
        constants = image_constants(model)
        if video:
            video_graphs, video_constants = _export_video(model, staged, opset)
            clash = set(video_constants) & set(constants)
            if clash:
                raise ExportError(f"video constants clash with image constants: {sorted(clash)}")
            graphs += video_graphs
            constants.update(video_constants)
        _check_graphs(staged, graphs)
        variants = _write_variants(staged, graphs, fp16, int8)
        np.savez(staged / CONSTANTS_FILE, **constants)
        write_manifest(staged, Manifest(model_name=name, image_size=model.image_size, opset=opset,
                                        exporter=f"{EXPORTER}, torch {torch.__version__}",
                                        fingerprint=weights_fingerprint(model),
                                        config=dataclasses.asdict(model.cfg), graphs=graphs, variants=variants))
        _publish(staged, out_dir)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return out_dir
