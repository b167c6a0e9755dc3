"""The int8 reference executor: runs a subnet's integer inference inside one byte arena,
following the ``mcu`` schedule's op list (`memory_model.mcu.build_ops`) op by op.

Every activation, temporary and int32 accumulator the schedule names lives at an offset of
the arena; buffers are allocated and freed exactly as the op list says, and token
overwriting writes each output row over its input row in place. Register-level values
(one output element's accumulator, a LayerNorm row's sums) are numpy scalars/temporaries
that never outlive the element or row they belong to; whole-matrix numpy temporaries are
used only where the destination does not alias any source still to be read, which makes
them equivalent to element-by-element loops. Weights come from ``model.flash`` or, with
``weights_in_sram``, are first copied into the op's staging buffer in the arena. With
``input="stream"`` the image never enters the arena whole: the patch embedding pulls one
row of patches at a time from a source callback into its band buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError
from memory_model.int8.arena import Arena
from memory_model.int8.intops import (
    activation_int8,
    layernorm_int8,
    requantize,
    saturate_int8,
    softmax_uint8,
)
from memory_model.int8.quant import QuantViT
from memory_model.mcu import SUBKERNEL, Op, align4, build_ops

LN_EPS = 1e-6


@dataclass(frozen=True)
class Int8Result:
    logits: np.ndarray  # float64 (num_classes,), dequantised
    logits_int32: np.ndarray
    high_water_bytes: int
    op_bytes: tuple[tuple[str, int], ...]  # arena bytes in use while each op ran


class _Runner:
    def __init__(
        self,
        model: QuantViT,
        arena: Arena,
        sram: bool,
        source: Callable[[int, int], np.ndarray] | None = None,
    ) -> None:
        self.m, self.cfg, self.a, self.sram, self.source = model, model.cfg, arena, sram, source
        self.f, self.s = model.flash, model.act_scale
        self.n, self.e = self.cfg.num_tokens, self.cfg.embed_dim

    # ---- helpers ------------------------------------------------------------------------
    def mat(self, name: str, rows: int, cols: int, dtype: type = np.int8) -> np.ndarray:
        return self.a.view(name, dtype, rows * cols).reshape(rows, cols)

    def weights(self, path: str, rows: tuple[int, int] | None = None):
        """(int8 weight, int32 bias or None, weight scale), staged into W in SRAM mode."""
        w, b, s_w = self.f[f"{path}.w"], self.f.get(f"{path}.b"), self.f[f"{path}.w_scale"]
        if rows is not None:
            w, s_w = w[rows[0] : rows[1]], s_w[rows[0] : rows[1]]
            b = None if b is None else b[rows[0] : rows[1]]
        if not self.sram:
            return w, b, s_w
        return (*self._stage(w, b), s_w)

    def _stage(self, w: np.ndarray, b: np.ndarray | None):
        nb = 0 if b is None else 4 * len(b)
        need = nb + align4(w.size)
        if need > self.a.buffers["W"][1]:
            raise RuntimeError(f"staging {need} bytes into a {self.a.buffers['W'][1]}-byte W buffer")
        raw = self.a.view("W", np.uint8)
        sb = None
        if b is not None:
            raw[:nb] = b.astype(np.int32).view(np.uint8)
            sb = raw[:nb].view(np.int32)
        raw[nb : nb + w.size] = w.reshape(-1).view(np.uint8)
        return raw[nb : nb + w.size].view(np.int8).reshape(w.shape), sb

    @staticmethod
    def _acc(w: np.ndarray, x: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        acc = x.astype(np.int64) @ w.astype(np.int64).T
        return acc if b is None else acc + b.astype(np.int64)

    # ---- kernels --------------------------------------------------------------------------
    def input(self, op: Op, image: np.ndarray) -> None:
        self.a.view("I", np.uint8, image.size)[:] = image.reshape(-1)

    def patch_embed(self, op: Op, image: np.ndarray) -> None:
        img, c = self.cfg.img_size, self.cfg.in_chans
        pix = self.a.view("I", np.uint8, img * img * c).reshape(img, img, c)
        self._embed(lambda gy: (pix, 0))

    def patch_embed_stream(self, op: Op, image: np.ndarray) -> None:
        """Pull one row of patches at a time from the source into the band buffer I."""
        p, img, c = self.cfg.patch_size, self.cfg.img_size, self.cfg.in_chans
        rows = op.args["band_rows"]
        band = self.a.view("I", np.uint8, rows * img * c).reshape(rows, img, c)

        def fetch(gy: int) -> tuple[np.ndarray, int]:
            y0 = gy * p
            y1 = min(y0 + rows, img)
            if y0 < y1:  # a row of patches wholly in the padding needs no pixels
                got = np.asarray(self.source(y0, y1))
                if got.shape != (y1 - y0, img, c) or got.dtype != np.uint8:
                    raise ConfigError(
                        f"input source returned {got.dtype} {got.shape} for rows [{y0}, {y1}); "
                        f"it must return uint8 of shape {(y1 - y0, img, c)}"
                    )
                band[: y1 - y0] = got
            return band, y0

        self._embed(fetch)

    def _embed(self, rows_of: Callable[[int], tuple[np.ndarray, int]]) -> None:
        """Patch embedding, token by token; ``rows_of(gy)`` gives the pixels holding grid row
        ``gy`` and the image row its first row is."""
        cfg, e = self.cfg, self.e
        p, g, img, c = cfg.patch_size, cfg.grid_size, cfg.img_size, cfg.in_chans
        x = self.mat("X", self.n, e)
        acc = self.a.view("acc", np.int32, e)
        w_full, s_w = self.f["patch_embed.w"], self.f["patch_embed.w_scale"]
        if self.sram:  # bias stays staged; sub-kernels are copied in one at a time
            raw = self.a.view("W", np.uint8)
            raw[: 4 * e] = self.f["patch_embed.b"].view(np.uint8)
            bias = raw[: 4 * e].view(np.int32)
        else:
            bias = self.f["patch_embed.b"]
        off = int(cfg.has_cls_token)
        if off:
            x[0] = self.f["cls_q"]
        mult = (self.s["image"] * s_w) / self.s["x0"]
        pos = self.f["pos_q"].astype(np.int64)
        for gy in range(g):
            pix, y_base = rows_of(gy)
            for gx in range(g):
                t = gy * g + gx
                acc[:] = bias
                for ky in range(0, p, SUBKERNEL):
                    for kx in range(0, p, SUBKERNEL):
                        y0, x0 = gy * p + ky, gx * p + kx
                        kh, kw = min(SUBKERNEL, p - ky), min(SUBKERNEL, p - kx)
                        vh, vw = min(kh, img - y0), min(kw, img - x0)  # virtual zero padding
                        if vh <= 0 or vw <= 0:
                            continue
                        sub = w_full[:, ky : ky + kh, kx : kx + kw, :]
                        if self.sram:
                            nbytes = sub.size
                            raw[4 * e : 4 * e + nbytes] = np.ascontiguousarray(sub).reshape(-1).view(np.uint8)
                            sub = raw[4 * e : 4 * e + nbytes].view(np.int8).reshape(e, kh, kw, c)
                        ys = y0 - y_base
                        patch = pix[ys : ys + vh, x0 : x0 + vw, :].astype(np.int64).reshape(-1)
                        acc[:] += (sub[:, :vh, :vw, :].reshape(e, -1).astype(np.int64) @ patch).astype(
                            np.int32
                        )
                x[off + t] = saturate_int8(requantize(acc, mult) + pos[t])

    def layernorm(self, op: Op, image: np.ndarray) -> None:
        a = op.args
        x = self.mat("X", self.n, self.e)
        g, b = self.f[f"{a['param']}.G"], self.f[f"{a['param']}.B"]
        if a["rows"] == "cls":
            self.a.view("P", np.int8, self.e)[:] = layernorm_int8(x[0], self.s[a["in_act"]], g, b, LN_EPS)
            return
        dst = op.alloc[0][0]
        self.mat(dst, self.n, self.e)[:] = layernorm_int8(x, self.s[a["in_act"]], g, b, LN_EPS)

    def linear_inplace(self, op: Op, image: np.ndarray) -> None:
        a = op.args
        d_in, d_out = a["d_in"], a["d_out"]
        w, b, s_w = self.weights(a["param"])
        w64 = w.astype(np.int64)
        b64 = None if b is None else b.astype(np.int64)
        buf = self.a.view(a["buf"], np.int8)
        tmp = self.a.view("T", np.int8, d_out)
        acc_scale = self.s[a["in_act"]] * s_w
        s_out = self.s[a["out_act"]]
        order = range(self.n) if d_out <= d_in else range(self.n - 1, -1, -1)
        for i in order:
            acc = w64 @ buf[i * d_in : (i + 1) * d_in].astype(np.int64)
            if b64 is not None:
                acc = acc + b64
            tmp[:] = activation_int8(acc, acc_scale, s_out, a["act"])
            buf[i * d_out : (i + 1) * d_out] = tmp

    def linear_to(self, op: Op, image: np.ndarray) -> None:
        a = op.args
        w, b, s_w = self.weights(a["param"], a["rows"])
        src = self.mat(a["src"], self.n, a["d_in"])
        acc = self._acc(w, src, b)
        d = a["rows"][1] - a["rows"][0]
        self.mat(a["dst"], self.n, d)[:] = activation_int8(
            acc, self.s[a["in_act"]] * s_w, self.s[a["out_act"]], None
        )

    def scores(self, op: Op, image: np.ndarray) -> None:
        layer, d, n = op.args["layer"], self.cfg.head_dim, self.n
        pre = f"blocks.{layer}"
        q, k = self.mat("Q", n, d).astype(np.int64), self.mat("K", n, d).astype(np.int64)
        s = self.mat("S", n, n, np.uint8)
        row = self.a.view("T32", np.int32, n)
        scale = self.s[f"{pre}.q"] * self.s[f"{pre}.k"] * d**-0.5
        for i in range(n):
            row[:] = k @ q[i]
            s[i] = softmax_uint8(row, scale)

    def attn_v(self, op: Op, image: np.ndarray) -> None:
        layer, j, d, n = op.args["layer"], op.args["head"], self.cfg.head_dim, self.n
        pre = f"blocks.{layer}"
        s = self.mat("S", n, n, np.uint8).astype(np.int64)
        v = self.mat("V", n, d).astype(np.int64)
        o = self.mat("O", n, self.cfg.qkv_dim(layer))
        mult = self.s["probs"] * self.s[f"{pre}.v"] / self.s[f"{pre}.attn_out"]
        o[:, j * d : (j + 1) * d] = saturate_int8(requantize(s @ v, mult))

    def linear_residual(self, op: Op, image: np.ndarray) -> None:
        a = op.args
        w, b, s_w = self.weights(a["param"])
        acc = self._acc(w, self.mat(a["src"], self.n, a["d_in"]), b)
        x = self.mat("X", self.n, self.e)
        s_out = self.s[a["x_out"]]
        res = requantize(x, self.s[a["x_in"]] / s_out)
        x[:] = saturate_int8(res + requantize(acc, self.s[a["in_act"]] * s_w / s_out))

    def norm_sum(self, op: Op, image: np.ndarray) -> None:
        x = self.mat("X", self.n, self.e)[op.args["skip"] :]  # gp: rows after the class token
        y = layernorm_int8(x, self.s[op.args["in_act"]], self.f["norm.G"], self.f["norm.B"], LN_EPS)
        self.a.view("acc", np.int32, self.e)[:] = y.astype(np.int64).sum(axis=0)

    def mean(self, op: Op, image: np.ndarray) -> None:
        acc = self.a.view("acc", np.int32, self.e)
        mult = self.s["norm"] / (self.cfg.num_patches * self.s["pool"])
        self.a.view("P", np.int8, self.e)[:] = saturate_int8(requantize(acc, mult))

    def head(self, op: Op, image: np.ndarray) -> None:
        w, b, _ = self.weights("head")
        p = self.a.view("P", np.int8, self.e)
        self.a.view("logits", np.int32, self.cfg.num_classes)[:] = self._acc(w, p[None, :], b)[0]


def run_int8(
    model: QuantViT,
    image: np.ndarray | None,
    weights_in_sram: bool = False,
    arena_bytes: int | None = None,
    ops: list[Op] | None = None,
    input: str = "whole",
    source: Callable[[int, int], np.ndarray] | None = None,
) -> Int8Result:
    """Run one uint8 image (H, W, C) through ``model`` inside a byte arena.

    ``arena_bytes`` defaults to a loose bound (the sum of every allocation of the schedule);
    pass the analytic peak to check the schedule fits exactly. Raises `ArenaOverflowError`
    when it does not. With ``input="stream"`` the image is read one row of patches at a time
    through ``source(y0, y1)`` (uint8 rows ``[y0, y1)``, shape (y1 - y0, W, C)); without a
    source the rows are cut from ``image``.
    """
    cfg = model.cfg
    shape = (cfg.img_size, cfg.img_size, cfg.in_chans)
    if image is None and (input != "stream" or source is None):
        raise ConfigError("no image: pass a uint8 image, or input='stream' with a source callback")
    if image is not None and (image.shape != shape or image.dtype != np.uint8):
        raise ConfigError(f"image must be uint8 of shape {shape}, got {image.dtype} {image.shape}")
    if source is None and image is not None:
        source = lambda y0, y1: image[y0:y1]  # noqa: E731
    ops = build_ops(cfg, weights_in_sram, input=input) if ops is None else ops
    if arena_bytes is None:
        arena_bytes = sum(n for op in ops for _, n, _ in op.alloc)
    arena = Arena(arena_bytes)
    runner = _Runner(model, arena, weights_in_sram, source)
    used = []
    for op in ops:
        for name, nbytes, side in op.alloc:
            arena.alloc(name, nbytes, side)
        used.append((op.name, arena.used_bytes))
        getattr(runner, op.kind)(op, image)
        for name in op.free:
            arena.free(name)
        for name, nbytes in op.shrink:
            arena.shrink(name, nbytes)
    logits = arena.view("logits", np.int32, cfg.num_classes).copy()
    scale = model.act_scale["pool"] * model.flash["head.w_scale"]
    return Int8Result(logits * scale, logits, arena.high_water_bytes, tuple(used))
