"""`paper` and `mcu` peak-SRAM schedules: hand-derived cases, monotonicity, dispatcher."""

from __future__ import annotations

import dataclasses

import pytest

from memory_model import mcu_report, paper_report, peak_sram
from memory_model.mcu import build_ops
from search_space import ConfigError, SubnetConfig, load_space

# One block: img 16, patch 4 -> 4x4 grid + cls = N 17 tokens; E 16; 1 head of d 8 (q 8);
# MLP hidden 32; 10 classes.
HAND = SubnetConfig(
    embed_dim=16, depth=1, num_heads=(1,), mlp_ratio=(2.0,), patch_size=4, img_size=16,
    num_classes=10, head_dim=8,
)  # fmt: skip


def test_paper_hand_computed() -> None:
    # qkv 16->24: 16*24 + 17*24 = 792; proj 8->16: 128 + 17*16 = 400;
    # fc1 16->32: 512 + 17*32 = 1056; fc2 32->16: 512 + 17*32 = 1056 -> peak 1056 at fc1.
    rep = paper_report(HAND)
    assert [op.total_bytes for op in rep.ops] == [792, 400, 1056, 1056]
    assert rep.peak_bytes == 1056 and rep.peak_op.name == "blocks.0.fc1"
    # low-rank MLP at 0.5: fc1 rank round(0.5*16) = 8: v 16->8: 128 + 17*16 = 400,
    # u 8->32: 256 + 17*32 = 800; fc2 rank 8: v 32->8: 256 + 544 = 800, u 8->16: 128 + 272.
    low = paper_report(dataclasses.replace(HAND, rank_ratio=0.5))
    assert [op.total_bytes for op in low.ops] == [792, 400, 400, 800, 800, 400]
    assert low.peak_bytes == 800


def test_mcu_hand_computed_weights_in_flash() -> None:
    # X = 17*16 = 272; A = 272; O = Q = K = V = 17*8 = 136; S = 17*17 = 289 -> 292 (aligned);
    # softmax row 4*17 = 68. Scores op: X + A + O + Q + K + S + row = 1312.
    # Patch: image 16*16*3 = 768 + X 272 + int32 token accumulator 64 = 1104.
    # fc1: X + B (17*32 = 544) + one-token temp 32 = 848. Peak: the scores op.
    rep = mcu_report(HAND, weights_in_sram=False)
    by_name = {op.name: op.total_bytes for op in rep.ops}
    assert by_name["patch_embed"] == 1104
    assert by_name["blocks.0.attn.h0.scores"] == 1312
    assert by_name["blocks.0.mlp.fc1"] == 848
    assert rep.peak_bytes == 1312 and rep.peak_op.name == "blocks.0.attn.h0.scores"
    assert rep.peak_op.live == {"X": 272, "A": 272, "O": 136, "Q": 136, "K": 136, "S": 292, "T32": 68}


def test_mcu_hand_computed_weights_in_sram() -> None:
    # Patch stages bias 4*16 = 64 + one 4x4 sub-kernel 16*3*16 = 768: 1104 + 832 = 1936.
    # fc1 stages bias 4*32 + weight 16*32 = 640: 848 + 640 = 1488. Peak: patch embedding.
    rep = mcu_report(HAND, weights_in_sram=True)
    by_name = {op.name: op.total_bytes for op in rep.ops}
    assert by_name["patch_embed"] == 1936
    assert by_name["blocks.0.mlp.fc1"] == 1488
    assert by_name["blocks.0.attn.h0.k"] == 272 + 272 + 136 + 136 + 136 + (4 * 8 + 8 * 16)
    assert rep.peak_bytes == 1936 and rep.peak_op.name == "patch_embed"
    assert "W" in rep.peak_op.live and "patch_embed" in rep.table()


def test_every_live_buffer_is_aligned_and_ops_balance() -> None:
    for cfg in (HAND, load_space("digits-tiny").max_config(), load_space("mcuformer-t").min_config()):
        for sram in (False, True):
            ops = build_ops(cfg, sram)
            assert all(n % 4 == 0 for op in ops for n in op.live.values())
            final = ops[-1].live
            assert set(final) - {"W"} == {"P", "logits"}  # only the pooled vector and logits remain


SPACES = ["mcuformer-t", "autoformer-t", "digits-tiny"]


def _schedules():
    return [("paper", {}), ("mcu", {"weights_in_sram": False}), ("mcu", {"weights_in_sram": True})]


@pytest.mark.parametrize("space_name", SPACES)
def test_monotone_in_tokens_embed_and_rank(space_name: str, rng) -> None:
    space = load_space(space_name)
    for _ in range(20):
        cfg = space.sample(rng)
        for schedule, opts in _schedules():
            peak = lambda c: peak_sram(c, schedule, **opts).peak_bytes  # noqa: B023, E731
            base = peak(cfg)
            smaller_patch = [p for p in space.patch_size if p < cfg.patch_size]
            for p in smaller_patch:  # more tokens
                assert peak(dataclasses.replace(cfg, patch_size=p)) >= base
            for e in space.embed_dim:
                if e > cfg.embed_dim:
                    assert peak(dataclasses.replace(cfg, embed_dim=e)) >= base
            for ratio in (0.3, 0.5, 0.75, 1.0):
                lo = peak(dataclasses.replace(cfg, rank_ratio=ratio, attn_rank_ratio=ratio))
                hi = peak(dataclasses.replace(cfg, rank_ratio=min(1.0, ratio + 0.2), attn_rank_ratio=ratio))
                hi2 = peak(dataclasses.replace(cfg, rank_ratio=ratio, attn_rank_ratio=min(1.0, ratio + 0.2)))
                assert hi >= lo and hi2 >= lo


def test_mcu_exceeds_paper_and_sram_exceeds_flash(rng) -> None:
    space = load_space("mcuformer-t")
    for _ in range(30):
        cfg = space.sample(rng)
        flash, sram = mcu_report(cfg).peak_bytes, mcu_report(cfg, weights_in_sram=True).peak_bytes
        assert sram > flash
        # mcu keeps the residual stream live besides each FC layer's activations
        assert flash > paper_report(cfg).peak_bytes - max(op.live["weights"] for op in paper_report(cfg).ops)


def test_dispatcher_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="unknown memory schedule"):
        peak_sram(HAND, "tinyengine")
    with pytest.raises(ConfigError, match="no option 'weights_in_sram'"):
        peak_sram(HAND, "paper", weights_in_sram=True)
    assert peak_sram(HAND).peak_bytes == 1312
    assert peak_sram(HAND, "mcu", weights_in_sram=True).options == {"weights_in_sram": True}
