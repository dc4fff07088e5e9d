"""Connected components and the hole / sprinkle clean-ups on crafted masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2.utils.connected_components import (
    connected_components,
    fill_holes_in_mask_scores,
    remove_holes_and_sprinkles,
)


def _as_batch(*maps: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.stack(maps))[:, None]


def _ring_with_hole() -> np.ndarray:
    """8x8 map: a filled 5x5 square at rows/cols 1..5 with a 3-pixel L-shaped hole inside."""
    m = np.zeros((8, 8), dtype=bool)
    m[1:6, 1:6] = True
    m[2, 2] = m[2, 3] = m[3, 2] = False
    return m


def test_labels_and_areas_of_ring_and_hole():
    fg = _ring_with_hole()
    labels, areas = connected_components(_as_batch(fg))
    assert labels.shape == areas.shape == (1, 1, 8, 8)
    assert labels.dtype == areas.dtype == torch.int32
    lab, area = labels[0, 0].numpy(), areas[0, 0].numpy()
    assert np.all((lab > 0) == fg)
    assert np.all(area[fg] == 22) and np.all(area[~fg] == 0)
    assert len(np.unique(lab[fg])) == 1

    labels, areas = connected_components(_as_batch(~fg))
    lab, area = labels[0, 0].numpy(), areas[0, 0].numpy()
    assert area[2, 2] == area[2, 3] == area[3, 2] == 3
    assert area[0, 0] == 64 - 25  # the outer background, touching the border
    assert lab[2, 2] != lab[0, 0]


def test_diagonal_pixels_are_connected():
    m = np.zeros((6, 6), dtype=np.uint8)
    for i in range(4):
        m[i, i] = 1
    m[5, 0] = 1
    labels, areas = connected_components(_as_batch(m))
    lab, area = labels[0, 0].numpy(), areas[0, 0].numpy()
    assert len({int(lab[i, i]) for i in range(4)}) == 1
    assert all(area[i, i] == 4 for i in range(4))
    assert area[5, 0] == 1 and lab[5, 0] != lab[0, 0]


def test_batch_items_are_labelled_independently():
    a = np.ones((4, 5), dtype=bool)
    b = np.zeros((4, 5), dtype=bool)
    b[0, 0] = b[3, 4] = True
    labels, areas = connected_components(_as_batch(a, b, np.zeros((4, 5), bool)))
    assert np.all(areas[0].numpy() == 20)
    assert areas[1, 0, 0, 0] == 1 and areas[1, 0, 3, 4] == 1 and int(areas[1].sum()) == 2
    assert int(labels[2].abs().sum()) == 0 and int(areas[2].sum()) == 0
    # a component never spans two items even where they touch in the stacked array
    assert labels[0, 0, 0, 0] != labels[1, 0, 0, 0]


def test_connected_components_checks_shape_and_handles_empty():
    with pytest.raises(ValueError):
        connected_components(torch.zeros(4, 4, dtype=torch.bool))
    labels, areas = connected_components(torch.zeros(0, 1, 4, 4, dtype=torch.bool))
    assert labels.shape == areas.shape == (0, 1, 4, 4)


def _logits(fg: np.ndarray, inside: float = 2.0, outside: float = -2.0) -> np.ndarray:
    return np.where(fg, inside, outside).astype(np.float32)


def test_fill_hole_of_ring():
    fg = _ring_with_hole()
    logits = torch.as_tensor(_logits(fg))[None, None]
    out = remove_holes_and_sprinkles(logits, 0.0, max_hole_area=3, max_sprinkle_area=0)
    expected = logits.clone()
    expected[0, 0, 2, 2] = expected[0, 0, 2, 3] = expected[0, 0, 3, 2] = 10.0
    assert torch.equal(out, expected)
    # area exactly one below the hole size: nothing changes
    assert torch.equal(remove_holes_and_sprinkles(logits, 0.0, 2, 0), logits)


def test_small_island_becomes_background_and_uses_original_logits():
    fg = np.zeros((10, 10), dtype=bool)
    fg[0:6, 0:6] = True
    fg[8, 8] = fg[9, 9] = True  # diagonal 2-pixel island
    logits = torch.as_tensor(_logits(fg))[None, None]
    out = remove_holes_and_sprinkles(logits, 0.0, max_hole_area=0, max_sprinkle_area=2)
    assert out[0, 0, 8, 8] == -10.0 and out[0, 0, 9, 9] == -10.0
    assert torch.equal(out[0, 0, :6, :6], logits[0, 0, :6, :6])
    assert remove_holes_and_sprinkles(logits, 0.0, 0, 1)[0, 0, 8, 8] == 2.0  # 8-connected: area 2 > 1

    # sprinkles come from the original logits: a filled hole is not part of the ring's component
    fg2 = np.zeros((7, 7), dtype=bool)
    fg2[2:5, 2:5] = True
    fg2[3, 3] = False  # ring of 8 pixels around a 1-pixel hole
    logits2 = torch.as_tensor(_logits(fg2))[None, None]
    out2 = remove_holes_and_sprinkles(logits2, 0.0, max_hole_area=1, max_sprinkle_area=8)
    assert out2[0, 0, 3, 3] == 10.0
    assert torch.all(out2[0, 0][torch.as_tensor(fg2)] == -10.0)
    out3 = remove_holes_and_sprinkles(logits2, 0.0, max_hole_area=1, max_sprinkle_area=7)
    assert torch.all(out3[0, 0][torch.as_tensor(fg2)] == 2.0)


def test_border_touching_hole_is_filled():
    fg = np.ones((6, 6), dtype=bool)
    fg[0, 0:2] = False  # 2-pixel background notch on the top border
    fg[5, 5] = False  # single pixel in the corner
    logits = torch.as_tensor(_logits(fg))[None, None]
    out = remove_holes_and_sprinkles(logits, 0.0, max_hole_area=2, max_sprinkle_area=0)
    assert torch.all(out == torch.where(torch.as_tensor(fg), 2.0, 10.0))


def test_nonzero_threshold_and_batch():
    thr = 1.5
    fg = _ring_with_hole()
    a = np.where(fg, 3.0, 1.0).astype(np.float32)  # background is still > 0 but <= thr
    b = np.full((8, 8), 1.0, np.float32)
    b[4, 4] = 1.6  # sprinkle of area 1 just above thr
    c = np.full((8, 8), thr, np.float32)  # == thr counts as background: one 64-pixel component
    logits = torch.as_tensor(np.stack([np.stack([a, b]), np.stack([c, a])]))  # (2, 2, 8, 8)
    out = remove_holes_and_sprinkles(logits, thr, max_hole_area=3, max_sprinkle_area=1)
    assert out.shape == logits.shape and out.dtype == logits.dtype
    hole = torch.zeros(8, 8, dtype=torch.bool)
    hole[2, 2] = hole[2, 3] = hole[3, 2] = True
    for item in (out[0, 0], out[1, 1]):
        assert torch.all(item[hole] == thr + 10.0)
        assert torch.equal(item[~hole], torch.as_tensor(a)[~hole])
    assert out[0, 1, 4, 4] == thr - 10.0 and torch.all(out[0, 1].flatten()[:36] == 1.0)
    assert torch.equal(out[1, 0], logits[1, 0])


def test_disabled_steps_return_input():
    logits = torch.randn(2, 3, 8, 8)
    assert remove_holes_and_sprinkles(logits, 0.0, 0, 0) is logits
    with pytest.raises(ValueError):
        remove_holes_and_sprinkles(torch.randn(8, 8), 0.0, 1, 1)


def test_fill_holes_in_mask_scores():
    fg = _ring_with_hole()
    fg2 = np.ones((8, 8), dtype=bool)
    fg2[0, 7] = False  # corner hole on the border
    scores = torch.as_tensor(np.stack([_logits(fg), _logits(fg2, 5.0, 0.0)]))[:, None]
    out = fill_holes_in_mask_scores(scores, max_area=3)
    assert out.shape == scores.shape and out.dtype == scores.dtype
    expected = scores.clone()
    expected[0, 0, 2, 2] = expected[0, 0, 2, 3] = expected[0, 0, 3, 2] = 0.1
    expected[1, 0, 0, 7] = 0.1  # logit exactly 0 is background
    assert torch.equal(out, expected)
    assert torch.equal(fill_holes_in_mask_scores(scores, max_area=2)[0], scores[0])
    with pytest.raises(ValueError):
        fill_holes_in_mask_scores(scores, 0)


def test_random_maps_match_brute_force_flood_fill():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 12, 11)) < 0.45
    _, areas = connected_components(torch.as_tensor(maps)[:, None])
    for n in range(3):
        assert np.array_equal(areas[n, 0].numpy(), _flood_fill_areas(maps[n]))


def _flood_fill_areas(m: np.ndarray) -> np.ndarray:
    h, w = m.shape
    out = np.zeros((h, w), dtype=np.int64)
    seen = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            if not m[y, x] or seen[y, x]:
                continue
            stack, comp = [(y, x)], []
            seen[y, x] = True
            while stack:
                cy, cx = stack.pop()
                comp.append((cy, cx))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < h and 0 <= nx < w and m[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
            for p in comp:
                out[p] = len(comp)
    return out
