"""The optimizers beyond torch parity (tests/test_torch_parity.py): Adam's epsilon-hat form against
scikit-learn's own Adam, and optimizers that pickle with their state and continue exactly."""
import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer

import fastnn

from helpers import flat_gradient


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return rng.normal(size=(24, 3)), rng.normal(size=(24, 2))


def test_adam_with_eps_hat_follows_scikit_learns_adam(data):
    X, Y = data
    net = fastnn.MLP([3, 5, 2], activation="tanh", seed=0)
    optimizer = fastnn.Adam(lr=0.02, beta1=0.8, beta2=0.99, eps=1e-3, eps_hat=True)
    params = net.params.copy()
    reference = AdamOptimizer([params], learning_rate_init=0.02, beta_1=0.8, beta_2=0.99,
                              epsilon=1e-3)
    for _ in range(30):
        _, dW, db = net.gradients(X, Y)
        net.train_step(X, Y, optimizer)
        reference.update_params([params], [flat_gradient(dW, db)])
        np.testing.assert_allclose(net.params, params, rtol=1e-12, atol=1e-14)


def test_eps_hat_changes_only_where_eps_matters(data):
    X, Y = data
    nets = [fastnn.MLP([3, 5, 2], seed=0) for _ in range(2)]
    for net, eps_hat in zip(nets, (False, True)):
        net.train_step(X, Y, fastnn.Adam(eps=1e-8, eps_hat=eps_hat))
    # at step 1 the denominators are |g| + eps and |g| + eps / sqrt(1 - beta2), eps = 1e-8
    np.testing.assert_allclose(nets[0].params, nets[1].params, rtol=1e-4)
    assert not np.array_equal(nets[0].params, nets[1].params)


@pytest.mark.parametrize("make", [lambda: fastnn.SGD(lr=0.05, momentum=0.9, nesterov=True),
                                  lambda: fastnn.SGD(lr=0.05, weight_decay=0.1),
                                  lambda: fastnn.Adam(lr=0.01, weight_decay=0.1),
                                  lambda: fastnn.AdamW(lr=0.01, weight_decay=0.1),
                                  lambda: fastnn.RMSprop(momentum=0.5, centered=True),
                                  lambda: fastnn.Adam(lr=0.01, eps_hat=True)])
def test_a_pickled_optimizer_continues_exactly(data, make):
    X, Y = data
    net, optimizer = fastnn.MLP([3, 5, 2], seed=0), make()
    for _ in range(5):
        net.train_step(X, Y, optimizer)
    net_copy, optimizer_copy = pickle.loads(pickle.dumps((net, optimizer)))
    assert repr(optimizer_copy) == repr(optimizer) and optimizer_copy.steps == 5
    for _ in range(5):
        net.train_step(X, Y, optimizer)
        net_copy.train_step(X, Y, optimizer_copy)
    np.testing.assert_array_equal(net_copy.params, net.params)
    assert optimizer_copy.steps == 10


def test_a_pickled_optimizer_starts_afresh_on_a_network_of_another_size(data):
    X, Y = data
    net, optimizer = fastnn.MLP([3, 5, 2], seed=0), fastnn.Adam()
    net.train_step(X, Y, optimizer)
    copy = pickle.loads(pickle.dumps(optimizer))
    other = fastnn.MLP([3, 4, 2], seed=0)
    other.train_step(X, Y, copy)
    assert copy.steps == 1


def test_eps_hat_must_be_a_bool():
    with pytest.raises(TypeError, match="eps_hat must be True or False"):
        fastnn.Adam(eps_hat="yes")


@pytest.mark.parametrize("make, name", [
    (lambda: fastnn.SGD(weight_decay=-0.1), "weight_decay"),
    (lambda: fastnn.SGD(weight_decay=float("nan")), "weight_decay"),
    (lambda: fastnn.Adam(weight_decay=-1), "weight_decay"),
    (lambda: fastnn.AdamW(weight_decay=-1e-3), "weight_decay"),
    (lambda: fastnn.AdamW(beta2=1.0), "beta2"),
    (lambda: fastnn.RMSprop(alpha=1.0), "alpha"),
    (lambda: fastnn.RMSprop(alpha=-0.1), "alpha"),
    (lambda: fastnn.RMSprop(eps=-1e-8), "eps"),
    (lambda: fastnn.RMSprop(momentum=-0.5), "momentum"),
    (lambda: fastnn.RMSprop(lr=-1), "lr"),
    (lambda: fastnn.RMSprop(weight_decay=-1), "weight_decay"),
])
def test_hyperparameters_out_of_range_are_refused_by_name(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_rmsprop_state_is_torchs_three_vectors_and_centered_must_be_a_bool(data):
    X, Y = data
    net, optimizer = fastnn.MLP([3, 5, 2], seed=0), fastnn.RMSprop(momentum=0.9, centered=True)
    net.train_step(X, Y, optimizer)
    state = optimizer.state_dict()
    assert set(state) == {"lr", "step", "square_avg", "momentum_buffer", "grad_avg"}
    assert all(np.any(state[name]) for name in ("square_avg", "momentum_buffer", "grad_avg"))
    with pytest.raises(TypeError, match="centered must be True or False"):
        fastnn.RMSprop(centered=1)
