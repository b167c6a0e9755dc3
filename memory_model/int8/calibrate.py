"""Calibrate a float `StaticViT` for the int8 executor (the only torch-dependent module of
`memory_model.int8`; import it explicitly).

Forward hooks record the |max| (or a percentile of |x|) of every activation the ``mcu``
schedule stores in int8 while the model runs on real images (``image / 255``, NCHW).
"""

from __future__ import annotations

import numpy as np
import torch

from memory_model.int8.quant import QuantViT, activation_names, quantize_vit


def to_model_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, C) images -> float (B, C, H, W) in [0, 1], the float model's input."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def _absmax(t: torch.Tensor, percentile: float | None) -> float:
    a = t.detach().abs().flatten().double()
    return float(a.max()) if percentile is None else float(torch.quantile(a[:1_000_000], percentile / 100))


@torch.no_grad()
def calibrate(
    model: torch.nn.Module, images: np.ndarray, percentile: float | None = None
) -> dict[str, float]:
    """|max| of every activation named by `activation_names` over ``images``."""
    cfg = model.cfg
    stats: dict[str, float] = {}

    def record(name: str, t: torch.Tensor) -> None:
        stats[name] = max(stats.get(name, 0.0), _absmax(t, percentile))

    hooks = []

    def out_hook(module: torch.nn.Module, name: str) -> None:
        hooks.append(module.register_forward_hook(lambda m, i, o: record(name, o)))

    def in_hook(module: torch.nn.Module, name: str) -> None:
        hooks.append(module.register_forward_pre_hook(lambda m, i: record(name, i[0])))

    def qkv_hook(module: torch.nn.Module, pre: str, heads: int) -> None:
        def fn(m, i, o):
            qkv = o.reshape(o.shape[0], o.shape[1], 3, heads, cfg.head_dim)
            for j, n in enumerate(("q", "k", "v")):
                record(f"{pre}.{n}", qkv[:, :, j])

        hooks.append(module.register_forward_hook(fn))

    in_hook(model.blocks[0], "x0")
    for l, blk in enumerate(model.blocks):  # noqa: E741
        pre = f"blocks.{l}"
        out_hook(blk.norm1, f"{pre}.ln1")
        qkv_hook(blk.attn.qkv, pre, cfg.num_heads[l])
        in_hook(blk.attn.proj, f"{pre}.attn_out")
        in_hook(blk.norm2, f"{pre}.x_mid")
        out_hook(blk.norm2, f"{pre}.ln2")
        in_hook(blk.mlp.fc2, f"{pre}.act")
        out_hook(blk, f"{pre}.x_out")
        if cfg.attn_rank_ratio is not None:
            out_hook(blk.attn.qkv.v, f"{pre}.qkv_z")
            out_hook(blk.attn.proj.v, f"{pre}.proj_z")
        if cfg.rank_ratio is not None:
            out_hook(blk.mlp.fc1.v, f"{pre}.fc1_z")
            out_hook(blk.mlp.fc2.v, f"{pre}.fc2_z")
    out_hook(model.norm, "norm")
    in_hook(model.head, "pool")
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), 64):
            model(to_model_input(images[start : start + 64]))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    missing = [n for n in activation_names(cfg) if n not in stats]
    if missing:
        raise RuntimeError(f"calibration did not observe {missing[:3]}")
    return stats


def quantize_static_vit(
    model: torch.nn.Module, images: np.ndarray, percentile: float | None = None
) -> QuantViT:
    """Calibrate ``model`` on uint8 ``images`` and quantise its weights for the executor."""
    params = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    return quantize_vit(model.cfg, params, calibrate(model, images, percentile))
