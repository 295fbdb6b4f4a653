# Design: the affine layer as a forward/backward pair over row-major matrices; all products go
# through fastnn._blas.gemm. Backward overwrites its outputs (no separate clearing pass is needed,
# since fastnn never accumulates gradients across calls).
from cython cimport floating
from libc.string cimport memcpy
from fastnn._blas cimport gemm

cdef enum:
    # copy_row copies rows of at least this many values by memcpy: an element loop checks the
    # two rows for overlap and copies two doubles at a time at best (the digits fit: 5
    # instructions a value of its 64-value rows against 0.4; the bias into 200 rows of 100,
    # 4.2 us against 2.8), but for a row of one or two values the call costs more than the loop
    # (10-15 ns a row more in a shuffled fit of the course notes' 1-2-2 network)
    MEMCPY_ROW = 8


cdef inline void copy_row(floating* dst,        # OUT (n,)
                          floating* src,        # IN  (n,)
                          Py_ssize_t n) noexcept nogil:
    """dst = src, n values that do not overlap."""
    cdef Py_ssize_t j
    if n >= MEMCPY_ROW:
        memcpy(dst, src, n * sizeof(floating))
    else:
        for j in range(n):
            dst[j] = src[j]


cdef inline void dense_forward(floating* Z,        # OUT (N, M)
                               floating* A,        # IN  (N, K) the layer's input
                               floating* W,        # IN  (K, M)
                               floating* b,        # IN  (M,), or NULL for no bias
                               Py_ssize_t N, Py_ssize_t K, Py_ssize_t M) noexcept nogil:
    """Z = A @ W + b."""
    cdef Py_ssize_t i
    if b == NULL:
        gemm(False, False, N, M, K, <floating>1, A, K, W, M, <floating>0, Z, M)
        return
    for i in range(N):
        copy_row(Z + i * M, b, M)
    gemm(False, False, N, M, K, <floating>1, A, K, W, M, <floating>1, Z, M)


cdef inline void dense_backward(floating* dA,      # OUT (N, K) dJ/dA, or NULL to skip it
                                floating* dW,      # OUT (K, M) dJ/dW
                                floating* db,      # OUT (M,)   dJ/db, or NULL for no bias
                                floating* D,       # IN  (N, M) dJ/dZ
                                floating* A,       # IN  (N, K) the layer's input
                                floating* W,       # IN  (K, M)
                                Py_ssize_t N, Py_ssize_t K, Py_ssize_t M) noexcept nogil:
    """dW = A^T @ D, db = sum of the rows of D, dA = D @ W^T."""
    cdef Py_ssize_t i, j
    gemm(True, False, K, M, N, <floating>1, A, K, D, M, <floating>0, dW, M)
    if db != NULL:
        for j in range(M):
            db[j] = 0
        for i in range(N):
            for j in range(M):
                db[j] = db[j] + D[i * M + j]
    if dA != NULL:
        gemm(False, True, N, K, M, <floating>1, D, M, W, M, <floating>0, dA, K)


cdef inline void dense_backward_descend(floating* dA,    # OUT   (N, K) dJ/dA, or NULL to skip it
                                        floating* W,     # INOUT (K, M)
                                        floating* b,     # INOUT (M,), or NULL for no bias
                                        floating* D,     # IN    (N, M) dJ/dZ
                                        floating* A,     # IN    (N, K) the layer's input
                                        Py_ssize_t N, Py_ssize_t K, Py_ssize_t M,
                                        floating lr, floating decay) noexcept nogil:
    """dense_backward fused with a plain gradient-descent step, for dJ/dW = A^T D + decay W:

    dA = D @ W^T (with W before the step), W = (1 - lr decay) W - lr A^T D, b -= lr sum of D's rows.
    The gradient is never stored: BLAS adds it into W, which saves a pass over all parameters.
    """
    cdef Py_ssize_t i, j
    if dA != NULL:
        gemm(False, True, N, K, M, <floating>1, D, M, W, M, <floating>0, dA, K)
    gemm(True, False, K, M, N, -lr, A, K, D, M, 1 - lr * decay, W, M)
    if b == NULL:
        return
    for i in range(N):
        for j in range(M):
            b[j] = b[j] - lr * D[i * M + j]
