"""End-to-end tests of the ``sam2 demo`` page in a real headless Chromium (Debian's, via Playwright).

One real server (``python -m sam2 demo`` with the micro model and synthesized weights) and one browser
serve the whole module. The page is driven like a person would: upload, click, drag, keys; the results
are read back from the page's canvases and checked against the server's API and the downloaded files.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sam2.cli.selfcheck import MICRO_CONFIG
from tests.demo.browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DemoServer,
    browser_skip_reason,
    click_frame,
    decode,
    drag_box,
    goto_frame,
    mask_canvas_colors,
    object_colors,
    open_file,
    paint,
    rle_area,
    save_screenshot,
    scanlines,
    server_masks,
    track,
    visible_area,
    wait_canvas,
    write_image,
    write_video,
)
from tests.reference import FIXTURES_DIR

pytestmark = pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")

FRAMES, WIDTH, HEIGHT = 6, 160, 96


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo_browser")


@pytest.fixture(scope="module")
def server(workdir: Path, demo_checkpoint: Path):
    """``python -m sam2 demo`` on the micro model, with the synthesized weights of conftest.py whose
    tracked objects stay present (the reference data is needed: random weights give empty masks)."""
    if not FIXTURES_DIR.is_dir():
        pytest.skip(f"reference data not found at {FIXTURES_DIR.parent} (set SAM2_REFERENCE_DIR)")
    demo = DemoServer(["--config", str(MICRO_CONFIG), "--checkpoint", str(demo_checkpoint), "--device", "cpu"],
                      workdir / "server.log")
    yield demo
    demo.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='true']")
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="module")
def shots(workdir: Path) -> Path:
    folder = workdir / "screenshots"
    folder.mkdir()
    return folder


# ---- tests ---------------------------------------------------------------------------------------

def test_rle_codec_matches_pycocotools(page):
    """The page's JS RLE encoder / decoder agree with pycocotools on edge cases and random blobs."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    blobs = (rng.random((37, 53)) > 0.5).astype(np.uint8)
    smooth = np.zeros((300, 410), np.uint8)
    smooth[40:260, 30:390] = 1
    smooth[100:120, :] = 0
    cases = [np.zeros((5, 7), np.uint8), np.ones((5, 7), np.uint8), blobs, smooth,
             np.pad(np.ones((1, 1), np.uint8), ((0, 4), (0, 6)))]
    for mask in cases:
        h, w = mask.shape
        ref = mask_utils.encode(np.asfortranarray(mask))["counts"].decode()
        ours = page.evaluate("""async ([data, h, w, ref]) => {
            const rle = await import('/static/js/rle.js');
            const enc = rle.encodeRle(Uint8Array.from(data), h, w);
            const dec = rle.decodeRle({size: [h, w], counts: ref});
            return {counts: enc.counts, decoded: Array.from(dec.data), area: rle.rleArea({size: [h, w], counts: ref})};
        }""", [mask.ravel().tolist(), h, w, ref])
        assert ours["counts"] == ref
        assert np.array_equal(np.array(ours["decoded"], np.uint8).reshape(h, w), mask)
        assert ours["area"] == int(mask.sum())


def test_gallery_lists_the_servers_samples(page, server):
    samples = server.get_json("/api/info")["samples"]
    buttons = page.locator("#gallery button.sample")
    assert buttons.count() == len(samples)
    if not samples:
        assert "No samples" in page.locator("#gallery").inner_text()
        return
    with page.expect_response(lambda r: r.url.endswith("/api/sessions")) as resp:
        buttons.first.click()
    session = resp.value.json()
    assert session["kind"] == samples[0]["kind"]
    page.wait_for_function("sid => document.body.dataset.sessionId === sid", arg=session["session_id"])


def test_dropped_non_media_file_shows_the_servers_message(page):
    """A text file named like a video, dropped on the page: the server's 415 reason is shown."""
    dropped = page.evaluate_handle("""() => {
        const dt = new DataTransfer();
        dt.items.add(new File(['this is plain text, not a video'], 'clip.mp4', {type: 'video/mp4'}));
        return dt;
    }""")
    page.dispatch_event("#stage-wrap", "dragenter", {"dataTransfer": dropped})
    assert page.locator("#drop-overlay").is_visible()
    with page.expect_response(lambda r: r.url.endswith("/api/sessions")) as resp:
        page.dispatch_event("#stage-wrap", "drop", {"dataTransfer": dropped})
    assert page.locator("#drop-overlay").is_hidden()
    assert resp.value.status == 415
    detail = resp.value.json()["detail"]
    message = page.locator("#message")
    message.wait_for(state="visible")
    assert message.get_attribute("data-kind") == "error"
    assert message.locator(".message-text").inner_text() == detail
    page.locator("#message .message-close").click()
    assert message.is_hidden()


def test_help_overlay_lists_the_shortcuts(page):
    page.locator("body").press("?")
    dialog = page.locator("#help-dialog")
    dialog.wait_for(state="visible")
    text = dialog.inner_text()
    for key in ("Space", "N", "Delete", "T", "Esc"):
        assert key in text
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")


def test_video_click_track_scrub_refine_objects_export(page, server, workdir, shots):
    video = write_video(workdir / "shapes.mp4", FRAMES, WIDTH, HEIGHT)
    session = open_file(page, video)
    sid = session["session_id"]
    assert (session["kind"], session["num_frames"], session["width"], session["height"]) == ("video", FRAMES, WIDTH, HEIGHT)
    page.wait_for_selector("#timeline:not([hidden])")
    colors = object_colors(page)
    assert list(colors) == [1]

    # a click on the red disc: the object's mask appears on the canvas, pixel for pixel
    first = click_frame(page, 40, 40, WIDTH, HEIGHT)
    assert first["request"]["points"] == [[40, 40]] and first["request"]["labels"] == [1]
    rle1 = {m["object_id"]: m["rle"] for m in first["answer"]["masks"]}[1]
    assert rle_area(rle1) > 0
    wait_canvas(page, {colors[1]: rle_area(rle1)})
    save_screenshot(page, shots, "01_click")

    # track: every frame gets a mask; scrub to frame 4 and see it drawn
    track(page)
    for t in range(FRAMES):
        assert 1 in server_masks(server, sid, t), f"frame {t} has no mask after tracking"
    page.locator("body").press(" ")  # play from frame 1 to the end
    page.wait_for_function("t => document.querySelector('#frame-label').textContent.startsWith(t)",
                           arg=f"Frame {FRAMES} / {FRAMES}")
    page.wait_for_selector("#play-button[aria-pressed='false']")
    goto_frame(page, 4, FRAMES)
    area4 = rle_area(server_masks(server, sid, 4)[1])
    wait_canvas(page, {colors[1]: area4})
    page.locator("#opacity").fill("0")  # transparent fill: only the opaque outline is left
    outline = mask_canvas_colors(page, [colors[1]])[colors[1]]
    assert 0 < outline < area4
    page.locator("#opacity").fill("55")
    wait_canvas(page, {colors[1]: area4})
    page.locator("#stage").click(position={"x": 1, "y": 1}, force=True, trial=True)
    page.locator("body").press("ArrowLeft")
    page.wait_for_function("document.querySelector('#frame-label').textContent.startsWith('Frame 4 /')")

    # refine frame 3 with a negative click, then track again from there
    wait_canvas(page, {colors[1]: rle_area(server_masks(server, sid, 3)[1])})
    refine = click_frame(page, 150, 8, WIDTH, HEIGHT, shift=True)
    assert refine["request"]["frame"] == 3 and refine["request"]["labels"] == [0]
    wait_canvas(page, {colors[1]: rle_area(refine["answer"]["masks"][0]["rle"])})
    track(page)

    # a second object (key N) from a box dragged around the blue square; tracked with key T
    page.locator("body").press("n")
    colors = object_colors(page)
    assert list(colors) == [1, 2] and colors[1] != colors[2]
    second = drag_box(page, (88, 52), (116, 80), WIDTH, HEIGHT)
    assert second["request"]["object_id"] == 2 and second["request"]["points"] == []
    assert all(abs(a - b) <= 1 for a, b in zip(second["request"]["box"], [88, 52, 116, 80]))
    track(page, key="t")
    goto_frame(page, 5, FRAMES)
    masks5 = server_masks(server, sid, 5)
    assert set(masks5) == {1, 2}
    shown = visible_area(masks5, [1, 2])
    wait_canvas(page, {colors[o]: n for o, n in shown.items()})
    save_screenshot(page, shots, "02_two_objects_tracked")

    check_exports(page, workdir, server, sid)

    # hide, then remove object 2
    page.locator("#object-list li[data-object-id='2'] .object-visibility").click()
    wait_canvas(page, {colors[1]: rle_area(masks5[1]), colors[2]: 0})
    page.locator("#object-list li[data-object-id='2'] .object-remove").click()
    page.wait_for_function("document.querySelectorAll('#object-list li').length === 1")
    assert page.locator("#message").is_hidden()
    deadline = time.monotonic() + 10
    while server.get_json(f"/api/sessions/{sid}")["objects"] != [1] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.get_json(f"/api/sessions/{sid}")["objects"] == [1]
    save_screenshot(page, shots, "03_object_removed")


def check_exports(page, workdir: Path, server, sid: str) -> None:
    """Each export link downloads a file that opens and holds the session's masks."""
    from PIL import Image

    files = {}
    for fmt in ("davis", "sav", "coco", "mp4"):
        with page.expect_download() as download:
            page.locator(f"a.export[data-format='{fmt}']").click()
        files[fmt] = workdir / f"export_{fmt}"
        download.value.save_as(files[fmt])

    with zipfile.ZipFile(files["davis"]) as zf:
        names = sorted(zf.namelist())
        assert len(names) == FRAMES and names[0].endswith("/00000.png")
        png = Image.open(io.BytesIO(zf.read(names[5])))
        assert png.mode == "P" and png.size == (WIDTH, HEIGHT)
        assert set(np.unique(np.array(png))) <= {0, 1, 2} and 2 in np.array(png)
    with zipfile.ZipFile(files["sav"]) as zf:
        names = sorted(zf.namelist())
        folders = {n.split("/")[-2] for n in names}
        assert folders == {"001", "002"} and len(names) == 2 * FRAMES

    coco = json.loads(files["coco"].read_text())
    masks5 = server_masks(server, sid, 5)
    image_id = next(i["id"] for i in coco["images"] if i["frame_index"] == 5)
    for ann in (a for a in coco["annotations"] if a["image_id"] == image_id):
        assert np.array_equal(decode(ann["segmentation"]), decode(masks5[ann["object_id"]]))

    import av

    with av.open(str(files["mp4"])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == FRAMES and frames[0].shape == (HEIGHT, WIDTH, 3)


def test_image_click_and_segment_everything(page, workdir, shots):
    image = write_image(workdir / "still.png")
    session = open_file(page, image)
    assert session["kind"] == "image" and session["num_frames"] == 1
    assert page.locator("#timeline").is_hidden() and page.locator("#track-card").is_hidden()

    # nothing to export yet: the server's reason is shown, no file is saved
    with page.expect_response(lambda r: "/export" in r.url) as resp:
        page.locator("a.export[data-format='davis']").click()
    assert resp.value.status == 409
    page.wait_for_function("t => document.querySelector('#message .message-text').textContent === t",
                           arg=resp.value.json()["detail"])
    page.locator("#message .message-close").click()

    colors = object_colors(page)
    answer = click_frame(page, 50, 50, 200, 150)["answer"]
    wait_canvas(page, {colors[1]: rle_area(answer["masks"][0]["rle"])})
    with page.expect_response(lambda r: r.url.endswith("/clear_frame")) as resp:
        page.locator("body").press("z")  # undo the only point: the object's prompts and mask go
    assert resp.value.ok and resp.value.request.post_data_json == {"frame": 0, "object_id": 1}
    wait_canvas(page, {colors[1]: 0})
    answer = click_frame(page, 50, 50, 200, 150)["answer"]
    wait_canvas(page, {colors[1]: rle_area(answer["masks"][0]["rle"])})

    page.locator("#object-list li[data-object-id='1'] .object-visibility").click()
    page.locator(".settings summary").click()
    page.locator("#iou-thresh").fill("0.3")
    page.locator("#stability-thresh").fill("0.3")
    with page.expect_response(lambda r: r.url.endswith("/everything")) as resp:
        page.locator("#everything-button").click()
    assert resp.value.request.post_data_json["pred_iou_thresh"] == 0.3
    found = resp.value.json()["masks"]
    assert found, "segment everything found no mask"
    page.wait_for_function("n => document.querySelector('#everything-label').textContent.startsWith(n + ' masks')",
                           arg=len(found))
    union = np.zeros((150, 200), bool)
    for m in found:
        union |= decode(m["rle"])
    deadline = time.monotonic() + 10
    while sum(mask_canvas_colors(page).values()) != int(union.sum()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sum(mask_canvas_colors(page).values()) == int(union.sum())
    save_screenshot(page, shots, "04_image_everything")

    # Alt-click inside the smallest mask there: it becomes a new object (sent as its mask prompt)
    y, x = np.argwhere(decode(found[-1]["rle"]))[0]
    box = page.locator("#prompt-canvas").bounding_box()
    where = {"x": (x + 0.5) / 200 * box["width"], "y": (y + 0.5) / 150 * box["height"]}
    with page.expect_response(lambda r: r.url.endswith("/mask")) as resp:
        page.locator("#prompt-canvas").click(modifiers=["Alt"], position=where)
    kept = resp.value.request.post_data_json
    assert kept["object_id"] == 2 and np.array_equal(decode(kept["mask"]), decode(found[-1]["rle"]))
    page.locator("#object-list li[data-object-id='2'] .object-remove").click()
    page.wait_for_function("document.querySelectorAll('#object-list li').length === 1")
    assert page.locator("#message").is_hidden()

    # paint a new object (id 3) with the brush: the painted mask goes to the server, drawn as answered
    page.locator("#show-everything").uncheck()
    page.locator("#add-object").click()
    page.locator("#tool-brush").click()
    canvas = page.locator("#prompt-canvas")
    box = canvas.bounding_box()
    with page.expect_response(lambda r: r.url.endswith("/mask")) as resp:
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.7, steps=5)
        page.mouse.up()
    assert resp.value.ok, resp.value.text()
    assert resp.value.request.post_data_json["object_id"] == 3
    sent = decode(resp.value.request.post_data_json["mask"])
    assert sent[int(150 * 0.6), int(200 * 0.6)] and sent[int(150 * 0.7), int(200 * 0.8)] and not sent[5, 5]
    colors = object_colors(page)
    painted = {m["object_id"]: m["rle"] for m in resp.value.json()["masks"]}[3]
    wait_canvas(page, {colors[3]: rle_area(painted)})
    save_screenshot(page, shots, "05_image_brush")


def test_cancel_tracking_keeps_the_frames_done(page, server, workdir):
    long_clip = write_video(workdir / "long.mp4", frames=240, width=64, height=48, fps=24)
    session = open_file(page, long_clip)
    click_frame(page, 20, 20, 64, 48)
    page.locator("#direction").select_option("forward")
    page.locator("#track-button").click()
    page.wait_for_function("Number(document.querySelector('#track-progress').dataset.done) >= 1")
    page.locator("body").press("Escape")
    page.wait_for_function("document.querySelector('#track-label').textContent === 'Tracking cancelled'")
    assert page.locator("#message").get_attribute("data-kind") == "notice"
    done = [t for t in range(session["num_frames"])
            if server.get_json(f"/api/sessions/{session['session_id']}/frames/{t}/masks")["masks"]]
    assert 1 <= len(done) < session["num_frames"]
    assert page.locator("#track-button").is_enabled() and page.locator("#cancel-button").is_disabled()


def test_a_second_page_is_told_to_wait_for_the_busy_model(page, browser, server, workdir):
    """While one page tracks a long clip, a click on another page waits in the queue and says so."""
    other = browser.new_context(viewport={"width": 1000, "height": 700}).new_page()
    other.set_default_timeout(30_000)
    try:
        other.goto(server.url)
        other.wait_for_selector("body[data-ready='true']")
        open_file(other, write_image(workdir / "other.png"))
        open_file(page, write_video(workdir / "busy.mp4", frames=240, width=64, height=48, fps=24))
        click_frame(page, 20, 20, 64, 48)
        page.locator("#direction").select_option("forward")
        page.locator("#track-button").click()
        page.wait_for_function("Number(document.querySelector('#track-progress').dataset.done) >= 1")
        canvas = other.locator("#prompt-canvas")
        with other.expect_response(lambda r: r.url.endswith("/points")) as resp:
            canvas.click(position={"x": 30, "y": 30})
            other.wait_for_function("document.querySelector('#status').textContent.startsWith('Waiting for the model')")
            page.locator("body").press("Escape")  # frees the model
        assert resp.value.ok
        other.wait_for_function("document.querySelector('#status').textContent === ''")
        page.wait_for_function("document.querySelector('#track-label').textContent === 'Tracking cancelled'")
    finally:
        other.context.close()


def test_readme_screenshot_two_tracked_objects(page, server, workdir, shots):
    """The README picture: the bundled moving-shapes clip, two painted and tracked objects, the list."""
    samples = {s["id"] for s in server.get_json("/api/info")["samples"]}
    if "moving_shapes" not in samples:
        pytest.skip("the bundled sample moving_shapes is not in this server's gallery")
    page.reload()  # a fresh page: the controls as a new visitor sees them
    page.wait_for_selector("body[data-ready='true']")
    with page.expect_response(lambda r: r.url.endswith("/api/sessions")) as resp:
        page.locator("#gallery button[data-sample-id='moving_shapes']").click()
    session = resp.value.json()
    width, height = session["width"], session["height"]
    page.wait_for_function("sid => document.body.dataset.sessionId === sid", arg=session["session_id"])
    page.locator("#tool-brush").click()
    page.locator("#brush-size").fill("20")
    radius = 20 * width / page.locator("#prompt-canvas").bounding_box()["width"]

    # frame 0 of make_samples.py: disc at (0.2 w, 0.35 h) radius 0.13 h; square at (0.75 w, 0.62 h) half 0.12 h
    r, s = 0.13 * height, 0.12 * height
    page.locator(".object-name").first.fill("Red disc")
    page.locator(".object-name").first.press("Enter")
    disc = paint(page, scanlines(0.2 * width, 0.35 * height, lambda dy: (r * r - dy * dy) ** 0.5, r, radius),
                 width, height)
    page.locator("#add-object").click()
    page.locator(".object-name").nth(1).fill("Green square")
    page.locator(".object-name").nth(1).press("Enter")
    square = paint(page, scanlines(0.75 * width, 0.62 * height, lambda dy: s, s, radius), width, height)
    ys, xs = np.mgrid[0:height, 0:width]
    truth = {1: (xs - 0.2 * width) ** 2 + (ys - 0.35 * height) ** 2 < r * r,
             2: (abs(xs - 0.75 * width) < s) & (abs(ys - 0.62 * height) < s)}
    for object_id, answer in ((1, disc), (2, square)):
        mask = decode({m["object_id"]: m["rle"] for m in answer["masks"]}[object_id])
        assert (mask & truth[object_id]).sum() / (mask | truth[object_id]).sum() > 0.7

    page.locator("#tool-prompt").click()
    track(page)
    goto_frame(page, 0, session["num_frames"])
    colors = object_colors(page)
    painted = mask_canvas_colors(page, list(colors.values()))
    assert painted.get(colors[1], 0) > 0 and painted.get(colors[2], 0) > 0
    page.locator("#prompt-canvas").hover(position={"x": 5, "y": 5})
    save_screenshot(page, shots, "demo")
