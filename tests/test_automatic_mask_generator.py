"""SAM2AutomaticMaskGenerator: behaviour with a stub predictor, and parity with the official AMG fixtures."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

import sam2.automatic_mask_generator as amg_module
from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
from sam2.utils.amg import MaskData, generate_crop_boxes, mask_to_rle_pytorch, rle_to_mask
from tests import reference as R

# pycocotools' decode trips a numpy 2 deprecation warning
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# ------------------------------------------------------------------------------------ stub predictor


class _StubTransforms:
    def transform_coords(self, coords: torch.Tensor, normalize: bool = False, orig_hw=None) -> torch.Tensor:
        coords = coords.clone()
        if normalize:
            h, w = orig_hw
            coords[..., 0] = coords[..., 0] / w
            coords[..., 1] = coords[..., 1] / h
        return coords * 1024


class _StubPredictor:
    """Disk-shaped logits ``radius - distance`` around each point (radii 4, 9 and 10_000 px)."""

    radii = (4.0, 9.0, 10_000.0)
    ious = (0.95, 0.9, 0.6)

    def __init__(self, model, max_hole_area: float = 0.0, max_sprinkle_area: float = 0.0) -> None:
        self.model = model
        self.max_hole_area, self.max_sprinkle_area = max_hole_area, max_sprinkle_area
        self._transforms = _StubTransforms()
        self.device = torch.device("cpu")
        self.hw: tuple[int, int] | None = None
        self.calls: list[dict] = []

    def set_image(self, image: np.ndarray) -> None:
        self.hw = image.shape[:2]

    def reset_predictor(self) -> None:
        self.hw = None

    def decode(self, point_coords, point_labels, mask_input=None, multimask_output=True):
        """``decode_low_res`` stand-in: the "low-res" logits are already at the image size."""
        assert self.hw is not None
        self.calls.append({"n": point_coords.shape[0], "mask_input": mask_input, "multimask": multimask_output})
        h, w = self.hw
        pts = point_coords[:, 0, :] / 1024 * torch.tensor([w, h])
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        dist = torch.sqrt((xs[None] - pts[:, 0, None, None]) ** 2 + (ys[None] - pts[:, 1, None, None]) ** 2)
        radii = self.radii if multimask_output and mask_input is None else self.radii[1:2]
        masks = torch.stack([r - dist for r in radii], dim=1)
        # tiny point-dependent offsets avoid exact ties between prompts
        iou = torch.tensor([self.ious[self.radii.index(r)] for r in radii])[None] - pts[:, :1] * 1e-6
        return masks, iou


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setattr(amg_module, "SAM2ImagePredictor", _StubPredictor)
    monkeypatch.setattr(amg_module, "decode_low_res", lambda predictor, *args, **kw: predictor.decode(*args, **kw))
    monkeypatch.setattr(amg_module, "upscale_logits", lambda predictor, logits, hw, channels: logits)


def _image(h: int = 60, w: int = 90) -> np.ndarray:
    return np.zeros((h, w, 3), dtype=np.uint8)


def _tight_xywh(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())]


COMMON = {"points_per_side": 3, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.3}


def test_records_and_output_modes_agree(stub):
    outputs = {mode: SAM2AutomaticMaskGenerator(None, output_mode=mode, **COMMON).generate(_image())
               for mode in ("binary_mask", "uncompressed_rle", "coco_rle")}
    binary, raw, coco = outputs["binary_mask"], outputs["uncompressed_rle"], outputs["coco_rle"]
    assert len(binary) == len(raw) == len(coco) > 0
    assert set(binary[0]) == {"segmentation", "area", "bbox", "predicted_iou", "point_coords",
                              "stability_score", "crop_box"}
    ious = [r["predicted_iou"] for r in binary]
    assert ious == sorted(ious, reverse=True)  # one crop: NMS order
    for b, u, c in zip(binary, raw, coco):
        mask = b["segmentation"]
        assert mask.dtype == bool and mask.shape == (60, 90)
        assert np.array_equal(rle_to_mask(u["segmentation"]), mask)
        assert isinstance(c["segmentation"]["counts"], str)
        assert np.array_equal(mask_utils.decode(c["segmentation"]).astype(bool), mask)
        assert b["area"] == int(mask.sum()) and isinstance(b["area"], int)
        assert b["bbox"] == _tight_xywh(mask)
        assert b["crop_box"] == [0.0, 0.0, 90.0, 60.0]
        x, y = b["point_coords"][0]
        assert mask[int(y), int(x)]
        for k in ("bbox", "point_coords", "crop_box", "predicted_iou", "stability_score"):
            assert b[k] == u[k] == c[k]


def test_score_filters(stub):
    # the full-image masks (IoU 0.6) go with a threshold of 0.7; the stability filter is >=
    recs = SAM2AutomaticMaskGenerator(None, points_per_side=3, pred_iou_thresh=0.7,
                                      stability_score_thresh=0.0).generate(_image())
    assert all(r["predicted_iou"] > 0.7 for r in recs) and len(recs) == 18
    recs = SAM2AutomaticMaskGenerator(None, points_per_side=3, pred_iou_thresh=0.0,
                                      stability_score_thresh=0.5).generate(_image())
    assert all(r["stability_score"] >= 0.5 for r in recs)
    assert {round(r["predicted_iou"], 2) for r in recs} == {0.9, 0.6}  # radius 4 is unstable: (3/5)**2


def test_crop_layers(stub):
    image = _image(60, 90)
    gen = SAM2AutomaticMaskGenerator(None, points_per_side=4, crop_n_layers=1, pred_iou_thresh=0.5,
                                     stability_score_thresh=0.3, box_nms_thresh=0.7, crop_nms_thresh=0.7)
    assert [g.shape for g in gen.point_grids] == [(16, 2), (16, 2)]
    recs = gen.generate(image)
    crops, _ = generate_crop_boxes((60, 90), 1, 512 / 1500)
    allowed = [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in crops]
    assert recs and all(r["crop_box"] in allowed for r in recs)
    assert any(r["crop_box"] != allowed[0] for r in recs)  # small masks inside crops survive
    whole = [r for r in recs if r["area"] == 60 * 90]
    assert len(whole) == 1 and whole[0]["crop_box"] == allowed[0]  # crop-wide masks touch crop edges
    for r in recs:
        x, y = r["point_coords"][0]
        assert r["segmentation"][int(y), int(x)]  # points and masks both uncropped
        assert r["bbox"] == _tight_xywh(r["segmentation"])
    # cross-crop NMS prefers smaller crops: no two kept boxes overlap with IoU > 0.7
    boxes = torch.tensor([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in (r["bbox"] for r in recs)])
    from sam2.utils.nms import nms
    assert len(nms(boxes, torch.ones(len(recs)), 0.7)) == len(recs)


def test_no_surviving_mask_gives_empty_list(stub):
    for layers in (0, 1):
        gen = SAM2AutomaticMaskGenerator(None, points_per_side=2, crop_n_layers=layers, pred_iou_thresh=0.99,
                                         output_mode="coco_rle")
        assert gen.generate(_image()) == []


def test_m2m_refines_every_mask(stub):
    gen = SAM2AutomaticMaskGenerator(None, points_per_side=2, points_per_batch=5, use_m2m=True,
                                     pred_iou_thresh=0.5, stability_score_thresh=0.3)
    recs = gen.generate(_image())
    refine = [c for c in gen.predictor.calls if c["mask_input"] is not None]
    assert [c["n"] for c in refine] == [5, 5, 2]  # 4 points x 3 masks, in batches of points_per_batch
    assert all(c["mask_input"].shape[1:] == (1, 60, 90) and not c["multimask"] for c in refine)  # stub low-res
    assert {round(r["predicted_iou"], 2) for r in recs} == {0.9}


def test_constructor(stub):
    gen = SAM2AutomaticMaskGenerator(None, min_mask_region_area=25, unused_kwarg=1)
    assert gen.predictor.max_hole_area == gen.predictor.max_sprinkle_area == 25
    assert gen.points_per_batch == 64 and gen.pred_iou_thresh == 0.8 and gen.stability_score_thresh == 0.95
    assert gen.crop_overlap_ratio == 512 / 1500 and gen.output_mode == "binary_mask" and gen.multimask_output
    assert gen.point_grids[0].shape == (1024, 2)
    grid = [np.array([[0.5, 0.5]])]
    gen = SAM2AutomaticMaskGenerator(None, points_per_side=None, point_grids=grid)
    assert gen.point_grids is grid
    with pytest.raises(AssertionError, match="Exactly one"):
        SAM2AutomaticMaskGenerator(None, points_per_side=None)
    with pytest.raises(AssertionError, match="Exactly one"):
        SAM2AutomaticMaskGenerator(None, points_per_side=4, point_grids=grid)
    with pytest.raises(AssertionError, match="Unknown output_mode"):
        SAM2AutomaticMaskGenerator(None, output_mode="png")


BAD_SETTINGS = [
    ({"crop_n_layers": 40}, "crop_n_layers must be between 0 and 4, got 40"),
    ({"crop_n_layers": -1}, "crop_n_layers must be between 0 and 4, got -1"),
    ({"crop_n_layers": 1.5}, "crop_n_layers must be an integer"),
    ({"points_per_side": 0}, "points_per_side must be >= 1"),
    ({"points_per_side": -3}, "points_per_side must be >= 1"),
    ({"points_per_side": "32"}, "points_per_side must be an integer"),
    ({"points_per_batch": 0}, "points_per_batch must be >= 1"),
    ({"points_per_batch": -64}, "points_per_batch must be >= 1"),
    ({"crop_n_points_downscale_factor": 0}, "crop_n_points_downscale_factor must be >= 1"),
    ({"points_per_side": 2, "crop_n_layers": 2, "crop_n_points_downscale_factor": 2}, "no point on crop layer 2"),
    ({"pred_iou_thresh": float("nan")}, "pred_iou_thresh must be a number .not NaN."),
    ({"box_nms_thresh": float("nan")}, "box_nms_thresh must be a number .not NaN."),
    ({"stability_score_thresh": float("nan")}, "stability_score_thresh"),
    ({"mask_threshold": None}, "mask_threshold must be a number"),
    ({"min_mask_region_area": -1}, "min_mask_region_area must be >= 0"),
    ({"points_per_side": None, "point_grids": [np.array([[0.5, 0.5]])], "crop_n_layers": 1}, "point_grids must"),
    ({"points_per_side": None, "point_grids": [np.zeros((0, 2))]}, r"point_grids\[0\]"),
]


@pytest.mark.parametrize("kwargs,message", BAD_SETTINGS, ids=[str(k) for k, _ in BAD_SETTINGS])
def test_bad_settings_are_named_before_any_work(stub, kwargs, message):
    with pytest.raises(ValueError, match=message):
        SAM2AutomaticMaskGenerator(None, **kwargs)


def test_crop_layers_at_the_bound_still_build(stub):
    gen = SAM2AutomaticMaskGenerator(None, points_per_side=16, crop_n_layers=4)
    assert [len(g) for g in gen.point_grids] == [256] * 5


@pytest.mark.parametrize("image,message", [
    (np.zeros((60, 90), np.uint8), r"shape \(H, W, 3\), got \(60, 90\)"),
    (np.zeros((60, 90, 4), np.uint8), r"shape \(H, W, 3\)"),
    (np.zeros((60, 90, 3), np.float32), "uint8"),
    (np.zeros((60, 90, 3), np.uint16), "uint8"),
    ("PIL", "numpy array, got Image"),
])
def test_generate_rejects_images_it_cannot_crop(stub, image, message):
    from PIL import Image

    gen = SAM2AutomaticMaskGenerator(None, points_per_side=4)
    image = Image.new("RGB", (90, 60)) if isinstance(image, str) else image
    with pytest.raises(ValueError, match=message):
        gen.generate(image)
    assert gen.predictor.calls == [] and gen.predictor.hw is None  # no model work


def test_progress_reports_every_point_batch_of_every_crop(stub):
    gen = SAM2AutomaticMaskGenerator(None, points_per_side=4, points_per_batch=5, crop_n_layers=1,
                                     pred_iou_thresh=0.0, stability_score_thresh=0.0)
    calls = []
    gen.progress = lambda done, total: calls.append((done, total))
    gen.generate(_image())
    assert calls == [(k, 20) for k in range(1, 21)]  # (ceil(16 / 5) = 4 batches) x (1 + 4 crops)
    assert len(gen.predictor.calls) == 20


def test_from_pretrained_forwards_kwargs(stub, monkeypatch):
    import sam2.build_sam as build_sam

    seen = {}

    def fake_build(model_id, **kwargs):
        seen.update(model_id=model_id, **kwargs)
        return "model"

    monkeypatch.setattr(build_sam, "build_sam2_hf", fake_build)
    gen = SAM2AutomaticMaskGenerator.from_pretrained("facebook/sam2.1-hiera-tiny", points_per_side=4)
    assert seen == {"model_id": "facebook/sam2.1-hiera-tiny", "points_per_side": 4}
    assert gen.predictor.model == "model" and gen.point_grids[0].shape == (16, 2)


def test_postprocess_small_regions():
    square = np.zeros((20, 20), dtype=bool)
    square[2:10, 2:10] = True
    with_island = square.copy()
    with_island[15, 15] = True  # cleaned up it duplicates `square`, which wins (score 1 vs 0)
    holed = np.zeros((20, 20), dtype=bool)
    holed[12:19, 1:8] = True
    holed[14, 3] = False  # changed and kept: new RLE and box
    masks = torch.as_tensor(np.stack([with_island, square, holed]))
    data = MaskData(rles=mask_to_rle_pytorch(masks), boxes=torch.zeros(3, 4), iou_preds=torch.tensor([3., 2., 1.]))
    out = SAM2AutomaticMaskGenerator.postprocess_small_regions(data, min_area=4, nms_thresh=0.7)
    assert out["iou_preds"].tolist() == [2.0, 1.0]
    assert np.array_equal(rle_to_mask(out["rles"][0]), square)
    filled = holed.copy()
    filled[14, 3] = True
    assert np.array_equal(rle_to_mask(out["rles"][1]), filled)
    assert out["boxes"][1].tolist() == [1, 12, 7, 18]
    empty = MaskData(rles=[], boxes=torch.zeros(0, 4))
    assert SAM2AutomaticMaskGenerator.postprocess_small_regions(empty, 4, 0.7) is empty


# -------------------------------------------------------------------------- parity with the fixtures

_SLOW_RUNS = {("amg_sam2.1_hiera_t", "default"), ("amg_sam2.1_hiera_t", "nms_0999_crop_n_layers_1"),
              ("amg_sam2.1_hiera_t", "nms_0999_use_m2m")}


def _runs() -> list:
    params = []
    for name in R.scenario_names("amg"):
        for run in R.load_scenario(name).calls:
            marks = [pytest.mark.slow] if (name, run["id"]) in _SLOW_RUNS else []
            params.append(pytest.param(name, run["id"], marks=marks, id=f"{name}-{run['id']}"))
    return params


@pytest.fixture(scope="module")
def amg_model(tmp_path_factory):
    """The scenario's model built through the public loader (one kept alive at a time)."""
    build_sam = pytest.importorskip("sam2.build_sam")
    cache: dict[str, torch.nn.Module] = {}

    def get(sc: R.Scenario) -> torch.nn.Module:
        if sc.name not in cache:
            cache.clear()
            ckpt = sc.checkpoint(tmp_path_factory.mktemp(sc.name))
            kwargs = {k: v for k, v in sc.spec["build"]["kwargs"].items() if k != "device"}
            cache[sc.name] = build_sam.build_sam2(sc.config, ckpt, device="cpu", **kwargs)
            ckpt.unlink()
        return cache[sc.name]

    return get


def _match_records(ours: list[dict], ref: list[dict], ref_masks: np.ndarray) -> list[int]:
    """For every reference record, the index of our record with the fewest differing mask pixels."""
    our_masks = [mask_utils.decode(r["segmentation"]).astype(bool) for r in ours]
    order, free = [], set(range(len(ours)))
    for i in range(len(ref)):
        best = min(free, key=lambda j: int((our_masks[j] != ref_masks[i]).sum()))
        limit = R.MAX_FLIP_FRACTION * ref_masks[i].size
        assert int((our_masks[best] != ref_masks[i]).sum()) <= limit, f"reference mask {i} has no match"
        free.remove(best)
        order.append(best)
    return order


@R.requires_reference
@pytest.mark.parametrize(("name", "run_id"), _runs())
def test_amg_parity(name, run_id, amg_model, record_error):
    sc = R.load_scenario(name)
    run = next(r for r in sc.calls if r["id"] == run_id)
    gen = SAM2AutomaticMaskGenerator(amg_model(sc), **run["kwargs"])
    records = gen.generate(sc.decode(run["args"]["image"]))
    expected = run["expected"]
    if "raises" in expected:  # the official code fails with IndexError; we return no masks
        assert records == []
        return
    ref = expected["records"]
    assert len(records) == run["num_masks"] == len(ref)
    ref_masks = sc.expected(expected["masks_decoded"]).astype(bool)
    order = _match_records(records, ref, ref_masks)
    if run["kwargs"]["crop_n_layers"] == 0:
        assert order == list(range(len(ref)))  # one crop: sorted by predicted IoU, as the reference
    h, w = ref_masks.shape[1:]
    for i, j in enumerate(order):
        ours, exp = records[j], ref[i]
        assert ours["segmentation"]["size"] == exp["segmentation"]["size"] == [h, w]
        assert abs(ours["area"] - exp["area"]) <= R.MAX_FLIP_FRACTION * h * w
        assert np.abs(np.subtract(ours["bbox"], exp["bbox"])).max() <= 1.0
        assert ours["crop_box"] == exp["crop_box"]
        assert np.allclose(ours["point_coords"], exp["point_coords"], atol=1e-4, rtol=0)
        record_error(name, "predicted_iou abs", R.assert_scores(ours["predicted_iou"], exp["predicted_iou"]))
        record_error(name, "stability abs", R.assert_scores(ours["stability_score"], exp["stability_score"],
                                                            R.ABS_STABILITY))
        record_error(name, "mask pixels differing", int((mask_utils.decode(ours["segmentation"]) != ref_masks[i]).sum()))


@R.requires_reference
def test_min_mask_region_area_works_on_cpu(amg_model):
    """``min_mask_region_area`` becomes the predictor's hole / sprinkle areas, and they really act on CPU."""
    sc = R.load_scenario("amg_sam2.1_hiera_micro")
    image = R.image("truck")
    kwargs = {"points_per_side": 2, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}
    plain = SAM2AutomaticMaskGenerator(amg_model(sc), **kwargs).generate(image)
    gen = SAM2AutomaticMaskGenerator(amg_model(sc), min_mask_region_area=100, **kwargs)
    tr = gen.predictor._transforms
    assert (tr.max_hole_area, tr.max_sprinkle_area, tr.mask_threshold) == (100, 100, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Skipping the post-processing step" warning
        cleaned = gen.generate(image)
    assert len(plain) == len(cleaned) == 12
    changed = [not np.array_equal(a["segmentation"], b["segmentation"]) for a, b in zip(plain, cleaned)]
    assert any(changed)
