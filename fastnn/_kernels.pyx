# Design: Python entry points to each kernel, one by one, so tests can hold every kernel and both
# of its float32/float64 specializations against a NumPy reference. Not part of the public API and
# not used by the network (which runs the kernels from fastnn._engine without the GIL). Arguments
# are C-contiguous typed memoryviews; the sizes are taken from them.
import numpy as np
from cython cimport floating

from fastnn._blas cimport gemm as _gemm, gemm_reference as _gemm_reference
from fastnn._activations cimport (activation_backward_input as _activation_backward_input,
                                  activation_forward as _activation_forward,
                                  activation_backward as _activation_backward,
                                  exp_array as _exp_array)
from fastnn._batchnorm cimport (batchnorm_forward as _batchnorm_forward,
                                batchnorm_inference as _batchnorm_inference,
                                batchnorm_running as _batchnorm_running,
                                batchnorm_backward as _batchnorm_backward)
from fastnn._dropout cimport (dropout_forward as _dropout_forward,
                              dropout_backward as _dropout_backward, uniform as _uniform)
from fastnn._dense cimport (dense_forward as _dense_forward, dense_backward as _dense_backward,
                            dense_backward_descend as _dense_backward_descend)
from fastnn._losses cimport loss_forward as _loss_forward, loss_backward as _loss_backward
from fastnn._updates cimport (sgd_update as _sgd_update, adam_update as _adam_update,
                              clip_grad_norm as _clip_grad_norm,
                              rmsprop_update as _rmsprop_update)


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


def exp_array(floating[::1] out, floating[::1] x):
    """out = exp(x) elementwise (out may be x)."""
    _exp_array(&out[0], &x[0], x.shape[0])


def activation_forward(floating[:, ::1] A, floating[:, ::1] Z, int act, floating alpha=0):
    """A = f(Z) (A may be Z); alpha is the activation's parameter."""
    _activation_forward(&A[0, 0], &Z[0, 0], Z.shape[0], Z.shape[1], act, alpha)


def activation_backward(floating[:, ::1] D, floating[:, ::1] A, int act, floating alpha=0):
    """D = D * f'(Z), from the stored output A = f(Z)."""
    _activation_backward(&D[0, 0], &A[0, 0], A.shape[0], A.shape[1], act, alpha)


def activation_backward_input(floating[:, ::1] D, floating[:, ::1] Z, int act, floating alpha=0):
    """D = D * f'(Z), from the activation's input Z (for those that need it)."""
    _activation_backward_input(&D[0, 0], &Z[0, 0], Z.shape[0], Z.shape[1], act, alpha)


def uniform(unsigned long long key, unsigned long long counter, Py_ssize_t n):
    """The dropout generator's numbers counter, ..., counter + n - 1 of the stream key."""
    cdef Py_ssize_t i
    out = np.empty(n)
    cdef double[::1] u = out
    for i in range(n):
        u[i] = _uniform(key, counter + <unsigned long long>i)
    return out


def dropout_forward(floating[:, ::1] A, floating[:, ::1] mask, floating[:, ::1] X, double rate,
                    unsigned long long key, unsigned long long counter):
    """A = X * mask, mask 0 or 1 / (1 - rate) by the generator's numbers from counter on."""
    _dropout_forward(&A[0, 0], &mask[0, 0], &X[0, 0], X.shape[0] * X.shape[1], rate, key, counter)


def dropout_backward(floating[:, ::1] D, floating[:, ::1] mask):
    """D = D * mask."""
    _dropout_backward(&D[0, 0], &mask[0, 0], D.shape[0] * D.shape[1])


def batchnorm_forward(floating[:, ::1] Y, floating[:, ::1] xhat, floating[::1] mean,
                      floating[::1] var, floating[::1] invstd, floating[:, ::1] X,
                      floating[::1] gamma, floating[::1] beta, double eps):
    """Training: batch mean and variance of X's columns, xhat, Y = gamma xhat + beta (gamma and
    beta None: not affine)."""
    _batchnorm_forward(&Y[0, 0], &xhat[0, 0], &mean[0], &var[0], &invstd[0], &X[0, 0],
                       &gamma[0] if gamma is not None else NULL,
                       &beta[0] if beta is not None else NULL, X.shape[0], X.shape[1], eps)


def batchnorm_running(floating[::1] running_mean, floating[::1] running_var, floating[::1] mean,
                      floating[::1] var, Py_ssize_t N, double momentum):
    """Move the running statistics towards a batch's of N rows."""
    _batchnorm_running(&running_mean[0], &running_var[0], &mean[0], &var[0], N, mean.shape[0],
                       momentum)


def batchnorm_inference(floating[:, ::1] Y, floating[:, ::1] X, floating[::1] gamma,
                        floating[::1] beta, floating[::1] running_mean,
                        floating[::1] running_var, double eps):
    """Evaluation: Y = gamma (X - running_mean) / sqrt(running_var + eps) + beta."""
    _batchnorm_inference(&Y[0, 0], &X[0, 0], &gamma[0] if gamma is not None else NULL,
                         &beta[0] if beta is not None else NULL, &running_mean[0],
                         &running_var[0], X.shape[0], X.shape[1], eps)


def batchnorm_backward(floating[:, ::1] D, floating[::1] dgamma, floating[::1] dbeta,
                       floating[:, ::1] xhat, floating[::1] invstd, floating[::1] gamma,
                       bint input_gradient=True):
    """dgamma, dbeta (if not None) and, with input_gradient, D = dJ/dX from D = dJ/dY."""
    cdef Py_ssize_t M = D.shape[1]
    sums = np.empty(2 * M, dtype=np.float64 if floating is double else np.float32)
    cdef floating[::1] scratch = sums
    _batchnorm_backward(&D[0, 0], &dgamma[0] if dgamma is not None else NULL,
                        &dbeta[0] if dbeta is not None else NULL, &scratch[0], &xhat[0, 0],
                        &invstd[0], &gamma[0] if gamma is not None else NULL, D.shape[0], M,
                        input_gradient)


def dense_forward(floating[:, ::1] Z, floating[:, ::1] A, floating[:, ::1] W, floating[::1] b):
    """Z = A @ W + b."""
    _dense_forward(&Z[0, 0], &A[0, 0], &W[0, 0], &b[0] if b is not None else NULL, A.shape[0],
                   A.shape[1], W.shape[1])


def dense_backward(floating[:, ::1] dA, floating[:, ::1] dW, floating[::1] db,
                   floating[:, ::1] D, floating[:, ::1] A, floating[:, ::1] W, floating decay=0):
    """dW = A^T @ D + decay W, db = the column sums of D, dA = D @ W^T (skipped when dA is
    None)."""
    _dense_backward(&dA[0, 0] if dA is not None else NULL, &dW[0, 0],
                    &db[0] if db is not None else NULL, &D[0, 0],
                    &A[0, 0], &W[0, 0], A.shape[0], A.shape[1], W.shape[1], decay)


def dense_backward_descend(floating[:, ::1] dA, floating[:, ::1] W, floating[::1] b,
                           floating[:, ::1] D, floating[:, ::1] A, floating lr, floating decay):
    """dA = D @ W^T, then W = (1 - lr decay) W - lr A^T @ D, b -= lr (column sums of D)."""
    _dense_backward_descend(&dA[0, 0] if dA is not None else NULL, &W[0, 0],
                            &b[0] if b is not None else NULL, &D[0, 0],
                            &A[0, 0], A.shape[0], A.shape[1], W.shape[1], lr, decay)


def loss_forward(floating[:, ::1] Z, floating[:, ::1] A, floating[:, ::1] Y, int out_act, int loss,
                 floating[::1] s=None, double param=0, const double[::1] w=None):
    """sum_i s_i L_i over the rows (weights s default to ones; param: the loss' parameter; w:
    its weights per output, or None)."""
    return _loss_forward(&Z[0, 0], &A[0, 0], &Y[0, 0], &s[0] if s is not None else NULL,
                         <double*>&w[0] if w is not None else NULL, Z.shape[0], Z.shape[1],
                         out_act, loss, param)


def loss_backward(floating[:, ::1] D, floating[:, ::1] A, floating[:, ::1] Y, int out_act,
                  int loss, floating scale, floating[::1] s=None, double param=0,
                  const double[::1] w=None):
    """D = dJ/dZ for J = scale * sum_i s_i L_i (weights s default to ones; param: the loss'
    parameter; w: its weights per output, or None)."""
    _loss_backward(&D[0, 0], &A[0, 0], &Y[0, 0], &s[0] if s is not None else NULL,
                   <double*>&w[0] if w is not None else NULL, A.shape[0], A.shape[1], out_act,
                   loss, scale, param)


def sgd_update(floating[::1] P, floating[::1] G, floating[::1] buf, double lr, double momentum,
               bint nesterov, double weight_decay=0):
    """One torch.optim.SGD step (no dampening)."""
    _sgd_update(&P[0], &G[0], &buf[0], P.shape[0], lr, momentum, nesterov, weight_decay)


def adam_update(floating[::1] P, floating[::1] G, floating[::1] m, floating[::1] v, double lr,
                double beta1, double beta2, double eps, long long t, bint eps_hat=False,
                double weight_decay=0, bint decoupled=False):
    """Adam step number t of torch.optim.Adam (with eps_hat, of Keras and scikit-learn);
    decoupled, of torch.optim.AdamW."""
    _adam_update(&P[0], &G[0], &m[0], &v[0], P.shape[0], lr, beta1, beta2, eps, t, eps_hat,
                 weight_decay, decoupled)


def rmsprop_update(floating[::1] P, floating[::1] G, floating[::1] sq, floating[::1] buf,
                   floating[::1] ga, double lr, double alpha, double eps, double momentum=0,
                   bint centered=False, double weight_decay=0):
    """One torch.optim.RMSprop step."""
    _rmsprop_update(&P[0], &G[0], &sq[0], &buf[0], &ga[0], P.shape[0], lr, alpha, eps, momentum,
                    centered, weight_decay)


def clip_grad_norm(floating[::1] G, double max_norm):
    """G *= min(max_norm / (||G||_2 + 1e-6), 1) in place (torch's clip_grad_norm_); returns
    ||G||_2 before."""
    return _clip_grad_norm(&G[0], G.shape[0], max_norm)
