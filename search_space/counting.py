"""Parameter count and FLOPs as pure functions of a `SubnetConfig` (no modules built).

FLOPs follow ``torch.utils.flop_counter``: 2 x multiply-accumulates of every linear,
convolution and attention matmul (q.kᵀ and attn.v; with relative position also the q.r_k and
attn.r_v products); element-wise ops, norms and softmax are not counted.
"""

from __future__ import annotations

from search_space.config import SubnetConfig


def linear_params(d_in: int, d_out: int, rank: int | None, bias: bool = True) -> int:
    """Parameters of a dense (rank None) or factorised ``d_in -> rank -> d_out`` linear."""
    b = d_out if bias else 0
    return d_in * d_out + b if rank is None else rank * (d_in + d_out) + b


def linear_macs(d_in: int, d_out: int, rank: int | None) -> int:
    """Multiply-accumulates per token."""
    return d_in * d_out if rank is None else rank * (d_in + d_out)


def block_params(cfg: SubnetConfig, layer: int) -> int:
    e, q, m = cfg.embed_dim, cfg.qkv_dim(layer), cfg.mlp_hidden(layer)
    n = 4 * e  # two LayerNorms
    n += linear_params(e, 3 * q, cfg.linear_rank("qkv", layer), cfg.qkv_bias)
    n += linear_params(q, e, cfg.linear_rank("proj", layer))
    n += linear_params(e, m, cfg.linear_rank("fc1", layer))
    n += linear_params(m, e, cfg.linear_rank("fc2", layer))
    if cfg.rel_pos:
        n += 4 * (2 * cfg.rel_pos_max_distance + 2) * cfg.head_dim  # k and v, rows and columns
    return n


def count_params(cfg: SubnetConfig) -> int:
    """Exactly ``sum(p.numel() for p in StaticViT(cfg).parameters())``."""
    e, p = cfg.embed_dim, cfg.patch_size
    n = cfg.in_chans * p * p * e + e  # patch embedding conv
    n += e if cfg.has_cls_token else 0
    n += cfg.num_tokens * e if cfg.abs_pos else 0
    n += sum(block_params(cfg, i) for i in range(cfg.depth))
    n += 2 * e + e * cfg.num_classes + cfg.num_classes  # final norm + head
    return n


def count_flops(cfg: SubnetConfig) -> int:
    """Forward FLOPs of one image (2 x MACs of linears, convolution and attention matmuls)."""
    e, n_tok = cfg.embed_dim, cfg.num_tokens
    macs = cfg.num_patches * cfg.in_chans * cfg.patch_size**2 * e
    for i in range(cfg.depth):
        q, m = cfg.qkv_dim(i), cfg.mlp_hidden(i)
        per_token = (
            linear_macs(e, 3 * q, cfg.linear_rank("qkv", i))
            + linear_macs(q, e, cfg.linear_rank("proj", i))
            + linear_macs(e, m, cfg.linear_rank("fc1", i))
            + linear_macs(m, e, cfg.linear_rank("fc2", i))
        )
        attn = 2 * n_tok * n_tok * q  # q.kᵀ and attn.v over all heads
        if cfg.rel_pos:
            attn *= 2
        macs += n_tok * per_token + attn
    macs += e * cfg.num_classes
    return 2 * macs
