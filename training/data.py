"""Datasets and loaders through timm, with a held-out split for the search on every dataset.

Splits: ``train`` (trained on), ``holdout`` (never trained on; the search ranks subnets on
it) and ``test`` (final reports only).

* ``digits`` (embedded default): scikit-learn's digits written once as an image folder
  ``<cache_dir>/digits-<px>/{train,holdout,test}/<class>/*.png`` with the fixed splits of
  `training.digits`, then read by timm's image-folder reader like any image folder.
* ``folder`` (e.g. ImageNet): ``<root>/train`` and ``<root>/val``; the holdout is
  ``holdout_per_class`` images per class taken out of ``train`` by a fixed seed, and ``val``
  is the test split.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timm.data import ImageDataset, Mixup, create_loader

from common.errors import ConfigError
from training.config import DataCfg
from training.digits import load_digits_split

SPLITS = ("train", "holdout", "test")
log = logging.getLogger("mcunas.train")


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


class CorruptImageError(ConfigError):
    """An image of the dataset cannot be decoded."""


class CheckedImageDataset(ImageDataset):
    """timm's image-folder dataset, except that an image that cannot be decoded is an error naming
    the file: timm logs it and serves the next image instead, which in an evaluation counts a
    neighbour twice. With ``skip_corrupt`` (training only, when asked) such an image is replaced
    by the next readable one and counted in the log."""

    def __init__(self, root: Path, split: str, skip_corrupt: bool = False) -> None:
        try:
            super().__init__(str(root / split))
        except RuntimeError:  # timm: "Found 0 images in subfolders of ..."
            raise ConfigError(
                f"{root / split} holds no images; expected {root / split}/<class>/<image>"
            ) from None
        self.split, self.skip_corrupt, self.skipped = split, skip_corrupt, 0

    def __getitem__(self, index: int) -> tuple[object, int]:
        for _ in range(len(self.reader)):
            img, target = self.reader[index][:2]
            try:
                img = Image.open(img).convert(self.input_img_mode)  # decodes every pixel
                break
            except OSError as exc:  # PIL's UnidentifiedImageError and truncated data included
                name = self.reader.filename(index, absolute=True)
                if not self.skip_corrupt:
                    raise CorruptImageError(
                        f"image {name} cannot be decoded ({exc}); remove or replace it"
                        + (" (or set data.skip_corrupt=true to skip it)" if self.split == "train" else "")
                    ) from None
                self.skipped += 1
                log.warning(
                    "skipped corrupt training image %s (%d so far in this process)", name, self.skipped
                )
                index = (index + 1) % len(self.reader)
        else:
            raise CorruptImageError(f"no image of {self.reader.root} can be decoded")
        if self.transform is not None:
            img = self.transform(img)
        return img, target


def build_datasets(cfg: DataCfg, img_size: int) -> dict[str, object]:
    """train / holdout / test datasets (timm's image-folder reader)."""
    if cfg.dataset == "digits":
        root = prepare_digits(cfg.cache_dir, img_size)
        return {s: CheckedImageDataset(root, s, cfg.skip_corrupt and s == "train") for s in SPLITS}
    root = Path(cfg.root or "")
    for sub in ("train", "val"):
        if not (root / sub).is_dir():
            raise ConfigError(
                f"data.root {root} has no '{sub}' folder; expected an ImageNet-style <root>/{sub}/<class>/"
            )
    train = CheckedImageDataset(root, "train", cfg.skip_corrupt)
    holdout = CheckedImageDataset(root, "train")
    test = CheckedImageDataset(root, "val")
    if test.reader.class_to_idx != train.reader.class_to_idx:
        odd = sorted(set(test.reader.class_to_idx) ^ set(train.reader.class_to_idx)) or ["(order)"]
        raise ConfigError(
            f"data.root {root}: train/ and val/ hold different class folders ('{odd[0]}' is in one only); "
            "both need the same <class>/ folders"
        )
    targets = [t for _, t in train.reader.samples]
    counts = np.bincount(targets, minlength=len(train.reader.class_to_idx))
    if cfg.holdout_per_class >= counts.min():
        smallest = list(train.reader.class_to_idx)[int(counts.argmin())]
        raise ConfigError(
            f"data.holdout_per_class={cfg.holdout_per_class} leaves no training image of class '{smallest}' "
            f"({counts.min()} images in train/); lower it"
        )
    held = set(_holdout_indices(targets, cfg.holdout_per_class).tolist())
    holdout.reader.samples = [s for i, s in enumerate(holdout.reader.samples) if i in held]
    train.reader.samples = [s for i, s in enumerate(train.reader.samples) if i not in held]
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

    if len(train) == 0:  # timm drops the last partial batch when training
        raise ConfigError(
            f"the training split has {len(sets['train'])} images, fewer than one batch of "
            f"data.batch_size={cfg.batch_size} per process; lower data.batch_size"
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
