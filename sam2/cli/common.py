"""Pieces shared by the ``sam2`` sub-commands: argument types, model choice, device, output staging.

Conventions: a bad argument is reported with ``parser.error`` naming it (exit status 2) before anything
is written; a failure while working (no checkpoint, unreadable data) is logged and gives exit status 1.
Outputs are written into a hidden folder next to the destination and moved into place only when the
whole job succeeded, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

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


# ------------------------------------------------------------------------------------ argument types

def existing_file(value: str) -> Path:
    """argparse type: an existing file."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value!r} is not an existing file")
    return path


def existing_dir(value: str) -> Path:
    """argparse type: an existing folder."""
    path = Path(value).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is not an existing folder")
    return path


def existing_path(value: str) -> Path:
    """argparse type: an existing file or folder."""
    path = Path(value).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value!r} does not exist")
    return path


def _int_at_least(value: str, low: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {number}")
    return number


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(value, 1)


def non_negative_int(value: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(value, 0)


def finite_float(value: str) -> float:
    """argparse type: a finite float (``nan`` and ``inf`` are refused)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {value!r}")
    return number


def non_negative_float(value: str) -> float:
    """argparse type: a finite float >= 0."""
    number = finite_float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value!r}")
    return number


def positive_float(value: str) -> float:
    """argparse type: a finite float > 0."""
    number = finite_float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value!r}")
    return number


def crop_layers(value: str) -> int:
    """argparse type of ``--crop-n-layers``: 0..MAX_CROP_N_LAYERS (each layer quadruples the crops)."""
    from sam2.utils.amg_settings import MAX_CROP_N_LAYERS

    number = _int_at_least(value, 0)
    if number > MAX_CROP_N_LAYERS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_CROP_N_LAYERS} (layer n adds 4^n crops, each a full "
                                         f"model pass), got {number}")
    return number


def unit_float(value: str) -> float:
    """argparse type: a float in [0, 1]."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 <= number <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value!r}")
    return number


def numbers(value: str, count: int | tuple[int, ...], what: str) -> list[float]:
    """``"1,2.5,3"`` -> floats; ``count`` is the allowed number(s) of values."""
    counts = (count,) if isinstance(count, int) else count
    try:
        values = [float(v) for v in value.split(",")]
    except ValueError:
        values = []
    if len(values) not in counts or not all(np.isfinite(values)):
        raise argparse.ArgumentTypeError(f"{value!r} is not {what}")
    return values


def point(value: str) -> tuple[float, float, int]:
    """argparse type of ``X,Y[,LABEL]`` (label 1 = object, 0 = background; default 1)."""
    v = numbers(value, (2, 3), "X,Y or X,Y,LABEL (pixel coordinates; label 1 = object, 0 = background)")
    label = 1 if len(v) == 2 else v[2]
    if label not in (0, 1):
        raise argparse.ArgumentTypeError(f"{value!r}: the label must be 1 (object) or 0 (background)")
    return v[0], v[1], int(label)


def box(value: str) -> tuple[float, float, float, float]:
    """argparse type of ``X0,Y0,X1,Y1`` (top-left and bottom-right corners, pixels)."""
    x0, y0, x1, y1 = numbers(value, 4, "X0,Y0,X1,Y1 (pixel coordinates of two corners)")
    if not (x0 < x1 and y0 < y1):
        raise argparse.ArgumentTypeError(f"{value!r}: need X0 < X1 and Y0 < Y1")
    return x0, y0, x1, y1


def check_inside(parser: argparse.ArgumentParser, flag: str, xy: list[tuple[float, float]],
                 width: int, height: int, shown: str) -> None:
    """Usage error unless every (x, y) lies within the ``width`` x ``height`` image."""
    for x, y in xy:
        if not (0 <= x <= width and 0 <= y <= height):
            parser.error(f"argument {flag}: {shown} is outside the {width}x{height} image")


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


# ------------------------------------------------------------------------------------ output staging

def check_output_dir(parser: argparse.ArgumentParser, path: Path, flag: str = "--output") -> None:
    """Usage error when ``path`` exists but is not a folder, or cannot be created."""
    if path.exists() and not path.is_dir():
        parser.error(f"argument {flag}: {str(path)!r} exists and is not a folder")
    anchor = _existing_ancestor(path)
    if not anchor.is_dir() or not os.access(anchor, os.W_OK):
        parser.error(f"argument {flag}: cannot write into {str(anchor)!r}")


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _merge(src: Path, dst: Path) -> None:
    """Move the entries of folder ``src`` into folder ``dst`` (replacing files, merging folders)."""
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.is_dir() and target.is_dir():
            _merge(entry, target)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(entry), str(target))


class StagedOutput:
    """Context manager: a hidden folder to write into, published to ``target`` on success.

    With ``single_file`` the staged folder must hold exactly one file, which becomes ``target``;
    otherwise ``target`` is a folder (created, or merged into when it exists). On any exception the
    staged folder is removed and ``target`` is left untouched.
    """

    def __init__(self, target: Path, single_file: bool = False) -> None:
        self.target = target.absolute()
        self.single_file = single_file
        self._tmp = self.path = Path()

    def __enter__(self) -> Path:
        anchor = _existing_ancestor(self.target.parent)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.partial-", dir=anchor))
        self.path = self._tmp / "output"  # made by mkdir, so it gets the usual permissions
        self.path.mkdir()
        return self.path

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self._publish(self.path)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _publish(self, staged: Path) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        if self.single_file:
            (only,) = list(staged.iterdir())
            shutil.move(str(only), str(self.target))
        elif self.target.is_dir():
            _merge(staged, self.target)
        else:
            shutil.move(str(staged), str(self.target))


def say(quiet: bool, message: str) -> None:
    """One progress line on stderr (so stdout stays the result), unless ``quiet``."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ interruption

class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` / staged output cleans up."""


EXIT_SIGINT, EXIT_SIGTERM = 130, 143


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interruptible(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a sub-command's ``run``: Ctrl-C (SIGINT) and SIGTERM unwind it (staged outputs are
    removed on the way) and give exit status 130 / 143 with one line instead of a traceback."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            with _sigterm_raises():
                return run(args)
        except Terminated:
            log.error("terminated (SIGTERM); no partial output was left behind")
            return EXIT_SIGTERM
        except KeyboardInterrupt:
            log.error("interrupted (Ctrl-C); no partial output was left behind")
            return EXIT_SIGINT

    return wrapper
