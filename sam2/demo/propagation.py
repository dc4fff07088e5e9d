"""Tracking through a video, streamed to the page as server-sent events while it is computed.

The model thread runs ``SAM2VideoPredictor.propagate_in_video`` and hands every frame's masks (COCO RLE)
to the event loop through an ``asyncio.Queue``; the response generator turns them into SSE messages:
``queued`` (while other work holds the model), ``start``, one ``frame`` per frame, then ``end``,
``cancelled`` or ``error``. A stop flag, checked between frames, ends the work early: set by
``/cancel``, by a newer propagation of the same session, by closing the session, or when the client
disconnects. The session stays usable: frames tracked so far keep their results.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sam2.demo.errors import DemoError
from sam2.demo.sessions import DemoSession
from sam2.demo.worker import Job, ModelWorker

log = logging.getLogger(__name__)

DIRECTIONS = ("forward", "backward", "both")
QUEUED_EVERY_S = 1.0  # a "queued" event is repeated this often while waiting
POLL_S = 0.25  # how often the stream checks for a disconnected client while nothing happens
FINAL_EVENTS = ("end", "cancelled", "error")


def plan(session: DemoSession, direction: str, start_frame: int | None) -> tuple[list[tuple[int, bool]], int, int]:
    """(passes ``[(start frame, reverse)]``, number of frames produced, start frame) of a propagation.

    ``both`` runs forward from the start frame to the last frame, then backward from the frame before
    the start frame to frame 0, so every frame is produced once. Raises 409 without prompts.
    """
    if direction not in DIRECTIONS:
        raise DemoError(422, f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if session.closed:
        raise DemoError(404, f"session {session.id} was closed")
    objects = list(session.state.objects)
    if not objects:
        raise DemoError(409, f"session {session.id} has no objects: add a click, box or mask first")
    if start_frame is None:
        prompted = [t for o in objects for t in (*o.point_inputs, *o.mask_inputs)]
        start_frame = min(prompted) if prompted else 0
    session.check_frame(start_frame)
    n = session.num_frames
    if direction == "forward":
        return [(start_frame, False)], n - start_frame, start_frame
    if direction == "backward":
        return [(start_frame, True)], start_frame + 1, start_frame
    passes = [(start_frame, False)] + ([(start_frame - 1, True)] if start_frame > 0 else [])
    return passes, n, start_frame


def check_plan(session: DemoSession, direction: str, start_frame: int | None) -> None:
    """Refuse a propagation that cannot run (404 / 409 / 422) before the stream starts. The model thread
    may be editing the prompts meanwhile: a dict changing under the read is simply read again."""
    for _ in range(10):
        try:
            plan(session, direction, start_frame)
            return
        except RuntimeError:  # "dictionary changed size during iteration"
            time.sleep(0.001)


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Propagation:
    """One propagation request of one session: its work on the model thread and its event queue."""

    def __init__(self, session: DemoSession, predictor: Any, direction: str, start_frame: int | None) -> None:
        self.session = session
        self.predictor = predictor
        self.direction = direction
        self.start_frame = start_frame
        self.total = 0
        self.done = 0
        self.stop = threading.Event()
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        self.job: Job | None = None
        self.finished = asyncio.Event()  # set once the final event has been queued

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        """Queue an event from any thread."""
        def put() -> None:
            self.events.put_nowait((event, data))
            if event in FINAL_EVENTS:
                self.finished.set()

        try:
            self.loop.call_soon_threadsafe(put)
        except RuntimeError:  # the event loop is closed (server shutting down)
            pass

    def run(self) -> None:
        """The model-thread part: track frame by frame until done or stopped."""
        if self.stop.is_set():
            self._emit("cancelled", {"done": 0})
            return
        try:  # planned again here: the prompts may have changed while this request waited
            passes, self.total, _ = plan(self.session, self.direction, self.start_frame)
        except DemoError as exc:
            self._emit("error", {"detail": exc.detail})
            return
        self._emit("start", {"total": self.total})
        try:
            for start, reverse in passes:
                if self._run_pass(start, reverse):
                    self._emit("cancelled", {"done": self.done})
                    return
        except Exception as exc:  # reported to the page; the server and session stay usable
            log.exception("propagation of session %s failed", self.session.id)
            self._emit("error", {"detail": f"tracking failed after {self.done} frame(s): {exc}"})
            return
        self._emit("end", {"done": self.done})

    def _run_pass(self, start: int, reverse: bool) -> bool:
        """One direction; True if stopped early."""
        frames = self.predictor.propagate_in_video(self.session.state, start_frame_idx=start, reverse=reverse)
        try:
            for t, obj_ids, logits in frames:
                result = self.session.record(t, obj_ids, logits)
                self.done += 1
                self.session.touch()
                self._emit("frame", {"done": self.done, "total": self.total, **result})
                if self.stop.is_set() or self.session.closed:
                    return True
        finally:
            frames.close()
        return False

    def cancel(self, worker: ModelWorker) -> bool:
        """Stop the work (or withdraw it while queued); True if it had not finished."""
        if self.finished.is_set():
            return False
        self.stop.set()
        if self.job is not None and worker.cancel(self.job):
            self._emit("cancelled", {"done": 0})
        return True


async def stream(prop: Propagation, worker: ModelWorker,
                 is_disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[str]:
    """The SSE messages of ``prop``; submits its work and cleans up however the stream ends."""
    session = prop.session
    previous = session.propagation
    if previous is not None:
        previous.cancel(worker)  # a newer request replaces a running one; it queues behind it
    session.propagation = prop
    prop.job = worker.submit(prop.run, name=f"propagate {session.id}")
    last_position, last_sent = -1, 0.0
    try:
        while True:
            position = worker.position(prop.job)
            now = time.monotonic()
            if position > 0 and (position != last_position or now - last_sent >= QUEUED_EVERY_S):
                last_position, last_sent = position, now
                yield sse("queued", {"position": position})
            try:
                event, data = await asyncio.wait_for(prop.events.get(), timeout=POLL_S)
            except asyncio.TimeoutError:
                if await is_disconnected():
                    log.info("client of session %s went away while waiting; propagation stopped", session.id)
                    return
                continue
            yield sse(event, data)
            if event in FINAL_EVENTS:
                return
            if await is_disconnected():
                log.info("client of session %s went away after %d frame(s); propagation stopped",
                         session.id, prop.done)
                return
    finally:
        prop.cancel(worker)
        if session.propagation is prop:
            session.propagation = None
