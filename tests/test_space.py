"""SubnetConfig and SearchSpace: validation, YAML round trips, sampling operators."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import yaml

from search_space import ConfigError, SearchSpace, SubnetConfig, load_space, low_rank_dim

PRESETS = ["mcuformer-t", "autoformer-t", "autoformer-s", "autoformer-b", "digits-tiny", "digits-tiny-dense"]


def _tiny(**kw) -> dict:
    base = dict(embed_dim=32, depth=2, num_heads=[1, 2], mlp_ratio=[2.0, 4.0], patch_size=8, img_size=32)
    return {**base, **kw}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_round_trips_and_operators_stay_inside(name: str, rng: np.random.Generator) -> None:
    space = load_space(name)
    assert SearchSpace.from_dict(yaml.safe_load(yaml.safe_dump(space.to_dict()))) == space
    configs = [space.min_config(), space.max_config()] + [space.sample(rng) for _ in range(30)]
    for cfg in configs:
        assert space.contains(cfg), space.violation(cfg)
        again = SubnetConfig.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
        assert again == cfg and hash(again) == hash(cfg)
    for a, b in itertools.pairwise(configs):
        child = space.crossover(a, b, rng)
        assert space.contains(child), space.violation(child)
        mutant = space.mutate(a, rng)
        assert space.contains(mutant), space.violation(mutant)
        for i in range(child.depth):  # each gene comes from a parent that has that layer
            assert child.num_heads[i] in {p.num_heads[i] for p in (a, b) if i < p.depth}


def test_sampling_is_reproducible_and_covers_choices() -> None:
    space = load_space("mcuformer-t")
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(1)
    seen = {space.sample(rng).patch_size for _ in range(200)}
    assert seen == set(space.patch_size)


def test_mutation_probabilities_zero_and_one(rng: np.random.Generator) -> None:
    space = load_space("autoformer-s")
    cfg = space.sample(rng)
    assert space.mutate(cfg, rng, prob=0.0, layer_prob=0.0) == cfg
    changed = [space.mutate(cfg, rng, prob=1.0, layer_prob=1.0) != cfg for _ in range(20)]
    assert sum(changed) >= 15


def test_exact_subnet_count() -> None:
    space = SearchSpace(
        **_tiny(embed_dim=[16, 32], depth=[1, 2], num_heads=[1, 2], mlp_ratio=[2.0], patch_size=[4, 8])
    )
    # embed 2 x (layers: 2^1 + 2^2) x patch 2
    assert space.num_subnets() == 2 * (2 + 4) * 2


def test_derived_quantities() -> None:
    cfg = SubnetConfig(**_tiny(patch_size=12, img_size=32, rank_ratio=0.5, attn_rank_ratio=None))
    assert cfg.grid_size == 3 and cfg.num_patches == 9 and cfg.num_tokens == 10
    assert cfg.qkv_dim(1) == 128 and cfg.mlp_hidden(1) == 128
    assert cfg.linear_rank("fc1", 1) == low_rank_dim(0.5, 32, 128) == 16
    assert cfg.linear_rank("qkv", 0) is None
    mcu = load_space("mcuformer-t")
    tokens = {p: dataclasses.replace(mcu.min_config(), patch_size=p).num_patches for p in mcu.patch_size}
    assert tokens == {16: 225, 20: 144, 24: 100, 28: 81, 32: 64}


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        (_tiny(embed_dim=0), "embed_dim"),
        (_tiny(depth=3), "num_heads"),
        (_tiny(mlp_ratio=[2.0]), "mlp_ratio"),
        (_tiny(num_heads=[1, -2]), "num_heads"),
        (_tiny(patch_size=64), "patch_size"),
        (_tiny(rank_ratio=1.5), "rank_ratio"),
        (_tiny(attn_rank_ratio=0.0), "attn_rank_ratio"),
        (_tiny(pool="max"), "pool"),
        (_tiny(act="swish"), "act"),
        (_tiny(rel_pos="yes"), "rel_pos"),
        (_tiny(embed_dim=32.5), "embed_dim"),
        (_tiny(mlp_ratio=[2.0, float("nan")]), "mlp_ratio"),
        ({**_tiny(), "embed": 32}, "embed"),
        ({k: v for k, v in _tiny().items() if k != "patch_size"}, "patch_size"),
    ],
)
def test_bad_subnets_name_the_field(fields: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        SubnetConfig.from_dict(fields)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def _space(**kw) -> dict:
    base = dict(
        embed_dim=[16, 32], depth=[1, 2], num_heads=[1, 2], mlp_ratio=[2.0], patch_size=[8], img_size=32
    )
    return {**base, **kw}


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({**_space(), "embed_dims": [16]}, "embed_dims"),
        (_space(embed_dim=[]), "embed_dim"),
        (_space(depth=[1.5]), "depth"),
        (_space(num_heads=[2, 2]), "num_heads"),
        (_space(mlp_ratio=["big"]), "mlp_ratio"),
        (_space(patch_size=[8, 64]), "patch_size"),
        (_space(rank_ratio=[0.5, None]), "rank_ratio"),
        (_space(rank_ratio=[0.5, 2.0]), "rank_ratio"),
        (_space(pool="none"), "pool"),
        (_space(depth=[-1]), "depth"),
        ({k: v for k, v in _space().items() if k != "depth"}, "depth"),
    ],
)
def test_bad_spaces_name_the_field(fields: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        SearchSpace.from_dict(fields)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_bad_space_files(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("embed_dim: [16\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        SearchSpace.from_yaml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        SearchSpace.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="no space preset"):
        load_space("mcuformer-xl")


def test_contains_rejects_outside_configs() -> None:
    space = load_space("mcuformer-t")
    cfg = space.max_config()
    assert not space.contains(dataclasses.replace(cfg, embed_dim=256))
    assert not space.contains(dataclasses.replace(cfg, img_size=224))
    assert not space.contains(dataclasses.replace(cfg, rank_ratio=0.42))
    assert "mlp_ratio[0]" in space.violation(dataclasses.replace(cfg, mlp_ratio=(3.0, *cfg.mlp_ratio[1:])))
