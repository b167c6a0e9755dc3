"""Fitness of a subnet: top-1 with weights inherited from a trained supernet.

The supernet comes from a training checkpoint (``space``, ``config``, ``model``); its data
section rebuilds the same train/holdout/test split. The search ranks subnets on the holdout
split (never trained on); the test split is only read for final reports. The ViT has no
BatchNorm, so inherited weights need no recalibration.

Under torchrun (``WORLD_SIZE`` > 1) every rank loads the supernet and the whole holdout split,
joins one process group (gloo on CPU, NCCL on CUDA, one GPU per rank) and evaluates its share
of each generation's candidates (`search.subnet.evolution.evaluate_all`: candidates
``rank::world``); the scores are gathered on every rank, so each rank runs the same search.
A candidate's top-1 is computed exactly as in one process, hence the same generations.

A split is decoded once and kept in host memory as uint8 pixels (after the eval loader's
resize and centre crop), a quarter of its float32 size. Each batch is normalised on the
evaluation device through a (channel, pixel level) -> float table that the loader's own
to-tensor and normalisation steps compute, so the floats are bit-identical to the loader's.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timm.data.transforms import MaybePILToTensor, MaybeToTensor
from torchvision import transforms

from common.errors import ConfigError
from search_space.config import SubnetConfig
from search_space.static import StaticViT
from search_space.supernet import extract_subnet
from training.checkpoint import load_supernet
from training.data import build_loaders
from training.distributed import DistInfo, barrier, cleanup, init_distributed
from training.engine import evaluate

PIXEL_LEVELS = 256


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def _label_dtype(num_classes: int) -> torch.dtype:
    """The narrowest integer dtype that holds every class index."""
    return torch.uint8 if num_classes <= 256 else torch.int16 if num_classes <= 2**15 else torch.int32


class CachedSplit:
    """One eval split's batches as uint8 pixels in host memory, yielded normalised on ``device``.

    ``loader`` is a fresh eval loader of `training.data.build_loaders`; its transform ends in
    ``MaybeToTensor, Normalize``, which is replaced by a uint8 ``MaybePILToTensor`` for the cache.
    Those two steps act on each pixel alone (``v / 255``, then ``(x - mean) / std`` per channel),
    so applying them to the 256 levels of every channel gives a table of exactly the floats the
    loader yields; normalising a batch is a lookup in that table.
    """

    def __init__(self, loader: torch.utils.data.DataLoader, num_classes: int, device: torch.device) -> None:
        dataset = loader.dataset
        compose = getattr(dataset, "transform", None)
        steps = list(getattr(compose, "transforms", []))
        if (
            len(steps) < 2
            or type(steps[-2]) is not MaybeToTensor
            or type(steps[-1]) is not transforms.Normalize
        ):
            raise TypeError(f"expected an eval transform ending in MaybeToTensor, Normalize, got {compose}")
        self.lut = self._table(transforms.Compose(steps[-2:])).to(device)
        self.device = device
        dataset.transform = transforms.Compose([*steps[:-2], MaybePILToTensor()])
        labels_dtype = _label_dtype(num_classes)
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []
        for x, y in loader:
            if x.dtype != torch.uint8:
                raise TypeError(f"the eval split's images decode to {x.dtype}, not uint8 pixels")
            self.batches.append((x, y.to(labels_dtype)))

    @staticmethod
    def _table(to_float: transforms.Compose) -> torch.Tensor:
        """(3, 256) float table: ``to_float`` of an RGB image holding every level in every channel."""
        levels = np.arange(PIXEL_LEVELS, dtype=np.uint8)
        image = Image.fromarray(np.repeat(levels[None, :, None], 3, axis=2))  # 1 x 256 RGB
        return to_float(image).reshape(3, PIXEL_LEVELS)

    @property
    def nbytes(self) -> int:
        """Host memory held by the cached images and labels."""
        return sum(x.nbytes + y.nbytes for x, y in self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> the loader's normalised float batch, on ``self.device``."""
        x = x.to(self.device)
        out = torch.empty(x.shape, dtype=self.lut.dtype, device=self.device)
        for c in range(x.shape[1]):
            out[:, c] = self.lut[c][x[:, c].long()]
        return out

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.batches:
            yield self.normalize(x), y.to(self.device).long()


class SupernetEvaluator:
    """Top-1 (%) of subnets with inherited weights on the holdout and test splits."""

    def __init__(self, checkpoint: str | Path, device: str = "auto") -> None:
        self.checkpoint = str(checkpoint)
        self.device = resolve_device(device)
        self.dist = DistInfo()
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: each rank evaluates a share
            self.dist = init_distributed(self.device.type)
            self.device = self.dist.device
            atexit.register(cleanup, self.dist)
            if not self.dist.is_main:  # one rank reports
                logging.getLogger("mcunas").setLevel(logging.WARNING)
        loaded = load_supernet(checkpoint, device=self.device)
        self.supernet, self.space, self.train_cfg = loaded.model, loaded.space, loaded.config
        self._splits: dict[str, CachedSplit] = {}

    @property
    def is_main(self) -> bool:
        """Whether this process writes the outputs (rank 0, or the only process)."""
        return self.dist.is_main

    def barrier(self) -> None:
        """Wait for every rank (nothing without torchrun)."""
        barrier(self.dist)

    def _split(self, name: str) -> CachedSplit:
        """One split, decoded once and kept in memory as uint8 pixels (the search reads it often)."""
        if name not in self._splits:
            loaders = build_loaders(self.train_cfg.data, self.space.img_size, self.space.num_classes)
            self._splits[name] = CachedSplit(getattr(loaders, name), self.space.num_classes, self.device)
        return self._splits[name]

    def top1(self, cfg: SubnetConfig, split: str = "holdout") -> float:
        if split not in ("holdout", "test"):
            raise ConfigError(f"split must be 'holdout' or 'test', got {split!r}")
        if not self.space.contains(cfg):
            raise ConfigError(
                f"subnet {cfg.short()} is outside the supernet's space: {self.space.violation(cfg)}"
            )
        return evaluate(self.supernet, self._split(split), {"subnet": cfg}, self.device)["subnet"]

    def holdout_top1(self, cfg: SubnetConfig) -> float:
        """The search's fitness."""
        return self.top1(cfg, "holdout")

    def test_top1(self, cfg: SubnetConfig) -> float:
        """For the final report only."""
        return self.top1(cfg, "test")

    def extract(self, cfg: SubnetConfig) -> StaticViT:
        """The subnet as a standalone model holding copies of its inherited weights."""
        return extract_subnet(self.supernet, cfg).cpu().eval()
