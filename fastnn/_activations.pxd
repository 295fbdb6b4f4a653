# Design: activations as point functions, then loops over an (N, M) row-major matrix: a forward
# and a backward. Most activations take their derivative from the stored output A
# (activation_backward), so the engine runs them in place over Z and keeps one buffer per layer;
# those whose derivative needs Z (GELU, SiLU, softplus: needs_input) have their backward in
# activation_backward_input, and the engine keeps Z for them. `alpha` is the one parameter an
# activation may have (unused by those without one). An activation is added in four places: its
# code below, its forward and backward branches, and its entry in fastnn/registry.py.
# The loops index with Py_ssize_t: Python builds with -fwrapv, which stops gcc from vectorizing
# loops over a plain int.
from cython cimport floating
from libc.math cimport M_2_SQRTPI, M_SQRT1_2, erf, erff, exp, expf, expm1, expm1f, log1p, log1pf
from libc.math cimport tanh, tanhf

cdef enum Activation:
    IDENTITY = 0
    SIGMOID = 1
    RELU = 2
    TANH = 3
    SOFTMAX = 4
    LEAKY_RELU = 5
    ELU = 6
    GELU = 7            # exact: z Phi(z), with the normal distribution's Phi (erf)
    GELU_TANH = 8       # PyTorch's approximate="tanh"
    SILU = 9
    SOFTPLUS = 11       # PyTorch's Softplus(beta=1, threshold=20)
    EXP = 12            # an output only: the rate exp(z) of a log link (Poisson counts)

cdef extern from *:
    """
    /* GELU's tanh form: sqrt(2 / pi) and the cubic's coefficient; softplus is z above 20 */
    #define FASTNN_GELU_BETA (M_SQRT2 * M_2_SQRTPI * 0.5)
    #define FASTNN_GELU_KAPPA 0.044715
    #define FASTNN_SOFTPLUS_THRESHOLD 20.0
    """
    const double GELU_BETA "FASTNN_GELU_BETA"
    const double GELU_KAPPA "FASTNN_GELU_KAPPA"
    const double SOFTPLUS_THRESHOLD "FASTNN_SOFTPLUS_THRESHOLD"


cdef extern from "_exp.h" nogil:
    # exp and sigmoid over an array in loops vectorized per instruction set (see the header);
    # out may be x
    void fastnn_exp_double(double* out, const double* x, Py_ssize_t n)
    void fastnn_exp_float(float* out, const float* x, Py_ssize_t n)
    void fastnn_sigmoid_double(double* out, const double* z, Py_ssize_t n)
    void fastnn_sigmoid_float(float* out, const float* z, Py_ssize_t n)

cdef enum:
    # the values taken at a time by an activation whose formula needs exp(z) or sigmoid(z) among
    # other work: those into a buffer of this many on the stack, one vectorized call per chunk.
    # 256 bytes: with a larger frame gcc stopped inlining the forward pass into the step (a step
    # of the course notes' 1-2-2 network took ~3% longer), and 256 values were ~15% faster only
    CHUNK = 32
    # fewer values than this take the C library's exp one at a time: the vectorized loop's exp is
    # a longer chain of dependent operations, which a single value waits through (a step of the
    # course notes' 1-2-2 sigmoid network on one row: 100 ns against 78)
    VECTOR_MIN = 16


cdef inline bint needs_input(int act) noexcept nogil:
    """Whether the activation's derivative is computed from Z (activation_backward_input)."""
    return act == GELU or act == GELU_TANH or act == SILU or act == SOFTPLUS


cdef inline floating fexp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline void exp_array(floating* out,     # OUT (n,), may be x
                           floating* x,       # IN  (n,)
                           Py_ssize_t n) noexcept nogil:
    """out = exp(x) elementwise, within 1 ulp (fastnn/_exp.h; the C library's below VECTOR_MIN
    values)."""
    cdef Py_ssize_t i
    if n < VECTOR_MIN:
        for i in range(n):
            out[i] = fexp(x[i])
    elif floating is float:
        fastnn_exp_float(out, x, n)
    else:
        fastnn_exp_double(out, x, n)


cdef inline floating sigmoid(floating z) noexcept nogil:
    """1 / (1 + exp(-z)), taking exp of a non-positive number only, so it never overflows."""
    cdef floating e
    if z >= 0:
        e = fexp(-z)
        return 1 / (1 + e)
    e = fexp(z)
    return e / (1 + e)


cdef inline void sigmoid_array(floating* out,     # OUT (n,), may be z
                               floating* z,       # IN  (n,)
                               Py_ssize_t n) noexcept nogil:
    """out = sigmoid(z) elementwise (fastnn/_exp.h's loop from VECTOR_MIN values)."""
    cdef Py_ssize_t i
    if n < VECTOR_MIN:
        for i in range(n):
            out[i] = sigmoid(z[i])
    elif floating is float:
        fastnn_sigmoid_float(out, z, n)
    else:
        fastnn_sigmoid_double(out, z, n)


cdef inline floating ftanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating ferf(floating x) noexcept nogil:
    if floating is float:
        return erff(x)
    else:
        return erf(x)


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
    # the shifted rows first, so that one exp over the whole matrix is a vectorized loop
    for i in range(N):
        z = Z + i * M
        a = A + i * M
        zmax = row_max(z, M)
        for j in range(M):
            a[j] = z[j] - zmax
    exp_array(A, A, N * M)
    for i in range(N):
        a = A + i * M
        total = 0
        for j in range(M):
            total = total + a[j]
        for j in range(M):
            a[j] = a[j] / total


cdef inline void activation_forward(floating* A,        # OUT (N, M), may be Z
                                    floating* Z,        # IN  (N, M)
                                    Py_ssize_t N, Py_ssize_t M, int act,
                                    floating alpha) noexcept nogil:
    """A = f(Z) elementwise (softmax: along each row); alpha is the activation's parameter."""
    cdef Py_ssize_t i, j, c, start, size = N * M
    cdef floating s[CHUNK]
    if act == SOFTMAX:
        softmax_rows(A, Z, N, M)
    elif act == SIGMOID:
        sigmoid_array(A, Z, size)
    elif act == RELU:
        for i in range(size):
            A[i] = Z[i] if Z[i] > 0 else 0
    elif act == LEAKY_RELU:
        for i in range(size):
            A[i] = Z[i] if Z[i] > 0 else alpha * Z[i]
    elif act == TANH:
        for i in range(size):
            A[i] = ftanh(Z[i])
    elif act == ELU:
        for i in range(size):
            if Z[i] > 0:
                A[i] = Z[i]
            elif floating is float:
                A[i] = alpha * expm1f(Z[i])
            else:
                A[i] = alpha * expm1(Z[i])
    elif act == GELU:
        for i in range(size):
            A[i] = Z[i] * (<floating>0.5 * (1 + ferf(Z[i] * <floating>M_SQRT1_2)))
    elif act == GELU_TANH:
        for i in range(size):
            A[i] = <floating>0.5 * Z[i] * (1 + ftanh(<floating>GELU_BETA * (
                Z[i] + <floating>GELU_KAPPA * Z[i] * Z[i] * Z[i])))
    elif act == SILU:
        for c in range((size + CHUNK - 1) // CHUNK):
            start = c * CHUNK
            sigmoid_array(s, Z + start, min(CHUNK, size - start))
            for j in range(min(CHUNK, size - start)):
                i = start + j
                A[i] = Z[i] * s[j]
    elif act == EXP:
        # overflows to inf beyond z ~ 709 (88 in float32): the loss is then infinite and the
        # training step refused
        exp_array(A, Z, size)
    elif act == SOFTPLUS:
        for c in range((size + CHUNK - 1) // CHUNK):
            start = c * CHUNK
            exp_array(s, Z + start, min(CHUNK, size - start))
            for j in range(min(CHUNK, size - start)):
                i = start + j
                if Z[i] > SOFTPLUS_THRESHOLD:
                    A[i] = Z[i]
                elif floating is float:
                    A[i] = log1pf(s[j])
                else:
                    A[i] = log1p(s[j])
    elif A != Z:
        for i in range(size):
            A[i] = Z[i]


cdef inline void activation_backward(floating* D,       # INOUT (N, M): dJ/dA in, dJ/dZ out
                                     floating* A,       # IN    (N, M): f(Z) from the forward pass
                                     Py_ssize_t N, Py_ssize_t M, int act,
                                     floating alpha) noexcept nogil:
    """D = D * f'(Z), with f' from the output: a (1 - a), 1 - a^2, [a > 0],
    [a > 0] + alpha [a <= 0], exp's a; softmax's Jacobian."""
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
    elif act == ELU:
        # alpha > 0: a > 0 exactly when z > 0, and alpha exp(z) = a + alpha below
        for i in range(size):
            D[i] = D[i] if A[i] > 0 else D[i] * (A[i] + alpha)
    elif act == EXP:
        for i in range(size):
            D[i] = D[i] * A[i]
    elif act == SOFTMAX:
        # dz_j = a_j (d_j - sum_k d_k a_k)
        for i in range(N):
            dot = 0
            for j in range(M):
                dot = dot + D[i * M + j] * A[i * M + j]
            for j in range(M):
                D[i * M + j] = A[i * M + j] * (D[i * M + j] - dot)


cdef inline void activation_backward_input(floating* D,   # INOUT (N, M): dJ/dA in, dJ/dZ out
                                           floating* Z,   # IN    (N, M): the activation's input
                                           Py_ssize_t N, Py_ssize_t M, int act,
                                           floating alpha) noexcept nogil:
    """D = D * f'(Z) for the activations whose derivative needs Z (needs_input):
    GELU Phi(z) + z phi(z), its tanh form's, SiLU s (1 + z (1 - s)), softplus sigmoid(z)."""
    cdef Py_ssize_t i, j, c, start, size = N * M
    cdef floating z, t
    cdef floating s[CHUNK]
    if act == GELU:
        for i in range(size):
            z = Z[i]
            D[i] = D[i] * (<floating>0.5 * (1 + ferf(z * <floating>M_SQRT1_2))
                           + z * fexp(<floating>-0.5 * z * z)
                           * <floating>(M_2_SQRTPI * M_SQRT1_2 * 0.5))
    elif act == GELU_TANH:
        for i in range(size):
            z = Z[i]
            t = ftanh(<floating>GELU_BETA * (z + <floating>GELU_KAPPA * z * z * z))
            D[i] = D[i] * (<floating>0.5 * (1 + t) + <floating>0.5 * z * (1 - t * t)
                           * <floating>GELU_BETA * (1 + 3 * <floating>GELU_KAPPA * z * z))
    elif act == SILU:
        for c in range((size + CHUNK - 1) // CHUNK):
            start = c * CHUNK
            sigmoid_array(s, Z + start, min(CHUNK, size - start))
            for j in range(min(CHUNK, size - start)):
                i = start + j
                D[i] = D[i] * (s[j] * (1 + Z[i] * (1 - s[j])))
    elif act == SOFTPLUS:
        for c in range((size + CHUNK - 1) // CHUNK):
            start = c * CHUNK
            sigmoid_array(s, Z + start, min(CHUNK, size - start))
            for j in range(min(CHUNK, size - start)):
                i = start + j
                if Z[i] <= SOFTPLUS_THRESHOLD:
                    D[i] = D[i] * s[j]
