"""The weight-sharing ViT supernet over a `SearchSpace`.

All subnets share the full-size weights of the space's max config. ``set_active(cfg)`` is the
only mutable state; ``active_state_dict(cfg)`` returns the sliced tensors under `StaticViT`
names, and :func:`extract_subnet` turns them into a standalone model with equal outputs.
"""

from __future__ import annotations

import torch
from timm.layers import DropPath, resample_abs_pos_embed
from torch import nn

from common.errors import ConfigError
from search_space.config import SubnetConfig, low_rank_dim
from search_space.modules import (
    Params,
    SuperAttention,
    SuperLayerNorm,
    SuperLinear,
    SuperMlp,
    SuperPatchEmbed,
)
from search_space.space import SearchSpace
from search_space.static import LN_EPS, StaticViT, make_act, pool_tokens


def _max_rank(ratios: tuple[float | None, ...], d_in: int, d_out: int) -> int | None:
    return None if ratios[-1] is None else low_rank_dim(ratios[-1], d_in, d_out)


def _prefixed(prefix: str, params: Params) -> Params:
    return {f"{prefix}.{k}": v for k, v in params.items()}


class SuperBlock(nn.Module):
    def __init__(
        self, space: SearchSpace, drop_path: float, qkv_bias_prefix: bool = False, ln_eps: float = LN_EPS
    ) -> None:
        super().__init__()
        e, q = max(space.embed_dim), max(space.num_heads) * space.head_dim
        m = int(e * max(space.mlp_ratio))
        ra, rm = space.attn_rank_ratio, space.rank_ratio
        self.norm1 = SuperLayerNorm(e, ln_eps)
        self.attn = SuperAttention(
            e,
            max(space.num_heads),
            space.head_dim,
            _max_rank(ra, e, 3 * q),
            _max_rank(ra, q, e),
            space.qkv_bias,
            space.rel_pos_max_distance if space.rel_pos else None,
            qkv_bias_prefix,
        )
        self.norm2 = SuperLayerNorm(e, ln_eps)
        self.mlp = SuperMlp(e, m, _max_rank(rm, e, m), _max_rank(rm, m, e))
        self.act = make_act(space.act)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def active_params(self, cfg: SubnetConfig, i: int) -> Params:
        e = cfg.embed_dim
        p = _prefixed("norm1", self.norm1.active_params(e))
        ranks = {k: cfg.linear_rank(k, i) for k in ("qkv", "proj", "fc1", "fc2")}
        p.update(_prefixed("attn", self.attn.active_params(e, cfg.num_heads[i], ranks["qkv"], ranks["proj"])))
        p.update(_prefixed("norm2", self.norm2.active_params(e)))
        p.update(_prefixed("mlp", self.mlp.active_params(e, cfg.mlp_hidden(i), ranks["fc1"], ranks["fc2"])))
        return p

    def forward(self, x: torch.Tensor, cfg: SubnetConfig, i: int) -> torch.Tensor:
        with_cls = cfg.has_cls_token
        a = self.attn(
            self.norm1(x),
            cfg.num_heads[i],
            cfg.linear_rank("qkv", i),
            cfg.linear_rank("proj", i),
            cfg.grid_size,
            with_cls,
        )
        x = x + self.drop_path(a)
        h = self.mlp(
            self.norm2(x), cfg.mlp_hidden(i), cfg.linear_rank("fc1", i), cfg.linear_rank("fc2", i), self.act
        )
        return x + self.drop_path(h)


class Supernet(nn.Module):
    """Weight-sharing ViT over ``space``; call ``set_active(cfg)`` before ``forward``.

    Two options compute what an AutoFormer supernet computes (`search_space.autoformer`):
    ``qkv_bias_prefix`` slices each qkv bias as one prefix instead of per q/k/v block (both agree
    at the largest head count), ``ln_eps`` is the LayerNorm epsilon (1e-5 there, 1e-6 here).
    """

    def __init__(
        self,
        space: SearchSpace,
        drop_path_rate: float = 0.0,
        qkv_bias_prefix: bool = False,
        ln_eps: float = LN_EPS,
    ) -> None:
        super().__init__()
        self.space, self.ln_eps = space, ln_eps
        top = space.max_config()
        e = top.embed_dim
        self.max_grid = top.grid_size
        self.patch_embed = SuperPatchEmbed(e, space.in_chans, max(space.patch_size))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, e)) if space.pool != "avg" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, top.num_tokens, e)) if space.abs_pos else None
        for p in (self.cls_token, self.pos_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        rates = [drop_path_rate * i / max(top.depth - 1, 1) for i in range(top.depth)]
        self.blocks = nn.ModuleList(
            SuperBlock(space, rates[i], qkv_bias_prefix, ln_eps) for i in range(top.depth)
        )
        self.norm = SuperLayerNorm(e, ln_eps)
        self.head = SuperLinear(e, space.num_classes)
        self._active: SubnetConfig | None = None

    # ---- the active subnet ------------------------------------------------------------
    def set_active(self, cfg: SubnetConfig) -> None:
        """Select the subnet the next forward computes; it must lie in the space."""
        reason = self.space.violation(cfg)
        if reason is not None:
            raise ConfigError(f"subnet is not in space '{self.space.name}': {reason}")
        self._active = cfg

    @property
    def active(self) -> SubnetConfig:
        if self._active is None:
            raise RuntimeError("call set_active(cfg) before running the supernet")
        return self._active

    # ---- slicing ----------------------------------------------------------------------
    def _pos_embed(self, cfg: SubnetConfig) -> torch.Tensor:
        pos = self.pos_embed[:, :, : cfg.embed_dim]
        if cfg.grid_size != self.max_grid:
            prefix = int(cfg.has_cls_token)
            pos = resample_abs_pos_embed(
                pos, [cfg.grid_size] * 2, [self.max_grid] * 2, num_prefix_tokens=prefix
            )
        return pos

    def active_state_dict(self, cfg: SubnetConfig) -> Params:
        """The sliced tensors of ``cfg`` under `StaticViT` parameter names (views, not copies)."""
        e = cfg.embed_dim
        p = _prefixed("patch_embed", self.patch_embed.active_params(e, cfg.patch_size))
        if self.cls_token is not None:
            p["cls_token"] = self.cls_token[:, :, :e]
        if self.pos_embed is not None:
            p["pos_embed"] = self._pos_embed(cfg)
        for i in range(cfg.depth):
            p.update(_prefixed(f"blocks.{i}", self.blocks[i].active_params(cfg, i)))
        p.update(_prefixed("norm", self.norm.active_params(e)))
        p.update(_prefixed("head", self.head.active_params(e, cfg.num_classes)))
        return p

    # ---- forward ----------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.active
        x = self.patch_embed(x, cfg.embed_dim, cfg.patch_size)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token[:, :, : cfg.embed_dim].expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = x + self._pos_embed(cfg)
        for i in range(cfg.depth):
            x = self.blocks[i](x, cfg, i)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(pool_tokens(x, self.active.pool), self.space.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@torch.no_grad()
def extract_subnet(supernet: Supernet, cfg: SubnetConfig) -> StaticViT:
    """A standalone `StaticViT` holding copies of ``cfg``'s slice of the supernet weights."""
    supernet.set_active(cfg)
    model = StaticViT(cfg, ln_eps=supernet.ln_eps)
    sliced = {k: v.detach().clone().contiguous() for k, v in supernet.active_state_dict(cfg).items()}
    model.load_state_dict(sliced, strict=True)
    return model.to(next(supernet.parameters()).device).train(supernet.training)
