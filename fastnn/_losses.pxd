# Design: the loss of the output layer as a forward/backward pair. Cross-entropy is computed from
# the logits Z (log-sum-exp for softmax, softplus for sigmoid), so huge logits give finite values
# (in float64 softmax's sum of exps is read from its outputs A, which are exp(z - max) / sum);
# its backward is the canonical dJ/dZ = (Yhat - Y) / N. Squared error, absolute error and Huber
# read the outputs A and differentiate through any output activation with activation_backward.
# Poisson goes with the exp output, on the log link as cross-entropy is on the logits: its input
# is the log-rate z (torch's PoissonNLLLoss(log_input=True)), its dJ/dZ = (A - Y) / N.
# `param` is a loss' one real parameter (Huber's delta, softmax cross-entropy's label smoothing;
# unused by the others) and `w` its weights per output (softmax cross-entropy's class weights,
# sigmoid cross-entropy's pos_weight), NULL without. Cross-entropy with options has its own
# pair (xent_options_*), so that the plain losses' pair stays as small as before they existed:
# small enough for the compiler to inline into the training step.
from cython cimport floating
from libc.math cimport log, log1p, fabs
from fastnn._activations cimport SOFTMAX, activation_backward, fexp, row_max

cdef enum Loss:
    SQUARED_ERROR = 0
    CROSS_ENTROPY = 1
    ABSOLUTE_ERROR = 2  # L = sum_k |a_k - y_k|
    POISSON = 3         # L = sum_k exp(z_k) - y_k z_k (log link; no log(y!) term)
    HUBER = 4           # L = sum_k h(a_k - y_k), h quadratic within param of 0, linear beyond


cdef inline double smoothed_weight(floating* y,      # IN (M,) one row of targets
                                   double* w,        # IN (M,) class weights, or NULL for ones
                                   double eps, Py_ssize_t j, Py_ssize_t M) noexcept nogil:
    """w_j q_j, q = (1 - eps) y + eps / M: the factor on -log p_j in softmax cross-entropy with
    class weights w and label smoothing eps (torch's CrossEntropyLoss(weight, label_smoothing))."""
    cdef double q = (1 - eps) * <double>y[j] + eps / M
    return q if w == NULL else w[j] * q


cdef inline double loss_forward(floating* Z,      # IN (N, M) output logits
                                floating* A,      # IN (N, M) output activations f(Z)
                                floating* Y,      # IN (N, M) targets
                                floating* s,      # IN (N,) sample weights, or NULL for ones
                                double* w,        # IN (M,) weights per output, or NULL
                                Py_ssize_t N, Py_ssize_t M, int out_act, int loss,
                                double param) noexcept nogil:
    """sum_i s_i L_i: the per-sample losses, weighted, summed over the N samples."""
    cdef Py_ssize_t i, j
    cdef double total = 0, row, diff, y, z, zmax, lse, pw
    cdef floating* zi
    for i in range(N):
        row = 0
        zi = Z + i * M
        if loss == SQUARED_ERROR:
            for j in range(M):
                diff = <double>A[i * M + j] - <double>Y[i * M + j]
                row += diff * diff
        elif loss == ABSOLUTE_ERROR:
            for j in range(M):
                row += fabs(<double>A[i * M + j] - <double>Y[i * M + j])
        elif loss == HUBER:
            for j in range(M):
                diff = fabs(<double>A[i * M + j] - <double>Y[i * M + j])
                row += 0.5 * diff * diff if diff <= param else param * (diff - 0.5 * param)
        elif loss == POISSON:
            # A = exp(Z): infinite when z overflows, and so is the loss
            for j in range(M):
                row += <double>A[i * M + j] - Y[i * M + j] * <double>zi[j]
        elif out_act == SOFTMAX:
            # L = sum_k w_k q_k (logsumexp(z) - z_k); q = y, w = 1 without options
            zmax = row_max(zi, M)
            if floating is double:
                # the softmax's largest output is exp(0) / sum_j exp(z_j - zmax): the log of the
                # sum is -log(max_k a_k) (to the rounding of 1 / sum), no exp taken again
                lse = zmax - log(row_max(A + i * M, M))
            else:
                # from float's A, log(sum) would keep float's precision only, coarse for the
                # small losses of well-classified rows: the exps again, in double
                lse = 0
                for j in range(M):
                    lse += fexp(<double>zi[j] - zmax)
                lse = zmax + log(lse)
            for j in range(M):
                row += smoothed_weight(Y + i * M, w, param, j, M) * (lse - zi[j])
        else:
            # sigmoid with pos_weight w (1 without), as torch's BCEWithLogitsLoss computes it:
            # L = sum_k (1 - y_k) z_k + (1 + (w_k - 1) y_k) softplus(-z_k),
            # softplus(-z) = max(-z, 0) + log1p(exp(-|z|))
            for j in range(M):
                z = zi[j]
                y = Y[i * M + j]
                pw = 1 if w == NULL else w[j]
                row += (1 - y) * z + (1 + (pw - 1) * y) * ((-z if z < 0 else 0)
                                                           + log1p(fexp(-fabs(z))))
        total += row if s == NULL else s[i] * row
    return total


cdef inline void loss_backward(floating* D,       # OUT (N, M) dJ/dZ
                               floating* A,       # IN  (N, M) output activations f(Z)
                               floating* Y,       # IN  (N, M) targets
                               floating* s,       # IN  (N,) sample weights, or NULL for ones
                               double* w,         # IN  (M,) weights per output, or NULL
                               Py_ssize_t N, Py_ssize_t M, int out_act, int loss,
                               floating scale, double param) noexcept nogil:
    """D = dJ/dZ of J = scale * sum_i s_i L_i (scale is 1/N for the mean over the batch)."""
    cdef Py_ssize_t i, j
    cdef floating c, diff
    cdef floating delta = <floating>param
    cdef floating pw
    cdef double weight_total
    for i in range(N):
        c = scale if s == NULL else scale * s[i]
        if loss == SQUARED_ERROR:
            for j in range(M):
                D[i * M + j] = 2 * c * (A[i * M + j] - Y[i * M + j])
        elif loss == ABSOLUTE_ERROR:
            # sign(a - y), 0 at a == y as torch's L1Loss
            for j in range(M):
                diff = A[i * M + j] - Y[i * M + j]
                D[i * M + j] = c if diff > 0 else (-c if diff < 0 else 0)
        elif loss == HUBER:
            # a - y within delta of 0, delta sign(a - y) beyond: torch's HuberLoss
            for j in range(M):
                diff = A[i * M + j] - Y[i * M + j]
                if diff > delta:
                    diff = delta
                elif diff < -delta:
                    diff = -delta
                D[i * M + j] = c * diff
        elif loss == POISSON:
            # A is exp(z): dL/dz = exp(z) - y
            for j in range(M):
                D[i * M + j] = c * (A[i * M + j] - Y[i * M + j])
        elif out_act == SOFTMAX:
            # dL/dz_k = (sum_j w_j q_j) yhat_k - w_k q_k: (sum_j y_j) yhat_k - y_k without
            # options, which is yhat_k - y_k for one-hot or probability rows
            weight_total = 0
            for j in range(M):
                weight_total += smoothed_weight(Y + i * M, w, param, j, M)
            for j in range(M):
                D[i * M + j] = c * <floating>(weight_total * A[i * M + j]
                                              - smoothed_weight(Y + i * M, w, param, j, M))
        else:
            # sigmoid with pos_weight w (1 without): dL/dz_k = (1 + (w_k - 1) y_k) yhat_k - w_k y_k,
            # yhat_k - y_k without
            for j in range(M):
                pw = 1 if w == NULL else <floating>w[j]
                D[i * M + j] = c * ((1 + (pw - 1) * Y[i * M + j]) * A[i * M + j]
                                    - pw * Y[i * M + j])
    if loss == SQUARED_ERROR or loss == ABSOLUTE_ERROR or loss == HUBER:
        activation_backward(D, A, N, M, out_act, <floating>0)
