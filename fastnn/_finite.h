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

static inline int fastnn_finite_double(const double *x, ptrdiff_t n) {
    const uint64_t mask = 0x7FF0000000000000ULL;
    uint64_t bits, bad = 0;
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        memcpy(&bits, x + i, sizeof bits);
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
