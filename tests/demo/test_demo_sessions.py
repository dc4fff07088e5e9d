"""Demo sessions and their limits: objects, upload size, frame count, open sessions, idle expiry; the model
queue; RLE checking; upload names. Through the ASGI app (FastAPI's TestClient) with the micro model."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from sam2.demo import create_app, rle
from sam2.demo.errors import DemoError
from sam2.demo.sessions import DemoLimits
from sam2.demo.uploads import safe_name
from sam2.demo.worker import ModelWorker
from tests.demo.demo_api_support import H, LiveServer, W, clip_frames, png_bytes, wait_until, write_clip

SMALL = DemoLimits(max_objects=2, max_upload_mb=0.05, max_frames=4, session_idle_s=600, max_sessions=2)


@pytest.fixture(scope="module")
def small(demo_predictor):
    """An app with small limits (and no sample gallery)."""
    with TestClient(create_app(demo_predictor, model_name="micro", limits=SMALL, samples_dir=None)) as c:
        yield c


def open_image(client, image: np.ndarray | None = None, name: str = "a.png") -> dict:
    r = client.post("/api/sessions", files={"file": (name, png_bytes(clip_frames(1)[0] if image is None else image))})
    assert r.status_code == 201, r.text
    return r.json()


def click(client, sid: str, obj: int) -> object:
    return client.post(f"/api/sessions/{sid}/points",
                       json={"frame": 0, "object_id": obj, "points": [[25, 25]], "labels": [1]})


def test_info_reports_the_limits_and_an_empty_gallery(small):
    info = small.get("/api/info").json()
    assert info["limits"] == {"max_objects": 2, "max_upload_mb": 0.05, "max_frames": 4, "session_idle_s": 600,
                              "max_sessions": 2}
    assert info["samples"] == []
    assert small.get("/").status_code == 200
    r = small.post("/api/sessions", json={"sample": "moving_shapes"})
    assert r.status_code == 404 and "samples: none" in r.json()["detail"]


def test_object_limit(small):
    sid = open_image(small)["session_id"]
    assert click(small, sid, 1).status_code == 200
    assert click(small, sid, 2).status_code == 200
    third = click(small, sid, 3)
    assert third.status_code == 409
    assert "too many objects" in third.json()["detail"] and "limit is 2" in third.json()["detail"]
    assert "--max-objects" in third.json()["detail"]
    assert click(small, sid, 2).status_code == 200  # an existing object can still be refined
    small.delete(f"/api/sessions/{sid}/objects/1")
    assert click(small, sid, 3).status_code == 200
    small.delete(f"/api/sessions/{sid}")


def test_upload_size_limit(small):
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)  # ~120 KB as PNG
    r = small.post("/api/sessions", files={"file": ("noise.png", png_bytes(noise))})
    assert r.status_code == 413
    assert "upload limit of 0.05 MB" in r.json()["detail"] and "--max-upload-mb" in r.json()["detail"]
    assert list(small.app.state.demo.tmp.iterdir()) == []


def test_upload_size_limit_without_content_length(demo_predictor):
    """A chunked upload has no Content-Length: the copy itself stops at the limit."""
    app = create_app(demo_predictor, limits=SMALL, samples_dir=None)
    noise = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    boundary = "xyzBOUNDARY"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"n.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + png_bytes(noise) + f"\r\n--{boundary}--\r\n".encode()

    def chunks():
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192]

    live = LiveServer(app)
    try:
        r = httpx.post(f"{live.url}/api/sessions", content=chunks(),
                       headers={"content-type": f"multipart/form-data; boundary={boundary}"}, timeout=30)
    finally:
        live.stop()
    assert r.status_code == 413 and "0.05 MB" in r.json()["detail"]


def test_frame_count_limit(small, tmp_path):
    clip = write_clip(tmp_path / "six.mp4", 6)
    r = small.post("/api/sessions", files={"file": ("six.mp4", clip.read_bytes())})
    assert r.status_code == 413
    assert r.json()["detail"] == "the video has 6 frames; the limit is 4 frames (sam2 demo --max-frames)"
    ok = small.post("/api/sessions", files={"file": ("four.mp4", write_clip(tmp_path / "four.mp4", 4).read_bytes())})
    assert ok.status_code == 201 and ok.json()["num_frames"] == 4
    small.delete(f"/api/sessions/{ok.json()['session_id']}")


def test_session_limit(small):
    a, b = open_image(small), open_image(small)
    r = small.post("/api/sessions", files={"file": ("c.png", png_bytes(clip_frames(1)[0]))})
    assert r.status_code == 409 and "too many open sessions" in r.json()["detail"] and "2" in r.json()["detail"]
    small.delete(f"/api/sessions/{a['session_id']}")
    c = open_image(small)
    for s in (b, c):
        small.delete(f"/api/sessions/{s['session_id']}")


def test_session_ids_are_random_tokens(small):
    ids = {open_image(small)["session_id"] for _ in range(2)}
    assert len(ids) == 2 and all(len(i) >= 22 for i in ids)
    for sid in ids:
        small.delete(f"/api/sessions/{sid}")


def test_idle_sessions_expire_in_the_background(demo_predictor):
    limits = DemoLimits(session_idle_s=1)
    app = create_app(demo_predictor, limits=limits, samples_dir=None)
    live = LiveServer(app)  # runs the lifespan, hence the background sweep (every second here)
    try:
        with httpx.Client(base_url=live.url, timeout=30) as client:
            kept = open_image(client)["session_id"]
            idle = client.post("/api/sessions", files={"file": ("v.mp4", write_clip_bytes())}).json()["session_id"]
            upload = app.state.demo.sessions.get(idle).upload_path
            assert upload.is_file()
            deadline = time.monotonic() + 3.5
            while time.monotonic() < deadline:  # keep one session busy with requests
                assert client.get(f"/api/sessions/{kept}").status_code == 200
                time.sleep(0.3)
            r = client.get(f"/api/sessions/{idle}")
            assert r.status_code == 404 and "expired after 1 s idle" in r.json()["detail"]
            assert client.get(f"/api/sessions/{kept}").status_code == 200
            wait_until(lambda: not upload.exists(), what="the expired session's upload to be deleted")
    finally:
        live.stop()
    assert not app.state.demo.tmp.exists()  # shutdown removes the scratch folder


def write_clip_bytes() -> bytes:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        return write_clip(Path(tmp) / "c.mp4", 3).read_bytes()


# ------------------------------------------------------------------------------------ pieces

def test_model_worker_runs_jobs_in_order_and_reports_positions():
    worker = ModelWorker()
    try:
        gate, order = threading.Event(), []
        first = worker.submit(gate.wait, "blocker")
        wait_until(lambda: worker.queued == 0 and worker.busy, what="the blocker to start")
        second = worker.submit(lambda: order.append(2) or "two")
        third = worker.submit(lambda: order.append(3))
        fourth = worker.submit(lambda: 1 / 0)
        assert [worker.position(j) for j in (first, second, third, fourth)] == [0, 1, 2, 3]
        assert worker.cancel(third) and third.future.cancelled()
        assert worker.position(fourth) == 2 and worker.queued == 2
        gate.set()
        assert second.future.result(10) == "two"
        with pytest.raises(ZeroDivisionError):
            fourth.future.result(10)
        assert order == [2]
        assert not worker.cancel(second)  # already ran
        wait_until(lambda: not worker.busy, what="an idle worker")
        assert second.run_s >= 0 and second.queue_s > 0
    finally:
        worker.close()
    with pytest.raises(RuntimeError, match="shut down"):
        worker.submit(lambda: None)


def test_rle_round_trip_and_malformed_masks():
    masks = np.random.default_rng(2).random((3, H, W)) < 0.3
    encoded = rle.encode(masks)
    assert all(isinstance(r["counts"], str) and r["size"] == [H, W] for r in encoded)
    for r, m in zip(encoded, masks):
        np.testing.assert_array_equal(rle.decode(r, H, W), m)
    np.testing.assert_array_equal(rle.decode({"size": [2, 3], "counts": [1, 2, 3]}, 2, 3),
                                  np.array([0, 1, 1, 0, 0, 0], bool).reshape((2, 3), order="F"))
    bad = [({"size": [H, W], "counts": "\u00e9t\u00e9"}, "cannot appear"),
           ({"size": [H, W], "counts": "0"}, "add up to 0 pixels"),
           ({"size": [H, W], "counts": [H * W, 5]}, f"not {H * W}"),
           ({"size": [H, W], "counts": [-1, H * W + 1]}, "non-negative"),
           ({"size": [H, W]}, "COCO RLE object"),
           ({"size": [H, W + 1], "counts": encoded[0]["counts"]}, "but the frame is"),
           ({"size": "64x96", "counts": ""}, "[height, width]")]
    for value, words in bad:
        with pytest.raises(DemoError) as info:
            rle.decode(value, H, W)
        assert info.value.status == 422 and words in info.value.detail, (value, info.value.detail)
    huge = "o" * 6 + chr(48 + 15)  # one run of ~2**34 pixels: refused before pycocotools writes it
    with pytest.raises(DemoError, match="add up to"):
        rle.decode({"size": [H, W], "counts": huge}, H, W)


def test_safe_names_of_uploads():
    assert safe_name("../../etc/passwd.mp4") == "passwd"
    assert safe_name("C:\\Users\\me\\holiday clip.final.MOV") == "holiday_clip_final"
    assert safe_name("..") == "upload" and safe_name(None) == "upload" and safe_name("\u00e9\u00e9.mp4") == "upload"
    assert len(safe_name("x" * 500 + ".mp4")) == 64


def test_import_sam2_demo_does_not_need_fastapi():
    code = "import sys, sam2.demo; print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_page_and_static_files_are_served_from_the_package_folder(demo_predictor, tmp_path):
    static = tmp_path / "static"
    (static / "js").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html><title>demo page</title>")
    (static / "js" / "app.js").write_text("console.log('hi');")
    (tmp_path / "secret.txt").write_text("not for the web")
    with TestClient(create_app(demo_predictor, samples_dir=None, static_dir=static)) as client:
        page = client.get("/")
        assert page.status_code == 200 and "demo page" in page.text
        assert client.get("/static/js/app.js").text == "console.log('hi');"
        assert client.get("/static/../secret.txt").status_code == 404
        assert client.get("/static/%2e%2e/secret.txt").status_code == 404


def test_create_app_names_an_unknown_model():
    with pytest.raises(ValueError, match="unknown model 'no-such-model'"):
        create_app("no-such-model")
