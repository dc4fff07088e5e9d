"""Background frame prefetch during propagation (``sam2.utils.frame_prefetch``)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from sam2.utils.frame_prefetch import FramePrefetcher
from sam2.utils.video_decode import MemorySource
from sam2.utils.video_frames import VideoFrames
from tests import reference as R
from tests.video_api_support import build, click, make_frames, write_checkpoint

SIZE = 32
THREAD = "sam2-propagation-prefetch"


class CountingSource(MemorySource):
    """In-memory frames that record every read and can fail on chosen frames."""

    def __init__(self, frames, fail_on: tuple[int, ...] = ()) -> None:
        super().__init__(frames)
        self.reads: list[int] = []
        self.fail_on = fail_on

    def read(self, idx: int) -> np.ndarray:
        self.reads.append(idx)
        if idx in self.fail_on:
            raise OSError(f"cannot decode frame {idx}")
        return super().read(idx)


def coded_frames(n: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(24, 40, 3), dtype=np.uint8) for _ in range(n)]


def wait_for(condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD and t.is_alive()]


def test_prefetcher_reads_one_frame_ahead_and_stops_on_close():
    source = CountingSource(coded_frames())
    frames = VideoFrames(source, image_size=SIZE, cache_size=4)
    with FramePrefetcher(frames, range(8)) as prefetch:
        prefetch.reached(0)
        wait_for(lambda: prefetch.loaded == [1])
        time.sleep(0.05)
        assert source.reads == [0, 1]  # frame 0 read on opening, then only the next frame
        reads = len(source.reads)
        frame1 = frames[1]
        assert len(source.reads) == reads  # served from the cache
        assert torch.equal(frame1, VideoFrames(MemorySource(coded_frames()), image_size=SIZE)[1])
        prefetch.reached(1)
        wait_for(lambda: prefetch.loaded == [1, 2])
        assert prefetch.running
    assert not prefetch.running and not prefetch_threads()


def test_prefetcher_skips_frames_the_consumer_has_passed():
    source = CountingSource(coded_frames())
    frames = VideoFrames(source, image_size=SIZE, cache_size=4)
    with FramePrefetcher(frames, [5, 4, 3, 2, 1]) as prefetch:  # reverse order
        prefetch.reached(5)
        wait_for(lambda: prefetch.loaded == [4])
        frames[4], frames[3]  # noqa: B018  (the consumer reads ahead by itself)
        prefetch.reached(3)
        wait_for(lambda: len(prefetch.loaded) == 2)
        assert prefetch.loaded == [4, 2]


@pytest.mark.parametrize("order, cache_size", [([0], 4), ([0, 1, 2], 1)])
def test_prefetcher_does_nothing_without_room_or_frames(order, cache_size):
    frames = VideoFrames(CountingSource(coded_frames()), image_size=SIZE, cache_size=cache_size)
    with FramePrefetcher(frames, order) as prefetch:
        prefetch.reached(order[0])
        assert not prefetch.enabled and not prefetch.running


def test_prefetch_error_is_raised_by_the_consumer_read():
    source = CountingSource(coded_frames(), fail_on=(2,))
    frames = VideoFrames(source, image_size=SIZE, cache_size=4)
    with FramePrefetcher(frames, range(8)) as prefetch:
        prefetch.reached(0)
        wait_for(lambda: prefetch.loaded == [1])
        prefetch.reached(1)
        wait_for(lambda: not prefetch.running)  # the worker stops quietly at frame 2
        assert prefetch.loaded == [1]
        with pytest.raises(OSError, match="cannot decode frame 2"):
            frames[2]  # noqa: B018


# ------------------------------------------------------------------------------ in a propagation

@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    if not R.FIXTURES_DIR.is_dir():
        pytest.skip("reference data not found")
    return build(write_checkpoint(tmp_path_factory.mktemp("ckpt")))


def test_early_break_stops_the_prefetch_thread(predictor):
    state = predictor.init_state(make_frames(6))
    click(predictor, state)
    gen = predictor.propagate_in_video(state)
    next(gen), next(gen)
    assert len(prefetch_threads()) == 1  # frame 2 is being (or has been) prepared
    wait_for(lambda: 2 in state.frames.cached_indices())
    gen.close()  # what `break` out of a for loop does once the generator is dropped
    assert not prefetch_threads()


def test_error_during_propagation_stops_the_prefetch_thread(predictor, monkeypatch):
    state = predictor.init_state(make_frames(6))
    click(predictor, state)
    real = predictor._track_frame

    def failing(s, frame_idx, reverse):
        if frame_idx == 2:
            raise RuntimeError("boom on frame 2")
        return real(s, frame_idx, reverse)

    monkeypatch.setattr(predictor, "_track_frame", failing)
    with pytest.raises(RuntimeError, match="boom on frame 2"):
        for _ in predictor.propagate_in_video(state):
            pass
    assert not prefetch_threads()
