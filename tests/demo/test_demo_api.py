"""The demo's HTTP API end to end: a real uvicorn server (in a thread) around ``create_app`` with the micro
model, real uploads decoded by Pillow / PyAV, masks checked with pycocotools against the predictor."""

from __future__ import annotations

import gc
import io
import threading
import weakref
from pathlib import Path

import httpx
import numpy as np
import pytest

from sam2.demo import create_app
from sam2.demo.samples import SAMPLES_DIR
from tests.demo.demo_api_support import (
    H,
    LiveServer,
    W,
    clip_frames,
    decode_rle,
    encode_mask,
    png_bytes,
    sse_events,
    wait_until,
    write_clip,
)

CONTRACT_PATHS = {
    "/api/info", "/api/sessions", "/api/sessions/{sid}", "/api/sessions/{sid}/frames/{idx}",
    "/api/sessions/{sid}/points", "/api/sessions/{sid}/mask", "/api/sessions/{sid}/clear_frame",
    "/api/sessions/{sid}/objects/{obj_id}", "/api/sessions/{sid}/propagate", "/api/sessions/{sid}/cancel",
    "/api/sessions/{sid}/frames/{idx}/masks", "/api/sessions/{sid}/everything", "/api/sessions/{sid}/export",
}


@pytest.fixture(scope="module")
def app(demo_predictor):
    return create_app(demo_predictor, model_name="micro", samples_dir=SAMPLES_DIR)


@pytest.fixture(scope="module")
def server(app):
    live = LiveServer(app)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def clip6(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("media") / "clip6.mp4", 6)


@pytest.fixture(scope="module")
def clip40(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("media") / "clip40.mp4", 40)


def open_file(client: httpx.Client, path: Path, filename: str = "clip.mp4") -> dict:
    r = client.post("/api/sessions", files={"file": (filename, path.read_bytes(), "application/octet-stream")})
    assert r.status_code == 201, r.text
    return r.json()


def click(client: httpx.Client, sid: str, frame: int, obj: int, points, labels=None, **extra) -> httpx.Response:
    body = {"frame": frame, "object_id": obj, "points": points, "labels": labels or [1] * len(points), **extra}
    return client.post(f"/api/sessions/{sid}/points", json=body)


def propagate(client: httpx.Client, sid: str, **params) -> list[tuple[str, dict]]:
    """The events of a propagation, after the "queued" ones (a previous test's closing job may still hold
    the model for a moment: those may only come first)."""
    with client.stream("GET", f"/api/sessions/{sid}/propagate", params=params) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(r))
    while events and events[0][0] == "queued":
        events.pop(0)
    assert "queued" not in [e for e, _ in events]
    return events


def masks_by_object(frame_masks: dict) -> dict[int, np.ndarray]:
    return {m["object_id"]: decode_rle(m["rle"]) for m in frame_masks["masks"]}


# ------------------------------------------------------------------------------------ server and sessions

def test_info_page_and_documented_api(client):
    info = client.get("/api/info").json()
    assert info["model"] == "micro" and info["device"] == "cpu" and info["busy"] is False
    assert info["limits"]["max_objects"] == 32 and info["limits"]["max_frames"] > 0
    assert {"id": "moving_shapes", "name": "Moving shapes", "kind": "video"} in info["samples"]
    assert {"id": "still_shapes", "name": "Still shapes", "kind": "image"} in info["samples"]
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert CONTRACT_PATHS <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert {"FrameMasks", "PointsRequest", "MaskRequest", "SessionInfo", "Info", "EverythingResult"} <= set(schemas)
    upload = spec["paths"]["/api/sessions"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(upload)


def test_uploads_are_identified_by_content_and_stored_under_server_names(client, app, clip6, tmp_path):
    tmp = app.state.demo.tmp
    video = open_file(client, clip6, filename="../../etc/passwd.mp4")
    assert video["kind"] == "video" and video["num_frames"] == 6
    assert (video["width"], video["height"], video["fps"]) == (W, H, 10.0)
    assert video["name"] == "passwd"
    assert all(p.name.startswith("upload-") and p.suffix == ".bin" for p in tmp.iterdir())
    assert not list(tmp.rglob("*passwd*"))
    state = client.get(f"/api/sessions/{video['session_id']}").json()
    assert state["objects"] == [] and state["session_id"] == video["session_id"]

    image = clip_frames(1)[0]
    as_png = client.post("/api/sessions", files={"file": ("movie.mp4", png_bytes(image))}).json()
    assert (as_png["kind"], as_png["num_frames"], as_png["width"], as_png["height"]) == ("image", 1, W, H)
    as_video = client.post("/api/sessions", files={"file": ("photo.png", clip6.read_bytes())}).json()
    assert (as_video["kind"], as_video["num_frames"]) == ("video", 6)
    for s in (video, as_png, as_video):
        assert client.delete(f"/api/sessions/{s['session_id']}").json() == {"closed": True}


def test_undecodable_uploads_are_refused_with_415(client, app, clip6):
    wait_until(lambda: not app.state.demo.worker.busy, what="an idle model")
    before = sorted(app.state.demo.tmp.iterdir())
    cases = {"random.mp4": np.random.default_rng(0).bytes(5000), "truncated.mp4": clip6.read_bytes()[:400],
             "text.jpg": b"hello, this is not a picture\n" * 20, "empty.png": b""}
    for name, data in cases.items():
        r = client.post("/api/sessions", files={"file": (name, data)})
        assert r.status_code == 415, (name, r.text)
        assert "image" in r.json()["detail"] or "empty" in r.json()["detail"]
    r = client.post("/api/sessions", content=b"abc", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    assert sorted(app.state.demo.tmp.iterdir()) == before  # refused uploads leave nothing behind


def test_frame_jpeg(client, clip6):
    sid = open_file(client, clip6)["session_id"]
    r = client.get(f"/api/sessions/{sid}/frames/3")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    from PIL import Image

    shown = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(np.float32)
    assert shown.shape == (H, W, 3)
    assert np.abs(shown - clip_frames(6)[3]).mean() < 12  # H.264 then JPEG: close, not equal
    client.delete(f"/api/sessions/{sid}")


def test_samples_open_and_unknown_sample(client):
    video = client.post("/api/sessions", json={"sample": "moving_shapes"})
    assert video.status_code == 201
    assert (video.json()["kind"], video.json()["num_frames"], video.json()["width"]) == ("video", 48, 320)
    image = client.post("/api/sessions", json={"sample": "still_shapes"}).json()
    assert image["kind"] == "image" and image["num_frames"] == 1
    missing = client.post("/api/sessions", json={"sample": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    bad = client.post("/api/sessions", json={"file": "x"})
    assert bad.status_code == 422 and "sample" in bad.json()["detail"]
    for s in (video.json(), image):
        client.delete(f"/api/sessions/{s['session_id']}")


def test_close_releases_the_session(client, app, clip6):
    sid = open_file(client, clip6)["session_id"]
    assert click(client, sid, 0, 1, [[25, 25]]).status_code == 200
    assert propagate(client, sid)[-1] == ("end", {"done": 6})
    assert client.get(f"/api/sessions/{sid}/frames/2").status_code == 200
    service = app.state.demo
    session = service.sessions.get(sid)
    state_ref, upload = weakref.ref(session.state), session.upload_path
    del session
    assert upload.is_file()
    assert client.delete(f"/api/sessions/{sid}").json() == {"closed": True}
    r = client.get(f"/api/sessions/{sid}")
    assert r.status_code == 404 and sid in r.json()["detail"]
    assert client.delete(f"/api/sessions/{sid}").status_code == 404
    wait_until(lambda: not service.worker.busy, what="the release job")
    assert not upload.exists()
    gc.collect()
    assert state_ref() is None, "the predictor state of a closed session is still referenced"


# ------------------------------------------------------------------------------------ prompts

def test_clicks_return_masks_and_reuse_the_frame_embedding(client, app, clip6, demo_predictor):
    calls = []
    hook = demo_predictor.model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        sid = open_file(client, clip6)["session_id"]
        assert len(calls) == 1  # frame 0 is embedded when the session opens
        first = click(client, sid, 0, 1, [[25, 25]])
        assert first.status_code == 200 and "model;dur=" in first.headers["server-timing"]
        again = click(client, sid, 0, 1, [[60, 50]], [0], clear_old_points=False)
        box = client.post(f"/api/sessions/{sid}/points", json={"frame": 0, "object_id": 2, "box": [60, 35, 80, 55]})
        assert again.status_code == 200 and box.status_code == 200
        assert len(calls) == 1, "a click on the cached frame recomputed the image embedding"
        assert click(client, sid, 3, 1, [[31, 25]]).status_code == 200
        assert len(calls) == 2  # a new frame is embedded once...
        assert click(client, sid, 3, 2, [[67, 45]]).status_code == 200
        assert len(calls) == 2  # ...and reused
    finally:
        hook.remove()
    result = first.json()
    assert result["frame"] == 0 and [m["object_id"] for m in result["masks"]] == [1]
    assert result["masks"][0]["rle"]["size"] == [H, W] and result["masks"][0]["score"] is None
    # the same click straight on the predictor gives the same mask
    state = demo_predictor.init_state(str(clip6), offload_video_to_cpu=True)
    _, _, logits = demo_predictor.add_new_points_or_box(state, 0, 1, points=np.array([[25.0, 25.0]]),
                                                        labels=np.array([1]))
    expected = (logits[0, 0] > 0).numpy()
    assert expected.any()
    np.testing.assert_array_equal(decode_rle(result["masks"][0]["rle"]), expected)
    stored = client.get(f"/api/sessions/{sid}/frames/3/masks").json()
    assert sorted(masks_by_object(stored)) == [1, 2]
    assert client.get(f"/api/sessions/{sid}").json()["objects"] == [1, 2]
    client.delete(f"/api/sessions/{sid}")


def test_prompt_errors_are_clear(client, clip6):
    sid = open_file(client, clip6)["session_id"]
    cases = [
        (click(client, "nosuchsession", 0, 1, [[5, 5]]), 404, "nosuchsession"),
        (click(client, sid, 6, 1, [[5, 5]]), 404, "frame 6"),
        (click(client, sid, 0, 1, [[500, 5]]), 422, "outside the 96x64 frame"),
        (click(client, sid, 0, 1, [[5, 5]], [1, 0]), 422, "label"),
        (click(client, sid, 0, 0, [[5, 5]]), 422, "object_id"),
        (click(client, sid, 0, 1, [[5, 5]], [2]), 422, "labels must be 1"),
        (click(client, sid, 0, 1, []), 422, "at least one point or a box"),
        (client.post(f"/api/sessions/{sid}/points", json={"frame": 0, "object_id": 1, "box": [50, 5, 10, 20]}),
         422, "x0 < x1"),
        (client.post(f"/api/sessions/{sid}/points", content=b"{not json", headers={"content-type": "application/json"}),
         422, "invalid request"),
        (client.get(f"/api/sessions/{sid}/frames/99"), 404, "frame 99"),
        (client.get(f"/api/sessions/{sid}/frames/-1/masks"), 404, "frame -1"),
        (client.delete(f"/api/sessions/{sid}/objects/7"), 404, "object 7"),
        (client.post(f"/api/sessions/{sid}/clear_frame", json={"frame": 0, "object_id": 7}), 404, "object 7"),
        (client.get(f"/api/sessions/{sid}/propagate"), 409, "no objects"),
        (client.get(f"/api/sessions/{sid}/propagate", params={"direction": "sideways"}), 422, "direction"),
        (client.get(f"/api/sessions/{sid}/export", params={"format": "gif"}), 422, "format"),
        (client.get(f"/api/sessions/{sid}/export", params={"format": "davis"}), 409, "no masks yet"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, (words, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and words in detail, (words, detail)
    client.delete(f"/api/sessions/{sid}")


def test_mask_prompt_clear_frame_and_remove_object(client, clip6):
    sid = open_file(client, clip6)["session_id"]
    mask = np.zeros((H, W), bool)
    mask[30:55, 55:85] = True
    r = client.post(f"/api/sessions/{sid}/mask", json={"frame": 2, "object_id": 3, "mask": encode_mask(mask)})
    assert r.status_code == 200, r.text
    got = masks_by_object(r.json())[3]
    assert (got & mask).sum() / (got | mask).sum() > 0.9
    wrong = client.post(f"/api/sessions/{sid}/mask", json={"frame": 2, "object_id": 3,
                                                            "mask": encode_mask(mask[:10])})
    assert wrong.status_code == 422 and "the frame is 96x64" in wrong.json()["detail"]
    garbage = client.post(f"/api/sessions/{sid}/mask", json={"frame": 2, "object_id": 3,
                                                              "mask": {"size": [H, W], "counts": "zz~~"}})
    assert garbage.status_code == 422 and "not a valid COCO RLE" in garbage.json()["detail"]

    cleared = client.post(f"/api/sessions/{sid}/clear_frame", json={"frame": 2, "object_id": 3})
    assert cleared.status_code == 200 and cleared.json() == {"frame": 2, "masks": []}
    assert client.get(f"/api/sessions/{sid}").json()["objects"] == []  # no prompt left: object removed

    click(client, sid, 0, 1, [[25, 25]])
    click(client, sid, 0, 2, [[70, 45]])
    click(client, sid, 4, 2, [[66, 45]])
    assert client.delete(f"/api/sessions/{sid}/objects/1").json() == {"objects": [2]}
    assert sorted(masks_by_object(client.get(f"/api/sessions/{sid}/frames/0/masks").json())) == [2]
    cleared = client.post(f"/api/sessions/{sid}/clear_frame", json={"frame": 0, "object_id": None}).json()
    assert client.get(f"/api/sessions/{sid}").json()["objects"] == [2]  # still prompted on frame 4
    assert [m["object_id"] for m in cleared["masks"]] == [2]
    client.delete(f"/api/sessions/{sid}")


# ------------------------------------------------------------------------------------ propagation

def _reference(predictor, clip: Path, direction: str) -> dict[int, np.ndarray]:
    """The same prompts straight on the predictor: {frame: (N, H, W) masks}."""
    state = predictor.init_state(str(clip), offload_video_to_cpu=True)
    predictor.add_new_points_or_box(state, 2, 1, points=np.array([[29.0, 25.0]]), labels=np.array([1]))
    predictor.add_new_points_or_box(state, 2, 2, box=np.array([59.0, 36.0, 77.0, 54.0]))
    passes = {"forward": [(2, False)], "backward": [(2, True)], "both": [(2, False), (1, True)]}[direction]
    out = {}
    for start, reverse in passes:
        for t, _, logits in predictor.propagate_in_video(state, start_frame_idx=start, reverse=reverse):
            out[t] = (logits[:, 0] > 0).numpy()
    return out


@pytest.mark.parametrize("direction", ["forward", "backward", "both"])
def test_propagation_streams_every_frame_like_the_predictor(client, app, clip6, demo_predictor, direction):
    sid = open_file(client, clip6)["session_id"]
    click(client, sid, 2, 1, [[29, 25]])
    client.post(f"/api/sessions/{sid}/points", json={"frame": 2, "object_id": 2, "box": [59, 36, 77, 54]})
    events = propagate(client, sid, direction=direction)
    order = {"forward": [2, 3, 4, 5], "backward": [2, 1, 0], "both": [2, 3, 4, 5, 1, 0]}[direction]
    names = [e for e, _ in events]
    assert names == ["start"] + ["frame"] * len(order) + ["end"]
    assert events[0][1] == {"total": len(order)} and events[-1][1] == {"done": len(order)}
    frames = [d for e, d in events if e == "frame"]
    assert [d["frame"] for d in frames] == order
    assert [d["done"] for d in frames] == list(range(1, len(order) + 1))
    assert all(d["total"] == len(order) for d in frames)
    wait_until(lambda: not app.state.demo.worker.busy, what="an idle model")
    expected = _reference(demo_predictor, clip6, direction)
    assert sorted(expected) == sorted(order)
    for d in frames:
        got = masks_by_object(d)
        assert sorted(got) == [1, 2]
        for i, obj in enumerate((1, 2)):
            np.testing.assert_array_equal(got[obj], expected[d["frame"]][i], err_msg=f"frame {d['frame']} obj {obj}")
        stored = masks_by_object(client.get(f"/api/sessions/{sid}/frames/{d['frame']}/masks").json())
        assert all(np.array_equal(stored[o], got[o]) for o in (1, 2))
    if direction == "forward":
        assert any(expected[t][0].any() for t in order), "the micro model tracked nothing: weak comparison"
    client.delete(f"/api/sessions/{sid}")


def test_cancel_mid_propagation_then_track_again(client, clip40):
    sid = open_file(client, clip40)["session_id"]
    click(client, sid, 0, 1, [[25, 25]])
    seen = []
    with client.stream("GET", f"/api/sessions/{sid}/propagate") as r:
        for event, data in sse_events(r):
            seen.append((event, data))
            if event == "frame" and data["done"] == 1:
                assert client.post(f"/api/sessions/{sid}/cancel").json() == {"cancelled": True}
    seen = [item for item in seen if item[0] != "queued"]
    assert seen[0] == ("start", {"total": 40})
    last_event, last = seen[-1]
    assert last_event == "cancelled" and 1 <= last["done"] < 40
    assert last["done"] == sum(1 for e, _ in seen if e == "frame")
    assert client.post(f"/api/sessions/{sid}/cancel").json() == {"cancelled": False}
    again = propagate(client, sid)
    assert again[-1] == ("end", {"done": 40})
    client.delete(f"/api/sessions/{sid}")


def test_client_disconnect_stops_the_work_and_the_server_stays_healthy(client, app, clip40):
    sid = open_file(client, clip40)["session_id"]
    click(client, sid, 0, 1, [[25, 25]])
    with client.stream("GET", f"/api/sessions/{sid}/propagate") as r:
        for event, _ in sse_events(r):
            if event == "frame":
                break  # leaving the block closes the connection mid-propagation
    service = app.state.demo
    wait_until(lambda: not service.worker.busy, timeout=20, what="the model to be released")
    session = service.sessions.get(sid)
    assert session.propagation is None
    assert 1 <= len(session.snapshot()) < 40, "the propagation ran to the end after the client left"
    assert client.get("/api/info").json()["busy"] is False
    again = propagate(client, sid)
    assert [e for e, _ in again][0] == "start" and again[-1] == ("end", {"done": 40})
    client.delete(f"/api/sessions/{sid}")


def test_requests_wait_in_a_queue_while_the_model_is_busy(client, app, clip6):
    service = app.state.demo
    sid = open_file(client, clip6)["session_id"]
    click(client, sid, 0, 1, [[25, 25]])
    release = threading.Event()
    service.worker.submit(release.wait, name="test blocker")
    wait_until(lambda: service.worker.busy and service.worker.queued == 0, what="the blocker to run")
    events: list[tuple[str, dict]] = []
    first_event = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=60) as c, \
                c.stream("GET", f"/api/sessions/{sid}/propagate") as r:
            for item in sse_events(r):
                events.append(item)
                first_event.set()

    clicked: list[httpx.Response] = []

    def late_click() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=60) as c:
            clicked.append(click(c, sid, 0, 2, [[70, 45]]))

    streamer = threading.Thread(target=stream)
    streamer.start()
    assert first_event.wait(10)
    clicker = threading.Thread(target=late_click)
    clicker.start()
    wait_until(lambda: service.worker.queued == 2, what="the click to queue")
    info = client.get("/api/info").json()
    assert info["busy"] is True and info["queued"] == 2
    assert events[0] == ("queued", {"position": 1})
    assert not clicked
    release.set()
    streamer.join(30)
    clicker.join(30)
    names = [e for e, _ in events]
    assert names[names.index("start"):] == ["start"] + ["frame"] * 6 + ["end"]
    assert set(names[:names.index("start")]) == {"queued"}
    assert clicked[0].status_code == 200
    client.delete(f"/api/sessions/{sid}")



def test_leaving_while_queued_withdraws_the_work(client, app, clip6):
    service = app.state.demo
    sid = open_file(client, clip6)["session_id"]
    click(client, sid, 0, 1, [[25, 25]])
    release = threading.Event()
    service.worker.submit(release.wait, name="test blocker")
    wait_until(lambda: service.worker.busy and service.worker.queued == 0, what="the blocker to run alone")
    try:
        with client.stream("GET", f"/api/sessions/{sid}/propagate") as r:
            first = next(sse_events(r))
        assert first == ("queued", {"position": 1})
        wait_until(lambda: service.worker.queued == 0, what="the queued propagation to be withdrawn")
        assert service.sessions.get(sid).propagation is None
    finally:
        release.set()
    assert propagate(client, sid)[-1] == ("end", {"done": 6})
    client.delete(f"/api/sessions/{sid}")


def test_closing_a_session_stops_its_propagation(client, app, clip40):
    sid = open_file(client, clip40)["session_id"]
    click(client, sid, 0, 1, [[25, 25]])
    seen = []
    with client.stream("GET", f"/api/sessions/{sid}/propagate") as r:
        for event, data in sse_events(r):
            seen.append((event, data))
            if event == "frame" and data["done"] == 1:
                assert client.delete(f"/api/sessions/{sid}").json() == {"closed": True}
    assert seen[-1][0] == "cancelled" and seen[-1][1]["done"] < 40
    assert client.get(f"/api/sessions/{sid}").status_code == 404
    wait_until(lambda: not app.state.demo.worker.busy, what="an idle model")


# ------------------------------------------------------------------------------------ results

def test_segment_everything(client, clip6):
    image = clip_frames(1)[0]
    sid = client.post("/api/sessions", files={"file": ("scene.png", png_bytes(image))}).json()["session_id"]
    r = client.post(f"/api/sessions/{sid}/everything",
                    json={"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["frame"] == 0 and result["masks"]
    areas = [m["area"] for m in result["masks"]]
    assert areas == sorted(areas, reverse=True)
    for m in result["masks"]:
        mask = decode_rle(m["rle"])
        assert mask.shape == (H, W) and int(mask.sum()) == m["area"]
        ys, xs = np.nonzero(mask)
        if len(xs):
            assert m["bbox"][:2] == [float(xs.min()), float(ys.min())]
    assert client.post(f"/api/sessions/{sid}/everything", json={"points_per_side": 0}).status_code == 422
    assert client.post(f"/api/sessions/{sid}/everything", json={"frame": 1}).status_code == 404
    video = open_file(client, clip6)["session_id"]
    on_frame = client.post(f"/api/sessions/{video}/everything", json={"frame": 3, "points_per_side": 2})
    assert on_frame.status_code == 200 and on_frame.json()["frame"] == 3
    for s in (sid, video):
        client.delete(f"/api/sessions/{s}")


def test_davis_palette_zip_per_object_zip_coco_json_and_overlay_mp4(client, clip6, tmp_path):
    import zipfile

    import av
    from PIL import Image
    from pycocotools.coco import COCO

    from sam2.utils.png_masks import DAVIS_PALETTE

    sid = open_file(client, clip6, filename="my clip.mp4")["session_id"]
    click(client, sid, 0, 1, [[25, 25]])
    click(client, sid, 0, 2, [[70, 45]])
    assert propagate(client, sid)[-1] == ("end", {"done": 6})
    masks = {t: masks_by_object(client.get(f"/api/sessions/{sid}/frames/{t}/masks").json()) for t in range(6)}

    davis = client.get(f"/api/sessions/{sid}/export", params={"format": "davis"})
    assert davis.headers["content-disposition"] == 'attachment; filename="my_clip_davis_masks.zip"'
    with zipfile.ZipFile(io.BytesIO(davis.content)) as zf:
        assert zf.namelist() == [f"my_clip/{t:05d}.png" for t in range(6)]
        for t in range(6):
            img = Image.open(io.BytesIO(zf.read(f"my_clip/{t:05d}.png")))
            assert img.mode == "P" and bytes(img.getpalette()[:768]) == DAVIS_PALETTE
            expected = np.zeros((H, W), np.uint8)
            expected[masks[t][2]] = 2
            expected[masks[t][1]] = 1  # the smaller id wins where objects overlap
            np.testing.assert_array_equal(np.asarray(img), expected)

    sav = client.get(f"/api/sessions/{sid}/export", params={"format": "sav"})
    with zipfile.ZipFile(io.BytesIO(sav.content)) as zf:
        assert sorted(zf.namelist()) == sorted(f"my_clip/{o:03d}/{t:05d}.png" for o in (1, 2) for t in range(6))
        for o in (1, 2):
            img = np.asarray(Image.open(io.BytesIO(zf.read(f"my_clip/{o:03d}/00003.png"))))
            np.testing.assert_array_equal(img, masks[3][o].astype(np.uint8))

    coco_file = tmp_path / "coco.json"
    coco_file.write_bytes(client.get(f"/api/sessions/{sid}/export", params={"format": "coco"}).content)
    coco = COCO(str(coco_file))
    assert len(coco.getImgIds()) == 6 and sorted(coco.getCatIds()) == [1, 2]
    for ann in coco.loadAnns(coco.getAnnIds()):
        t = coco.imgs[ann["image_id"]]["frame_index"]
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), masks[t][ann["category_id"]])
        assert ann["area"] == int(masks[t][ann["category_id"]].sum())

    mp4 = client.get(f"/api/sessions/{sid}/export", params={"format": "mp4"})
    assert mp4.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(mp4.content)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (H, W, 3)
    assert masks[0][1].any()
    change = np.abs(frames[0].astype(np.float32) - clip_frames(1)[0]).mean(axis=-1)
    assert change[masks[0][1]].mean() > change[~masks[0][1] & ~masks[0][2]].mean() + 10  # the mask is drawn
    client.delete(f"/api/sessions/{sid}")


def test_davis_export_refuses_ids_beyond_the_palette(client):
    sid = client.post("/api/sessions", files={"file": ("a.png", png_bytes(clip_frames(1)[0]))}).json()["session_id"]
    click(client, sid, 0, 300, [[25, 25]])
    r = client.get(f"/api/sessions/{sid}/export", params={"format": "davis"})
    assert r.status_code == 409 and "1..255" in r.json()["detail"] and "300" in r.json()["detail"]
    assert client.get(f"/api/sessions/{sid}/export", params={"format": "sav"}).status_code == 200
    client.delete(f"/api/sessions/{sid}")

