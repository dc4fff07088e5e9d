"""Pieces shared by the ``sam2`` sub-commands: model choice, device and checkpoint download, plus (re-exported
here, defined in :mod:`sam2.cli.arg_types` and :mod:`sam2.cli.staging`) argument types and output staging.

Conventions: a bad argument is reported with ``parser.error`` naming it (exit status 2) before anything
is written; a failure while working (no checkpoint, unreadable data) is logged and gives exit status 1.
Outputs are written into a hidden folder next to the destination and moved into place only when the
whole job succeeded, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sam2.cli.arg_types import (  # noqa: F401  (re-exported: the commands use common.<name>)
    box,
    check_inside,
    crop_layers,
    existing_dir,
    existing_file,
    existing_path,
    finite_float,
    non_negative_float,
    non_negative_int,
    numbers,
    point,
    positive_float,
    positive_int,
    unit_float,
)
from sam2.cli.staging import (  # noqa: F401
    EXIT_SIGINT,
    EXIT_SIGTERM,
    StagedOutput,
    Terminated,
    check_output_dir,
    interruptible,
    say,
)

log = logging.getLogger(__name__)

MODEL_HELP = """\
Model: --model NAME (release name such as sam2.1_hiera_tiny, or a Hub id such as
facebook/sam2.1-hiera-tiny; the checkpoint is downloaded from the Hugging Face Hub and cached), or
--checkpoint FILE with --config CONFIG (an official config name such as
configs/sam2.1/sam2.1_hiera_t.yaml, a release name, or a YAML file in the official schema; it may be
omitted when the checkpoint has an official file name such as sam2.1_hiera_tiny.pt).
Default: --model sam2.1_hiera_tiny. Without network access pass --checkpoint FILE, or set
HF_HUB_OFFLINE=1 with a filled Hugging Face cache.
"""


# ------------------------------------------------------------------------------------ model choice

@dataclass(frozen=True)
class ModelSpec:
    """Which weights to load: a local ``checkpoint`` with ``config``, or a Hub ``hub_id``."""

    config: str | None = None
    checkpoint: str | None = None
    hub_id: str | None = None

    def describe(self) -> dict[str, str | None]:
        """JSON-friendly description for result files."""
        if self.hub_id is not None:
            return {"hub_id": self.hub_id}
        return {"config": self.config, "checkpoint": self.checkpoint}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--config``, ``--checkpoint`` and ``--device``."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", metavar="NAME", default=None,
                       help="release name (sam2.1_hiera_tiny, sam2_hiera_large, ...) or Hub id "
                            "(facebook/sam2.1-hiera-tiny), downloaded from the Hub; default sam2.1_hiera_tiny. "
                            "With --checkpoint it only names the checkpoint's model (its config is used)")
    group.add_argument("--config", metavar="CONFIG", default=None,
                       help="config of --checkpoint: official name, release name or YAML file")
    group.add_argument("--checkpoint", metavar="FILE", type=existing_file, default=None,
                       help="local checkpoint .pt file (no download)")
    group.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    group.add_argument("--compile", nargs=0, action=_CompileAction,
                       help="run the model through torch.compile (same results; the first calls compile, which "
                            "takes minutes on a CPU); same as SAM2_COMPILE=1, and SAM2_COMPILE=strict makes a "
                            "failed compilation an error instead of a warning")


class _CompileAction(argparse.Action):
    """``--compile``: sets ``SAM2_COMPILE=1`` (unless already set) for the builders of this process."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, True)
        if os.environ.get("SAM2_COMPILE", "0").strip().lower() in ("", "0", "false", "no", "off"):
            os.environ["SAM2_COMPILE"] = "1"


def model_spec(parser: argparse.ArgumentParser, model: str | None, config: str | None,
               checkpoint: Path | None, model_flag: str = "--model", config_flag: str = "--config",
               checkpoint_flag: str = "--checkpoint") -> ModelSpec:
    """Resolve the model options into a :class:`ModelSpec`; a usage error when they do not fit."""
    from sam2.config_yaml import ConfigError, resolve_config
    from sam2.registry import DEFAULT_MODEL, find_release

    if model and config:
        parser.error(f"argument {model_flag}: not allowed with {config_flag}")
    if checkpoint is not None:
        if config:
            try:
                resolve_config(config)
            except ConfigError as exc:
                parser.error(f"argument {config_flag}: {exc}")
            return ModelSpec(config=config, checkpoint=str(checkpoint))
        name, flag = (model, model_flag) if model else (checkpoint.name, checkpoint_flag)
        try:
            release = find_release(name)
        except KeyError:
            parser.error(f"argument {flag}: cannot tell the model config of {name!r}; pass {config_flag}")
        if model:
            _check_model_fits_file(parser, release, checkpoint, model_flag, checkpoint_flag)
            log.warning("%s %s with %s: using the config %s for %s (nothing is downloaded)",
                        model_flag, model, checkpoint_flag, release.config, checkpoint)
        return ModelSpec(config=release.config, checkpoint=str(checkpoint))
    name, flag = (config, config_flag) if config else (model or DEFAULT_MODEL, model_flag)
    try:
        return ModelSpec(hub_id=find_release(name).hub_id)
    except KeyError as exc:
        hint = f" (a config file needs {checkpoint_flag})" if config else ""
        parser.error(f"argument {flag}: {exc.args[0]}{hint}")
    raise AssertionError("unreachable")


def _check_model_fits_file(parser: argparse.ArgumentParser, release: Any, checkpoint: Path, model_flag: str,
                           checkpoint_flag: str) -> None:
    """A checkpoint with an official file name must be the model that ``--model`` names."""
    from sam2.registry import find_release

    try:
        named = find_release(checkpoint.name)
    except KeyError:
        return
    if named != release:
        parser.error(f"argument {model_flag}: {release.name} does not match {checkpoint_flag} "
                     f"{checkpoint.name} (a {named.name} checkpoint); drop {model_flag} or pass the right one")


def resolve_device(parser: argparse.ArgumentParser, value: str | None, flag: str = "--device") -> Any:
    """``torch.device`` of ``value`` (default: cuda if available, else cpu); usage error if unusable."""
    import torch

    if value is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(value)
    except RuntimeError as exc:
        parser.error(f"argument {flag}: {exc}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"argument {flag}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        parser.error(f"argument {flag}: MPS is not available on this machine")
    return device


class ModelLoadError(RuntimeError):
    """The model could not be built (no network, bad checkpoint, ...); the message says why."""


@contextmanager
def _quiet_hub_logs() -> Iterator[None]:
    """huggingface_hub logs every retry as a warning; our error message says it once instead."""
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_log.setLevel(level)


def download_checkpoint(hub_id: str, checkpoint_flag: str = "--checkpoint") -> tuple[str, str]:
    """(config name, local checkpoint path) of a Hub model: the cached file if there is one, else a
    download. Without network (or with ``HF_HUB_OFFLINE`` and no cached copy) it fails at once with
    :class:`ModelLoadError`, one message saying how to go on."""
    from sam2.model_builder import hub_reachable
    from sam2.registry import HF_MODEL_ID_TO_FILENAMES

    config, filename = HF_MODEL_ID_TO_FILENAMES[hub_id]
    offline_fix = (f"Fix: download {filename} (https://huggingface.co/{hub_id}) elsewhere and pass it with "
                   f"{checkpoint_flag} FILE, or point HF_HOME / HF_HUB_CACHE at a Hugging Face cache that holds "
                   f"it. 'sam2 selfcheck' checks the installation without any download.")
    try:
        from huggingface_hub import constants, hf_hub_download
    except ImportError:
        raise ModelLoadError(f"cannot download {hub_id}: the huggingface_hub package is not installed "
                             f"(pip install 'sam2-kit[hub]').\n{offline_fix}") from None
    with _quiet_hub_logs():
        try:
            return config, hf_hub_download(repo_id=hub_id, filename=filename, local_files_only=True)
        except Exception:  # not cached (LocalEntryNotFoundError and relatives)
            pass
        where = f"the Hugging Face Hub cache ({constants.HF_HUB_CACHE})"
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true"):
            raise ModelLoadError(f"cannot get the checkpoint {filename} of {hub_id}: it is not in {where}, and "
                                 f"HF_HUB_OFFLINE is set, so the Hugging Face Hub is not asked.\n{offline_fix}")
        if not hub_reachable(constants.ENDPOINT):
            raise ModelLoadError(f"cannot get the checkpoint {filename} of {hub_id}: the Hugging Face Hub "
                                 f"({constants.ENDPOINT}) cannot be reached (no network?) and the file is not in "
                                 f"{where}.\n{offline_fix}")
        try:
            return config, hf_hub_download(repo_id=hub_id, filename=filename)
        except Exception as exc:  # huggingface_hub raises many types for network and cache problems
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ModelLoadError(f"cannot get the checkpoint {filename} of {hub_id} from the Hugging Face Hub "
                                 f"({type(exc).__name__}: {first})\n{offline_fix}") from exc


def build_model(spec: ModelSpec, device: Any, video: bool = False, checkpoint_flag: str = "--checkpoint",
                **kwargs: Any) -> Any:
    """A ``SAM2Base`` (or a ``SAM2VideoPredictor`` with ``video``) for ``spec``; raises
    :class:`ModelLoadError` with a readable message."""
    from sam2 import build_sam

    config, checkpoint = spec.config, spec.checkpoint
    if spec.hub_id is not None:
        config, checkpoint = download_checkpoint(spec.hub_id, checkpoint_flag)
    fn = build_sam.build_sam2_video_predictor if video else build_sam.build_sam2
    try:
        return fn(config, checkpoint, device=device, **kwargs)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        raise ModelLoadError(f"cannot load the model: {text}") from exc
