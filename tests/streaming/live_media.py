"""Real live-ish media for the streaming tests (not a test module): MPEG-TS bytes encoded with PyAV, a
file that grows while it is read, and a local HTTP server that can cut a stream in the middle."""

from __future__ import annotations

import http.server
import io
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def ts_bytes(frames: list[np.ndarray], fps: int = 10) -> bytes:
    """The frames as an MPEG-TS stream (MPEG-2 video: streamable, in every FFmpeg build)."""
    import av

    h, w = frames[0].shape[:2]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as container:
        stream = container.add_stream("mpeg2video", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


@contextmanager
def growing_file(path: Path, data: bytes, parts: int = 3, delay: float = 0.5) -> Iterator[Path]:
    """``path`` starts with the first part of ``data``; a thread appends the rest part by part."""
    cuts = [len(data) * i // parts for i in range(parts + 1)]
    path.write_bytes(data[:cuts[1]])

    def grow() -> None:
        for a, b in zip(cuts[1:-1], cuts[2:]):
            time.sleep(delay)
            with open(path, "ab") as f:
                f.write(data[a:b])

    thread = threading.Thread(target=grow, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        thread.join()


@contextmanager
def http_server(data: bytes) -> Iterator[str]:
    """Serves ``data`` at ``<url>/full.ts``, and its first half (then a dropped connection, the
    Content-Length announcing all of it) at ``<url>/cut.ts``. -> the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.path.endswith("cut.ts"):
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
