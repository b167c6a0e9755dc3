"""AutoFormer supernet checkpoints (microsoft/Cream, ``Vision_TransformerSuper``) as this
project's dense `Supernet`.

AutoFormer names its tensors ``patch_embed_super.proj``, ``blocks.i.attn_layer_norm``,
``blocks.i.ffn_layer_norm``, ``blocks.i.fc1``/``fc2`` and ``rel_pos_embed_k/v.embeddings_table_v/h``;
its checkpoint does not say how it was trained, so the settings that shapes cannot tell come from
the training flags (``--gp``, ``--change_qkv``), read from the checkpoint's ``args`` when it has
them. What the conversion does:

* ``--change_qkv``: AutoFormer's qkv weight holds q, k and v *interleaved* (rows ``3t``, ``3t+1``,
  ``3t+2``) and a subnet with ``h`` heads uses the first ``64 h`` of each; the rows are reordered
  into this project's [q | k | v] blocks, so every head count slices the same weights. Its qkv
  *bias* is sliced as one prefix ``b[:3 * 64 h]``: `Supernet(..., qkv_bias_prefix=True)` computes
  exactly that; the default per-block slicing agrees at the largest head count.
  Without ``--change_qkv`` the q/k/v width is the supernet's embed width for every subnet (head
  width = embed / heads), so the converted space has one head count.
* ``--gp`` is ``pool: gp`` (class token kept, the head reads the mean of the patch tokens).
* Every tensor is cut to the target space's maxima (AutoFormer slices prefixes the same way, so a
  space narrower than the supernet, e.g. E <= 216 of AutoFormer-T's 256, is reproduced exactly);
  relative-position tables are cut to the head width.
* AutoFormer's LayerNorms use torch's default epsilon (1e-5), this project's 1e-6 (timm's ViT):
  `load_autoformer_supernet` builds the supernet with AutoFormer's; a converted file used as
  ``model.init_from`` trains on with this project's.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from common.errors import ConfigError
from search_space.config import SubnetConfig
from search_space.space import SearchSpace

AF_LN_EPS = 1e-5  # torch's LayerNorm default, which AutoFormer's LayerNormSuper keeps
AF_HEAD_DIM = 64  # AutoFormer's q/k/v width per head under --change_qkv (hard-coded there)
AF_PATCH_KEY = "patch_embed_super.proj.weight"
_BLOCK_RENAMES = {
    "attn_layer_norm": "norm1",
    "ffn_layer_norm": "norm2",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
    "attn.proj": "attn.proj",
    "attn.qkv": "attn.qkv",
}
_TABLES = {
    "attn.rel_pos_embed_k.embeddings_table_v": "attn.rel_pos_k.table_v",
    "attn.rel_pos_embed_k.embeddings_table_h": "attn.rel_pos_k.table_h",
    "attn.rel_pos_embed_v.embeddings_table_v": "attn.rel_pos_v.table_v",
    "attn.rel_pos_embed_v.embeddings_table_h": "attn.rel_pos_v.table_h",
}


@dataclass(frozen=True)
class AutoFormerFlags:
    """The AutoFormer training flags a checkpoint's shapes cannot tell."""

    gp: bool = True  # --gp (AutoFormer's published supernet commands use it)
    change_qkv: bool = True  # --change_qkv (idem)

    @classmethod
    def from_args(cls, args: Any, **given: bool | None) -> AutoFormerFlags:
        """Flags from the checkpoint's ``args`` namespace when present; ``given`` (not None) wins."""
        out = {}
        for name in ("gp", "change_qkv"):
            value = given.get(name)
            if value is None and args is not None:
                value = getattr(args, name, None)
            out[name] = getattr(cls, name) if value is None else bool(value)
        return cls(**out)


def is_autoformer_state(sd: Any) -> bool:
    return isinstance(sd, dict) and AF_PATCH_KEY in sd


def read_autoformer_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], Any]:
    """The supernet state dict and the ``args`` namespace (or None) of an AutoFormer ``.pth``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"AutoFormer checkpoint {path} does not exist; pass the supernet .pth file")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is a user error here
        raise ConfigError(f"{path} cannot be read as a torch checkpoint ({type(exc).__name__})") from None
    sd = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not is_autoformer_state(sd):
        raise ConfigError(f"{path} is not an AutoFormer supernet checkpoint (no '{AF_PATCH_KEY}')")
    return sd, ckpt.get("args")


def _depth(sd: dict[str, torch.Tensor]) -> int:
    return 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))


def autoformer_fixed_settings(sd: dict[str, torch.Tensor], flags: AutoFormerFlags) -> dict[str, Any]:
    """The space settings (and maxima) a supernet state dict and its flags imply."""
    w = sd[AF_PATCH_KEY]
    embed, in_chans, patch = w.shape[0], w.shape[1], w.shape[-1]
    if "pos_embed" not in sd:
        raise ConfigError("AutoFormer supernets without an absolute position embedding are not supported")
    grid = round((sd["pos_embed"].shape[1] - 1) ** 0.5)
    table = sd.get("blocks.0.attn.rel_pos_embed_k.embeddings_table_v")
    if flags.change_qkv:
        head_dim = AF_HEAD_DIM
        if embed % head_dim:
            raise ConfigError(f"embed width {embed} is not a multiple of AutoFormer's head width {head_dim}")
        max_heads = embed // head_dim
    elif table is not None:
        head_dim = table.shape[1]
        max_heads = embed // head_dim
    else:
        raise ConfigError(
            "without --change_qkv and relative position the head count is not in the checkpoint; "
            "convert with --change-qkv if it was trained so"
        )
    if table is not None and table.shape[1] < head_dim:
        raise ConfigError(
            f"relative-position tables are {table.shape[1]} wide, narrower than the head width {head_dim}"
        )
    return {
        "img_size": grid * patch,
        "in_chans": in_chans,
        "num_classes": sd["head.weight"].shape[0],
        "patch_size": [patch],
        "head_dim": head_dim,
        "pool": "gp" if flags.gp else "cls",
        "abs_pos": True,
        "rel_pos": table is not None,
        "rel_pos_max_distance": (table.shape[0] - 2) // 2 if table is not None else 14,
        "qkv_bias": "blocks.0.attn.qkv.bias" in sd,
        "act": "gelu",
        "rank_ratio": [None],
        "attn_rank_ratio": [None],
        "_max": {
            "embed_dim": embed,
            "depth": _depth(sd),
            "num_heads": max_heads,
            "mlp_ratio": sd["blocks.0.fc1.weight"].shape[0] / embed,
        },
    }


def autoformer_space(
    sd: dict[str, torch.Tensor],
    flags: AutoFormerFlags,
    choices: SearchSpace | None = None,
    name: str = "autoformer",
) -> SearchSpace:
    """The dense space of the converted supernet: the choice lists of ``choices`` (a preset) or,
    without one, the supernet's own widths (embed, MLP ratio) with every depth and head count;
    fixed settings always from the checkpoint and flags."""
    fixed = autoformer_fixed_settings(sd, flags)
    top = fixed.pop("_max")
    if not flags.change_qkv:  # one q/k/v width: the head count is the supernet's
        fixed["num_heads"] = [top["num_heads"]]
    if choices is None:
        axes = {
            "embed_dim": [top["embed_dim"]],
            "depth": list(range(1, top["depth"] + 1)),
            "num_heads": list(range(1, top["num_heads"] + 1)),
            "mlp_ratio": [top["mlp_ratio"]],
        }
        space = SearchSpace.from_dict({**axes, **fixed, "name": name})
    else:
        space = choices.replace(**fixed)
    if not flags.change_qkv and space.embed_dim != (top["embed_dim"],):
        raise ConfigError(
            f"without --change_qkv AutoFormer's attention keeps the supernet's q/k/v width and scales by "
            f"the sampled embed width, which this project's attention reproduces only at embed "
            f"{top['embed_dim']}; use a space with embed_dim [{top['embed_dim']}]"
        )
    big = space.max_config()
    for axis, value in (
        ("embed_dim", big.embed_dim),
        ("depth", big.depth),
        ("num_heads", max(big.num_heads)),
        ("mlp hidden width", big.mlp_hidden(0)),
    ):
        limit = top[axis] if axis != "mlp hidden width" else int(top["embed_dim"] * top["mlp_ratio"])
        if value > limit:
            raise ConfigError(
                f"space '{space.name}' reaches {axis} {value}, the AutoFormer supernet only {limit}; "
                "pick a space within the supernet"
            )
    return space


def _crop(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    return t[tuple(slice(0, s) for s in shape)].clone()


def convert_state(
    sd: dict[str, torch.Tensor], space: SearchSpace, flags: AutoFormerFlags
) -> dict[str, torch.Tensor]:
    """An AutoFormer supernet state dict as a `Supernet(space)` state dict (dense space)."""
    from search_space.supernet import Supernet  # the models layer, built on the meta device

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Supernet(space).state_dict().items()}
    af_embed = sd[AF_PATCH_KEY].shape[0]
    out: dict[str, torch.Tensor] = {
        "patch_embed.weight": sd[AF_PATCH_KEY],
        "patch_embed.bias": sd["patch_embed_super.proj.bias"],
        "cls_token": sd["cls_token"],
        "pos_embed": sd["pos_embed"],
        "norm.weight": sd["norm.weight"],
        "norm.bias": sd["norm.bias"],
        "head.weight": sd["head.weight"],
        "head.bias": sd["head.bias"],
    }
    for i in range(space.max_config().depth):
        for af, ours in _BLOCK_RENAMES.items():
            for part in ("weight", "bias"):
                key = f"blocks.{i}.{af}.{part}"
                if key in sd:
                    out[f"blocks.{i}.{ours}.{part}"] = sd[key]
        if space.rel_pos:
            out.update({f"blocks.{i}.{ours}": sd[f"blocks.{i}.{af}"] for af, ours in _TABLES.items()})
        w = out[f"blocks.{i}.attn.qkv.weight"]
        # --change_qkv: interleaved rows 3t+g -> block g, row t
        w = w.reshape(af_embed, 3, -1).transpose(0, 1) if flags.change_qkv else w.reshape(3, af_embed, -1)
        q_max = shapes[f"blocks.{i}.attn.qkv.weight"][0] // 3
        out[f"blocks.{i}.attn.qkv.weight"] = w[:, :q_max].reshape(3 * q_max, -1)
        bias = out.get(f"blocks.{i}.attn.qkv.bias")
        if bias is not None and not flags.change_qkv:
            out[f"blocks.{i}.attn.qkv.bias"] = bias.reshape(3, af_embed)[:, :q_max].reshape(-1)
        # with --change_qkv the bias is kept as AutoFormer slices it: one prefix
    missing = sorted(set(shapes) - set(out))
    if missing:
        raise ConfigError(f"the AutoFormer checkpoint lacks what the space needs: '{missing[0]}'")
    return {k: _crop(out[k], shapes[k]).float().contiguous() for k in shapes}


def load_autoformer_supernet(
    path: str | Path,
    *,
    gp: bool | None = None,
    change_qkv: bool | None = None,
    choices: SearchSpace | None = None,
):
    """An AutoFormer ``.pth`` as ``(Supernet, space, flags)``, in eval mode and computing what
    AutoFormer computes for every subnet of the space (`subnet_from_autoformer` reads its configs)."""
    from search_space.supernet import Supernet

    sd, args = read_autoformer_checkpoint(path)
    flags = AutoFormerFlags.from_args(args, gp=gp, change_qkv=change_qkv)
    space = autoformer_space(sd, flags, choices, name=Path(path).stem)
    model = Supernet(space, qkv_bias_prefix=flags.change_qkv, ln_eps=AF_LN_EPS)
    model.load_state_dict(convert_state(sd, space, flags), strict=True)
    return model.eval(), space, flags


def subnet_from_autoformer(config: dict[str, Any], space: SearchSpace) -> SubnetConfig:
    """An AutoFormer sampled config (``layer_num``, per-layer ``embed_dim``/``mlp_ratio``/
    ``num_heads``) as a `SubnetConfig` of ``space`` (at its one patch size)."""
    depth, embed = config["layer_num"], set(config["embed_dim"][: config["layer_num"]])
    if len(embed) != 1:
        raise ConfigError(
            f"AutoFormer config has per-layer embed widths {sorted(embed)}; one width is supported"
        )
    return SubnetConfig(
        embed_dim=embed.pop(),
        depth=depth,
        num_heads=tuple(config["num_heads"][:depth]),
        mlp_ratio=tuple(float(r) for r in config["mlp_ratio"][:depth]),
        patch_size=space.patch_size[0],
        rank_ratio=None,
        attn_rank_ratio=None,
        **{k: v for k, v in space.fixed.items()},
    )
