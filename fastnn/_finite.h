/* Whether a vector holds only finite numbers, in one pass that the compiler vectorizes: a value
 * is NaN or infinite exactly when its exponent bits are all ones, and OR-ing integer tests is
 * associative, where a floating-point sum is not (gcc keeps such a sum in one serial chain,
 * several times slower on the long vectors a training step checks).
 */
#ifndef FASTNN_FINITE_H
#define FASTNN_FINITE_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A double's exponent lies in its high 32-bit word: testing that word alone uses 32-bit integer
 * compares, which baseline x86-64 (SSE2) vectorizes, where it has no 64-bit one (3x faster). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define FASTNN_HIGH_WORD 0
#else
#define FASTNN_HIGH_WORD 4
#endif

static inline int fastnn_finite_double(const double *x, ptrdiff_t n) {
    const uint32_t mask = 0x7FF00000U;
    const unsigned char *high = (const unsigned char *)x + FASTNN_HIGH_WORD;
    uint32_t bits, bad = 0;
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        memcpy(&bits, high + 8 * i, sizeof bits);
        bad |= (bits & mask) == mask;
    }
    return bad == 0;
}

static inline int fastnn_finite_float(const float *x, ptrdiff_t n) {
    const uint32_t mask = 0x7F800000U;
    uint32_t bits, bad = 0;
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        memcpy(&bits, x + i, sizeof bits);
        bad |= (bits & mask) == mask;
    }
    return bad == 0;
}

#endif
