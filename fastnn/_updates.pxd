# Design: optimizer updates as single loops over the flat parameter vector, following torch.optim
# step by step (torch.optim.SGD without dampening, torch.optim.Adam with bias correction) so that
# trajectories can be compared to ~1e-12 in float64. Weight decay is torch's: weight_decay * p
# added to the gradient of every parameter, biases too (AdamW's decoupled decay shrinks the
# parameters before the step instead). Clipping of the gradient's norm, between the backward pass
# and the update, is torch.nn.utils.clip_grad_norm_'s.
from cython cimport floating
from libc.math cimport fabs, isfinite, isinf, sqrt

cdef extern from "_adam_loop.h" nogil:
    # the elementwise loop of adam_update, in C for per-processor clones (see the header)
    void fastnn_adam_loop_double(double* P, const double* G, double* m, double* v, Py_ssize_t n,
                                 double w, double b2, double eps, double step_size,
                                 double inv_bias2_sqrt, double wd)
    void fastnn_adam_loop_float(float* P, const float* G, float* m, float* v, Py_ssize_t n,
                                float w, float b2, float eps, float step_size,
                                float inv_bias2_sqrt, float wd)
    # the same with torch.optim.Adam's weight decay, G + wd P in place of G (G unchanged)
    void fastnn_adam_l2_loop_double(double* P, const double* G, double* m, double* v,
                                    Py_ssize_t n, double w, double b2, double eps,
                                    double step_size, double inv_bias2_sqrt, double wd)
    void fastnn_adam_l2_loop_float(float* P, const float* G, float* m, float* v, Py_ssize_t n,
                                   float w, float b2, float eps, float step_size,
                                   float inv_bias2_sqrt, float wd)


cdef enum:
    # the partial sums of sum_squares
    SQUARE_SUMS = 8


cdef inline double sum_squares(floating* x,       # IN (n,)
                               Py_ssize_t n) noexcept nogil:
    """sum_i x_i^2 in double: the x_i with i = k mod SQUARE_SUMS into the k-th of SQUARE_SUMS
    partial sums, then those in order. One running sum is a chain of additions that each wait for
    the last (4 cycles): 3.2 us for 6,400 squares against 0.6."""
    cdef double acc[SQUARE_SUMS]
    cdef double total = 0
    cdef Py_ssize_t i, k, whole = n - n % SQUARE_SUMS
    for k in range(SQUARE_SUMS):
        acc[k] = 0
    for i in range(whole // SQUARE_SUMS):
        for k in range(SQUARE_SUMS):
            acc[k] += <double>x[i * SQUARE_SUMS + k] * x[i * SQUARE_SUMS + k]
    for k in range(SQUARE_SUMS):
        total += acc[k]
    for i in range(whole, n):
        total += <double>x[i] * x[i]
    return total


cdef inline void sgd_update(floating* P,          # INOUT (n,) parameters
                            floating* G,          # IN    (n,) dJ/dP
                            floating* buf,        # INOUT (n,) momentum buffer, zeros at first
                            Py_ssize_t n, double lr, double momentum, bint nesterov,
                            double weight_decay) noexcept nogil:
    """g = G + weight_decay P; buf = momentum buf + g; P -= lr (g + momentum buf if nesterov else
    buf); plain GD if momentum is 0. G is left as it was."""
    cdef Py_ssize_t i
    cdef floating g, step, mu = <floating>momentum, rate = <floating>lr
    cdef floating wd = <floating>weight_decay
    if momentum == 0:
        if weight_decay == 0:
            for i in range(n):
                P[i] = P[i] - rate * G[i]
        else:
            for i in range(n):
                P[i] = P[i] - rate * (G[i] + wd * P[i])
        return
    for i in range(n):
        # torch rounds g + wd p once, before the momentum, and skips it when wd is 0
        g = G[i] + wd * P[i] if weight_decay != 0 else G[i]
        buf[i] = mu * buf[i] + g
        step = g + mu * buf[i] if nesterov else buf[i]
        P[i] = P[i] - rate * step


cdef inline void adam_update(floating* P,         # INOUT (n,) parameters
                             floating* G,         # IN    (n,) dJ/dP
                             floating* m,         # INOUT (n,) first moment, zeros at first
                             floating* v,         # INOUT (n,) second moment, zeros at first
                             Py_ssize_t n, double lr, double beta1, double beta2, double eps,
                             long long t, bint eps_hat, double weight_decay,
                             bint decoupled) noexcept nogil:
    """Adam step number t >= 1: m, v moving averages of g and g^2;
    P -= lr m_hat / (sqrt(v_hat) + eps).

    weight_decay as torch.optim.Adam: g = G + weight_decay P (G unchanged); decoupled, as
    torch.optim.AdamW: P *= 1 - lr weight_decay first, then the step on g = G.

    With eps_hat, eps is Kingma and Ba's epsilon-hat, added before the bias correction as Keras
    and scikit-learn do: P -= lr sqrt(1 - beta2^t) / (1 - beta1^t) m / (sqrt(v) + eps).
    """
    cdef double bias1 = 1 - beta1 ** t
    cdef floating step_size = <floating>(lr / bias1)
    # torch divides sqrt(v) by sqrt(1 - beta2^t); one multiplication by its inverse is the same to
    # an ulp and leaves a single division per parameter, the bottleneck of this loop
    cdef floating inv_bias2_sqrt = <floating>(1 / sqrt(1 - beta2 ** t))
    cdef floating w = <floating>(1 - beta1), b2 = <floating>beta2, e = <floating>eps
    cdef floating wd = <floating>weight_decay, shrink = <floating>(1 - lr * weight_decay)
    cdef Py_ssize_t i
    if eps_hat:
        step_size = <floating>(lr * sqrt(1 - beta2 ** t) / bias1)
        inv_bias2_sqrt = 1
    if decoupled and weight_decay != 0:
        for i in range(n):
            P[i] = P[i] * shrink
    if weight_decay != 0 and not decoupled:
        if floating is float:
            fastnn_adam_l2_loop_float(P, G, m, v, n, w, b2, e, step_size, inv_bias2_sqrt, wd)
        else:
            fastnn_adam_l2_loop_double(P, G, m, v, n, w, b2, e, step_size, inv_bias2_sqrt, wd)
    elif floating is float:
        fastnn_adam_loop_float(P, G, m, v, n, w, b2, e, step_size, inv_bias2_sqrt, 0)
    else:
        fastnn_adam_loop_double(P, G, m, v, n, w, b2, e, step_size, inv_bias2_sqrt, 0)


cdef inline void rmsprop_update(floating* P,      # INOUT (n,) parameters
                                floating* G,      # IN    (n,) dJ/dP
                                floating* sq,     # INOUT (n,) square_avg, zeros at first
                                floating* buf,    # INOUT (n,) momentum buffer (momentum > 0)
                                floating* ga,     # INOUT (n,) grad_avg (centered)
                                Py_ssize_t n, double lr, double alpha, double eps,
                                double momentum, bint centered,
                                double weight_decay) noexcept nogil:
    """torch.optim.RMSprop: g = G + weight_decay P; sq = alpha sq + (1 - alpha) g^2;
    avg = sqrt(sq - ga^2) + eps with ga = lerp(ga, g, 1 - alpha) if centered, else
    sqrt(sq) + eps; then buf = momentum buf + g / avg, P -= lr buf if momentum > 0, else
    P -= lr g / avg. G is left as it was."""
    cdef Py_ssize_t i
    cdef floating g, avg, a = <floating>alpha, w = <floating>(1 - alpha), e = <floating>eps
    cdef floating mu = <floating>momentum, rate = <floating>lr, wd = <floating>weight_decay
    for i in range(n):
        g = G[i] + wd * P[i] if weight_decay != 0 else G[i]
        sq[i] = sq[i] * a + w * g * g
        if centered:
            # torch's lerp_, whose two forms switch at a weight of 0.5
            ga[i] = ga[i] + w * (g - ga[i]) if w < 0.5 else g - (g - ga[i]) * (1 - w)
            avg = sqrt(sq[i] - ga[i] * ga[i]) + e
        else:
            avg = sqrt(sq[i]) + e
        if momentum > 0:
            buf[i] = buf[i] * mu + g / avg
            P[i] = P[i] - rate * buf[i]
        else:
            P[i] = P[i] - rate * (g / avg)


cdef inline double gradient_norm(floating* G,     # IN (n,) dJ/dP
                                 Py_ssize_t n) noexcept nogil:
    """||G||_2, the squares summed in double; NaN if G holds a NaN, infinite if it holds an
    infinity.

    A sum of squares of finite values that overflows (entries beyond ~1e154, float64 only) is
    summed again scaled by the largest |G_i|, so a finite gradient has a finite norm (torch's
    vector_norm returns inf there, and its clip_grad_norm_ then zeroes the gradient).
    """
    cdef Py_ssize_t i
    cdef double total = sum_squares(G, n), scale = 0, x
    if not isinf(total):
        return sqrt(total)
    for i in range(n):
        # a NaN fails the comparison and an infinity wins it: scale is then infinite
        if fabs(G[i]) > scale:
            scale = fabs(G[i])
    if not isfinite(scale):
        return total
    total = 0
    for i in range(n):
        x = G[i] / scale
        total += x * x
    return scale * sqrt(total)


cdef inline double clip_grad_norm(floating* G,    # INOUT (n,) dJ/dP
                                  Py_ssize_t n, double max_norm) noexcept nogil:
    """torch.nn.utils.clip_grad_norm_(max_norm) (norm_type 2) on the flat gradient:
    coef = max_norm / (||G||_2 + 1e-6); G *= coef if coef < 1. Returns ||G||_2 before clipping.

    As torch's clamp keeps a NaN, a NaN norm makes every G_i NaN, and an infinite one (coef 0)
    makes the infinite entries NaN: the update then makes parameters NaN, which the caller's check
    refuses.
    """
    cdef Py_ssize_t i
    cdef double norm = gradient_norm(G, n)
    cdef double coef = max_norm / (norm + 1e-6)
    cdef floating c = <floating>coef
    if not coef >= 1:
        for i in range(n):
            G[i] = G[i] * c
    return norm
