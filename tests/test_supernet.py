"""Supernet vs extracted static model, exact counting, timm parity and SVD initialisation."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import timm
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from search_space import ConfigError, SearchSpace, SubnetConfig, load_space
from search_space.counting import count_flops, count_params
from search_space.static import QKV_INITS, StaticViT, init_qkv_, timm_vit_to_static
from search_space.supernet import Supernet, extract_subnet
from search_space.svd_init import init_from_dense, load_dense_state_dict
from training.config import QKV_INITS as CONFIG_QKV_INITS

PRESETS = ["mcuformer-t", "autoformer-t", "autoformer-s", "autoformer-b", "digits-tiny"]

AUTOFORMER = {
    "T": dict(
        embed_dim=192,
        depth=13,
        mlp_ratio=[3.5, 3.5, 3, 3.5, 3, 3, 4, 4, 3.5, 4, 3.5, 4, 3.5],
        num_heads=[3] * 10 + [4, 3, 3],
    ),
    "S": dict(
        embed_dim=384,
        depth=13,
        mlp_ratio=[3, 3.5, 3, 3.5, 4, 4, 4, 4, 4, 4, 4, 3.5, 4],
        num_heads=[6, 6, 5, 7, 5, 5, 5, 6, 6, 7, 7, 6, 7],
    ),
    "B": dict(
        embed_dim=576,
        depth=14,
        mlp_ratio=[3.5, 3.5, 4, 3.5, 4, 3.5, 3.5, 3, 4, 4, 3, 4, 3, 3.5],
        num_heads=[9, 9, 9, 9, 9, 10, 9, 9, 10, 9, 10, 9, 9, 10],
    ),
}
AUTOFORMER_PARAMS = {
    "T": (5_867_944, 5_768_104),
    "S": (22_891_432, 22_791_592),
    "B": (53_691_688, 53_584_168),
}


def _numel(cfg: SubnetConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in StaticViT(cfg).parameters())


@pytest.mark.parametrize("size", ["T", "S", "B"])
@pytest.mark.parametrize("rel_pos", [True, False])
def test_autoformer_released_subnets_count_exactly(size: str, rel_pos: bool) -> None:
    cfg = SubnetConfig(**AUTOFORMER[size], patch_size=16, img_size=224, rel_pos=rel_pos)
    expected = AUTOFORMER_PARAMS[size][0 if rel_pos else 1]
    assert count_params(cfg) == expected
    assert _numel(cfg) == expected
    space = load_space(f"autoformer-{size.lower()}")
    assert space.replace(rel_pos=rel_pos).contains(cfg), space.violation(cfg)


def test_timm_deit_tiny_parity() -> None:
    deit = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    cfg = SubnetConfig(embed_dim=192, depth=12, num_heads=3, mlp_ratio=4.0, patch_size=16, img_size=224)
    model = StaticViT(cfg).eval()
    model.load_state_dict(timm_vit_to_static(deit.state_dict()), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - deit(x)).abs().max().item() < 1e-4


def _shrunk(space: SearchSpace) -> SearchSpace:
    """The preset's axes with a small image and head, so 22 forwards per space stay fast."""
    return space.replace(img_size=2 * max(space.patch_size) - 4, num_classes=7)


@pytest.mark.parametrize("name", PRESETS)
def test_supernet_equals_extracted_subnet(name: str) -> None:
    space = _shrunk(load_space(name))
    net = Supernet(space).eval()
    rng = np.random.default_rng(0)
    configs = [space.min_config(), space.max_config()] + [space.sample(rng) for _ in range(20)]
    x = torch.randn(2, space.in_chans, space.img_size, space.img_size)
    for cfg in configs:
        net.set_active(cfg)
        static = extract_subnet(net, cfg).eval()
        with torch.no_grad():
            diff = (net(x) - static(x)).abs().max().item()
        assert diff <= 1e-5, (cfg.short(), diff)
        assert count_params(cfg) == sum(p.numel() for p in static.parameters())
        assert type(static) is StaticViT


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_analytic_params_match_numel_on_full_presets(name: str) -> None:
    space = load_space(name)
    rng = np.random.default_rng(1)
    for cfg in [space.min_config(), space.max_config()] + [space.sample(rng) for _ in range(20)]:
        assert count_params(cfg) == _numel(cfg)


@pytest.mark.parametrize(
    "cfg",
    [
        SubnetConfig(
            embed_dim=64,
            depth=2,
            num_heads=(2, 3),
            mlp_ratio=(2.0, 4.0),
            patch_size=6,
            img_size=32,
            pool="avg",
            rank_ratio=0.5,
            head_dim=16,
        ),
        SubnetConfig(
            embed_dim=48,
            depth=2,
            num_heads=(1, 2),
            mlp_ratio=(3.0, 4.0),
            patch_size=8,
            img_size=32,
            rel_pos=True,
            rank_ratio=0.75,
            attn_rank_ratio=0.6,
            head_dim=16,
        ),
    ],
)
def test_analytic_flops_match_torch_flop_counter(cfg: SubnetConfig) -> None:
    model = StaticViT(cfg).eval()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, cfg.img_size, cfg.img_size))
    assert counter.get_total_flops() == count_flops(cfg)


def test_static_model_starts_from_the_supernets_initialisation() -> None:
    """A subnet trained from scratch (`StaticViT(cfg)`) draws every weight from the same
    distribution as the supernet it could have been extracted from (at the supernet's stored
    patch size; the position embedding is resampled from the finest grid, so it is left out)."""
    space = load_space("digits-tiny")
    cfg = dataclasses.replace(space.sample(np.random.default_rng(0)), patch_size=max(space.patch_size))
    torch.manual_seed(0)
    static = StaticViT(cfg).state_dict()
    torch.manual_seed(1)
    extracted = extract_subnet(Supernet(space), cfg).state_dict()
    assert static.keys() == extracted.keys()
    for name, mine in static.items():
        theirs = extracted[name]
        if name == "pos_embed":
            continue
        if theirs.std() == 0:  # LayerNorm affines and biases: exact constants
            assert torch.equal(mine, theirs), name
        else:
            assert mine.std().item() == pytest.approx(theirs.std().item(), rel=0.15), name


def _attention_logit_sd(model: nn.Module) -> float:
    """Std of the first attention's q.k / sqrt(head_dim) over unit-scale (layer-normed) tokens."""
    attn = model.blocks[0].attn
    hd = attn.head_dim
    x = torch.randn(64, model.blocks[0].norm1.weight.shape[0])
    with torch.no_grad():
        qkv = attn.qkv(x) if isinstance(model, StaticViT) else attn.qkv(x, attn.qkv.max_out)
    q, k = qkv[:, :hd], qkv[:, qkv.shape[1] // 3 : qkv.shape[1] // 3 + hd]
    return ((q @ k.T) / hd**0.5).std().item()


def test_lecun_qkv_init_gives_unit_scale_attention_logits_and_touches_nothing_else() -> None:
    """The default leaves the supernet bit-identical; ``lecun`` redraws only the qkv weights,
    at std fan_in^-1/2, which turns near-uniform attention (logit sd ~0.04) into O(1) logits."""
    space = load_space("digits-tiny")
    nets = {}
    for scheme in ("reference", "trunc_normal", "lecun"):
        torch.manual_seed(0)
        nets[scheme] = Supernet(space)
        if scheme != "reference":
            assert init_qkv_(nets[scheme], scheme) == max(space.depth)
    ref = nets["reference"].state_dict()
    assert all(torch.equal(t, ref[k]) for k, t in nets["trunc_normal"].state_dict().items())
    for name, t in nets["lecun"].state_dict().items():
        if name.endswith("attn.qkv.weight"):
            assert t.std().item() == pytest.approx(t.shape[1] ** -0.5, rel=0.1), name
        else:
            assert torch.equal(t, ref[name]), name
    default, lecun = nets["trunc_normal"], nets["lecun"]
    assert QKV_INITS == CONFIG_QKV_INITS  # the config validates the choices init_qkv_ takes
    assert _attention_logit_sd(default) < 0.1 < 0.5 < _attention_logit_sd(lecun)


def test_lecun_qkv_init_of_a_factorised_projection_keeps_the_product_at_fan_in_scale() -> None:
    cfg = SubnetConfig(
        embed_dim=96, depth=1, num_heads=(4,), mlp_ratio=(2.0,), patch_size=8, img_size=32,
        rank_ratio=0.5, attn_rank_ratio=0.5, head_dim=16,
    )  # fmt: skip
    model = StaticViT(cfg)
    assert init_qkv_(model, "lecun") == 1
    qkv = model.blocks[0].attn.qkv
    product = qkv.u.weight @ qkv.v.weight
    assert product.std().item() == pytest.approx(96**-0.5, rel=0.15)
    assert _attention_logit_sd(model) > 0.5
    with pytest.raises(ValueError, match="qkv init must be one of"):
        init_qkv_(model, "xavier")


def test_set_active_refuses_configs_outside_the_space() -> None:
    space = load_space("digits-tiny")
    net = Supernet(space)
    with pytest.raises(ConfigError, match="not in space"):
        net.set_active(dataclasses.replace(space.max_config(), embed_dim=max(space.embed_dim) + 8))


def test_gradients_reach_only_the_active_slice() -> None:
    space = load_space("digits-tiny")
    net = Supernet(space)
    cfg = space.min_config()
    net.set_active(cfg)
    net(torch.randn(2, 3, space.img_size, space.img_size)).sum().backward()
    fc1_v = net.blocks[0].mlp.fc1.v.weight.grad
    rank = cfg.linear_rank("fc1", 0)
    assert fc1_v[:rank, : cfg.embed_dim].abs().sum() > 0
    assert fc1_v[rank:].abs().sum() == 0 and fc1_v[:, cfg.embed_dim :].abs().sum() == 0
    assert all(b.norm1.weight.grad is None for b in net.blocks[cfg.depth :])


def _dense_model() -> tuple[SubnetConfig, StaticViT]:
    cfg = SubnetConfig(
        embed_dim=48,
        depth=2,
        num_heads=2,
        mlp_ratio=4.0,
        patch_size=8,
        img_size=32,
        head_dim=16,
        num_classes=10,
    )
    model = StaticViT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return cfg, model


def test_svd_init_full_rank_reproduces_dense_and_error_falls_with_rank(tmp_path) -> None:
    dense_cfg, dense = _dense_model()
    path = tmp_path / "dense.pth"
    torch.save({"model": dense.state_dict()}, path)
    ratios = [0.25, 0.5, 0.75, 1.0]
    space = SearchSpace(
        embed_dim=[32, 48],
        depth=[1, 2],
        num_heads=[1, 2],
        mlp_ratio=[2.0, 4.0],
        patch_size=[8],
        rank_ratio=ratios,
        attn_rank_ratio=[0.5, 1.0],
        img_size=32,
        head_dim=16,
        num_classes=10,
    )
    net = Supernet(space).eval()
    assert init_from_dense(net, load_dense_state_dict(path)) == []
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        ref = dense(x)
        errors = []
        for r in ratios:
            net.set_active(dataclasses.replace(dense_cfg, rank_ratio=r, attn_rank_ratio=1.0))
            errors.append(((net(x) - ref) ** 2).mean().item() / (ref**2).mean().item())
    assert errors[-1] < 1e-10
    assert all(a > b for a, b in itertools.pairwise(errors)), errors


def test_dense_supernet_checkpoint_initialises_every_point_by_svd(tmp_path) -> None:
    """A checkpoint of this project's dense supernet is an SVD source: at full rank the low-rank
    point supernet computes what the dense one computes at that patch size (kernel and position
    embedding resampled once at init, as the dense supernet resamples them at run time)."""
    from training.checkpoint import save_checkpoint
    from training.run import dense_init_state

    common = dict(embed_dim=[32, 48], depth=[1, 2], num_heads=[1, 2], mlp_ratio=[2.0, 4.0], img_size=32,
                  head_dim=16, num_classes=10)  # fmt: skip
    dense_space = SearchSpace(**common, patch_size=[4, 8], rank_ratio=[None])
    torch.manual_seed(0)
    dense = Supernet(dense_space).eval()
    with torch.no_grad():
        for p in dense.parameters():
            p.normal_(0, 0.2)
    path = tmp_path / "dense" / "checkpoint.pth"
    save_checkpoint(path, space=dense_space, config={}, epoch=1, model=dense.state_dict())
    x = torch.randn(4, 3, 32, 32)
    for patch in (4, 8):
        point = SearchSpace(**common, patch_size=[patch], rank_ratio=[1.0], attn_rank_ratio=[1.0])
        net = Supernet(point).eval()
        assert init_from_dense(net, dense_init_state(path, point)) == []
        cfg = point.max_config()
        dense.set_active(dataclasses.replace(cfg, rank_ratio=None, attn_rank_ratio=None))
        net.set_active(cfg)
        with torch.no_grad():
            torch.testing.assert_close(net(x), dense(x), rtol=1e-4, atol=1e-4)
    low = tmp_path / "low.pth"
    save_checkpoint(low, space=point, config={}, epoch=1, model=net.state_dict())
    with pytest.raises(ConfigError, match="is low-rank; SVD initialisation starts from a dense space"):
        dense_init_state(low, point)
    with pytest.raises(ConfigError, match="has img_size 32, the target space 64"):
        dense_init_state(path, point.replace(img_size=64))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot be read"):
        dense_init_state(tmp_path / "junk.pth", point)


def test_svd_init_resamples_patch_embedding_and_refuses_bad_files(tmp_path) -> None:
    _, dense = _dense_model()
    space = SearchSpace(
        embed_dim=[48],
        depth=[2],
        num_heads=[2],
        mlp_ratio=[4.0],
        patch_size=[4],
        rank_ratio=[1.0],
        img_size=32,
        head_dim=16,
        num_classes=10,
    )
    net = Supernet(space)
    init_from_dense(net, dense.state_dict())
    assert net.patch_embed.weight.shape[-1] == 4 and net.pos_embed.shape[1] == 1 + 64
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):  # noqa: B017 - torch's own unpickling error
        load_dense_state_dict(tmp_path / "junk.pth")
    with pytest.raises(ConfigError, match="does not exist"):
        load_dense_state_dict(tmp_path / "missing.pth")
    small = Supernet(space.replace(embed_dim=[32]))
    with pytest.raises(ConfigError, match="does not fit"):
        init_from_dense(small, dense.state_dict())
