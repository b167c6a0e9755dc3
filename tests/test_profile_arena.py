"""The profiler's whole TFLM arena (head + modelled tail) against the config-only arena on the
project's own subnets, where the tail rules were measured."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from memory_model.int8.verify import tiny_spaces
from memory_model.profile import profile_model
from memory_model.tflm import tflm_arena
from search_space.config import SubnetConfig
from search_space.space import load_space
from search_space.static import StaticViT


def _cfgs() -> list[SubnetConfig]:
    rng = np.random.default_rng(2)
    return [sp.sample(rng) for sp in tiny_spaces() for _ in range(2)] + [
        load_space("digits-tiny").sample(rng) for _ in range(3)
    ]


@pytest.mark.parametrize("cfg", _cfgs(), ids=lambda c: c.short())
def test_profile_arena_bounds_the_config_arena(cfg: SubnetConfig) -> None:
    torch.manual_seed(0)
    r = profile_model(StaticViT(cfg), cfg.img_size, cfg.in_chans)
    ref = tflm_arena(cfg)
    assert r.peak_bytes == ref.head_bytes
    assert r.tail_top_op == ref.tail.dominant_kind
    # never below; constants the converter shares by value are counted per op, so tiny models
    # (planning records dominate) are over by a few percent, larger ones by a fraction of one
    assert ref.total_bytes <= r.arena_bytes <= 1.06 * ref.total_bytes
    assert abs(r.tail_bytes - ref.tail.tail_bytes) <= 0.06 * ref.tail.tail_bytes
    if ref.head_bytes > 10 * ref.tail.plan_bytes:
        assert r.arena_bytes <= 1.005 * ref.total_bytes


def test_depthwise_convolution_keeps_per_channel_data() -> None:
    dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU())
    dense = nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU())
    a, b = profile_model(dw, 16, in_chans=8), profile_model(dense, 16, in_chans=8)
    assert a.tail_bytes > 0 and a.arena_bytes >= a.tail_bytes + a.peak_bytes
    assert "DEPTHWISE_CONV_2D" in a.op_kinds and a.tail_top_op == "DEPTHWISE_CONV_2D"
    assert a.tail_bytes >= 2 * 4 * 8 and b.tail_top_op == "CONV_2D"
