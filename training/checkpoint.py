"""The one checkpoint helper: atomic writes, self-describing contents.

A checkpoint holds the search space and the resolved training config it was made with, the
completed epoch count, model/optimiser/scheduler/scaler/EMA states and every RNG state, so a
run resumes exactly and a model rebuilds from its file alone.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search_space.errors import ConfigError
from search_space.space import SearchSpace

FORMAT = "mcunas-checkpoint/1"
TMP_SUFFIX = ".tmp"  # temporaries of atomic writes: .<name>.<random>.tmp


def _atomic(path: Path, write) -> None:
    """Write through a temporary file beside ``path``, then rename: a reader sees the old file or
    the new one, never a part. A failed write (full disk, quota) leaves the old file and no
    temporary behind and is one `ConfigError` line."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as RuntimeError
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0][:120]
        raise ConfigError(
            f"cannot write {path} ({reason}); free disk space or fix the location, then rerun "
            "(the run continues from its last complete checkpoint)"
        ) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def prepare_output(path: str | Path, what: str = "output directory") -> Path:
    """Make sure ``path`` is a writable directory (created if missing) and remove the temporary
    files a killed run left in it; a file in the way or an unwritable place is a `ConfigError`."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a directory; pass a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{what} {path} cannot be written ({exc.strerror}); choose another location"
        ) from None
    for stale in path.glob(f".*{TMP_SUFFIX}"):
        if stale.is_file():
            stale.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> None:
    _atomic(Path(path), lambda fh: fh.write(text.encode()))


def atomic_copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin:
        _atomic(Path(dst), lambda fh: shutil.copyfileobj(fin, fh))


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
    _atomic(Path(path), lambda fh: torch.save(payload, fh))


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
