"""Names that come from outside (list files, folder listings, uploads) stay plain names inside their root.

A plain name is one path component: not empty, not ``.`` or ``..``, no ``/`` or ``\\``, no NUL, and not
absolute or drive-qualified on any platform. Anything else is refused with a ``ValueError`` that names
where the name came from, before any file is read or written.

    plain_name("bear", "video name")                       -> "bear"
    child_path("/data/JPEGImages", "bear", "video name")  -> Path("/data/JPEGImages/bear")
    plain_name("../etc", "video name")                     -> ValueError
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["child_path", "plain_name"]

_SEPARATORS = ("/", "\\")


def plain_name(name: object, what: str) -> str:
    """``name`` itself if it is a single plain path component; ``ValueError`` naming ``what`` otherwise."""
    if not isinstance(name, str):
        raise ValueError(f"{what} must be a string, got {type(name).__name__}")
    problem = None
    if not name:
        problem = "it is empty"
    elif name in (".", ".."):
        problem = "it refers to a folder itself or its parent"
    elif any(sep in name for sep in _SEPARATORS):
        problem = "it contains a path separator"
    elif "\x00" in name:
        problem = "it contains a NUL character"
    elif len(name) >= 2 and name[1] == ":":
        problem = "it is a drive-qualified path"
    if problem is not None:
        raise ValueError(f"{what} {name!r} is not a plain name ({problem}); only a file or folder name "
                         "inside its root is allowed")
    return name


def child_path(root: str | os.PathLike, name: object, what: str) -> Path:
    """``root / name`` for a plain ``name`` (see :func:`plain_name`); the result never leaves ``root``."""
    return Path(root) / plain_name(name, what)
