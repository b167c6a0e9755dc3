"""Peak SRAM, flash, parameters and FLOPs of any PyTorch model, from its exported graph.

:func:`profile_model` traces the model with ``torch.export`` (timm's fused attention off, so
attention appears as matmul/softmax), lowers the ATen graph onto the operators an int8
TF-Lite model would hold (:func:`lower`), and plans the activation buffers with TF-Lite
Micro's greedy planner (:func:`memory_model.planner.greedy_plan`): the arena's head. The
max-live lower bound of the same buffers is reported beside it, and the whole arena TFLM needs
(head + persistent tail, :func:`lowered_tail`; 64-bit host) is the figure a budget judges. On the project's own ``StaticViT`` subnets the
lowered graph is the one :func:`memory_model.tflm.tflm_graph` builds from the config, so both
give the same number.

Lowering rules (what the int8 converter does; one ATen node may become several operators):

* Tensors: activations are int8 (1 byte per element); integer tensors (indices, shapes)
  are int32 (4 bytes) and booleans 1 byte. Kernels that accumulate in int32 (MEAN, SUM) get
  a scratch buffer of 4 bytes per output element during their operator, as TFLM's ``reduce``.
  Constants (parameters, buffers and everything computed from them alone) live in flash.
* The input is NHWC; a convolution writes NHWC, so reshaping its output first transposes
  it to NCHW (TRANSPOSE + RESHAPE).
* Fusions: batch norm after a convolution/FC, ReLU/ReLU6 after a convolution/FC/ADD (when
  the fused op is the only reader), and a LayerNorm's gamma/beta into a following FC that
  has a bias (the LayerNorm is then 12 operators instead of 14).
* Decompositions: LayerNorm/GroupNorm -> MEAN, SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, MUL,
  SUB, MUL, ADD (+ reshapes, + MUL/ADD for the affine); GELU -> x·σ(1.702x) (MUL, LOGISTIC,
  RESHAPE, MUL: exact GELU has no TFLM kernel); SiLU -> LOGISTIC, MUL; ``select`` -> SLICE +
  RESHAPE; fused scaled-dot-product attention -> MUL q, MUL k (scale split), TRANSPOSE k,
  BATCH_MATMUL, SOFTMAX, BATCH_MATMUL with the converter's reshapes (q·kᵀ is a
  FULLY_CONNECTED for one head); a concatenation with a constant requantises its activation
  inputs (QUANTIZE; the quantizer appends those tensors at the end of the tensor list).
* Peepholes: chained reshapes collapse into one; a reshape feeding an FC that keeps the
  last dimension disappears (FC flattens its input); a transpose whose only reader is an
  element-wise op with a constant moves below that op.
* Aliases: ops that do not change the data (dropout, clone, contiguous, detach, same-shape
  views/expands) and fused ops return their input's buffer; in-place ATen ops
  (``relu_``, ``add_``, ...) write into their input's buffer. An alias shares the buffer
  and extends its lifetime to the alias's last reader. A reshape that changes the shape is a
  RESHAPE operator with its own buffer, as TFLM plans it (it copies).

Flash follows :mod:`memory_model.flash`: convolution/FC weights int8 with a 12-byte
quantisation record per output channel, biases int32 (+ records; a fused batch norm adds a
bias), every other parameter int8 plus one record, folded LayerNorm affines nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from memory_model.lowered_graph import LoweredGraph
from memory_model.lowering import Lowering
from memory_model.planner import Buffer, Plan, align_up, greedy_plan, max_live_bytes
from memory_model.tflm_tail import (
    EVAL_TENSOR_BYTES,
    FIXED_BYTES,
    NODE_BYTES,
    OP_TAIL_BYTES_32,
    OP_TAIL_BYTES_64,
    PLAN_BYTES_PER_BUFFER,
    TailReport,
    arena_bytes,
)


@dataclass(frozen=True)
class ProfileReport:
    """What :func:`profile_model` measures; sizes in bytes."""

    name: str
    input_shape: tuple[int, ...]
    peak_bytes: int  # TFLM greedy planner head
    max_live_bytes: int  # lower bound of any placement (of the head)
    flash_bytes: int
    params: int
    flops: int  # forward, batch 1, torch.utils.flop_counter convention (2 per MAC)
    op_kinds: tuple[str, ...]
    buffers: tuple[Buffer, ...] = field(repr=False)
    tail_bytes: int = 0  # TFLM's persistent tail, modelled (64-bit host), see `lowered_tail`
    arena_bytes: int = 0  # the whole TFLM arena: tail + max(head, planning records)
    tail_top_op: str = ""  # the op kind whose persistent data dominates the tail

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (without the buffers)."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "peak_bytes": self.peak_bytes,
            "tail_bytes": self.tail_bytes,
            "arena_bytes": self.arena_bytes,
            "tail_top_op": self.tail_top_op,
            "max_live_bytes": self.max_live_bytes,
            "flash_bytes": self.flash_bytes,
            "params": self.params,
            "flops": self.flops,
            "num_ops": len(self.op_kinds),
        }


def export_model(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` the model in eval mode with timm's fused attention off (restored after)."""
    from timm.layers import config as timm_config

    before = timm_config._USE_FUSED_ATTN
    timm_config.set_fused_attn(False)
    try:
        with torch.no_grad():
            return torch.export.export(model.eval(), (example,))
    finally:
        timm_config._USE_FUSED_ATTN = before


def lower(model: nn.Module, example: torch.Tensor) -> LoweredGraph:
    """The model's int8 operator graph (see the module docstring for the rules)."""
    return Lowering(export_model(model, example)).run()


def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    """Forward FLOPs (2 per multiply-accumulate) from ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(example)
    return int(counter.get_total_flops())


_PER_CHANNEL = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
_ELEMENTWISE = ("ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE")


def _const_keys(graph: LoweredGraph, k: int) -> set[tuple]:
    """The constant operands of op ``k`` (one activation input), keyed so that the ones the
    converter shares (equal shapes, permutations, axes, pads) count once; each constant is one
    more TfLiteEvalTensor in the tail."""
    op = graph.ops[k]
    src, out = graph.tensors[op.ins[0]].shape, graph.tensors[op.outs[0]].shape
    if op.kind in _PER_CHANNEL:
        return {("weights", k), ("bias", k)}
    if op.kind == "RESHAPE":
        return {("shape", out)}
    if op.kind == "TRANSPOSE":
        return {("perm", src, out)}
    if op.kind in ("MEAN", "SUM"):
        return {("axis", len(src), len(out))}
    if op.kind in ("SLICE", "STRIDED_SLICE"):
        return {("begin", k), ("size", out)}
    if op.kind in ("PAD", "CONCATENATION"):
        return {(op.kind, src)}
    if op.kind in _ELEMENTWISE:
        return {("const", k)}
    return set()


def lowered_tail(graph: LoweredGraph, num_scratch: int, pointer_bits: int = 64) -> TailReport:
    """TFLM's tail for a lowered graph, by the rules of `memory_model.tflm_tail` (measured on
    the project's ViTs): node + builtin options + op data per operator, per-channel multiplier
    and shift for convolutions / fully-connected layers with constant weights (depthwise too),
    BATCH_MATMUL's transposed right-hand side, one eval tensor per tensor (constants counted
    per operand, not shared: an upper bound of a few tensors) and the fixed part. Modelled:
    kinds not measured on the ViTs take 64 bytes of op data."""
    table = OP_TAIL_BYTES_64 if pointer_bits == 64 else OP_TAIL_BYTES_32
    per_kind: dict[str, int] = {}
    consts: set[tuple] = set()
    for k, op in enumerate(graph.ops):
        own = NODE_BYTES[pointer_bits] + table.get(op.kind, 64)
        if op.kind in _PER_CHANNEL and len(op.ins) == 1:
            own += 2 * align_up(4 * graph.tensors[op.outs[0]].shape[-1])
        if op.kind == "BATCH_MATMUL" and len(op.ins) > 1:
            own += align_up(graph.tensors[op.ins[1]].nbytes)
        per_kind[op.kind] = per_kind.get(op.kind, 0) + own
        consts |= _const_keys(graph, k) if len(op.ins) == 1 else set()
    num_tensors = len(graph.tensors) + len(consts)
    evals = align_up(EVAL_TENSOR_BYTES[pointer_bits] * num_tensors)
    tail = FIXED_BYTES[pointer_bits] + evals + sum(per_kind.values())
    plan = PLAN_BYTES_PER_BUFFER[pointer_bits] * (num_tensors + num_scratch)
    return TailReport(pointer_bits, tail, FIXED_BYTES[pointer_bits], evals, per_kind, plan)


def plan_lowered(graph: LoweredGraph) -> Plan:
    """TFLM's greedy plan of a lowered graph."""
    return greedy_plan(graph.buffers())


def profile_model(
    model: nn.Module,
    img_size: int | tuple[int, int],
    in_chans: int = 3,
    name: str = "model",
    prepare: Callable[[nn.Module], nn.Module] | None = None,
) -> ProfileReport:
    """Peak SRAM (TFLM planner and max-live), flash, parameters and FLOPs of ``model`` on one
    ``in_chans`` x ``img_size`` image. ``prepare`` runs first (e.g. timm's reparameterisation)."""
    if prepare is not None:
        model = prepare(model)
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    example = torch.zeros(1, in_chans, h, w)
    graph = lower(model, example)
    buffers = graph.buffers()
    plan = greedy_plan(buffers)
    tail = lowered_tail(graph, sum(1 for b in buffers if b.name.startswith("scratch:")))
    return ProfileReport(
        name=name,
        input_shape=(1, in_chans, h, w),
        peak_bytes=plan.head_bytes,
        max_live_bytes=max_live_bytes(buffers),
        flash_bytes=graph.flash_bytes,
        params=sum(p.numel() for p in model.parameters()),
        flops=count_flops(model, example),
        op_kinds=tuple(graph.op_kinds()),
        buffers=tuple(buffers),
        tail_bytes=tail.tail_bytes,
        arena_bytes=arena_bytes(plan.head_bytes, tail),
        tail_top_op=tail.dominant_kind if tail.per_kind_bytes else "",
    )
