# Design: batch normalization of the columns of an (N, M) row-major matrix as a forward/backward
# pair, with PyTorch's BatchNorm1d semantics: in training, each column is normalized by its batch
# mean and biased variance, and the running statistics move by `momentum` towards the batch's
# (the variance unbiased, N / (N - 1)), a separate step taken once the batch's loss is known to
# be finite; in evaluation, the running statistics normalize. gamma and
# beta (NULL when not affine: 1 and 0) scale and shift. The backward pass reads xhat and 1/std,
# saved by the forward pass, so it may run in place and the forward pass may overwrite its input.
from cython cimport floating
from libc.math cimport sqrt


cdef inline void batchnorm_forward(floating* Y,        # OUT (N, M), may be X
                                   floating* xhat,     # OUT (N, M) normalized X
                                   floating* mean,     # OUT (M,) batch mean
                                   floating* var,      # OUT (M,) batch variance (biased)
                                   floating* invstd,   # OUT (M,) 1 / sqrt(var + eps)
                                   floating* X,        # IN  (N, M)
                                   floating* gamma,    # IN  (M,) or NULL
                                   floating* beta,     # IN  (M,) or NULL
                                   Py_ssize_t N, Py_ssize_t M, double eps) noexcept nogil:
    """Training: xhat = (X - mean) / sqrt(var + eps), Y = gamma xhat + beta, over the batch."""
    cdef Py_ssize_t i, j
    cdef floating d
    for j in range(M):
        mean[j] = 0
        var[j] = 0
    for i in range(N):
        for j in range(M):
            mean[j] = mean[j] + X[i * M + j]
    for j in range(M):
        mean[j] = mean[j] / N
    # the variance by a second pass over the deviations: no cancellation for large means
    for i in range(N):
        for j in range(M):
            d = X[i * M + j] - mean[j]
            var[j] = var[j] + d * d
    for j in range(M):
        var[j] = var[j] / N
        invstd[j] = <floating>(1 / sqrt(var[j] + eps))
    for i in range(N):
        for j in range(M):
            xhat[i * M + j] = (X[i * M + j] - mean[j]) * invstd[j]
            if gamma != NULL:
                Y[i * M + j] = gamma[j] * xhat[i * M + j] + beta[j]
            else:
                Y[i * M + j] = xhat[i * M + j]


cdef inline void batchnorm_running(floating* running_mean,  # INOUT (M,)
                                   floating* running_var,   # INOUT (M,)
                                   floating* mean,          # IN (M,) batch mean
                                   floating* var,           # IN (M,) batch variance (biased)
                                   Py_ssize_t N, Py_ssize_t M, double momentum) noexcept nogil:
    """Move the running statistics towards the batch's (N >= 2 rows), the variance unbiased."""
    cdef Py_ssize_t j
    for j in range(M):
        running_mean[j] = <floating>((1 - momentum) * running_mean[j] + momentum * mean[j])
        running_var[j] = <floating>((1 - momentum) * running_var[j]
                                    + momentum * (var[j] * N / (N - 1)))


cdef inline void batchnorm_inference(floating* Y,      # OUT (N, M), may be X
                                     floating* X,      # IN  (N, M)
                                     floating* gamma,  # IN  (M,) or NULL
                                     floating* beta,   # IN  (M,) or NULL
                                     floating* running_mean,  # IN (M,)
                                     floating* running_var,   # IN (M,)
                                     Py_ssize_t N, Py_ssize_t M, double eps) noexcept nogil:
    """Evaluation: Y = gamma (X - running_mean) / sqrt(running_var + eps) + beta."""
    cdef Py_ssize_t i, j
    cdef floating s
    for i in range(N):
        for j in range(M):
            s = <floating>(1 / sqrt(running_var[j] + eps))
            if gamma != NULL:
                Y[i * M + j] = gamma[j] * ((X[i * M + j] - running_mean[j]) * s) + beta[j]
            else:
                Y[i * M + j] = (X[i * M + j] - running_mean[j]) * s


cdef inline void batchnorm_backward(floating* D,       # INOUT (N, M): dJ/dY in, dJ/dX out
                                    floating* dgamma,  # OUT   (M,) or NULL (not affine)
                                    floating* dbeta,   # OUT   (M,) or NULL
                                    floating* sums,    # SCRATCH (2 M,)
                                    floating* xhat,    # IN    (N, M) from the forward pass
                                    floating* invstd,  # IN    (M,) from the forward pass
                                    floating* gamma,   # IN    (M,) or NULL
                                    Py_ssize_t N, Py_ssize_t M, bint input_gradient) noexcept nogil:
    """dbeta = sum_i D, dgamma = sum_i D xhat, and (with input_gradient)
    dX = gamma invstd / N (N D - dbeta - xhat dgamma)."""
    cdef Py_ssize_t i, j
    cdef floating* sum_d = sums
    cdef floating* sum_dx = sums + M
    cdef floating g
    for j in range(M):
        sum_d[j] = 0
        sum_dx[j] = 0
    for i in range(N):
        for j in range(M):
            sum_d[j] = sum_d[j] + D[i * M + j]
            sum_dx[j] = sum_dx[j] + D[i * M + j] * xhat[i * M + j]
    if dgamma != NULL:
        for j in range(M):
            dgamma[j] = sum_dx[j]
            dbeta[j] = sum_d[j]
    if not input_gradient:
        return
    for i in range(N):
        for j in range(M):
            g = invstd[j] / N if gamma == NULL else gamma[j] * invstd[j] / N
            D[i * M + j] = g * (N * D[i * M + j] - sum_d[j] - xhat[i * M + j] * sum_dx[j])
