"""Training YAML files: the official schema (MOSE file and a user's file in its shape), interpolations,
our presets, and errors that name the dotted key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from sam2.config import get_preset, with_updates
from sam2.config_yaml import ConfigError
from sam2.training.build import resolve_model_config
from sam2.training.config_yaml import load_train_config, preset_names, train_config_from_tree
from sam2.training.data.config import TransformConfig
from sam2.training.interpolation import Interpolator, load_yaml
from sam2.training.model import PromptSimulationConfig
from sam2.training.optimizer import OptimConfig

FILES = Path(__file__).parent / "data_files"
MOSE = FILES / "sam2.1_hiera_b+_MOSE_finetune.yaml"
USER = FILES / "user_finetune_official_schema.yaml"


def _tree(path: Path) -> dict:
    return load_yaml(path.read_text())


def _edited(path: Path, old: str, new: str) -> dict:
    text = path.read_text()
    assert old in text, old
    return load_yaml(text.replace(old, new, 1))


def test_mose_file_maps_every_value_of_the_recipe():
    cfg = load_train_config(MOSE)
    assert cfg.model.config == "sam2.1_hiera_b+" and cfg.model.model_config is None
    assert cfg.model.drop_path_rate == 0.1
    model_cfg = resolve_model_config(cfg.model, cfg.image_size)
    assert model_cfg == with_updates(get_preset("sam2.1_hiera_b+"), trunk={"drop_path_rate": 0.1})
    assert cfg.model.checkpoint == "./checkpoints/sam2.1_hiera_base_plus.pt"
    assert cfg.model.prompts == PromptSimulationConfig.mose()
    assert cfg.model.freeze == ()
    (ds,) = cfg.data.datasets
    assert (ds.kind, ds.img_folder, ds.gt_folder) == ("vos", None, None)
    assert ds.file_list_txt == "training/assets/MOSE_sample_train_list.txt"
    assert (ds.multiplier, ds.batch_size, ds.num_frames, ds.max_num_objects, ds.dict_key) == (2, 1, 8, 3, "all")
    assert (cfg.data.resolution, cfg.data.num_workers, cfg.data.pin_memory, cfg.data.drop_last) == (1024, 10, True, True)
    assert cfg.data.transforms == TransformConfig()
    assert cfg.optim == OptimConfig()  # the ends are a tenth of the starts, the default
    assert cfg.loss.weight_dict == {"loss_mask": 20, "loss_dice": 1, "loss_iou": 1, "loss_class": 1}
    assert (cfg.loss.supervise_all_iou, cfg.loss.iou_use_l1_loss, cfg.loss.pred_obj_scores) == (True, True, True)
    t = cfg.trainer
    assert (t.max_epochs, t.seed, t.device, t.log_every_steps, t.keep_every_epochs) == (40, 123, "cuda", 10, 0)
    assert t.experiment_dir == str(Path("sam2_logs") / MOSE.stem)


def test_shipped_mose_preset_equals_the_official_file():
    ours, official = load_train_config("sam2.1_hiera_b+_MOSE_finetune"), load_train_config(MOSE)
    # Only where the files live and where the weights come from differ (and the official file pins CUDA).
    official = dataclasses.replace(
        official, model=dataclasses.replace(official.model, checkpoint="hub"),
        trainer=dataclasses.replace(official.trainer, device=None))
    official = dataclasses.replace(official, data=dataclasses.replace(
        official.data, datasets=[dataclasses.replace(official.data.datasets[0], file_list_txt=None)]))
    assert ours == official


def test_user_file_in_the_official_shape():
    cfg = load_train_config(USER)
    assert cfg.model.config == "sam2.1_hiera_t" and cfg.image_size == 512
    assert resolve_model_config(cfg.model, 512) == with_updates(get_preset("sam2.1_hiera_t"), tracker={"image_size": 512})
    assert cfg.model.freeze == ("image_encoder",) and cfg.model.drop_path_rate is None
    assert cfg.model.checkpoint == "/models/sam2.1_hiera_tiny.pt"
    assert cfg.model.prompts.prob_to_use_pt_input_for_train == 0.8
    assert cfg.model.prompts.num_correction_pt_per_frame == 3
    video, images = cfg.data.datasets
    assert (video.kind, video.img_folder, video.batch_size, video.num_frames, video.max_num_objects) == \
        ("vos", "/data/my_videos/JPEGImages", 2, 4, 2)
    assert (images.kind, images.img_folder, images.batch_size, images.num_frames, images.max_num_objects) == \
        ("sa1b", "/data/my_images", 8, 1, 8)
    assert images.mask_area_frac_thresh == 0.8 and cfg.data.dataset_prob == [0.75, 0.25]
    tf = cfg.data.transforms
    assert tf.augment and (tf.affine_degrees, tf.affine_shear, tf.grayscale_prob) == (0.0, 0.0, 0.0)
    assert (tf.hflip_prob, tf.brightness, tf.frame_contrast) == (0.5, 0.1, 0.05)
    o = cfg.optim
    assert (o.base_lr, o.vision_lr, o.base_lr_end, o.vision_lr_end) == (1e-5, 6e-6, None, None)
    assert o.layer_decay is None and o.gradient_clip_max_norm is None and o.amp_enabled is False
    assert cfg.loss.weight_dict["loss_mask"] == 10
    t = cfg.trainer
    assert (t.max_epochs, t.device, t.keep_every_epochs, t.log_every_steps, t.experiment_dir) == \
        (10, "cpu", 5, 25, "/runs/my_finetune")


def test_interpolations_and_resolvers():
    tree = load_yaml("a: {n: 8, lr: 1e-5, name: x}\nb: ${times:${a.n},5}\nc: ${divide:${a.lr},10}\n"
                     "d: run_${a.name}/${a.n}\ne: ${int:${divide:${a.n},3}}\nf: ${ceil_int:2.1}\n"
                     "g: ${add:1,2,3}\nh: ${subtract:${a.n},1}\ni: ${pow:2,${a.n}}\nj: ${a}\n")
    interp = Interpolator(tree, "t.yaml")
    got = {k: interp.resolve(tree[k], k) for k in "bcdefghij"}
    assert got == {"b": 40, "c": 1e-5 / 10, "d": "run_x/8", "e": 2, "f": 3, "g": 6, "h": 7, "i": 256,
                   "j": {"n": 8, "lr": 1e-5, "name": "x"}}
    for text, message in (("x: ${nope.key}", "refers to 'nope.key'"), ("x: ${hydra:runtime.cwd}", "resolver 'hydra'"),
                          ("x: ${x}", "circular"), ("x: ${divide:1,0}", "failed")):
        tree = load_yaml(text)
        with pytest.raises(ConfigError, match=message):
            Interpolator(tree, "t.yaml").resolve(tree["x"], "x")


@pytest.mark.parametrize("old, new, message", [
    ("  mode: train_only\n", "  mode: train_only\n  max_epoch: 3\n", "unknown key trainer.max_epoch"),
    ("    num_maskmem: 7\n", "    num_maskmem: 7\n    num_mask_mem: 7\n", "unknown key trainer.model.num_mask_mem"),
    ("      norm_type: 2\n", "      norm_type: 2\n      foo: 1\n", "unknown key trainer.optim.gradient_clip.foo"),
    ("      shuffle: True\n", "      shuffle: True\n      prefetch: 2\n", "unknown key trainer.data.train.prefetch"),
    ("      iou_use_l1_loss: true\n", "      iou_use_l1_loss: true\n      use_l2: 1\n", "unknown key trainer.loss.all.use_l2"),
    ("                _target_: training.dataset.vos_raw_dataset.PNGRawDataset",
     "                _target_: training.dataset.vos_raw_dataset.MyDataset", r"video_dataset._target_ .*MyDataset"),
    ("      _target_: torch.optim.AdamW", "      _target_: torch.optim.SGD", r"trainer.optim.optimizer._target_ is 'torch.optim.SGD'"),
    ("        - _target_: training.dataset.transforms.RandomGrayscale",
     "        - _target_: training.dataset.transforms.RandomSolarize", "RandomSolarize' is not a supported transform"),
    ("          p: 0.05\n          consistent_transform: True\n        - _target_: training.dataset.transforms.ColorJitter\n"
     "          consistent_transform: False", "          p: 0.05\n          consistent_transform: True\n"
     "        - _target_: training.dataset.transforms.RandomHorizontalFlip\n          consistent_transform: True\n"
     "        - _target_: training.dataset.transforms.ColorJitter\n          consistent_transform: False", "MOSE order"),
    ("    image_size: ${scratch.resolution}", "    image_size: 512", r"image_size \(512\) differs from the resize size"),
    ("      strict: True", "      strict: False", "loads initial weights strictly"),
    ("  _target_: training.trainer.Trainer\n", "  _target_: my.Trainer\n", "trainer._target_ is 'my.Trainer'"),
    ("submitit:\n", "foo: 1\nsubmitit:\n", "unknown key foo"),
    ("  phases_per_epoch: 1\n", "  phases_per_epoch: 2\n", "phases_per_epoch: only 1"),
])
def test_official_file_errors_name_the_key(old, new, message):
    with pytest.raises(ConfigError, match=message) as err:
        train_config_from_tree(_edited(MOSE, old, new), "mose.yaml")
    assert str(err.value).startswith("mose.yaml: ")


def test_concat_of_several_datasets_is_refused():
    text = USER.read_text()
    block = re.search(r"            - _target_: training.dataset.vos_dataset.VOSDataset\n(?:              .*\n)+", text)
    tree = load_yaml(text.replace(block.group(0), block.group(0) * 2, 1))
    with pytest.raises(ConfigError, match="ConcatDataset of 2 datasets is not supported"):
        train_config_from_tree(tree, "user.yaml")


def test_yaml_reads_exponents_without_a_dot_as_floats():
    assert load_yaml("a: 1e-5\nb: 5E6\nc: 3.0e-06\nd: 1.5\ne: '1e-5'\nf: 12") == \
        {"a": 1e-5, "b": 5e6, "c": 3e-6, "d": 1.5, "e": "1e-5", "f": 12}


def test_presets_load_and_unknown_names_are_listed(tmp_path):
    names = preset_names()
    assert {"sam2.1_hiera_b+_MOSE_finetune", "sam2.1_hiera_t_coco_finetune", "sam2.1_hiera_micro_cpu"} <= set(names)
    for name in names:
        cfg = load_train_config(name)
        resolve_model_config(cfg.model, cfg.image_size)
    coco = load_train_config("sam2.1_hiera_t_coco_finetune")
    assert [d.kind for d in coco.data.datasets] == ["coco"] and coco.data.datasets[0].num_frames == 1
    with pytest.raises(ConfigError, match="neither an existing YAML file nor a preset .*sam2.1_hiera_micro_cpu"):
        load_train_config("no_such_recipe")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: {max_epochs: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_train_config(bad)
    ours = tmp_path / "ours.yaml"
    ours.write_text("trainer:\n  max_epochs: 3\n  sed: 1\n")
    with pytest.raises(ConfigError, match="ours.yaml: unknown key trainer.sed"):
        load_train_config(ours)
