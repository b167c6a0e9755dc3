/* Fixed-point helpers: requantisation, saturation, integer exp / sigmoid / square root. */
#include <string.h>

#include "mcu_kernels.h"

#if defined(MCU_USE_DSP) && defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
#endif

int64_t mcu_asr(int64_t x, int s) { return x >= 0 ? x >> s : ~((~x) >> s); }

int64_t mcu_floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t mcu_requantize(int64_t acc, int32_t m0, int shift) {
    return mcu_asr(acc * (int64_t)m0 + ((int64_t)1 << (shift - 1)), shift);
}

int8_t mcu_sat8(int64_t v) { return (int8_t)(v > 127 ? 127 : (v < -127 ? -127 : v)); }

/* exp of a Q10 value <= 0 in units of MCU_EXP_ONE (I-BERT's second-order polynomial). */
int64_t mcu_iexp(int64_t x) {
    int64_t z, p, poly;
    if (x < MCU_EXP_MIN_Q10) x = MCU_EXP_MIN_Q10;
    z = (-x) / MCU_Q_LN2; /* -x >= 0: truncation is floor */
    p = x + z * MCU_Q_LN2;
    poly = (p + MCU_Q_B) * (p + MCU_Q_B) + MCU_Q_C;
    return poly >> z;
}

int64_t mcu_sigmoid_q15(int64_t x) {
    int64_t e, neg;
    if (x < MCU_EXP_MIN_Q10) x = MCU_EXP_MIN_Q10;
    if (x > -MCU_EXP_MIN_Q10) x = -MCU_EXP_MIN_Q10;
    e = mcu_iexp(x > 0 ? -x : x);
    neg = (e << MCU_SIG_BITS) / (e + MCU_EXP_ONE);
    return x > 0 ? ((int64_t)1 << MCU_SIG_BITS) - neg : neg;
}

/* Newton's integer square root from the power of two above sqrt(v). */
int64_t mcu_isqrt(int64_t v, int iterations) {
    int64_t x;
    int bits = 0, i;
    if (v < 1) v = 1;
    for (x = v; x; x >>= 1) bits++;
    x = (int64_t)1 << ((bits + 1) / 2);
    for (i = 0; i < iterations; i++) x = (x + v / x) >> 1;
    return x < 1 ? 1 : x;
}

int32_t mcu_dot(const int8_t *a, const int8_t *b, int n) {
    int32_t s = 0;
    int i = 0;
#if defined(MCU_USE_DSP) && defined(__ARM_FEATURE_SIMD32)
    /* Cortex-M DSP path: two 16-bit multiply-accumulates per SMLAD, same integer result. */
    for (; i + 4 <= n; i += 4) {
        uint32_t wa, xa;
        memcpy(&wa, a + i, 4);
        memcpy(&xa, b + i, 4);
        s = __smlad(__sxtb16(wa), __sxtb16(xa), s);
        s = __smlad(__sxtb16((wa >> 8) | (wa << 24)), __sxtb16((xa >> 8) | (xa << 24)), s);
    }
#endif
    for (; i < n; i++) s += (int32_t)a[i] * (int32_t)b[i];
    return s;
}

void mcu_stage(uint8_t *dst, const int32_t *bias, int n_bias, const int8_t *w, int n_w) {
    if (bias) {
        memcpy(dst, bias, 4 * (unsigned)n_bias);
        dst += 4 * n_bias;
    }
    memcpy(dst, w, (unsigned)n_w);
}
