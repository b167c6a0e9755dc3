"""Warm-starting a supernet of one space point from another's weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from common.errors import ConfigError
from search_space.space import SearchSpace
from search_space.supernet import Supernet
from search_space.transfer import transfer_state_dict, warm_start

BASE = SearchSpace(
    embed_dim=(16, 24),
    depth=(1, 2),
    num_heads=(1, 2),
    mlp_ratio=(2.0, 3.0),
    patch_size=(4, 8),
    rank_ratio=(0.5, 1.0),
    img_size=32,
    num_classes=10,
    head_dim=8,
    pool="cls",
)


def point(rank, patch, **kw) -> SearchSpace:
    return BASE.replace(rank_ratio=tuple(rank), patch_size=tuple(patch), **kw)


def pair(src_space, dst_space) -> tuple[Supernet, Supernet]:
    torch.manual_seed(0)
    src = Supernet(src_space).eval()
    with torch.no_grad():  # non-zero biases and factors everywhere, as after training
        for p in src.parameters():
            p.add_(0.05 * torch.randn_like(p))
    dst = Supernet(dst_space).eval()
    warm_start(dst, src.state_dict(), src_space)
    return src, dst


def outputs(model, cfg, x):
    model.set_active(cfg)
    with torch.no_grad():
        return model(x)


def configs(space, n=4):
    rng = np.random.default_rng(0)
    return [space.max_config(), space.min_config(), *(space.sample(rng) for _ in range(n))]


def test_same_point_is_an_exact_copy():
    sp = point([0.6], [6])
    src, dst = pair(sp, sp)
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k
    x = torch.rand(2, 3, 32, 32)
    for cfg in configs(sp):
        assert torch.equal(outputs(src, cfg, x), outputs(dst, cfg, x))


def test_more_rank_keeps_shared_configs_exact_and_extra_rank_silent():
    src_space, dst_space = point([0.5, 0.75], [8]), point([0.75, 1.0], [8])
    src, dst = pair(src_space, dst_space)
    x = torch.rand(2, 3, 32, 32)
    for cfg in configs(dst_space):
        if cfg.rank_ratio == 0.75:  # valid in both: identical
            assert torch.allclose(outputs(src, cfg, x), outputs(dst, cfg, x), atol=1e-6)
    # rank 1.0 uses directions the source never had: zero u columns, so it equals rank 0.75
    top = dst_space.max_config()
    same = dataclasses.replace(top, rank_ratio=0.75)
    assert torch.allclose(outputs(dst, top, x), outputs(src, same, x), atol=1e-6)
    u = dst.blocks[0].mlp.fc1.u.weight
    r_src = src.blocks[0].mlp.fc1.u.weight.shape[1]
    assert r_src < u.shape[1] and torch.count_nonzero(u[:, r_src:]) == 0
    assert torch.count_nonzero(dst.blocks[0].mlp.fc1.v.weight[r_src:]) > 0  # small init, trainable


def test_less_rank_slices_the_prefix():
    src_space, dst_space = point([1.0], [8]), point([0.5], [8])
    src, dst = pair(src_space, dst_space)
    v_src, v_dst = src.blocks[1].mlp.fc2.v.weight, dst.blocks[1].mlp.fc2.v.weight
    assert torch.equal(v_dst, v_src[: v_dst.shape[0]])


@pytest.mark.parametrize(("src_patch", "dst_patch"), [(8, 4), (4, 8), (6, 5)])
def test_new_patch_size_computes_what_the_source_would(src_patch, dst_patch):
    src_space, dst_space = point([1.0], [src_patch]), point([1.0], [dst_patch])
    src, dst = pair(src_space, dst_space)
    w = resample_patch_embed(src.patch_embed.weight.detach(), [dst_patch] * 2)
    assert torch.allclose(dst.patch_embed.weight, w, atol=1e-5)
    g_src, g_dst = src_space.max_config().grid_size, dst_space.max_config().grid_size
    pos = resample_abs_pos_embed(src.pos_embed.detach(), [g_dst] * 2, [g_src] * 2, num_prefix_tokens=1)
    assert torch.allclose(dst.pos_embed, pos, atol=1e-6)


def test_config_valid_in_both_multi_valued_spaces_stays_close():
    src_space, dst_space = point([0.5, 0.75], [4, 6]), point([0.75, 1.0], [6, 8])
    src, dst = pair(src_space, dst_space)
    x = torch.rand(4, 3, 32, 32)
    rng = np.random.default_rng(1)
    for _ in range(4):
        cfg = dataclasses.replace(src_space.sample(rng), rank_ratio=0.75, patch_size=6)
        a, b = outputs(src, cfg, x), outputs(dst, cfg, x)
        assert (a - b).norm() / a.norm() < 0.15  # the patch kernel is a least-squares compromise for 6 and 8
    # and a random target init is far away
    fresh = Supernet(dst_space).eval()
    cfg = dataclasses.replace(dst_space.max_config(), rank_ratio=0.75, patch_size=6)
    assert (outputs(src, cfg, x) - outputs(fresh, cfg, x)).norm() / outputs(src, cfg, x).norm() > 0.5


def test_incompatible_spaces_are_refused():
    src = Supernet(point([1.0], [8]))
    with pytest.raises(ConfigError, match="num_classes"):
        transfer_state_dict(src.state_dict(), src.space, src.state_dict(), point([1.0], [8], num_classes=5))
    with pytest.raises(ConfigError, match="dense"):
        transfer_state_dict(src.state_dict(), src.space, src.state_dict(), point([None], [8]))
