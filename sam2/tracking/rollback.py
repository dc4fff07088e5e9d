"""All-or-nothing prompt calls: a prompt that fails leaves the video session exactly as it was.

Adding a prompt registers the object (if new), stores its inputs and a pending output for one frame;
reading that frame or running the model can still fail afterwards (an unreadable frame, an
interruption). :func:`prompt_transaction` records what such a call may touch and puts it back when
the call raises, so no phantom object or stale input is left for later propagations to trip over.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["prompt_transaction"]

# The per-object dicts a prompt call writes (outputs of tracked and prompted frames are only read).
_PROMPT_FIELDS = ("point_inputs", "mask_inputs", "pending_cond", "pending_non_cond")


@contextmanager
def prompt_transaction(session: Any, obj_id: Any) -> Iterator[None]:
    """Undo, on any exception (``KeyboardInterrupt`` included), the prompt changes made to
    ``session`` (a :class:`~sam2.video_session.VideoSession`) for ``obj_id`` inside the block."""
    idx = session.obj_idx(obj_id)
    saved = None
    if idx is not None:
        obj = session.objects[idx]
        saved = {name: dict(getattr(obj, name)) for name in _PROMPT_FIELDS}  # shallow: keys in order
    warned = session.warned_dropped_correction
    try:
        yield
    except BaseException:
        if saved is None:  # the object was new: drop it again
            session.objects[:] = [o for o in session.objects if o.obj_id != obj_id]
        else:
            for name, entries in saved.items():
                store = getattr(obj, name)
                store.clear()
                store.update(entries)
        session.warned_dropped_correction = warned
        raise
