"""Tests of the lazy video frame source (``sam2.utils.video_frames``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2.utils.video_frames import VideoFrames, load_video_frames, preprocess_frame
from tests.reference import FIXTURES_DIR, decoded_inputs, requires_reference

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)
BEDROOM = FIXTURES_DIR / "inputs" / "videos" / "bedroom_a"
H, W = 64, 96  # size of generated videos
SMALL = 32  # image_size for tests that do not need 1024


def official_normalize(resized: np.ndarray) -> np.ndarray:
    """The official float path in numpy: float64 /255, float32 cast, CHW, (x - mean) / std in float32."""
    x = np.float32(resized / 255.0).transpose(2, 0, 1)
    return (x - MEAN) / STD


def coded_frame(i: int) -> np.ndarray:
    """(H, W, 3) uint8 frame whose top half encodes the 6 bits of ``i`` as black/white blocks."""
    img = np.full((H, W, 3), (20 * i) % 200 + 30, dtype=np.uint8)
    for b in range(6):
        img[: H // 2, b * 16 : (b + 1) * 16] = 255 if (i >> b) & 1 else 0
    return img


def read_code(rgb: np.ndarray) -> int:
    """Inverse of :func:`coded_frame` on a (possibly lossy) decoded frame."""
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    blocks = [rgb[4 : H // 2 - 4, b * 16 + 4 : (b + 1) * 16 - 4].mean() for b in range(6)]
    return sum(1 << b for b, m in enumerate(blocks) if m > 128)


def write_video(path: Path, n: int = 40, codec: str = "libx264", gop: int = 4) -> Path:
    av = pytest.importorskip("av")
    if codec not in av.codecs_available:
        pytest.skip(f"codec {codec} not available in PyAV")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"bf": "2", "keyint_min": str(gop), "sc_threshold": "0", "crf": "10"}
        for i in range(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(coded_frame(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def mp4_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "coded.mp4")


def count_seeks(frames: VideoFrames) -> list[int]:
    """Record the keyframe index of every decoder restart of a video-file source."""
    decoder = frames._source.decoder
    calls: list[int] = []
    original = decoder._restart

    def restart(key: int) -> None:
        calls.append(key)
        original(key)

    decoder._restart = restart
    return calls


# ----------------------------------------------------------------------------------- preprocessing


@requires_reference
def test_preprocess_bit_exact_against_official_resize() -> None:
    expected = decoded_inputs()["video/bedroom_a/00000_resized1024"]
    with Image.open(BEDROOM / "00000.jpg") as img:
        rgb = img.convert("RGB")
        assert np.array_equal(np.asarray(rgb.resize((1024, 1024))), expected)
        from_pil = preprocess_frame(rgb, 1024)
    ours = preprocess_frame(np.asarray(rgb), 1024)
    assert ours.shape == (3, 1024, 1024) and ours.dtype == torch.float32
    assert np.array_equal(ours.numpy(), official_normalize(expected))
    assert torch.equal(ours, from_pil)
    frames = load_video_frames(str(BEDROOM), image_size=1024)
    assert torch.equal(frames[0], ours)


def test_preprocess_all_levels_and_modes() -> None:
    levels = np.arange(256, dtype=np.uint8)
    rgb = np.stack([levels, levels[::-1], np.roll(levels, 7)], axis=-1).reshape(16, 16, 3)
    assert np.array_equal(preprocess_frame(rgb, 16).numpy(), official_normalize(rgb))
    gray = Image.fromarray(rgb[..., 0])  # mode "L" is converted to RGB first
    expected = official_normalize(np.asarray(gray.convert("RGB").resize((8, 8))))
    assert np.array_equal(preprocess_frame(gray, 8).numpy(), expected)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frame(rgb.astype(np.float32), 8)


# ----------------------------------------------------------------------------------- folders


@requires_reference
def test_jpeg_folder_fixture() -> None:
    frames = load_video_frames(BEDROOM, image_size=SMALL, offload_video_to_cpu=True)
    assert len(frames) == 10
    assert (frames.video_height, frames.video_width, frames.image_size) == (180, 320, SMALL)
    assert frames.frame_names == [f"{i:05d}" for i in range(10)]
    for i in (0, 9, 3):
        raw = frames.raw_frame(i)
        assert np.array_equal(raw, decoded_inputs()[f"video/bedroom_a/{i:05d}"])
        assert torch.equal(frames[i], preprocess_frame(raw, SMALL))
    assert frames[5].device == torch.device("cpu")
    frames.close()


def write_images(folder: Path, names: list[str], frames: list[np.ndarray] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.fromarray(coded_frame(k) if frames is None else frames[k]).save(folder / name)


def test_png_folder_integer_and_natural_order(tmp_path: Path) -> None:
    write_images(tmp_path / "int", ["10.png", "2.png", "1.png"])  # codes 0, 1, 2
    frames = load_video_frames(tmp_path / "int", image_size=SMALL)
    assert frames.frame_names == ["1", "2", "10"]
    assert [read_code(frames.raw_frame(i)) for i in range(3)] == [2, 1, 0]
    assert (frames.video_height, frames.video_width) == (H, W)
    write_images(tmp_path / "nat", ["frame_10.bmp", "frame_2.tif", "frame_1.png"])
    frames = load_video_frames(tmp_path / "nat", image_size=SMALL)
    assert frames.frame_names == ["frame_1", "frame_2", "frame_10"]
    assert [read_code(frames.raw_frame(i)) for i in range(3)] == [2, 1, 0]


def test_mixed_case_jpeg_extensions_and_extra_files(tmp_path: Path) -> None:
    write_images(tmp_path, ["00000.JPG", "00001.Jpeg", "00002.jpeg"])
    write_images(tmp_path, ["00003.png"])  # ignored: JPEG frames take precedence, as in the official code
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "._00000.jpg").write_bytes(b"macOS resource fork")
    frames = load_video_frames(tmp_path, image_size=SMALL)
    assert len(frames) == 3 and frames.frame_names == ["00000", "00001", "00002"]
    assert frames[2].shape == (3, SMALL, SMALL)


# ----------------------------------------------------------------------------------- video files


def test_mp4_frame_identity_forward_random_reverse(mp4_path: Path) -> None:
    frames = load_video_frames(str(mp4_path), image_size=SMALL, cache_size=2)
    assert len(frames) == 40 and (frames.video_height, frames.video_width) == (H, W)
    seeks = count_seeks(frames)
    for i in range(40):  # sequential: only the initial restart, no re-seek per frame
        raw = frames.raw_frame(i)
        assert read_code(raw) == i
        assert np.abs(raw[H // 2 + 4 :].astype(int) - ((20 * i) % 200 + 30)).mean() < 4
    assert len(seeks) <= 1
    for i in (17, 3, 38, 0, 25, 26, 9):
        assert read_code(frames.raw_frame(i)) == i
    for i in reversed(range(40)):
        assert read_code(frames.raw_frame(i)) == i
        assert torch.equal(frames[i], preprocess_frame(frames.raw_frame(i), SMALL))
    frames.close()


@pytest.mark.parametrize(("codec", "ext"), [("mpeg4", "avi"), ("libx264", "mkv"), ("libx264", "MOV")])
def test_other_containers(tmp_path: Path, codec: str, ext: str) -> None:
    path = write_video(tmp_path / f"v.{ext}", n=12, codec=codec, gop=5)
    frames = load_video_frames(path, image_size=SMALL)
    assert len(frames) == 12
    assert [read_code(frames.raw_frame(i)) for i in (11, 4, 5, 0, 7)] == [11, 4, 5, 0, 7]


def test_video_bytes(mp4_path: Path) -> None:
    frames = load_video_frames(mp4_path.read_bytes(), image_size=SMALL)
    assert len(frames) == 40 and (frames.video_height, frames.video_width) == (H, W)
    assert [read_code(frames.raw_frame(i)) for i in (0, 31, 2)] == [0, 31, 2]


def test_cache_is_bounded(mp4_path: Path) -> None:
    frames = load_video_frames(mp4_path, image_size=SMALL, cache_size=3)
    for i in range(40):
        frames[i]
        assert len(frames.cached_indices()) <= 3
    assert frames.cached_indices() == [37, 38, 39]
    frames[38]
    assert frames.cached_indices() == [37, 39, 38]


# ----------------------------------------------------------------------------------- in memory


def test_in_memory_inputs() -> None:
    arrays = [coded_frame(i) for i in range(5)]
    expected = [preprocess_frame(a, SMALL) for a in arrays]
    mixed = [Image.fromarray(a) if i % 2 else a for i, a in enumerate(arrays)]
    for video in (arrays, tuple(Image.fromarray(a) for a in arrays), mixed, np.stack(arrays)):
        frames = load_video_frames(video, image_size=SMALL, compute_device="cpu")
        assert len(frames) == 5 and (frames.video_height, frames.video_width) == (H, W)
        for i in (4, 0, 2):
            assert torch.equal(frames[i], expected[i])
            assert np.array_equal(frames.raw_frame(i), arrays[i])
    raw = frames.raw_frame(1)
    raw[:] = 0  # a copy: the cache is not modified
    assert np.array_equal(frames.raw_frame(1), arrays[1])


def test_device_offload_and_custom_normalization() -> None:
    video = np.stack([coded_frame(i) for i in range(3)])
    assert load_video_frames(video, image_size=SMALL, compute_device="meta")[1].device.type == "meta"
    offloaded = load_video_frames(video, image_size=SMALL, offload_video_to_cpu=True, compute_device="meta")
    assert offloaded[1].device.type == "cpu"
    plain = load_video_frames(video, image_size=SMALL, img_mean=(0, 0, 0), img_std=(1, 1, 1))
    resized = np.asarray(Image.fromarray(video[2]).resize((SMALL, SMALL)))
    assert np.array_equal(plain[2].numpy(), np.float32(resized / 255.0).transpose(2, 0, 1))


# ----------------------------------------------------------------------------------- errors


def test_bad_paths(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no image frames found in folder .*empty.*\.png"):
        load_video_frames(tmp_path / "empty")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("hello")
    with pytest.raises(ValueError, match="docs"):
        load_video_frames(str(tmp_path / "docs"))
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video\n" * 20)
    with pytest.raises(ValueError, match="fake.mp4"):
        load_video_frames(fake)
    with pytest.raises(ValueError, match="bytes"):
        load_video_frames(b"not a video at all" * 10)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        load_video_frames(tmp_path / "missing.mp4")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "0.jpg").write_text("not a jpeg")
    with pytest.raises(ValueError, match="0.jpg"):
        load_video_frames(tmp_path / "broken")


def test_bad_arrays_and_types() -> None:
    good = coded_frame(0)
    with pytest.raises(ValueError, match="frame 1: expected dtype uint8, got float32"):
        load_video_frames([good, good.astype(np.float32)])
    with pytest.raises(ValueError, match=r"frame 0: expected shape \(H, W, 3\), got \(64, 96\)"):
        load_video_frames([good[..., 0]])
    with pytest.raises(TypeError, match="frame 1: expected a numpy array or PIL image, got str"):
        load_video_frames([good, "00001.jpg"])
    with pytest.raises(ValueError, match="frame 2 has size 32x96 but frame 0 has size 64x96"):
        load_video_frames([good, good, good[:32]])
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        load_video_frames(np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        load_video_frames(good)
    with pytest.raises(ValueError, match="empty"):
        load_video_frames([])
    with pytest.raises(TypeError, match="unsupported video input of type int.*folder of image frames"):
        load_video_frames(42)


def test_index_errors_and_inconsistent_folder(tmp_path: Path) -> None:
    write_images(tmp_path, ["0.png", "1.png"], [coded_frame(0), coded_frame(1)[:32]])
    frames = load_video_frames(tmp_path, image_size=SMALL)
    for bad in (2, -1, 100):
        with pytest.raises(IndexError, match=f"frame index {bad} out of range for a video of 2 frames"):
            frames[bad]
    with pytest.raises(TypeError):
        frames["0"]
    with pytest.raises(ValueError, match="frame 1 has size 32x96 but frame 0 has size 64x96"):
        frames[1]
    frames.close()
    with pytest.raises(RuntimeError, match="closed"):
        frames[0]


# ----------------------------------------------------------------------------------- prefetch


def test_async_prefetch_matches_sync(mp4_path: Path) -> None:
    sync = load_video_frames(mp4_path, image_size=SMALL)
    with load_video_frames(mp4_path, image_size=SMALL, async_loading_frames=True, cache_size=4) as frames:
        assert frames._thread is not None and frames._thread.is_alive()
        for i in list(range(12)) + list(range(30, 20, -1)):
            assert torch.equal(frames[i], sync[i])
            assert len(frames.cached_indices()) <= 4
        deadline = time.monotonic() + 5
        while 19 not in frames.cached_indices() and time.monotonic() < deadline:
            time.sleep(0.01)  # prefetch follows the reverse direction of the last accesses
        assert 19 in frames.cached_indices()
    assert not frames._thread.is_alive()


def test_async_thread_error_surfaces(tmp_path: Path) -> None:
    write_images(tmp_path, ["0.png", "1.png"])
    (tmp_path / "2.png").write_text("corrupt frame")
    frames = load_video_frames(tmp_path, image_size=SMALL, async_loading_frames=True)
    frames[0]
    frames._thread.join(timeout=5)
    with pytest.raises(RuntimeError, match="Failure in frame loading thread") as info:
        frames[1]
    assert isinstance(info.value.__cause__, ValueError) and "2.png" in str(info.value.__cause__)
    frames.close()
