"""The ``tflm`` schedule: the TF-Lite Micro arena a subnet needs, from its config alone.

The figure (``peak_bytes``) is the whole arena on a 64-bit host: the head (activation
buffers and kernel scratch, planned as TFLM plans them) plus the tail (persistent op data,
tensor structs, the interpreter's fixed part; :mod:`memory_model.tflm_tail`), or the planning
records when they exceed the head. The head alone is ``tflm_arena(cfg).head_bytes`` (and
``tflm_plan``); the 32-bit MCU figure is modelled (``tflm_arena(cfg, pointer_bits=32)``).

:func:`tflm_graph` rebuilds, op by op, the int8 graph that ``deploy.export`` produces
(litert-torch conversion + ai-edge-quantizer static int8, NHWC input, batch 1), with every
activation tensor the converter leaves in it, in the converter's tensor order (which decides
ties in the planner). :func:`tflm_report` plans it with the emulated greedy planner
(:mod:`memory_model.planner`), so the number is TFLM's head, not a by-hand rule.

The converted graph, per part (``N`` tokens, ``E`` embed, ``P`` patches, all int8):

* stem: [PAD if the image is not a multiple of the patch] -> CONV_2D (1,g,g,E) ->
  TRANSPOSE (1,E,g,g) -> RESHAPE (1,E,P); with a class token: TRANSPOSE (1,P,E) ->
  QUANTIZE (requantise to the concat scale) -> CONCATENATION (1,N,E) -> [ADD pos]; without:
  [ADD pos in (1,E,P) layout] -> TRANSPOSE (1,P,E).
* LayerNorm (14 ops): MEAN -> RESHAPE -> SQUARED_DIFFERENCE -> MEAN -> ADD eps -> RSQRT ->
  MUL(rstd, mean) -> SUB -> RESHAPE -> MUL(x, rstd) -> RESHAPE -> ADD -> MUL gamma -> ADD beta;
  the last two are folded into the next FC when it is dense and has a bias (trained
  weights: a bias-free factorised ``v`` cannot absorb beta).
* attention: qkv (1 FC, or 2 when factorised) -> RESHAPE (1,N,3,h,d) -> TRANSPOSE (3,1,h,N,d)
  -> SLICE/RESHAPE q, SLICE/RESHAPE k, SLICE v -> MUL q, MUL k (scale split over both) ->
  TRANSPOSE k -> RESHAPE q, RESHAPE k -> BATCH_MATMUL (h,N,N) -> RESHAPE -> SOFTMAX ->
  RESHAPE -> RESHAPE v -> BATCH_MATMUL (h,N,d) -> RESHAPE -> TRANSPOSE -> RESHAPE -> proj
  (1 or 2 FC) -> ADD residual.
  With one head, q·kᵀ is a FULLY_CONNECTED and the merge reshapes/transpose disappear.
* MLP: fc1 (1 or 2 FC; ReLU fused) -> [x·σ(1.702x): MUL, LOGISTIC, RESHAPE, MUL] -> fc2
  (1 or 2 FC) -> ADD residual.
* head: final LayerNorm -> SLICE token 0 (cls), MEAN over tokens (avg) or SLICE of the patch
  tokens then MEAN (gp) -> FC logits.

Kernel scratch: each int8 MEAN holds an int32 per output element (TFLM ``reduce``).
Exact GELU has no TFLM kernel; a ``gelu`` subnet is planned in the x·σ(1.702x) form it is
deployed as.
"""

from __future__ import annotations

from dataclasses import dataclass

from memory_model.planner import Plan, greedy_plan, max_live_bytes
from memory_model.report import MemoryReport, OpMemory
from memory_model.tflite_graph import OP_NAMES, Graph, Operator, Tensor, graph_buffers
from memory_model.tflm_tail import TailReport, arena_bytes, tail_report
from search_space.config import SubnetConfig

_OPCODE = {name: code for code, name in OP_NAMES.items()}
_INT8 = 9


class _Builder:
    """Collects activation tensors and ops; tensor indices follow the converter's order."""

    def __init__(self) -> None:
        self.tensors: list[tuple[str, tuple[int, ...]]] = []
        self.ops: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
        self.appended: list[tuple[str, tuple[int, ...]]] = []  # tensors the quantizer adds at the end
        self._late: list[int] = []

    def tensor(self, name: str, shape: tuple[int, ...]) -> int:
        self.tensors.append((name, shape))
        return len(self.tensors) - 1

    def op(self, kind: str, inputs: list[int], shape: tuple[int, ...], name: str, late: bool = False) -> int:
        """Add ``kind`` reading ``inputs`` and writing one new tensor of ``shape``."""
        if late:
            self.appended.append((name, shape))
            out = -len(self.appended)  # fixed up in graph()
            self._late.append(len(self.ops))
        else:
            out = self.tensor(name, shape)
        self.ops.append((kind, tuple(inputs), (out,)))
        return out

    def graph(self, inputs: list[int], outputs: list[int]) -> Graph:
        base = len(self.tensors)
        remap = lambda t: base + (-t - 1) if t < 0 else t  # noqa: E731
        names = self.tensors + self.appended
        tensors = tuple(Tensor(i, n, s, _INT8, False, False) for i, (n, s) in enumerate(names))
        ops = tuple(
            Operator(k, _OPCODE[kind], tuple(map(remap, ins)), tuple(map(remap, outs)))
            for k, (kind, ins, outs) in enumerate(self.ops)
        )
        return Graph(tensors, ops, tuple(map(remap, inputs)), tuple(map(remap, outputs)))


def _linear(b: _Builder, x: int, rows: int, d_out: int, rank: int | None, name: str) -> int:
    """A dense FC, or the two FCs of a factorised linear (d_in -> rank -> d_out)."""
    if rank is not None:
        x = b.op("FULLY_CONNECTED", [x], (rows, rank), f"{name}.v")
    return b.op("FULLY_CONNECTED", [x], (1, rows, d_out), name)


def _layer_norm(b: _Builder, x: int, n: int, e: int, name: str, folded: bool = False) -> int:
    """The converter's LayerNorm; ``folded``: gamma/beta merged into the next FC's weights and bias."""
    mean = b.op("MEAN", [x], (n,), f"{name}.mean")
    mean3 = b.op("RESHAPE", [mean], (1, n, 1), f"{name}.mean_r")
    sqd = b.op("SQUARED_DIFFERENCE", [x, mean3], (1, n, e), f"{name}.sqdiff")
    var = b.op("MEAN", [sqd], (n,), f"{name}.var")
    var_eps = b.op("ADD", [var], (n,), f"{name}.var_eps")
    rstd = b.op("RSQRT", [var_eps], (n,), f"{name}.rstd")
    mean_rstd = b.op("MUL", [rstd, mean], (n,), f"{name}.mean_rstd")
    shift = b.op("SUB", [mean_rstd], (n,), f"{name}.shift")
    rstd3 = b.op("RESHAPE", [rstd], (1, n, 1), f"{name}.rstd_r")
    scaled = b.op("MUL", [x, rstd3], (1, n, e), f"{name}.scaled")
    shift3 = b.op("RESHAPE", [shift], (1, n, 1), f"{name}.shift_r")
    normed = b.op("ADD", [scaled, shift3], (1, n, e), f"{name}.normed")
    if folded:
        return normed
    gamma = b.op("MUL", [normed], (1, n, e), f"{name}.gamma")
    return b.op("ADD", [gamma], (1, n, e), f"{name}.out")


def _attention(b: _Builder, x: int, cfg: SubnetConfig, layer: int) -> int:
    n, h, d = cfg.num_tokens, cfg.num_heads[layer], cfg.head_dim
    p = f"blocks.{layer}.attn"
    qkv = _linear(b, x, n, 3 * h * d, cfg.linear_rank("qkv", layer), f"{p}.qkv")
    qkv5 = b.op("RESHAPE", [qkv], (1, n, 3, h, d), f"{p}.qkv_r")
    qkv_t = b.op("TRANSPOSE", [qkv5], (3, 1, h, n, d), f"{p}.qkv_t")
    q5 = b.op("SLICE", [qkv_t], (1, 1, h, n, d), f"{p}.q_slice")
    q = b.op("RESHAPE", [q5], (1, h, n, d), f"{p}.q")
    k5 = b.op("SLICE", [qkv_t], (1, 1, h, n, d), f"{p}.k_slice")
    k = b.op("RESHAPE", [k5], (1, h, n, d), f"{p}.k")
    v5 = b.op("SLICE", [qkv_t], (1, 1, h, n, d), f"{p}.v_slice")
    q_s = b.op("MUL", [q], (1, h, n, d), f"{p}.q_scaled")
    k_s = b.op("MUL", [k], (1, h, n, d), f"{p}.k_scaled")
    if h == 1:  # one head: q·kᵀ becomes a FULLY_CONNECTED with k as its (run-time) weights
        k2 = b.op("RESHAPE", [k_s], (n, d), f"{p}.k_r")
        scores4 = b.op("FULLY_CONNECTED", [q_s, k2], (1, 1, n, n), f"{p}.scores")
        probs = b.op("SOFTMAX", [scores4], (1, 1, n, n), f"{p}.softmax")
        probs2 = b.op("RESHAPE", [probs], (n, n), f"{p}.softmax_r")
        v2 = b.op("RESHAPE", [v5], (n, d), f"{p}.v")
        merged = b.op("BATCH_MATMUL", [probs2, v2], (n, d), f"{p}.context")
        return _linear(b, merged, n, cfg.embed_dim, cfg.linear_rank("proj", layer), f"{p}.proj")
    k_t = b.op("TRANSPOSE", [k_s], (1, h, d, n), f"{p}.k_t")
    q3 = b.op("RESHAPE", [q_s], (h, n, d), f"{p}.q_r")
    k3 = b.op("RESHAPE", [k_t], (h, d, n), f"{p}.k_r")
    scores = b.op("BATCH_MATMUL", [q3, k3], (h, n, n), f"{p}.scores")
    scores4 = b.op("RESHAPE", [scores], (1, h, n, n), f"{p}.scores_r")
    probs = b.op("SOFTMAX", [scores4], (1, h, n, n), f"{p}.softmax")
    probs3 = b.op("RESHAPE", [probs], (h, n, n), f"{p}.softmax_r")
    v3 = b.op("RESHAPE", [v5], (h, n, d), f"{p}.v")
    ctx = b.op("BATCH_MATMUL", [probs3, v3], (h, n, d), f"{p}.context")
    ctx4 = b.op("RESHAPE", [ctx], (1, h, n, d), f"{p}.context_r")
    ctx_t = b.op("TRANSPOSE", [ctx4], (1, n, h, d), f"{p}.context_t")
    merged = b.op("RESHAPE", [ctx_t], (1, n, h * d), f"{p}.merged")
    return _linear(b, merged, n, cfg.embed_dim, cfg.linear_rank("proj", layer), f"{p}.proj")


def _mlp(b: _Builder, x: int, cfg: SubnetConfig, layer: int) -> int:
    n, m = cfg.num_tokens, cfg.mlp_hidden(layer)
    p = f"blocks.{layer}.mlp"
    rank1 = cfg.linear_rank("fc1", layer)
    hidden = _linear(b, x, n, m, rank1, f"{p}.fc1")  # ReLU is fused into this FC
    if cfg.act in ("gelu", "gelu_sigmoid"):  # exact GELU has no TFLM kernel: deployed as x·σ(1.702x)
        pre = b.op("MUL", [hidden], (1, n, m), f"{p}.act_1.702x")
        sig = b.op("LOGISTIC", [pre], (1, n, m), f"{p}.act_sigmoid")
        # fc1 (factorised, or dense with norm2 folded in) leaves a 2-D tensor: reshaped back
        sig = b.op("RESHAPE", [sig], (1, n, m), f"{p}.act_sigmoid_r")
        hidden = b.op("MUL", [hidden, sig], (1, n, m), f"{p}.act")
    return _linear(b, hidden, n, cfg.embed_dim, cfg.linear_rank("fc2", layer), f"{p}.fc2")


def tflm_graph(cfg: SubnetConfig) -> Graph:
    """The activation graph of the subnet's int8 .tflite, as the converter lays it out."""
    b = _Builder()
    e, g, p, n = cfg.embed_dim, cfg.grid_size, cfg.num_patches, cfg.num_tokens
    image = b.tensor("input", (1, cfg.img_size, cfg.img_size, cfg.in_chans))
    x = image
    if cfg.padded_img_size != cfg.img_size:
        x = b.op("PAD", [x], (1, cfg.padded_img_size, cfg.padded_img_size, cfg.in_chans), "input_padded")
    x = b.op("CONV_2D", [x], (1, g, g, e), "patch_embed")
    x = b.op("TRANSPOSE", [x], (1, e, g, g), "patch_embed_t")
    x = b.op("RESHAPE", [x], (1, e, p), "patch_embed_r")
    if cfg.has_cls_token:
        x = b.op("TRANSPOSE", [x], (1, p, e), "tokens")
        x = b.op("QUANTIZE", [x], (1, p, e), "tokens_requant", late=True)
        x = b.op("CONCATENATION", [x], (1, n, e), "tokens_cls")
        if cfg.abs_pos:
            x = b.op("ADD", [x], (1, n, e), "tokens_pos")
    else:
        if cfg.abs_pos:
            x = b.op("ADD", [x], (1, e, p), "tokens_pos")
        x = b.op("TRANSPOSE", [x], (1, p, e), "tokens")
    for layer in range(cfg.depth):
        fold1 = cfg.linear_rank("qkv", layer) is None and cfg.qkv_bias
        y = _attention(b, _layer_norm(b, x, n, e, f"blocks.{layer}.norm1", fold1), cfg, layer)
        x = b.op("ADD", [x, y], (1, n, e), f"blocks.{layer}.residual1")
        fold2 = cfg.linear_rank("fc1", layer) is None
        y = _mlp(b, _layer_norm(b, x, n, e, f"blocks.{layer}.norm2", fold2), cfg, layer)
        x = b.op("ADD", [x, y], (1, n, e), f"blocks.{layer}.residual2")
    x = _layer_norm(b, x, n, e, "norm")
    if cfg.pool == "gp":  # the patch tokens after the class token, then their mean
        x = b.op("SLICE", [x], (1, p, e), "patch_tokens")
    pooled_op, pooled_shape = ("SLICE", (1, 1, e)) if cfg.pool == "cls" else ("MEAN", (1, e))
    x = b.op(pooled_op, [x], pooled_shape, "pooled")
    logits = b.op("FULLY_CONNECTED", [x], (1, cfg.num_classes), "head")
    return b.graph([image], [logits])


def tflm_plan(cfg: SubnetConfig) -> Plan:
    """TFLM's greedy plan of the subnet's converted int8 graph (tensors and kernel scratch)."""
    return greedy_plan(graph_buffers(tflm_graph(cfg)))


@dataclass(frozen=True)
class TflmArena:
    """TFLM's arena for a subnet: head (planned activations + scratch), tail, and the total."""

    head_bytes: int
    tail: TailReport
    total_bytes: int  # the arena to give TFLM: tail + max(head, planning records)


def tflm_arena(cfg: SubnetConfig, pointer_bits: int = 64) -> TflmArena:
    """The whole TFLM arena of ``cfg`` from its config (64-bit host: measured rules; 32: modelled)."""
    graph = tflm_graph(cfg)
    buffers = graph_buffers(graph)
    head = greedy_plan(buffers).head_bytes
    scratch = sum(1 for b in buffers if b.name.startswith("scratch:"))
    tail = tail_report(
        graph, len(graph.tensors) + len(_const_keys(graph, cfg.qkv_bias)), scratch, pointer_bits
    )
    return TflmArena(head, tail, arena_bytes(head, tail))


def tflm_report(cfg: SubnetConfig) -> MemoryReport:
    """Predicted TFLM arena (``peak_bytes``: head + tail on a 64-bit host) with the live
    buffers per op; the head, the tail and the modelled 32-bit arena are in ``options``."""
    graph = tflm_graph(cfg)
    plan = greedy_plan(graph_buffers(graph))
    host, mcu = tflm_arena(cfg, 64), tflm_arena(cfg, 32)
    ops = []
    for k, op in enumerate(graph.operators):
        scope = k + 1
        live = {
            b.name: s
            for b, s in zip(plan.buffers, plan.aligned_sizes_bytes, strict=True)
            if b.first_op <= scope <= b.last_op
        }
        ops.append(OpMemory(f"{op.name.lower()}:{graph.tensors[op.outputs[0]].name}", live))
    lower = max_live_bytes(plan.buffers)
    gap = 0.0 if lower == 0 else (plan.head_bytes - lower) / lower
    options = {
        "planner": "tflm-greedy",
        "head_bytes": plan.head_bytes,
        "tail_bytes": host.tail.tail_bytes,
        "planning_bytes": host.tail.plan_bytes,
        "tail_top_op": host.tail.dominant_kind,
        "pointer_bits": 64,
        "arena_32bit_bytes (modelled)": mcu.total_bytes,
        "max_live_bytes": lower,
        "fragmentation": f"{100 * gap:.1f}%",
    }
    options["tail_by_op_bytes"] = dict(sorted(host.tail.per_kind_bytes.items(), key=lambda kv: -kv[1]))
    ops = [OpMemory(o.name, {**o.live, "tail (persistent)": host.tail.tail_bytes}) for o in ops]
    return MemoryReport("tflm", host.total_bytes, tuple(ops), options)


_SHARED_CONSTS = {"var_eps", "shift", "q_scaled", "k_scaled", "act_1.702x"}  # same value in every layer


def _const_keys(graph: Graph, qkv_bias: bool = True) -> set[tuple]:
    """Keys of the constant tensors the converted graph holds (the converter shares equal ones)."""
    keys: set[tuple] = set()
    for k, op in enumerate(graph.operators):
        out = graph.tensors[op.outputs[0]]
        src = graph.tensors[op.inputs[0]]
        suffix = out.name.rsplit(".", 1)[-1]
        kind = op.name
        if kind == "RESHAPE":
            keys.add(("shape", out.shape))
        elif kind == "TRANSPOSE":
            keys.add(("perm", suffix, len(out.shape)))
        elif kind == "SLICE":
            keys |= {("begin", suffix), ("size", out.shape)}
        elif kind == "MEAN":
            keys.add(("axis", len(src.shape), len(out.shape)))
        elif kind in ("FULLY_CONNECTED", "CONV_2D") and len(op.inputs) == 1:
            keys.add(("weights", k))
            no_bias = out.name.endswith(".v") or (out.name.endswith("attn.qkv") and not qkv_bias)
            if not no_bias:  # a factorised linear's first factor has no bias
                keys.add(("bias", k))
        elif kind in ("ADD", "MUL", "SUB") and len(op.inputs) == 1:
            keys.add(("const", suffix) if suffix in _SHARED_CONSTS else ("const", k))
        elif kind in ("CONCATENATION", "PAD"):
            keys.add((kind,))
    return keys


def num_tflite_tensors(cfg: SubnetConfig) -> int:
    """All tensors of the subnet's converted .tflite (activations and constants)."""
    graph = tflm_graph(cfg)
    return len(graph.tensors) + len(_const_keys(graph, cfg.qkv_bias))
