/* Host driver: runs every image of a binary file (uint8 H x W x C each) and prints one line
 * of int32 logits per image. With REPEAT > 1 each image runs REPEAT times (for timing);
 * the seconds spent in the model go to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

static uint8_t image[MCU_INPUT_BYTES];

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
    while (fread(image, 1, MCU_INPUT_BYTES, fh) == MCU_INPUT_BYTES) {
        const int32_t *logits = 0;
        clock_t t0 = clock();
        for (r = 0; r < repeat; r++) { /* the schedule reuses the input bytes: copy each run */
            memcpy(mcu_model_input(), image, MCU_INPUT_BYTES);
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
