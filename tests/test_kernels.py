"""Every compiled kernel, through its entry point in fastnn._kernels, in both its float32 and
float64 specializations (the losses with and without sample weights), against a plain NumPy
reference computed in float64 (textbook formulas and explicit Jacobians, not the kernels' own
shortcuts); and the numerics promised by the design: sigmoid, softmax and the log-losses stay
finite and exact for huge inputs."""
import numpy as np
import pytest
from references import (
    LOSSES as LOSS_REFERENCES,
    OPTIMIZERS as STEPS,
    activation,
    chain,
    cross_entropy_gradient,
    sgd as sgd_reference,
)

from fastnn import _kernels, registry
from fastnn._engine import ACTIVATION_CODES as ACTIVATIONS, LOSS_CODES as LOSSES

from helpers import CTYPE, DTYPES, TOL

SE, CE = LOSSES["squared_error"], LOSSES["cross_entropy"]


def kernel(name, dtype):
    """The float or double specialization of a kernel, so a dtype mix-up fails loudly."""
    return getattr(_kernels, name)[CTYPE[dtype]]


def assert_sums_close(actual, expected, magnitude, dtype):
    """actual == expected up to the rounding of sums whose terms have absolute sums `magnitude`:
    cancellation can make a sum small, and its rounding error is bounded by its terms, not by it."""
    tol = TOL[dtype]["rtol"] * magnitude + TOL[dtype]["atol"]
    np.testing.assert_array_less(np.abs(actual.astype(np.float64) - expected), tol)


# (m, n, k) with m n k <= 512 multiply-adds run in the plain loop, above it in BLAS.
GEMM_SHAPES = [(3, 4, 5), (8, 8, 8), (1, 7, 3), (9, 11, 7), (33, 17, 29), (64, 1, 40)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m, n, k", GEMM_SHAPES)
@pytest.mark.parametrize("reference", [False, True])
def test_gemm_matches_numpy(dtype, trans_a, trans_b, m, n, k, reference):
    rng = np.random.default_rng(m * 100 + n * 10 + k)
    A = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    C = rng.normal(size=(m, n)).astype(dtype)
    opA = A.astype(np.float64).T if trans_a else A.astype(np.float64)
    opB = B.astype(np.float64).T if trans_b else B.astype(np.float64)
    expected = 0.75 * opA @ opB - 0.5 * C.astype(np.float64)
    magnitude = 0.75 * np.abs(opA) @ np.abs(opB) + 0.5 * np.abs(C.astype(np.float64))
    kernel("gemm", dtype)(trans_a, trans_b, 0.75, A, B, -0.5, C, reference)
    assert_sums_close(C, expected, magnitude, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n, k", [(3, 4, 5), (33, 17, 29)])
@pytest.mark.parametrize("reference", [False, True])
def test_gemm_with_beta_zero_overwrites_nan(dtype, m, n, k, reference):
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
    C = np.full((m, n), np.nan, dtype=dtype)
    kernel("gemm", dtype)(False, False, 1.0, A, B, 0.0, C, reference)
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    assert_sums_close(C, A64 @ B64, np.abs(A64) @ np.abs(B64), dtype)


# exp over arrays (fastnn/_exp.h): its error bound in ulps of the correctly rounded result (float's
# exp is the double's, rounded once), and the range of arguments whose result is finite and not 0
# (where overflow and underflow start)
EXP_ULPS = {np.float32: 0.501, np.float64: 1.0}
# copies of a short list of arguments that make an array long enough for the vectorized loop (16
# values or more, VECTOR_MIN in fastnn/_activations.pxd; below, the C library's exp)
EXP_COPIES = 2
EXP_RANGE = {np.float32: (-103.98, 88.72), np.float64: (-745.2, 709.78)}


def exp_reference(x):
    """exp(x) in more precision than x's dtype: float64 for float32, long double for float64 (on
    a platform whose long double is a double, np.exp's own error adds up to 1 ulp)."""
    if x.dtype == np.float32:
        return np.exp(x.astype(np.float64)), 0.0
    wide = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant
    return np.exp(x.astype(np.longdouble)), 0.0 if wide else 1.0


def ulps(got, reference, dtype):
    """|got - reference| in units of the spacing of dtype at the reference rounded to dtype (the
    smallest subnormal's for the subnormals)."""
    spacing = np.spacing(np.abs(reference.astype(dtype))).astype(reference.dtype)
    return np.abs(got.astype(reference.dtype) - reference) / spacing


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_array_is_within_an_ulp_over_its_whole_range(dtype):
    low, high = EXP_RANGE[dtype]
    # a dense sweep (steps of ~3e-4) over every exponent the results take, subnormals included,
    # and a denser one over [-1, 1], where most arguments of softmax and sigmoid fall
    x = np.concatenate([np.linspace(low, high, 5_000_001), np.linspace(-1, 1, 1_000_001)])
    x = x.astype(dtype)
    got = np.empty_like(x)
    kernel("exp_array", dtype)(got, x)
    reference, slack = exp_reference(x)
    error = ulps(got, reference, dtype)
    assert error.max() <= EXP_ULPS[dtype] + slack, x[error.argmax()]
    x[::2] = np.nan
    kernel("exp_array", dtype)(x, x)    # in place
    np.testing.assert_array_equal(x[1::2], got[1::2])
    assert np.all(np.isnan(x[::2]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_array_edge_cases(dtype):
    info = np.finfo(dtype)
    log_max = np.log(info.max.astype(np.float64))           # exp overflows beyond it
    log_tiny = np.log(info.smallest_subnormal.astype(np.float64))
    # (x, exp(x)) exactly; below ln of half the smallest subnormal, exp rounds to 0
    exact = [(0.0, 1.0), (-0.0, 1.0), (np.inf, np.inf), (-np.inf, 0.0), (1e30, np.inf),
             (-1e30, 0.0), (info.max, np.inf), (-info.max, 0.0), (1000.0, np.inf),
             (-1000.0, 0.0), (log_tiny - 0.7, 0.0), (np.nan, np.nan), (-np.nan, np.nan)]
    x, expected = np.tile(np.array(exact, dtype=dtype).T, EXP_COPIES)
    got = np.empty_like(x)
    kernel("exp_array", dtype)(got, x)
    np.testing.assert_array_equal(got, expected)
    assert not np.signbit(got[~np.isnan(got)]).any()    # +0, not -0, below the range
    for one, value in zip(x[:len(exact), None], expected):  # one at a time: the C library's exp
        kernel("exp_array", dtype)(one, one)
        np.testing.assert_array_equal(one, [value])
    # either side of overflow, of the smallest normal result and of the smallest subnormal; tiny
    # arguments, and either side of +-ln(2)/2, where the reduction's k changes
    near = [np.nextafter(log_max, -np.inf), log_max * (1 + 1e-6), np.log(info.tiny) * 0.999,
            np.log(info.tiny) * 1.001, log_tiny + 0.01, log_tiny - 0.01, 1e-300, -1e-300, 1e-20,
            np.log(2) / 2 * (1 - 1e-9), np.log(2) / 2 * (1 + 1e-9), -np.log(2) / 2 * (1 + 1e-9)]
    x = np.tile(np.array(near, dtype=dtype), EXP_COPIES)
    got = np.empty_like(x)
    kernel("exp_array", dtype)(got, x)
    reference, slack = exp_reference(x)
    with np.errstate(over="ignore"):
        finite = np.isfinite(reference.astype(dtype))
    assert ulps(got[finite], reference[finite], dtype).max() <= EXP_ULPS[dtype] + slack
    assert np.all(np.isinf(got[~finite]))


# a small matrix, and one of several chunks of the activations computed a chunk at a time
ACTIVATION_SHAPES = [(7, 5), (61, 13)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("shape", ACTIVATION_SHAPES)
def test_activation_forward_matches_definition(dtype, act, in_place, shape):
    Z = np.random.default_rng(1).normal(scale=3, size=shape).astype(dtype)
    alpha = registry.ACTIVATIONS[act].default   # the parameter, for those that have one
    expected = activation(Z, act, alpha)
    A = Z if in_place else np.full_like(Z, np.nan)
    kernel("activation_forward", dtype)(A, Z, ACTIVATIONS[act], alpha)
    np.testing.assert_allclose(A, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("shape", ACTIVATION_SHAPES)
def test_activation_backward_matches_derivative_from_z(dtype, act, shape):
    rng = np.random.default_rng(2)
    Z = rng.normal(scale=2, size=shape)
    G = rng.normal(size=shape)
    alpha = registry.ACTIVATIONS[act].default
    D = G.astype(dtype)
    if registry.ACTIVATIONS[act].derivative == "input":
        Z = Z.astype(dtype)
        kernel("activation_backward_input", dtype)(D, Z, ACTIVATIONS[act], alpha)
    else:
        A = activation(Z, act, alpha).astype(dtype)
        kernel("activation_backward", dtype)(D, A, ACTIVATIONS[act], alpha)
    np.testing.assert_allclose(D, chain(G, Z, act, alpha), **TOL[dtype])


# (N, K, M): a tiny layer (plain loops) and one large enough for BLAS in every product.
DENSE_SHAPES = [(3, 4, 2), (40, 30, 20)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N, K, M", DENSE_SHAPES)
def test_dense_forward_matches_numpy(dtype, N, K, M):
    rng = np.random.default_rng(3)
    A, W, b = (rng.normal(size=s).astype(dtype) for s in ((N, K), (K, M), (M,)))
    Z = np.full((N, M), np.nan, dtype=dtype)
    kernel("dense_forward", dtype)(Z, A, W, b)
    A64, W64, b64 = (x.astype(np.float64) for x in (A, W, b))
    assert_sums_close(Z, A64 @ W64 + b64, np.abs(A64) @ np.abs(W64) + np.abs(b64), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N, K, M", DENSE_SHAPES)
@pytest.mark.parametrize("with_dA", [True, False])
@pytest.mark.parametrize("decay", [0.0, 0.3])
def test_dense_backward_matches_numpy(dtype, N, K, M, with_dA, decay):
    rng = np.random.default_rng(4)
    D, A, W = (rng.normal(size=s).astype(dtype) for s in ((N, M), (N, K), (K, M)))
    dW = np.full((K, M), np.nan, dtype=dtype)
    db = np.full(M, np.nan, dtype=dtype)
    dA = np.full((N, K), np.nan, dtype=dtype) if with_dA else None
    kernel("dense_backward", dtype)(dA, dW, db, D, A, W, decay)
    D64, A64, W64 = (x.astype(np.float64) for x in (D, A, W))
    assert_sums_close(dW, A64.T @ D64 + decay * W64, np.abs(A64.T) @ np.abs(D64)
                      + decay * np.abs(W64), dtype)
    assert_sums_close(db, D64.sum(axis=0), np.abs(D64).sum(axis=0), dtype)
    if with_dA:
        assert_sums_close(dA, D64 @ W64.T, np.abs(D64) @ np.abs(W64.T), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N, K, M", DENSE_SHAPES)
@pytest.mark.parametrize("with_dA", [True, False])
def test_dense_backward_descend_matches_a_gradient_step(dtype, N, K, M, with_dA):
    rng = np.random.default_rng(5)
    D, A, W, b = (rng.normal(size=s).astype(dtype) for s in ((N, M), (N, K), (K, M), (M,)))
    lr, decay = 0.3, 0.05
    W0, b0 = W.astype(np.float64), b.astype(np.float64)
    dA = np.full((N, K), np.nan, dtype=dtype) if with_dA else None
    kernel("dense_backward_descend", dtype)(dA, W, b, D, A, dtype(lr), dtype(decay))
    D64, A64 = D.astype(np.float64), A.astype(np.float64)
    assert_sums_close(W, (1 - lr * decay) * W0 - lr * A64.T @ D64,
                      np.abs(W0) + lr * np.abs(A64.T) @ np.abs(D64), dtype)
    assert_sums_close(b, b0 - lr * D64.sum(axis=0), np.abs(b0) + lr * np.abs(D64).sum(axis=0),
                      dtype)
    if with_dA:
        # D W^T with W before the step
        assert_sums_close(dA, D64 @ W0.T, np.abs(D64) @ np.abs(W0.T), dtype)


def loss_targets(rng, kind, shape):
    """Targets for each case of the loss tests."""
    if kind == "real":
        return rng.normal(size=shape)
    if kind == "counts":
        return rng.poisson(2.0, size=shape).astype(np.float64)
    if kind == "onehot":
        return np.eye(shape[1])[rng.integers(shape[1], size=shape[0])]
    # probabilities in [0, 1]; as rows of a softmax target their sums are not 1
    return rng.uniform(size=shape)


# (output activation, loss, targets)
LOSS_CASES = [("identity", "squared_error", "real"), ("sigmoid", "squared_error", "unit"),
              ("softmax", "squared_error", "unit"), ("softmax", "cross_entropy", "onehot"),
              ("softmax", "cross_entropy", "unit"), ("sigmoid", "cross_entropy", "unit"),
              ("identity", "absolute_error", "real"), ("sigmoid", "absolute_error", "unit"),
              ("softmax", "absolute_error", "unit"), ("identity", "huber", "real"),
              ("sigmoid", "huber", "unit"), ("softmax", "huber", "unit"),
              ("exp", "poisson", "counts"), ("exp", "squared_error", "counts"),
              ("exp", "absolute_error", "counts"), ("exp", "huber", "counts")]
# Huber's delta in the kernel tests: logits of scale 2 put differences on both sides of it
DELTA = 0.7


def loss_param(loss):
    """The kernels' parameter of a loss in these tests: Huber's delta, else 0 (for cross-entropy
    the parameter is the label smoothing, tested below)."""
    return DELTA if loss == "huber" else 0.0


def per_sample_losses(A, Y, out_act, loss):
    """L_i by the textbook definitions (cross-entropy from the probabilities)."""
    if loss == "squared_error":
        return np.sum((A - Y) ** 2, axis=1)
    if loss == "absolute_error":
        return np.sum(np.abs(A - Y), axis=1)
    if loss == "huber":
        d = np.abs(A - Y)
        return np.sum(np.where(d <= DELTA, d ** 2 / 2, DELTA * (d - DELTA / 2)), axis=1)
    if loss == "poisson":
        # A is the rate exp(z)
        return np.sum(A - Y * np.log(A), axis=1)
    if out_act == "softmax":
        return -np.sum(Y * np.log(A), axis=1)
    return -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A), axis=1)


def sample_weights(rng, weighted, n, dtype):
    """Sample weights s in [0, 2] with one zero, or None (the kernels then weigh rows by 1)."""
    if not weighted:
        return None
    s = rng.uniform(0, 2, size=n)
    s[1] = 0
    return s.astype(dtype)


def loss_gradient_wrt_output(A, Y, out_act, loss):
    """dL/dA of the textbook per-sample loss."""
    if loss == "squared_error":
        return 2 * (A - Y)
    if loss == "absolute_error":
        return np.sign(A - Y)
    if loss == "huber":
        return np.clip(A - Y, -DELTA, DELTA)
    if loss == "poisson":
        return 1 - Y / A
    if out_act == "softmax":
        return -Y / A
    return -(Y / A - (1 - Y) / (1 - A))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_act, loss, targets", LOSS_CASES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_loss_forward_matches_definition(dtype, out_act, loss, targets, weighted):
    rng = np.random.default_rng(5)
    Z = rng.normal(scale=2, size=(9, 4)).astype(dtype)
    A = activation(Z, out_act).astype(dtype)
    Y = loss_targets(rng, targets, Z.shape).astype(dtype)
    s = sample_weights(rng, weighted, 9, dtype)
    # the losses of differences read the stored outputs A; cross-entropy and Poisson the logits Z
    # (Poisson A too: its exp(z))
    reads_a = loss in ("squared_error", "absolute_error", "huber")
    seen = A.astype(np.float64) if reads_a else activation(Z, out_act)
    losses = per_sample_losses(seen, Y.astype(np.float64), out_act, loss)
    expected = np.sum(losses if s is None else s.astype(np.float64) * losses)
    got = kernel("loss_forward", dtype)(Z, A, Y, ACTIVATIONS[out_act], LOSSES[loss], s,
                                        loss_param(loss))
    assert got == pytest.approx(expected, rel=TOL[dtype]["rtol"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_act, loss, targets", LOSS_CASES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_loss_backward_matches_chain_rule(dtype, out_act, loss, targets, weighted):
    rng = np.random.default_rng(6)
    Z = rng.normal(scale=2, size=(9, 4))
    A = activation(Z, out_act)
    Y = loss_targets(rng, targets, Z.shape).astype(dtype).astype(np.float64)
    s = sample_weights(rng, weighted, 9, dtype)
    scale = 1 / 9
    G = loss_gradient_wrt_output(A, Y, out_act, loss)
    if s is not None:
        G = s.astype(np.float64)[:, None] * G
    expected = scale * chain(G, Z, out_act)
    D = np.full(Z.shape, np.nan, dtype=dtype)
    kernel("loss_backward", dtype)(D, A.astype(dtype), Y.astype(dtype), ACTIVATIONS[out_act],
                                   LOSSES[loss], scale, s, loss_param(loss))
    np.testing.assert_allclose(D, expected, **TOL[dtype])


# (output activation, targets, loss_options) of the weighted forms of cross-entropy; a zero
# weight and a one-hot row of its class among them
WEIGHTED_CE_CASES = [
    ("softmax", "onehot", {"weight": [0.5, 2.0, 0.0, 1.5]}),
    ("softmax", "onehot", {"label_smoothing": 0.2}),
    ("softmax", "onehot", {"weight": [0.5, 2.0, 0.0, 1.5], "label_smoothing": 0.3}),
    ("softmax", "unit", {"weight": [1.5, 0.25, 3.0, 1.0], "label_smoothing": 0.1}),
    ("softmax", "unit", {"label_smoothing": 1.0}),
    ("sigmoid", "unit", {"pos_weight": [3.0, 0.5, 1.0, 0.0]}),
    ("sigmoid", "onehot", {"pos_weight": [2.0, 2.0, 2.0, 2.0]}),
]
CE_CASE_IDS = [f"{out}-{targets}-{'-'.join(options)}" for out, targets, options in
               WEIGHTED_CE_CASES]


def kernel_options(options):
    """The kernels' (param, w) for loss_options: the label smoothing, and the class weights or
    pos_weight as float64 (None without)."""
    weights = options.get("weight", options.get("pos_weight"))
    return (options.get("label_smoothing", 0.0),
            None if weights is None else np.array(weights, dtype=np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_act, targets, options", WEIGHTED_CE_CASES, ids=CE_CASE_IDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_weighted_cross_entropy_forward_matches_definition(dtype, out_act, targets, options,
                                                           weighted):
    rng = np.random.default_rng(9)
    Z = rng.normal(scale=2, size=(9, 4)).astype(dtype)
    A = activation(Z, out_act).astype(dtype)
    Y = loss_targets(rng, targets, Z.shape).astype(dtype)
    s = sample_weights(rng, weighted, 9, dtype)
    losses = LOSS_REFERENCES["cross_entropy"](activation(Z, out_act), Y.astype(np.float64),
                                              out_act, **options)
    expected = np.sum(losses if s is None else s.astype(np.float64) * losses)
    param, w = kernel_options(options)
    got = kernel("loss_forward", dtype)(Z, A, Y, ACTIVATIONS[out_act], CE, s, param, w)
    assert got == pytest.approx(expected, rel=TOL[dtype]["rtol"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_act, targets, options", WEIGHTED_CE_CASES, ids=CE_CASE_IDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_weighted_cross_entropy_backward_matches_chain_rule(dtype, out_act, targets, options,
                                                            weighted):
    rng = np.random.default_rng(10)
    Z = rng.normal(scale=2, size=(9, 4))
    A = activation(Z, out_act)
    Y = loss_targets(rng, targets, Z.shape).astype(dtype).astype(np.float64)
    s = sample_weights(rng, weighted, 9, dtype)
    G = cross_entropy_gradient(A, Y, out_act, **options)
    if s is not None:
        G = s.astype(np.float64)[:, None] * G
    expected = chain(G, Z, out_act) / 9
    D = np.full(Z.shape, np.nan, dtype=dtype)
    param, w = kernel_options(options)
    kernel("loss_backward", dtype)(D, A.astype(dtype), Y.astype(dtype), ACTIVATIONS[out_act], CE,
                                   1 / 9, s, param, w)
    np.testing.assert_allclose(D, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.8, True)])
def test_sgd_update_follows_torch_rule_over_steps(dtype, momentum, nesterov):
    rng = np.random.default_rng(7)
    n, lr = 11, 0.05
    P = rng.normal(size=n).astype(dtype)
    buf = np.zeros(n, dtype=dtype)
    p_ref, buf_ref = P.astype(np.float64), np.zeros(n)
    for step in range(5):
        G = rng.normal(size=n).astype(dtype)
        g = G.astype(np.float64)
        kernel("sgd_update", dtype)(P, G, buf, lr, momentum, nesterov)
        if momentum == 0:
            p_ref = p_ref - lr * g
        else:
            buf_ref = g if step == 0 else momentum * buf_ref + g
            p_ref = p_ref - lr * (g + momentum * buf_ref if nesterov else buf_ref)
            np.testing.assert_allclose(buf, buf_ref, **TOL[dtype])
        np.testing.assert_allclose(P, p_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.8, True)])
def test_sgd_update_with_weight_decay_follows_torch_rule_over_steps(dtype, momentum, nesterov):
    rng = np.random.default_rng(17)
    n, lr, weight_decay = 11, 0.05, 0.3
    P = rng.normal(size=n).astype(dtype)
    buf = np.zeros(n, dtype=dtype)
    p_ref, buf_ref = P.astype(np.float64), np.zeros(n)
    for _ in range(5):
        G = rng.normal(size=n).astype(dtype)
        kept = G.copy()
        kernel("sgd_update", dtype)(P, G, buf, lr, momentum, nesterov, weight_decay)
        p_ref, buf_ref = sgd_reference(p_ref, G.astype(np.float64), buf_ref, lr, momentum,
                                       nesterov, weight_decay)
        np.testing.assert_array_equal(G, kept)
        np.testing.assert_allclose(P, p_ref, **TOL[dtype])
        if momentum:
            np.testing.assert_allclose(buf, buf_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta1, beta2, eps", [(0.9, 0.999, 1e-8), (0.3, 0.5, 1e-3),
                                               (0.0, 0.0, 0.0)])
@pytest.mark.parametrize("eps_hat", [False, True])
def test_adam_update_follows_textbook_over_steps(dtype, beta1, beta2, eps, eps_hat):
    rng = np.random.default_rng(8)
    n, lr = 13, 0.01
    P = rng.normal(size=n).astype(dtype)
    m, v = np.zeros(n, dtype=dtype), np.zeros(n, dtype=dtype)
    p_ref, m_ref, v_ref = P.astype(np.float64), np.zeros(n), np.zeros(n)
    for t in range(1, 7):
        G = rng.normal(size=n).astype(dtype)
        g = G.astype(np.float64)
        kernel("adam_update", dtype)(P, G, m, v, lr, beta1, beta2, eps, t, eps_hat)
        m_ref = beta1 * m_ref + (1 - beta1) * g
        v_ref = beta2 * v_ref + (1 - beta2) * g * g
        m_hat, v_hat = m_ref / (1 - beta1 ** t), v_ref / (1 - beta2 ** t)
        if eps_hat:  # eps added before the bias correction: Kingma and Ba's epsilon-hat
            p_ref = p_ref - lr * m_hat / (np.sqrt(v_hat) + eps / np.sqrt(1 - beta2 ** t))
        else:
            p_ref = p_ref - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(m, m_ref, **TOL[dtype])
        np.testing.assert_allclose(v, v_ref, **TOL[dtype])
        np.testing.assert_allclose(P, p_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind, decoupled", [("adam", False), ("adamw", True)])
@pytest.mark.parametrize("beta1, beta2, eps", [(0.9, 0.999, 1e-8), (0.3, 0.5, 1e-3)])
def test_adam_update_with_weight_decay_follows_torch_over_steps(dtype, kind, decoupled, beta1,
                                                                 beta2, eps):
    rng = np.random.default_rng(18)
    n, lr, weight_decay = 13, 0.01, 0.7
    P = rng.normal(size=n).astype(dtype)
    m, v = np.zeros(n, dtype=dtype), np.zeros(n, dtype=dtype)
    p_ref, m_ref, v_ref = P.astype(np.float64), np.zeros(n), np.zeros(n)
    for t in range(1, 7):
        G = rng.normal(size=n).astype(dtype)
        kept = G.copy()
        kernel("adam_update", dtype)(P, G, m, v, lr, beta1, beta2, eps, t, False, weight_decay,
                                     decoupled)
        p_ref, m_ref, v_ref = STEPS[kind](p_ref, G.astype(np.float64), m_ref, v_ref, t, lr, beta1,
                                          beta2, eps, weight_decay)
        np.testing.assert_array_equal(G, kept)
        np.testing.assert_allclose(m, m_ref, **TOL[dtype])
        np.testing.assert_allclose(v, v_ref, **TOL[dtype])
        np.testing.assert_allclose(P, p_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha, momentum, centered, weight_decay", [
    (0.99, 0.0, False, 0.0), (0.9, 0.8, False, 0.0), (0.6, 0.0, True, 0.0),
    (0.3, 0.9, True, 0.2)])
def test_rmsprop_update_follows_torch_over_steps(dtype, alpha, momentum, centered, weight_decay):
    rng = np.random.default_rng(19)
    n, lr, eps = 13, 0.01, 1e-6
    P = rng.normal(size=n).astype(dtype)
    sq, buf, ga = (np.zeros(n, dtype=dtype) for _ in range(3))
    p_ref, sq_ref, buf_ref, ga_ref = P.astype(np.float64), np.zeros(n), np.zeros(n), np.zeros(n)
    for _ in range(6):
        G = rng.normal(size=n).astype(dtype)
        kept = G.copy()
        kernel("rmsprop_update", dtype)(P, G, sq, buf, ga, lr, alpha, eps, momentum, centered,
                                        weight_decay)
        p_ref, sq_ref, buf_ref, ga_ref = STEPS["rmsprop"](
            p_ref, G.astype(np.float64), sq_ref, buf_ref, ga_ref, lr, alpha, eps, momentum,
            centered, weight_decay)
        np.testing.assert_array_equal(G, kept)
        for actual, expected in ((sq, sq_ref), (buf, buf_ref), (ga, ga_ref), (P, p_ref)):
            np.testing.assert_allclose(actual, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_of_huge_inputs_is_exactly_zero_or_one(dtype):
    Z = np.array([[-1000.0, 1000.0, -1e30, 1e30]], dtype=dtype)
    A = np.empty_like(Z)
    with np.errstate(all="raise"):
        kernel("activation_forward", dtype)(A, Z, ACTIVATIONS["sigmoid"])
    np.testing.assert_array_equal(A, [[0.0, 1.0, 0.0, 1.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_huge_rows_is_finite_and_correct(dtype):
    Z = np.array([[1e4, 1e4 - 1, -1e4], [-1e4, -1e4, -1e4], [2e4, 0.0, 2e4]], dtype=dtype)
    A = np.empty_like(Z)
    kernel("activation_forward", dtype)(A, Z, ACTIVATIONS["softmax"])
    e = np.exp(-1.0)
    expected = [[1 / (1 + e), e / (1 + e), 0.0], [1 / 3] * 3, [0.5, 0.0, 0.5]]
    assert np.all(np.isfinite(A))
    np.testing.assert_allclose(A, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_of_huge_logits_is_finite_and_correct(dtype):
    loss_forward, loss_backward = kernel("loss_forward", dtype), kernel("loss_backward", dtype)
    softmax, sigmoid = ACTIVATIONS["softmax"], ACTIVATIONS["sigmoid"]
    Z = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]], dtype=dtype)
    A = np.empty_like(Z)
    kernel("activation_forward", dtype)(A, Z, softmax)
    # the right class at 1e4 costs nothing; the class at 0 costs 1e4 nats
    Y = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)
    assert loss_forward(Z, A, Y, softmax, CE) == 1e4
    D = np.empty_like(Z)
    loss_backward(D, A, Y, softmax, CE, 1.0)
    np.testing.assert_array_equal(D, [[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]])

    Z = np.array([[1e4, -1e4, 1e4, -1e4]], dtype=dtype)
    A = np.empty_like(Z)
    kernel("activation_forward", dtype)(A, Z, sigmoid)
    Y = np.array([[1.0, 0.0, 0.0, 1.0]], dtype=dtype)
    assert loss_forward(Z, A, Y, sigmoid, CE) == 2e4
    D = np.empty_like(Z)
    loss_backward(D, A, Y, sigmoid, CE, 1.0)
    np.testing.assert_array_equal(D, [[0.0, 0.0, 1.0, -1.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_weighted_cross_entropy_of_huge_logits_is_finite_and_correct(dtype):
    loss_forward, loss_backward = kernel("loss_forward", dtype), kernel("loss_backward", dtype)
    softmax, sigmoid = ACTIVATIONS["softmax"], ACTIVATIONS["sigmoid"]
    Z = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]], dtype=dtype)
    A = np.empty_like(Z)
    kernel("activation_forward", dtype)(A, Z, softmax)
    Y = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)
    w = np.array([2.0, 3.0, 0.5])
    # row 2 costs 3 * 1e4 nats; smoothing puts eps/3 of each row's target on every class,
    # whose -log p are 0, 1e4 and 2e4
    assert loss_forward(Z, A, Y, softmax, CE, None, 0.0, w) == 3e4
    eps = 0.3
    expected = (1 - eps) * 3e4 + eps / 3 * 2 * (3.0 * 1e4 + 0.5 * 2e4)
    assert loss_forward(Z, A, Y, softmax, CE, None, eps, w) == pytest.approx(expected, rel=1e-6)
    D = np.empty_like(Z)
    loss_backward(D, A, Y, softmax, CE, 1.0, None, 0.0, w)
    np.testing.assert_array_equal(D, [[0.0, 0.0, 0.0], [3.0, -3.0, 0.0]])

    Z = np.array([[1e4, -1e4, 1e4, -1e4]], dtype=dtype)
    A = np.empty_like(Z)
    kernel("activation_forward", dtype)(A, Z, sigmoid)
    Y = np.array([[1.0, 0.0, 0.0, 1.0]], dtype=dtype)
    # the positive at -1e4 costs pos_weight * 1e4, the negative at 1e4 costs 1e4
    w = np.array([5.0, 5.0, 5.0, 5.0])
    assert loss_forward(Z, A, Y, sigmoid, CE, None, 0.0, w) == 6e4
    D = np.empty_like(Z)
    loss_backward(D, A, Y, sigmoid, CE, 1.0, None, 0.0, w)
    np.testing.assert_array_equal(D, [[0.0, 0.0, 1.0, -5.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_output_overflows_to_an_infinite_poisson_loss_not_nan(dtype):
    Z = np.array([[1e4, -1e4, 0.0]], dtype=dtype)
    A = np.empty_like(Z)
    kernel("activation_forward", dtype)(A, Z, ACTIVATIONS["exp"])
    np.testing.assert_array_equal(A, [[np.inf, 0.0, 1.0]])
    Y = np.array([[3.0, 0.0, 2.0]], dtype=dtype)
    assert kernel("loss_forward", dtype)(Z, A, Y, ACTIVATIONS["exp"], LOSSES["poisson"]) == np.inf
