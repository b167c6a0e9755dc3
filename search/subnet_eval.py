"""Fitness of a subnet: top-1 with weights inherited from a trained supernet.

The supernet comes from a training checkpoint (``space``, ``config``, ``model``); its data
section rebuilds the same train/holdout/test split. The search ranks subnets on the holdout
split (never trained on); the test split is only read for final reports. The ViT has no
BatchNorm, so inherited weights need no recalibration.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from search_space.config import SubnetConfig
from search_space.errors import ConfigError
from search_space.space import SearchSpace
from search_space.static import StaticViT
from search_space.supernet import Supernet, extract_subnet
from training.checkpoint import load_checkpoint
from training.config import TrainConfig, load_config
from training.data import build_loaders
from training.engine import evaluate

Batches = list[tuple[torch.Tensor, torch.Tensor]]


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """A `TrainConfig` from its dict form (as stored in checkpoints), validated strictly."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        return load_config(path)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def load_supernet(path: str | Path) -> tuple[Supernet, SearchSpace, TrainConfig]:
    """Supernet (eval mode, EMA weights when the run kept an EMA), its space and its config."""
    ckpt = load_checkpoint(path)
    if ckpt.get("space") is None or "model" not in ckpt:
        raise ConfigError(f"{path} holds a static model, not a supernet; pass a supernet training checkpoint")
    space = SearchSpace.from_dict(ckpt["space"])
    train_cfg = config_from_dict(ckpt["config"])
    supernet = Supernet(space)
    state = ckpt["model"]
    ema = ckpt.get("ema")
    if ema:
        state = {k.removeprefix("module."): v for k, v in ema.items() if k.removeprefix("module.") in state}
    supernet.load_state_dict(state)
    return supernet.eval(), space, train_cfg


class SupernetEvaluator:
    """Top-1 (%) of subnets with inherited weights on the holdout and test splits."""

    def __init__(self, checkpoint: str | Path, device: str = "auto") -> None:
        self.checkpoint = str(checkpoint)
        self.supernet, self.space, self.train_cfg = load_supernet(checkpoint)
        self.device = resolve_device(device)
        self.supernet.to(self.device)
        self._batches: dict[str, Batches] = {}

    def _split(self, name: str) -> Batches:
        """One split's batches, decoded once and kept in memory (the search reads it often)."""
        if name not in self._batches:
            loaders = build_loaders(self.train_cfg.data, self.space.img_size, self.space.num_classes)
            self._batches[name] = [(x, y) for x, y in getattr(loaders, name)]
        return self._batches[name]

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
