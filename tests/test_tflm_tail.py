"""TF-Lite Micro's whole arena (head + persistent tail) from the config, against measurements."""

from __future__ import annotations

import pytest

from deploy.compare import COMPARE_SUBNETS
from memory_model import peak_sram
from memory_model.tflite_graph import Graph, Operator, Tensor
from memory_model.tflm import tflm_arena, tflm_plan
from memory_model.tflm_tail import EVAL_TENSOR_BYTES, FIXED_BYTES, NODE_BYTES, OP_TAIL_BYTES_64, tail_report

# Smallest arena tflite-micro (host, 64-bit) ran in, found by bisection to 8 bytes
# (bench.bench_tflm / deploy.tflm_measure.smallest_arena_bytes), for COMPARE_SUBNETS[i].
MEASURED_SMALLEST = {0: 24496, 1: 80336, 2: 96856, 3: 92360, 4: 154984, 5: 87792, 6: 55640, 7: 58520,
                     8: 48576, 9: 76264, 10: 69560, 11: 99544}  # fmt: skip


@pytest.mark.parametrize("i", sorted(MEASURED_SMALLEST))
def test_config_arena_covers_measured_smallest(i: int) -> None:
    est = tflm_arena(COMPARE_SUBNETS[i]).total_bytes
    smallest = MEASURED_SMALLEST[i]
    assert est >= smallest
    assert (est - smallest) / smallest <= (0.015 if i == 0 else 0.01)  # i = 0: planning records set it


def test_report_is_the_total_and_keeps_the_head() -> None:
    cfg = COMPARE_SUBNETS[3]
    rep, arena = peak_sram(cfg, "tflm"), tflm_arena(cfg)
    assert rep.peak_bytes == arena.total_bytes == arena.head_bytes + arena.tail.tail_bytes
    assert rep.options["head_bytes"] == tflm_plan(cfg).head_bytes == arena.head_bytes
    assert rep.options["tail_top_op"] == "BATCH_MATMUL"  # 65 tokens: the transposed rhs buffers
    assert tflm_arena(cfg, 32).total_bytes < arena.total_bytes


def _tensor(i: int, shape: tuple[int, ...], const: bool = False) -> Tensor:
    return Tensor(i, f"t{i}", shape, 9, const, False, shape[0] if const else 1)


def test_tail_counts_each_part() -> None:
    """FC per-channel arrays (16-byte aligned), BATCH_MATMUL's transposed rhs, nodes, eval tensors."""
    tensors = (_tensor(0, (4, 8)), _tensor(1, (10, 8), True), _tensor(2, (4, 10)), _tensor(3, (2, 3, 5)),
               _tensor(4, (2, 5, 3)), _tensor(5, (2, 3, 3)))  # fmt: skip
    ops = (Operator(0, 9, (0, 1), (2,)), Operator(1, 126, (3, 4), (5,)))
    rep = tail_report(Graph(tensors, ops, (0,), (5,)), num_tensors=6, num_scratch=0)
    fc = NODE_BYTES[64] + OP_TAIL_BYTES_64["FULLY_CONNECTED"] + 2 * 48  # 10 channels: 40 -> 48 bytes twice
    bmm = NODE_BYTES[64] + OP_TAIL_BYTES_64["BATCH_MATMUL"] + 32  # rhs 30 bytes -> 32
    assert rep.per_kind_bytes == {"FULLY_CONNECTED": fc, "BATCH_MATMUL": bmm}
    assert rep.tail_bytes == FIXED_BYTES[64] + 16 * -(-EVAL_TENSOR_BYTES[64] * 6 // 16) + fc + bmm
    with pytest.raises(ValueError, match="pointer_bits"):
        tail_report(Graph(tensors, ops, (0,), (5,)), 6, 0, pointer_bits=16)
