"""Generate the C source tree of one int8 subnet: kernels, model.c/.h, host and board mains.

Every float scale the numpy executor uses at run time becomes a precomputed (m0, shift)
pair computed here by the executor's own `quantize_multiplier`, from the same float
expressions (`memory_model.int8.executor`), so the C code repeats its integer arithmetic.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from deploy.mcu.plan import ArenaPlan, plan_arena, schedule
from memory_model.int8 import intops
from memory_model.int8.executor import LN_EPS
from memory_model.int8.quant import QuantViT
from memory_model.mcu import Op, check_input_mode

KERNEL_FILES = (
    "mcu_kernels.h",
    "mcu_fixed.c",
    "mcu_patch.c",
    "mcu_norm.c",
    "mcu_linear.c",
    "mcu_attention.c",
)
HOST_FILES = ("main_host.c",)
BOARD_FILES = ("main_board.c", "startup_cm7.c", "semihost.h")
ACTS = {None: "MCU_ACT_NONE", "relu": "MCU_ACT_RELU", "gelu": "MCU_ACT_GELU", "gelu_sigmoid": "MCU_ACT_GELU"}


@dataclass(frozen=True)
class GenOptions:
    weights_in_sram: bool = True
    subkernel: int = 4
    sqrt_iters: int = 3
    ext_weights: frozenset[str] = field(default_factory=frozenset)  # weight arrays placed in QSPI
    input: str = "whole"  # the image whole in the arena, or "stream": one row of patches at a time


@dataclass(frozen=True)
class Generated:
    out_dir: Path
    plan: ArenaPlan
    weight_arrays_bytes: dict[str, int]  # C array name -> bytes


def csrc() -> Path:
    """The package's hand-written C sources."""
    return Path(str(resources.files("deploy.mcu") / "csrc"))


def cname(path: str) -> str:
    return "k_" + path.replace(".", "_").replace("+", "_")


def _multiplier(real) -> tuple[list[int], list[int]]:
    m0, shift = intops.quantize_multiplier(real)
    return [int(v) for v in np.atleast_1d(m0)], [int(v) for v in np.atleast_1d(shift)]


class _Writer:
    """Accumulates const arrays (deduplicated by name) and the op calls of model.c."""

    def __init__(self, q: QuantViT, opts: GenOptions) -> None:
        self.q, self.opts = q, opts
        self.decls: list[str] = []
        self.names: set[str] = set()
        self.sizes: dict[str, int] = {}
        self.body: list[str] = []
        self.n_rq = 0

    def array(self, name: str, ctype: str, values, weight: bool = False) -> str:
        if name in self.names:
            return name
        self.names.add(name)
        vals = [int(v) for v in np.asarray(values).reshape(-1)]
        suffix = "LL" if ctype == "int64_t" else ""
        lines = [", ".join(f"{v}{suffix}" for v in vals[i : i + 24]) for i in range(0, len(vals), 24)]
        attr = " MCU_EXT_FLASH" if name in self.opts.ext_weights else ""
        self.decls.append(
            f"static const {ctype} {name}[{len(vals)}]{attr} = {{\n  " + ",\n  ".join(lines) + "\n};"
        )
        if weight:
            self.sizes[name] = len(vals) * {"int8_t": 1, "int32_t": 4, "int64_t": 8}[ctype]
        return name

    def requant(self, mult, gelu_mult=None) -> str:
        """A `mcu_requant_t` of per-channel multipliers; returns its name."""
        i, self.n_rq = self.n_rq, self.n_rq + 1
        m0, sh = _multiplier(mult)
        fields = [self.array(f"rq{i}_m0", "int32_t", m0), self.array(f"rq{i}_sh", "int8_t", sh)]
        if gelu_mult is not None:
            gm0, gsh = _multiplier(gelu_mult)
            fields += [self.array(f"rq{i}_gm0", "int32_t", gm0), self.array(f"rq{i}_gsh", "int8_t", gsh)]
        else:
            fields += ["0", "0"]
        self.decls.append(f"static const mcu_requant_t rq{i} = {{{', '.join(fields)}}};")
        return f"&rq{i}"

    def weights(self, path: str, rows: tuple[int, int] | None, off: dict[str, int]):
        """C expressions (weight, bias) for linear ``path``, staged into W with weights in SRAM."""
        f = self.q.flash
        w, b = f[f"{path}.w"], f.get(f"{path}.b")
        wn = self.array(cname(f"{path}.w"), "int8_t", w, weight=True)
        bn = None if b is None else self.array(cname(f"{path}.b"), "int32_t", b, weight=True)
        d_in = w.shape[1]
        r0, r1 = rows if rows is not None else (0, w.shape[0])
        w_expr = f"{wn} + {r0 * d_in}"
        b_expr = "0" if bn is None else f"{bn} + {r0}"
        if not self.opts.weights_in_sram:
            return w_expr, b_expr
        nb = 0 if bn is None else r1 - r0
        self.body.append(f"  mcu_stage(A + {off['W']}, {b_expr}, {nb}, {w_expr}, {(r1 - r0) * d_in});")
        b_stage = "0" if bn is None else f"(const int32_t *)(void *)(A + {off['W']})"
        return f"(const int8_t *)(A + {off['W'] + 4 * nb})", b_stage

    def ln_consts(self, param: str, in_act: str) -> tuple[str, str, int]:
        f, e = self.q.flash, self.q.cfg.embed_dim
        g = self.array(cname(f"{param}.G"), "int64_t", f[f"{param}.G"], weight=True)
        b = self.array(cname(f"{param}.B"), "int64_t", f[f"{param}.B"], weight=True)
        in_scale = self.q.act_scale[in_act]
        return g, b, round(LN_EPS * e * e / (in_scale * in_scale))


def _emit_op(wr: _Writer, op: Op, off: dict[str, int]) -> None:
    q, a, cfg = wr.q, op.args, wr.q.cfg
    s, f = q.act_scale, q.flash
    n, e = cfg.num_tokens, cfg.embed_dim
    i8, i32, u8 = "(int8_t *)(A + {})".format, "(int32_t *)(void *)(A + {})".format, "(A + {})".format
    wr.body.append(f"  /* {op.name} */")
    if op.kind == "input":
        return
    if op.kind == "patch_embed":
        consts = _patch_consts(wr)
        stage = u8(off["W"]) if wr.opts.weights_in_sram else "0"
        wr.body.append(
            f"  mcu_patch_embed({u8(off['I'])}, {cfg.img_size}, {cfg.in_chans}, {cfg.patch_size}, "
            f"{cfg.grid_size}, {wr.opts.subkernel}, {consts}, {e}, "
            f"{i32(off['acc'])}, {i8(off['X'])}, {stage});"
        )
    elif op.kind == "patch_embed_stream":
        _emit_patch_stream(wr, op, off)
    elif op.kind == "layernorm":
        g, b, eps = wr.ln_consts(a["param"], a["in_act"])
        rows, dst = (1, off["P"]) if a["rows"] == "cls" else (n, off[op.alloc[0][0]])
        wr.body.append(f"  mcu_layernorm({i8(off['X'])}, {rows}, {e}, {g}, {b}, {eps}LL, {i8(dst)});")
    elif op.kind == "linear_inplace":
        s_w = f[f"{a['param']}.w_scale"]
        acc_scale = s[a["in_act"]] * s_w
        gelu = a["act"] in ("gelu", "gelu_sigmoid")
        rq = wr.requant(
            acc_scale / s[a["out_act"]], 1.702 * acc_scale * 2.0**intops.FRAC_BITS if gelu else None
        )
        w, b = wr.weights(a["param"], None, off)
        wr.body.append(
            f"  mcu_linear_inplace({i8(off[a['buf']])}, {n}, {a['d_in']}, {a['d_out']}, {w}, {b}, {rq}, "
            f"{ACTS[a['act']]}, {i8(off['T'])});"
        )
    elif op.kind == "linear_to":
        r0, r1 = a["rows"]
        s_w = f[f"{a['param']}.w_scale"][r0:r1]
        rq = wr.requant(s[a["in_act"]] * s_w / s[a["out_act"]])
        w, b = wr.weights(a["param"], a["rows"], off)
        wr.body.append(
            f"  mcu_linear_to({i8(off[a['src']])}, {n}, {a['d_in']}, {r1 - r0}, {w}, {b}, {rq}, {i8(off[a['dst']])});"
        )
    elif op.kind == "scores":
        pre, d = f"blocks.{a['layer']}", cfg.head_dim
        scale = s[f"{pre}.q"] * s[f"{pre}.k"] * d**-0.5
        (m0,), (sh,) = _multiplier(scale * 2.0**intops.FRAC_BITS)
        wr.body.append(
            f"  mcu_scores({i8(off['Q'])}, {i8(off['K'])}, {n}, {d}, {m0}, {sh}, {i32(off['T32'])}, {u8(off['S'])});"
        )
    elif op.kind == "attn_v":
        pre, d, j = f"blocks.{a['layer']}", cfg.head_dim, a["head"]
        (m0,), (sh,) = _multiplier(s["probs"] * s[f"{pre}.v"] / s[f"{pre}.attn_out"])
        wr.body.append(
            f"  mcu_attn_v({u8(off['S'])}, {i8(off['V'])}, {n}, {d}, {cfg.qkv_dim(a['layer'])}, {m0}, {sh}, "
            f"{i8(off['O'] + j * d)});"
        )
    elif op.kind == "linear_residual":
        s_out = s[a["x_out"]]
        rq = wr.requant(s[a["in_act"]] * f[f"{a['param']}.w_scale"] / s_out)
        (rm0,), (rsh,) = _multiplier(s[a["x_in"]] / s_out)
        w, b = wr.weights(a["param"], None, off)
        wr.body.append(
            f"  mcu_linear_residual({i8(off[a['src']])}, {n}, {a['d_in']}, {e}, {w}, {b}, {rq}, {rm0}, {rsh}, "
            f"{i8(off['X'])});"
        )
    elif op.kind == "norm_sum":
        g, b, eps = wr.ln_consts("norm", a["in_act"])
        rows = i8(off["X"] + a["skip"] * e)  # gp: the rows after the class token
        wr.body.append(
            f"  mcu_layernorm_sum({rows}, {n - a['skip']}, {e}, {g}, {b}, {eps}LL, {i32(off['acc'])});"
        )
    elif op.kind == "mean":
        (m0,), (sh,) = _multiplier(s["norm"] / (cfg.num_patches * s["pool"]))
        wr.body.append(f"  mcu_mean({i32(off['acc'])}, {e}, {m0}, {sh}, {i8(off['P'])});")
    elif op.kind == "head":
        w, b = wr.weights("head", None, off)
        wr.body.append(f"  mcu_head({i8(off['P'])}, {e}, {cfg.num_classes}, {w}, {b}, {i32(off['logits'])});")
    else:
        raise ValueError(f"no C kernel for op kind {op.kind!r}")


def _patch_consts(wr: _Writer) -> str:
    """The patch embedding's constants as C arguments: weight, bias, m0, shift, pos, cls."""
    q, f = wr.q, wr.q.flash
    wn = wr.array(cname("patch_embed.w"), "int8_t", f["patch_embed.w"], weight=True)
    bn = wr.array(cname("patch_embed.b"), "int32_t", f["patch_embed.b"], weight=True)
    m0, sh = _multiplier((q.act_scale["image"] * f["patch_embed.w_scale"]) / q.act_scale["x0"])
    m0n, shn = wr.array("patch_m0", "int32_t", m0), wr.array("patch_sh", "int8_t", sh)
    pos = wr.array(cname("pos_q"), "int8_t", f["pos_q"], weight=True)
    cls = wr.array(cname("cls_q"), "int8_t", f["cls_q"], weight=True) if q.cfg.has_cls_token else "0"
    return f"{wn}, {bn}, {m0n}, {shn}, {pos}, {cls}"


def _emit_patch_stream(wr: _Writer, op: Op, off: dict[str, int]) -> None:
    """Streamed input: the band kernel pulls each row of patches through ``mcu_read_rows``."""
    cfg = wr.q.cfg
    stage = f"(A + {off['W']})" if wr.opts.weights_in_sram else "0"
    wr.body.append(
        f"  mcu_patch_embed_band(mcu_read_rows, (A + {off['I']}), {op.args['band_rows']}, {cfg.img_size}, "
        f"{cfg.in_chans}, {cfg.patch_size}, {cfg.grid_size}, {wr.opts.subkernel}, {_patch_consts(wr)}, "
        f"{cfg.embed_dim}, "
        f"(int32_t *)(void *)(A + {off['acc']}), (int8_t *)(A + {off['X']}), {stage});"
    )


def _consts_header(sqrt_iters: int) -> str:
    vals = {
        "MCU_FRAC_BITS": intops.FRAC_BITS,
        "MCU_Q_LN2": intops._Q_LN2,
        "MCU_Q_B": intops._Q_B,
        "MCU_Q_C": intops._Q_C,
        "MCU_EXP_ONE": intops.EXP_ONE,
        "MCU_EXP_MIN_Q10": intops.EXP_MIN_Q10,
        "MCU_SIG_BITS": intops.SIG_BITS,
        "MCU_LN_FRAC_BITS": intops.LN_FRAC_BITS,
        "MCU_LN_OUT_BITS": intops.LN_OUT_BITS,
        "MCU_SQRT_ITERS": sqrt_iters,
    }
    body = "\n".join(f"#define {k} ({v})" for k, v in vals.items())
    return f"/* Generated: fixed-point constants of memory_model.int8.intops. */\n#ifndef MCU_CONSTS_H\n#define MCU_CONSTS_H\n{body}\n#endif\n"


def _input_decls(input: str) -> str:
    """model.h: how the image reaches the model (whole input buffer or streamed rows)."""
    if input == "stream":
        return (
            "#define MCU_INPUT_STREAM 1\n\n"
            "/* The image is streamed: the model calls the application's mcu_read_rows(y0, y1, dst)\n"
            " * (mcu_kernels.h) for each row of patches. Run the schedule; returns the int32 logits. */"
        )
    return (
        "#define MCU_INPUT_STREAM 0\n\n"
        "/* Where the caller writes the uint8 image (H, W, C): the schedule's input buffer. */\n"
        "uint8_t *mcu_model_input(void);\n"
        "/* Run the schedule on the image in the input buffer; returns the int32 logits. */"
    )


def _input_defs(input: str, plan: ArenaPlan) -> list[str]:
    """model.c: the whole-image input buffer's accessor (a streamed model has none)."""
    if input == "stream":
        return []
    return [f"uint8_t *mcu_model_input(void) {{ return A + {plan.input_offset}; }}"]


def _model_files(q: QuantViT, plan: ArenaPlan, wr: _Writer) -> tuple[str, str]:
    cfg = q.cfg
    placement = (
        "staged per op into the arena (weights_in_sram)" if wr.opts.weights_in_sram else "read from flash"
    )
    header = f"""/* Generated model: {cfg.short()} ({placement}). */
#ifndef MCU_MODEL_H
#define MCU_MODEL_H
#include <stdint.h>

#define MCU_IMG_SIZE {cfg.img_size}
#define MCU_IN_CHANS {cfg.in_chans}
#define MCU_INPUT_BYTES {cfg.img_size * cfg.img_size * cfg.in_chans}
#define MCU_NUM_CLASSES {cfg.num_classes}
#define MCU_ARENA_BYTES {plan.arena_bytes}
#define MCU_WEIGHTS_IN_SRAM {int(wr.opts.weights_in_sram)}
{_input_decls(wr.opts.input)}
const int32_t *mcu_model_run(void);
uint32_t mcu_model_arena_bytes(void);

#endif
"""
    source = "\n".join(
        [
            f"/* Generated model: {cfg.short()}; arena = the `mcu` peak, {plan.arena_bytes} bytes. */",
            "#include <stdint.h>",
            '#include "mcu_kernels.h"',
            '#include "model.h"',
            "",
            "#ifndef MCU_EXT_FLASH",
            "#define MCU_EXT_FLASH",
            "#endif",
            "",
            f"static union {{ uint8_t bytes[{plan.arena_bytes}]; int64_t align_; }} arena_;",
            "#define A (arena_.bytes)",
            "",
            *wr.decls,
            "",
            *_input_defs(wr.opts.input, plan),
            f"uint32_t mcu_model_arena_bytes(void) {{ return {plan.arena_bytes}u; }}",
            "",
            "const int32_t *mcu_model_run(void) {",
            *wr.body,
            f"  return (const int32_t *)(void *)(A + {plan.logits_offset});",
            "}",
            "",
        ]
    )
    return header, source


def generate(q: QuantViT, out_dir: Path, opts: GenOptions = GenOptions()) -> Generated:
    """Write the C tree of ``q`` into ``out_dir`` (created; must not exist)."""
    if opts.subkernel < 1 or opts.sqrt_iters < 0:
        raise ValueError("subkernel must be >= 1 and sqrt_iters >= 0")
    check_input_mode(opts.input)
    plan = plan_arena(schedule(q.cfg, opts.weights_in_sram, opts.subkernel, opts.input))
    wr = _Writer(q, opts)
    for placed in plan.ops:
        _emit_op(wr, placed.op, placed.offsets)
    header, source = _model_files(q, plan, wr)
    out_dir.mkdir(parents=True)
    src = csrc()
    for name in KERNEL_FILES + HOST_FILES + BOARD_FILES:
        shutil.copyfile(src / name, out_dir / name)
    (out_dir / "mcu_consts.h").write_text(_consts_header(opts.sqrt_iters))
    (out_dir / "model.h").write_text(header)
    (out_dir / "model.c").write_text(source)
    return Generated(out_dir, plan, dict(wr.sizes))
