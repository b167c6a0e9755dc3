/* Minimal Arm semihosting (BKPT 0xAB on M-profile): file reads, console writes, exit. */
#ifndef SEMIHOST_H
#define SEMIHOST_H
#include <stdint.h>

#define SH_OPEN 0x01
#define SH_CLOSE 0x02
#define SH_WRITE0 0x04
#define SH_READ 0x06
#define SH_SEEK 0x0A
#define SH_FLEN 0x0C
#define SH_EXIT 0x18
#define SH_STOPPED_APPLICATION_EXIT 0x20026

static inline int32_t sh_call(int32_t op, const void *arg) {
    register int32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static inline void sh_puts(const char *s) { sh_call(SH_WRITE0, s); }

static inline int32_t sh_open(const char *path, int32_t len) {
    uint32_t args[3] = {(uint32_t)path, 1u /* "rb" */, (uint32_t)len};
    return sh_call(SH_OPEN, args);
}

/* Returns the number of bytes NOT read (0 = all read). */
static inline int32_t sh_read(int32_t fd, void *buf, uint32_t n) {
    uint32_t args[3] = {(uint32_t)fd, (uint32_t)buf, n};
    return sh_call(SH_READ, args);
}

/* Absolute file position; returns 0 on success. */
static inline int32_t sh_seek(int32_t fd, uint32_t pos) {
    uint32_t args[2] = {(uint32_t)fd, pos};
    return sh_call(SH_SEEK, args);
}

static inline int32_t sh_flen(int32_t fd) {
    uint32_t args[1] = {(uint32_t)fd};
    return sh_call(SH_FLEN, args);
}

static inline void sh_exit(int ok) {
    sh_call(SH_EXIT, (const void *)(ok ? SH_STOPPED_APPLICATION_EXIT : 0x20024 /* RunTimeErrorUnknown */));
    for (;;) {
    }
}
#endif
