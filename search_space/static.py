"""The plain static ViT a subnet becomes: no slicing, no search-space code.

`StaticViT(cfg)` is what a user trains standalone, exports and deploys. Module names follow
timm's VisionTransformer (``patch_embed.proj``, ``blocks.i.attn.qkv``, ``blocks.i.mlp.fc1``,
``norm``, ``head``) so timm checkpoints map with few renames (see :func:`timm_vit_to_static`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from search_space.config import QKV_INITS, SubnetConfig

LN_EPS = 1e-6  # timm's ViT LayerNorm epsilon


class SigmoidGELU(nn.Module):
    """GELU in the x * sigmoid(1.702 x) form (int8- and TF-Lite-Micro-friendly)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def make_act(name: str) -> nn.Module:
    return {"gelu": nn.GELU, "gelu_sigmoid": SigmoidGELU, "relu": nn.ReLU}[name]()


class LowRankLinear(nn.Module):
    """W ~= U V^T: ``d_in -> rank`` (``v``, no bias) then ``rank -> d_out`` (``u``, bias)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True) -> None:
        super().__init__()
        self.v = nn.Linear(in_features, rank, bias=False)
        self.u = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.u(self.v(x))


def make_linear(d_in: int, d_out: int, rank: int | None, bias: bool = True) -> nn.Module:
    return nn.Linear(d_in, d_out, bias=bias) if rank is None else LowRankLinear(d_in, d_out, rank, bias)


def rel_pos_index(grid: int, max_distance: int, with_cls: bool, device=None) -> tuple[torch.Tensor, ...]:
    """AutoFormer's 2-D relative-position table indices (row and column), shape (N, N).

    Distances are clipped to ``max_distance`` and shifted by ``max_distance + 1``; index 0 is
    reserved for pairs involving the class token.
    """
    pos = torch.arange(grid * grid, device=device)
    rows, cols = pos // grid, pos % grid
    dv = (rows[None, :] - rows[:, None]).clamp(-max_distance, max_distance) + max_distance + 1
    dh = (cols[None, :] - cols[:, None]).clamp(-max_distance, max_distance) + max_distance + 1
    if with_cls:
        dv, dh = F.pad(dv, (1, 0, 1, 0)), F.pad(dh, (1, 0, 1, 0))
    return dv, dh


class RelativePosition2D(nn.Module):
    """AutoFormer's relative position: embedding = table_v[row distance] + table_h[col distance]."""

    def __init__(self, head_dim: int, max_distance: int) -> None:
        super().__init__()
        self.max_distance = max_distance
        self.table_v = nn.Parameter(torch.zeros(2 * max_distance + 2, head_dim))
        self.table_h = nn.Parameter(torch.zeros(2 * max_distance + 2, head_dim))
        nn.init.trunc_normal_(self.table_v, std=0.02)
        nn.init.trunc_normal_(self.table_h, std=0.02)

    def forward(self, grid: int, with_cls: bool) -> torch.Tensor:
        dv, dh = rel_pos_index(grid, self.max_distance, with_cls, self.table_v.device)
        return self.table_v[dv] + self.table_h[dh]  # (N, N, head_dim)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_k: torch.Tensor | None = None,
    rel_v: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention on (B, h, N, d) tensors, with AutoFormer's optional
    relative-position terms (``rel_k``/``rel_v`` of shape (N, N, d)). Returns (B, N, h*d)."""
    b, h, n, d = q.shape
    if rel_k is None:
        out = F.scaled_dot_product_attention(q, k, v)
    else:
        scale = d**-0.5
        attn = (q @ k.transpose(-2, -1) + torch.einsum("bhnd,nmd->bhnm", q, rel_k)) * scale
        attn = attn.softmax(dim=-1)
        out = attn @ v + torch.einsum("bhnm,nmd->bhnd", attn, rel_v)
    return out.transpose(1, 2).reshape(b, n, h * d)


class Attention(nn.Module):
    def __init__(self, cfg: SubnetConfig, layer: int) -> None:
        super().__init__()
        e, qd = cfg.embed_dim, cfg.qkv_dim(layer)
        self.num_heads, self.head_dim = cfg.num_heads[layer], cfg.head_dim
        self.qkv = make_linear(e, 3 * qd, cfg.linear_rank("qkv", layer), bias=cfg.qkv_bias)
        self.proj = make_linear(qd, e, cfg.linear_rank("proj", layer))
        self.rel_pos_k = self.rel_pos_v = None
        if cfg.rel_pos:
            self.rel_pos_k = RelativePosition2D(cfg.head_dim, cfg.rel_pos_max_distance)
            self.rel_pos_v = RelativePosition2D(cfg.head_dim, cfg.rel_pos_max_distance)

    def forward(self, x: torch.Tensor, grid: int, with_cls: bool) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        rel_k = rel_v = None
        if self.rel_pos_k is not None:
            rel_k, rel_v = self.rel_pos_k(grid, with_cls), self.rel_pos_v(grid, with_cls)
        return self.proj(attention(qkv[0], qkv[1], qkv[2], rel_k, rel_v))


class Mlp(nn.Module):
    def __init__(self, cfg: SubnetConfig, layer: int) -> None:
        super().__init__()
        e, m = cfg.embed_dim, cfg.mlp_hidden(layer)
        self.fc1 = make_linear(e, m, cfg.linear_rank("fc1", layer))
        self.act = make_act(cfg.act)
        self.fc2 = make_linear(m, e, cfg.linear_rank("fc2", layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: SubnetConfig, layer: int, drop_path: float = 0.0, ln_eps: float = LN_EPS) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=ln_eps)
        self.attn = Attention(cfg, layer)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=ln_eps)
        self.mlp = Mlp(cfg, layer)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, grid: int, with_cls: bool) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), grid, with_cls))
        return x + self.drop_path(self.mlp(self.norm2(x)))


@torch.no_grad()
def init_qkv_(model: nn.Module, scheme: str) -> int:
    """Initialise every attention's qkv projection of ``model`` (a supernet or a `StaticViT`)
    under ``scheme`` and return how many there are.

    ``trunc_normal`` leaves timm's std 0.02 as built. ``lecun`` draws std fan_in^-1/2 (a
    factorised qkv: ``v`` std fan_in^-1/2, ``u`` std rank^-1/2), so q and k of a layer-normed
    token start with unit-scale entries: at std 0.02 the attention logits start ~0.04 and the
    attention uniform, a plateau short trainings on small data can spend whole epochs in.
    """
    if scheme not in QKV_INITS:
        raise ValueError(f"qkv init must be one of {QKV_INITS}, not {scheme!r}")
    layers = [m for name, m in model.named_modules() if name.endswith("attn.qkv")]
    if scheme == "lecun":
        for m in layers:
            for w in (m.v.weight, m.u.weight) if hasattr(m, "v") else (m.weight,):
                nn.init.trunc_normal_(w, std=w.shape[1] ** -0.5)
    return len(layers)


def init_patch_embed_(weight: torch.Tensor, bias: torch.Tensor) -> None:
    """The patch projection's initialisation, shared with the supernet: std fan_in^-1/2, zero
    bias. torch's conv default (1/sqrt(3) of that, plus a bias as large) kept from-scratch
    digits subnets at chance through a 10-epoch training."""
    nn.init.trunc_normal_(weight, std=weight[0].numel() ** -0.5)
    nn.init.zeros_(bias)


def pool_tokens(x: torch.Tensor, pool: str) -> torch.Tensor:
    """What the head reads from the normed (B, N, E) tokens: the class token (``cls``), the mean
    of all tokens (``avg``, no class token) or of the patch tokens after the class token (``gp``)."""
    if pool == "cls":
        return x[:, 0]
    return (x[:, 1:] if pool == "gp" else x).mean(dim=1)


class PatchEmbed(nn.Module):
    """Non-overlapping patch convolution; the input is zero-padded bottom/right to the grid."""

    def __init__(self, cfg: SubnetConfig) -> None:
        super().__init__()
        self.patch_size = cfg.patch_size
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, cfg.patch_size, stride=cfg.patch_size)
        init_patch_embed_(self.proj.weight, self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        pad_h, pad_w = (-x.shape[-2]) % p, (-x.shape[-1]) % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, E)


class StaticViT(nn.Module):
    """A single ViT subnet as an ordinary module (see module docstring for names). ``ln_eps``:
    the LayerNorm epsilon (timm's 1e-6; AutoFormer's weights were trained with torch's 1e-5)."""

    def __init__(self, cfg: SubnetConfig, drop_path_rate: float = 0.0, ln_eps: float = LN_EPS) -> None:
        super().__init__()
        self.cfg = cfg
        e = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, e)) if cfg.has_cls_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, e)) if cfg.abs_pos else None
        rates = [drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(Block(cfg, i, rates[i], ln_eps) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(e, eps=ln_eps)
        self.head = nn.Linear(e, cfg.num_classes)
        self.apply(_init_weights)
        for p in (self.cls_token, self.pos_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        grid, with_cls = self.cfg.grid_size, self.cls_token is not None
        for blk in self.blocks:
            x = blk(x, grid, with_cls)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(pool_tokens(x, self.cfg.pool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def timm_vit_to_static(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a timm VisionTransformer / DeiT state dict onto `StaticViT` (dense) names.

    Names already match except timm's distillation and pre-logits extras, which are refused.
    """
    out = {}
    for key, value in state_dict.items():
        if key.startswith(("dist_token", "head_dist", "fc_norm", "pre_logits")):
            raise KeyError(f"'{key}': distilled or pre-logits ViTs are not supported")
        if key.endswith(("ls1.gamma", "ls2.gamma")):
            raise KeyError(f"'{key}': LayerScale ViTs are not supported")
        out[key] = value
    return out
