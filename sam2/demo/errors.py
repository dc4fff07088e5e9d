"""The one exception type of the demo: an HTTP status with a message for a person."""

from __future__ import annotations


class DemoError(Exception):
    """A request the demo refuses; ``status`` is the HTTP status, ``detail`` says what to do.

    404 unknown session / frame / object, 409 a limit or the session's state, 413 too large,
    415 not a decodable image or video, 422 a malformed request.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
