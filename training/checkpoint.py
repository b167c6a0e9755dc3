"""The one checkpoint helper: atomic writes, self-describing contents.

A checkpoint holds the search space and the resolved training config it was made with, the
completed epoch count, model/optimiser/scheduler/scaler/EMA states and every RNG state, so a
run resumes exactly and a model rebuilds from its file alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from common.errors import ConfigError
from common.files import atomic_write
from search_space.space import SearchSpace

if TYPE_CHECKING:
    from search_space.supernet import Supernet
    from training.config import TrainConfig

FORMAT = "mcunas-checkpoint/1"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | Path, *, space: SearchSpace | None, config: dict, epoch: int, **states: Any
) -> None:
    """Write a checkpoint atomically. ``states`` holds model/optimizer/... state dicts and, for
    a static model, what it is (e.g. ``subnet=cfg.to_dict()`` or ``baseline=name``)."""
    payload = {
        "format": FORMAT,
        "space": None if space is None else space.to_dict(),
        "config": config,
        "epoch": epoch,
        "rng": rng_state(),
    }
    payload.update(states)
    atomic_write(Path(path), lambda fh: torch.save(payload, fh))


def load_checkpoint(path: str | Path, space: SearchSpace | None = None) -> dict[str, Any]:
    """Read a checkpoint; with ``space``, refuse one trained on a different space."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"checkpoint {path} is a directory; pass the checkpoint file (e.g. {path}/checkpoint.pth)"
        )
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # any unreadable file is a user error here
        raise ConfigError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}); is it a checkpoint file?"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a checkpoint of this project (format {FORMAT})")
    if space is not None:
        if ckpt.get("space") is None:
            raise ConfigError(
                f"checkpoint {path} holds a static model, not a supernet of space '{space.name}'"
            )
        theirs = SearchSpace.from_dict(ckpt["space"])
        if _without_name(theirs) != _without_name(space):
            diff = next(k for k, v in space.to_dict().items() if theirs.to_dict().get(k) != v and k != "name")
            raise ConfigError(
                f"checkpoint {path} belongs to another search space ('{theirs.name}', {diff}="
                f"{theirs.to_dict()[diff]} vs {space.to_dict()[diff]}); use that space or a new output directory"
            )
    return ckpt


def _without_name(space: SearchSpace) -> dict:
    d = space.to_dict()
    d.pop("name")
    return d


def space_from_checkpoint(ckpt: dict[str, Any]) -> SearchSpace:
    return SearchSpace.from_dict(ckpt["space"])


@dataclass
class TrainedSupernet:
    """A supernet rebuilt from its checkpoint (in eval mode), with what it was trained on."""

    model: Supernet
    space: SearchSpace
    config: TrainConfig
    epoch: int


def load_supernet(
    path: str | Path,
    space: SearchSpace | None = None,
    *,
    ema: bool = True,
    device: str | torch.device = "cpu",
) -> TrainedSupernet:
    """The one way to load a supernet checkpoint: its space and config come from the file (with
    ``space``, one of another space is refused); ``ema`` takes the EMA weights when the run kept
    an EMA (the weights it evaluated with)."""
    from search_space.supernet import Supernet
    from training.config import config_from_dict

    ckpt = load_checkpoint(path, space)
    if ckpt.get("space") is None or "model" not in ckpt:
        raise ConfigError(f"{path} holds a static model, not a supernet; pass a supernet training checkpoint")
    space = space_from_checkpoint(ckpt)
    state = ckpt["model"]
    if ema and ckpt.get("ema"):  # ModelEmaV3 keys: "module." + the model's own
        state = {k.removeprefix("module."): v for k, v in ckpt["ema"].items() if k.startswith("module.")}
    model = Supernet(space)
    model.load_state_dict(state)
    return TrainedSupernet(model.to(device).eval(), space, config_from_dict(ckpt["config"]), ckpt["epoch"])
