"""``sam2 train``: fine-tune SAM 2 / 2.1 with the official recipe (one process, or many under torchrun)."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from typing import Any

from sam2.cli import common

log = logging.getLogger(__name__)

DESCRIPTION = """\
Fine-tune SAM 2 / SAM 2.1 with the official recipe (prompt simulation with clicks, boxes and masks,
correction clicks, the multi-step loss, AdamW with layer-wise lr decay and cosine schedules).

--config is a training YAML: sam2-kit's own schema, the official training schema
(sam2.1_hiera_b+_MOSE_finetune.yaml and files in its shape), or a shipped preset by name:
  sam2.1_hiera_b+_MOSE_finetune   DAVIS/MOSE-layout videos, b+ from the released weights
  sam2.1_hiera_t_coco_finetune    COCO instance JSON (images as 1-frame videos), tiny
  sam2.1_hiera_micro_cpu          a tiny model on the CPU in minutes (pipeline checks)
The options below override the file; --set KEY=VALUE sets any key (e.g. --set optim.layer_decay=null,
--set data.datasets.0.multiplier=4); --print-config shows the result in sam2-kit's schema.

Writes into the experiment folder (--output-dir): config.yaml, metrics.jsonl (JSON lines), tensorboard/,
checkpoints/checkpoint.pt (official layout: {"model": state_dict, "optimizer", "epoch", "steps", ...};
its "model" loads into build_sam2 / `sam2 image --checkpoint`). --resume continues a run exactly where
its last checkpoint stopped (model, optimizer, schedules, data position and every random generator).

Several processes: torchrun --nproc_per_node=N -m sam2 train ... (gloo on CPU, NCCL on GPU; on a SLURM
cluster: srun torchrun ...). Ctrl-C or SIGTERM stops after the current step with a checkpoint (exit
status 130 / 143); a second Ctrl-C aborts at once. Bad arguments: exit status 2 before anything is
written; a failure while training: exit status 1.
"""


def _csv(value: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    return () if items in ((), ("none",)) else items



def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sam2 train``."""
    p = subparsers.add_parser("train", help="fine-tune on your own images / videos",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", required=True, help="training YAML file or preset name")
    p.add_argument("-o", "--output-dir", metavar="DIR", type=Path, help="experiment folder (trainer.experiment_dir)")
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="NAME", help="release to fine-tune (e.g. sam2.1_hiera_small); its released "
                                                   "weights are the start unless --checkpoint is given")
    g.add_argument("--checkpoint", metavar="FILE", type=common.existing_file,
                   help="initial weights ({'model': state_dict}, loaded strictly)")
    g.add_argument("--freeze", metavar="GROUPS", type=_csv,
                   help="comma list of frozen parts: image_encoder, image_encoder.trunk, sam_prompt_encoder, "
                        "sam_mask_decoder, memory, or parameter-name prefixes; 'none' trains everything")
    g.add_argument("--resolution", metavar="S", type=common.positive_int, help="model and frame size (multiple of 16)")
    d = p.add_argument_group("data (the first dataset of the config)")
    d.add_argument("--img-folder", metavar="DIR", type=common.existing_dir, help="frames / images folder")
    d.add_argument("--gt-folder", metavar="DIR", type=common.existing_dir, help="masks / annotations folder")
    d.add_argument("--ann-file", metavar="FILE", type=common.existing_file, help="COCO instances JSON")
    d.add_argument("--batch-size", metavar="N", type=common.positive_int, help="batch size of every dataset")
    d.add_argument("--num-frames", metavar="T", type=common.positive_int, help="frames per clip (video datasets)")
    d.add_argument("--max-objects", metavar="N", type=common.positive_int, help="objects per clip at most")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", metavar="N", type=common.positive_int, help="trainer.max_epochs")
    t.add_argument("--lr", metavar="LR", type=common.positive_float, help="base learning rate (cosine to a tenth)")
    t.add_argument("--vision-lr", metavar="LR", type=common.positive_float, help="image-encoder learning rate")
    t.add_argument("--grad-accum", metavar="K", type=common.positive_int, help="micro-batches per optimizer step")
    t.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the config's, else cuda if available)")
    t.add_argument("--resume", metavar="CKPT", nargs="?", const="last",
                   help="continue the run of --output-dir from its checkpoints/checkpoint.pt (or from CKPT)")
    t.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="settings",
                   help="set any config key (repeatable), e.g. trainer.checkpoint_every_steps=200")
    p.add_argument("--print-config", action="store_true", help="print the resulting config and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar; print nothing but errors")
    p.set_defaults(func=run, _parser=p)
    return p


def _overrides(args: argparse.Namespace, cfg: Any) -> list[tuple[str, Any]]:
    """(dotted key, value) pairs of the explicit options, in a fixed order."""
    out: list[tuple[str, Any]] = []
    if args.model:
        out += [("model.config", args.model), ("model.model_config", None), ("model.checkpoint", "hub")]
    if args.checkpoint is not None:
        out.append(("model.checkpoint", str(args.checkpoint)))
    if args.freeze is not None:
        out.append(("model.freeze", list(args.freeze)))
    if args.resolution is not None:
        out += [("data.resolution", args.resolution), ("model.image_size", None)]
    datasets = cfg.data.datasets
    for flag, key in (("img_folder", "img_folder"), ("gt_folder", "gt_folder"), ("ann_file", "ann_file")):
        if getattr(args, flag) is not None:
            if len(datasets) != 1:
                args._parser.error(f"argument --{flag.replace('_', '-')}: the config has {len(datasets)} datasets; "
                                   f"use --set data.datasets.<i>.{key}=...")
            out.append((f"data.datasets.0.{key}", str(getattr(args, flag))))
    for i, ds in enumerate(datasets):
        if args.batch_size is not None:
            out.append((f"data.datasets.{i}.batch_size", args.batch_size))
        if args.num_frames is not None and ds.is_video:
            out.append((f"data.datasets.{i}.num_frames", args.num_frames))
        if args.max_objects is not None:
            out.append((f"data.datasets.{i}.max_num_objects", args.max_objects))
    if args.epochs is not None:
        out.append(("trainer.max_epochs", args.epochs))
    if args.lr is not None:
        out += [("optim.base_lr", args.lr), ("optim.base_lr_end", None)]
    if args.vision_lr is not None:
        out += [("optim.vision_lr", args.vision_lr), ("optim.vision_lr_end", None)]
    if args.grad_accum is not None:
        out.append(("trainer.grad_accum_steps", args.grad_accum))
    if args.device is not None:
        out.append(("trainer.device", args.device))
    if args.output_dir is not None:
        out.append(("trainer.experiment_dir", str(args.output_dir)))
    if args.quiet:
        out.append(("trainer.progress_bar", False))
    return out


def load_config(args: argparse.Namespace) -> Any:
    """The config of the file with every option applied; usage errors name the argument."""
    from sam2.config_yaml import ConfigError
    from sam2.training.config_yaml import apply_settings, load_train_config, parse_setting

    parser = args._parser
    try:
        cfg = load_train_config(args.config)
    except ConfigError as exc:
        parser.error(f"argument --config: {exc}")
    try:
        cfg = apply_settings(cfg, _overrides(args, cfg))
    except (ConfigError, ValueError, TypeError) as exc:
        parser.error(f"{exc}")
    for text in args.settings:
        try:
            setting = parse_setting(text)
        except ConfigError as exc:
            parser.error(f"argument --set: {exc}")
        try:
            cfg = apply_settings(cfg, [setting])
        except (ConfigError, ValueError, TypeError) as exc:
            parser.error(f"argument --set: {text!r}: {exc}")
    return cfg


def _check(args: argparse.Namespace, cfg: Any, resume: Path | None) -> None:
    """Usage errors of the whole config, the output folder and --resume (nothing written yet)."""
    from sam2.config_yaml import ConfigError
    from sam2.training.checkpoints import CHECKPOINT_NAME

    parser = args._parser
    try:
        cfg.check()
    except ConfigError as exc:
        parser.error(f"argument --config: {exc}")
    _check_model(parser, cfg)
    exp = Path(cfg.trainer.experiment_dir)
    common.check_output_dir(parser, exp, "--output-dir")
    existing = cfg.trainer.checkpoint_dir / CHECKPOINT_NAME
    if resume is None and existing.exists():
        parser.error(f"argument --output-dir: {str(exp)!r} already holds {existing.name} of an earlier run; "
                     "pass --resume to continue it or choose another --output-dir")
    if resume is not None and not resume.is_file():
        parser.error(f"argument --resume: no checkpoint at {str(resume)!r}")


def _check_model(parser: argparse.ArgumentParser, cfg: Any) -> None:
    """Usage errors of the model section, on a weightless (meta-device) copy of the model."""
    import torch

    from sam2.config_yaml import ConfigError
    from sam2.modeling.sam2_base import SAM2Base
    from sam2.training.build import resolve_model_config
    from sam2.training.freezing import resolve_prefixes
    from sam2.training.lora import lora_targets

    try:
        model_cfg = resolve_model_config(cfg.model, cfg.image_size)
    except ConfigError as exc:
        parser.error(f"argument --config/--model: {exc}")
    with torch.device("meta"):
        model = SAM2Base(model_cfg)
    try:
        resolve_prefixes(model, cfg.model.freeze)
    except ValueError as exc:
        parser.error(f"argument --freeze: {exc}")
    if cfg.model.lora is not None:
        try:
            lora_targets(model, cfg.model.lora.targets)
        except ValueError as exc:
            parser.error(f"argument --config (model.lora): {exc}")


class _StopOnSignal:
    """SIGINT / SIGTERM: ask the trainer to stop after the current step; a second SIGINT aborts."""

    def __init__(self) -> None:
        self.trainer: Any = None
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("%s received: stopping after the current step (Ctrl-C again aborts at once)",
                    signal.Signals(signum).name)
        if self.trainer is not None:
            self.trainer.stop_signal = signum


def run(args: argparse.Namespace) -> int:
    """Validate, build, train; returns the exit code."""
    parser = args._parser
    cfg = load_config(args)
    if args.print_config:
        from sam2.training.config_yaml import dump_train_config

        print(dump_train_config(cfg), end="")
        return 0
    resume = None
    if args.resume is not None:
        resume = cfg.trainer.checkpoint_dir / "checkpoint.pt" if args.resume == "last" else Path(args.resume)
    _check(args, cfg, resume)
    device = common.resolve_device(parser, cfg.trainer.device, "--device")
    return _train(cfg, device, resume, quiet=args.quiet)


def _train(cfg: Any, device: Any, resume: Path | None, quiet: bool) -> int:
    from sam2.checkpoint import CheckpointError
    from sam2.config_yaml import ConfigError
    from sam2.training.checkpoints import atomic_text
    from sam2.training.config_yaml import dump_train_config
    from sam2.training.distributed import init_distributed, process_device, shutdown
    from sam2.training.trainer import Trainer

    with _StopOnSignal() as stopper:
        try:
            ctx = init_distributed(device)
        except RuntimeError as exc:
            log.error("%s", exc)
            return 1
        device = process_device(ctx, device)
        if not ctx.is_main:  # one copy of every warning, from the main process
            logging.getLogger("sam2").setLevel(logging.ERROR)
        try:
            try:
                trainer = Trainer(cfg, device, dist=ctx, resume=resume)
            except (ConfigError, CheckpointError, OSError, ValueError, ImportError, RuntimeError) as exc:
                log.error("cannot start training: %s", exc)
                return 1
            if stopper.signum is not None:  # interrupted while setting up: nothing written yet
                return 128 + stopper.signum
            stopper.trainer = trainer
            if ctx.is_main:
                atomic_text(dump_train_config(cfg), Path(cfg.trainer.experiment_dir) / "config.yaml")
            try:
                result = trainer.fit()
            except (FloatingPointError, OSError, ValueError, RuntimeError) as exc:
                log.error("training failed: %s", exc)
                return 1
        except KeyboardInterrupt:
            log.error("aborted")
            return 130
        finally:
            shutdown(ctx)
    if result.stopped_by is not None:
        code = 128 + (result.stopped_by or stopper.signum or signal.SIGTERM)
        if ctx.is_main and not quiet:
            print(f"stopped at epoch {result.epochs}, step {result.steps}; resume with --resume "
                  f"(checkpoint {result.checkpoint})")
        return code
    if ctx.is_main and not quiet:
        loss = f", last loss {result.last_loss:.4g}" if result.last_loss is not None else ""
        print(f"trained {result.epochs} epochs, {result.steps} steps{loss}")
        print(f"checkpoint: {result.checkpoint}")
        print(f"metrics: {Path(cfg.trainer.experiment_dir) / 'metrics.jsonl'}")
        for val in result.validation[-1:]:
            print(f"validation J&F {val['J&F']:.2f} (J {val['J']:.2f}, F {val['F']:.2f})")
    return 0
