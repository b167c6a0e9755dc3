"""The ``mcu`` schedule: int8 inference of one subnet with MCUFormer's operator library.

The schedule is a list of ops; each op allocates buffers before it runs and frees (or
shrinks) buffers after it. The peak is the largest sum of live bytes over the ops. The
int8 executor (`memory_model.int8`) walks the same op list inside a byte arena and
reproduces that peak to the byte while computing real logits.

Rules (N tokens, E embed, d head dim, h heads, q = h*d, M MLP hidden, r a factor rank,
C classes; every buffer is rounded up to a multiple of 4 bytes so int32 views are aligned):

* Arena: a two-ended stack. Long-lived buffers grow from the bottom ("low"), short-lived
  ones from the top ("high"); each end is strictly LIFO, so the bytes in use are always
  the sum of the live buffers (no fragmentation) and an arena of exactly the peak fits.
* Input: the uint8 image H*W*3 (unpadded) sits in the arena until the patch embedding is
  done. Padding to the patch grid is virtual: out-of-image pixels are skipped.
  With ``input="stream"`` the image is never whole in SRAM: the patch embedding pulls one
  row of patches at a time from a source (a camera or flash callback) into a band buffer
  of P*W*C bytes (fewer rows when the image is smaller than a patch), ``patch_embed_stream``.
* Patch embedding: token by token, the P x P kernel is split into 4x4 sub-kernels whose
  products accumulate into one token's int32 accumulator (4E bytes); the result is
  requantised into the residual stream X (N*E int8), adding the int8 position embedding
  (read from flash). The class token row (class token + its position embedding) is copied
  from flash into row 0.
* Residual stream X (N*E) stays live through all blocks; residual adds are fused into the
  epilogue of ``proj`` and ``fc2`` (X[i] += out[i], element by element), so those linears
  need no output buffer.
* LayerNorm is fused (mean/variance in registers, integer square root by 3 Newton steps)
  and writes into a working buffer: A (N*E) before attention, B (N*max(E, M)) before the MLP.
* Token overwriting: a linear whose input and output share a buffer writes each token's
  output over that token's input; rows go forward when the width shrinks and backward when
  it grows, through a one-token temporary T (d_out bytes). Used for fc1 (E -> M in B) and for
  every low-rank factor ``v`` (d_in -> r <= d_in). After the ``v`` factor of qkv (in A) and
  of fc2 (in B) the buffer is at the top of the low stack and is shrunk to N*r.
* Low-rank linears run as their two factors through the rank-r intermediate.
* Attention, head by head (O: N*q int8 head outputs, high end, live across heads):
  Q_j, K_j (N*d each, from A); scores S_j (N*N): row by row the N int32 logits go to a
  one-row int32 temporary (4N bytes) and a fused integer softmax writes the uint8
  probabilities into S_j; Q_j and K_j are then freed; V_j (N*d) is computed and
  O[:, j] = S_j V_j. After the last head A is freed, then proj reads O.
* GELU (x*sigmoid(1.702x), also used for exact 'gelu') or ReLU is fused into fc1's epilogue.
* Head: 'cls' normalises row 0 of X into P (E bytes); 'avg' normalises every row ('gp': every
  row after the class token) and sums it into an int32 accumulator (4E), then X is freed and
  the mean is requantised into P.
  The classifier writes int32 logits (4C bytes), the output, which stay in the arena.
* Weights: read from flash (default), or with ``weights_in_sram=True`` each op stages the
  constants it multiplies by into a buffer W at the high end for the duration of the op:
  int32 bias (4 bytes per output, when the layer has one) then the int8 matrix. qkv is
  staged per head slice (q_j, k_j, v_j: d rows at a time); the patch kernel one 4x4
  sub-kernel at a time (E*3*16 bytes) plus its bias. LayerNorm scales, the class token
  and the position embedding are small tables always read from flash.
* Not modelled: ``rel_pos`` (AutoFormer's relative-position terms), stack and code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import ConfigError
from memory_model.report import MemoryReport, OpMemory
from search_space.config import SubnetConfig

LOW, HIGH = "low", "high"
SUBKERNEL = 4  # patch-embedding sub-kernel side
INPUT_MODES = ("whole", "stream")  # the image in SRAM at once, or one row of patches at a time


def align4(nbytes: int) -> int:
    """Bytes rounded up to a multiple of 4."""
    return (nbytes + 3) // 4 * 4


def weight_bytes(d_in: int, d_out: int, bias: bool) -> int:
    """Staged bytes of a linear: int32 bias (if any) then the int8 matrix."""
    return (4 * d_out if bias else 0) + align4(d_in * d_out)


@dataclass(frozen=True)
class Op:
    """One step of the schedule. ``live`` = buffers in the arena while it runs (bytes)."""

    name: str
    kind: str
    args: dict
    alloc: tuple[tuple[str, int, str], ...]  # (buffer, bytes, side) allocated before the op
    free: tuple[str, ...]  # freed after the op, in this order
    shrink: tuple[tuple[str, int], ...]  # (buffer, new bytes) after the op
    live: dict[str, int] = field(default_factory=dict)


class _Plan:
    """Builds the op list while tracking which buffers are live."""

    def __init__(self, weights_in_sram: bool) -> None:
        self.sram = weights_in_sram
        self.live: dict[str, int] = {}
        self.ops: list[Op] = []

    def op(self, name, kind, alloc=(), free=(), shrink=(), weights: int = 0, **args) -> None:
        alloc = list(alloc)
        if self.sram and weights:
            alloc.append(("W", weights, HIGH))
            free = ("W", *free)
        for buf, nbytes, _ in alloc:
            assert buf not in self.live, buf
            self.live[buf] = align4(nbytes)
        alloc = tuple((b, align4(n), s) for b, n, s in alloc)
        shrink = tuple((b, align4(n)) for b, n in shrink)
        self.ops.append(Op(name, kind, args, alloc, tuple(free), shrink, dict(self.live)))
        for buf in free:
            del self.live[buf]
        for buf, nbytes in shrink:
            self.live[buf] = nbytes


def _linear_params(cfg: SubnetConfig, layer: int, kind: str) -> tuple[str, int, int, int | None, bool]:
    """(module path, d_in, d_out, rank, has_bias) of block linear ``kind``."""
    e, q, m = cfg.embed_dim, cfg.qkv_dim(layer), cfg.mlp_hidden(layer)
    d_in, d_out = {"qkv": (e, 3 * q), "proj": (q, e), "fc1": (e, m), "fc2": (m, e)}[kind]
    sub = "attn" if kind in ("qkv", "proj") else "mlp"
    bias = cfg.qkv_bias if kind == "qkv" else True
    return f"blocks.{layer}.{sub}.{kind}", d_in, d_out, cfg.linear_rank(kind, layer), bias


def _block(p: _Plan, cfg: SubnetConfig, layer: int) -> None:
    n, e, d, h = cfg.num_tokens, cfg.embed_dim, cfg.head_dim, cfg.num_heads[layer]
    q, m = cfg.qkv_dim(layer), cfg.mlp_hidden(layer)
    pre = f"blocks.{layer}"
    x_in = "x0" if layer == 0 else f"blocks.{layer - 1}.x_out"
    # ---- attention ----
    p.op(f"{pre}.norm1", "layernorm", [("A", n * e, LOW)], param=f"{pre}.norm1", src="X",
         in_act=x_in, out_act=f"{pre}.ln1", rows="all")  # fmt: skip
    path, _, _, r_qkv, qkv_bias = _linear_params(cfg, layer, "qkv")
    a_in, head_src, head_act = e, path, f"{pre}.ln1"
    if r_qkv is not None:
        p.op(f"{pre}.attn.qkv.v", "linear_inplace", [("T", r_qkv, HIGH)], ("T",), [("A", n * r_qkv)],
             weights=weight_bytes(e, r_qkv, False), param=f"{path}.v", buf="A", d_in=e, d_out=r_qkv,
             in_act=f"{pre}.ln1", out_act=f"{pre}.qkv_z", act=None)  # fmt: skip
        a_in, head_src, head_act = r_qkv, f"{path}.u", f"{pre}.qkv_z"
    w_head = weight_bytes(a_in, d, qkv_bias)
    for j in range(h):
        hp = f"{pre}.attn.h{j}"
        first = [("O", n * q, HIGH)] if j == 0 else []
        common = dict(param=head_src, src="A", d_in=a_in, in_act=head_act)
        p.op(f"{hp}.q", "linear_to", [*first, ("Q", n * d, LOW)], weights=w_head, dst="Q",
             rows=(j * d, (j + 1) * d), out_act=f"{pre}.q", **common)  # fmt: skip
        p.op(f"{hp}.k", "linear_to", [("K", n * d, LOW)], weights=w_head, dst="K",
             rows=(q + j * d, q + (j + 1) * d), out_act=f"{pre}.k", **common)  # fmt: skip
        p.op(f"{hp}.scores", "scores", [("S", n * n, HIGH), ("T32", 4 * n, HIGH)], ("T32", "K", "Q"),
             layer=layer)  # fmt: skip
        p.op(f"{hp}.v", "linear_to", [("V", n * d, LOW)], weights=w_head, dst="V",
             rows=(2 * q + j * d, 2 * q + (j + 1) * d), out_act=f"{pre}.v", **common)  # fmt: skip
        last = ("A",) if j == h - 1 else ()
        p.op(f"{hp}.attn_v", "attn_v", (), ("V", "S", *last), layer=layer, head=j)
    path, _, _, r_proj, _ = _linear_params(cfg, layer, "proj")
    src_width, src_path, src_act = q, path, f"{pre}.attn_out"
    if r_proj is not None:
        p.op(f"{pre}.attn.proj.v", "linear_inplace", [("T", r_proj, HIGH)], ("T",),
             weights=weight_bytes(q, r_proj, False), param=f"{path}.v", buf="O", d_in=q, d_out=r_proj,
             in_act=src_act, out_act=f"{pre}.proj_z", act=None)  # fmt: skip
        src_width, src_path, src_act = r_proj, f"{path}.u", f"{pre}.proj_z"
    p.op(f"{src_path}+residual", "linear_residual", (), ("O",), weights=weight_bytes(src_width, e, True),
         param=src_path, src="O", d_in=src_width, in_act=src_act, x_in=x_in, x_out=f"{pre}.x_mid")  # fmt: skip
    # ---- MLP ----
    p.op(f"{pre}.norm2", "layernorm", [("B", n * max(e, m), LOW)], param=f"{pre}.norm2", src="X",
         in_act=f"{pre}.x_mid", out_act=f"{pre}.ln2", rows="all")  # fmt: skip
    path, _, _, r1, _ = _linear_params(cfg, layer, "fc1")
    width, act_in = e, f"{pre}.ln2"
    if r1 is not None:
        p.op(f"{path}.v", "linear_inplace", [("T", r1, HIGH)], ("T",), weights=weight_bytes(e, r1, False),
             param=f"{path}.v", buf="B", d_in=e, d_out=r1, in_act=act_in, out_act=f"{pre}.fc1_z",
             act=None)  # fmt: skip
        width, act_in, path = r1, f"{pre}.fc1_z", f"{path}.u"
    p.op(path, "linear_inplace", [("T", m, HIGH)], ("T",), weights=weight_bytes(width, m, True),
         param=path, buf="B", d_in=width, d_out=m, in_act=act_in, out_act=f"{pre}.act", act=cfg.act)  # fmt: skip
    path, _, _, r2, _ = _linear_params(cfg, layer, "fc2")
    width, act_in = m, f"{pre}.act"
    if r2 is not None:
        p.op(f"{path}.v", "linear_inplace", [("T", r2, HIGH)], ("T",), [("B", n * r2)],
             weights=weight_bytes(m, r2, False), param=f"{path}.v", buf="B", d_in=m, d_out=r2,
             in_act=act_in, out_act=f"{pre}.fc2_z", act=None)  # fmt: skip
        width, act_in, path = r2, f"{pre}.fc2_z", f"{path}.u"
    p.op(f"{path}+residual", "linear_residual", (), ("B",), weights=weight_bytes(width, e, True),
         param=path, src="B", d_in=width, in_act=act_in, x_in=f"{pre}.x_mid", x_out=f"{pre}.x_out")  # fmt: skip


def check_input_mode(input: str) -> None:
    """Refuse an unknown ``input`` option with a message naming the valid ones."""
    if input not in INPUT_MODES:
        raise ConfigError(f"unknown mcu input mode '{input}'; choose one of {list(INPUT_MODES)}")


def stream_band_bytes(cfg: SubnetConfig) -> int:
    """Bytes of one row of patches of the uint8 image (the streamed input's buffer)."""
    return min(cfg.patch_size, cfg.img_size) * cfg.img_size * cfg.in_chans


def build_ops(cfg: SubnetConfig, weights_in_sram: bool = False, *, input: str = "whole") -> list[Op]:
    """The ``mcu`` schedule of ``cfg`` as an op list (see module docstring)."""
    check_input_mode(input)
    p = _Plan(weights_in_sram)
    n, e, c = cfg.num_tokens, cfg.embed_dim, cfg.in_chans
    k = min(SUBKERNEL, cfg.patch_size)
    w_embed = 4 * e + align4(e * c * k * k)
    if input == "stream":
        band = [("X", n * e, LOW), ("I", stream_band_bytes(cfg), HIGH), ("acc", 4 * e, HIGH)]
        p.op("patch_embed", "patch_embed_stream", band, ("acc", "I"), weights=w_embed, out_act="x0",
             band_rows=min(cfg.patch_size, cfg.img_size))  # fmt: skip
    else:
        p.op("input", "input", [("I", cfg.img_size * cfg.img_size * c, HIGH)])
        p.op("patch_embed", "patch_embed", [("X", n * e, LOW), ("acc", 4 * e, HIGH)], ("acc", "I"),
             weights=w_embed, out_act="x0")  # fmt: skip
    for layer in range(cfg.depth):
        _block(p, cfg, layer)
    x_last = f"blocks.{cfg.depth - 1}.x_out"
    w_head = weight_bytes(e, cfg.num_classes, True)
    if cfg.pool == "cls":
        p.op("norm[cls]", "layernorm", [("P", e, HIGH)], ("X",), param="norm", src="X", dst="P",
             in_act=x_last, out_act="pool", rows="cls")  # fmt: skip
        p.op("head", "head", [("logits", 4 * cfg.num_classes, LOW)], weights=w_head, in_act="pool")
    else:
        skip = int(cfg.has_cls_token)  # gp: the class token is left out of the mean
        p.op("norm+sum", "norm_sum", [("acc", 4 * e, HIGH)], ("X",), in_act=x_last, out_act="norm", skip=skip)
        p.op("mean", "mean", [("P", e, LOW)], ("acc",), in_act="norm", out_act="pool")
        p.op("head", "head", [("logits", 4 * cfg.num_classes, HIGH)], weights=w_head, in_act="pool")
    return p.ops


def mcu_report(cfg: SubnetConfig, weights_in_sram: bool = False, input: str = "whole") -> MemoryReport:
    """Peak SRAM of the ``mcu`` schedule with its per-op breakdown."""
    ops = build_ops(cfg, weights_in_sram, input=input)
    mem = tuple(OpMemory(op.name, op.live) for op in ops)
    peak = max(m.total_bytes for m in mem)
    options: dict[str, object] = {"weights_in_sram": weights_in_sram}
    if input != "whole":
        options["input"] = input
    return MemoryReport("mcu", peak, mem, options)


def mcu_peak_bytes(cfg: SubnetConfig, weights_in_sram: bool = False, input: str = "whole") -> int:
    """Peak SRAM of the ``mcu`` schedule in bytes."""
    return mcu_report(cfg, weights_in_sram, input).peak_bytes
