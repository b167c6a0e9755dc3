"""Super-modules: each owns one full-size weight and slices it for the active subnet.

Every module has one slicing method, ``active_params(...)``, returning the sliced tensors
under the parameter names of the matching `search_space.static` module. ``forward`` uses the
same method, and `extract_subnet` copies its output into a `StaticViT`, so the supernet and
the extracted model compute with identical tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import resample_patch_embed
from torch import nn

from search_space.static import LN_EPS, RelativePosition2D, attention, init_patch_embed_

Params = dict[str, torch.Tensor]


class SuperLinear(nn.Module):
    """Dense linear of at most ``max_in -> max_out``; active weight = ``W[:out, :in]``.

    With ``groups > 1`` the output is ``groups`` equal blocks (qkv: [q | k | v]) and each
    block keeps its own prefix, so q, k and v stay aligned across widths. ``bias_prefix``
    slices the bias as one prefix instead (AutoFormer's qkv: ``b[:d_out]`` whatever the groups).
    """

    def __init__(
        self, max_in: int, max_out: int, bias: bool = True, groups: int = 1, bias_prefix: bool = False
    ) -> None:
        super().__init__()
        self.groups, self.max_out, self.bias_prefix = groups, max_out, bias_prefix
        self.weight = nn.Parameter(torch.empty(max_out, max_in))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.trunc_normal_(self.weight, std=0.02)

    def _rows(self, t: torch.Tensor, d_out: int) -> torch.Tensor:
        if self.groups == 1:
            return t[:d_out]
        g = self.groups
        return t.reshape(g, self.max_out // g, *t.shape[1:])[:, : d_out // g].reshape(d_out, *t.shape[1:])

    def active_params(self, d_in: int, d_out: int) -> Params:
        p = {"weight": self._rows(self.weight, d_out)[:, :d_in]}
        if self.bias is not None:
            p["bias"] = self.bias[:d_out] if self.bias_prefix else self._rows(self.bias, d_out)
        return p

    def forward(self, x: torch.Tensor, d_out: int) -> torch.Tensor:
        p = self.active_params(x.shape[-1], d_out)
        return F.linear(x, p["weight"], p.get("bias"))


class SuperLowRankLinear(nn.Module):
    """Factorised linear ``x -> V x -> U (V x) + b`` with factors sliced to the active rank.

    ``v``: (max_rank, max_in), ``u``: (max_out, max_rank). Factors are kept ordered by
    singular value (see `search_space.svd_init`), so a prefix of the rank keeps the
    strongest directions.
    """

    def __init__(
        self,
        max_in: int,
        max_out: int,
        max_rank: int,
        bias: bool = True,
        groups: int = 1,
        bias_prefix: bool = False,
    ) -> None:
        super().__init__()
        self.v = SuperLinear(max_in, max_rank, bias=False)
        self.u = SuperLinear(max_rank, max_out, bias=bias, groups=groups, bias_prefix=bias_prefix)

    def active_params(self, d_in: int, d_out: int, rank: int) -> Params:
        p = {f"v.{k}": t for k, t in self.v.active_params(d_in, rank).items()}
        p.update({f"u.{k}": t for k, t in self.u.active_params(rank, d_out).items()})
        return p

    def forward(self, x: torch.Tensor, d_out: int, rank: int) -> torch.Tensor:
        return self.u(self.v(x, rank), d_out)


def super_linear(
    max_in: int,
    max_out: int,
    max_rank: int | None,
    bias: bool = True,
    groups: int = 1,
    bias_prefix: bool = False,
):
    """A dense super-linear, or a factorised one when the space has a rank axis."""
    if max_rank is None:
        return SuperLinear(max_in, max_out, bias, groups, bias_prefix)
    return SuperLowRankLinear(max_in, max_out, max_rank, bias, groups, bias_prefix)


def linear_params(layer: nn.Module, d_in: int, d_out: int, rank: int | None) -> Params:
    if isinstance(layer, SuperLowRankLinear):
        return layer.active_params(d_in, d_out, rank)
    return layer.active_params(d_in, d_out)


def run_linear(layer: nn.Module, x: torch.Tensor, d_out: int, rank: int | None) -> torch.Tensor:
    if isinstance(layer, SuperLowRankLinear):
        return layer(x, d_out, rank)
    return layer(x, d_out)


class SuperLayerNorm(nn.Module):
    def __init__(self, max_dim: int, eps: float = LN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(max_dim))
        self.bias = nn.Parameter(torch.zeros(max_dim))

    def active_params(self, dim: int) -> Params:
        return {"weight": self.weight[:dim], "bias": self.bias[:dim]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        return F.layer_norm(x, (d,), self.weight[:d], self.bias[:d], self.eps)


class SuperPatchEmbed(nn.Module):
    """Patch convolution stored at ``base_patch``; other patch sizes are resampled with
    timm's `resample_patch_embed` (FlexiViT's pseudo-inverse resize), embed dim sliced."""

    def __init__(self, max_embed: int, in_chans: int, base_patch: int) -> None:
        super().__init__()
        self.base_patch = base_patch
        self.weight = nn.Parameter(torch.empty(max_embed, in_chans, base_patch, base_patch))
        self.bias = nn.Parameter(torch.empty(max_embed))
        init_patch_embed_(self.weight, self.bias)

    def active_params(self, embed: int, patch: int) -> Params:
        w = self.weight[:embed]
        if patch != self.base_patch:
            w = resample_patch_embed(w, [patch, patch])
        return {"proj.weight": w, "proj.bias": self.bias[:embed]}

    def forward(self, x: torch.Tensor, embed: int, patch: int) -> torch.Tensor:
        p = self.active_params(embed, patch)
        pad_h, pad_w = (-x.shape[-2]) % patch, (-x.shape[-1]) % patch
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = F.conv2d(x, p["proj.weight"], p["proj.bias"], stride=patch)
        return x.flatten(2).transpose(1, 2)


class SuperAttention(nn.Module):
    """Multi-head attention whose head count (q/k/v width = head_dim x heads) and input
    width are sliced per subnet; AutoFormer's relative-position tables are shared by all
    widths (one row per clipped distance, ``head_dim`` wide). ``qkv_bias_prefix``: see
    `SuperLinear` (what an AutoFormer ``--change_qkv`` supernet computes)."""

    def __init__(
        self,
        max_embed: int,
        max_heads: int,
        head_dim: int,
        max_rank_qkv: int | None,
        max_rank_proj: int | None,
        qkv_bias: bool,
        rel_pos_max_distance: int | None,
        qkv_bias_prefix: bool = False,
    ) -> None:
        super().__init__()
        self.head_dim = head_dim
        max_q = max_heads * head_dim
        self.qkv = super_linear(
            max_embed, 3 * max_q, max_rank_qkv, qkv_bias, groups=3, bias_prefix=qkv_bias_prefix
        )
        self.proj = super_linear(max_q, max_embed, max_rank_proj)
        self.rel_pos_k = self.rel_pos_v = None
        if rel_pos_max_distance is not None:
            self.rel_pos_k = RelativePosition2D(head_dim, rel_pos_max_distance)
            self.rel_pos_v = RelativePosition2D(head_dim, rel_pos_max_distance)

    def active_params(self, embed: int, heads: int, rank_qkv: int | None, rank_proj: int | None) -> Params:
        q = heads * self.head_dim
        p = {f"qkv.{k}": t for k, t in linear_params(self.qkv, embed, 3 * q, rank_qkv).items()}
        p.update({f"proj.{k}": t for k, t in linear_params(self.proj, q, embed, rank_proj).items()})
        if self.rel_pos_k is not None:
            for name in ("rel_pos_k", "rel_pos_v"):
                mod = getattr(self, name)
                p.update({f"{name}.table_v": mod.table_v, f"{name}.table_h": mod.table_h})
        return p

    def forward(
        self,
        x: torch.Tensor,
        heads: int,
        rank_qkv: int | None,
        rank_proj: int | None,
        grid: int,
        with_cls: bool,
    ) -> torch.Tensor:
        b, n, e = x.shape
        qkv = run_linear(self.qkv, x, 3 * heads * self.head_dim, rank_qkv)
        qkv = qkv.reshape(b, n, 3, heads, self.head_dim).permute(2, 0, 3, 1, 4)
        rel_k = rel_v = None
        if self.rel_pos_k is not None:
            rel_k, rel_v = self.rel_pos_k(grid, with_cls), self.rel_pos_v(grid, with_cls)
        out = attention(qkv[0], qkv[1], qkv[2], rel_k, rel_v)
        return run_linear(self.proj, out, e, rank_proj)


class SuperMlp(nn.Module):
    def __init__(self, max_embed: int, max_hidden: int, max_rank_fc1: int | None, max_rank_fc2: int | None):
        super().__init__()
        self.fc1 = super_linear(max_embed, max_hidden, max_rank_fc1)
        self.fc2 = super_linear(max_hidden, max_embed, max_rank_fc2)

    def active_params(self, embed: int, hidden: int, rank_fc1: int | None, rank_fc2: int | None) -> Params:
        p = {f"fc1.{k}": t for k, t in linear_params(self.fc1, embed, hidden, rank_fc1).items()}
        p.update({f"fc2.{k}": t for k, t in linear_params(self.fc2, hidden, embed, rank_fc2).items()})
        return p

    def forward(
        self, x: torch.Tensor, hidden: int, rank_fc1: int | None, rank_fc2: int | None, act: nn.Module
    ) -> torch.Tensor:
        return run_linear(self.fc2, act(run_linear(self.fc1, x, hidden, rank_fc1)), x.shape[-1], rank_fc2)
