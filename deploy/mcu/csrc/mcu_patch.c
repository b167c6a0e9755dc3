/* Patch embedding, the P x P kernel decomposed into sub x sub sub-kernels. */
#include <string.h>

#include "mcu_kernels.h"

static int imin(int a, int b) { return a < b ? a : b; }

void mcu_patch_embed(const uint8_t *img, int img_size, int chans, int patch, int grid, int sub,
                     const int8_t *w, const int32_t *bias, const int32_t *m0, const int8_t *shift,
                     const int8_t *pos, const int8_t *cls, int embed, int32_t *acc, int8_t *x,
                     uint8_t *stage) {
    /* w: (embed, patch, patch, chans) in pixel order; stage (weights in SRAM): int32 bias
     * then one sub-kernel at a time. Out-of-image pixels (zero padding) are skipped. */
    const int32_t *b = bias;
    int8_t *wsub = 0;
    int off = cls ? 1 : 0, t, o;
    if (cls) memcpy(x, cls, (unsigned)embed);
    if (stage) {
        memcpy(stage, bias, 4 * (unsigned)embed);
        b = (const int32_t *)(void *)stage;
        wsub = (int8_t *)(stage + 4 * embed);
    }
    for (t = 0; t < grid * grid; t++) {
        int gy = t / grid, gx = t % grid, ky, kx;
        for (o = 0; o < embed; o++) acc[o] = b[o];
        for (ky = 0; ky < patch; ky += sub) {
            for (kx = 0; kx < patch; kx += sub) {
                int y0 = gy * patch + ky, x0 = gx * patch + kx;
                int kh = imin(sub, patch - ky), kw = imin(sub, patch - kx);
                int vh = imin(kh, img_size - y0), vw = imin(kw, img_size - x0);
                const int8_t *base;
                int so, sy, yy;
                if (vh <= 0 || vw <= 0) continue;
                if (stage) {
                    for (o = 0; o < embed; o++)
                        for (yy = 0; yy < kh; yy++)
                            memcpy(wsub + (o * kh + yy) * kw * chans,
                                   w + ((o * patch + ky + yy) * patch + kx) * chans,
                                   (unsigned)(kw * chans));
                    base = wsub, so = kh * kw * chans, sy = kw * chans;
                } else {
                    base = w + (ky * patch + kx) * chans, so = patch * patch * chans, sy = patch * chans;
                }
                for (o = 0; o < embed; o++) {
                    int32_t s = 0;
                    for (yy = 0; yy < vh; yy++) {
                        const int8_t *wr = base + o * so + yy * sy;
                        const uint8_t *px = img + ((y0 + yy) * img_size + x0) * chans;
                        int i;
                        for (i = 0; i < vw * chans; i++) s += (int32_t)wr[i] * (int32_t)px[i];
                    }
                    acc[o] += s;
                }
            }
        }
        for (o = 0; o < embed; o++)
            x[(off + t) * embed + o] =
                mcu_sat8(mcu_requantize(acc[o], m0[o], shift[o]) + pos[t * embed + o]);
    }
}
