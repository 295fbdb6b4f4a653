"""`MLP.gradients` is the derivative of `MLP.loss`: central finite differences of the objective
(with an L2 penalty) agree with the returned gradient for every hidden activation and every
output/loss pair, on a float64 network with two hidden layers, with and without sample weights,
and for the options of cross-entropy (class weights, label smoothing, pos_weight); and the J it
returns is `MLP.loss`."""
import numpy as np
import pytest

import fastnn

from helpers import HIDDEN_ACTIVATIONS, OUTPUT_LOSS_PAIRS, flat_gradient, make_targets

STEP = 1e-6
# no pre-activation closer than this to relu's kink, so a step of STEP never crosses it
KINK_MARGIN = 1e-4


def network_and_data(activation, output_activation, loss, seed, loss_options=None):
    rng = np.random.default_rng(seed)
    net = fastnn.MLP([3, 5, 4, 3], activation=activation, output_activation=output_activation,
                     loss=loss, l2=0.3, seed=seed, loss_options=loss_options)
    for b in net.biases:
        b[:] = rng.normal(scale=0.2, size=b.shape)
    X = rng.normal(size=(6, 3))
    Y = make_targets(rng, 6, 3, output_activation, loss)
    return net, X, Y


def hidden_pre_activations(net, X):
    """Z_1, Z_2 of the hidden layers, computed here in NumPy (relu only: that is what they are
    for)."""
    Z, A = [], X
    for W, b in zip(net.weights[:-1], net.biases[:-1]):
        Z.append(A @ W + b)
        A = np.maximum(Z[-1], 0)
    return Z


def numerical_gradient(net, X, Y, sample_weight=None):
    """dJ/dparams by central differences of net.loss."""
    grad = np.empty(net.n_params)
    for i in range(net.n_params):
        saved = net.params[i]
        net.params[i] = saved + STEP
        plus = net.loss(X, Y, sample_weight)
        net.params[i] = saved - STEP
        minus = net.loss(X, Y, sample_weight)
        net.params[i] = saved
        grad[i] = (plus - minus) / (2 * STEP)
    return grad


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("output_activation, loss", OUTPUT_LOSS_PAIRS)
def test_gradients_match_central_differences(activation, output_activation, loss):
    net, X, Y = network_and_data(activation, output_activation, loss, seed=11)
    if activation == "relu":
        margin = min(np.abs(Z).min() for Z in hidden_pre_activations(net, X))
        assert margin > KINK_MARGIN, "pick another seed: an input sits on a relu kink"
    J, dW, db = net.gradients(X, Y)
    assert [g.shape for g in dW] == [W.shape for W in net.weights]
    assert [g.shape for g in db] == [b.shape for b in net.biases]
    np.testing.assert_allclose(flat_gradient(dW, db), numerical_gradient(net, X, Y),
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("output_activation, loss", OUTPUT_LOSS_PAIRS)
def test_gradients_returns_the_loss(activation, output_activation, loss):
    net, X, Y = network_and_data(activation, output_activation, loss, seed=12)
    J, _, _ = net.gradients(X, Y)
    assert J == net.loss(X, Y)


def test_loss_adds_the_l2_penalty_on_weights_only():
    net, X, Y = network_and_data("sigmoid", "softmax", "cross_entropy", seed=14)
    plain = fastnn.MLP(net.sizes, activation="sigmoid", output_activation="softmax",
                       loss="cross_entropy", l2=0.0)
    plain.params = net.params
    penalty = 0.3 / 2 * sum(np.sum(W ** 2) for W in net.weights)
    assert net.loss(X, Y) == pytest.approx(plain.loss(X, Y) + penalty, rel=1e-14)
    _, dW, db = net.gradients(X, Y)
    _, dW_plain, db_plain = plain.gradients(X, Y)
    for g, g_plain, W in zip(dW, dW_plain, net.weights):
        np.testing.assert_allclose(g, g_plain + 0.3 * W, rtol=1e-13, atol=1e-15)
    for g, g_plain in zip(db, db_plain):
        np.testing.assert_array_equal(g, g_plain)


@pytest.mark.parametrize("output_activation, loss", OUTPUT_LOSS_PAIRS)
def test_gradients_with_sample_weights_match_central_differences(output_activation, loss):
    net, X, Y = network_and_data("tanh", output_activation, loss, seed=15)
    weights = np.array([0.5, 0.0, 2.0, 1.0, 3.0, 0.25])
    J, dW, db = net.gradients(X, Y, weights)
    assert J == net.loss(X, Y, weights)
    np.testing.assert_allclose(flat_gradient(dW, db), numerical_gradient(net, X, Y, weights),
                               rtol=1e-6, atol=1e-8)


# (output activation, loss_options) of cross-entropy; a class of weight 0 among them
CROSS_ENTROPY_OPTIONS = [("softmax", {"weight": [0.5, 2.0, 1.5]}),
                         ("softmax", {"label_smoothing": 0.2}),
                         ("softmax", {"weight": [0.5, 0.0, 1.5], "label_smoothing": 0.4}),
                         ("sigmoid", {"pos_weight": [3.0, 0.5, 1.0]})]


@pytest.mark.parametrize("output_activation, options", CROSS_ENTROPY_OPTIONS,
                         ids=lambda value: "-".join(value) if isinstance(value, dict) else value)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weighted"])
def test_cross_entropy_options_gradients_match_central_differences(output_activation, options,
                                                                   weighted):
    net, X, Y = network_and_data("tanh", output_activation, "cross_entropy", seed=16,
                                 loss_options=options)
    weights = np.array([0.5, 0.0, 2.0, 1.0, 3.0, 0.25]) if weighted else None
    J, dW, db = net.gradients(X, Y, weights)
    assert J == net.loss(X, Y, weights)
    np.testing.assert_allclose(flat_gradient(dW, db), numerical_gradient(net, X, Y, weights),
                               rtol=1e-6, atol=1e-8)


def test_gradients_do_not_alias_the_network():
    net, X, Y = network_and_data("tanh", "identity", "squared_error", seed=13)
    _, dW, db = net.gradients(X, Y)
    kept = flat_gradient(dW, db)
    net.gradients(X + 1, Y)
    np.testing.assert_array_equal(flat_gradient(dW, db), kept)
