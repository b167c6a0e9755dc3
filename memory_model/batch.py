"""Vectorised peak SRAM for many subnets at once, and R: the share of a space within budget.

Configs are encoded as arrays (`ConfigBatch`: one row per subnet, per-layer fields padded
with zeros beyond each subnet's depth). `paper_peak_batch` and `mcu_peak_batch` evaluate the
closed forms of the ``paper`` and ``mcu`` schedules (`memory_model.paper`, `memory_model.mcu`)
over all rows and equal the scalar functions exactly, ``mcu`` with its ``input`` option whole or
streamed too (tests check thousands of configs); they
are those schedules' batched forms in the registry (`memory_model.schedules`). Every op's bytes are
non-decreasing in its layer's q/k/v width or MLP width, so the per-layer maximum is taken on
the widest layer, making the cost independent of depth.

R is defined as the probability that a subnet drawn by `SearchSpace.sample` fits the budget.
That sampler draws depth uniformly and then every layer's heads and MLP ratio uniformly, so a
subnet of depth d has probability 1/|depth| * (1/(|heads| |mlp|))^d * 1/(|embed| |patch| ...):
deep subnets are individually less likely. `memory_model.schedules.share_within_budget`
(on the batched forms of this module) computes R exactly by
enumerating every subnet with that weight when the space is small enough, and by Monte Carlo
sampling (with its standard error) otherwise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError
from memory_model.mcu import SUBKERNEL, check_input_mode
from search_space.config import SubnetConfig
from search_space.space import SearchSpace


@dataclass(frozen=True)
class ConfigBatch:
    """Subnets as arrays. Per-layer arrays are (B, max_depth), zero beyond each depth;
    ratios are NaN for dense. Fixed fields are (B,) arrays or scalars (broadcast)."""

    embed_dim: np.ndarray
    depth: np.ndarray
    num_heads: np.ndarray
    mlp_ratio: np.ndarray
    patch_size: np.ndarray
    rank_ratio: np.ndarray
    attn_rank_ratio: np.ndarray
    img_size: np.ndarray | int
    in_chans: np.ndarray | int
    num_classes: np.ndarray | int
    head_dim: np.ndarray | int
    cls_token: np.ndarray | bool  # a class token in the sequence (pool cls and gp)
    qkv_bias: np.ndarray | bool
    cls_head: np.ndarray | bool = True  # the head reads the class token (pool cls; gp/avg: a mean)

    def __len__(self) -> int:
        return len(self.embed_dim)


def _ratio(v: float | None) -> float:
    return np.nan if v is None else v


def encode_configs(configs: list[SubnetConfig]) -> ConfigBatch:
    """Encode a list of `SubnetConfig` (any mix of fixed settings) as arrays."""
    if not configs:
        raise ConfigError("encode_configs needs at least one subnet")
    b, dmax = len(configs), max(c.depth for c in configs)
    heads = np.zeros((b, dmax), np.int64)
    mlp = np.zeros((b, dmax), np.float64)
    for i, c in enumerate(configs):
        heads[i, : c.depth] = c.num_heads
        mlp[i, : c.depth] = c.mlp_ratio
    col = lambda f, dt=np.int64: np.array([f(c) for c in configs], dt)  # noqa: E731
    return ConfigBatch(
        embed_dim=col(lambda c: c.embed_dim),
        depth=col(lambda c: c.depth),
        num_heads=heads,
        mlp_ratio=mlp,
        patch_size=col(lambda c: c.patch_size),
        rank_ratio=col(lambda c: _ratio(c.rank_ratio), np.float64),
        attn_rank_ratio=col(lambda c: _ratio(c.attn_rank_ratio), np.float64),
        img_size=col(lambda c: c.img_size),
        in_chans=col(lambda c: c.in_chans),
        num_classes=col(lambda c: c.num_classes),
        head_dim=col(lambda c: c.head_dim),
        cls_token=col(lambda c: c.has_cls_token, bool),
        qkv_bias=col(lambda c: c.qkv_bias, bool),
        cls_head=col(lambda c: c.pool == "cls", bool),
    )


def _fixed(space: SearchSpace) -> dict:
    return dict(
        img_size=space.img_size,
        in_chans=space.in_chans,
        num_classes=space.num_classes,
        head_dim=space.head_dim,
        cls_token=space.pool != "avg",
        qkv_bias=space.qkv_bias,
        cls_head=space.pool == "cls",
    )


def sample_batch(space: SearchSpace, rng: np.random.Generator, n: int) -> ConfigBatch:
    """``n`` subnets drawn as `SearchSpace.sample` draws them (same distribution, not the
    same random stream), straight into arrays."""
    depths = np.array(space.depth, np.int64)
    depth = depths[rng.integers(len(depths), size=n)]
    dmax = int(depths.max())
    heads = np.array(space.num_heads, np.int64)[rng.integers(len(space.num_heads), size=(n, dmax))]
    mlp = np.array(space.mlp_ratio, np.float64)[rng.integers(len(space.mlp_ratio), size=(n, dmax))]
    beyond = np.arange(dmax)[None, :] >= depth[:, None]
    heads[beyond], mlp[beyond] = 0, 0.0
    pick = lambda vals, dt: np.array(  # noqa: E731
        [_ratio(v) for v in vals] if dt is np.float64 else vals, dt
    )[rng.integers(len(vals), size=n)]
    return ConfigBatch(
        embed_dim=pick(space.embed_dim, np.int64),
        depth=depth,
        num_heads=heads,
        mlp_ratio=mlp,
        patch_size=pick(space.patch_size, np.int64),
        rank_ratio=pick(space.rank_ratio, np.float64),
        attn_rank_ratio=pick(space.attn_rank_ratio, np.float64),
        **_fixed(space),
    )


def enumerate_batch(space: SearchSpace) -> tuple[ConfigBatch, np.ndarray]:
    """Every subnet of ``space`` once, with its probability under `SearchSpace.sample`."""
    per_layer = [(h, m) for h in space.num_heads for m in space.mlp_ratio]
    globals_ = [
        (e, p, r, a)
        for e in space.embed_dim
        for p in space.patch_size
        for r in space.rank_ratio
        for a in space.attn_rank_ratio
    ]
    g = np.array([[e, p, _ratio(r), _ratio(a)] for e, p, r, a in globals_], np.float64)
    layer_h = np.array([h for h, _ in per_layer], np.int64)
    layer_m = np.array([m for _, m in per_layer], np.float64)
    dmax = max(space.depth)
    parts = []
    for d in space.depth:
        n_layers = len(per_layer) ** d
        idx = np.stack(np.unravel_index(np.arange(n_layers), (len(per_layer),) * d), axis=1)
        heads = np.zeros((n_layers, dmax), np.int64)
        mlp = np.zeros((n_layers, dmax), np.float64)
        heads[:, :d], mlp[:, :d] = layer_h[idx], layer_m[idx]
        rows = len(g) * n_layers
        weight = np.full(rows, 1.0 / (len(space.depth) * len(g) * n_layers))
        gi = np.repeat(np.arange(len(g)), n_layers)
        li = np.tile(np.arange(n_layers), len(g))
        parts.append((np.full(rows, d), heads[li], mlp[li], g[gi], weight))
    depth, heads, mlp, gg, weight = (np.concatenate(x) for x in zip(*parts, strict=True))
    batch = ConfigBatch(
        embed_dim=gg[:, 0].astype(np.int64),
        depth=depth.astype(np.int64),
        num_heads=heads,
        mlp_ratio=mlp,
        patch_size=gg[:, 1].astype(np.int64),
        rank_ratio=gg[:, 2],
        attn_rank_ratio=gg[:, 3],
        **_fixed(space),
    )
    return batch, weight


# ---- closed forms ---------------------------------------------------------------------------
def _max(arrays: list[np.ndarray]) -> np.ndarray:
    """Elementwise maximum of broadcastable arrays."""
    return functools.reduce(np.maximum, arrays)


def _col(v: np.ndarray | int | bool, dtype=np.int64) -> np.ndarray:
    """A fixed field as a column (B, 1) array, or a 0-d array when it is a scalar."""
    return np.asarray(v, dtype) if np.ndim(v) == 0 else np.asarray(v, dtype)[:, None]


def _a4(x: np.ndarray) -> np.ndarray:
    return (x + 3) // 4 * 4


def _rank(ratio: np.ndarray, d_in: np.ndarray, d_out: np.ndarray) -> np.ndarray:
    """`low_rank_dim` elementwise; 0 where the ratio is NaN (dense)."""
    r = np.floor(np.nan_to_num(ratio) * np.minimum(d_in, d_out) + 0.5).astype(np.int64)
    return np.where(np.isnan(ratio), 0, np.maximum(r, 1))


def _dims(b: ConfigBatch) -> dict[str, np.ndarray]:
    grid = -(-_col(b.img_size) // b.patch_size[:, None])
    n = grid * grid + _col(b.cls_token)
    e = b.embed_dim[:, None]
    # Every op's bytes are non-decreasing in its layer's q (attention ops) or M (MLP ops), so
    # the max over layers equals the op evaluated at the widest layer (padding is 0).
    q = _col(b.head_dim) * b.num_heads.max(axis=1)[:, None]
    m = np.floor(e * b.mlp_ratio.max(axis=1)[:, None]).astype(np.int64)
    ar, rr = b.attn_rank_ratio[:, None], b.rank_ratio[:, None]
    return dict(
        n=n,
        e=e,
        q=q,
        m=m,
        r_qkv=_rank(ar, e, 3 * q),
        r_proj=_rank(ar, q, e),
        r_fc1=_rank(rr, e, m),
        r_fc2=_rank(rr, m, e),
        lr_attn=~np.isnan(ar),
        lr_mlp=~np.isnan(rr),
    )


def paper_peak_batch(b: ConfigBatch) -> np.ndarray:
    v = _dims(b)
    n, e, q, m = v["n"], v["e"], v["q"], v["m"]

    def term(d_in, d_out, rank, lr):
        dense = d_in * d_out + n * np.maximum(d_in, d_out)
        factors = np.maximum(
            d_in * rank + n * np.maximum(d_in, rank), rank * d_out + n * np.maximum(rank, d_out)
        )
        return np.where(lr, factors, dense)

    per_layer = _max(
        [
            term(e, 3 * q, v["r_qkv"], v["lr_attn"]),
            term(q, e, v["r_proj"], v["lr_attn"]),
            term(e, m, v["r_fc1"], v["lr_mlp"]),
            term(m, e, v["r_fc2"], v["lr_mlp"]),
        ]
    )
    return per_layer[:, 0]


def _mcu_input_bytes(b: ConfigBatch, input: str) -> np.ndarray:
    """The ``mcu`` schedule's input buffer: the whole uint8 image, or with ``input="stream"``
    one row of patches of it (`memory_model.mcu.stream_band_bytes`), as a column."""
    check_input_mode(input)
    img, c_in = _col(b.img_size), _col(b.in_chans)
    if input == "stream":
        return _a4(np.minimum(b.patch_size[:, None], img) * img * c_in)
    return _a4(img * img * c_in)


def mcu_peak_batch(b: ConfigBatch, weights_in_sram: bool, input: str = "whole") -> np.ndarray:
    v = _dims(b)
    n, e, q, m = v["n"], v["e"], v["q"], v["m"]
    s = 1 if weights_in_sram else 0
    d, qkv_bias, c_in = _col(b.head_dim), _col(b.qkv_bias), _col(b.in_chans)
    classes = _col(b.num_classes)
    x = _a4(n * e)
    image = _mcu_input_bytes(b, input)  # the whole image, or one band of it
    k = np.minimum(SUBKERNEL, b.patch_size[:, None])
    patch = image + x + 4 * e + s * (4 * e + _a4(e * c_in * k * k))
    # attention
    lra, lrm = v["lr_attn"], v["lr_mlp"]
    r_qkv, r_proj, r1, r2 = v["r_qkv"], v["r_proj"], v["r_fc1"], v["r_fc2"]
    a_in = np.where(lra, r_qkv, e)
    a_buf, o_buf, qd, sc = _a4(n * a_in), _a4(n * q), _a4(n * d), _a4(n * n)
    w_head = s * (4 * d * qkv_bias + _a4(d * a_in))
    ops = [
        2 * x,  # norm1
        np.where(lra, 2 * x + _a4(r_qkv) + s * _a4(r_qkv * e), 0),
        x + a_buf + o_buf + 2 * qd + w_head,
        x + a_buf + o_buf + 2 * qd + sc + 4 * n,
        x + a_buf + o_buf + qd + sc + w_head,
        np.where(
            lra,
            np.maximum(
                x + o_buf + _a4(r_proj) + s * _a4(r_proj * q), x + o_buf + s * (_a4(e * r_proj) + 4 * e)
            ),
            x + o_buf + s * (_a4(e * q) + 4 * e),
        ),
    ]
    # MLP
    b_buf = _a4(n * np.maximum(e, m))
    fc1_dense = x + b_buf + _a4(m) + s * (_a4(m * e) + 4 * m)
    fc1_lr = np.maximum(x + b_buf + _a4(r1) + s * _a4(r1 * e), x + b_buf + _a4(m) + s * (_a4(m * r1) + 4 * m))
    fc2_dense = x + b_buf + s * (_a4(e * m) + 4 * e)
    fc2_lr = np.maximum(x + b_buf + _a4(r2) + s * _a4(r2 * m), x + _a4(n * r2) + s * (_a4(e * r2) + 4 * e))
    ops += [x + b_buf, np.where(lrm, fc1_lr, fc1_dense), np.where(lrm, fc2_lr, fc2_dense)]
    blocks = _max(ops)[:, 0]
    # head
    p = _a4(e)
    head = p + 4 * classes + s * (_a4(classes * e) + 4 * classes)
    cls = _col(b.cls_head, bool)
    pool = np.where(cls, x + p, np.maximum(x + 4 * e, 4 * e + p))
    rest = np.broadcast_to(_max([image, patch, pool, head]), (len(b), 1))[:, 0]
    return np.maximum(blocks, rest)
