"""Lowering an exported PyTorch graph onto the operators of an int8 TF-Lite model.

Used by :mod:`memory_model.profile`; the rules are documented there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from memory_model.flash import QPARAM_BYTES
from memory_model.lowered_graph import GraphOp, GraphTensor, LoweredGraph, finish_graph

_FUSABLE_ACT_HOSTS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"}
_FUSABLE_BN_HOSTS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
_ALIAS_OPS = {
    "dropout", "clone", "contiguous", "detach", "alias", "lift_fresh_copy", "identity", "_to_copy", "to",
    "feature_dropout", "type_as",
}  # fmt: skip
_VIEW_OPS = {"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "_unsafe_view", "view_as"}
_ELEMENTWISE = {
    "add": "ADD", "sub": "SUB", "rsub": "SUB", "mul": "MUL", "div": "DIV", "sigmoid": "LOGISTIC",
    "tanh": "TANH", "hardswish": "HARD_SWISH", "hardsigmoid": "HARD_SIGMOID", "exp": "EXP",
    "sqrt": "SQRT", "rsqrt": "RSQRT", "pow": "POW", "abs": "ABS", "neg": "NEG", "maximum": "MAXIMUM",
    "minimum": "MINIMUM", "clamp": "RELU_N1_TO_1", "leaky_relu": "LEAKY_RELU", "elu": "ELU",
}  # fmt: skip
_TFLITE_NAMES = {
    "SPLIT_WITH_SIZES": "SPLIT_V", "SPLIT": "SPLIT_V", "CHUNK": "SPLIT", "UNBIND": "UNPACK",
    "UPSAMPLE_BILINEAR2D": "RESIZE_BILINEAR", "UPSAMPLE_NEAREST2D": "RESIZE_NEAREST_NEIGHBOR",
    "STACK": "PACK", "INDEX": "GATHER", "EMBEDDING": "GATHER",
}  # fmt: skip


@dataclass
class _Act:
    """An activation value: its buffer and its PyTorch shape (the buffer may hold another rank)."""

    tensor: int
    shape: tuple[int, ...]
    nhwc: bool = False  # 4-D tensor stored channels-last (written by a convolution)


@dataclass
class _Const:
    sources: frozenset[str]  # parameter / buffer names it is computed from


def _op_name(node: torch.fx.Node) -> str:
    target = node.target
    packet = getattr(target, "_overloadpacket", None)
    return packet.__name__ if packet is not None else getattr(target, "__name__", str(target))


class Lowering:
    def __init__(self, ep: torch.export.ExportedProgram) -> None:
        self.ep = ep
        self.tensors: list[GraphTensor] = []
        self.ops: list[GraphOp] = []
        self.env: dict[str, Any] = {}
        self.counted: set[str] = set()
        self.flash_bytes = 0
        self.producer: dict[int, int] = {}  # tensor -> index of the op writing it
        sig = ep.graph_signature
        self.const_names: dict[str, str] = {}
        for spec in sig.input_specs:
            if spec.kind.name != "USER_INPUT" and spec.target is not None:
                self.const_names[spec.arg.name] = spec.target
        self.state = dict(ep.state_dict)
        self.state.update(getattr(ep, "constants", {}) or {})

    # ---- builders ---------------------------------------------------------------------
    def new_tensor(self, name: str, shape: tuple[int, ...], elem_bytes: int = 1, late: bool = False) -> int:
        self.tensors.append(GraphTensor(name, tuple(int(s) for s in shape), elem_bytes, late))
        return len(self.tensors) - 1

    def emit(self, kind: str, ins: list[int], shape: tuple[int, ...], name: str, late: bool = False) -> int:
        out = self.new_tensor(name, shape, late=late)
        self.producer[out] = len(self.ops)
        self.ops.append(GraphOp(kind, list(ins), [out]))
        return out

    def kind_of(self, tensor: int) -> str | None:
        k = self.producer.get(tensor)
        return None if k is None else self.ops[k].kind

    # ---- flash ------------------------------------------------------------------------
    def _numel(self, source: str) -> int:
        value = self.state.get(source)
        return int(value.numel()) if isinstance(value, torch.Tensor) else 0

    def count_const(self, value: Any) -> None:
        """An int8 constant read by an activation op: its bytes plus one quantisation record."""
        if isinstance(value, _Const):
            for s in sorted(value.sources - self.counted):
                self.counted.add(s)
                if self._numel(s):
                    self.flash_bytes += self._numel(s) + QPARAM_BYTES

    def count_weight(self, weight: Any, bias: Any, out_channels: int, add_bias: bool = False) -> None:
        for value, elem in ((weight, 1), (bias, 4)):
            if isinstance(value, _Const):
                for s in sorted(value.sources - self.counted):
                    self.counted.add(s)
                    self.flash_bytes += elem * self._numel(s) + QPARAM_BYTES * out_channels
        if add_bias:
            self.flash_bytes += (4 + QPARAM_BYTES) * out_channels

    # ---- helpers ----------------------------------------------------------------------
    def val(self, arg: Any) -> Any:
        if isinstance(arg, torch.fx.Node):
            return self.env[arg.name]
        if isinstance(arg, (list, tuple)):
            return [self.val(a) for a in arg]
        return arg

    def acts(self, args: Any) -> list[_Act]:
        out: list[_Act] = []
        for a in args if isinstance(args, (list, tuple)) else [args]:
            v = self.val(a)
            if isinstance(v, _Act):
                out.append(v)
            elif isinstance(v, list):
                out.extend(x for x in v if isinstance(x, _Act))
        return out

    def consts(self, args: Any) -> list[_Const]:
        out = []
        for a in args:
            v = self.val(a)
            if isinstance(v, _Const):
                out.append(v)
            elif isinstance(v, list):
                out.extend(x for x in v if isinstance(x, _Const))
        return out

    def as_shape(self, x: _Act, name: str) -> int:
        """x's buffer with its PyTorch shape (RESHAPE when the buffer holds another rank)."""
        t = self.tensors[x.tensor]
        if t.shape == x.shape or math.prod(t.shape) != math.prod(x.shape):
            return x.tensor
        return self.emit("RESHAPE", [x.tensor], x.shape, f"{name}_r")

    @staticmethod
    def shape_of(node: torch.fx.Node) -> tuple[int, ...]:
        v = node.meta.get("val")
        return tuple(int(s) for s in v.shape) if isinstance(v, torch.Tensor) else ()

    @staticmethod
    def elem_bytes(node: torch.fx.Node) -> int:
        v = node.meta.get("val")
        if not isinstance(v, torch.Tensor) or v.dtype.is_floating_point:
            return 1
        return 1 if v.dtype == torch.bool else 4

    def sole_user(self, node: torch.fx.Node) -> bool:
        return len(node.users) == 1

    # ---- lowering ---------------------------------------------------------------------
    def run(self) -> LoweredGraph:
        graph_inputs: list[int] = []
        outputs: list[int] = []
        for node in self.ep.graph.nodes:
            if node.op == "placeholder":
                if node.name in self.const_names:
                    self.env[node.name] = _Const(frozenset([self.const_names[node.name]]))
                else:
                    shape = self.shape_of(node)
                    stored = (shape[0], shape[2], shape[3], shape[1]) if len(shape) == 4 else shape
                    t = self.new_tensor(node.name, stored, self.elem_bytes(node))
                    self.env[node.name] = _Act(t, shape, nhwc=len(shape) == 4)
                    graph_inputs.append(t)
            elif node.op == "get_attr":
                self.env[node.name] = _Const(frozenset([str(node.target)]))
            elif node.op == "call_function":
                self.env[node.name] = self.lower_node(node)
            elif node.op == "output":
                outputs = [a.tensor for a in self.acts(node.args[0])]
        return finish_graph(self.tensors, self.ops, self.producer, graph_inputs, outputs, self.flash_bytes)

    def lower_node(self, node: torch.fx.Node) -> Any:
        name = _op_name(node)
        if name == "getitem":
            seq, idx = node.args
            return self.val(seq)[idx]
        acts = self.acts(node.args)
        if not acts:  # computed from constants only: folded by the converter
            srcs = (
                frozenset().union(*(c.sources for c in self.consts(node.args))) if node.args else frozenset()
            )
            val = node.meta.get("val")
            if isinstance(val, (list, tuple)):
                return [_Const(srcs) for _ in val]
            return _Const(srcs)
        rule = getattr(self, f"_l_{name.rstrip('_')}", None)
        if rule is not None:
            out = rule(node, acts)
        elif name in _ALIAS_OPS:
            out = acts[0]
        elif name.rstrip("_") in _ELEMENTWISE:
            out = self._elementwise(node, acts, _ELEMENTWISE[name.rstrip("_")])
        elif name in _VIEW_OPS:
            out = self._view(node, acts[0])
        else:
            out = self._generic(node, acts, _TFLITE_NAMES.get(name.upper(), name.upper()))
        if (
            name.endswith("_")
            and not name.startswith("_")
            and isinstance(out, _Act)
            and out.tensor != acts[0].tensor
        ):
            # in-place op: the result lives in its input's buffer
            self.ops[self.producer[out.tensor]].outs = [acts[0].tensor]
            self.tensors[out.tensor].shape = (0,)
            out = _Act(acts[0].tensor, out.shape, acts[0].nhwc)
        return out

    def _generic(self, node: torch.fx.Node, acts: list[_Act], kind: str) -> Any:
        for c in self.consts(node.args):
            self.count_const(c)
        val = node.meta.get("val")
        vals = list(val) if isinstance(val, (list, tuple)) else [val]
        outs = [
            self.new_tensor(f"{node.name}.{i}", tuple(v.shape), self.elem_bytes(node))
            for i, v in enumerate(vals)
        ]
        for o in outs:
            self.producer[o] = len(self.ops)
        self.ops.append(GraphOp(kind, [a.tensor for a in acts], outs))
        res = [_Act(o, tuple(v.shape)) for o, v in zip(outs, vals, strict=True)]
        return res if isinstance(val, (list, tuple)) else res[0]

    def _simple(self, node: torch.fx.Node, kind: str, ins: list[int], nhwc: bool = False) -> _Act:
        shape = self.shape_of(node)
        return _Act(self.emit(kind, ins, shape, node.name), shape, nhwc)

    def _elementwise(self, node: torch.fx.Node, acts: list[_Act], kind: str) -> _Act:
        for c in self.consts(node.args):
            self.count_const(c)
        # the x·σ(1.702x) pattern (GELU as deployed): the converter reshapes the gate back
        ins = [x.tensor for x in acts]
        if kind == "MUL" and len(acts) == 2 and self.kind_of(acts[1].tensor) == "LOGISTIC":
            gate = self.ops[self.producer[acts[1].tensor]].ins[0]
            if self.kind_of(gate) == "MUL" and self.ops[self.producer[gate]].ins == [acts[0].tensor]:
                ins[1] = self.emit("RESHAPE", [acts[1].tensor], acts[1].shape, f"{node.name}.gate_r")
        nhwc = any(x.nhwc for x in acts) and len(self.shape_of(node)) == 4
        return self._simple(node, kind, ins, nhwc)

    def _view(self, node: torch.fx.Node, x: _Act) -> _Act:
        shape = self.shape_of(node)
        if shape == x.shape:
            return x
        t = x.tensor
        if x.nhwc and len(x.shape) == 4 and x.shape[1] > 1 and x.shape[2] * x.shape[3] > 1:
            t = self.emit("TRANSPOSE", [t], x.shape, f"{node.name}.nchw")
        return _Act(self.emit("RESHAPE", [t], shape, node.name), shape)

    # ---- per-op rules (method name: _l_<aten op without trailing underscore>) ---------
    def _l_convolution(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        return self._l_conv2d(node, acts)

    def _l_conv2d(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        args = list(node.args) + [None] * 7
        w, b = self.val(args[1]), self.val(args[2])
        groups = args[6] if _op_name(node) == "conv2d" else args[8]
        groups = groups or 1
        shape = self.shape_of(node)
        in_ch = acts[0].shape[1]
        kind = "DEPTHWISE_CONV_2D" if groups > 1 and groups == in_ch else "CONV_2D"
        self.count_weight(w, b, shape[1])
        return self._simple(node, kind, [acts[0].tensor], nhwc=True)

    def _l_linear(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        w = self.val(node.args[1])
        b = self.val(node.args[2]) if len(node.args) > 2 else None
        self.count_weight(w, b, self.shape_of(node)[-1])
        return self._simple(node, "FULLY_CONNECTED", [acts[0].tensor])

    def _l_batch_norm(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        x = acts[0]
        src = node.args[0]
        host = self.producer.get(x.tensor)
        if (
            host is not None
            and self.ops[host].kind in _FUSABLE_BN_HOSTS
            and isinstance(src, torch.fx.Node)
            and self.sole_user(src)
        ):
            # fused: the host gains a bias if it had none
            self.count_weight(None, None, x.shape[1], add_bias=not self._host_has_bias(src))
            return x
        for c in self.consts(node.args):
            self.count_const(c)
        scaled = self.emit("MUL", [x.tensor], self.shape_of(node), f"{node.name}.scale")
        return _Act(self.emit("ADD", [scaled], self.shape_of(node), node.name), self.shape_of(node), x.nhwc)

    def _host_has_bias(self, node: torch.fx.Node) -> bool:
        return len(node.args) > 2 and node.args[2] is not None

    def _l__native_batch_norm_legit_no_training(self, node: torch.fx.Node, acts: list[_Act]) -> list:
        return [self._l_batch_norm(node, acts), None, None]

    def _act(self, node: torch.fx.Node, acts: list[_Act], kind: str) -> _Act:
        x, src = acts[0], node.args[0]
        host = self.producer.get(x.tensor)
        if (
            host is not None
            and self.ops[host].kind in _FUSABLE_ACT_HOSTS
            and isinstance(src, torch.fx.Node)
            and self.sole_user(src)
        ):
            return x  # fused into the op that writes x
        return self._simple(node, kind, [x.tensor], x.nhwc)

    def _l_relu(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        return self._act(node, acts, "RELU")

    def _l_relu6(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        return self._act(node, acts, "RELU6")

    def _l_hardtanh(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        return self._act(node, acts, "RELU6")

    def _l_gelu(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        x, shape = acts[0], self.shape_of(node)
        pre = self.emit("MUL", [x.tensor], shape, f"{node.name}.1.702x")
        sig = self.emit("LOGISTIC", [pre], shape, f"{node.name}.sigmoid")
        sig = self.emit("RESHAPE", [sig], shape, f"{node.name}.sigmoid_r")
        return _Act(self.emit("MUL", [x.tensor, sig], shape, node.name), shape, x.nhwc)

    def _l_silu(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        x, shape = acts[0], self.shape_of(node)
        sig = self.emit("LOGISTIC", [x.tensor], shape, f"{node.name}.sigmoid")
        return _Act(self.emit("MUL", [x.tensor, sig], shape, node.name), shape, x.nhwc)

    def _l_softmax(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        return self._simple(node, "SOFTMAX", [self.as_shape(acts[0], node.name)])

    def _l__softmax(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        return self._l_softmax(node, acts)

    def _l_matmul(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        for c in self.consts(node.args):
            self.count_const(c)
        return self._simple(node, "BATCH_MATMUL", [a.tensor for a in acts])

    _l_bmm = _l_matmul

    def _l_layer_norm(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        x, shape = acts[0], self.shape_of(node)
        e = math.prod(node.args[1])
        users = list(node.users)
        folded = (
            len(users) == 1
            and _op_name(users[0]) == "linear"
            and len(users[0].args) > 2
            and users[0].args[2] is not None
        )
        if not folded:
            self.count_const(_Const(frozenset().union(*(c.sources for c in self.consts(node.args[2:])))))
        return self._norm(node.name, x, shape, math.prod(shape) // e, folded)

    def _l_group_norm(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        x, shape = acts[0], self.shape_of(node)
        groups = node.args[1]
        self.count_const(_Const(frozenset().union(*(c.sources for c in self.consts(node.args[2:4])))))
        return self._norm(node.name, x, shape, shape[0] * groups, False)

    def _norm(self, name: str, x: _Act, shape: tuple[int, ...], n: int, folded: bool) -> _Act:
        """The converter's normalisation: statistics over the last axis of (n, elements)."""
        mean = self.emit("MEAN", [x.tensor], (n,), f"{name}.mean")
        mean3 = self.emit("RESHAPE", [mean], (1, n, 1), f"{name}.mean_r")
        sqd = self.emit("SQUARED_DIFFERENCE", [x.tensor, mean3], shape, f"{name}.sqdiff")
        var = self.emit("MEAN", [sqd], (n,), f"{name}.var")
        var_eps = self.emit("ADD", [var], (n,), f"{name}.var_eps")
        rstd = self.emit("RSQRT", [var_eps], (n,), f"{name}.rstd")
        mean_rstd = self.emit("MUL", [rstd, mean], (n,), f"{name}.mean_rstd")
        shift = self.emit("SUB", [mean_rstd], (n,), f"{name}.shift")
        rstd3 = self.emit("RESHAPE", [rstd], (1, n, 1), f"{name}.rstd_r")
        scaled = self.emit("MUL", [x.tensor, rstd3], shape, f"{name}.scaled")
        shift3 = self.emit("RESHAPE", [shift], (1, n, 1), f"{name}.shift_r")
        out = self.emit("ADD", [scaled, shift3], shape, f"{name}.normed")
        if not folded:
            out = self.emit("ADD", [self.emit("MUL", [out], shape, f"{name}.gamma")], shape, name)
        return _Act(out, shape, x.nhwc)

    def _l_scaled_dot_product_attention(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        if len(acts) != 3:
            return self._generic(node, acts, "ATTENTION")
        q, k, v = acts
        *lead, n, d = q.shape
        h, m = math.prod(lead), k.shape[-2]
        p = node.name
        q_s = self.emit("MUL", [q.tensor], q.shape, f"{p}.q_scaled")
        k_s = self.emit("MUL", [k.tensor], k.shape, f"{p}.k_scaled")
        if h == 1:  # one head: q·kᵀ is a FULLY_CONNECTED with k as its run-time weights
            k2 = self.emit("RESHAPE", [k_s], (m, d), f"{p}.k_r")
            scores = self.emit("FULLY_CONNECTED", [q_s, k2], (1, 1, n, m), f"{p}.scores")
            probs = self.emit("SOFTMAX", [scores], (1, 1, n, m), f"{p}.softmax")
            probs2 = self.emit("RESHAPE", [probs], (n, m), f"{p}.softmax_r")
            v2 = self.emit("RESHAPE", [v.tensor], (m, d), f"{p}.v")
            return _Act(self.emit("BATCH_MATMUL", [probs2, v2], (n, d), f"{p}.context"), self.shape_of(node))
        k_t = self.emit("TRANSPOSE", [k_s], (*lead, d, m), f"{p}.k_t")
        q3 = self.emit("RESHAPE", [q_s], (h, n, d), f"{p}.q_r")
        k3 = self.emit("RESHAPE", [k_t], (h, d, m), f"{p}.k_r")
        scores = self.emit("BATCH_MATMUL", [q3, k3], (h, n, m), f"{p}.scores")
        scores4 = self.emit("RESHAPE", [scores], (*lead, n, m), f"{p}.scores_r")
        probs = self.emit("SOFTMAX", [scores4], (*lead, n, m), f"{p}.softmax")
        probs3 = self.emit("RESHAPE", [probs], (h, n, m), f"{p}.softmax_r")
        v3 = self.emit("RESHAPE", [v.tensor], (h, m, d), f"{p}.v")
        return _Act(self.emit("BATCH_MATMUL", [probs3, v3], (h, n, d), f"{p}.context"), self.shape_of(node))

    def _l_select(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        x, dim = acts[0], node.args[1] % len(acts[0].shape)
        kept = tuple(1 if i == dim else s for i, s in enumerate(x.shape))
        sliced = self.emit("SLICE", [self.as_shape(x, node.name)], kept, f"{node.name}.slice")
        return _Act(self.emit("RESHAPE", [sliced], self.shape_of(node), node.name), self.shape_of(node))

    def _l_slice(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        if self.shape_of(node) == acts[0].shape:
            return acts[0]
        step = node.args[4] if len(node.args) > 4 else 1
        kind = "SLICE" if step == 1 else "STRIDED_SLICE"  # the converter's choice (e.g. gp's x[:, 1:])
        return self._simple(node, kind, [self.as_shape(acts[0], node.name)], acts[0].nhwc)

    def _l_permute(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        x, shape = acts[0], self.shape_of(node)
        if [s for s in x.shape if s != 1] == [s for s in shape if s != 1] and not x.nhwc:
            return self._view(node, x)  # moves only size-1 axes: a reshape
        return self._simple(node, "TRANSPOSE", [self.as_shape(x, node.name)])

    _l_transpose = _l_permute
    _l_t = _l_permute

    def _l_expand(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        if self.shape_of(node) == acts[0].shape:
            return acts[0]
        return self._simple(node, "BROADCAST_TO", [acts[0].tensor])

    _l_expand_as = _l_expand
    _l_repeat = _l_expand

    def _l_cat(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        ins = [a.tensor for a in acts]
        consts = self.consts(node.args[0])
        for c in consts:
            self.count_const(c)
        if consts:  # requantised to the concatenation's scale; the quantizer appends these tensors
            ins = [
                self.emit("QUANTIZE", [t], self.tensors[t].shape, f"{node.name}.requant", late=True)
                for t in ins
            ]
        return self._simple(node, "CONCATENATION", ins, any(a.nhwc for a in acts))

    def _reduce(self, node: torch.fx.Node, acts: list[_Act], kind: str) -> _Act:
        return self._simple(node, kind, [acts[0].tensor])

    def _l_mean(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        return self._reduce(node, acts, "MEAN")

    def _l_sum(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        return self._reduce(node, acts, "SUM")

    def _l_adaptive_avg_pool2d(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        shape = self.shape_of(node)
        kind = "MEAN" if shape[-1] * shape[-2] == 1 else "AVERAGE_POOL_2D"
        return self._simple(node, kind, [acts[0].tensor], acts[0].nhwc)

    def _l_avg_pool2d(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        return self._simple(node, "AVERAGE_POOL_2D", [acts[0].tensor], acts[0].nhwc)

    def _l_max_pool2d(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        return self._simple(node, "MAX_POOL_2D", [acts[0].tensor], acts[0].nhwc)

    def _l_pad(self, node: torch.fx.Node, acts: list[_Act]) -> _Act:
        return self._simple(node, "PAD", [acts[0].tensor], acts[0].nhwc)

    _l_constant_pad_nd = _l_pad
