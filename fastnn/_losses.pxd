# Design: the loss of the output layer as a forward/backward pair. Cross-entropy is computed from
# the logits Z (log-sum-exp for softmax, softplus for sigmoid), so huge logits give finite values;
# its backward is the canonical dJ/dZ = (Yhat - Y) / N. Squared error differentiates through any
# output activation with activation_backward.
from cython cimport floating
from libc.math cimport log, log1p, fabs
from fastnn._activations cimport SIGMOID, SOFTMAX, activation_backward, fexp

cdef enum Loss:
    SQUARED_ERROR = 0
    CROSS_ENTROPY = 1


cdef inline double loss_forward(floating* Z,      # IN (N, M) output logits
                                floating* A,      # IN (N, M) output activations f(Z)
                                floating* Y,      # IN (N, M) targets
                                Py_ssize_t N, Py_ssize_t M, int out_act, int loss) noexcept nogil:
    """sum_i L_i: the per-sample losses summed over the N samples (not yet divided by N)."""
    cdef Py_ssize_t i, j, size = N * M
    cdef double total = 0, diff, z, zmax, lse
    if loss == SQUARED_ERROR:
        for i in range(size):
            diff = <double>A[i] - <double>Y[i]
            total += diff * diff
    elif out_act == SOFTMAX:
        # L = sum_k y_k (logsumexp(z) - z_k)
        for i in range(N):
            zmax = Z[i * M]
            for j in range(1, M):
                if Z[i * M + j] > zmax:
                    zmax = Z[i * M + j]
            lse = 0
            for j in range(M):
                lse += fexp(<double>Z[i * M + j] - zmax)
            lse = zmax + log(lse)
            for j in range(M):
                total += Y[i * M + j] * (lse - Z[i * M + j])
    else:
        # sigmoid: L = sum_k softplus(z_k) - y_k z_k, softplus(z) = max(z, 0) + log1p(exp(-|z|))
        for i in range(size):
            z = Z[i]
            total += (z if z > 0 else 0) - Y[i] * z + log1p(fexp(-fabs(z)))
    return total


cdef inline void loss_backward(floating* D,       # OUT (N, M) dJ/dZ
                               floating* A,       # IN  (N, M) output activations f(Z)
                               floating* Y,       # IN  (N, M) targets
                               Py_ssize_t N, Py_ssize_t M, int out_act, int loss,
                               floating scale) noexcept nogil:
    """D = dJ/dZ of J = scale * sum_i L_i (scale is 1/N for the mean over the batch)."""
    cdef Py_ssize_t i, j, size = N * M
    cdef floating total
    if loss == SQUARED_ERROR:
        for i in range(size):
            D[i] = 2 * scale * (A[i] - Y[i])
        activation_backward(D, A, N, M, out_act)
    elif out_act == SOFTMAX:
        # dL/dz_k = (sum_j y_j) yhat_k - y_k, which is yhat_k - y_k for one-hot or probability rows
        for i in range(N):
            total = 0
            for j in range(M):
                total = total + Y[i * M + j]
            for j in range(M):
                D[i * M + j] = scale * (total * A[i * M + j] - Y[i * M + j])
    else:
        for i in range(size):
            D[i] = scale * (A[i] - Y[i])
