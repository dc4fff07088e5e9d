"""Outputs of the ``sam2`` sub-commands: staging into a hidden folder moved into place on success, and
clean stops on SIGINT / SIGTERM (exit status 130 / 143, nothing half-written, no traceback)."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

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
