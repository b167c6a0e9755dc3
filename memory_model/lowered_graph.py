"""The int8 operator graph a model lowers to (:mod:`memory_model.lowering`): tensors in the
converter's order, operators in run order, and the buffers TFLM's planner sees."""

from __future__ import annotations

import math
from dataclasses import dataclass

from memory_model.planner import Buffer

SCRATCH_OPS = {"MEAN", "SUM"}  # int8 reductions that keep an int32 accumulator per output


@dataclass
class GraphTensor:
    name: str
    shape: tuple[int, ...]
    elem_bytes: int
    late: bool = False

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.elem_bytes


@dataclass
class GraphOp:
    kind: str
    ins: list[int]
    outs: list[int]


@dataclass
class LoweredGraph:
    """The int8 operator graph of a model: tensors in the converter's order, ops in run order."""

    tensors: list[GraphTensor]
    ops: list[GraphOp]
    inputs: list[int]
    outputs: list[int]
    flash_bytes: int

    def op_kinds(self) -> list[str]:
        return [op.kind for op in self.ops]

    def buffers(self) -> list[Buffer]:
        """Planned buffers (TFLM rules, see :mod:`memory_model.tflite_graph`; aliases share)."""
        first: dict[int, int] = {t: 0 for t in self.inputs}
        last: dict[int, int] = dict(first)
        for k, op in enumerate(self.ops):
            scope = k + 1
            for t in op.ins + op.outs:
                first.setdefault(t, scope)
                last[t] = max(last.get(t, scope), scope)
        for t in self.outputs:
            last[t] = len(self.ops)
        out = [
            Buffer(t.name, t.nbytes, first[i], last[i])
            for i, t in enumerate(self.tensors)
            if i in first and t.nbytes > 0
        ]
        for k, op in enumerate(self.ops):
            if op.kind in SCRATCH_OPS and self.tensors[op.ins[0]].elem_bytes == 1:
                out.append(
                    Buffer(f"scratch:{op.kind}@{k}", 4 * self.tensors[op.outs[0]].nbytes, k + 1, k + 1)
                )
        return out


def readers(ops: list[GraphOp]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for k, op in enumerate(ops):
        for t in op.ins:
            if not out.get(t) or out[t][-1] != k:
                out.setdefault(t, []).append(k)
    return out


def finish_graph(
    tensors: list[GraphTensor],
    ops: list[GraphOp],
    producer: dict[int, int],
    inputs: list[int],
    outputs: list[int],
    flash_bytes: int,
) -> LoweredGraph:
    """The converter's peepholes (chained reshapes collapse; a fully-connected layer reads
    through a reshape that keeps the last axis; a transpose sinks below an element-wise op
    with a constant), then the tensors numbered in the converter's order."""
    users = readers(ops)
    for k, op in enumerate(ops):  # chained reshapes collapse: read the first one's input
        if op.kind != "RESHAPE":
            continue
        src = op.ins[0]
        j = producer.get(src)
        if j is not None and ops[j].kind == "RESHAPE" and users[src] == [k] and src not in outputs:
            op.ins = list(ops[j].ins)
            ops[j].kind = "_DEAD"
            users[op.ins[0]] = [k if r == j else r for r in users[op.ins[0]]]
    ops = [op for op in ops if op.kind != "_DEAD"]
    users = readers(ops)
    producer = {t: k for k, op in enumerate(ops) for t in op.outs}
    dead: set[int] = set()
    for k, op in enumerate(ops):  # FC flattens its input: a reshape keeping the last axis is free
        if op.kind != "FULLY_CONNECTED":
            continue
        j = producer.get(op.ins[0])
        if j is None or ops[j].kind != "RESHAPE" or users[op.ins[0]] != [k]:
            continue
        src = ops[j].ins[0]
        if tensors[src].shape[-1:] == tensors[op.ins[0]].shape[-1:]:
            op.ins[0] = src
            dead.add(j)
    ops = [op for k, op in enumerate(ops) if k not in dead]
    users = readers(ops)
    for k in range(len(ops) - 1):  # a transpose sinks below an element-wise op with a constant
        a, b = ops[k], ops[k + 1]
        if (
            a.kind == "TRANSPOSE"
            and b.kind in ("ADD", "MUL", "SUB")
            and b.ins == a.outs
            and users[a.outs[0]] == [k + 1]
        ):
            t_mid, t_out = a.outs[0], b.outs[0]
            src_shape = tensors[a.ins[0]].shape
            tensors[t_mid].shape, tensors[t_mid].name = src_shape, tensors[t_out].name
            tensors[t_out].name = tensors[t_mid].name + ".t"
            ops[k], ops[k + 1] = GraphOp(b.kind, a.ins, [t_mid]), GraphOp("TRANSPOSE", [t_mid], [t_out])
    # number tensors as the converter does: inputs, outputs in op order, appended ones last
    order = list(inputs)
    for op in ops:
        order += [t for t in op.outs if t not in order and not tensors[t].late]
    order += [t for op in ops for t in op.outs if tensors[t].late and t not in order]
    remap = {t: i for i, t in enumerate(order)}
    numbered = [tensors[t] for t in order]
    new_ops = [GraphOp(op.kind, [remap[t] for t in op.ins], [remap[t] for t in op.outs]) for op in ops]
    return LoweredGraph(
        numbered, new_ops, [remap[t] for t in inputs], [remap[t] for t in outputs], flash_bytes
    )
