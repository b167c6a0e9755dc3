"""The generic profiler: hand-derived peaks on small graphs, and the same graph and number as
the config-based ``tflm`` schedule on the project's static subnets."""

import numpy as np
import pytest
import torch
from timm.layers import config as timm_config
from torch import nn

from memory_model import flash_bytes, peak_sram, tflm_graph
from memory_model.planner import greedy_plan, max_live_bytes
from memory_model.profile import export_model, lower, profile_model
from memory_model.tflite_graph import graph_buffers
from search_space import load_space
from search_space.config import SubnetConfig
from search_space.static import StaticViT


def _peaks(model: nn.Module, example: torch.Tensor) -> tuple[int, int, list[str]]:
    g = lower(model, example)
    bufs = g.buffers()
    return greedy_plan(bufs).head_bytes, max_live_bytes(bufs), g.op_kinds()


class Chain(nn.Module):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.fc1, self.fc2, self.inplace = nn.Linear(64, 128), nn.Linear(128, 32), inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h = h.add_(1.0) if self.inplace else torch.relu(h)
        return self.fc2(h)


def test_linear_chain() -> None:
    # x 64 B [0,1], h 128 B [1,2] (ReLU fused into fc1), out 32 B [2,2]: 64 + 128 at scope 1
    head, live, kinds = _peaks(Chain(), torch.zeros(1, 64))
    assert kinds == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert (head, live) == (192, 192)


def test_inplace_op_shares_its_input_buffer() -> None:
    # add_ writes into fc1's buffer: 3 buffers, h lives [1,3]; peak still x + h at scope 1
    g = lower(Chain(inplace=True), torch.zeros(1, 64))
    assert g.op_kinds() == ["FULLY_CONNECTED", "ADD", "FULLY_CONNECTED"]
    bufs = g.buffers()
    assert sorted((b.size_bytes, b.first_op, b.last_op) for b in bufs) == [
        (32, 3, 3),
        (64, 0, 1),
        (128, 1, 3),
    ]
    assert greedy_plan(bufs).head_bytes == 192


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(32, 64), nn.Linear(64, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(x)))


def test_residual_block() -> None:
    # x (4x32 = 128 B) stays live to the ADD: at fc2, x + hidden (256) + fc2 out (128) = 512
    head, live, kinds = _peaks(Residual(), torch.zeros(1, 4, 32))
    assert kinds == ["FULLY_CONNECTED", "FULLY_CONNECTED", "ADD"]
    assert (head, live) == (512, 512)


class Attn(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ x.transpose(-2, -1)).softmax(-1) @ x


def test_attention_block() -> None:
    # x 128 [0,4], xᵀ 128 [1,2], scores 64 [2,3], probs 64 [3,4], out 128 [4,4]:
    # max-live 320 (scope 2 and 4); TFLM's greedy order (out, xᵀ, x, probs, scores) ends at 384
    head, live, kinds = _peaks(Attn(), torch.zeros(1, 8, 16))
    assert kinds == ["TRANSPOSE", "BATCH_MATMUL", "SOFTMAX", "BATCH_MATMUL"]
    assert (live, head) == (320, 384)


def test_reshape_copies_and_same_shape_view_aliases() -> None:
    class M(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x.reshape(1, 8, 8).view(1, 8, 8).reshape(1, 64).contiguous())

    g = lower(M(), torch.zeros(1, 4, 16))
    assert g.op_kinds() == ["RESHAPE", "RELU"]  # chained reshapes collapse; same-shape views alias


STATIC_CFGS = [
    SubnetConfig(
        embed_dim=48,
        depth=len(h),
        num_heads=h,
        mlp_ratio=(2.0,) * len(h),
        patch_size=8,
        img_size=img,
        num_classes=10,
        rank_ratio=rank,
        attn_rank_ratio=arank,
        pool=pool,
        act=act,
        head_dim=16,
        qkv_bias=qb,
    )
    for h, pool, act, rank, arank, img, qb in [
        ((2,), "cls", "gelu", 0.5, None, 30, True),
        ((1,), "cls", "relu", None, None, 32, True),
        ((2, 3), "avg", "gelu_sigmoid", None, 0.5, 32, False),
        ((1, 2), "avg", "relu", 0.7, None, 28, True),
        ((3,), "cls", "gelu", None, None, 32, False),
    ]
]


def _sampled(space: str, n: int) -> list[SubnetConfig]:
    rng = np.random.default_rng(1)
    return [load_space(space).sample(rng) for _ in range(n)]


@pytest.mark.parametrize("cfg", STATIC_CFGS + _sampled("digits-tiny", 3), ids=lambda c: c.short())
def test_static_subnet_equals_config_tflm(cfg: SubnetConfig) -> None:
    """Same graph (ops, buffer sizes and lifetimes), same peak and flash as the config-based model."""
    g = lower(StaticViT(cfg), torch.zeros(1, 3, cfg.img_size, cfg.img_size))
    ref = tflm_graph(cfg)
    assert g.op_kinds() == ref.op_names()
    ours = [(b.size_bytes, b.first_op, b.last_op) for b in g.buffers()]
    assert ours == [(b.size_bytes, b.first_op, b.last_op) for b in graph_buffers(ref)]
    report = profile_model(StaticViT(cfg), cfg.img_size)
    assert report.peak_bytes == peak_sram(cfg, "tflm").options["head_bytes"]  # profile plans the head
    assert report.flash_bytes == flash_bytes(cfg)
    assert report.max_live_bytes <= report.peak_bytes


@pytest.mark.slow
@pytest.mark.parametrize("cfg", _sampled("mcuformer-t", 2), ids=lambda c: c.short())
def test_mcuformer_subnet_equals_config_tflm(cfg: SubnetConfig) -> None:
    report = profile_model(StaticViT(cfg), cfg.img_size)
    assert report.peak_bytes == peak_sram(cfg, "tflm").options["head_bytes"]  # profile plans the head
    assert report.flash_bytes == flash_bytes(cfg)


def test_fused_attention_flag_is_restored() -> None:
    before = timm_config._USE_FUSED_ATTN
    ep = export_model(Attn(), torch.zeros(1, 4, 8))
    assert before == timm_config._USE_FUSED_ATTN
    assert any("softmax" in str(n.target) for n in ep.graph.nodes)


def test_profile_counts_flops_and_params() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10)
    )
    r = profile_model(model, 8, name="tiny")
    assert r.flops == 2 * (8 * 8 * 8 * 27 + 8 * 64 * 10)
    assert r.params == sum(p.numel() for p in model.parameters())
    assert r.op_kinds[:1] == ("CONV_2D",)  # batch norm and ReLU fused into the convolution
    # conv: int8 weights, int32 bias + records; BN folded (stores nothing); FC likewise
    assert r.flash_bytes == (8 * 27 + 4 * 8 + 2 * 12 * 8) + (8 * 64 * 10 + 4 * 10 + 2 * 12 * 10)
