"""The ``tflm`` schedule from a config: converter graph layout, hand cases, monotonicity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memory_model.flash import flash_report, parameter_count
from memory_model.schedules import peak_sram
from memory_model.tflite_graph import graph_buffers
from memory_model.tflm import tflm_graph, tflm_plan, tflm_report
from search_space.config import SubnetConfig
from search_space.space import load_space


def _cfg(**kw) -> SubnetConfig:
    base = dict(embed_dim=48, depth=1, num_heads=(2,), mlp_ratio=(2.0,), patch_size=8, img_size=32,
                num_classes=10, head_dim=16, act="relu")  # fmt: skip
    base.update(kw)
    return SubnetConfig(**base)


# Op list of the int8 .tflite that deploy.export wrote for this subnet (avg pool, no position
# embedding, MLP factorised at rank 0.5, ReLU, non-zero biases): norm1's gamma/beta are folded
# into the dense qkv FC; norm2 (before the bias-free factor of fc1) and the final norm keep them.
CONVERTED_OPS = (
    ["CONV_2D", "TRANSPOSE", "RESHAPE", "TRANSPOSE"]
    + ["MEAN", "RESHAPE", "SQUARED_DIFFERENCE", "MEAN", "ADD", "RSQRT", "MUL", "SUB", "RESHAPE", "MUL",
       "RESHAPE", "ADD"]
    + ["FULLY_CONNECTED", "RESHAPE", "TRANSPOSE", "SLICE", "RESHAPE", "SLICE", "RESHAPE", "SLICE", "MUL", "MUL",
       "TRANSPOSE", "RESHAPE", "RESHAPE", "BATCH_MATMUL", "RESHAPE", "SOFTMAX", "RESHAPE", "RESHAPE",
       "BATCH_MATMUL", "RESHAPE", "TRANSPOSE", "RESHAPE", "FULLY_CONNECTED", "ADD"]
    + ["MEAN", "RESHAPE", "SQUARED_DIFFERENCE", "MEAN", "ADD", "RSQRT", "MUL", "SUB", "RESHAPE", "MUL",
       "RESHAPE", "ADD", "MUL", "ADD"]
    + ["FULLY_CONNECTED"] * 4 + ["ADD"]
    + ["MEAN", "RESHAPE", "SQUARED_DIFFERENCE", "MEAN", "ADD", "RSQRT", "MUL", "SUB", "RESHAPE", "MUL",
       "RESHAPE", "ADD", "MUL", "ADD"]
    + ["MEAN", "FULLY_CONNECTED"]
)  # fmt: skip


def test_graph_matches_the_converted_op_list() -> None:
    cfg = _cfg(pool="avg", abs_pos=False, rank_ratio=0.5)
    graph = tflm_graph(cfg)
    assert graph.op_names() == CONVERTED_OPS
    assert tflm_plan(cfg).head_bytes == 4352  # tflite-micro's measured head for that file


def test_cls_stem_requantises_before_concat() -> None:
    graph = tflm_graph(_cfg(img_size=30))  # 30 px -> padded to 32
    assert graph.op_names()[:8] == ["PAD", "CONV_2D", "TRANSPOSE", "RESHAPE", "TRANSPOSE", "QUANTIZE",
                                    "CONCATENATION", "ADD"]  # fmt: skip
    requant = graph.operators[5].outputs[0]
    assert requant == len(graph.tensors) - 1  # the quantizer appends its tensor last


def test_hand_computed_image_dominated_case() -> None:
    # 60 px image, patch 32 -> padded to 64: PAD reads the 10,800-byte input and writes a
    # 12,288-byte image; both live at scope 1. Every later tensor is tiny (2x2 = 4 tokens,
    # E = 16) and fits beside the padded image, so head = max-live = 10,800 + 12,288.
    cfg = SubnetConfig(embed_dim=16, depth=1, num_heads=(1,), mlp_ratio=(1.0,), patch_size=32, img_size=60,
                       num_classes=4, head_dim=16, pool="avg", abs_pos=False, act="relu")  # fmt: skip
    report = tflm_report(cfg)
    assert report.options["head_bytes"] == 60 * 60 * 3 + 64 * 64 * 3 == 23_088
    assert report.options["max_live_bytes"] == 23_088
    assert report.peak_bytes == 23_088 + report.options["tail_bytes"]
    assert report.peak_op.name == "pad:input_padded"


def test_hand_computed_single_token_case() -> None:
    # One 64x64 patch: input (12,288 bytes) and the 16-byte conv output overlap at scope 1.
    cfg = SubnetConfig(embed_dim=16, depth=1, num_heads=(1,), mlp_ratio=(1.0,), patch_size=64, img_size=64,
                       num_classes=4, head_dim=16, pool="avg", abs_pos=False, act="relu")  # fmt: skip
    assert tflm_plan(cfg).head_bytes == 12_288 + 16


def test_mean_scratch_is_planned() -> None:
    cfg = _cfg(pool="avg")
    names = [b.name for b in graph_buffers(tflm_graph(cfg))]
    scratch = [n for n in names if n.startswith("scratch:MEAN")]
    assert len(scratch) == 2 * (2 * cfg.depth + 1) + 1  # two per LayerNorm, one for the avg pool


@pytest.mark.parametrize("patches", [(8, 4), (16, 8), (32, 16)])
def test_more_tokens_never_lower(patches: tuple[int, int]) -> None:
    big, small = patches
    for act in ("relu", "gelu_sigmoid"):
        few = tflm_plan(_cfg(img_size=64, patch_size=big, act=act)).head_bytes
        many = tflm_plan(_cfg(img_size=64, patch_size=small, act=act)).head_bytes
        assert many >= few


def test_wider_embed_never_lower() -> None:
    rng = np.random.default_rng(0)
    space = load_space("digits-tiny")
    for _ in range(20):
        cfg = space.sample(rng)
        for e in (48, 64, 80):
            narrow = tflm_plan(dataclasses.replace(cfg, embed_dim=e)).head_bytes
            wide = tflm_plan(dataclasses.replace(cfg, embed_dim=e + 16)).head_bytes
            assert wide >= narrow, (cfg.short(), e)


def test_report_through_peak_sram_and_breakdown() -> None:
    cfg = _cfg(depth=2, num_heads=(2, 3), mlp_ratio=(2.0, 3.0), act="gelu_sigmoid")
    report = peak_sram(cfg, "tflm")
    assert report.schedule == "tflm"
    head, tail = report.options["head_bytes"], report.options["tail_bytes"]
    assert head == tflm_plan(cfg).head_bytes
    assert report.peak_bytes == tail + max(head, report.options["planning_bytes"])
    assert head >= report.options["max_live_bytes"] == max(op.total_bytes for op in report.ops) - tail
    assert len(report.ops) == len(tflm_graph(cfg).operators)


def test_exact_gelu_is_planned_as_its_deployed_form() -> None:
    assert tflm_plan(_cfg(act="gelu")).head_bytes == tflm_plan(_cfg(act="gelu_sigmoid")).head_bytes
    assert tflm_plan(_cfg(act="relu")).head_bytes <= tflm_plan(_cfg(act="gelu_sigmoid")).head_bytes


def test_flash_counts_int8_weights_and_int32_biases() -> None:
    cfg = _cfg(pool="avg", abs_pos=False)  # conv 3*8*8 -> 48; qkv 48 -> 96; proj 32 -> 48; fc 48 -> 96 -> 48
    weights = 192 * 48 + 48 * 96 + 32 * 48 + 48 * 96 + 96 * 48 + 48 * 10
    biases = 4 * (48 + 96 + 48 + 96 + 48 + 10)
    report = flash_report(cfg)
    assert report.weights_int8_bytes == weights
    assert report.biases_int32_bytes == biases
    assert report.other_int8_bytes == 2 * 48  # final LayerNorm; norm1/norm2 fold into qkv/fc1
    assert report.parameter_count == weights + biases // 4 + 6 * 48
    assert parameter_count(dataclasses.replace(cfg, rank_ratio=0.25)) < parameter_count(cfg)
    low_rank = flash_report(dataclasses.replace(cfg, rank_ratio=0.25))
    assert low_rank.other_int8_bytes == 4 * 48  # norm2 now precedes a bias-free factor: kept
