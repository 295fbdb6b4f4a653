/* exp and sigmoid over whole arrays, in loops the compiler vectorizes (cloned per instruction
 * set, _clones.h): the C library's exp is one call per element that no loop around it can
 * vectorize, and GCC's vector variants (libmvec) round differently on each processor. The point
 * functions below are branch-free, so that every clone computes exactly what the baseline does.
 *
 * Method (Cody and Waite's range reduction, as Cephes, fdlibm and SLEEF): k = round(x / ln 2),
 * r = x - k ln2_hi - k ln2_lo with ln 2 split in two so that k ln2_hi is exact (|r| <= ln2/2 up to
 * rounding), exp(r) = 1 + r + r^2 p(r), and exp(x) = exp(r) 2^k, 2^k being built in the exponent
 * bits. p interpolates (exp(r) - 1 - r) / r^2 at the 11 Chebyshev nodes of [-ln2/2, ln2/2]
 * (mpmath.chebyfit), within 2.3e-19 of exp(r) relatively. float takes exp in double, rounded once
 * to float.
 *
 * Accuracy, measured against np.exp in more precision: double within 0.95 ulp on 88 million
 * arguments over the whole range (sweeps and random); float correctly rounded on all 2.24 billion
 * floats of its range (the double's error is 4e-9 of a float's ulp; a float exp in float
 * arithmetic was within 0.96 ulp, enough to move a float32 network's outputs by ~1e-6 from those
 * of the C library's expf). tests/test_kernels.py checks 1 ulp (0.501 for float) on a sweep. The
 * AVX-512, AVX2 and baseline builds give the same bits.
 *
 * Special values: x above ~709.78 (88.72 for float) and +inf give +inf; results below the
 * smallest normal number are subnormals, rounded once from exp(r) 2^k (2^k = 2^k1 2^k2, both
 * normal: the product by 2^k1 is exact, the one by 2^k2 rounds); x below ~-745.13 (-103.97) and
 * -inf give 0; NaN gives NaN. The argument is first clamped to [-746, 710], beyond which the
 * results are 0 and +inf anyway, so that k stays in range.
 */
#ifndef FASTNN_EXP_H
#define FASTNN_EXP_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_clones.h"

/* cond ? a : b for the vectorizer, by a bit mask: GCC if-converts no floating-point comparison
 * under its default -ftrapping-math (the loop would stay scalar), and its optimize attribute for
 * -fno-trapping-math stops the clones from vectorizing at all. A NaN fails cond and keeps b. */
static inline double fastnn_select_double(int cond, double a, double b) {
    uint64_t mask = -(uint64_t)cond, bits_a, bits_b;
    memcpy(&bits_a, &a, sizeof bits_a);
    memcpy(&bits_b, &b, sizeof bits_b);
    bits_a = (bits_a & mask) | (bits_b & ~mask);
    memcpy(&a, &bits_a, sizeof a);
    return a;
}

static inline float fastnn_select_float(int cond, float a, float b) {
    uint32_t mask = -(uint32_t)cond, bits_a, bits_b;
    memcpy(&bits_a, &a, sizeof bits_a);
    memcpy(&bits_b, &b, sizeof bits_b);
    bits_a = (bits_a & mask) | (bits_b & ~mask);
    memcpy(&a, &bits_a, sizeof a);
    return a;
}

static inline double fastnn_exp_point_double(double x) {
    /* adding 1.5 2^52 rounds to an integer, which then sits in the low bits of the sum */
    const double shift = 0x1.8p52;
    const uint64_t shift_bits = 0x4338000000000000ULL;
    double t, k, r, p, s1, s2;
    uint64_t bits, kb, k1b;
    x = fastnn_select_double(x < -746.0, -746.0, x);
    x = fastnn_select_double(x > 710.0, 710.0, x);
    t = x * 0x1.71547652b82fep0 + shift;            /* x log2(e), rounded: k in [-1076, 1024] */
    k = t - shift;
    r = (x - k * 0x1.62e42feep-1) - k * 0x1.a39ef35793c76p-33;
    p = 0x1.1f72fc730b4ffp-29;
    p = p * r + 0x1.af4ddd84882fep-26;
    p = p * r + 0x1.27e4db67b4303p-22;
    p = p * r + 0x1.71de02375656cp-19;
    p = p * r + 0x1.a01a01a6d7808p-16;
    p = p * r + 0x1.a01a01abe62ddp-13;
    p = p * r + 0x1.6c16c16c162d6p-10;
    p = p * r + 0x1.11111111100dfp-7;
    p = p * r + 0x1.5555555555556p-5;
    p = p * r + 0x1.5555555555557p-3;
    p = p * r + 0.5;
    p = 1 + (r + (r * r) * p);
    /* 2^k = 2^k1 2^k2, k1 = floor(k / 2), k2 = k - k1: both normal, where 2^k may not be;
     * kb = k + 2048 >= 0 so that unsigned shifts do it, and k + 1023 is a biased exponent */
    memcpy(&bits, &t, sizeof bits);
    kb = bits - shift_bits + 2048;
    k1b = kb >> 1;
    bits = (k1b - 1) << 52;
    memcpy(&s1, &bits, sizeof s1);
    bits = (kb - k1b - 1) << 52;
    memcpy(&s2, &bits, sizeof s2);
    return p * s1 * s2;
}

static inline float fastnn_exp_point_float(float x) {
    return (float)fastnn_exp_point_double((double)x);
}

/* 1 / (1 + exp(-z)) from exp(-|z|) only, so that it never overflows: 1 / (1 + e) for z >= 0,
 * e / (1 + e) below. float rounds e to float and divides in double, as fastnn's sigmoid always
 * did (Cython's literals made that quotient a double's). */
static inline double fastnn_sigmoid_point_double(double z) {
    double e = fastnn_exp_point_double(-fabs(z));
    return fastnn_select_double(z >= 0, 1.0, e) / (1 + e);
}

static inline float fastnn_sigmoid_point_float(float z) {
    double e = fastnn_exp_point_float(-fabsf(z));
    return (float)(fastnn_select_double(z >= 0, 1.0, e) / (1 + e));
}

/* NAME(out, x, n): out[i] = POINT(x[i]) for the n elements of type T, in one cloned loop; out may
 * be x */
#define FASTNN_ARRAY_LOOP(NAME, T, POINT)                                                    \
static FASTNN_CLONES void NAME(T *out, const T *x, ptrdiff_t n) {                            \
    ptrdiff_t i;                                                                             \
    for (i = 0; i < n; i++)                                                                  \
        out[i] = POINT(x[i]);                                                                \
}

FASTNN_ARRAY_LOOP(fastnn_exp_double, double, fastnn_exp_point_double)
FASTNN_ARRAY_LOOP(fastnn_exp_float, float, fastnn_exp_point_float)
FASTNN_ARRAY_LOOP(fastnn_sigmoid_double, double, fastnn_sigmoid_point_double)
FASTNN_ARRAY_LOOP(fastnn_sigmoid_float, float, fastnn_sigmoid_point_float)

#endif
