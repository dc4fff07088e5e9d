"""Per-frame J and F on hand-made masks whose values are worked out by hand, plus a brute-force check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sam2.eval.metrics import (
    binary_dilation,
    boundary_f_measure,
    boundary_radius,
    disk,
    region_similarity,
    seg2bmap,
)


def square(shape: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Bool mask with rows[0]..rows[1] x cols[0]..cols[1] (inclusive) set."""
    m = np.zeros(shape, bool)
    m[rows[0]: rows[1] + 1, cols[0]: cols[1] + 1] = True
    return m


def pixel(shape: tuple[int, int], y: int, x: int) -> np.ndarray:
    return square(shape, (y, y), (x, x))


# --------------------------------------------------------------------------------- boundaries

def test_seg2bmap_square_is_outline_shifted_toward_origin():
    bmap = seg2bmap(square((10, 10), (2, 5), (2, 5)))
    expected = square((10, 10), (1, 5), (1, 5)) & ~square((10, 10), (2, 4), (2, 4))
    assert (bmap == expected).all()
    assert bmap.sum() == 16


def test_seg2bmap_single_pixel_is_2x2_block():
    assert (seg2bmap(pixel((10, 10), 4, 4)) == square((10, 10), (3, 4), (3, 4))).all()


def test_seg2bmap_image_edges():
    assert not seg2bmap(np.ones((6, 7), bool)).any()  # a full mask has no boundary
    corner = seg2bmap(pixel((10, 10), 9, 9))  # bottom-right pixel: the corner itself is never boundary
    assert sorted(zip(*np.nonzero(corner))) == [(8, 8), (8, 9), (9, 8)]
    top_left = seg2bmap(pixel((5, 5), 0, 0))
    assert sorted(zip(*np.nonzero(top_left))) == [(0, 0)]
    assert not seg2bmap(np.zeros((4, 4), bool)).any()


def test_seg2bmap_accepts_ids_and_rejects_3d():
    assert (seg2bmap(np.where(pixel((6, 6), 2, 2), 7, 0)) == seg2bmap(pixel((6, 6), 2, 2))).all()
    with pytest.raises(ValueError, match="2-D"):
        seg2bmap(np.zeros((4, 4, 3)))


# --------------------------------------------------------------------------------- disk and radius

@pytest.mark.parametrize("hw,radius", [((10, 10), 1), ((20, 20), 1), ((100, 100), 2), ((480, 854), 8),
                                       ((1080, 1920), 18), ((75, 100), 1), ((1, 1), 1)])
def test_boundary_radius(hw, radius):
    assert boundary_radius(*hw) == radius == math.ceil(0.008 * math.sqrt(hw[0] ** 2 + hw[1] ** 2))


def test_disk_elements():
    assert disk(0).tolist() == [[True]]
    assert disk(1).astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    d2 = disk(2)
    assert d2.shape == (5, 5) and d2.sum() == 13
    assert d2[0].tolist() == [False, False, True, False, False]
    assert disk(18).shape == (37, 37)


def test_binary_dilation_cross_and_clipping():
    grown = binary_dilation(pixel((5, 5), 2, 2), disk(1))
    assert grown.astype(int).tolist() == [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 1, 1, 1, 0],
                                          [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]
    corner = binary_dilation(pixel((4, 4), 0, 0), disk(2))
    assert sorted(zip(*np.nonzero(corner))) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)]
    assert not binary_dilation(np.zeros((3, 3), bool), disk(1)).any()
    with pytest.raises(ValueError, match="odd"):
        binary_dilation(pixel((4, 4), 0, 0), np.ones((2, 2), bool))


def naive_dilation(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    c = footprint.shape[0] // 2
    out = np.zeros_like(mask)
    for y in range(h):
        for x in range(w):
            for dy in range(-c, c + 1):
                for dx in range(-c, c + 1):
                    if footprint[dy + c, dx + c] and 0 <= y + dy < h and 0 <= x + dx < w and mask[y + dy, x + dx]:
                        out[y, x] = True
    return out


def naive_f(pred: np.ndarray, gt: np.ndarray) -> float:
    """Boundary F by the definition: nearest-boundary search within the radius, one pixel at a time."""
    r = boundary_radius(*pred.shape)

    def boundary(m: np.ndarray) -> set[tuple[int, int]]:
        h, w = m.shape
        out = set()
        for y in range(h):
            for x in range(w):
                east = m[y, x + 1] if x + 1 < w else False
                south = m[y + 1, x] if y + 1 < h else False
                se = m[y + 1, x + 1] if (y + 1 < h and x + 1 < w) else False
                if y == h - 1 and x == w - 1:
                    continue
                if y == h - 1:
                    hit = m[y, x] != east
                elif x == w - 1:
                    hit = m[y, x] != south
                else:
                    hit = m[y, x] != east or m[y, x] != south or m[y, x] != se
                if hit:
                    out.add((y, x))
        return out

    bp, bg = boundary(pred), boundary(gt)

    def matched(a: set, b: set) -> int:
        return sum(any((y - v) ** 2 + (x - u) ** 2 <= r * r for v, u in b) for y, x in a)

    if not bp and not bg:
        return 1.0
    if not bp or not bg:
        return 0.0
    p, rc = matched(bp, bg) / len(bp), matched(bg, bp) / len(bg)
    return 0.0 if p + rc == 0 else 2 * p * rc / (p + rc)


def test_dilation_and_f_match_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(30):
        h, w = rng.integers(1, 16, size=2)
        pred = rng.random((h, w)) < rng.random()
        gt = rng.random((h, w)) < rng.random()
        fp = disk(int(trial % 4))
        assert (binary_dilation(pred, fp) == naive_dilation(pred, fp)).all()
        assert boundary_f_measure(pred, gt) == pytest.approx(naive_f(pred, gt), abs=1e-12)
    big = (rng.random((130, 140)) < 0.002)  # radius 2
    assert boundary_f_measure(big, np.roll(big, 2, axis=1)) == pytest.approx(
        naive_f(big, np.roll(big, 2, axis=1)), abs=1e-12)


# --------------------------------------------------------------------------------- J and F by hand

def test_region_similarity_by_hand():
    gt = square((10, 10), (2, 5), (2, 5))
    assert region_similarity(gt, gt) == 1.0
    assert region_similarity(np.roll(gt, 1, axis=1), gt) == pytest.approx(12 / 20)
    assert region_similarity(np.roll(gt, 2, axis=1), gt) == pytest.approx(8 / 24)
    empty = np.zeros((10, 10), bool)
    assert region_similarity(empty, empty) == 1.0  # both empty
    assert region_similarity(empty, gt) == 0.0
    assert region_similarity(gt, empty) == 0.0


@pytest.mark.parametrize("x,expected_f", [(4, 1.0), (5, 1.0), (6, 0.5), (7, 0.0)])
def test_f_single_pixel_shifts(x, expected_f):
    """10x10 (radius 1): GT pixel (4, 4) has boundary {3,4}x{3,4}; a pixel at column x has {3,4}x{x-1,x}."""
    assert boundary_f_measure(pixel((10, 10), 4, x), pixel((10, 10), 4, 4)) == pytest.approx(expected_f)


def test_f_square_shifts():
    gt = square((10, 10), (2, 5), (2, 5))
    assert boundary_f_measure(np.roll(gt, 1, axis=1), gt) == 1.0  # every outline pixel within 1 px
    # shift 2: 10 of the 16 outline pixels of each mask are within the cross of the other -> P = R = 10/16
    assert boundary_f_measure(np.roll(gt, 2, axis=1), gt) == pytest.approx(10 / 16)


def test_f_radius_grows_with_image_size():
    """100x100 has radius 2: a 2-pixel shift of a pixel still matches fully, 3 pixels gives P = R = 1/2."""
    assert boundary_f_measure(pixel((100, 100), 50, 52), pixel((100, 100), 50, 50)) == 1.0
    assert boundary_f_measure(pixel((100, 100), 50, 53), pixel((100, 100), 50, 50)) == pytest.approx(0.5)
    assert boundary_f_measure(pixel((20, 20), 10, 12), pixel((20, 20), 10, 10)) == pytest.approx(0.5)


def test_f_empty_masks():
    empty, obj = np.zeros((10, 10), bool), pixel((10, 10), 4, 4)
    assert boundary_f_measure(empty, empty) == 1.0  # (P, R) = (1, 1)
    assert boundary_f_measure(empty, obj) == 0.0  # (1, 0)
    assert boundary_f_measure(obj, empty) == 0.0  # (0, 1)
    full = np.ones((10, 10), bool)  # no boundary at all, like an empty mask
    assert boundary_f_measure(full, full) == 1.0
    assert boundary_f_measure(full, obj) == 0.0
