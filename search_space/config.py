"""`SubnetConfig`: one vision transformer of the search space, as a frozen, hashable value.

A subnet is an AutoFormer-style ViT: one embedding width shared by all layers, a depth, and
per-layer heads and MLP ratios, plus MCUFormer's two memory axes: the low-rank ratio of the
factorised block linears and the patch size (which sets the token count).

Conventions (shared by the supernet, the static model, counting and the memory model):

* q/k/v width of a layer = ``head_dim`` (64) x heads; MLP hidden width = ``int(E * ratio)``.
* A factorised linear ``W ~= U V^T`` with ``d_in -> r -> d_out`` has rank
  ``r = max(1, floor(ratio * min(d_in, d_out) + 0.5))`` (see :func:`low_rank_dim`), so the
  rank follows the *active* dims and ratio 1.0 is an exact (full-rank) factorisation.
* By default only the MLP (fc1, fc2) is factorised (``rank_ratio``); the attention linears
  (qkv, proj) are factorised only when ``attn_rank_ratio`` is set. ``None`` means dense.
* Tokens: the image is zero-padded on the bottom/right to a multiple of the patch size, so
  the grid is ``ceil(img_size / patch_size)`` per side (240 px / patch 28 -> 9x9 = 81).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from common.errors import ConfigError

POOLS = ("cls", "avg", "gp")  # class token | mean of patch tokens | class token kept, mean read
ACTS = ("gelu", "gelu_sigmoid", "relu")  # exact GELU, x*sigmoid(1.702x), ReLU
QKV_INITS = ("trunc_normal", "lecun")  # search_space.static.init_qkv_: timm std 0.02 | fan_in^-1/2


def low_rank_dim(ratio: float, d_in: int, d_out: int) -> int:
    """Rank of a factorised ``d_in -> d_out`` linear at ``ratio`` (1.0 = full rank)."""
    return max(1, math.floor(ratio * min(d_in, d_out) + 0.5))


def _require(cond: bool, field: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"subnet field '{field}': {msg}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


@dataclass(frozen=True)
class SubnetConfig:
    """One subnet. Per-layer fields are tuples of length ``depth``."""

    embed_dim: int  # width shared by all layers
    depth: int  # number of transformer blocks
    num_heads: tuple[int, ...]  # heads per layer; q/k/v width = head_dim * heads
    mlp_ratio: tuple[float, ...]  # MLP hidden = int(embed_dim * ratio) per layer
    patch_size: int  # square patches; sets the token count
    img_size: int = 224  # square input, pixels
    num_classes: int = 1000
    in_chans: int = 3
    rank_ratio: float | None = None  # low-rank ratio of fc1/fc2; None = dense MLP
    attn_rank_ratio: float | None = None  # low-rank ratio of qkv/proj; None = dense
    head_dim: int = 64
    # "cls": the head reads the class token; "avg": mean of the patch tokens (no class token);
    # "gp" (AutoFormer's --gp): a class token is kept, the head reads the mean of the patch tokens
    pool: str = "cls"
    abs_pos: bool = True  # learned absolute position embedding
    rel_pos: bool = False  # AutoFormer's 2-D relative position on k and v
    rel_pos_max_distance: int = 14
    qkv_bias: bool = True
    act: str = "gelu"  # MLP activation: gelu | gelu_sigmoid (TFLM/int8-friendly) | relu

    def __post_init__(self) -> None:
        # Normalise lists (e.g. from YAML) to tuples so the config stays hashable.
        for name in ("num_heads", "mlp_ratio"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if _is_int(self.num_heads):
            object.__setattr__(self, "num_heads", (self.num_heads,) * max(self.depth, 0))
        if _is_num(self.mlp_ratio):
            object.__setattr__(self, "mlp_ratio", (self.mlp_ratio,) * max(self.depth, 0))
        mlp = tuple(float(r) if _is_num(r) else r for r in self.mlp_ratio)
        object.__setattr__(self, "mlp_ratio", mlp)
        for name in ("rank_ratio", "attn_rank_ratio"):
            value = getattr(self, name)
            if _is_num(value):
                object.__setattr__(self, name, float(value))
        self._validate()

    def _validate(self) -> None:
        for name in ("embed_dim", "depth", "patch_size", "img_size", "num_classes"):
            value = getattr(self, name)
            _require(_is_int(value) and value > 0, name, f"must be a positive integer, got {value!r}")
        for name in ("in_chans", "head_dim", "rel_pos_max_distance"):
            value = getattr(self, name)
            _require(_is_int(value) and value > 0, name, f"must be a positive integer, got {value!r}")
        _require(isinstance(self.num_heads, tuple), "num_heads", "must be a list of integers")
        _require(isinstance(self.mlp_ratio, tuple), "mlp_ratio", "must be a list of numbers")
        _require(
            len(self.num_heads) == self.depth,
            "num_heads",
            f"has {len(self.num_heads)} entries but depth is {self.depth}",
        )
        _require(
            len(self.mlp_ratio) == self.depth,
            "mlp_ratio",
            f"has {len(self.mlp_ratio)} entries but depth is {self.depth}",
        )
        for h in self.num_heads:
            _require(_is_int(h) and h > 0, "num_heads", f"entries must be positive integers, got {h!r}")
        for r in self.mlp_ratio:
            _require(_is_num(r) and r > 0, "mlp_ratio", f"entries must be positive numbers, got {r!r}")
            _require(int(self.embed_dim * r) >= 1, "mlp_ratio", f"{r} gives an empty MLP")
        for name in ("rank_ratio", "attn_rank_ratio"):
            value = getattr(self, name)
            _require(
                value is None or (_is_num(value) and 0 < value <= 1),
                name,
                f"must be in (0, 1] or null for dense, got {value!r}",
            )
        _require(self.pool in POOLS, "pool", f"must be one of {POOLS}, got {self.pool!r}")
        _require(self.act in ACTS, "act", f"must be one of {ACTS}, got {self.act!r}")
        _require(
            self.patch_size <= self.img_size,
            "patch_size",
            f"{self.patch_size} is larger than img_size {self.img_size}",
        )
        for name in ("abs_pos", "rel_pos", "qkv_bias"):
            value = getattr(self, name)
            _require(isinstance(value, bool), name, f"must be true or false, got {value!r}")

    # ---- derived quantities -------------------------------------------------------------
    @property
    def grid_size(self) -> int:
        """Patches per side (input zero-padded to a multiple of the patch size)."""
        return -(-self.img_size // self.patch_size)

    @property
    def padded_img_size(self) -> int:
        return self.grid_size * self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def has_cls_token(self) -> bool:
        """Whether the sequence carries a class token (``cls`` and ``gp``)."""
        return self.pool != "avg"

    @property
    def mean_pool(self) -> bool:
        """Whether the head reads the mean of the patch tokens (``avg`` and ``gp``)."""
        return self.pool != "cls"

    @property
    def num_tokens(self) -> int:
        """Sequence length inside the blocks (patches plus the class token if used)."""
        return self.num_patches + int(self.has_cls_token)

    def qkv_dim(self, layer: int) -> int:
        return self.head_dim * self.num_heads[layer]

    def mlp_hidden(self, layer: int) -> int:
        return int(self.embed_dim * self.mlp_ratio[layer])

    def linear_rank(self, kind: str, layer: int) -> int | None:
        """Rank of block linear ``kind`` ('qkv', 'proj', 'fc1', 'fc2'); None when dense."""
        e, q, m = self.embed_dim, self.qkv_dim(layer), self.mlp_hidden(layer)
        dims = {"qkv": (e, 3 * q), "proj": (q, e), "fc1": (e, m), "fc2": (m, e)}
        if kind not in dims:
            raise KeyError(kind)
        ratio = self.attn_rank_ratio if kind in ("qkv", "proj") else self.rank_ratio
        return None if ratio is None else low_rank_dim(ratio, *dims[kind])

    # ---- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-friendly dict (tuples become lists)."""
        d = asdict(self)
        d["num_heads"] = list(self.num_heads)
        d["mlp_ratio"] = list(self.mlp_ratio)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubnetConfig:
        """Build from a dict; unknown keys are an error naming the key."""
        if not isinstance(d, dict):
            raise ConfigError(f"a subnet must be a mapping of fields, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"unknown subnet field '{unknown[0]}'; valid fields: {', '.join(sorted(known))}"
            )
        missing = [n for n in ("embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size") if n not in d]
        if missing:
            raise ConfigError(f"subnet field '{missing[0]}' is missing")
        return cls(**d)

    def digest(self) -> str:
        """A stable hex digest of the config (same in every process, unlike ``hash``)."""
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def short(self) -> str:
        """Compact human-readable description for logs."""
        rank = "dense" if self.rank_ratio is None else f"r{self.rank_ratio:g}"
        return (
            f"E{self.embed_dim} D{self.depth} H{''.join(map(str, self.num_heads))} "
            f"M{'/'.join(f'{r:g}' for r in self.mlp_ratio)} P{self.patch_size} {rank}"
        )
