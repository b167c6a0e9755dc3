"""Warm-start a supernet of one space from the trained supernet of another.

Space evolution moves between space points (low-rank ratio, patch size) and trains each new
point's supernet starting from the nearest trained one. The two supernets have the same
module tree but differently shaped tensors; :func:`transfer_state_dict` maps one onto the
other so that every subnet valid in both spaces computes (nearly) what it computed before:

* patch embedding: stored at the space's largest patch size; the source kernel is resampled
  to the target's with timm's `resample_patch_embed` (FlexiViT's pseudo-inverse resize, the
  same operator the supernet applies at run time for its other patch sizes);
* position embedding: stored at the grid of the smallest patch size; resampled with timm's
  `resample_abs_pos_embed` (again what the source would do at run time);
* low-rank factors ``v`` (rank x in) and ``u`` (out x rank): the common rank prefix is
  copied. Extra target rank gets ``u`` columns of zero and ``v`` rows of the target's small
  random init, so a subnet using more rank than the source had computes exactly the source's
  full-rank-prefix output and the new directions start learning from the ``u`` gradient;
* everything else (norms, attention, head, cls token, deeper blocks, wider dims): the common
  prefix slice is copied; parts the source lacks keep the target's fresh initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from common.errors import ConfigError
from search_space.space import SearchSpace

FIXED_SETTINGS = (  # what two spaces must share for weights to carry over (dims may differ)
    "img_size",
    "num_classes",
    "in_chans",
    "head_dim",
    "pool",
    "abs_pos",
    "rel_pos",
    "act",
)


@dataclass
class TransferReport:
    """What happened to each target tensor."""

    copied: list[str] = field(default_factory=list)  # same shape, copied as is
    sliced: list[str] = field(default_factory=list)  # common prefix copied (target smaller or larger)
    resampled: list[str] = field(default_factory=list)  # patch / position embedding resized
    kept: list[str] = field(default_factory=list)  # not in the source: target init kept

    def summary(self) -> str:
        return (
            f"{len(self.copied)} copied, {len(self.sliced)} sliced/extended, "
            f"{len(self.resampled)} resampled, {len(self.kept)} kept at init"
        )


def _pos_grid(space: SearchSpace) -> int:
    return space.max_config().grid_size


def check_compatible(src: SearchSpace, dst: SearchSpace) -> None:
    """Refuse transfers between spaces whose fixed model settings differ."""
    for name in FIXED_SETTINGS:
        a, b = getattr(src, name), getattr(dst, name)
        if a != b:
            raise ConfigError(f"cannot warm-start across spaces with different {name} ({a!r} vs {b!r})")
    for axis in ("rank_ratio", "attn_rank_ratio"):
        if (getattr(src, axis)[0] is None) != (getattr(dst, axis)[0] is None):
            raise ConfigError(f"cannot warm-start between a dense and a low-rank {axis} space")


def _overlap_copy(src: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
    """``init`` with its leading block (in every dim) replaced by ``src``'s."""
    out = init.clone()
    region = tuple(slice(0, min(a, b)) for a, b in zip(src.shape, init.shape, strict=True))
    out[region] = src[region].to(out.dtype)
    return out


def _grouped_rows(t: torch.Tensor, groups: int) -> torch.Tensor:
    return t.reshape(groups, t.shape[0] // groups, *t.shape[1:])


def _copy_param(name: str, src: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
    if src.dim() != init.dim():
        raise ConfigError(f"cannot warm-start '{name}': {tuple(src.shape)} vs {tuple(init.shape)}")
    # qkv rows are [q | k | v] blocks; keep each block's prefix aligned.
    grouped = ".qkv." in name and (
        name.endswith("bias") or name.endswith(".u.weight") or name.endswith("qkv.weight")
    )
    if grouped and src.shape[0] != init.shape[0]:
        out = _overlap_copy(_grouped_rows(src, 3), _grouped_rows(init, 3))
        out = out.reshape(init.shape)
    else:
        out = _overlap_copy(src, init)
    if name.endswith(".u.weight") and init.shape[1] > src.shape[1]:
        out[:, src.shape[1] :] = 0.0  # extra rank contributes nothing until trained
    return out


def _resize_matrix(base: int, patch: int) -> torch.Tensor:
    """(base², patch²) matrix of timm's kernel resize ``base -> patch`` (identity if equal)."""
    eye = torch.eye(base * base).reshape(base * base, 1, base, base)
    if patch == base:
        return eye.reshape(base * base, base * base)
    return resample_patch_embed(eye, [patch, patch]).reshape(base * base, patch * patch)


def fit_patch_kernel(w_src: torch.Tensor, dst_patches: tuple[int, ...], dst_base: int) -> torch.Tensor:
    """The ``dst_base`` kernel whose resized versions best match (least squares) the source
    supernet's effective kernel at every target patch size.

    The source computes patch ``p`` with ``resample_patch_embed(w_src, p)``; the target will
    compute it with ``resample_patch_embed(w, p)``, linear in ``w``. For a single target patch
    size this is exactly the source's resampled kernel; for several it is the closest kernel.
    """
    src_base = w_src.shape[-1]
    rows = w_src.reshape(-1, src_base * src_base)
    targets, maps = [], []
    for p in dst_patches:
        targets.append(rows @ _resize_matrix(src_base, p))
        maps.append(_resize_matrix(dst_base, p))
    k, m = torch.cat(targets, dim=1), torch.cat(maps, dim=1)  # (N, sum p²), (base², sum p²)
    w = torch.linalg.lstsq(m.T.double(), k.T.double()).solution.T
    return w.to(w_src.dtype).reshape(*w_src.shape[:2], dst_base, dst_base)


@torch.no_grad()
def transfer_state_dict(
    src_state: dict[str, torch.Tensor],
    src_space: SearchSpace,
    dst_state: dict[str, torch.Tensor],
    dst_space: SearchSpace,
) -> tuple[dict[str, torch.Tensor], TransferReport]:
    """A state dict for the ``dst_space`` supernet built from a ``src_space`` supernet's
    weights; ``dst_state`` (the target's fresh init) supplies shapes and whatever the source
    lacks."""
    check_compatible(src_space, dst_space)
    report = TransferReport()
    out: dict[str, torch.Tensor] = {}
    for name, init in dst_state.items():
        src = src_state.get(name)
        if src is None:
            out[name] = init.clone()
            report.kept.append(name)
            continue
        src = src.detach().to(init.device)
        if name == "patch_embed.weight":
            w = src[: init.shape[0]].float()
            if w.shape[-1] != init.shape[-1] or tuple(src_space.patch_size) != tuple(dst_space.patch_size):
                w = fit_patch_kernel(w, dst_space.patch_size, init.shape[-1])
                report.resampled.append(name)
            else:
                (report.copied if src.shape == init.shape else report.sliced).append(name)
            out[name] = _overlap_copy(w, init)
            continue
        if name == "pos_embed":
            pos = src[:, :, : init.shape[-1]]
            g_src, g_dst = _pos_grid(src_space), _pos_grid(dst_space)
            if g_src != g_dst:
                prefix = int(dst_space.pool != "avg")  # cls and gp keep a class token
                pos = resample_abs_pos_embed(
                    pos.float(), [g_dst, g_dst], [g_src, g_src], num_prefix_tokens=prefix
                )
                report.resampled.append(name)
            out[name] = _overlap_copy(pos, init)
            if name not in report.resampled:
                (report.copied if src.shape == init.shape else report.sliced).append(name)
            continue
        out[name] = _copy_param(name, src, init)
        (report.copied if src.shape == init.shape else report.sliced).append(name)
    if not report.copied and not report.sliced and not report.resampled:
        raise ConfigError(
            "the source supernet shares no tensor with the target; is it a supernet checkpoint?"
        )
    return out, report


def warm_start(
    model: torch.nn.Module, src_state: dict[str, torch.Tensor], src_space: SearchSpace
) -> TransferReport:
    """Load a ``src_space`` supernet's weights into ``model`` (a `Supernet`) in place."""
    state, report = transfer_state_dict(src_state, src_space, model.state_dict(), model.space)
    model.load_state_dict(state, strict=True)
    return report
