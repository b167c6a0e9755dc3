"""Proof helpers: run the int8 executor on a subnet and compare its arena with the ``mcu``
schedule's analytic peak (used by the tests and bench/bench_memory.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memory_model.int8.arena import ArenaOverflowError
from memory_model.int8.executor import run_int8
from memory_model.int8.quant import random_quant_vit
from memory_model.mcu import build_ops
from search_space.config import SubnetConfig
from search_space.space import SearchSpace


def tiny_spaces() -> list[SearchSpace]:
    """Small spaces with the preset spaces' structure (cls and avg pooling, dense and
    low-rank MLP and attention, patch sizes that do not divide the image, sub-4 patches)."""
    return [
        SearchSpace(  # mcuformer-t: cls, low-rank MLP, patch axis, padded grids
            embed_dim=(16, 24),
            depth=(1, 2),
            num_heads=(1, 2),
            mlp_ratio=(1.5, 2.0),
            rank_ratio=(0.4, 0.7, 0.95),
            patch_size=(4, 5, 6, 7, 8),
            img_size=30,
            num_classes=10,
            head_dim=8,
            name="mcuformer-tiny",
        ),
        SearchSpace(  # autoformer-t/s/b: cls, dense, gelu, no qkv bias variant
            embed_dim=(12, 20),
            depth=(1, 2, 3),
            num_heads=(1, 2, 3),
            mlp_ratio=(1.0, 2.0),
            patch_size=(4, 6),
            img_size=24,
            num_classes=7,
            head_dim=4,
            qkv_bias=False,
            name="autoformer-tiny",
        ),
        SearchSpace(  # digits-tiny: avg pool, gelu_sigmoid, low-rank MLP, patch < 4
            embed_dim=(16, 20),
            depth=(1, 2),
            num_heads=(1, 2),
            mlp_ratio=(2.0, 3.0),
            rank_ratio=(0.5, 1.0),
            patch_size=(3, 4, 6),
            img_size=20,
            num_classes=10,
            head_dim=8,
            pool="avg",
            act="gelu_sigmoid",
            name="digits-tiny-small",
        ),
        SearchSpace(  # low-rank attention and MLP, relu, no position embedding
            embed_dim=(16,),
            depth=(1, 2),
            num_heads=(1, 2),
            mlp_ratio=(0.5, 2.0),
            rank_ratio=(0.5,),
            attn_rank_ratio=(0.3, 0.8),
            patch_size=(5, 8),
            img_size=21,
            num_classes=3,
            head_dim=8,
            act="relu",
            abs_pos=False,
            name="lowrank-tiny",
        ),
    ]


@dataclass(frozen=True)
class ScheduleCheck:
    analytic_bytes: int
    measured_bytes: int
    per_op_equal: bool  # arena bytes in use == the op's live sum, for every op
    fits_exact: bool  # runs in an arena of exactly the analytic peak, same logits
    overflows_below: bool  # an arena 4 bytes smaller overflows

    @property
    def ok(self) -> bool:
        return (
            self.analytic_bytes == self.measured_bytes
            and self.per_op_equal
            and self.fits_exact
            and self.overflows_below
        )


def check_mcu_schedule(cfg: SubnetConfig, weights_in_sram: bool, rng: np.random.Generator) -> ScheduleCheck:
    """Run ``cfg`` (random int8 weights, random image) and compare arena with schedule."""
    model = random_quant_vit(cfg, rng)
    image = rng.integers(0, 256, (cfg.img_size, cfg.img_size, cfg.in_chans), dtype=np.uint8)
    ops = build_ops(cfg, weights_in_sram)
    analytic = max(sum(op.live.values()) for op in ops)
    loose = run_int8(model, image, weights_in_sram, ops=ops)
    per_op = [u for _, u in loose.op_bytes] == [sum(op.live.values()) for op in ops]
    exact = run_int8(model, image, weights_in_sram, arena_bytes=analytic, ops=ops)
    try:
        run_int8(model, image, weights_in_sram, arena_bytes=analytic - 4, ops=ops)
        overflow = False
    except ArenaOverflowError:
        overflow = True
    fits = exact.high_water_bytes == analytic and np.array_equal(exact.logits_int32, loose.logits_int32)
    return ScheduleCheck(analytic, loose.high_water_bytes, per_op, fits, overflow)
