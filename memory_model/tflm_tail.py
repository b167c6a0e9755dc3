"""TF-Lite Micro's arena tail (persistent data) and the whole arena a model needs.

TFLM splits its arena into a head (the planned activation buffers and kernel scratch,
:mod:`memory_model.planner`) and a tail of data that persists for the interpreter's life.
The tail, per model (host build, 64-bit pointers; measured against tflite-micro's
``RecordingMicroAllocator`` log, op by op, on truncated copies of exported models):

* a fixed part: the allocator, planner and interpreter objects, the graph input and output
  as persistent ``TfLiteTensor`` structs with their quantisation records;
* one ``TfLiteEvalTensor`` (24 bytes) per tensor of the subgraph, constants included;
* per operator: its ``NodeAndRegistration`` (64 bytes), its builtin options (e.g. a
  RESHAPE's 36-byte ``TfLiteReshapeParams``) and the kernel's persistent op data
  (``OpDataAdd``, ``OpDataReduce``, ...), :data:`OP_TAIL_BYTES_64`;
* FULLY_CONNECTED / CONV_2D with per-channel weights: two int32 arrays (multiplier, shift)
  per output channel, each 16-byte aligned;
* BATCH_MATMUL: a buffer for its transposed right-hand side (its size in bytes).

Allocations are 16-byte aligned, builtin options 1- or 4-byte aligned, so the
per-op figures are means over the alignment drift of a run of operators.

The smallest arena that runs is ``tail + max(head, planning)``: while it plans, TFLM holds
one allocation record and one planner entry per tensor and scratch buffer in the head's
space (:data:`PLAN_BYTES_PER_BUFFER_64`), which exceeds the head of tiny models.

The 32-bit (Cortex-M) figures are modelled, not measured: pointer-sized fields halve, so
``TfLiteEvalTensor`` is 12 bytes, ``NodeAndRegistration`` 36 and the fixed part smaller;
kernel op data without pointers and the per-channel arrays keep their size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from memory_model.planner import align_up
from memory_model.tflite_graph import Graph

EVAL_TENSOR_BYTES = {64: 24, 32: 12}
NODE_BYTES = {64: 64, 32: 36}
FIXED_BYTES = {64: 712, 32: 432}  # incl. a 32-byte margin for alignment drift
PLAN_BYTES_PER_BUFFER_64 = 70
PLAN_BYTES_PER_BUFFER = {64: PLAN_BYTES_PER_BUFFER_64, 32: 40}

# Per operator beyond its NodeAndRegistration: builtin options + kernel op data (64-bit host).
OP_TAIL_BYTES_64 = {
    "ADD": 72, "SUB": 64, "MUL": 48, "SQUARED_DIFFERENCE": 112, "RSQRT": 32, "LOGISTIC": 16,
    "MEAN": 80, "RESHAPE": 40, "TRANSPOSE": 0, "SLICE": 0, "STRIDED_SLICE": 0, "QUANTIZE": 32,
    "CONCATENATION": 88, "SOFTMAX": 80, "FULLY_CONNECTED": 112, "CONV_2D": 112, "BATCH_MATMUL": 128,
    "PAD": 64,
}  # fmt: skip
# 32-bit: structs that hold pointers shrink (FC/conv op data keep two pointers, BMM four).
OP_TAIL_BYTES_32 = {**OP_TAIL_BYTES_64, "FULLY_CONNECTED": 96, "CONV_2D": 96, "BATCH_MATMUL": 96}


@dataclass(frozen=True)
class TailReport:
    """The tail of one model for one pointer width, with the bytes per op kind."""

    pointer_bits: int
    tail_bytes: int
    fixed_bytes: int
    eval_tensor_bytes: int
    per_kind_bytes: dict[str, int]  # op kind -> node + options + op data + per-channel + buffers
    plan_bytes: int  # planning records held in the head's space while TFLM plans

    @property
    def dominant_kind(self) -> str:
        """The op kind whose persistent data is largest."""
        return max(self.per_kind_bytes, key=self.per_kind_bytes.__getitem__)


def _per_channel(graph: Graph, k: int) -> int:
    op = graph.operators[k]
    if op.name not in ("FULLY_CONNECTED", "CONV_2D"):
        return 0
    weights = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
    if weights is not None and not weights.is_constant:
        return 0  # run-time weights (q·kᵀ as an FC): per-tensor quantisation
    channels = graph.tensors[op.outputs[0]].shape[-1]
    return 2 * align_up(4 * channels)


def _op_bytes(graph: Graph, k: int, bits: int) -> int:
    op = graph.operators[k]
    table = OP_TAIL_BYTES_64 if bits == 64 else OP_TAIL_BYTES_32
    own = NODE_BYTES[bits] + table.get(op.name, 64) + _per_channel(graph, k)
    if op.name == "BATCH_MATMUL":
        rhs = [i for i in op.inputs if i >= 0][1]
        own += align_up(graph.tensors[rhs].nbytes)
    return own


def tail_report(graph: Graph, num_tensors: int, num_scratch: int, pointer_bits: int = 64) -> TailReport:
    """The tail of ``graph`` (``num_tensors`` tensors in all, constants included) and the
    planning records for ``num_scratch`` kernel scratch buffers."""
    if pointer_bits not in (32, 64):
        raise ValueError(f"pointer_bits must be 32 or 64, got {pointer_bits}")
    per_kind: dict[str, int] = {}
    for k, op in enumerate(graph.operators):
        per_kind[op.name] = per_kind.get(op.name, 0) + _op_bytes(graph, k, pointer_bits)
    evals = align_up(EVAL_TENSOR_BYTES[pointer_bits] * num_tensors)
    tail = FIXED_BYTES[pointer_bits] + evals + sum(per_kind.values())
    plan = PLAN_BYTES_PER_BUFFER[pointer_bits] * (num_tensors + num_scratch)
    return TailReport(pointer_bits, tail, FIXED_BYTES[pointer_bits], evals, per_kind, plan)


def arena_bytes(head_bytes: int, tail: TailReport) -> int:
    """The whole arena: the tail plus the larger of the head and the planning records."""
    return tail.tail_bytes + max(head_bytes, tail.plan_bytes)


def num_graph_tensors(graph: Graph) -> int:
    """All tensors of a read .tflite graph (constants included)."""
    return len(graph.tensors)


def shape_elements(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1
