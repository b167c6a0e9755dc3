/* Patch embedding, the P x P kernel decomposed into sub x sub sub-kernels: from the whole
 * image in the arena (mcu_patch_embed), or streamed one row of patches at a time into a band
 * buffer through a row source, the application's mcu_read_rows() (mcu_patch_embed_band). */
#include <string.h>

#include "mcu_kernels.h"

static int imin(int a, int b) { return a < b ? a : b; }

/* Stage the bias (weights in SRAM); returns the bias to read and sets *wsub to the
 * sub-kernel slot of the staging buffer. Copies the class-token row into x. */
static const int32_t *embed_begin(const int32_t *bias, const int8_t *cls, int embed, int8_t *x,
                                  uint8_t *stage, int8_t **wsub) {
    *wsub = 0;
    if (cls) memcpy(x, cls, (unsigned)embed);
    if (!stage) return bias;
    memcpy(stage, bias, 4 * (unsigned)embed);
    *wsub = (int8_t *)(stage + 4 * embed);
    return (const int32_t *)(void *)stage;
}

/* Token (gy, gx): accumulate every sub-kernel over the pixels, requantise into row t of x.
 * ``pix`` holds image rows from ``y_base`` on (the whole image: 0; a band: its first row).
 * w: (embed, patch, patch, chans) in pixel order; out-of-image pixels (zero padding) are
 * skipped. */
static void embed_token(const uint8_t *pix, int y_base, int img_size, int chans, int patch,
                        int grid, int sub, int gy, int gx, const int8_t *w, const int32_t *b,
                        int8_t *wsub, const int32_t *m0, const int8_t *shift, const int8_t *pos,
                        int off, int embed, int32_t *acc, int8_t *x) {
    int t = gy * grid + gx, ky, kx, o;
    for (o = 0; o < embed; o++) acc[o] = b[o];
    for (ky = 0; ky < patch; ky += sub) {
        for (kx = 0; kx < patch; kx += sub) {
            int y0 = gy * patch + ky, x0 = gx * patch + kx;
            int kh = imin(sub, patch - ky), kw = imin(sub, patch - kx);
            int vh = imin(kh, img_size - y0), vw = imin(kw, img_size - x0);
            const int8_t *base;
            int so, sy, yy;
            if (vh <= 0 || vw <= 0) continue;
            if (wsub) {
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
                    const uint8_t *px = pix + ((y0 - y_base + yy) * img_size + x0) * chans;
                    int i;
                    for (i = 0; i < vw * chans; i++) s += (int32_t)wr[i] * (int32_t)px[i];
                }
                acc[o] += s;
            }
        }
    }
    for (o = 0; o < embed; o++)
        x[(off + t) * embed + o] = mcu_sat8(mcu_requantize(acc[o], m0[o], shift[o]) + pos[t * embed + o]);
}

void mcu_patch_embed(const uint8_t *img, int img_size, int chans, int patch, int grid, int sub,
                     const int8_t *w, const int32_t *bias, const int32_t *m0, const int8_t *shift,
                     const int8_t *pos, const int8_t *cls, int embed, int32_t *acc, int8_t *x,
                     uint8_t *stage) {
    /* stage (weights in SRAM): int32 bias then one sub-kernel at a time. */
    int8_t *wsub;
    const int32_t *b = embed_begin(bias, cls, embed, x, stage, &wsub);
    int t;
    for (t = 0; t < grid * grid; t++)
        embed_token(img, 0, img_size, chans, patch, grid, sub, t / grid, t % grid, w, b, wsub, m0,
                    shift, pos, cls ? 1 : 0, embed, acc, x);
}

void mcu_patch_embed_band(mcu_read_rows_fn read_rows, uint8_t *band, int band_rows, int img_size,
                          int chans, int patch, int grid, int sub, const int8_t *w,
                          const int32_t *bias, const int32_t *m0, const int8_t *shift,
                          const int8_t *pos, const int8_t *cls, int embed, int32_t *acc, int8_t *x,
                          uint8_t *stage) {
    /* Before each row of patches, image rows [y0, min(y0 + band_rows, H)) are pulled from the
     * source into the band; a row of patches wholly in the zero padding reads nothing. */
    int8_t *wsub;
    const int32_t *b = embed_begin(bias, cls, embed, x, stage, &wsub);
    int gy, gx;
    for (gy = 0; gy < grid; gy++) {
        int y0 = gy * patch, y1 = imin(y0 + band_rows, img_size);
        if (y0 < y1) read_rows(y0, y1, band);
        for (gx = 0; gx < grid; gx++)
            embed_token(band, y0, img_size, chans, patch, grid, sub, gy, gx, w, b, wsub, m0, shift,
                        pos, cls ? 1 : 0, embed, acc, x);
    }
}
