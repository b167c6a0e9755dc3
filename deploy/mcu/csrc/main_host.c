/* Host driver: runs every image of a binary file (uint8 H x W x C each) and prints one line
 * of int32 logits per image. With REPEAT > 1 each image runs REPEAT times (for timing);
 * the seconds spent in the model go to stderr. A streamed model (MCU_INPUT_STREAM) reads
 * its rows straight from the file through mcu_read_rows(), one row of patches at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

#if MCU_INPUT_STREAM
static FILE *source_fh;
static long source_image;

void mcu_read_rows(int y0, int y1, uint8_t *dst) {
    long row_bytes = (long)MCU_IMG_SIZE * MCU_IN_CHANS;
    size_t n = (size_t)((y1 - y0) * row_bytes);
    if (fseek(source_fh, source_image * MCU_INPUT_BYTES + y0 * row_bytes, SEEK_SET) != 0 ||
        fread(dst, 1, n, source_fh) != n) {
        fprintf(stderr, "error: cannot read rows %d..%d of image %ld\n", y0, y1, source_image);
        exit(1);
    }
}
#else
static uint8_t image[MCU_INPUT_BYTES];
#endif

int main(int argc, char **argv) {
    FILE *fh;
    long count = 0;
    int repeat = argc > 2 ? atoi(argv[2]) : 1, r, c;
    double seconds = 0.0;
    if (argc < 2 || repeat < 1) {
        fprintf(stderr, "usage: %s IMAGES.bin [REPEAT]\n", argv[0]);
        return 2;
    }
    fh = fopen(argv[1], "rb");
    if (!fh) {
        fprintf(stderr, "error: cannot open %s\n", argv[1]);
        return 2;
    }
#if MCU_INPUT_STREAM
    long images;
    source_fh = fh;
    if (fseek(fh, 0, SEEK_END) != 0) return 2;
    images = ftell(fh) / MCU_INPUT_BYTES;
    for (source_image = 0; source_image < images; source_image++) {
#else
    while (fread(image, 1, MCU_INPUT_BYTES, fh) == MCU_INPUT_BYTES) {
#endif
        const int32_t *logits = 0;
        clock_t t0 = clock();
        for (r = 0; r < repeat; r++) { /* the schedule reuses the input bytes: copy each run */
#if !MCU_INPUT_STREAM
            memcpy(mcu_model_input(), image, MCU_INPUT_BYTES);
#endif
            logits = mcu_model_run();
        }
        seconds += (double)(clock() - t0) / CLOCKS_PER_SEC;
        for (c = 0; c < MCU_NUM_CLASSES; c++) printf(c ? " %ld" : "%ld", (long)logits[c]);
        printf("\n");
        count++;
    }
    fclose(fh);
    fprintf(stderr, "images %ld runs %ld seconds %.6f\n", count, count * repeat, seconds);
    return count > 0 ? 0 : 1;
}
