"""Frame sources of streaming sessions: files, folders, growing files, HTTP streams and iterables, with
clear errors when a source cannot be opened or fails mid-stream (the results before it are kept)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam2.streaming import SourceError, StreamingSession, open_source
from sam2.utils.video_decode import VideoFileSource
from tests import reference as R
from tests.streaming.live_media import growing_file, http_server, ts_bytes
from tests.streaming.stream_support import micro, prompt
from tests.video_api_support import make_frames, write_checkpoint, write_mp4

pytestmark = R.requires_reference

N = 12


@pytest.fixture(scope="module")
def frames():
    return make_frames(N)


@pytest.fixture(scope="module")
def ts(frames):
    return ts_bytes(frames)


@pytest.fixture(scope="module")
def decoded_ts(ts, tmp_path_factory):
    """The frames of the complete MPEG-TS, as the offline loader decodes them."""
    path = tmp_path_factory.mktemp("ts") / "full.ts"
    path.write_bytes(ts)
    source = VideoFileSource(str(path))
    try:
        return [source.read(i) for i in range(len(source))]
    finally:
        source.close()


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return micro(write_checkpoint(tmp_path_factory.mktemp("ckpt")))


def assert_same_frames(ours, expected) -> None:
    assert len(ours) == len(expected)
    for i, (a, b) in enumerate(zip(ours, expected)):
        assert a.dtype == np.uint8 and np.array_equal(a, b), f"frame {i} differs"


def test_video_file_decodes_like_the_offline_loader(frames, tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", frames)
    offline = VideoFileSource(str(path))
    expected = [offline.read(i) for i in range(len(offline))]
    offline.close()
    with open_source(str(path)) as source:
        assert source.length == N and source.fps == 10.0
        assert_same_frames(list(source), expected)


def test_folder_of_frames(frames, tmp_path, predictor):
    for i, frame in enumerate(frames[:4]):
        Image.fromarray(frame).save(tmp_path / f"{i}.png")
    source = open_source(tmp_path)
    assert source.length == 4 and source.names == ["0", "1", "2", "3"]
    assert_same_frames(list(source), frames[:4])
    session = StreamingSession(predictor)  # a path given to stream() is opened (and closed) by it
    assert [r.frame_idx for r in session.stream(str(tmp_path))] == [0, 1, 2, 3]


def test_growing_file_is_read_as_it_grows(ts, decoded_ts, tmp_path):
    with growing_file(tmp_path / "live.ts", ts) as path:
        source = open_source(path, follow=True, idle_timeout=2.0)
        assert source.length is None
        got = list(source)
        source.close()
    assert_same_frames(got, decoded_ts)


def test_http_stream_and_a_stream_cut_mid_way(ts, decoded_ts, predictor):
    with http_server(ts) as url:
        with open_source(f"{url}/full.ts") as source:
            assert_same_frames(list(source), decoded_ts)
        session = StreamingSession(predictor)
        results = []
        with open_source(f"{url}/cut.ts") as source, pytest.raises(SourceError) as info:
            for result in session.stream(source):
                if result.frame_idx == 0:
                    result = prompt(session, 1)
                results.append(result)
    assert f"stream '{url}/cut.ts' failed after {len(results)} frames" in str(info.value)
    assert 0 < len(results) < N
    assert [r.frame_idx for r in results] == list(range(len(results)))
    assert session.frame_idx == len(results) - 1 and session.obj_ids == [1]


def test_iterable_that_fails_mid_stream(frames, predictor):
    def camera():
        yield from frames[:3]
        raise OSError("device unplugged")

    session = StreamingSession(predictor)
    kept = []
    with pytest.raises(SourceError, match="the frame iterable failed after 3 frames: OSError: device unplugged"):
        for result in session.stream(open_source(camera())):
            kept.append(result.frame_idx)
    assert kept == [0, 1, 2] and session.frame_idx == 2
    session.track(frames[3])  # the session is still usable
    assert session.frame_idx == 3


def test_iterable_that_ends(frames):
    source = open_source(iter(frames[:2]))
    assert source.length is None and len(list(source)) == 2
    assert open_source(frames[:5]).length == 5


@pytest.mark.parametrize("value,exc,match", [
    ("/no/such/video.mp4", SourceError, "source '/no/such/video.mp4' does not exist"),
    ("http://127.0.0.1:1/none.ts", SourceError, "cannot open stream 'http://127.0.0.1:1/none.ts'"),
    (99, SourceError, "camera 99"),
    (b"\x00\x01", TypeError, "video bytes are not a live source"),
    (3.5, TypeError, "unsupported source of type float"),
])
def test_bad_sources(value, exc, match):
    with pytest.raises(exc, match=match):
        open_source(value, timeout=2.0)


def test_file_that_is_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(SourceError, match="cannot open video .*notes.mp4"):
        open_source(path)
