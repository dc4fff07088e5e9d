"""Collate, epoch plans, mixing, distribution, determinism across workers, and mid-epoch resume."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DistributedSampler

from sam2.training.data import DataConfig, DatasetConfig, TransformConfig, build_train_loader
from sam2.training.data.collate import collate
from sam2.training.data.epoch_plan import mixing_order, rank_positions, repeated_indices
from sam2.training.data.vos_dataset import Sample
from tests.training.data.train_data_builders import write_davis, write_sa1b


def _sample(num_t: int, object_ids: list[int], video_id: int, fill: float) -> Sample:
    num_o = len(object_ids)
    masks = torch.zeros(num_t, num_o, 8, 8, dtype=torch.uint8)
    for o in range(num_o):
        masks[:, o, o, :] = 1
    return Sample(torch.full((num_t, 3, 8, 8), fill), masks, video_id, object_ids,
                  [10 + t for t in range(num_t)], (30 + video_id, 40))


def test_collate_shapes_and_object_order():
    batch = collate([_sample(3, [5, 7], 11, 0.0), _sample(3, [2], 12, 1.0)], dict_key="vos")
    assert batch.img_batch.shape == (3, 2, 3, 8, 8) and batch.masks.shape == (3, 3, 8, 8)
    assert batch.masks.dtype == torch.bool and batch.obj_to_frame_idx.dtype == torch.int32
    assert batch.num_frames == 3 and batch.num_videos == 2 and batch.num_objects == 3
    assert batch.img_batch[:, 1].eq(1.0).all() and batch.img_batch[:, 0].eq(0.0).all()
    assert batch.obj_to_frame_idx[2].tolist() == [[2, 0], [2, 0], [2, 1]]
    assert batch.object_identifiers[1].tolist() == [[11, 5, 11], [11, 7, 11], [12, 2, 11]]
    assert batch.frame_orig_size[0].tolist() == [[41, 40], [41, 40], [42, 40]]
    assert batch.masks[0, 1, 1].all() and not batch.masks[0, 1, 0].any()
    assert batch.flat_obj_to_img_idx[1].tolist() == [1, 1, 4] and batch.dict_key == "vos"
    with pytest.raises(ValueError, match="same number of frames"):
        collate([_sample(3, [1], 0, 0.0), _sample(2, [1], 1, 0.0)])


@pytest.mark.parametrize("total,world,epoch,shuffle", [(7, 2, 0, True), (5, 3, 4, True), (2, 4, 1, False),
                                                       (12, 4, 3, True)])
def test_rank_split_matches_torch_distributed_sampler(total, world, epoch, shuffle):
    for rank in range(world):
        sampler = DistributedSampler(range(total), num_replicas=world, rank=rank, shuffle=shuffle, seed=5)
        sampler.set_epoch(epoch)
        assert rank_positions(total, shuffle, 5, epoch, rank, world) == list(sampler)


def test_repeat_factors():
    assert repeated_indices(4, 2.0, 0, 0).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    counts = [Counter(repeated_indices(1000, 1.5, 0, e).tolist()) for e in range(2)]
    for c in counts:
        assert set(c.values()) == {1, 2} and 1400 < sum(c.values()) < 1600
    assert counts[0] != counts[1]
    assert repeated_indices(3, 0.0, 0, 0).numel() == 0


def test_mixing_order_proportions_and_dataset_prob():
    order = mixing_order([300, 100], None, seed=0)
    assert Counter(order) == {0: 300, 1: 100}
    head = Counter(order[:200])
    assert 120 < head[0] < 180
    assert order == mixing_order([300, 100], None, seed=0)
    forced = mixing_order([300, 100], [0.5, 0.5], seed=0)
    assert 70 < Counter(forced[:160])[1] < 90 and Counter(forced) == {0: 300, 1: 100}
    assert Counter(mixing_order([5, 5], [1.0, 0.0], seed=0)) == {0: 5}


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis")
    return write_davis(root, {f"v{i}": 6 + i for i in range(5)}, num_objects=3)


def _cfg(davis, **kw) -> DataConfig:
    img, gt = davis
    ds = DatasetConfig("vos", str(img), str(gt), num_frames=3, max_num_objects=2,
                       batch_size=kw.pop("batch_size", 2), multiplier=kw.pop("multiplier", 1.0))
    return DataConfig([ds], resolution=32, num_workers=kw.pop("num_workers", 0), **kw)


def _epoch(loader, epoch):
    loader.set_epoch(epoch)
    return list(loader)


def _same(a, b) -> bool:
    return all(torch.equal(getattr(a, n), getattr(b, n)) for n in
               ("img_batch", "masks", "obj_to_frame_idx", "object_identifiers", "frame_orig_size"))


def test_batches_are_independent_of_workers_and_differ_between_epochs(davis):
    serial = build_train_loader(_cfg(davis, multiplier=2.0))
    parallel = build_train_loader(_cfg(davis, multiplier=2.0, num_workers=2))
    assert len(serial) == len(parallel) == 5
    first, second = _epoch(serial, 0), _epoch(parallel, 0)
    assert len(first) == 5 and all(_same(a, b) for a, b in zip(first, second, strict=True))
    assert first[0].img_batch.shape == (3, 2, 3, 32, 32)
    assert not any(_same(a, b) for a, b in zip(first, _epoch(serial, 1), strict=True))
    other_seed = build_train_loader(_cfg(davis, multiplier=2.0), seed=1)
    assert not _same(first[0], _epoch(other_seed, 0)[0])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loading_leaves_the_global_generators_alone(davis, num_workers):
    import random

    import numpy as np

    loader = build_train_loader(_cfg(davis, num_workers=num_workers))
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    states = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    assert len(_epoch(loader, 0)) == 2
    assert torch.equal(torch.get_rng_state(), states[0]) and random.getstate() == states[1]
    assert np.array_equal(np.random.get_state()[1], states[2])


def test_two_ranks_cover_the_samples_of_one(davis):
    cfg = _cfg(davis, batch_size=1, drop_last=False)
    single = build_train_loader(cfg)
    ranks = [build_train_loader(cfg, rank=r, world_size=2) for r in range(2)]
    assert [len(r) for r in ranks] == [3, 3]  # 5 samples padded to 6
    by_pos = {b.positions[0]: batch for b, batch in zip(single.plan(0), _epoch(single, 0), strict=True)}
    seen = []
    for r in ranks:
        for b, batch in zip(r.plan(0), _epoch(r, 0), strict=True):
            assert _same(batch, by_pos[b.positions[0]])
            seen.append(b.positions[0])
    assert sorted(set(seen)) == sorted(by_pos) and len(seen) == 6


def test_resume_mid_epoch_serves_the_remaining_batches(davis):
    cfg = _cfg(davis, batch_size=1, multiplier=1.5, num_workers=1)
    reference = build_train_loader(cfg, seed=3)
    epoch1, epoch2 = _epoch(reference, 1), _epoch(reference, 2)
    interrupted = build_train_loader(cfg, seed=3)
    interrupted.set_epoch(1)
    it = iter(interrupted)
    consumed = [next(it), next(it)]
    state = interrupted.state_dict()
    assert state["epoch"] == 1 and state["batches_consumed"] == 2
    assert all(_same(a, b) for a, b in zip(consumed, epoch1, strict=False))
    resumed = build_train_loader(cfg, seed=3)
    resumed.load_state_dict(state)
    rest = _epoch(resumed, 1)
    assert len(rest) == len(epoch1) - 2 and all(_same(a, b) for a, b in zip(rest, epoch1[2:], strict=True))
    assert resumed.state_dict()["batches_consumed"] == len(epoch1)
    nxt = _epoch(resumed, 2)
    assert len(nxt) == len(epoch2) and all(_same(a, b) for a, b in zip(nxt, epoch2, strict=True))
    with pytest.raises(ValueError, match="seed=3 but this loader has seed=4"):
        build_train_loader(cfg, seed=4).load_state_dict(state)
    with pytest.raises(ValueError, match="world_size"):
        build_train_loader(cfg, seed=3, rank=1, world_size=2).load_state_dict(state)


def test_mixed_image_and_video_batches(davis, tmp_path):
    img, gt = davis
    sa1b = write_sa1b(tmp_path / "sa1b", [f"sa_{i}" for i in range(8)])
    cfg = DataConfig([DatasetConfig("vos", str(img), str(gt), num_frames=3, batch_size=2, dict_key="video"),
                      DatasetConfig("sa1b", str(sa1b), str(sa1b), batch_size=4, max_num_objects=2,
                                    dict_key="image")],
                     resolution=32, num_workers=0, transforms=TransformConfig(augment=False))
    loader = build_train_loader(cfg)
    batches = _epoch(loader, 0)
    assert len(batches) == len(loader) == 2 + 2
    kinds = Counter((b.dict_key, b.num_frames, b.num_videos, b.num_objects) for b in batches)
    assert kinds == {("video", 3, 2, 6): 2, ("image", 1, 4, 8): 2}
    assert [b.dict_key for b in batches] == [["video", "image"][p.dataset] for p in loader.plan(0)]
