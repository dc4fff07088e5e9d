"""The typed training config: defaults, conversion from plain trees with errors naming the dotted key,
dotted replacement, checks before training, and the YAML round trip of our schema."""

from __future__ import annotations

import dataclasses

import pytest

from sam2.config_yaml import ConfigError
from sam2.training.config import ModelSection, TrainConfig, TrainerConfig, ValidationConfig
from sam2.training.config_yaml import dump_train_config, load_train_config, train_config_from_tree
from sam2.training.data.config import DataConfig, DatasetConfig
from sam2.training.interpolation import load_yaml
from sam2.training.model import PromptSimulationConfig
from sam2.training.typed_tree import from_tree, replace_path, to_tree


def _with_dataset(cfg: TrainConfig, tmp_path) -> TrainConfig:
    ds = DatasetConfig(kind="vos", img_folder=str(tmp_path), gt_folder=str(tmp_path))
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, datasets=[ds]))


def test_defaults_are_the_mose_recipe_loop():
    cfg = TrainConfig()
    assert (cfg.trainer.max_epochs, cfg.trainer.seed, cfg.trainer.grad_accum_steps) == (40, 123, 1)
    assert (cfg.optim.base_lr, cfg.optim.vision_lr, cfg.optim.gradient_clip_max_norm) == (5e-6, 3e-6, 0.1)
    assert cfg.loss.weight_dict == {"loss_mask": 20.0, "loss_dice": 1.0, "loss_iou": 1.0, "loss_class": 1.0}
    assert cfg.image_size == cfg.data.resolution == 1024
    assert cfg.trainer.checkpoint_dir.as_posix().endswith("sam2_logs/train/checkpoints")


def test_tree_values_are_converted_to_the_field_types():
    cfg = from_tree(TrainConfig, {
        "model": {"config": "sam2.1_hiera_tiny", "freeze": ["image_encoder", "memory"],
                  "prompts": {"prob_to_use_pt_input_for_train": 1, "num_correction_pt_per_frame": 3.0}},
        "data": {"resolution": 512, "datasets": [{"kind": "vos", "img_folder": "a", "gt_folder": "b"}]},
        "optim": {"base_lr": 1, "betas": [0.9, 0.95]},
        "trainer": {"max_epochs": 3, "validation": {"every_epochs": 2, "img_folder": "v", "gt_folder": "g"}},
    }, "")
    assert cfg.model.freeze == ("image_encoder", "memory")
    assert cfg.model.prompts.prob_to_use_pt_input_for_train == 1.0
    assert cfg.model.prompts.num_correction_pt_per_frame == 3
    assert isinstance(cfg.data.datasets[0], DatasetConfig) and cfg.data.datasets[0].img_folder == "a"
    assert cfg.optim.base_lr == 1.0 and isinstance(cfg.optim.base_lr, float)
    assert cfg.optim.betas == (0.9, 0.95)
    assert cfg.trainer.validation == ValidationConfig(2, "v", "g")


@pytest.mark.parametrize("tree, message", [
    ({"trainer": {"max_epoch": 3}}, "unknown key trainer.max_epoch"),
    ({"model": {"prompts": {"prob_to_use_pt": 0.5}}}, "unknown key model.prompts.prob_to_use_pt"),
    ({"data": {"datasets": [{"kind": "vos", "imgfolder": "x"}]}}, r"unknown key data.datasets\[0\].imgfolder"),
    ({"trainer": {"max_epochs": "ten"}}, "trainer.max_epochs: expected an integer"),
    ({"trainer": {"max_epochs": 2.5}}, "trainer.max_epochs: expected an integer"),
    ({"trainer": {"tensorboard": "yes"}}, "trainer.tensorboard: expected true or false"),
    ({"model": {"freeze": "image_encoder"}}, "model.freeze: expected a list"),
    ({"optim": {"base_lr": None}}, "optim.base_lr: a value is required"),
    ({"loss": {"weight_dict": {"loss_mask": 1}}}, "loss"),
    ({"model": {"prompts": {"prob_to_use_pt_input_for_train": 2.0}}}, "prob_to_use_pt_input_for_train"),
    ({"trainer": []}, "trainer: expected a mapping"),
])
def test_bad_trees_name_the_dotted_key(tree, message):
    with pytest.raises(ConfigError, match=message):
        from_tree(TrainConfig, tree, "")


def test_replace_path_sets_nested_fields_and_list_entries():
    cfg = TrainConfig(data=DataConfig(datasets=[DatasetConfig(kind="vos"), DatasetConfig(kind="coco")]))
    cfg = replace_path(cfg, "optim.base_lr", 1e-4)
    cfg = replace_path(cfg, "data.datasets.1.ann_file", "x.json")
    cfg = replace_path(cfg, "model.prompts", {"prob_to_use_pt_input_for_train": 0.25})
    cfg = replace_path(cfg, "trainer.validation.every_epochs", 2)
    cfg = replace_path(cfg, "data.datasets.2", {"kind": "sa1b", "img_folder": "i", "gt_folder": "i"})
    cfg = replace_path(cfg, "data.datasets.0", {"kind": "sav", "batch_size": 3})
    assert [type(d) for d in cfg.data.datasets] == [DatasetConfig] * 3
    assert [d.kind for d in cfg.data.datasets] == ["sav", "coco", "sa1b"] and cfg.data.datasets[0].batch_size == 3
    assert cfg.optim.base_lr == 1e-4 and cfg.data.datasets[1].ann_file == "x.json"
    assert cfg.data.datasets[0].ann_file is None
    assert cfg.model.prompts == PromptSimulationConfig(prob_to_use_pt_input_for_train=0.25)
    assert cfg.trainer.validation.every_epochs == 2
    for key, value, message in (("optim.base_lrr", 1.0, "unknown key optim.base_lrr"),
                                ("data.datasets.5.kind", "vos", r"data.datasets.5: no such list entry"),
                                ("data.datasets.0", {"kin": "vos"}, r"unknown key data.datasets\[0\].kin"),
                                ("trainer.max_epochs", "x", "trainer.max_epochs: expected an integer"),
                                ("trainer.max_epochs.x", 1, "trainer.max_epochs has no sub-key")):
        with pytest.raises(ConfigError, match=message):
            replace_path(cfg, key, value)


def test_check_rejects_impossible_values_before_training(tmp_path):
    good = _with_dataset(TrainConfig(), tmp_path)
    good.check()
    cases = [
        (dataclasses.replace(good, trainer=TrainerConfig(max_epochs=0)), "trainer.max_epochs must be >= 1"),
        (dataclasses.replace(good, trainer=TrainerConfig(grad_accum_steps=0)), "trainer.grad_accum_steps"),
        (dataclasses.replace(good, trainer=TrainerConfig(validation=ValidationConfig(every_epochs=1))),
         "trainer.validation.img_folder is required"),
        (dataclasses.replace(good, trainer=TrainerConfig(validation=ValidationConfig(
            every_epochs=1, img_folder=str(tmp_path / "none"), gt_folder=str(tmp_path)))),
         "trainer.validation.img_folder: .* is not a folder"),
        (dataclasses.replace(good, model=ModelSection(image_size=512)), "model.image_size .512. differs"),
        (replace_path(good, "data.resolution", 1000), "multiple of 16"),
        (replace_path(good, "model.drop_path_rate", 1.0), "model.drop_path_rate must be in"),
        (replace_path(good, "data.datasets", []), "data: .*datasets. is empty"),
    ]
    for cfg, message in cases:
        with pytest.raises(ConfigError, match=message):
            cfg.check()


def test_our_yaml_round_trips(tmp_path):
    cfg = _with_dataset(load_train_config("sam2.1_hiera_micro_cpu"), tmp_path)
    cfg = replace_path(cfg, "trainer.validation.every_epochs", 3)
    text = dump_train_config(cfg)
    assert train_config_from_tree(load_yaml(text), "dumped") == cfg
    assert to_tree(cfg)["model"]["freeze"] == []


def test_empty_file_gives_the_defaults():
    assert train_config_from_tree(None, "empty.yaml") == TrainConfig()
