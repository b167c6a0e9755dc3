"""`SearchSpace`: the choice lists of every axis, loaded strictly from YAML.

Subnet axes (sampled per subnet): embed dim, depth, per-layer heads and MLP ratio. Memory
axes: ``rank_ratio`` and ``patch_size`` may hold one value (MCUFormer: one supernet per space
point, moved by space evolution) or several (sampled per subnet like the other axes).
Every random function takes an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ConfigError
from common.strict_yaml import read_yaml
from search_space.config import ACTS, POOLS, SubnetConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
SPACE_DIR = CONFIG_DIR / "spaces"
# Axes that hold choice lists; the rest of the fields are fixed model settings.
CHOICE_AXES = ("embed_dim", "depth", "num_heads", "mlp_ratio", "rank_ratio", "attn_rank_ratio", "patch_size")


def _choices(name: str, value: Any, kind: type, allow_null: bool = False) -> tuple:
    """Validate one choice list; scalars become one-element lists."""
    if value is None:
        if allow_null:
            return (None,)
        raise ConfigError(f"space field '{name}' must not be null")
    if not isinstance(value, (list, tuple)):
        value = [value]
    if len(value) == 0:
        raise ConfigError(f"space field '{name}' is an empty list; give at least one choice")
    out = []
    for v in value:
        if v is None and allow_null:
            out.append(None)
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"space field '{name}' has a non-numeric choice {v!r}")
        if kind is int and (not isinstance(v, int) and not float(v).is_integer()):
            raise ConfigError(f"space field '{name}' needs integer choices, got {v!r}")
        if v <= 0:
            raise ConfigError(f"space field '{name}' needs positive choices, got {v!r}")
        out.append(kind(v))
    if len(set(out)) != len(out):
        raise ConfigError(f"space field '{name}' lists a choice twice: {value}")
    return tuple(sorted(out, key=lambda x: -1 if x is None else x))


@dataclass(frozen=True)
class SearchSpace:
    """Choice lists per axis plus the fixed model settings shared by all subnets."""

    embed_dim: tuple[int, ...]
    depth: tuple[int, ...]
    num_heads: tuple[int, ...]
    mlp_ratio: tuple[float, ...]
    patch_size: tuple[int, ...]
    rank_ratio: tuple[float | None, ...] = (None,)
    attn_rank_ratio: tuple[float | None, ...] = (None,)
    img_size: int = 224
    num_classes: int = 1000
    in_chans: int = 3
    head_dim: int = 64
    pool: str = "cls"
    abs_pos: bool = True
    rel_pos: bool = False
    rel_pos_max_distance: int = 14
    qkv_bias: bool = True
    act: str = "gelu"
    name: str = "space"

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("embed_dim", _choices("embed_dim", self.embed_dim, int))
        set_("depth", _choices("depth", self.depth, int))
        set_("num_heads", _choices("num_heads", self.num_heads, int))
        set_("mlp_ratio", _choices("mlp_ratio", self.mlp_ratio, float))
        set_("patch_size", _choices("patch_size", self.patch_size, int))
        for axis in ("rank_ratio", "attn_rank_ratio"):
            values = _choices(axis, getattr(self, axis), float, allow_null=True)
            if None in values and len(values) > 1:
                raise ConfigError(f"space field '{axis}' mixes null (dense) with ratios; pick one")
            if any(v is not None and v > 1 for v in values):
                raise ConfigError(f"space field '{axis}' ratios must be in (0, 1]")
            set_(axis, values)
        for name in ("img_size", "num_classes", "in_chans", "head_dim", "rel_pos_max_distance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"space field '{name}' must be a positive integer, got {value!r}")
        for name in ("abs_pos", "rel_pos", "qkv_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"space field '{name}' must be true or false, got {getattr(self, name)!r}")
        if self.pool not in POOLS:
            raise ConfigError(f"space field 'pool' must be one of {POOLS}, got {self.pool!r}")
        if self.act not in ACTS:
            raise ConfigError(f"space field 'act' must be one of {ACTS}, got {self.act!r}")
        if max(self.patch_size) > self.img_size:
            raise ConfigError(
                f"space field 'patch_size': {max(self.patch_size)} exceeds img_size {self.img_size}"
            )
        # Building the extreme configs validates the fixed settings as a SubnetConfig does.
        self.min_config()
        self.max_config()

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSpace:
        if not isinstance(d, dict):
            raise ConfigError(f"a search space must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown space field '{unknown[0]}'; valid fields: {', '.join(sorted(known))}")
        for required in ("embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size"):
            if required not in d:
                raise ConfigError(f"space field '{required}' is missing")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        path = Path(path)
        data = read_yaml(path, "space")
        if isinstance(data, dict) and "name" not in data:
            data = {**data, "name": path.stem}
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def replace(self, **changes: Any) -> SearchSpace:
        """A new space with some fields changed (e.g. one space point of the memory axes)."""
        return dataclasses.replace(self, **changes)

    @property
    def fixed(self) -> dict[str, Any]:
        """The model settings every subnet of this space shares."""
        names = ("img_size", "num_classes", "in_chans", "head_dim", "pool", "abs_pos", "rel_pos")
        out = {n: getattr(self, n) for n in names}
        out.update(rel_pos_max_distance=self.rel_pos_max_distance, qkv_bias=self.qkv_bias, act=self.act)
        return out

    def _make(self, **axes: Any) -> SubnetConfig:
        return SubnetConfig(**axes, **self.fixed)

    # ---- extremes -----------------------------------------------------------------------
    def max_config(self) -> SubnetConfig:
        d = max(self.depth)
        return self._make(
            embed_dim=max(self.embed_dim),
            depth=d,
            num_heads=(max(self.num_heads),) * d,
            mlp_ratio=(max(self.mlp_ratio),) * d,
            patch_size=min(self.patch_size),  # most tokens
            rank_ratio=self.rank_ratio[-1],
            attn_rank_ratio=self.attn_rank_ratio[-1],
        )

    def min_config(self) -> SubnetConfig:
        d = min(self.depth)
        return self._make(
            embed_dim=min(self.embed_dim),
            depth=d,
            num_heads=(min(self.num_heads),) * d,
            mlp_ratio=(min(self.mlp_ratio),) * d,
            patch_size=max(self.patch_size),  # fewest tokens
            rank_ratio=self.rank_ratio[0],
            attn_rank_ratio=self.attn_rank_ratio[0],
        )

    # ---- membership ---------------------------------------------------------------------
    def contains(self, cfg: SubnetConfig) -> bool:
        """True when every axis of ``cfg`` is one of this space's choices."""
        return self.violation(cfg) is None

    def violation(self, cfg: SubnetConfig) -> str | None:
        """The first reason ``cfg`` is outside this space, or None."""
        for name, value in self.fixed.items():
            if getattr(cfg, name) != value:
                return f"{name}={getattr(cfg, name)!r} but the space has {value!r}"
        for name in ("embed_dim", "depth", "patch_size", "rank_ratio", "attn_rank_ratio"):
            if getattr(cfg, name) not in getattr(self, name):
                return f"{name}={getattr(cfg, name)!r} is not among {list(getattr(self, name))}"
        for name in ("num_heads", "mlp_ratio"):
            for i, v in enumerate(getattr(cfg, name)):
                if v not in getattr(self, name):
                    return f"{name}[{i}]={v!r} is not among {list(getattr(self, name))}"
        return None

    # ---- sampling -----------------------------------------------------------------------
    @staticmethod
    def _pick(rng: np.random.Generator, choices: tuple) -> Any:
        return choices[int(rng.integers(len(choices)))]

    def sample(self, rng: np.random.Generator) -> SubnetConfig:
        """A uniformly random subnet (each axis and layer drawn independently)."""
        d = self._pick(rng, self.depth)
        return self._make(
            embed_dim=self._pick(rng, self.embed_dim),
            depth=d,
            num_heads=tuple(self._pick(rng, self.num_heads) for _ in range(d)),
            mlp_ratio=tuple(self._pick(rng, self.mlp_ratio) for _ in range(d)),
            patch_size=self._pick(rng, self.patch_size),
            rank_ratio=self._pick(rng, self.rank_ratio),
            attn_rank_ratio=self._pick(rng, self.attn_rank_ratio),
        )

    def mutate(
        self,
        cfg: SubnetConfig,
        rng: np.random.Generator,
        *,
        prob: float = 0.4,
        layer_prob: float = 0.2,
    ) -> SubnetConfig:
        """AutoFormer's mutation: depth, embed dim (and the memory axes) resampled with
        ``prob``; each layer's heads and MLP ratio with ``layer_prob``. New layers added by a
        deeper depth are drawn at random."""
        depth = self._pick(rng, self.depth) if rng.random() < prob else cfg.depth
        embed = self._pick(rng, self.embed_dim) if rng.random() < prob else cfg.embed_dim
        patch = self._pick(rng, self.patch_size) if rng.random() < prob else cfg.patch_size
        rank = self._pick(rng, self.rank_ratio) if rng.random() < prob else cfg.rank_ratio
        arank = self._pick(rng, self.attn_rank_ratio) if rng.random() < prob else cfg.attn_rank_ratio
        heads, mlps = [], []
        for i in range(depth):
            h = cfg.num_heads[i] if i < cfg.depth else self._pick(rng, self.num_heads)
            m = cfg.mlp_ratio[i] if i < cfg.depth else self._pick(rng, self.mlp_ratio)
            heads.append(self._pick(rng, self.num_heads) if rng.random() < layer_prob else h)
            mlps.append(self._pick(rng, self.mlp_ratio) if rng.random() < layer_prob else m)
        return self._make(
            embed_dim=embed,
            depth=depth,
            num_heads=tuple(heads),
            mlp_ratio=tuple(mlps),
            patch_size=patch,
            rank_ratio=rank,
            attn_rank_ratio=arank,
        )

    def crossover(self, a: SubnetConfig, b: SubnetConfig, rng: np.random.Generator) -> SubnetConfig:
        """Gene-by-gene crossover. Depth comes from one parent; each layer's genes from a
        random parent that has that layer (same-depth parents give AutoFormer's crossover)."""
        pick = lambda x, y: x if rng.random() < 0.5 else y  # noqa: E731
        depth = pick(a.depth, b.depth)
        heads, mlps = [], []
        for i in range(depth):
            parents = [p for p in (a, b) if i < p.depth]
            heads.append(parents[int(rng.integers(len(parents)))].num_heads[i])
            mlps.append(parents[int(rng.integers(len(parents)))].mlp_ratio[i])
        return self._make(
            embed_dim=pick(a.embed_dim, b.embed_dim),
            depth=depth,
            num_heads=tuple(heads),
            mlp_ratio=tuple(mlps),
            patch_size=pick(a.patch_size, b.patch_size),
            rank_ratio=pick(a.rank_ratio, b.rank_ratio),
            attn_rank_ratio=pick(a.attn_rank_ratio, b.attn_rank_ratio),
        )

    # ---- size ---------------------------------------------------------------------------
    def num_subnets(self) -> int:
        """Exact number of distinct subnets in the space."""
        per_layer = len(self.num_heads) * len(self.mlp_ratio)
        layers = sum(per_layer**d for d in self.depth)
        return (
            len(self.embed_dim)
            * layers
            * len(self.patch_size)
            * len(self.rank_ratio)
            * len(self.attn_rank_ratio)
        )


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A preset by name (``configs/spaces/<name>.yaml``) or a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return SearchSpace.from_yaml(path)
    preset = SPACE_DIR / f"{name_or_path}.yaml"
    if not preset.is_file():
        names = sorted(p.stem for p in SPACE_DIR.glob("*.yaml"))
        raise ConfigError(f"no space preset '{name_or_path}'; choose one of {names} or give a YAML path")
    return SearchSpace.from_yaml(preset)
