"""Pieces of the browser tests of ``sam2 demo``: the real server in a subprocess, Debian's Chromium
through Playwright, generated media, and reading the page's canvases back."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SERVER_START_S = 120


def browser_skip_reason() -> str | None:
    """Why the browser tests cannot run here (None when they can): no Chromium or no Playwright."""
    if not CHROMIUM.is_file():
        return f"Debian chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright for Python is not installed (pip install playwright; never `playwright install`)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DemoServer:
    """``python -m sam2 demo`` on a free local port, its output kept in ``log_path``."""

    def __init__(self, model_args: list[str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "sam2", "demo", *model_args, "--port", str(self.port)],
                                        cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sam2 demo exited with {self.process.returncode}:\n{self.log()}")
            try:
                self.get_json("/api/info")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"sam2 demo did not answer within {SERVER_START_S} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-4000:]

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def write_video(path: Path, frames: int = 6, width: int = 160, height: int = 96, fps: int = 6) -> Path:
    """A short H.264 clip (PyAV): a red disc moving right and a blue square moving left on a gradient."""
    import av

    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([40 + xs * 60 // width, 50 + ys * 60 // height, np.full_like(xs, 90)], axis=-1).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            img = base.copy()
            cx, cy = 40 + 8 * t, 40
            img[(xs - cx) ** 2 + (ys - cy) ** 2 < 18 ** 2] = (220, 50, 40)
            sx = 120 - 6 * t
            img[(abs(xs - sx) < 14) & (abs(ys - 66) < 14)] = (50, 80, 220)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_image(path: Path, width: int = 200, height: int = 150) -> Path:
    """A still picture (PNG) with a few coloured shapes."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (70, 90, 120))
    pen = ImageDraw.Draw(img)
    pen.ellipse([20, 20, 80, 80], fill=(230, 60, 50))
    pen.rectangle([110, 60, 170, 120], fill=(60, 200, 90))
    img.save(path)
    return path


COLOR_COUNTS_JS = """() => {
  const c = document.querySelector('#mask-canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const counts = {};
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] === 0) continue;
    const key = `${d[i]},${d[i + 1]},${d[i + 2]}`;
    counts[key] = (counts[key] || 0) + 1;
  }
  return counts;
}"""
COLOR_TOLERANCE = 4  # translucent canvas pixels are stored premultiplied: their RGB reads back rounded


def mask_canvas_colors(page, palette: list[tuple[int, int, int]] | None = None) -> dict[tuple[int, int, int], int]:
    """Painted pixels (alpha > 0) of the mask overlay canvas counted per RGB colour; with ``palette``,
    each pixel is counted under the palette colour it is within ``COLOR_TOLERANCE`` of (others under
    their own colour)."""
    counts: dict[tuple[int, int, int], int] = {}
    for key, n in page.evaluate(COLOR_COUNTS_JS).items():
        rgb = tuple(int(v) for v in key.split(","))
        for ref in palette or []:
            if max(abs(a - b) for a, b in zip(rgb, ref)) <= COLOR_TOLERANCE:
                rgb = ref
                break
        counts[rgb] = counts.get(rgb, 0) + n
    return counts


def object_colors(page) -> dict[int, tuple[int, int, int]]:
    """Object id -> RGB colour, read from the swatches of the object list."""
    found = page.evaluate("""() => [...document.querySelectorAll('#object-list li')].map(li => [
        Number(li.dataset.objectId), getComputedStyle(li.querySelector('.swatch')).backgroundColor])""")
    out = {}
    for object_id, css in found:
        r, g, b = (int(v) for v in css[css.index("(") + 1:css.index(")")].split(",")[:3])
        out[object_id] = (r, g, b)
    return out


def rle_area(rle: dict) -> int:
    from pycocotools import mask as mask_utils

    return int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}))


def decode(rle: dict) -> np.ndarray:
    """(H, W) bool of an API mask."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def save_screenshot(page, tmp_dir: Path, name: str) -> Path:
    """Screenshot into ``tmp_dir`` and, when ``SAM2_DEMO_SCREENSHOT_DIR`` is set, a copy there."""
    path = tmp_dir / f"{name}.png"
    page.screenshot(path=str(path))
    extra = os.environ.get("SAM2_DEMO_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    return path


# ---- driving the page ----------------------------------------------------------------------------

def open_file(page, path: Path) -> dict:
    """Upload ``path`` with the file button (with the click tool chosen); the session as created."""
    with page.expect_response(lambda r: r.url.endswith("/api/sessions") and r.request.method == "POST") as resp:
        page.set_input_files("#file-input", str(path))
    assert resp.value.status == 201, resp.value.text()
    session = resp.value.json()
    page.wait_for_function("sid => document.body.dataset.sessionId === sid", arg=session["session_id"])
    page.locator("#tool-prompt").click()
    return session


def click_frame(page, x: float, y: float, width: int, height: int, shift: bool = False) -> dict:
    """Click frame pixel (x, y); the server's answer (FrameMasks) to the prompt request it caused."""
    canvas = page.locator("#prompt-canvas")
    box = canvas.bounding_box()
    position = {"x": x / width * box["width"], "y": y / height * box["height"]}
    with page.expect_response(lambda r: r.url.endswith("/points")) as resp:
        canvas.click(position=position, modifiers=["Shift"] if shift else [])
    assert resp.value.ok, resp.value.text()
    return {"request": resp.value.request.post_data_json, "answer": resp.value.json()}


def wait_canvas(page, expected: dict[tuple[int, int, int], int], timeout: float = 10.0) -> dict:
    """Wait until the mask canvas shows exactly ``expected`` pixel counts for those colours."""
    deadline = time.monotonic() + timeout
    while True:
        counts = mask_canvas_colors(page, list(expected))
        if all(counts.get(c, 0) == n for c, n in expected.items()) or time.monotonic() > deadline:
            assert {c: counts.get(c, 0) for c in expected} == expected
            return counts
        time.sleep(0.1)


def goto_frame(page, idx: int, total: int) -> None:
    page.locator("#timeline-slider").fill(str(idx))
    page.wait_for_function("t => document.querySelector('#frame-label').textContent.startsWith(t)",
                           arg=f"Frame {idx + 1} / {total}")


def drag_box(page, start: tuple[float, float], end: tuple[float, float], width: int, height: int) -> dict:
    """Drag a box from frame pixel ``start`` to ``end``; the prompt request and its answer."""
    box = page.locator("#prompt-canvas").bounding_box()
    to_page = lambda x, y: (box["x"] + x / width * box["width"], box["y"] + y / height * box["height"])  # noqa: E731
    with page.expect_response(lambda r: r.url.endswith("/points")) as resp:
        page.mouse.move(*to_page(*start))
        page.mouse.down()
        page.mouse.move(*to_page(*end), steps=6)
        page.mouse.up()
    assert resp.value.ok, resp.value.text()
    return {"request": resp.value.request.post_data_json, "answer": resp.value.json()}


def track(page, key: str | None = None) -> None:
    """Track (with the button, or the shortcut ``key``) and wait for the end."""
    if key:
        page.locator("body").press(key)
    else:
        page.locator("#track-button").click()
    page.wait_for_function("document.querySelector('#track-label').textContent.startsWith('Tracked')")
    assert page.locator("#message").is_hidden(), page.locator("#message").inner_text()


def server_masks(server, sid: str, frame: int) -> dict[int, dict]:
    answer = server.get_json(f"/api/sessions/{sid}/frames/{frame}/masks")
    return {m["object_id"]: m["rle"] for m in answer["masks"]}


def visible_area(masks: dict[int, dict], order: list[int]) -> dict[int, int]:
    """Pixels each object shows when painted in ``order`` (later objects cover earlier ones)."""
    shown = {}
    covered = None
    for object_id in reversed(order):
        m = decode(masks[object_id])
        own = m if covered is None else m & ~covered
        shown[object_id] = int(own.sum())
        covered = m if covered is None else covered | m
    return shown


def paint(page, strokes: list[list[tuple[float, float]]], width: int, height: int) -> dict:
    """Drag each stroke (frame pixels) with the brush; the server's answer to the last one."""
    box = page.locator("#prompt-canvas").bounding_box()
    to_page = lambda x, y: (box["x"] + x / width * box["width"], box["y"] + y / height * box["height"])  # noqa: E731
    answer = None
    for stroke in strokes:
        with page.expect_response(lambda r: r.url.endswith("/mask")) as resp:
            page.mouse.move(*to_page(*stroke[0]))
            page.mouse.down()
            for x, y in stroke[1:]:
                page.mouse.move(*to_page(x, y), steps=4)
            page.mouse.up()
        assert resp.value.ok, resp.value.text()
        answer = resp.value.json()
    return answer


def scanlines(cx: float, cy: float, half_width, half_height: float, radius: float) -> list[list[tuple[float, float]]]:
    """Horizontal brush strokes of ``radius`` that fill a shape centred on (cx, cy); ``half_width(dy)``
    gives the shape's half width at a vertical offset ``dy``."""
    strokes = []
    reach_y = max(half_height - radius, 0.0)
    rows = int(np.ceil(2 * reach_y / (1.2 * radius))) + 1
    for dy in np.linspace(-reach_y, reach_y, rows):
        reach = max(half_width(dy) - radius, 0.5)
        strokes.append([(cx - reach, cy + dy), (cx + reach, cy + dy)])
    return strokes
