"""NumPy references of everything the registry names, computed in float64 by the textbook
definitions (not the kernels' shortcuts): the oracle of the kernel tests. tests/test_registry.py
fails when a registered activation, loss, layer kind or update rule has no entry here."""
import numpy as np
from scipy.special import erf

GELU_BETA = np.sqrt(2 / np.pi)
GELU_KAPPA = 0.044715


def _sigmoid(Z):
    return 1 / (1 + np.exp(-Z))


def _gelu_tanh(Z):
    return 0.5 * Z * (1 + np.tanh(GELU_BETA * (Z + GELU_KAPPA * Z ** 3)))


def _gelu_tanh_derivative(Z):
    t = np.tanh(GELU_BETA * (Z + GELU_KAPPA * Z ** 3))
    return 0.5 * (1 + t) + 0.5 * Z * (1 - t ** 2) * GELU_BETA * (1 + 3 * GELU_KAPPA * Z ** 2)


def _softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


# name: (f(Z, alpha), f'(Z, alpha) elementwise, or None for softmax's full Jacobian)
ACTIVATIONS = {
    "identity": (lambda Z, a: Z.copy(), lambda Z, a: np.ones_like(Z)),
    "sigmoid": (lambda Z, a: 1 / (1 + np.exp(-Z)), lambda Z, a: np.exp(-Z) / (1 + np.exp(-Z)) ** 2),
    "relu": (lambda Z, a: np.maximum(Z, 0), lambda Z, a: (Z > 0).astype(float)),
    "tanh": (lambda Z, a: np.tanh(Z), lambda Z, a: 1 / np.cosh(Z) ** 2),
    "softmax": (lambda Z, a: _softmax(Z), None),
    "leaky_relu": (lambda Z, a: np.where(Z > 0, Z, a * Z), lambda Z, a: np.where(Z > 0, 1.0, a)),
    "elu": (lambda Z, a: np.where(Z > 0, Z, a * np.expm1(np.minimum(Z, 0))),
            lambda Z, a: np.where(Z > 0, 1.0, a * np.exp(np.minimum(Z, 0)))),
    "gelu": (lambda Z, a: Z * 0.5 * (1 + erf(Z / np.sqrt(2))),
             lambda Z, a: 0.5 * (1 + erf(Z / np.sqrt(2))) + Z * np.exp(-Z ** 2 / 2)
             / np.sqrt(2 * np.pi)),
    "gelu_tanh": (lambda Z, a: _gelu_tanh(Z), lambda Z, a: _gelu_tanh_derivative(Z)),
    "silu": (lambda Z, a: Z * _sigmoid(Z),
             lambda Z, a: _sigmoid(Z) * (1 + Z * (1 - _sigmoid(Z)))),
    "softplus": (lambda Z, a: np.where(Z > 20, Z, np.log1p(np.exp(np.minimum(Z, 20)))),
                 lambda Z, a: np.where(Z > 20, 1.0, _sigmoid(Z))),
    "exp": (lambda Z, a: np.exp(Z), lambda Z, a: np.exp(Z)),
}


def activation(Z, name, alpha=0.0):
    """f(Z) in float64."""
    return ACTIVATIONS[name][0](np.asarray(Z, dtype=np.float64), alpha)


def chain(G, Z, name, alpha=0.0):
    """dJ/dZ from G = dJ/dA, A = f(Z): f'(Z) computed from Z, the full Jacobian for softmax."""
    Z = np.asarray(Z, dtype=np.float64)
    derivative = ACTIVATIONS[name][1]
    if derivative is not None:
        return G * derivative(Z, alpha)
    A = _softmax(Z)
    # J[n, i, j] = dA[n, j] / dZ[n, i] = A[n, j] (delta_ij - A[n, i])
    J = A[:, None, :] * (np.eye(Z.shape[1])[None] - A[:, :, None])
    return np.einsum("nij,nj->ni", J, G)


def _cross_entropy_factors(Y, output, weight, label_smoothing, pos_weight):
    """(F, G) with L = -sum_k [F_k log a_k + G_k log(1 - a_k)]: F = w q for softmax with class
    weights w (ones by default) and smoothed targets q = (1 - eps) y + eps / n_out, G = 0;
    F = p y and G = 1 - y for sigmoid with pos_weight p (ones by default)."""
    n_out = Y.shape[1]
    if output == "softmax":
        w = np.ones(n_out) if weight is None else np.asarray(weight, dtype=np.float64)
        return w * ((1 - label_smoothing) * Y + label_smoothing / n_out), np.zeros_like(Y)
    p = np.ones(n_out) if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
    return p * Y, 1 - Y


def _cross_entropy(A, Y, output, weight=None, label_smoothing=0.0, pos_weight=None):
    """L_i from the probabilities A, with the options of torch's CrossEntropyLoss (weight,
    label_smoothing) for softmax and BCEWithLogitsLoss (pos_weight) for sigmoid."""
    F, G = _cross_entropy_factors(Y, output, weight, label_smoothing, pos_weight)
    if output == "softmax":
        return -(F * np.log(A)).sum(axis=1)
    return -(F * np.log(A) + G * np.log(1 - A)).sum(axis=1)


def cross_entropy_gradient(A, Y, output, weight=None, label_smoothing=0.0, pos_weight=None):
    """dL_i/dA of the cross-entropy above, elementwise."""
    F, G = _cross_entropy_factors(Y, output, weight, label_smoothing, pos_weight)
    return -F / A + G / (1 - A)


def row_weights(Y, weight):
    """r_i = sum_k w_k y_ik: what the samples' losses are averaged by under class weights w
    (torch's w_{y_i} for one-hot rows)."""
    return (Y * np.asarray(weight, dtype=np.float64)).sum(axis=1)


# name: per-sample loss L(A, Y, output activation), summed over the outputs
LOSSES = {
    "squared_error": lambda A, Y, output: ((A - Y) ** 2).sum(axis=1),
    "cross_entropy": _cross_entropy,
    "absolute_error": lambda A, Y, output: np.abs(A - Y).sum(axis=1),
    # A is the rate exp(z) (exp output)
    "poisson": lambda A, Y, output: (A - Y * np.log(A)).sum(axis=1),
    "huber": lambda A, Y, output, delta=1.0: np.where(
        np.abs(A - Y) <= delta, 0.5 * (A - Y) ** 2, delta * (np.abs(A - Y) - 0.5 * delta)
    ).sum(axis=1),
}


def dropout(X, mask):
    """Inverted dropout with a mask of 0 and 1 / (1 - rate)."""
    return X * mask


def batchnorm(X, gamma, beta, eps):
    """Training-mode batch normalization: (y, xhat, mean, biased var)."""
    mean = X.mean(axis=0)
    var = ((X - mean) ** 2).mean(axis=0)
    xhat = (X - mean) / np.sqrt(var + eps)
    return gamma * xhat + beta, xhat, mean, var


def batchnorm_backward(dY, X, gamma, eps):
    """(dX, dgamma, dbeta) of batchnorm by the chain rule through mean and variance."""
    N = X.shape[0]
    mean = X.mean(axis=0)
    var = ((X - mean) ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    xhat = (X - mean) / std
    dxhat = dY * gamma
    dvar = (dxhat * (X - mean) * -0.5 * std ** -3).sum(axis=0)
    dmean = (-dxhat / std).sum(axis=0) + dvar * (-2 * (X - mean)).mean(axis=0)
    dX = dxhat / std + dvar * 2 * (X - mean) / N + dmean / N
    return dX, (dY * xhat).sum(axis=0), dY.sum(axis=0)


# layer kind: its forward reference
LAYERS = {
    "dense": lambda A, W, b: A @ W + b,
    "activation": activation,
    "dropout": dropout,
    "batch_norm": batchnorm,
}


def sgd(p, g, buf, lr, momentum, nesterov, weight_decay=0.0):
    """torch.optim.SGD's step: (p, buf)."""
    g = g + weight_decay * p
    buf = momentum * buf + g
    return p - lr * (g + momentum * buf if nesterov else buf), buf


def adam(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay=0.0):
    """torch.optim.Adam's step t: (p, m, v)."""
    g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def adamw(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay=0.01):
    """torch.optim.AdamW's step t: (p, m, v), the decay decoupled from the gradient."""
    return adam(p * (1 - lr * weight_decay), g, m, v, t, lr, beta1, beta2, eps)


def rmsprop(p, g, square_avg, buf, grad_avg, lr, alpha, eps, momentum=0.0, centered=False,
            weight_decay=0.0):
    """torch.optim.RMSprop's step: (p, square_avg, buf, grad_avg)."""
    g = g + weight_decay * p
    square_avg = alpha * square_avg + (1 - alpha) * g * g
    if centered:
        grad_avg = alpha * grad_avg + (1 - alpha) * g
        avg = np.sqrt(square_avg - grad_avg ** 2) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        buf = momentum * buf + g / avg
        return p - lr * buf, square_avg, buf, grad_avg
    return p - lr * g / avg, square_avg, buf, grad_avg


OPTIMIZERS = {"sgd": sgd, "adam": adam, "adamw": adamw, "rmsprop": rmsprop}
