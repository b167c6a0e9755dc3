/* Fused integer LayerNorm (square root by MCU_SQRT_ITERS Newton steps). */
#include "mcu_kernels.h"

#ifndef MCU_SQRT_ITERS
#define MCU_SQRT_ITERS 3
#endif

/* One row: y_i = round((n_i * g_i + b_i) / 2^LN_OUT_BITS), n_i = e(x_i - mean) / (e std) in Q12. */
static void norm_row(const int8_t *x, int e, const int64_t *g, const int64_t *b, int64_t eps_q,
                     int8_t *out, int32_t *acc) {
    int64_t sum = 0, var = 0, r;
    int i;
    for (i = 0; i < e; i++) sum += x[i];
    for (i = 0; i < e; i++) {
        int64_t c = (int64_t)e * x[i] - sum;
        var += c * c;
    }
    var = var / e + eps_q;
    r = mcu_isqrt(var, MCU_SQRT_ITERS);
    for (i = 0; i < e; i++) {
        int64_t c = (int64_t)e * x[i] - sum;
        int64_t n = mcu_floordiv(2 * c * ((int64_t)1 << MCU_LN_FRAC_BITS) + r, 2 * r);
        int8_t y = mcu_sat8(mcu_asr(n * g[i] + b[i] + ((int64_t)1 << (MCU_LN_OUT_BITS - 1)),
                                    MCU_LN_OUT_BITS));
        if (out) out[i] = y;
        else acc[i] += y;
    }
}

void mcu_layernorm(const int8_t *x, int rows, int e, const int64_t *g, const int64_t *b,
                   int64_t eps_q, int8_t *out) {
    int i;
    for (i = 0; i < rows; i++) norm_row(x + i * e, e, g, b, eps_q, out + i * e, 0);
}

void mcu_layernorm_sum(const int8_t *x, int rows, int e, const int64_t *g, const int64_t *b,
                       int64_t eps_q, int32_t *acc) {
    int i;
    for (i = 0; i < e; i++) acc[i] = 0;
    for (i = 0; i < rows; i++) norm_row(x + i * e, e, g, b, eps_q, 0, acc);
}

void mcu_mean(const int32_t *acc, int e, int32_t m0, int shift, int8_t *out) {
    int i;
    for (i = 0; i < e; i++) out[i] = mcu_sat8(mcu_requantize(acc[i], m0, shift));
}
