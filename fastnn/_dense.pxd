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
    # columns summed at once by column_sums, each in its own accumulator
    SUM_BLOCK = 16


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


cdef inline void column_sums(floating* s,       # OUT (M,)
                             floating* D,       # IN  (N, M)
                             Py_ssize_t N, Py_ssize_t M) noexcept nogil:
    """s[j] = sum_i D[i, j], the rows added in order.

    SUM_BLOCK columns at a time, their sums held in registers over all the rows: a loop that adds
    each row into s stores every sum back once per row (200 x 100 doubles: 4.5 us against 1.9).
    """
    cdef floating acc[SUM_BLOCK]
    cdef Py_ssize_t i, j, start = 0
    while start + SUM_BLOCK <= M:
        for j in range(SUM_BLOCK):
            acc[j] = 0
        for i in range(N):
            for j in range(SUM_BLOCK):
                acc[j] = acc[j] + D[i * M + start + j]
        for j in range(SUM_BLOCK):
            s[start + j] = acc[j]
        start += SUM_BLOCK
    for j in range(start, M):
        s[j] = 0
    for i in range(N):
        for j in range(start, M):
            s[j] = s[j] + D[i * M + j]


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
                                Py_ssize_t N, Py_ssize_t K, Py_ssize_t M,
                                floating decay) noexcept nogil:
    """dW = A^T @ D + decay W (the L2 penalty's gradient), db = sum of the rows of D,
    dA = D @ W^T."""
    cdef Py_ssize_t i
    if decay == 0:
        gemm(True, False, K, M, N, <floating>1, A, K, D, M, <floating>0, dW, M)
    else:
        # decay W first, BLAS adding the product onto it: one pass over dW fewer than adding
        # decay W after, and none by BLAS to clear dW for beta = 0
        for i in range(K * M):
            dW[i] = decay * W[i]
        gemm(True, False, K, M, N, <floating>1, A, K, D, M, <floating>1, dW, M)
    if db != NULL:
        column_sums(db, D, N, M)
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
