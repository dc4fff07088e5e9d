"""The open demo sessions by id: room for new ones, lookup (which restarts the idle clock), idle expiry."""

from __future__ import annotations

import threading
import time

from sam2.demo.errors import DemoError
from sam2.demo.sessions import DemoLimits, DemoSession


class SessionStore:
    """The open sessions, by id; expires idle ones."""

    def __init__(self, limits: DemoLimits) -> None:
        self.limits = limits
        self._sessions: dict[str, DemoSession] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def check_room(self) -> None:
        """409 when no further session may be opened."""
        if len(self._sessions) >= self.limits.max_sessions:
            raise DemoError(409, f"too many open sessions: the limit is {self.limits.max_sessions} (sam2 demo "
                                 f"--max-sessions); close one, or wait until idle ones expire "
                                 f"({self.limits.session_idle_s} s)")

    def add(self, session: DemoSession) -> None:
        with self._lock:
            self.check_room()
            self._sessions[session.id] = session

    def get(self, sid: str) -> DemoSession:
        """The session ``sid`` (its idle clock restarts); 404 naming it when unknown or closed."""
        session = self._sessions.get(sid)
        if session is None:
            raise DemoError(404, f"session {sid!r} does not exist (it was closed, expired after "
                                 f"{self.limits.session_idle_s} s idle, or the server restarted)")
        session.touch()
        return session

    def pop(self, sid: str) -> DemoSession | None:
        with self._lock:
            session = self._sessions.pop(sid, None)
        if session is not None:
            session.closed = True
        return session

    def expired(self, now: float | None = None) -> list[DemoSession]:
        """Remove and return the sessions idle for longer than the limit (not while they propagate)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            old = [s for s in self._sessions.values()
                   if s.propagation is None and now - s.last_used > self.limits.session_idle_s]
            for s in old:
                del self._sessions[s.id]
                s.closed = True
        return old

    def pop_all(self) -> list[DemoSession]:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            s.closed = True
        return sessions
