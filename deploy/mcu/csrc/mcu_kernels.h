/* MCUFormer-style int8 operator library: the kernels of the `mcu` schedule.
 *
 * Portable C99. Every kernel works on buffers the caller places (one static arena; offsets
 * fixed at generation time) and on constants that are either read in place (flash) or were
 * staged into the arena by mcu_stage(). The arithmetic reproduces the numpy reference
 * executor (memory_model/int8) bit for bit: int32 dot products, int64 requantisation with
 * (m0, shift) constants, arithmetic right shifts and floor division on negative values.
 */
#ifndef MCU_KERNELS_H
#define MCU_KERNELS_H

#include <stdint.h>

#include "mcu_consts.h"

#define MCU_ACT_NONE 0
#define MCU_ACT_RELU 1
#define MCU_ACT_GELU 2 /* x * sigmoid(1.702 x) */

/* Per-output-channel requantisation: out = round(acc * m0 * 2^-shift); GELU layers also
 * carry the multiplier that turns acc into the Q10 sigmoid input. */
typedef struct {
    const int32_t *m0;
    const int8_t *shift;
    const int32_t *act_m0; /* GELU only, else NULL */
    const int8_t *act_shift;
} mcu_requant_t;

int64_t mcu_asr(int64_t x, int s);
int64_t mcu_floordiv(int64_t a, int64_t b);
int64_t mcu_requantize(int64_t acc, int32_t m0, int shift);
int8_t mcu_sat8(int64_t v);
int64_t mcu_iexp(int64_t x_q10);
int64_t mcu_sigmoid_q15(int64_t x_q10);
int64_t mcu_isqrt(int64_t v, int iterations);
int32_t mcu_dot(const int8_t *a, const int8_t *b, int n);

/* Copy a layer's constants into its staging buffer: int32 bias (if any) then the matrix. */
void mcu_stage(uint8_t *dst, const int32_t *bias, int n_bias, const int8_t *w, int n_w);

void mcu_patch_embed(const uint8_t *img, int img_size, int chans, int patch, int grid, int sub,
                     const int8_t *w, const int32_t *bias, const int32_t *m0, const int8_t *shift,
                     const int8_t *pos, const int8_t *cls, int embed, int32_t *acc, int8_t *x,
                     uint8_t *stage);
/* Streamed input: a row source writes image rows [y0, y1) (uint8, (y1 - y0) x W x C) to dst.
 * A streamed model passes mcu_read_rows, which the application provides (camera, flash, file). */
typedef void (*mcu_read_rows_fn)(int y0, int y1, uint8_t *dst);
void mcu_read_rows(int y0, int y1, uint8_t *dst);
/* The same patch embedding, image rows pulled into a band of band_rows rows per row of patches. */
void mcu_patch_embed_band(mcu_read_rows_fn read_rows, uint8_t *band, int band_rows, int img_size,
                          int chans, int patch, int grid, int sub, const int8_t *w,
                          const int32_t *bias, const int32_t *m0, const int8_t *shift,
                          const int8_t *pos, const int8_t *cls, int embed, int32_t *acc, int8_t *x,
                          uint8_t *stage);
void mcu_layernorm(const int8_t *x, int rows, int e, const int64_t *g, const int64_t *b,
                   int64_t eps_q, int8_t *out);
void mcu_layernorm_sum(const int8_t *x, int rows, int e, const int64_t *g, const int64_t *b,
                       int64_t eps_q, int32_t *acc);
void mcu_linear_inplace(int8_t *buf, int n, int d_in, int d_out, const int8_t *w,
                        const int32_t *bias, const mcu_requant_t *rq, int act, int8_t *tmp);
void mcu_linear_to(const int8_t *src, int n, int d_in, int d_out, const int8_t *w,
                   const int32_t *bias, const mcu_requant_t *rq, int8_t *dst);
void mcu_scores(const int8_t *q, const int8_t *k, int n, int d, int32_t m0, int shift,
                int32_t *row, uint8_t *probs);
void mcu_attn_v(const uint8_t *probs, const int8_t *v, int n, int d, int ld_out, int32_t m0,
                int shift, int8_t *out);
void mcu_linear_residual(const int8_t *src, int n, int d_in, int e, const int8_t *w,
                         const int32_t *bias, const mcu_requant_t *rq, int32_t res_m0,
                         int res_shift, int8_t *x);
void mcu_mean(const int32_t *acc, int e, int32_t m0, int shift, int8_t *out);
void mcu_head(const int8_t *p, int e, int classes, const int8_t *w, const int32_t *bias,
              int32_t *logits);

#endif
