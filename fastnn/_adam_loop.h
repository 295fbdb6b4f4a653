/* Adam's elementwise loop, compiled for three instruction sets (_clones.h): baseline x86-64's
 * SSE2 divides and takes square roots of two doubles at a time, and this loop is bound by exactly
 * those. See _updates.pxd for the math (torch.optim.Adam's order of operations).
 * The _l2 loops are torch.optim.Adam with weight_decay: g = G + wd P (P before this step) in place
 * of G, G itself unchanged; a second pair so that the plain loop carries no test per element.
 */
#ifndef FASTNN_ADAM_LOOP_H
#define FASTNN_ADAM_LOOP_H
#include <math.h>
#include <stddef.h>

#include "_clones.h"

/* m is torch's lerp_(m, g, w), whose two forms switch at a weight of 0.5: one loop for each, so
 * that neither tests w per element; each updates m, then v, then P, in one pass over the four
 * vectors (g is read once). */
#define FASTNN_ADAM_LOOP(NAME, T, SQRT, GRAD)                                                  \
static FASTNN_CLONES void NAME(T *P, const T *G, T *m, T *v, ptrdiff_t n, T w, T b2, T eps,   \
                               T step_size, T inv_bias2_sqrt, T wd) {                        \
    ptrdiff_t i;                                                                             \
    T g;                                                                                     \
    (void)wd;                                                                                \
    if (w < 0.5) {                                                                           \
        for (i = 0; i < n; i++) {                                                            \
            g = GRAD;                                                                        \
            m[i] = m[i] + w * (g - m[i]);                                                    \
            FASTNN_ADAM_V_P(SQRT)                                                            \
        }                                                                                    \
    } else {                                                                                 \
        for (i = 0; i < n; i++) {                                                            \
            g = GRAD;                                                                        \
            m[i] = g - (g - m[i]) * (1 - w);                                                 \
            FASTNN_ADAM_V_P(SQRT)                                                            \
        }                                                                                    \
    }                                                                                        \
}

/* the second moment and the step, after m (the body of both loops above) */
#define FASTNN_ADAM_V_P(SQRT)                                                                  \
    v[i] = v[i] * b2 + (1 - b2) * g * g;                                                     \
    P[i] = P[i] - step_size * m[i] / (SQRT(v[i]) * inv_bias2_sqrt + eps);

FASTNN_ADAM_LOOP(fastnn_adam_loop_double, double, sqrt, G[i])
FASTNN_ADAM_LOOP(fastnn_adam_loop_float, float, sqrtf, G[i])
FASTNN_ADAM_LOOP(fastnn_adam_l2_loop_double, double, sqrt, G[i] + wd * P[i])
FASTNN_ADAM_LOOP(fastnn_adam_l2_loop_float, float, sqrtf, G[i] + wd * P[i])

#endif
