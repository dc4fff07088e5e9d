"""Streaming: track objects in frames given one at a time (camera, network stream, growing file) in
memory that does not grow with the number of frames."""

from sam2.streaming.session import StreamingSession, StreamResult
from sam2.streaming.sources import SourceError, open_source

__all__ = ["StreamingSession", "StreamResult", "SourceError", "open_source"]
