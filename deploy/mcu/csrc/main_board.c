/* Board driver (Cortex-M7 under QEMU, semihosting): reads images.bin image by image straight
 * into the arena's input buffer, runs the model and prints "logits ..." and "ticks N" (SysTick
 * ticks of the core clock for one inference) per image. A streamed model (MCU_INPUT_STREAM)
 * pulls each row of patches from images.bin through mcu_read_rows() while it runs. */
#include <stdint.h>

#include "model.h"
#include "semihost.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_CALIB (*(volatile uint32_t *)0xE000E01Cu)
#define SYST_RELOAD 0x00FFFFFFu

extern volatile uint32_t systick_wraps;

static uint64_t ticks_now(void) {
    uint32_t wraps, cur;
    do { /* CVR == 0 is the instant of a wrap whose interrupt may not have run yet */
        wraps = systick_wraps;
        cur = SYST_CVR;
    } while (wraps != systick_wraps || cur == 0);
    return (uint64_t)wraps * (SYST_RELOAD + 1u) + (SYST_RELOAD - cur);
}

static char *put_u64(char *p, uint64_t v) {
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10u), v /= 10u;
    while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

static char *put_i32(char *p, int32_t v) {
    if (v < 0) *p++ = '-';
    return put_u64(p, v < 0 ? (uint64_t)(-(int64_t)v) : (uint64_t)v);
}

#if MCU_INPUT_STREAM
static int32_t source_fd;
static uint32_t source_base; /* file offset of the current image */

void mcu_read_rows(int y0, int y1, uint8_t *dst) {
    uint32_t row_bytes = (uint32_t)MCU_IMG_SIZE * MCU_IN_CHANS;
    if (sh_seek(source_fd, source_base + (uint32_t)y0 * row_bytes) != 0 ||
        sh_read(source_fd, dst, (uint32_t)(y1 - y0) * row_bytes) != 0) {
        sh_puts("error: cannot read image rows from images.bin\n");
        sh_exit(0);
    }
}
#endif

int main(void) {
    static char line[16 + 12 * MCU_NUM_CLASSES];
    static const char path[] = "images.bin";
    int32_t fd = sh_open(path, (int32_t)(sizeof path - 1)), count, i, c;
    if (fd < 0) {
        sh_puts("error: cannot open images.bin\n");
        sh_exit(0);
    }
    count = sh_flen(fd) / MCU_INPUT_BYTES;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt on wrap, enabled */
    while (SYST_CVR == 0) { /* until the first reload */
    }
    systick_wraps = 0;
    for (i = 0; i < count; i++) {
        const int32_t *logits;
        uint64_t t0, t1;
        char *p = line;
#if MCU_INPUT_STREAM
        source_fd = fd;
        source_base = (uint32_t)i * MCU_INPUT_BYTES;
#else
        if (sh_read(fd, mcu_model_input(), MCU_INPUT_BYTES) != 0) break;
#endif
        t0 = ticks_now();
        logits = mcu_model_run();
        t1 = ticks_now();
        for (c = 0; c < MCU_NUM_CLASSES; c++) {
            *p++ = c ? ' ' : 'l';
            if (!c) *p++ = ' ';
            p = put_i32(p, logits[c]);
        }
        *p++ = '\n';
        *p = 0;
        sh_puts(line);
        p = put_u64(line + 6, t1 - t0);
        line[0] = 't', line[1] = 'i', line[2] = 'c', line[3] = 'k', line[4] = 's', line[5] = ' ';
        *p++ = '\n';
        *p = 0;
        sh_puts(line);
    }
    sh_exit(1);
    return 0;
}
