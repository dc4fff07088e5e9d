"""Locations of inputs and outputs: local paths or fsspec URLs (``file://``, ``s3://``, ``gs://``, ...).

Every read and write of a scale-out job goes through :class:`Location`, so a local folder and an object
store take the same code path; only the filesystem object differs. Remote protocols need their fsspec
package on the driver and on every worker (``s3fs`` for ``s3://``, ``gcsfs`` for ``gs://``) and the
credentials those packages read (environment, instance metadata). A local path given to a job on a
multi-node cluster must be on storage that every node mounts at the same place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def is_url(text: str | os.PathLike) -> bool:
    """True for ``scheme://...`` (a Windows drive letter is not a scheme)."""
    head, sep, _ = str(text).partition("://")
    return bool(sep) and len(head) > 1 and head.replace("+", "").replace("-", "").isalnum()


@dataclass(frozen=True)
class Location:
    """A folder or file: ``url`` as given by the user (kept for messages and result files) and the
    filesystem path ``path`` that ``fs`` understands. Picklable: workers rebuild the filesystem."""

    url: str

    @property
    def fs(self) -> Any:
        import fsspec

        return fsspec.core.url_to_fs(self.url)[0]

    @property
    def path(self) -> str:
        import fsspec

        return fsspec.core.url_to_fs(self.url)[1]

    @property
    def local(self) -> Path | None:
        """The local path when the filesystem is the local one (plain path or ``file://``), else None."""
        if not is_url(self.url):
            return Path(self.url)
        return Path(self.path) if self.url.startswith("file://") else None

    def child(self, *names: str) -> Location:
        return Location("/".join([self.url.rstrip("/"), *names]))

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self.path))

    def names(self, dirs: bool = False) -> list[str]:
        """Sorted names of the entries of this folder: files, or with ``dirs`` sub-folders; hidden skipped."""
        fs = self.fs
        out = []
        for info in fs.ls(self.path, detail=True):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith(".") and (info["type"] == "directory") == dirs:
                out.append(name)
        return sorted(out)

    def read_bytes(self) -> bytes:
        with self.fs.open(self.path, "rb") as f:
            return f.read()

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def mkdir(self) -> None:
        self.fs.makedirs(self.path, exist_ok=True)

    def write_bytes(self, data: bytes) -> None:
        """Write the whole file so that readers see the old content or the new one, never a part:
        a hidden temporary file renamed into place (object stores write whole objects anyway)."""
        local = self.local
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".tmp", dir=local.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, local)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return
        fs = self.fs
        fs.makedirs(self.path.rstrip("/").rsplit("/", 1)[0], exist_ok=True)  # a no-op on object stores
        with fs.open(self.path, "wb") as f:
            f.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def remove(self) -> None:
        """Delete this file or folder (recursively); nothing when it does not exist."""
        fs = self.fs
        if fs.exists(self.path):
            fs.rm(self.path, recursive=True)

    def download(self, target: Path) -> None:
        """Copy this folder (recursively) into the new local folder ``target``."""
        local = self.local
        if local is not None:
            shutil.copytree(local, target)
        else:
            self.fs.get(self.path.rstrip("/") + "/", str(target), recursive=True)

    def publish_dir(self, source: Path) -> None:
        """Move the local folder ``source`` to this location, replacing what is there. Locally the folder
        is put in place with one rename (readers never see a half-written folder); on an object store it is
        uploaded file by file, so the job's ledger, written afterwards, is what marks it complete."""
        local = self.local
        if local is None:
            self.remove()
            self.fs.makedirs(self.path.rstrip("/").rsplit("/", 1)[0], exist_ok=True)
            self.fs.put(str(source).rstrip("/") + "/", self.path, recursive=True)
            return
        local.parent.mkdir(parents=True, exist_ok=True)
        staged = local.parent / f".{local.name}.partial-{uuid.uuid4().hex[:8]}"
        shutil.move(str(source), str(staged))  # a rename when on the same filesystem
        old = local.parent / f".{local.name}.old-{uuid.uuid4().hex[:8]}"
        if local.exists():
            os.replace(local, old)
        os.replace(staged, local)
        shutil.rmtree(old, ignore_errors=True)

    def __str__(self) -> str:
        return self.url


def location(value: str | os.PathLike) -> Location:
    """A :class:`Location` of a local path (made absolute: workers may run in another folder) or a URL."""
    text = str(value)
    return Location(text if is_url(text) else str(Path(text).absolute()))
