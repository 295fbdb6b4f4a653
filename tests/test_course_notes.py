"""The course notes' worked example (shared/seed): 1 input, 2 sigmoid hidden units, 2 linear
outputs, squared L2 loss. Every gradient the notes derive, in the notes' own closed forms, and one
gradient-descent step."""
import math

import numpy as np
import pytest

import fastnn

x, y1, y2 = 0.5, 0.2, 0.7
# The notes' names: w_j^[1] and b_j^[1] feed hidden unit j; w_ij^[2] joins hidden unit i to
# output j.
w1, w2, b1, b2 = 0.15, -0.25, 0.1, -0.3
w11, w12, w21, w22, c1, c2 = 0.4, -0.6, 0.9, 0.2, 0.05, -0.1


def sigma(z):
    return 1 / (1 + math.exp(-z))


@pytest.fixture
def net():
    net = fastnn.MLP([1, 2, 2], activation="sigmoid", output_activation="identity",
                     loss="squared_error")
    net.weights[0][:] = [[w1, w2]]
    net.biases[0][:] = [b1, b2]
    net.weights[1][:] = [[w11, w12], [w21, w22]]
    net.biases[1][:] = [c1, c2]
    return net


def notes_forward():
    a1, a2 = sigma(x * w1 + b1), sigma(x * w2 + b2)
    yhat1 = w11 * a1 + w21 * a2 + c1
    yhat2 = w12 * a1 + w22 * a2 + c2
    return a1, a2, yhat1, yhat2


def test_forward_and_loss(net):
    a1, a2, yhat1, yhat2 = notes_forward()
    np.testing.assert_allclose(net.forward([[x]]), [[yhat1, yhat2]], rtol=0, atol=1e-15)
    loss = (yhat1 - y1) ** 2 + (yhat2 - y2) ** 2
    assert net.loss([[x]], [[y1, y2]]) == pytest.approx(loss, rel=1e-15)


def test_gradients_match_the_notes_closed_forms(net):
    a1, a2, yhat1, yhat2 = notes_forward()
    e1, e2 = 2 * (yhat1 - y1), 2 * (yhat2 - y2)          # dL/dyhat_k
    back1 = (e1 * w11 + e2 * w12) * a1 * (1 - a1)        # dL/dz_1^[1]
    back2 = (e1 * w21 + e2 * w22) * a2 * (1 - a2)        # dL/dz_2^[1]
    _, dW, db = net.gradients([[x]], [[y1, y2]])
    np.testing.assert_allclose(dW[1], [[e1 * a1, e2 * a1], [e1 * a2, e2 * a2]], rtol=1e-14)
    np.testing.assert_allclose(db[1], [e1, e2], rtol=1e-14)
    np.testing.assert_allclose(dW[0], [[back1 * x, back2 * x]], rtol=1e-14)
    np.testing.assert_allclose(db[0], [back1, back2], rtol=1e-14)


def test_one_gradient_descent_step(net):
    lr = 0.5
    a1, a2, yhat1, yhat2 = notes_forward()
    e1 = 2 * (yhat1 - y1)
    before = net.params.copy()
    _, dW, db = net.gradients([[x]], [[y1, y2]])
    J = net.train_step([[x]], [[y1, y2]], fastnn.SGD(lr=lr))
    assert J == pytest.approx((yhat1 - y1) ** 2 + (yhat2 - y2) ** 2, rel=1e-15)
    # w11^[2] <- w11^[2] - lr dL/dw11^[2], b1^[2] <- b1^[2] - lr dL/db1^[2], as in the notes
    assert net.weights[1][0, 0] == pytest.approx(w11 - lr * e1 * a1, rel=1e-15)
    assert net.biases[1][0] == pytest.approx(c1 - lr * e1, rel=1e-15)
    grad = np.concatenate([g.ravel() for pair in zip(dW, db) for g in pair])
    np.testing.assert_allclose(net.params, before - lr * grad, rtol=1e-15)
    assert net.loss([[x]], [[y1, y2]]) < J
