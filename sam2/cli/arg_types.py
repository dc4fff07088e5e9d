"""argparse types shared by the ``sam2`` sub-commands: each turns a string into a checked value or raises
``argparse.ArgumentTypeError`` with a message naming what was wrong (argparse adds the flag)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np


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
