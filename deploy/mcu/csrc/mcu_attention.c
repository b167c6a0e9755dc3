/* Per-head attention: one int32 logit row at a time, fused integer softmax, probs x V. */
#include "mcu_kernels.h"

static void softmax_row(int32_t *row, int n, int32_t m0, int shift, uint8_t *out) {
    /* row: int32 logits in, exp values out (in place); out: uint8 probabilities (1/255). */
    int32_t mx = row[0];
    int64_t total = 0;
    int j;
    for (j = 1; j < n; j++)
        if (row[j] > mx) mx = row[j];
    for (j = 0; j < n; j++) {
        int64_t xq = mcu_requantize((int64_t)row[j] - mx, m0, shift);
        int64_t e = mcu_iexp(xq < MCU_EXP_MIN_Q10 ? MCU_EXP_MIN_Q10 : xq);
        row[j] = (int32_t)e;
        total += e;
    }
    for (j = 0; j < n; j++) out[j] = (uint8_t)(((int64_t)row[j] * 255 + total / 2) / total);
}

void mcu_scores(const int8_t *q, const int8_t *k, int n, int d, int32_t m0, int shift,
                int32_t *row, uint8_t *probs) {
    int i, j;
    for (i = 0; i < n; i++) {
        for (j = 0; j < n; j++) row[j] = mcu_dot(k + j * d, q + i * d, d);
        softmax_row(row, n, m0, shift, probs + i * n);
    }
}

void mcu_attn_v(const uint8_t *probs, const int8_t *v, int n, int d, int ld_out, int32_t m0,
                int shift, int8_t *out) {
    int i, c, j;
    for (i = 0; i < n; i++)
        for (c = 0; c < d; c++) {
            int32_t acc = 0;
            for (j = 0; j < n; j++) acc += (int32_t)probs[i * n + j] * (int32_t)v[j * d + c];
            out[i * ld_out + c] = mcu_sat8(mcu_requantize(acc, m0, shift));
        }
}
