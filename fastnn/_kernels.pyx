# Design: Python entry points to each kernel, one by one, so tests can hold every kernel and both
# of its float32/float64 specializations against a NumPy reference. Not part of the public API and
# not used by the network (which runs the kernels from fastnn._engine without the GIL). Arguments
# are C-contiguous typed memoryviews; the sizes are taken from them.
from cython cimport floating

from fastnn._blas cimport gemm as _gemm, gemm_reference as _gemm_reference
from fastnn._activations cimport (activation_forward as _activation_forward,
                                  activation_backward as _activation_backward)
from fastnn._dense cimport (dense_forward as _dense_forward, dense_backward as _dense_backward,
                            dense_backward_descend as _dense_backward_descend)
from fastnn._losses cimport loss_forward as _loss_forward, loss_backward as _loss_backward
from fastnn._updates cimport sgd_update as _sgd_update, adam_update as _adam_update


def gemm(bint trans_a, bint trans_b, floating alpha, floating[:, ::1] A, floating[:, ::1] B,
         floating beta, floating[:, ::1] C, bint reference=False):
    """C := alpha * op(A) @ op(B) + beta * C, by BLAS (or the plain loop when reference is set)."""
    cdef Py_ssize_t m = C.shape[0], n = C.shape[1]
    cdef Py_ssize_t k = A.shape[0] if trans_a else A.shape[1]
    if reference:
        _gemm_reference(trans_a, trans_b, m, n, k, alpha, &A[0, 0], A.shape[1], &B[0, 0],
                        B.shape[1], beta, &C[0, 0], n)
    else:
        _gemm(trans_a, trans_b, m, n, k, alpha, &A[0, 0], A.shape[1], &B[0, 0], B.shape[1],
              beta, &C[0, 0], n)


def activation_forward(floating[:, ::1] A, floating[:, ::1] Z, int act):
    """A = f(Z) (A may be Z)."""
    _activation_forward(&A[0, 0], &Z[0, 0], Z.shape[0], Z.shape[1], act)


def activation_backward(floating[:, ::1] D, floating[:, ::1] A, int act):
    """D = D * f'(Z), from the stored output A = f(Z)."""
    _activation_backward(&D[0, 0], &A[0, 0], A.shape[0], A.shape[1], act)


def dense_forward(floating[:, ::1] Z, floating[:, ::1] A, floating[:, ::1] W, floating[::1] b):
    """Z = A @ W + b."""
    _dense_forward(&Z[0, 0], &A[0, 0], &W[0, 0], &b[0], A.shape[0], A.shape[1], W.shape[1])


def dense_backward(floating[:, ::1] dA, floating[:, ::1] dW, floating[::1] db,
                   floating[:, ::1] D, floating[:, ::1] A, floating[:, ::1] W):
    """dW = A^T @ D, db = the column sums of D, dA = D @ W^T (skipped when dA is None)."""
    _dense_backward(&dA[0, 0] if dA is not None else NULL, &dW[0, 0], &db[0], &D[0, 0],
                    &A[0, 0], &W[0, 0], A.shape[0], A.shape[1], W.shape[1])


def dense_backward_descend(floating[:, ::1] dA, floating[:, ::1] W, floating[::1] b,
                           floating[:, ::1] D, floating[:, ::1] A, floating lr, floating decay):
    """dA = D @ W^T, then W = (1 - lr decay) W - lr A^T @ D, b -= lr (column sums of D)."""
    _dense_backward_descend(&dA[0, 0] if dA is not None else NULL, &W[0, 0], &b[0], &D[0, 0],
                            &A[0, 0], A.shape[0], A.shape[1], W.shape[1], lr, decay)


def loss_forward(floating[:, ::1] Z, floating[:, ::1] A, floating[:, ::1] Y, int out_act, int loss,
                 floating[::1] s=None):
    """sum_i s_i L_i over the rows (weights s default to ones)."""
    return _loss_forward(&Z[0, 0], &A[0, 0], &Y[0, 0], &s[0] if s is not None else NULL,
                         Z.shape[0], Z.shape[1], out_act, loss)


def loss_backward(floating[:, ::1] D, floating[:, ::1] A, floating[:, ::1] Y, int out_act,
                  int loss, floating scale, floating[::1] s=None):
    """D = dJ/dZ for J = scale * sum_i s_i L_i (weights s default to ones)."""
    _loss_backward(&D[0, 0], &A[0, 0], &Y[0, 0], &s[0] if s is not None else NULL, A.shape[0],
                   A.shape[1], out_act, loss, scale)


def sgd_update(floating[::1] P, floating[::1] G, floating[::1] buf, double lr, double momentum,
               bint nesterov):
    """One torch.optim.SGD step (no dampening, no weight decay)."""
    _sgd_update(&P[0], &G[0], &buf[0], P.shape[0], lr, momentum, nesterov)


def adam_update(floating[::1] P, floating[::1] G, floating[::1] m, floating[::1] v, double lr,
                double beta1, double beta2, double eps, long long t, bint eps_hat=False):
    """Adam step number t of torch.optim.Adam (with eps_hat, of Keras and scikit-learn)."""
    _adam_update(&P[0], &G[0], &m[0], &v[0], P.shape[0], lr, beta1, beta2, eps, t, eps_hat)
