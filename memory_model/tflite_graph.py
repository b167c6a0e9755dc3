"""Read a .tflite flatbuffer's main graph and plan its arena the way TF-Lite Micro does.

No TensorFlow needed: a small flatbuffer reader pulls the few schema fields the planner uses
(tensors with shape/type/buffer/is_variable, operators with their builtin code and in/out
tensors, subgraph inputs/outputs, model metadata). Field numbers follow TF-Lite's
``schema.fbs``.

Which tensors TFLM plans (``micro_allocation_info.cc``): every tensor of the subgraph that
has no constant data, is not a variable and has a non-zero byte size. Lifetimes are counted
in allocation scopes: scope 0 is the start of the subgraph (graph inputs are created there),
operator ``i`` is scope ``i + 1``; a tensor lives from the operator that writes it to the last
operator that reads it; graph outputs live to the last scope. Kernel scratch buffers that
TFLM's reference kernels request are added for the operators that request them (see
:func:`kernel_scratch_bytes`); they live during their operator only.

Models with control flow (several subgraphs) or an offline memory plan are refused with a
clear message rather than planned approximately.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from common.errors import ConfigError
from memory_model.planner import Buffer, Plan, greedy_plan, max_live_bytes

# TensorType -> bytes per element (schema.fbs order). INT4 is packed two per byte.
_TYPE_BYTES: dict[int, float] = {
    0: 4,  # FLOAT32
    1: 2,  # FLOAT16
    2: 4,  # INT32
    3: 1,  # UINT8
    4: 8,  # INT64
    6: 1,  # BOOL
    7: 2,  # INT16
    8: 8,  # COMPLEX64
    9: 1,  # INT8
    10: 8,  # FLOAT64
    11: 16,  # COMPLEX128
    12: 8,  # UINT64
    15: 4,  # UINT32
    16: 2,  # UINT16
    17: 0.5,  # INT4
    18: 2,  # BFLOAT16
}
TYPE_NAMES = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    6: "bool",
    7: "int16",
    9: "int8",
}

# BuiltinOperator codes (schema.fbs) of the ops converted ViTs use; others print as OP<code>.
OP_NAMES = {
    0: "ADD", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE",
    9: "FULLY_CONNECTED", 14: "LOGISTIC", 18: "MUL", 19: "RELU", 22: "RESHAPE", 25: "SOFTMAX",
    28: "TANH", 34: "PAD", 36: "GATHER", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB", 42: "DIV",
    43: "SQUEEZE", 45: "STRIDED_SLICE", 47: "EXP", 49: "SPLIT", 50: "LOG_SOFTMAX", 53: "CAST",
    55: "MAXIMUM", 57: "MINIMUM", 60: "PADV2", 65: "SLICE", 70: "EXPAND_DIMS", 74: "SUM",
    75: "SQRT", 76: "RSQRT", 78: "POW", 83: "PACK", 88: "UNPACK", 92: "SQUARE", 94: "FILL",
    99: "SQUARED_DIFFERENCE", 102: "SPLIT_V", 114: "QUANTIZE", 117: "HARD_SWISH",
    123: "SELECT_V2", 126: "BATCH_MATMUL", 150: "GELU",
}  # fmt: skip


class _Table:
    """A flatbuffer table: field lookups through its vtable."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self._vtable = vtable
        self._vt_size = struct.unpack_from("<H", buf, vtable)[0]

    def _field(self, index: int) -> int:
        slot = 4 + 2 * index
        if slot >= self._vt_size:
            return 0
        off = struct.unpack_from("<H", self.buf, self._vtable + slot)[0]
        return self.pos + off if off else 0

    def scalar(self, index: int, fmt: str, default: int | float = 0) -> int | float:
        at = self._field(index)
        return struct.unpack_from("<" + fmt, self.buf, at)[0] if at else default

    def _target(self, index: int) -> int:
        at = self._field(index)
        return at + struct.unpack_from("<I", self.buf, at)[0] if at else 0

    def table(self, index: int) -> _Table | None:
        at = self._target(index)
        return _Table(self.buf, at) if at else None

    def vector_len(self, index: int) -> int:
        at = self._target(index)
        return struct.unpack_from("<I", self.buf, at)[0] if at else 0

    def scalars(self, index: int, fmt: str) -> list:
        at = self._target(index)
        if not at:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        return list(struct.unpack_from(f"<{n}{fmt}", self.buf, at + 4))

    def tables(self, index: int) -> list[_Table]:
        at = self._target(index)
        if not at:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        out = []
        for k in range(n):
            elem = at + 4 + 4 * k
            out.append(_Table(self.buf, elem + struct.unpack_from("<I", self.buf, elem)[0]))
        return out

    def string(self, index: int) -> str:
        at = self._target(index)
        if not at:
            return ""
        n = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4 : at + 4 + n].decode("utf-8", "replace")


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: int  # TF-Lite TensorType code
    is_constant: bool  # has data in the model (weights, biases, constant shapes)
    is_variable: bool
    quant_channels: int = 0  # number of (scale, zero point) pairs; 0 = not quantised

    @property
    def nbytes(self) -> int:
        count = math.prod(self.shape) if self.shape else 1
        return math.ceil(count * _TYPE_BYTES.get(self.dtype, 0))

    @property
    def dtype_name(self) -> str:
        return TYPE_NAMES.get(self.dtype, str(self.dtype))


@dataclass(frozen=True)
class Operator:
    index: int
    opcode: int  # BuiltinOperator code
    inputs: tuple[int, ...]  # tensor indices; -1 = omitted optional input
    outputs: tuple[int, ...]

    @property
    def name(self) -> str:
        return OP_NAMES.get(self.opcode, f"OP{self.opcode}")


@dataclass(frozen=True)
class Graph:
    """The main subgraph of a .tflite model."""

    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def op_names(self) -> list[str]:
        return [op.name for op in self.operators]


def read_graph(model: bytes | str | Path) -> Graph:
    """Parse a .tflite model (bytes or path) into its main :class:`Graph`."""
    buf = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ConfigError("not a TF-Lite flatbuffer (missing 'TFL3' identifier); pass a .tflite file")
    root = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
    opcodes = []
    for oc in root.tables(1):  # Model.operator_codes
        deprecated = int(oc.scalar(0, "b", 0))
        builtin = int(oc.scalar(3, "i", 0))
        opcodes.append(max(deprecated, builtin))
    subgraphs = root.tables(2)
    if len(subgraphs) != 1:
        raise ConfigError(
            f"model has {len(subgraphs)} subgraphs; only single-graph models (no control flow) are planned"
        )
    for meta in root.tables(6):  # Model.metadata
        if meta.string(0) == "OfflineMemoryAllocation":
            raise ConfigError(
                "model carries an offline memory plan; plan it with TFLM itself, not this emulation"
            )
    buffers = root.tables(4)

    def has_data(buffer_index: int) -> bool:
        if buffer_index <= 0 or buffer_index >= len(buffers):
            return False
        b = buffers[buffer_index]
        if int(b.scalar(1, "Q", 0)) > 1:
            raise ConfigError(
                "model stores constants outside the flatbuffer (buffer offsets), which TFLM places in the "
                "arena; re-serialise it with inline buffers (deploy.export.inline_buffers)"
            )
        return b.vector_len(0) > 0

    sg = subgraphs[0]
    tensors = []
    for i, t in enumerate(sg.tables(0)):
        shape = tuple(t.scalars(0, "i"))
        if any(d < 0 for d in shape):
            raise ConfigError(
                f"tensor {i} ({t.string(3)!r}) has a dynamic shape {shape}; export with static shapes"
            )
        tensors.append(
            Tensor(
                index=i,
                name=t.string(3),
                shape=shape,
                dtype=int(t.scalar(1, "b", 0)),
                is_constant=has_data(int(t.scalar(2, "I", 0))),
                is_variable=bool(t.scalar(5, "B", 0)),
                quant_channels=quant.vector_len(2) if (quant := t.table(4)) is not None else 0,
            )
        )
    operators = []
    for k, op in enumerate(sg.tables(3)):
        operators.append(
            Operator(
                k, opcodes[int(op.scalar(0, "I", 0))], tuple(op.scalars(1, "i")), tuple(op.scalars(2, "i"))
            )
        )
    return Graph(tuple(tensors), tuple(operators), tuple(sg.scalars(1, "i")), tuple(sg.scalars(2, "i")))


def kernel_scratch_bytes(graph: Graph, op: Operator) -> int:
    """Scratch bytes TFLM's reference kernel requests for ``op`` during Prepare (0 if none).

    MEAN / SUM on int8 keep an int32 accumulator per output element (TFLM ``reduce``); the
    other kernels used by converted ViTs (fully connected, conv, batch matmul, softmax,
    elementwise, reshape/transpose) plan no scratch on the host reference build.
    """
    if op.name in ("MEAN", "SUM") and graph.tensors[op.inputs[0]].dtype_name in ("int8", "int16"):
        out = graph.tensors[op.outputs[0]]
        return 4 * (math.prod(out.shape) if out.shape else 1)
    return 0


def graph_buffers(graph: Graph, with_scratch: bool = True) -> list[Buffer]:
    """The buffers TFLM plans for ``graph``, in the order it adds them (tensors, then scratch)."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in graph.inputs:
        first[t] = last[t] = 0
    for t in graph.outputs:
        first[t] = last[t] = 0
    for k, op in enumerate(graph.operators):
        scope = k + 1
        for t in op.outputs:
            first[t] = last[t] = scope
        for t in op.inputs:
            if t >= 0:
                last[t] = max(last.get(t, scope), scope)
        for t in op.outputs:
            last[t] = scope
    end = len(graph.operators)
    for t in graph.outputs:
        last[t] = end
    buffers = []
    for t in graph.tensors:
        if t.is_constant or t.is_variable or t.nbytes == 0:
            continue
        if t.index not in first:
            raise ConfigError(f"tensor {t.index} ({t.name!r}) is never written; TFLM would reject this plan")
        buffers.append(Buffer(t.name or f"t{t.index}", t.nbytes, first[t.index], last[t.index]))
    if with_scratch:
        for k, op in enumerate(graph.operators):
            scratch = kernel_scratch_bytes(graph, op)
            if scratch:
                buffers.append(Buffer(f"scratch:{op.name}@{k}", scratch, k + 1, k + 1))
    return buffers


def plan_tflite(model: bytes | str | Path, with_scratch: bool = True) -> Plan:
    """TFLM's greedy plan of a .tflite model; ``plan.head_bytes`` predicts the arena head."""
    return greedy_plan(graph_buffers(read_graph(model), with_scratch))


def tflite_max_live_bytes(model: bytes | str | Path) -> int:
    """Max-live lower bound of a .tflite model's planned buffers."""
    return max_live_bytes(graph_buffers(read_graph(model)))
