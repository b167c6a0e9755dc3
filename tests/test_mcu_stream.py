"""The ``mcu`` schedule's streamed input: one row of patches in SRAM, same logits, peak proven."""

from __future__ import annotations

import numpy as np
import pytest

from memory_model import peak_sram
from memory_model.int8 import ArenaOverflowError, run_int8
from memory_model.int8.quant import random_quant_vit
from memory_model.mcu import build_ops, mcu_peak_bytes, stream_band_bytes
from search_space import ConfigError, SubnetConfig

CFGS = [
    SubnetConfig(embed_dim=16, depth=1, num_heads=(2,), mlp_ratio=(2.0,), patch_size=8, img_size=30,
                 num_classes=10, head_dim=8, rank_ratio=0.5),  # padded grid, cls
    SubnetConfig(embed_dim=12, depth=2, num_heads=(1, 2), mlp_ratio=(2.0, 1.0), patch_size=6, img_size=24,
                 num_classes=7, head_dim=4, pool="avg", act="relu", in_chans=1),
    SubnetConfig(embed_dim=16, depth=1, num_heads=(1,), mlp_ratio=(2.0,), patch_size=3, img_size=20,
                 num_classes=3, head_dim=8, attn_rank_ratio=0.5),  # patch < sub-kernel
]  # fmt: skip


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.short())
@pytest.mark.parametrize("sram", [False, True])
def test_stream_peak_equals_high_water_and_logits_match(cfg: SubnetConfig, sram: bool) -> None:
    rng = np.random.default_rng(0)
    model = random_quant_vit(cfg, rng)
    image = rng.integers(0, 256, (cfg.img_size, cfg.img_size, cfg.in_chans), dtype=np.uint8)
    calls: list[tuple[int, int]] = []

    def source(y0: int, y1: int) -> np.ndarray:
        calls.append((y0, y1))
        return image[y0:y1]

    ops = build_ops(cfg, sram, input="stream")
    peak = max(sum(op.live.values()) for op in ops)
    assert peak == mcu_peak_bytes(cfg, sram, "stream")
    whole = run_int8(model, image, sram)
    streamed = run_int8(model, None, sram, arena_bytes=peak, input="stream", source=source)
    assert streamed.high_water_bytes == peak
    assert np.array_equal(streamed.logits_int32, whole.logits_int32)
    assert [u for _, u in streamed.op_bytes] == [sum(op.live.values()) for op in ops]
    p = cfg.patch_size
    assert calls == [(y, min(y + p, cfg.img_size)) for y in range(0, cfg.img_size, p)]
    with pytest.raises(ArenaOverflowError):
        run_int8(model, image, sram, arena_bytes=peak - 4, input="stream")


def test_stream_holds_one_row_of_patches() -> None:
    cfg = CFGS[0]
    embed = next(op for op in build_ops(cfg, input="stream") if op.name == "patch_embed")
    assert embed.live["I"] == stream_band_bytes(cfg) == 8 * 30 * 3
    assert "input" not in [op.name for op in build_ops(cfg, input="stream")]


def test_stream_lowers_an_input_bound_peak() -> None:
    cfg = SubnetConfig(embed_dim=16, depth=1, num_heads=(1,), mlp_ratio=(1.0,), patch_size=16, img_size=96,
                       num_classes=10, head_dim=8)  # fmt: skip
    whole, stream = mcu_peak_bytes(cfg), mcu_peak_bytes(cfg, input="stream")
    peak_op = peak_sram(cfg, "mcu").peak_op
    assert peak_op.live.get("I") == 96 * 96 * 3  # the whole image sets the peak
    assert stream < whole / 2
    assert peak_sram(cfg, "mcu", input="stream").peak_bytes == stream


def test_default_ops_unchanged_and_bad_mode_refused() -> None:
    cfg = CFGS[0]
    assert build_ops(cfg) == build_ops(cfg, input="whole")
    assert [op.kind for op in build_ops(cfg)][:2] == ["input", "patch_embed"]
    with pytest.raises(ConfigError, match="unknown mcu input mode 'rows'"):
        build_ops(cfg, input="rows")


def test_bad_source_rows_are_refused() -> None:
    cfg = CFGS[1]
    model = random_quant_vit(cfg, np.random.default_rng(0))
    bad = lambda y0, y1: np.zeros((y1 - y0, cfg.img_size, 3), np.uint8)  # noqa: E731
    with pytest.raises(ConfigError, match="input source returned"):
        run_int8(model, None, input="stream", source=bad)
