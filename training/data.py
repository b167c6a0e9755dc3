"""Datasets and loaders through timm, with a held-out split for the search on every dataset.

Splits: ``train`` (trained on), ``holdout`` (never trained on; the search ranks subnets on
it) and ``test`` (final reports only).

* ``digits`` (embedded default): scikit-learn's digits written once as an image folder
  ``<cache_dir>/digits-<px>/{train,holdout,test}/<class>/*.png`` with the fixed splits of
  `training.digits`, then read by timm's `create_dataset` like any image folder.
* ``folder`` (e.g. ImageNet): ``<root>/train`` and ``<root>/val``; the holdout is
  ``holdout_per_class`` images per class taken out of ``train`` by a fixed seed, and ``val``
  is the test split.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timm.data import Mixup, create_dataset, create_loader

from search_space.errors import ConfigError
from training.config import DataCfg
from training.digits import load_digits_split

SPLITS = ("train", "holdout", "test")


def prepare_digits(cache_dir: str | Path, img_size: int) -> Path:
    """Write the digits splits as an image folder once (atomically) and return its root."""
    root = Path(cache_dir) / f"digits-{img_size}"
    if (root / ".complete").exists():
        return root
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for split in SPLITS:
        images, labels = load_digits_split(split, img_size)
        for i, (img, label) in enumerate(zip(images, labels, strict=True)):
            folder = tmp / split / str(int(label))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:04d}.png")
    (tmp / ".complete").touch()
    try:
        os.replace(tmp, root)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _holdout_indices(targets: list[int], per_class: int, seed: int = 0) -> np.ndarray:
    """``per_class`` indices of each class, chosen by a fixed seed."""
    targets_arr = np.asarray(targets)
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(targets_arr == c))[:per_class] for c in np.unique(targets_arr)]
    return np.sort(np.concatenate(picked))


def build_datasets(cfg: DataCfg, img_size: int) -> dict[str, object]:
    """train / holdout / test timm datasets."""
    if cfg.dataset == "digits":
        root = prepare_digits(cfg.cache_dir, img_size)
        return {s: create_dataset("", root=str(root), split=s, is_training=s == "train") for s in SPLITS}
    root = Path(cfg.root or "")
    for sub in ("train", "val"):
        if not (root / sub).is_dir():
            raise ConfigError(
                f"data.root {root} has no '{sub}' folder; expected an ImageNet-style <root>/{sub}/<class>/"
            )
    train = create_dataset("", root=str(root), split="train", is_training=True)
    holdout = create_dataset("", root=str(root), split="train")
    held = set(_holdout_indices([t for _, t in train.reader.samples], cfg.holdout_per_class).tolist())
    holdout.reader.samples = [s for i, s in enumerate(holdout.reader.samples) if i in held]
    train.reader.samples = [s for i, s in enumerate(train.reader.samples) if i not in held]
    test = create_dataset("", root=str(root), split="val")
    return {"train": train, "holdout": holdout, "test": test}


@dataclass
class Loaders:
    train: torch.utils.data.DataLoader
    holdout: torch.utils.data.DataLoader
    test: torch.utils.data.DataLoader
    mixup: Mixup | None
    num_classes: int


def build_loaders(cfg: DataCfg, img_size: int, num_classes: int, distributed: bool = False) -> Loaders:
    """timm loaders: augmented training (RandAugment, random erasing, Mixup/CutMix) and plain
    evaluation loaders for holdout and test."""
    sets = build_datasets(cfg, img_size)
    found = len(sets["train"].reader.class_to_idx)
    if found != num_classes:
        raise ConfigError(f"the dataset has {found} classes but the space's num_classes is {num_classes}")
    common = dict(
        num_workers=cfg.workers,
        use_prefetcher=False,
        persistent_workers=cfg.workers > 0,
        mean=tuple(cfg.mean),
        std=tuple(cfg.std),
    )
    train = create_loader(
        sets["train"],
        input_size=(3, img_size, img_size),
        batch_size=cfg.batch_size,
        is_training=True,
        re_prob=cfg.reprob,
        scale=cfg.scale,
        hflip=cfg.hflip,
        auto_augment=cfg.rand_augment,
        interpolation="bicubic",
        distributed=distributed,
        **common,
    )

    def eval_loader(ds) -> torch.utils.data.DataLoader:
        return create_loader(
            ds,
            input_size=(3, img_size, img_size),
            batch_size=cfg.eval_batch_size,
            is_training=False,
            interpolation="bicubic",
            crop_pct=cfg.crop_pct,
            **common,
        )

    mixup = None
    if cfg.mixup > 0 or cfg.cutmix > 0:
        mixup = Mixup(
            mixup_alpha=cfg.mixup,
            cutmix_alpha=cfg.cutmix,
            prob=cfg.mixup_prob,
            label_smoothing=cfg.smoothing,
            num_classes=num_classes,
        )
    return Loaders(train, eval_loader(sets["holdout"]), eval_loader(sets["test"]), mixup, num_classes)
