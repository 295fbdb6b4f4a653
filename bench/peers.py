"""The peers of one training step, each built for a `cases.Case`.

A builder returns ``(run, steps)``: calling ``run()`` does ``steps`` training steps of the case
(forward, squared-error loss, backward, SGD update). Each imports its library only when it is
built, so a process that times one peer loads nothing of the others (NumPy's and SciPy's BLAS
pools, and torch's, fight when they share a process; see DESIGN.md "Performance rules").
"""
import numpy as np
import scipy.linalg.blas

from cases import batches

# fit runs this many batches per call, at least; more for tiny cases so a call lasts long enough
# to time and the per-call overhead of fit is spread thin.
FIT_MIN_ROWS = 16_384
FIT_MIN_BATCHES = 16


def _fastnn_net(case):
    import fastnn

    return fastnn, fastnn.MLP(case.sizes, activation=case.activation,
                              output_activation="identity", loss="squared_error",
                              dtype=case.dtype, seed=0)


def fastnn_step(case):
    """One Python-level ``MLP.train_step`` per step."""
    fastnn, net = _fastnn_net(case)
    X, Y = batches(case, 1)
    optimizer = fastnn.SGD(lr=case.lr)

    def run():
        net.train_step(X, Y, optimizer)

    return run, 1


def fit_batches(case):
    """The number of batches one timed ``fit`` call runs for ``case``."""
    return max(FIT_MIN_BATCHES, FIT_MIN_ROWS // case.batch)


def fastnn_fit(case):
    """Many batches in one ``fit(epochs=1, shuffle=False)`` call: the per-step cost inside fit."""
    fastnn, net = _fastnn_net(case)
    n_batches = fit_batches(case)
    X, Y = batches(case, n_batches)
    optimizer = fastnn.SGD(lr=case.lr)

    def run():
        net.fit(X, Y, optimizer=optimizer, epochs=1, batch_size=case.batch, shuffle=False)

    return run, n_batches


def _numpy_activation(name):
    """f and f' (taken from the output a = f(z)) as in the course notes."""
    if name == "sigmoid":
        return (lambda z: 1 / (1 + np.exp(-z))), (lambda a: a * (1 - a))
    return (lambda z: np.maximum(z, 0)), (lambda a: (a > 0).astype(a.dtype))


def numpy_step(case):
    """The network written in plain NumPy: forward, backward by the chain rule, SGD."""
    net = _fastnn_net(case)[1]
    Ws = [W.copy() for W in net.weights]
    bs = [b.copy() for b in net.biases]
    f, df = _numpy_activation(case.activation)
    X, Y = batches(case, 1)
    lr, L = case.lr, len(Ws)

    def run():
        As = [X]
        for l in range(L):
            Z = As[-1] @ Ws[l] + bs[l]
            As.append(Z if l == L - 1 else f(Z))
        D = 2 * (As[-1] - Y) / X.shape[0]
        for l in range(L - 1, -1, -1):
            dW, db = As[l].T @ D, D.sum(axis=0)
            if l > 0:
                D = (D @ Ws[l].T) * df(As[l])
            Ws[l] -= lr * dW
            bs[l] -= lr * db

    return run, 1


def torch_step(case):
    """``nn.Sequential`` of ``Linear`` + activation, ``torch.optim.SGD``, MSELoss * n_out."""
    import torch

    torch.set_num_threads(2)
    dtype = getattr(torch, case.dtype)
    layers = []
    for l, (n_in, n_out) in enumerate(zip(case.sizes[:-1], case.sizes[1:])):
        layers.append(torch.nn.Linear(n_in, n_out, dtype=dtype))
        if l < len(case.sizes) - 2:
            layers.append(torch.nn.Sigmoid() if case.activation == "sigmoid" else torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=case.lr)
    loss_fn = torch.nn.MSELoss()
    X, Y = (torch.from_numpy(a) for a in batches(case, 1))
    n_out = case.sizes[-1]

    def run():
        optimizer.zero_grad()
        loss = loss_fn(model(X), Y) * n_out
        loss.backward()
        optimizer.step()

    return run, 1


def sklearn_step(case):
    """``MLPRegressor.partial_fit`` on the batch: one SGD step without momentum or L2."""
    import warnings

    from sklearn.neural_network import MLPRegressor

    model = MLPRegressor(hidden_layer_sizes=case.sizes[1:-1],
                         activation="logistic" if case.activation == "sigmoid" else "relu",
                         solver="sgd", learning_rate_init=case.lr, momentum=0.0,
                         nesterovs_momentum=False, alpha=0.0, batch_size=case.batch,
                         shuffle=False, random_state=0)
    X, Y = batches(case, 1)
    warnings.filterwarnings("ignore", module="sklearn")

    def run():
        model.partial_fit(X, Y)

    return run, 1


def step_products(case):
    """The operands of the products of one step, as (a, b, out) for ``out = a @ b``:
    ``A_{l-1} @ W_l`` and ``A_{l-1}^T @ D_l`` for every layer, ``D_l @ W_l^T`` for all but the
    first.
    """
    rng = np.random.default_rng(0)
    N, sizes, L = case.batch, case.sizes, len(case.sizes) - 1

    def matrix(*shape):
        return rng.standard_normal(shape).astype(case.dtype)

    A = [matrix(N, n) for n in sizes]           # A[0] = X, A[l] the output of layer l
    D = [matrix(N, n) for n in sizes]           # D[l] = dJ/dZ_l
    W = [matrix(sizes[l], sizes[l + 1]) for l in range(L)]
    dW = [np.empty_like(w) for w in W]
    # the transposed views are made once, so the loop times the products alone
    products = [(A[l], W[l], A[l + 1]) for l in range(L)]
    products += [(A[l].T, D[l + 1], dW[l]) for l in range(L)]
    products += [(D[l + 1], W[l].T, D[l]) for l in range(1, L)]
    return products


def gemm_step(case):
    """The GEMM bound: NumPy's matmul into preallocated outputs, only the products of a step."""
    products, matmul = step_products(case), np.matmul

    def run():
        for a, b, out in products:
            matmul(a, b, out=out)

    return run, 1


def scipy_gemm_step(case):
    """The same products through SciPy's BLAS, the library fastnn's kernels call (NumPy bundles
    another OpenBLAS build). Each row-major ``out = a @ b`` is the column-major
    ``out^T = b^T a^T``: the transposed views are Fortran-ordered, so nothing is copied and
    ``overwrite_c`` writes into ``out``."""
    gemm = scipy.linalg.blas.sgemm if case.dtype == "float32" else scipy.linalg.blas.dgemm
    calls = []
    for a, b, out in step_products(case):
        # a Fortran-ordered operand goes as it is; a C-ordered one as its transpose, flagged
        b_t, trans_a = (b.T, 0) if b.T.flags.f_contiguous else (b, 1)
        a_t, trans_b = (a.T, 0) if a.T.flags.f_contiguous else (a, 1)
        calls.append((b_t, a_t, out.T, trans_a, trans_b))

    def run():
        for x, y, c, trans_x, trans_y in calls:
            gemm(1.0, x, y, 0.0, c, trans_x, trans_y, 1)

    return run, 1


STEP_PEERS = {
    "fastnn-step": fastnn_step,
    "fastnn-fit": fastnn_fit,
    "numpy": numpy_step,
    "torch": torch_step,
    "sklearn": sklearn_step,
    "gemm": gemm_step,
    "gemm-scipy": scipy_gemm_step,
}
GROWTH_PEERS = ("fastnn-fit", "torch", "gemm")
