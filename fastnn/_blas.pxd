# Design: the one place where fastnn multiplies matrices. Every product in the kernels goes through
# `gemm`, which takes row-major operands, hides the float/double split of BLAS, and runs tiny
# products in a plain loop because a BLAS call costs more than the arithmetic below a few hundred
# multiply-adds (measured: see bench/). Only scipy's BLAS is used: mixing it with numpy's OpenBLAS
# in one loop makes the two thread pools fight.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm

# op(A) @ op(B) with at most this many multiply-adds runs in the plain loop below.
cdef enum:
    SMALL_GEMM = 512


cdef inline void gemm_reference(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                                Py_ssize_t k, floating alpha, floating* a, Py_ssize_t lda,
                                floating* b, Py_ssize_t ldb, floating beta,
                                floating* c, Py_ssize_t ldc) noexcept nogil:
    """C := alpha * op(A) @ op(B) + beta * C by the definition; the same contract as `gemm`."""
    cdef Py_ssize_t i, j, p
    cdef floating s, x, y
    for i in range(m):
        for j in range(n):
            s = 0
            for p in range(k):
                x = a[p * lda + i] if trans_a else a[i * lda + p]
                y = b[j * ldb + p] if trans_b else b[p * ldb + j]
                s = s + x * y
            # beta == 0 overwrites C, as BLAS does, so garbage or NaN in C never leaks through.
            if beta == 0:
                c[i * ldc + j] = alpha * s
            else:
                c[i * ldc + j] = alpha * s + beta * c[i * ldc + j]


cdef inline void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                      floating alpha, floating* a, Py_ssize_t lda,   # IN op(A) is (m, k)
                      floating* b, Py_ssize_t ldb,                   # IN op(B) is (k, n)
                      floating beta, floating* c, Py_ssize_t ldc     # INOUT C is (m, n)
                      ) noexcept nogil:
    """C := alpha * op(A) @ op(B) + beta * C for row-major A, B, C (op is transpose or not)."""
    if m * n * k <= SMALL_GEMM:
        gemm_reference(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    # A row-major C is a column-major C^T = op(B)^T @ op(A)^T: swap the operands, keep the flags.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int M = <int>n, N = <int>m, K = <int>k
    cdef int LDA = <int>lda, LDB = <int>ldb, LDC = <int>ldc
    if floating is float:
        sgemm(&tb, &ta, &M, &N, &K, &alpha, b, &LDB, a, &LDA, &beta, c, &LDC)
    else:
        dgemm(&tb, &ta, &M, &N, &K, &alpha, b, &LDB, a, &LDA, &beta, c, &LDC)
