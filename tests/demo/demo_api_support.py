"""Helpers of the demo API tests: generated media, a real uvicorn server in a thread, SSE reading."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

W, H = 96, 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clip_frames(num_frames: int, width: int = W, height: int = H) -> list[np.ndarray]:
    """RGB frames of a bright disc moving right and a blue square moving left on a gradient."""
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 2, ys * 3, np.full_like(xs, 90)], axis=-1).astype(np.uint8)
    frames = []
    for t in range(num_frames):
        img = base.copy()
        img[(xs - 25 - 2 * t) ** 2 + (ys - 25) ** 2 < 12 ** 2] = (230, 220, 40)
        img[(abs(xs - 70 + t) < 9) & (abs(ys - 45) < 9)] = (30, 40, 200)
        frames.append(img)
    return frames


def write_clip(path: Path, num_frames: int, width: int = W, height: int = H, fps: int = 10) -> Path:
    """An H.264 MP4 of :func:`clip_frames` (PyAV through the package's Mp4Writer)."""
    from sam2.cli.media import Mp4Writer

    with Mp4Writer(path, width, height, fps) as writer:
        for frame in clip_frames(num_frames, width, height):
            writer.write(frame)
    return path


def png_bytes(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def decode_rle(rle: dict) -> np.ndarray:
    """(H, W) bool of an API mask, decoded by pycocotools."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def encode_mask(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


def sse_events(response: Any) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs of a streamed ``text/event-stream`` httpx response, as they arrive."""
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            yield event, json.loads(line[len("data: "):])


class LiveServer:
    """A real uvicorn server for an ASGI app, in a background thread of the test process (lifespan on)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_until(condition: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
