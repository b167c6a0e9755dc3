"""Integer-only kernels of the int8 executor (numpy, int64 arithmetic standing in for the
MCU's 32/64-bit integer registers).

Fixed-point conventions: a real multiplier M is ``m0 * 2**-shift`` with ``m0`` in
[2**30, 2**31) (`quantize_multiplier`); `requantize` rounds half up. exp, sigmoid and the
softmax follow I-BERT's integer polynomial (exp(p) ~ 0.3585 (p + 1.353)^2 + 0.344 on
(-ln2, 0], then a shift by the number of ln2 steps) on Q10 fixed-point inputs. LayerNorm
uses an integer square root by 3 Newton iterations from a power-of-two guess.
"""

from __future__ import annotations

import math

import numpy as np

FRAC_BITS = 10  # Q10 inputs of exp / sigmoid
_S = 2.0**-FRAC_BITS
EXP_A, EXP_B, EXP_C = 0.3585, 1.353, 0.344
_Q_LN2 = math.floor(math.log(2) / _S)
_Q_B = math.floor(EXP_B / _S)
_Q_C = math.floor(EXP_C / (EXP_A * _S * _S))
EXP_ONE = round(1.0 / (EXP_A * _S * _S))  # exp(0) in the polynomial's units
EXP_MIN_Q10 = -16 << FRAC_BITS  # exp(x) below e^-16 is treated as e^-16 (negligible)
SIG_BITS = 15  # sigmoid output in Q15
LN_FRAC_BITS = 12  # normalised LayerNorm values in Q12
LN_OUT_BITS = 28


def quantize_multiplier(real: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m0, shift) with real ~= m0 * 2**-shift, m0 in [2**30, 2**31) (0 for real == 0)."""
    real = np.asarray(real, np.float64)
    mant, exp = np.frexp(real)
    m0 = np.round(mant * 2.0**31).astype(np.int64)
    carry = m0 == 2**31
    m0 = np.where(carry, m0 // 2, m0)
    exp = exp + carry
    shift = np.clip(31 - exp, 1, 62).astype(np.int64)
    return np.where(real == 0, 0, m0), shift


def requantize(acc: np.ndarray, multiplier: float | np.ndarray) -> np.ndarray:
    """round(acc * multiplier) in fixed point (int64 in, int64 out)."""
    m0, shift = quantize_multiplier(multiplier)
    prod = np.asarray(acc, np.int64) * m0
    return (prod + (np.int64(1) << (shift - 1))) >> shift


def saturate_int8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -127, 127).astype(np.int8)


def i_exp(x_q10: np.ndarray) -> np.ndarray:
    """exp of Q10 values <= 0, in units of EXP_ONE (exp(0) ~= EXP_ONE)."""
    x = np.maximum(np.asarray(x_q10, np.int64), EXP_MIN_Q10)
    z = (-x) // _Q_LN2
    p = x + z * _Q_LN2
    poly = (p + _Q_B) ** 2 + _Q_C
    return poly >> z


def softmax_uint8(logits: np.ndarray, scale: float) -> np.ndarray:
    """Softmax of int32 ``logits`` (real = logits * scale) over the last axis, as uint8
    probabilities with scale 1/255."""
    x = np.asarray(logits, np.int64)
    x = x - x.max(axis=-1, keepdims=True)
    x_q10 = np.maximum(requantize(x, scale * 2.0**FRAC_BITS), EXP_MIN_Q10)
    e = i_exp(x_q10)
    total = e.sum(axis=-1, keepdims=True)
    return ((e * 255 + total // 2) // total).astype(np.uint8)


def sigmoid_q15(x_q10: np.ndarray) -> np.ndarray:
    """sigmoid of Q10 values, in Q15."""
    x = np.clip(np.asarray(x_q10, np.int64), EXP_MIN_Q10, -EXP_MIN_Q10)
    e = i_exp(-np.abs(x))
    neg = (e << SIG_BITS) // (e + EXP_ONE)  # sigmoid(-|x|)
    return np.where(x > 0, (1 << SIG_BITS) - neg, neg)


def activation_int8(acc: np.ndarray, acc_scale: np.ndarray, out_scale: float, act: str | None) -> np.ndarray:
    """Requantise int32 ``acc`` (per-channel ``acc_scale``) to int8, applying ``act``:
    None, 'relu', or 'gelu'/'gelu_sigmoid' as x * sigmoid(1.702 x)."""
    acc = np.asarray(acc, np.int64)
    if act == "relu":
        acc = np.maximum(acc, 0)
    elif act in ("gelu", "gelu_sigmoid"):
        sig = sigmoid_q15(requantize(acc, 1.702 * acc_scale * 2.0**FRAC_BITS))
        acc = (acc * sig + (1 << (SIG_BITS - 1))) >> SIG_BITS
    elif act is not None:
        raise ValueError(f"unknown activation {act!r}")
    return saturate_int8(requantize(acc, acc_scale / out_scale))


def isqrt_newton(v: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Integer square root by Newton's method from the power of two above sqrt(v)."""
    v = np.maximum(np.asarray(v, np.int64), 1)
    bits = np.frexp(v.astype(np.float64))[1].astype(np.int64)  # bit length of v
    x = np.int64(1) << ((bits + 1) // 2)
    for _ in range(iterations):
        x = (x + v // x) >> 1
    return np.maximum(x, 1)


def layernorm_consts(gamma: np.ndarray, beta: np.ndarray, out_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer affine constants (G, B) of a LayerNorm writing int8 at ``out_scale``."""
    g = np.round(np.asarray(gamma, np.float64) * 2.0 ** (LN_OUT_BITS - LN_FRAC_BITS) / out_scale)
    b = np.round(np.asarray(beta, np.float64) * 2.0**LN_OUT_BITS / out_scale)
    return g.astype(np.int64), b.astype(np.int64)


def layernorm_int8(x: np.ndarray, in_scale: float, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """Integer LayerNorm over the last axis of int8 ``x`` -> int8 (constants from
    `layernorm_consts`)."""
    x = np.asarray(x, np.int64)
    e = x.shape[-1]
    c = e * x - x.sum(axis=-1, keepdims=True)  # e * (x - mean)
    var = (c * c).sum(axis=-1, keepdims=True) // e  # e^2 * variance
    var = var + round(eps * e * e / (in_scale * in_scale))
    r = isqrt_newton(var)  # e * std
    n_q12 = (2 * (c << LN_FRAC_BITS) + r) // (2 * r)
    out = (n_q12 * g + b + (1 << (LN_OUT_BITS - 1))) >> LN_OUT_BITS
    return saturate_int8(out)
