"""Background preparation of the next frame of a propagation while the current one is computed.

:class:`FramePrefetcher` walks the frame order of a propagation one frame ahead of the consumer:
when the consumer reaches frame ``order[k]``, a worker thread decodes and preprocesses
``order[k + 1]`` into the frame cache (:meth:`VideoFrames.preload`), outside the cache lock. Decoding
(PyAV), resizing (PIL) and the model's torch ops release the GIL, so the two overlap. The worker is
never more than one frame ahead, stops with the propagation (``close``, also
on an early ``break`` or an exception) and never raises: a frame it failed to read is read (and its
error raised) by the consumer as if there were no prefetcher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import torch

logger = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 10.0


class FramePrefetcher:
    """Reads ``order[k + 1]`` of ``frames`` in a background thread once :meth:`reached` ``order[k]``.

    ``frames`` needs ``preload(idx)`` and a ``cache_size`` of at least 2 (the frame being computed
    and the next one); otherwise, or for fewer than two frames, the prefetcher does nothing. Use it
    as a context manager (or call :meth:`close`).
    """

    def __init__(self, frames: Any, order: Sequence[int]) -> None:
        self._frames = frames
        self._order = list(order)
        self._position = {frame_idx: k for k, frame_idx in enumerate(self._order)}
        self._wake = threading.Condition()
        self._stop = False
        self._reached = -1  # position in ``order`` of the consumer's frame
        self._thread: threading.Thread | None = None
        self.enabled = (len(self._order) > 1 and callable(getattr(frames, "preload", None))
                        and getattr(frames, "cache_size", 0) >= 2)
        self.loaded: list[int] = []  # frames the worker prepared, in order (for tests and logs)

    def __enter__(self) -> FramePrefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reached(self, frame_idx: int) -> None:
        """The consumer is about to compute ``frame_idx``: let the worker prepare the frame after it."""
        if not self.enabled or self._stop:
            return
        with self._wake:
            self._reached = max(self._reached, self._position.get(frame_idx, -1))
            self._wake.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="sam2-propagation-prefetch", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop the worker and wait for it (it finishes at most the frame it is reading)."""
        with self._wake:
            self._stop = True
            self._wake.notify()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=JOIN_TIMEOUT_S)
            if thread.is_alive():
                logger.warning("frame prefetch thread did not stop within %.0f s", JOIN_TIMEOUT_S)

    def _work(self) -> None:
        prepared = 0  # position of the last frame prepared (or the consumer's first)
        while True:
            with self._wake:
                while not self._stop and self._reached + 1 <= prepared:
                    self._wake.wait()
                if self._stop:
                    return
                k = self._reached + 1
            if k >= len(self._order):
                return
            try:
                # as the consumer (the propagation runs in inference mode): a compiled encoder then sees
                # one kind of tensor, not two (each kind would be compiled apart)
                with torch.inference_mode():
                    self._frames.preload(self._order[k])
            except Exception as exc:  # the consumer reads the frame itself and sees the error
                logger.debug("prefetch of frame %d failed: %s", self._order[k], exc)
                return
            self.loaded.append(self._order[k])
            prepared = k
