"""``sam2 export onnx``: write a folder of ONNX graphs, constants and a manifest for ONNX Runtime."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sam2.cli import common

log = logging.getLogger(__name__)

DESCRIPTION = """\
Export a SAM 2 model to ONNX: image encoder, prompt encoder + mask decoder and (unless --no-video) the
memory attention and memory encoder graphs, plus constants.npz and manifest.json. Run it with
sam2.export.OnnxImagePredictor / OnnxVideoPredictor (onnxruntime + numpy, no PyTorch).

MODEL_OR_CONFIG is a release name (sam2.1_hiera_tiny, ...; downloaded from the Hugging Face Hub unless
--checkpoint is given), an official config name or a YAML config (then --checkpoint is required).
The folder is written next to OUT and moved into place at the end: a failed export leaves nothing.
"""

EPILOG = """\
examples:
  sam2 export onnx sam2.1_hiera_tiny -o sam2.1_tiny_onnx
  sam2 export onnx configs/sam2.1/sam2.1_hiera_l.yaml --checkpoint sam2.1_hiera_large.pt -o large_onnx --fp16
"""


def opset(text: str) -> int:
    from sam2.export.onnx_export import MIN_OPSET

    value = common.positive_int(text)
    if value < MIN_OPSET:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_OPSET}, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sam2 export`` with its ``onnx`` sub-command."""
    p = subparsers.add_parser("export", help="export a model to ONNX (sam2 export onnx ...)",
                              description="Export a model for other runtimes.")
    formats = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    q = formats.add_parser("onnx", help="ONNX graphs for ONNX Runtime", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("model", metavar="MODEL_OR_CONFIG", help="release name, official config name or YAML file")
    q.add_argument("--checkpoint", metavar="FILE", type=common.existing_file, default=None,
                   help="local checkpoint .pt file (no download)")
    q.add_argument("-o", "--output", metavar="OUT", type=Path, required=True, help="output folder")
    q.add_argument("--opset", type=opset, default=17, metavar="N", help="ONNX opset (default 17, at least 17)")
    q.add_argument("--fp16", action="store_true", help="also write float16 variants (*.fp16.onnx)")
    q.add_argument("--int8", action="store_true", help="also write dynamic int8 variants (*.int8.onnx)")
    q.add_argument("--no-video", dest="video", action="store_false", help="image graphs only")
    q.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    q.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    q.set_defaults(func=common.interruptible(run), _parser=q)
    return p


def _check_arguments(args: argparse.Namespace) -> None:
    """Usage errors for the model and the output folder, before anything is built or written."""
    from sam2.config_yaml import ConfigError, resolve_config
    from sam2.registry import find_release

    parser = args._parser
    try:
        resolve_config(args.model)
    except ConfigError as exc:
        parser.error(f"argument MODEL_OR_CONFIG: {exc}")
    if args.checkpoint is None:
        try:
            find_release(args.model)
        except KeyError:
            parser.error(f"argument --checkpoint: required with the config {args.model!r}")
    out = args.output
    if out.exists() and not out.is_dir():
        parser.error(f"argument -o/--output: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        parser.error(f"argument -o/--output: {out} is not empty (pass --overwrite to replace it)")


def run(args: argparse.Namespace) -> int:
    """Validate, export, report; returns the exit code."""
    _check_arguments(args)
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        log.error("sam2 export needs the [export] extra (pip install 'sam2-kit[export]'): %s", exc)
        return 1
    from sam2.export.errors import ExportError
    from sam2.export.onnx_export import to_onnx

    common.say(args.quiet, f"exporting {args.model} to {args.output} ...")
    try:
        out = to_onnx(args.model, args.output, checkpoint=args.checkpoint, opset=args.opset, fp16=args.fp16,
                      int8=args.int8, video=args.video, overwrite=args.overwrite)
    except ExportError as exc:
        log.error("%s", exc)
        return 1
    files = sorted(p.name for p in out.iterdir())
    common.say(args.quiet, f"wrote {out}: {', '.join(files)}")
    return 0
