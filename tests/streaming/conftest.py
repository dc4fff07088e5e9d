"""Fixtures shared by the streaming and bounded-memory tests: one synthesized micro checkpoint, the
video predictor built on it, and a short generated clip (past the 16-frame object-pointer window)."""

from __future__ import annotations

import pytest

from tests.streaming.stream_support import CLIP_FRAMES, micro
from tests.video_api_support import make_frames, write_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return micro(checkpoint)


@pytest.fixture(scope="module")
def frames():
    return make_frames(CLIP_FRAMES)
