"""The layer kinds beyond dense and activation: the dropout and batch-normalization kernels against
NumPy references in both precisions, the dropout generator's statistics and reproducibility, the
training/evaluation semantics of networks built from a layer plan, and their round trips through
save, load and pickle. PyTorch parity of such networks is in test_torch_parity.py."""
import pickle

import numpy as np
import pytest
from references import batchnorm, batchnorm_backward

import fastnn
from fastnn import _kernels
from fastnn.layers import Activation, BatchNorm, Dense, Dropout

from helpers import CTYPE, DTYPES, TOL


def kernel(name, dtype):
    return getattr(_kernels, name)[CTYPE[dtype]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.9])
def test_dropout_kernels_match_numpy(dtype, rate):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(13, 7)).astype(dtype)
    A, mask = np.full_like(X, np.nan), np.full_like(X, np.nan)
    kernel("dropout_forward", dtype)(A, mask, X, rate, 12345, 678)
    u = _kernels.uniform(12345, 678, X.size).reshape(X.shape)
    expected_mask = (u >= rate) / (1 - rate)
    np.testing.assert_allclose(mask, expected_mask, **TOL[dtype])
    np.testing.assert_allclose(A, X.astype(np.float64) * expected_mask, **TOL[dtype])
    D = rng.normal(size=X.shape).astype(dtype)
    expected = D.astype(np.float64) * expected_mask
    kernel("dropout_backward", dtype)(D, mask)
    np.testing.assert_allclose(D, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_kernels_match_numpy(dtype, affine):
    rng = np.random.default_rng(1)
    N, M, eps, momentum = 11, 5, 1e-3, 0.3
    X = (rng.normal(size=(N, M)) * 3 + 10).astype(dtype)
    gamma = rng.normal(size=M).astype(dtype) if affine else None
    beta = rng.normal(size=M).astype(dtype) if affine else None
    g64 = gamma.astype(np.float64) if affine else np.ones(M)
    b64 = beta.astype(np.float64) if affine else np.zeros(M)
    Y, xhat = np.full_like(X, np.nan), np.full_like(X, np.nan)
    mean, var, invstd = (np.full(M, np.nan, dtype=dtype) for _ in range(3))
    kernel("batchnorm_forward", dtype)(Y, xhat, mean, var, invstd, X, gamma, beta, eps)
    y_ref, xhat_ref, mean_ref, var_ref = batchnorm(X.astype(np.float64), g64, b64, eps)
    for got, expected in ((Y, y_ref), (xhat, xhat_ref), (mean, mean_ref), (var, var_ref),
                          (invstd, 1 / np.sqrt(var_ref + eps))):
        np.testing.assert_allclose(got, expected, **TOL[dtype])
    running_mean, running_var = rng.normal(size=M).astype(dtype), rng.uniform(1, 2, M).astype(dtype)
    expected_mean = (1 - momentum) * running_mean + momentum * mean_ref
    expected_var = (1 - momentum) * running_var + momentum * var_ref * N / (N - 1)
    kernel("batchnorm_running", dtype)(running_mean, running_var, mean, var, N, momentum)
    np.testing.assert_allclose(running_mean, expected_mean, **TOL[dtype])
    np.testing.assert_allclose(running_var, expected_var, **TOL[dtype])
    inference = np.full_like(X, np.nan)
    kernel("batchnorm_inference", dtype)(inference, X, gamma, beta, running_mean, running_var, eps)
    expected = (g64 * (X - running_mean.astype(np.float64))
                / np.sqrt(running_var.astype(np.float64) + eps) + b64)
    np.testing.assert_allclose(inference, expected, **TOL[dtype])
    dY = rng.normal(size=(N, M))
    dX_ref, dgamma_ref, dbeta_ref = batchnorm_backward(dY, X.astype(np.float64), g64, eps)
    D = dY.astype(dtype)
    dgamma, dbeta = (np.full(M, np.nan, dtype=dtype) if affine else None for _ in range(2))
    kernel("batchnorm_backward", dtype)(D, dgamma, dbeta, xhat, invstd, gamma)
    scale = np.abs(dY).sum(axis=0)   # the size of the sums that cancel in dX
    assert np.all(np.abs(D - dX_ref) <= TOL[dtype]["rtol"] * 10 * scale + TOL[dtype]["atol"])
    if affine:
        np.testing.assert_allclose(dgamma, dgamma_ref, **TOL[dtype])
        np.testing.assert_allclose(dbeta, dbeta_ref, **TOL[dtype])


def test_dropout_generator_has_the_rate_and_the_scale():
    rate, n = 0.3, 1_000_000
    u = _kernels.uniform(7, 0, n)
    assert np.all((u >= 0) & (u < 1))
    dropped = np.mean(u < rate)
    assert abs(dropped - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
    # the numbers are uniform: every tenth of [0, 1) holds a tenth of them (chi-square, 9 dof)
    counts = np.bincount((u * 10).astype(int), minlength=10)
    assert ((counts - n / 10) ** 2 / (n / 10)).sum() < 40
    # consecutive numbers are not correlated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / np.sqrt(n)
    X = np.ones((1000, 1000))
    A, mask = np.empty_like(X), np.empty_like(X)
    _kernels.dropout_forward[CTYPE[np.float64]](A, mask, X, rate, 99, 0)
    assert set(np.unique(A)) == {0.0, 1 / (1 - rate)}
    assert A.mean() == pytest.approx(1.0, abs=5 * np.sqrt(rate / (1 - rate) / X.size))


def test_dropout_streams_differ_by_key_and_counter():
    a, b, c = _kernels.uniform(1, 0, 100), _kernels.uniform(2, 0, 100), _kernels.uniform(1, 50, 100)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a[50:], c[:50])


def dropout_net(seed=0, rate=0.5, dtype="float64"):
    return fastnn.MLP([5, 16, 8, 3], "relu", "softmax", "cross_entropy", dropout=rate,
                      dtype=dtype, seed=seed)


def data(seed=0, n=40, n_in=5, n_out=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_in)), rng.integers(n_out, size=n)


def test_dropout_is_the_identity_in_evaluation():
    X, y = data()
    net = dropout_net()
    plain = fastnn.MLP([5, 16, 8, 3], "relu", "softmax", "cross_entropy")
    plain.params[:] = net.params
    np.testing.assert_array_equal(net.forward(X), plain.forward(X))
    assert net.loss(X, y) == plain.loss(X, y)
    J, dW, _ = net.gradients(X, y)
    J_plain, dW_plain, _ = plain.gradients(X, y)
    assert J != J_plain   # training mode drops units


def test_gradients_change_nothing_and_train_step_moves_generator_and_statistics():
    X, y = data()
    net = fastnn.MLP([5, 16, 3], "relu", "softmax", "cross_entropy", dropout=0.2,
                     batch_norm=True, seed=3)
    state = (net.params.copy(), net.buffers.copy(), net.random_state)
    first, second = net.gradients(X, y), net.gradients(X, y)
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1][0], second[1][0])
    assert net.random_state == state[2]
    np.testing.assert_array_equal(net.buffers, state[1])
    net.train_step(X, y, fastnn.SGD(lr=0.1))
    assert net.random_state == (state[2][0], state[2][1] + len(X) * 16)
    assert not np.array_equal(net.buffers, state[1])
    assert not np.array_equal(net.params, state[0])


def test_fit_with_dropout_is_reproducible_from_its_seed():
    X, y = data()
    nets = [dropout_net(seed=1) for _ in range(3)]
    for net, seed in zip(nets, (5, 5, 6)):
        net.fit(X, y, epochs=3, batch_size=8, seed=seed)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)
    assert not np.array_equal(nets[0].params, nets[2].params)


def test_batch_norm_needs_two_rows_per_training_batch():
    X, y = data(n=21)
    net = fastnn.MLP([5, 4, 3], "relu", "softmax", "cross_entropy", batch_norm=True)
    with pytest.raises(ValueError, match="at least 2 rows"):
        net.train_step(X[:1], y[:1], fastnn.SGD())
    with pytest.raises(ValueError, match="last batch of 1"):
        net.fit(X, y, batch_size=10)
    with pytest.raises(ValueError, match="at least 2 rows"):
        net.fit(X, y, batch_size=1)
    net.fit(X, y, batch_size=7, epochs=2)
    assert net.forward(X[:1]).shape == (1, 3)   # evaluation takes any number of rows


def plan_network(dtype="float64", seed=0):
    layers = [Dense(9), BatchNorm(momentum=0.2, eps=1e-3), Activation("tanh"), Dropout(0.3),
              Dense(6), BatchNorm(affine=False), Activation("sigmoid"), Dense(2),
              Activation("identity")]
    return fastnn.MLP.from_layers(4, layers, loss="squared_error", l2=0.01, dtype=dtype,
                                  seed=seed)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_plan_networks_round_trip_through_save_load_and_pickle(tmp_path, dtype):
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(30, 4)), rng.normal(size=(30, 2))
    net = plan_network(dtype)
    net.fit(X, Y, epochs=2, batch_size=8, seed=0)
    net.save(tmp_path / "net.npz")
    copies = (fastnn.load(tmp_path / "net.npz"), pickle.loads(pickle.dumps(net)))
    for copy in copies:
        assert copy.layers == net.layers
        np.testing.assert_array_equal(copy.params, net.params)
        np.testing.assert_array_equal(copy.buffers, net.buffers)
        assert copy.random_state == net.random_state
        np.testing.assert_array_equal(copy.forward(X), net.forward(X))
    # the next training step (dropout masks, batch statistics) is the same bit for bit
    losses = [each.train_step(X, Y, fastnn.SGD(lr=0.01)) for each in (net, *copies)]
    assert losses[0] == losses[1] == losses[2]
    for copy in copies:
        np.testing.assert_array_equal(copy.params, net.params)
        np.testing.assert_array_equal(copy.buffers, net.buffers)


def test_named_parameters_and_buffers_are_views_of_the_flat_vectors():
    net = plan_network()
    names = net.named_parameters()
    assert list(names) == ["0.W", "0.b", "1.gamma", "1.beta", "4.W", "4.b", "7.W", "7.b"]
    assert sum(v.size for v in names.values()) == net.n_params
    assert list(net.named_buffers()) == ["1.running_mean", "1.running_var", "5.running_mean",
                                         "5.running_var"]
    names["1.gamma"][:] = 2.5
    assert np.count_nonzero(net.params == 2.5) == 9
    np.testing.assert_array_equal(net.named_buffers()["5.running_var"], np.ones(6))


@pytest.mark.parametrize("layers, message", [
    ([Dense(3)], "end with a Dense layer and the output Activation"),
    ([Dense(3), Activation("relu")], "unknown output_activation"),
    ([Dense(3), Activation("softmax"), Dense(2), Activation("identity")], "not a hidden one"),
    ([BatchNorm(), Dense(2), Activation("identity")], "first layer with parameters must be Dense"),
    ([Dense(3), Dropout(0.1), Activation("identity")], "end with a Dense layer"),
    ("dense", "sequence of fastnn.layers.Layer"),
    ([Dense(3), "relu", Dense(2), Activation("identity")], "fastnn.layers.Layer objects"),
])
def test_bad_layer_plans_are_refused(layers, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fastnn.MLP.from_layers(4, layers)


@pytest.mark.parametrize("make, error", [
    (lambda: Dropout(1.0), ValueError), (lambda: Dropout(-0.1), ValueError),
    (lambda: Dropout("0.5"), TypeError), (lambda: BatchNorm(eps=0), ValueError),
    (lambda: BatchNorm(momentum=1.5), ValueError), (lambda: BatchNorm(affine=1), TypeError),
    (lambda: Dense(0), ValueError), (lambda: Activation("swish"), ValueError),
    (lambda: Activation("relu", alpha=0.1), TypeError),
    (lambda: fastnn.MLP([3, 2], dropout=1.0), ValueError),
    (lambda: fastnn.MLP([3, 2], batch_norm="yes"), TypeError),
])
def test_bad_layer_settings_are_refused(make, error):
    with pytest.raises(error):
        make()


def test_divergence_restores_parameters_buffers_and_generator():
    X, Y = np.random.default_rng(5).normal(size=(30, 4)) * 1e3, np.ones((30, 2)) * 1e150
    net = plan_network()
    state = (net.params.copy(), net.buffers.copy(), net.random_state)
    with pytest.raises(FloatingPointError):
        net.fit(X, Y, optimizer=fastnn.SGD(lr=1e10), epochs=3, batch_size=8)
    np.testing.assert_array_equal(net.params, state[0])
    np.testing.assert_array_equal(net.buffers, state[1])
    assert net.random_state == state[2]
