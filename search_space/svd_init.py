"""Initialise a (low-rank) supernet from a dense ViT checkpoint by truncated SVD.

The dense weights come from a file the user supplies (e.g. a timm DeiT-Tiny
``.pth``/``.safetensors``; nothing is downloaded) or from this project's own supernet of a dense
space (`dense_state_from_supernet`, what space evolution pretrains every point from). Each dense tensor is copied into the prefix slice of the matching supernet weight;
a dense linear ``W = A diag(s) Bᵀ`` becomes ``U = A sqrt(s)``, ``V = sqrt(s) Bᵀ`` with singular
values in descending order, so every prefix rank is the best rank-r approximation of ``W``.
Patch and position embeddings are resampled with timm when the patch size or grid differ.
"""

from __future__ import annotations

from pathlib import Path

import torch
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from common.errors import ConfigError
from search_space.modules import SuperLinear, SuperLowRankLinear
from search_space.space import SearchSpace
from search_space.static import timm_vit_to_static
from search_space.supernet import Supernet
from search_space.transfer import FIXED_SETTINGS


def load_dense_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a dense ViT state dict from a local ``.pth``/``.pt``/``.bin``/``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"dense checkpoint {path} does not exist; pass a local timm ViT/DeiT weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("model", "state_dict", "model_ema"):
        if isinstance(sd, dict) and wrapper in sd and isinstance(sd[wrapper], dict):
            sd = sd[wrapper]
            break
    if "patch_embed.proj.weight" not in sd:
        raise ConfigError(f"{path} is not a ViT state dict (no 'patch_embed.proj.weight')")
    return timm_vit_to_static(sd)


def check_dense_source(dense: SearchSpace, target: SearchSpace) -> None:
    """Refuse a source space that is not dense or whose fixed model settings differ from the target's."""
    if dense.rank_ratio[0] is not None or dense.attn_rank_ratio[0] is not None:
        raise ConfigError(
            f"space '{dense.name}' is low-rank; SVD initialisation starts from a dense space "
            "(rank_ratio: [null]), e.g. digits-tiny-dense"
        )
    for name in FIXED_SETTINGS:
        a, b = getattr(dense, name), getattr(target, name)
        if a != b:
            raise ConfigError(f"the dense space '{dense.name}' has {name} {a!r}, the target space {b!r}")


def dense_state_from_supernet(state: dict[str, torch.Tensor], space: SearchSpace) -> dict[str, torch.Tensor]:
    """A dense supernet's full-size tensors under the ViT names `init_from_dense` reads. Its patch
    kernel (stored at the largest patch size) and position embedding (at the smallest patch's
    grid) are resampled by `init_from_dense` exactly as the supernet resamples them at run time."""
    check_dense_source(space, space)
    sd = dict(state)
    for part in ("weight", "bias"):
        sd[f"patch_embed.proj.{part}"] = sd.pop(f"patch_embed.{part}")
    return sd


def _fit(dst: torch.Tensor, src: torch.Tensor, name: str) -> None:
    """Copy ``src`` into the leading corner of ``dst``."""
    if src.dim() != dst.dim() or any(s > d for s, d in zip(src.shape, dst.shape, strict=True)):
        raise ConfigError(
            f"dense tensor '{name}' {tuple(src.shape)} does not fit the supernet's {tuple(dst.shape)}; "
            "use a space whose maxima cover the checkpoint"
        )
    dst[tuple(slice(0, s) for s in src.shape)] = src.to(dst.dtype)


def _fit_linear(layer: SuperLinear, w: torch.Tensor, b: torch.Tensor | None, name: str) -> None:
    """Copy a dense (out, in) weight and bias into a super-linear, block by block when grouped."""
    g = layer.groups
    if w.shape[0] % g:
        raise ConfigError(f"dense tensor '{name}' has {w.shape[0]} rows, not a multiple of {g}")
    per_dst = layer.max_out // g
    _fit(layer.weight.view(g, per_dst, -1), w.reshape(g, -1, w.shape[1]), name)
    if b is not None and layer.bias is not None:
        _fit(layer.bias.view(g, per_dst), b.reshape(g, -1), f"{name}.bias")


def _copy_linear(layer: torch.nn.Module, w: torch.Tensor, b: torch.Tensor | None, name: str) -> None:
    """Dense weight (out, in) into a SuperLinear or, by truncated SVD, a SuperLowRankLinear."""
    if isinstance(layer, SuperLinear):
        _fit_linear(layer, w, b, name)
        return
    assert isinstance(layer, SuperLowRankLinear)
    a, s, bt = torch.linalg.svd(w.double(), full_matrices=False)
    r = min(layer.v.weight.shape[0], s.numel())
    root = s[:r].sqrt()
    _fit(layer.v.weight, (root[:, None] * bt[:r]).float(), f"{name} (V factor)")
    _fit_linear(layer.u, (a[:, :r] * root).float(), b, f"{name} (U factor)")


@torch.no_grad()
def init_from_dense(supernet: Supernet, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Load a dense ViT into the supernet (SVD for factorised linears). Returns skipped keys
    (e.g. a classifier head of another class count), so callers can log them."""
    sd, skipped = dict(state_dict), []
    w = sd.pop("patch_embed.proj.weight")
    if w.shape[-1] != supernet.patch_embed.base_patch:
        w = resample_patch_embed(w, [supernet.patch_embed.base_patch] * 2)
    _fit(supernet.patch_embed.weight, w, "patch_embed.proj.weight")
    _fit(supernet.patch_embed.bias, sd.pop("patch_embed.proj.bias"), "patch_embed.proj.bias")
    cls = sd.pop("cls_token", None)
    if cls is not None and supernet.cls_token is not None:
        _fit(supernet.cls_token, cls, "cls_token")
    pos = sd.pop("pos_embed", None)
    if pos is not None and supernet.pos_embed is not None:
        prefix = 1 if cls is not None else 0
        grid = round((pos.shape[1] - prefix) ** 0.5)
        pos = resample_abs_pos_embed(pos, [supernet.max_grid] * 2, [grid] * 2, num_prefix_tokens=prefix)
        if cls is not None and supernet.cls_token is None:
            pos = pos[:, 1:]
        _fit(supernet.pos_embed, pos, "pos_embed")
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    if depth > len(supernet.blocks):
        skipped += [k for k in sd if k.startswith("blocks.") and int(k.split(".")[1]) >= len(supernet.blocks)]
    for i, blk in enumerate(supernet.blocks[:depth]):
        pre = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            _fit(getattr(blk, norm).weight, sd.pop(pre + norm + ".weight"), pre + norm)
            _fit(getattr(blk, norm).bias, sd.pop(pre + norm + ".bias"), pre + norm)
        for name, layer in (
            ("attn.qkv", blk.attn.qkv),
            ("attn.proj", blk.attn.proj),
            ("mlp.fc1", blk.mlp.fc1),
            ("mlp.fc2", blk.mlp.fc2),
        ):
            _copy_linear(
                layer, sd.pop(pre + name + ".weight"), sd.pop(pre + name + ".bias", None), pre + name
            )
    _fit(supernet.norm.weight, sd.pop("norm.weight"), "norm.weight")
    _fit(supernet.norm.bias, sd.pop("norm.bias"), "norm.bias")
    head_w, head_b = sd.pop("head.weight", None), sd.pop("head.bias", None)
    if head_w is not None and head_w.shape[0] == supernet.head.weight.shape[0]:
        _fit(supernet.head.weight, head_w, "head.weight")
        _fit(supernet.head.bias, head_b, "head.bias")
    elif head_w is not None:
        skipped += ["head.weight", "head.bias"]
    return skipped + sorted(k for k in sd if not k.startswith("blocks."))
