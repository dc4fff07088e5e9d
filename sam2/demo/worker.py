"""The one thread that runs every model call of the demo, in arrival order.

All sessions share one model. Each piece of model work (open a session, a click, a propagation, "segment
everything") is a :class:`Job` submitted to the :class:`ModelWorker`; jobs run one at a time, first come
first served, so a request that arrives while the model is busy waits in the queue and can ask for its
:meth:`ModelWorker.position`. A job that has not started yet can be withdrawn with :meth:`ModelWorker.cancel`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)


def _done() -> None:
    raise RuntimeError("this job has already run")


class Job:
    """One call to run on the model thread; ``future`` gets its result or exception."""

    def __init__(self, fn: Callable[[], Any], name: str) -> None:
        self.fn = fn
        self.name = name
        self.future: Future = Future()
        self.submitted = time.perf_counter()
        self.queue_s = 0.0  # time spent waiting for the model
        self.run_s = 0.0  # time spent running


class ModelWorker:
    """A FIFO queue of jobs served by one daemon thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: deque[Job] = deque()
        self._running: Job | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="sam2-demo-model", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------ queue

    def submit(self, fn: Callable[[], Any], name: str = "job") -> Job:
        """Queue ``fn``; it runs after every job submitted before it."""
        job = Job(fn, name)
        with self._cond:
            if self._closed:
                raise RuntimeError("the model worker is shut down")
            self._pending.append(job)
            self._cond.notify()
        return job

    def cancel(self, job: Job) -> bool:
        """Withdraw a job that has not started; True if it was withdrawn."""
        with self._cond:
            try:
                self._pending.remove(job)
            except ValueError:
                return False
        job.future.cancel()
        return True

    def position(self, job: Job) -> int:
        """How many jobs run before ``job`` (0 when it is running or finished)."""
        with self._cond:
            try:
                ahead = self._pending.index(job)
            except ValueError:
                return 0
            return ahead + (1 if self._running is not None else 0)

    @property
    def busy(self) -> bool:
        """True while a job runs or waits."""
        with self._cond:
            return self._running is not None or bool(self._pending)

    @property
    def queued(self) -> int:
        """Number of jobs waiting (not counting the running one)."""
        with self._cond:
            return len(self._pending)

    async def run(self, fn: Callable[[], Any], name: str = "job") -> tuple[Any, Job]:
        """Submit ``fn`` and wait for it without blocking the event loop -> (result, job).

        If the waiting request is cancelled (the client went away) before the job started, the job is
        withdrawn; a job already running finishes.
        """
        job = self.submit(fn, name)
        try:
            return await asyncio.wrap_future(job.future), job
        except asyncio.CancelledError:
            self.cancel(job)
            raise

    def close(self, timeout: float = 10.0) -> None:
        """Drop waiting jobs, let the running one finish, stop the thread."""
        with self._cond:
            self._closed = True
            dropped = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for job in dropped:
            job.future.cancel()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # ------------------------------------------------------------------------------ thread

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._pending.popleft()
                self._running = job
            try:
                self._execute(job)
            finally:
                job.fn = _done  # drop the references the call held (a closed session's memory)
                del job
                with self._cond:
                    self._running = None

    @staticmethod
    def _execute(job: Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        start = time.perf_counter()
        job.queue_s = start - job.submitted
        try:
            result = job.fn()
        except BaseException as exc:  # handed to the waiting request
            job.run_s = time.perf_counter() - start
            log.debug("job %s failed: %s", job.name, exc)
            job.future.set_exception(exc)
            return
        job.run_s = time.perf_counter() - start
        job.future.set_result(result)
