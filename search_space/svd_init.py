"""Initialise a (low-rank) supernet from a dense ViT checkpoint by truncated SVD.

The dense weights come from a file the user supplies (e.g. a timm DeiT-Tiny
``.pth``/``.safetensors``; nothing is downloaded) or from this project's own supernet of a dense
space (`dense_state_from_supernet`, what space evolution pretrains every point from). Each dense tensor is copied into the prefix slice of the matching supernet weight;
a dense linear ``W = A diag(s) Bᵀ`` becomes ``U = A sqrt(s)``, ``V = sqrt(s) Bᵀ`` with singular
values in descending order, so every prefix rank is the best rank-r approximation of ``W``.
Patch and position embeddings are resampled with timm when the patch size or grid differ.

A weight-sharing supernet is a source too: an AutoFormer supernet checkpoint (or its file from
``python -m search_space.convert``, see `search_space.autoformer`) or this project's dense
supernet. Its prefixes are its subnets, so tensors wider than the target space (AutoFormer-T's
embed 256 into a space of at most 216) are cut to the target's maxima before the SVD; a plain
ViT wider than the space is refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from common.errors import ConfigError
from search_space.modules import SuperLinear, SuperLowRankLinear
from search_space.space import SearchSpace
from search_space.static import timm_vit_to_static
from search_space.supernet import Supernet
from search_space.transfer import FIXED_SETTINGS


def check_init_file(path: str | Path, key: str = "model.init_from") -> None:
    """Refuse a missing starting-point file up front, before a run writes or trains anything."""
    if not Path(path).is_file():
        raise ConfigError(
            f"{key} {path} does not exist; give the AutoFormer-T supernet (supernet-tiny.pth of the AutoFormer "
            f"release, or its python -m search_space.convert output), a timm ViT/DeiT file or a dense supernet "
            f"checkpoint with -o {key}=PATH, or {key}=null to start from random weights"
        )


class SupernetWeights(dict):
    """Dense weights of a weight-sharing supernet (under ViT names): `init_from_dense` may cut
    them to a narrower space, since every prefix is a subnet."""


def load_dense_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a dense ViT state dict from a local ``.pth``/``.pt``/``.bin``/``.safetensors`` file,
    or an AutoFormer supernet (raw or converted) as `SupernetWeights`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"dense checkpoint {path} does not exist; pass a local timm ViT/DeiT or AutoFormer supernet weights file"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        with torch.serialization.safe_globals([argparse.Namespace]):  # AutoFormer saves its args
            sd = torch.load(path, map_location="cpu", weights_only=True)
    autoformer = _autoformer_weights(sd)
    if autoformer is not None:
        return autoformer
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


def _autoformer_weights(ckpt: object) -> SupernetWeights | None:
    """An AutoFormer checkpoint (raw, flags from its args or AutoFormer's published defaults) or
    a converted file as ViT-named `SupernetWeights`; ``None`` for anything else."""
    from search_space.autoformer import AutoFormerFlags, autoformer_space, convert_state, is_autoformer_state
    from search_space.convert import CONVERTED_KEY

    if not isinstance(ckpt, dict):
        return None
    if CONVERTED_KEY in ckpt and "space" in ckpt:
        space = SearchSpace.from_dict(ckpt["space"])
        return SupernetWeights(dense_state_from_supernet(ckpt["model"], space))
    sd = ckpt.get("model", ckpt)
    if not is_autoformer_state(sd):
        return None
    flags = AutoFormerFlags.from_args(ckpt.get("args"))
    space = autoformer_space(sd, flags)
    return SupernetWeights(dense_state_from_supernet(convert_state(sd, space, flags), space))


def _cut(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The leading corner of ``src`` that fits ``dst`` (a supernet source's prefix)."""
    return src[tuple(slice(0, d) for d in dst.shape)] if src.dim() == dst.dim() else src


def _fit(dst: torch.Tensor, src: torch.Tensor, name: str, cut: bool = False) -> None:
    """Copy ``src`` (cut to ``dst`` first with ``cut``) into the leading corner of ``dst``."""
    if cut:
        src = _cut(src, dst)
    if src.dim() != dst.dim() or any(s > d for s, d in zip(src.shape, dst.shape, strict=True)):
        raise ConfigError(
            f"dense tensor '{name}' {tuple(src.shape)} does not fit the supernet's {tuple(dst.shape)}; "
            "use a space whose maxima cover the checkpoint"
        )
    dst[tuple(slice(0, s) for s in src.shape)] = src.to(dst.dtype)


def _fit_linear(
    layer: SuperLinear, w: torch.Tensor, b: torch.Tensor | None, name: str, cut: bool = False
) -> None:
    """Copy a dense (out, in) weight and bias into a super-linear, block by block when grouped."""
    g = layer.groups
    if w.shape[0] % g:
        raise ConfigError(f"dense tensor '{name}' has {w.shape[0]} rows, not a multiple of {g}")
    per_dst = layer.max_out // g
    _fit(layer.weight.view(g, per_dst, -1), w.reshape(g, -1, w.shape[1]), name, cut)
    if b is not None and layer.bias is not None:
        _fit(layer.bias.view(g, per_dst), b.reshape(g, -1), f"{name}.bias", cut)


def _cut_linear(
    w: torch.Tensor, b: torch.Tensor | None, max_out: int, max_in: int, groups: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A supernet source's (out, in) linear cut to ``max_out x max_in``, block by block."""
    per = min(w.shape[0] // groups, max_out // groups)
    w = w.reshape(groups, -1, w.shape[1])[:, :per, :max_in].reshape(groups * per, -1)
    if b is not None:
        b = b.reshape(groups, -1)[:, :per].reshape(-1)
    return w, b


def _copy_linear(
    layer: torch.nn.Module, w: torch.Tensor, b: torch.Tensor | None, name: str, cut: bool = False
) -> None:
    """Dense weight (out, in) into a SuperLinear or, by truncated SVD, a SuperLowRankLinear."""
    if isinstance(layer, SuperLinear):
        _fit_linear(layer, w, b, name, cut)
        return
    assert isinstance(layer, SuperLowRankLinear)
    if cut:  # the SVD of the target's largest subnet's weight
        w, b = _cut_linear(w, b, layer.u.max_out, layer.v.weight.shape[1], layer.u.groups)
    a, s, bt = torch.linalg.svd(w.double(), full_matrices=False)
    r = min(layer.v.weight.shape[0], s.numel())
    root = s[:r].sqrt()
    _fit(layer.v.weight, (root[:, None] * bt[:r]).float(), f"{name} (V factor)")
    _fit_linear(layer.u, (a[:, :r] * root).float(), b, f"{name} (U factor)")


@torch.no_grad()
def init_from_dense(supernet: Supernet, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Load a dense ViT into the supernet (SVD for factorised linears). Returns skipped keys
    (e.g. a classifier head of another class count), so callers can log them. `SupernetWeights`
    wider than the supernet are cut to its maxima."""
    sd, skipped, cut = dict(state_dict), [], isinstance(state_dict, SupernetWeights)
    w = sd.pop("patch_embed.proj.weight")
    if w.shape[-1] != supernet.patch_embed.base_patch:
        w = resample_patch_embed(w, [supernet.patch_embed.base_patch] * 2)
    _fit(supernet.patch_embed.weight, w, "patch_embed.proj.weight", cut)
    _fit(supernet.patch_embed.bias, sd.pop("patch_embed.proj.bias"), "patch_embed.proj.bias", cut)
    cls = sd.pop("cls_token", None)
    if cls is not None and supernet.cls_token is not None:
        _fit(supernet.cls_token, cls, "cls_token", cut)
    pos = sd.pop("pos_embed", None)
    if pos is not None and supernet.pos_embed is not None:
        prefix = 1 if cls is not None else 0
        grid = round((pos.shape[1] - prefix) ** 0.5)
        pos = resample_abs_pos_embed(pos, [supernet.max_grid] * 2, [grid] * 2, num_prefix_tokens=prefix)
        if cls is not None and supernet.cls_token is None:
            pos = pos[:, 1:]
        _fit(supernet.pos_embed, pos, "pos_embed", cut)
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    if depth > len(supernet.blocks):
        skipped += [k for k in sd if k.startswith("blocks.") and int(k.split(".")[1]) >= len(supernet.blocks)]
    for i, blk in enumerate(supernet.blocks[:depth]):
        pre = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            _fit(getattr(blk, norm).weight, sd.pop(pre + norm + ".weight"), pre + norm, cut)
            _fit(getattr(blk, norm).bias, sd.pop(pre + norm + ".bias"), pre + norm, cut)
        for name, layer in (
            ("attn.qkv", blk.attn.qkv),
            ("attn.proj", blk.attn.proj),
            ("mlp.fc1", blk.mlp.fc1),
            ("mlp.fc2", blk.mlp.fc2),
        ):
            _copy_linear(
                layer, sd.pop(pre + name + ".weight"), sd.pop(pre + name + ".bias", None), pre + name, cut
            )
        if blk.attn.rel_pos_k is not None:  # AutoFormer's relative-position tables, when both have them
            for rel in ("rel_pos_k", "rel_pos_v"):
                for part in ("table_v", "table_h"):
                    key = f"{pre}attn.{rel}.{part}"
                    if key in sd:
                        _fit(getattr(getattr(blk.attn, rel), part), sd.pop(key), key, cut)
    _fit(supernet.norm.weight, sd.pop("norm.weight"), "norm.weight", cut)
    _fit(supernet.norm.bias, sd.pop("norm.bias"), "norm.bias", cut)
    head_w, head_b = sd.pop("head.weight", None), sd.pop("head.bias", None)
    if head_w is not None and head_w.shape[0] == supernet.head.weight.shape[0]:
        _fit(supernet.head.weight, head_w, "head.weight", cut)
        _fit(supernet.head.bias, head_b, "head.bias", cut)
    elif head_w is not None:
        skipped += ["head.weight", "head.bias"]
    left = sorted(k for k in sd if not k.startswith("blocks.") or int(k.split(".")[1]) < len(supernet.blocks))
    return skipped + left
