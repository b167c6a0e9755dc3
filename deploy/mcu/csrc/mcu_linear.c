/* Linears: token-overwriting (in place), to a new buffer, with a fused residual add, head. */
#include <string.h>

#include "mcu_kernels.h"

static int8_t epilogue(int64_t acc, const mcu_requant_t *rq, int o, int act) {
    if (act == MCU_ACT_RELU) {
        if (acc < 0) acc = 0;
    } else if (act == MCU_ACT_GELU) {
        int64_t sig = mcu_sigmoid_q15(mcu_requantize(acc, rq->act_m0[o], rq->act_shift[o]));
        acc = mcu_asr(acc * sig + ((int64_t)1 << (MCU_SIG_BITS - 1)), MCU_SIG_BITS);
    }
    return mcu_sat8(mcu_requantize(acc, rq->m0[o], rq->shift[o]));
}

void mcu_linear_inplace(int8_t *buf, int n, int d_in, int d_out, const int8_t *w,
                        const int32_t *bias, const mcu_requant_t *rq, int act, int8_t *tmp) {
    /* Row i's output overwrites row i's input: forward when the width shrinks, backward
     * when it grows, through the one-token temporary tmp (d_out bytes). */
    int step, i, o;
    for (step = 0; step < n; step++) {
        const int8_t *xi;
        i = d_out <= d_in ? step : n - 1 - step;
        xi = buf + i * d_in;
        for (o = 0; o < d_out; o++) {
            int64_t acc = mcu_dot(w + o * d_in, xi, d_in);
            if (bias) acc += bias[o];
            tmp[o] = epilogue(acc, rq, o, act);
        }
        memcpy(buf + i * d_out, tmp, (unsigned)d_out);
    }
}

void mcu_linear_to(const int8_t *src, int n, int d_in, int d_out, const int8_t *w,
                   const int32_t *bias, const mcu_requant_t *rq, int8_t *dst) {
    int i, o;
    for (i = 0; i < n; i++)
        for (o = 0; o < d_out; o++) {
            int64_t acc = mcu_dot(w + o * d_in, src + i * d_in, d_in);
            if (bias) acc += bias[o];
            dst[i * d_out + o] = epilogue(acc, rq, o, MCU_ACT_NONE);
        }
}

void mcu_linear_residual(const int8_t *src, int n, int d_in, int e, const int8_t *w,
                         const int32_t *bias, const mcu_requant_t *rq, int32_t res_m0,
                         int res_shift, int8_t *x) {
    int i, o;
    for (i = 0; i < n; i++)
        for (o = 0; o < e; o++) {
            int64_t acc = (int64_t)mcu_dot(w + o * d_in, src + i * d_in, d_in) + bias[o];
            int64_t res = mcu_requantize(x[i * e + o], res_m0, res_shift);
            x[i * e + o] = mcu_sat8(res + mcu_requantize(acc, rq->m0[o], rq->shift[o]));
        }
}

void mcu_head(const int8_t *p, int e, int classes, const int8_t *w, const int32_t *bias,
              int32_t *logits) {
    int o;
    for (o = 0; o < classes; o++) logits[o] = (int32_t)(mcu_dot(w + o * e, p, e) + (int64_t)bias[o]);
}
