# Design: activations as point functions, then a forward/backward pair of loops over an (N, M)
# row-major matrix. Every activation here takes its derivative from the stored output A, never
# from Z, so the engine runs it in place over Z and keeps one buffer per layer; `alpha` is the one
# parameter an activation may have (unused by those without one). An activation is added in four
# places: its code below, its forward and backward branches, and its entry in fastnn/registry.py.
# The loops index with Py_ssize_t: Python builds with -fwrapv, which stops gcc from vectorizing
# loops over a plain int.
from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf

cdef enum Activation:
    IDENTITY = 0
    SIGMOID = 1
    RELU = 2
    TANH = 3
    SOFTMAX = 4
    LEAKY_RELU = 5


cdef inline floating fexp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating sigmoid(floating z) noexcept nogil:
    """1 / (1 + exp(-z)), taking exp of a non-positive number only, so it never overflows."""
    cdef floating e
    if z >= 0:
        e = fexp(-z)
        return 1 / (1 + e)
    e = fexp(z)
    return e / (1 + e)


cdef inline floating row_max(floating* z, Py_ssize_t M) noexcept nogil:
    """max_j z[j] over the M values of one row (softmax shifts by it, so exp never overflows)."""
    cdef Py_ssize_t j
    cdef floating zmax = z[0]
    for j in range(1, M):
        if z[j] > zmax:
            zmax = z[j]
    return zmax


cdef inline void softmax_rows(floating* A, floating* Z, Py_ssize_t N, Py_ssize_t M) noexcept nogil:
    """A[i] = exp(Z[i] - max Z[i]) / sum_j exp(Z[i, j] - max Z[i]); A may be Z."""
    cdef Py_ssize_t i, j
    cdef floating zmax, total
    cdef floating* z
    cdef floating* a
    for i in range(N):
        z = Z + i * M
        a = A + i * M
        zmax = row_max(z, M)
        total = 0
        for j in range(M):
            a[j] = fexp(z[j] - zmax)
            total = total + a[j]
        for j in range(M):
            a[j] = a[j] / total


cdef inline void activation_forward(floating* A,        # OUT (N, M), may be Z
                                    floating* Z,        # IN  (N, M)
                                    Py_ssize_t N, Py_ssize_t M, int act,
                                    floating alpha) noexcept nogil:
    """A = f(Z) elementwise (softmax: along each row); alpha is the activation's parameter."""
    cdef Py_ssize_t i, size = N * M
    if act == SOFTMAX:
        softmax_rows(A, Z, N, M)
    elif act == SIGMOID:
        for i in range(size):
            A[i] = sigmoid(Z[i])
    elif act == RELU:
        for i in range(size):
            A[i] = Z[i] if Z[i] > 0 else 0
    elif act == LEAKY_RELU:
        for i in range(size):
            A[i] = Z[i] if Z[i] > 0 else alpha * Z[i]
    elif act == TANH:
        for i in range(size):
            if floating is float:
                A[i] = tanhf(Z[i])
            else:
                A[i] = tanh(Z[i])
    elif A != Z:
        for i in range(size):
            A[i] = Z[i]


cdef inline void activation_backward(floating* D,       # INOUT (N, M): dJ/dA in, dJ/dZ out
                                     floating* A,       # IN    (N, M): f(Z) from the forward pass
                                     Py_ssize_t N, Py_ssize_t M, int act,
                                     floating alpha) noexcept nogil:
    """D = D * f'(Z), with f' from the output: a (1 - a), 1 - a^2, [a > 0],
    [a > 0] + alpha [a <= 0]; softmax's Jacobian."""
    cdef Py_ssize_t i, j, size = N * M
    cdef floating dot
    if act == SIGMOID:
        for i in range(size):
            D[i] = D[i] * (A[i] * (1 - A[i]))
    elif act == RELU:
        for i in range(size):
            D[i] = D[i] if A[i] > 0 else 0
    elif act == LEAKY_RELU:
        # alpha >= 0, so a > 0 exactly when z > 0
        for i in range(size):
            D[i] = D[i] if A[i] > 0 else alpha * D[i]
    elif act == TANH:
        for i in range(size):
            D[i] = D[i] * (1 - A[i] * A[i])
    elif act == SOFTMAX:
        # dz_j = a_j (d_j - sum_k d_k a_k)
        for i in range(N):
            dot = 0
            for j in range(M):
                dot = dot + D[i * M + j] * A[i * M + j]
            for j in range(M):
                D[i * M + j] = A[i * M + j] * (D[i * M + j] - dot)
