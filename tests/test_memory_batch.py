"""Vectorised scoring equals the scalar schedules; R by enumeration and by sampling."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from memory_model import (
    encode_configs,
    enumerate_batch,
    mcu_peak_bytes,
    paper_peak_bytes,
    peak_bytes_batch,
    sample_batch,
    share_within_budget,
)
from memory_model.int8.verify import tiny_spaces
from search_space import ConfigError, SearchSpace, load_space

PRESETS = ["mcuformer-t", "autoformer-t", "autoformer-s", "autoformer-b", "digits-tiny"]


def _scalar(cfg, schedule: str, sram: bool) -> int:
    return paper_peak_bytes(cfg) if schedule == "paper" else mcu_peak_bytes(cfg, sram)


@pytest.mark.parametrize("name", PRESETS)
def test_batch_equals_scalar_on_presets(name: str, rng) -> None:
    space = load_space(name)
    configs = [space.sample(rng) for _ in range(250)] + [space.min_config(), space.max_config()]
    # also factorised attention, which no preset uses
    configs += [dataclasses.replace(c, attn_rank_ratio=0.45) for c in configs[:150]]
    batch = encode_configs(configs)
    for schedule, sram in (("paper", False), ("mcu", False), ("mcu", True)):
        got = peak_bytes_batch(batch, schedule, sram)
        want = np.array([_scalar(c, schedule, sram) for c in configs])
        assert np.array_equal(got, want), (name, schedule, sram)


def test_batch_equals_scalar_on_tiny_spaces_mixed(rng) -> None:
    configs = [sp.sample(rng) for sp in tiny_spaces() for _ in range(150)]
    order = rng.permutation(len(configs))
    configs = [configs[i] for i in order]  # mixed fixed settings in one batch
    batch = encode_configs(configs)
    for schedule, sram in (("paper", False), ("mcu", False), ("mcu", True)):
        want = np.array([_scalar(c, schedule, sram) for c in configs])
        assert np.array_equal(peak_bytes_batch(batch, schedule, sram), want)


def test_sample_batch_matches_space_distribution(rng) -> None:
    space = load_space("digits-tiny")
    batch = sample_batch(space, rng, 30_000)
    assert set(np.unique(batch.depth)) == set(space.depth)
    assert set(np.unique(batch.embed_dim)) == set(space.embed_dim)
    for d in space.depth:  # each depth ~ 1/3; padding beyond depth is zero
        rows = batch.depth == d
        assert abs(rows.mean() - 1 / 3) < 0.02
        assert (batch.num_heads[rows, d:] == 0).all() and (batch.num_heads[rows, :d] > 0).all()
    # the first sampled rows decode to configs inside the space with the same peak
    configs = [space.sample(rng) for _ in range(3000)]
    a = peak_bytes_batch(encode_configs(configs), "mcu")
    b = peak_bytes_batch(batch, "mcu")
    assert abs(np.median(a) - np.median(b)) / np.median(a) < 0.05


def test_enumeration_weights_follow_the_sampler() -> None:
    space = SearchSpace(
        embed_dim=(16, 24), depth=(1, 2), num_heads=(1, 2), mlp_ratio=(2.0,), patch_size=(4, 8),
        img_size=16, num_classes=10, head_dim=8,
    )  # fmt: skip
    batch, weight = enumerate_batch(space)
    assert len(batch) == space.num_subnets() == 2 * (2 + 4) * 2
    assert np.isclose(weight.sum(), 1.0)
    # a depth-1 subnet is twice as likely as each depth-2 subnet (1/2 * 1/2 vs 1/2 * 1/4)
    assert np.allclose(weight[batch.depth == 1], 1 / 2 / 4 / 2)
    assert np.allclose(weight[batch.depth == 2], 1 / 2 / 4 / 4)


def test_share_enumeration_matches_sampling(rng) -> None:
    space = load_space("digits-tiny").replace(rank_ratio=(0.5, 1.0), patch_size=(4, 8))
    peaks = peak_bytes_batch(enumerate_batch(space)[0], "mcu")
    budget = int(np.median(peaks))
    exact = share_within_budget(space, budget, "mcu", rng)
    assert exact.method == "enumeration" and exact.num_evaluated == space.num_subnets()
    sampled = share_within_budget(space, budget, "mcu", rng, n_samples=40_000, max_enumerate=0)
    assert sampled.method == "sampling" and sampled.stderr > 0
    assert abs(exact.share - sampled.share) < 4 * sampled.stderr + 1e-9
    # and against the space's own sampler through Python objects
    configs = [space.sample(rng) for _ in range(4000)]
    via_objects = np.mean([mcu_peak_bytes(c) <= budget for c in configs])
    assert abs(via_objects - exact.share) < 4 * np.sqrt(exact.share * (1 - exact.share) / 4000)


@pytest.mark.parametrize("schedule", ["paper", "mcu"])
def test_share_in_unit_interval_and_monotone_in_budget(schedule: str, rng) -> None:
    for name in ("digits-tiny", "mcuformer-t"):
        space = load_space(name)
        shares = [
            share_within_budget(space, b, schedule, np.random.default_rng(1), n_samples=5000).share
            for b in (0, 64 * 1024, 128 * 1024, 256 * 1024, 512 * 1024, 2**40)
        ]
        assert shares[0] == 0.0 and shares[-1] == 1.0
        assert all(0.0 <= s <= 1.0 for s in shares)
        assert all(a <= b for a, b in itertools.pairwise(shares))


def test_share_rejects_bad_input() -> None:
    space = load_space("mcuformer-t")
    with pytest.raises(ConfigError, match="needs an rng"):
        share_within_budget(space, 1000, "mcu")
    with pytest.raises(ConfigError, match="schedules"):
        share_within_budget(space, 1000, "tflm", np.random.default_rng(0))
    with pytest.raises(ConfigError, match="budget_bytes"):
        share_within_budget(space, -1, "mcu", np.random.default_rng(0))


@pytest.mark.parametrize("name", PRESETS)
def test_stream_batch_equals_scalar_on_presets(name: str, rng) -> None:
    space = load_space(name)
    configs = [space.sample(rng) for _ in range(250)] + [space.min_config(), space.max_config()]
    configs += [dataclasses.replace(c, attn_rank_ratio=0.45) for c in configs[:150]]
    batch = encode_configs(configs)
    for sram in (False, True):
        got = peak_bytes_batch(batch, "mcu", sram, input="stream")
        want = np.array([mcu_peak_bytes(c, sram, "stream") for c in configs])
        assert np.array_equal(got, want), (name, sram)
        # streaming never costs more than the whole image, and saves where the input binds
        assert (got <= peak_bytes_batch(batch, "mcu", sram)).all()


def test_stream_batch_equals_scalar_on_tiny_spaces_mixed(rng) -> None:
    configs = [sp.sample(rng) for sp in tiny_spaces() for _ in range(150)]
    # patch = image (the band is the whole image) and grey images
    configs += [dataclasses.replace(c, patch_size=c.img_size) for c in configs[:60]]
    configs += [dataclasses.replace(c, in_chans=1) for c in configs[60:160]]
    configs = [configs[i] for i in rng.permutation(len(configs))]
    batch = encode_configs(configs)
    for sram in (False, True):
        want = np.array([mcu_peak_bytes(c, sram, "stream") for c in configs])
        assert np.array_equal(peak_bytes_batch(batch, "mcu", sram, input="stream"), want)


def test_stream_share_matches_scalar_and_lowers_input_bound_points(rng) -> None:
    space = load_space("mcuformer-t").replace(patch_size=(20,), rank_ratio=(0.4,))
    budget = 160 * 1024  # between the streamed and the whole-image peak of large subnets
    whole = share_within_budget(space, budget, "mcu", np.random.default_rng(3), n_samples=3000)
    stream = share_within_budget(
        space, budget, "mcu", np.random.default_rng(3), n_samples=3000, input="stream"
    )
    assert stream.share > whole.share
    configs = [space.sample(rng) for _ in range(400)]
    via_objects = np.mean([mcu_peak_bytes(c, False, "stream") <= budget for c in configs])
    assert abs(via_objects - stream.share) < 4 * np.sqrt(stream.share * (1 - stream.share) / 400) + 0.01


def test_batch_options_are_checked() -> None:
    batch = encode_configs([load_space("digits-tiny").min_config()])
    with pytest.raises(ConfigError, match="input mode 'camera'"):
        peak_bytes_batch(batch, "mcu", input="camera")
    with pytest.raises(ConfigError, match="has no option 'input'"):
        peak_bytes_batch(batch, "paper", input="stream")
    with pytest.raises(ConfigError, match="has no option 'input'"):
        share_within_budget(
            load_space("digits-tiny"), 1000, "paper", np.random.default_rng(0), input="stream"
        )
