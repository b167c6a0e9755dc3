"""Training configuration: strict YAML sections with CLI overrides.

A config file has the sections ``space``, ``model``, ``data``, ``optim``, ``eval`` and ``log``
plus ``seed``. Unknown keys and wrong types are one-line `ConfigError`s; ``key.path=value``
overrides (values parsed as YAML) are checked the same way. The resolved config is written
beside the outputs (``config.yaml``) and stored inside every checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.config import apply_overrides, build_strict, read_config_mapping
from common.errors import ConfigError
from search_space.config import QKV_INITS


@dataclass
class ModelCfg:
    drop_path: float = 0.1  # stochastic depth rate at the deepest block
    init_from: str | None = None  # dense ViT checkpoint file (timm DeiT) for SVD initialisation
    init_supernet: str | None = None  # supernet checkpoint (any space point) to warm-start from
    qkv_init: str = "trunc_normal"  # supernet qkv init: trunc_normal (std 0.02) | lecun (std fan_in^-1/2)


@dataclass
class DataCfg:
    dataset: str = "digits"  # "digits" (embedded) or "folder" (ImageNet-style train/ and val/ folders)
    root: str | None = None  # image-folder root for dataset=folder
    cache_dir: str = "data"  # where the embedded digits are written as an image folder
    holdout_per_class: int = 50  # folder datasets: images per class held out of train for the search
    skip_corrupt: bool = False  # training split only: skip (and log) images that cannot be decoded
    batch_size: int = 64  # per process
    eval_batch_size: int = 256
    workers: int = 0
    rand_augment: str | None = "rand-m9-mstd0.5-inc1"  # timm RandAugment string, null = off
    scale: tuple[float, float] = (0.08, 1.0)  # RandomResizedCrop scale range
    hflip: float = 0.5
    reprob: float = 0.25  # random erasing probability
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_prob: float = 1.0
    smoothing: float = 0.1
    crop_pct: float = 0.875  # eval resize = img_size / crop_pct, then centre crop
    multiscale: bool = False  # one patch size per step, batch scaled so tokens x batch stays ~constant
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # input normalisation (timm's ImageNet default)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass
class OptimCfg:
    opt: str = "adamw"
    lr: float = 5e-4  # for the global batch `lr_base_batch`; scaled linearly with the global batch
    lr_base_batch: int = 512
    weight_decay: float = 0.05
    epochs: int = 300
    warmup_epochs: int = 5
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5
    sched: str = "cosine"
    clip_grad: float | None = None  # gradient-norm clipping, null = off
    sandwich: bool = False  # each step trains max + min + one random subnet
    ema: bool = False
    ema_decay: float = 0.9998
    amp: str = "auto"  # auto (fp16 on CUDA, off on CPU) | bf16 | fp16 | off


@dataclass
class EvalCfg:
    num_subnets: int = 3  # fixed random subnets evaluated each epoch besides min and max
    every: int = 1  # epochs between evaluations


@dataclass
class LogCfg:
    output: str = "runs/supernet"
    wandb: bool = False
    wandb_project: str = "mcunas"
    wandb_mode: str = "offline"
    progress: bool = True


@dataclass
class TrainConfig:
    space: str | dict = "digits-tiny"  # preset name, YAML path, or an inline space mapping
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    eval: EvalCfg = field(default_factory=EvalCfg)
    log: LogCfg = field(default_factory=LogCfg)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("scale", "mean", "std"):
            d["data"][key] = list(getattr(self.data, key))
        return d


def _check_values(cfg: TrainConfig) -> None:
    checks = [
        (cfg.data.dataset in ("digits", "folder"), "data.dataset must be 'digits' or 'folder'"),
        (cfg.data.dataset != "folder" or cfg.data.root, "data.root is required for dataset=folder"),
        (cfg.data.batch_size > 0 and cfg.data.eval_batch_size > 0, "batch sizes must be positive"),
        (cfg.data.workers >= 0, "data.workers must be >= 0"),
        (cfg.data.holdout_per_class >= 1, "data.holdout_per_class must be >= 1"),
        (0 <= cfg.data.reprob <= 1 and 0 <= cfg.data.hflip <= 1, "data.reprob/hflip must be in [0, 1]"),
        (0 <= cfg.data.smoothing < 1, "data.smoothing must be in [0, 1)"),
        (all(s > 0 for s in cfg.data.std), "data.std entries must be positive"),
        (cfg.data.mixup >= 0 and cfg.data.cutmix >= 0, "data.mixup/cutmix must be >= 0"),
        (cfg.optim.lr > 0, "optim.lr must be positive"),
        (cfg.optim.epochs > 0, "optim.epochs must be positive"),
        (0 <= cfg.optim.warmup_epochs < cfg.optim.epochs, "optim.warmup_epochs must be in [0, epochs)"),
        (cfg.optim.weight_decay >= 0, "optim.weight_decay must be >= 0"),
        (cfg.optim.clip_grad is None or cfg.optim.clip_grad > 0, "optim.clip_grad must be positive or null"),
        (cfg.optim.amp in ("auto", "bf16", "fp16", "off"), "optim.amp must be auto, bf16, fp16 or off"),
        (0 < cfg.optim.ema_decay < 1, "optim.ema_decay must be in (0, 1)"),
        (cfg.eval.num_subnets >= 0 and cfg.eval.every > 0, "eval.num_subnets >= 0 and eval.every > 0"),
        (cfg.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda"),
        (0 <= cfg.model.drop_path < 1, "model.drop_path must be in [0, 1)"),
        (cfg.model.qkv_init in QKV_INITS, "model.qkv_init must be trunc_normal or lecun"),
        (
            cfg.log.wandb_mode in ("offline", "online", "disabled"),
            "log.wandb_mode must be offline/online/disabled",
        ),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    if cfg.data.rand_augment is not None:
        check_augment(cfg.data.rand_augment)


def check_augment(spec: str) -> None:
    """Build timm's augmentation for ``spec`` once, so a malformed string fails before training."""
    from timm.data.auto_augment import (
        augment_and_mix_transform,
        auto_augment_transform,
        rand_augment_transform,
    )

    build = rand_augment_transform if spec.startswith("rand") else auto_augment_transform
    if spec.startswith("augmix"):
        build = augment_and_mix_transform
    try:
        build(spec, {})
    except (AssertionError, ValueError, KeyError, IndexError, TypeError):
        raise ConfigError(
            f"data.rand_augment {spec!r} is not a timm augmentation string; e.g. rand-m9-mstd0.5-inc1, "
            "augmix-m5-w4-d2, original, or null for none"
        ) from None


# Settings a resumed run may change: they are applied from the resumed epoch on (log, data
# loading, device, evaluation cadence; optim.epochs rebuilds the lr schedule for the new length)
# and leave every finished epoch as it was. Any other change is refused on resume.
RESUMABLE_CHANGES = (
    "log.",
    "device",
    "data.workers",
    "data.eval_batch_size",
    "data.cache_dir",
    "data.root",
    "optim.epochs",
    "eval.every",
    "eval.num_subnets",
)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) and k != "space" else {f"{prefix}{k}": v})
    return out


def resume_conflicts(saved: dict[str, Any], cfg: TrainConfig) -> list[str]:
    """The settings (``key: saved -> new``) in which ``cfg`` differs from the config a checkpoint
    was trained with, other than `RESUMABLE_CHANGES` and the space (checked on its own)."""
    theirs, mine = _flat(saved), _flat(cfg.to_dict())
    diffs = []
    for key, value in mine.items():
        if key == "space" or key.startswith(RESUMABLE_CHANGES) or key not in theirs:
            continue  # (a key the checkpoint predates keeps its default meaning)
        old = theirs[key]
        if isinstance(old, list | tuple) and isinstance(value, list | tuple):
            old, value = list(old), list(value)
        if old != value:
            diffs.append(f"{key}: {old!r} -> {value!r}")
    return diffs


def check_resume(saved: dict[str, Any], cfg: TrainConfig, source: object) -> None:
    """Refuse to continue ``source`` under settings it was not trained with (one line, all keys)."""
    diffs = resume_conflicts(saved, cfg)
    if diffs:
        raise ConfigError(
            f"{source} was trained with other settings ({'; '.join(diffs)}); rerun with its settings, or "
            "start over with --restart or a new --output"
        )


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML config (or start from defaults), apply overrides, validate strictly."""
    data = read_config_mapping(path, overrides) if path is not None else apply_overrides({}, overrides)
    cfg = build_strict(TrainConfig, data)
    _check_values(cfg)
    return cfg


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """A `TrainConfig` from its dict form (as checkpoints store it), validated like a file."""
    cfg = build_strict(TrainConfig, copy.deepcopy(data))
    _check_values(cfg)
    return cfg


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    from common.files import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(cfg.to_dict(), sort_keys=False))
