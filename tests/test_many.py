"""fit_many (networks trained at once in threads) and Ensemble (their mean output)."""
import numpy as np
import pytest

import fastnn
from fastnn import SGD, Adam, Ensemble, fit_many

rng = np.random.default_rng(0)
X = rng.standard_normal((300, 8))
y = rng.integers(0, 3, 300)


def classifiers(k, hidden=16, dtype="float64"):
    return [fastnn.MLP([8, hidden + i, 3], output_activation="softmax", loss="cross_entropy",
                       seed=i, dtype=dtype) for i in range(k)]


@pytest.mark.parametrize("n_jobs", [1, 2, 3, -1])
def test_fit_many_equals_fitting_one_after_another(n_jobs):
    alone, together = classifiers(5), classifiers(5)
    expected = [net.fit(X, y, optimizer=Adam(lr=0.01), epochs=4, batch_size=32, seed=10 + i,
                        validation_split=0.2)
                for i, net in enumerate(alone)]
    got = fit_many(together, X, y, optimizers=[Adam(lr=0.01) for _ in together],
                   seeds=[10 + i for i in range(5)], n_jobs=n_jobs, epochs=4, batch_size=32,
                   validation_split=0.2)
    for a, b, h, g in zip(alone, together, expected, got):
        np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(h.loss, g.loss, rtol=1e-12)
        np.testing.assert_allclose(h.val_loss, g.val_loss, rtol=1e-12)


def test_fit_many_takes_checked_data_and_sample_weights():
    nets = classifiers(2)
    data = nets[0].check_data(X, y, np.linspace(0.5, 1.5, 300))
    histories = fit_many(nets, data, epochs=2, seeds=[0, 1])
    assert [len(h.loss) for h in histories] == [2, 2]


def test_fit_many_default_optimizers_are_distinct_adams():
    nets = classifiers(2)
    fit_many(nets, X, y, epochs=1, seeds=[0, 0])
    twin = classifiers(2)
    for net in twin:
        net.fit(X, y, optimizer=Adam(), epochs=1, seed=0)
    for a, b in zip(nets, twin):
        np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=1e-12)


def test_fit_many_reports_the_failing_network_after_all_ran():
    nets = classifiers(3)
    before = nets[2].params.copy()
    optimizers = [SGD(lr=0.1), SGD(lr=1e300), SGD(lr=0.1)]
    with pytest.raises(FloatingPointError, match=r"nets\[1\]"):
        fit_many(nets, X * 1e3, y, optimizers=optimizers, epochs=2, n_jobs=2)
    assert not np.array_equal(nets[2].params, before)


@pytest.mark.parametrize("call, error, message", [
    (lambda: fit_many([], X, y), ValueError, "empty"),
    (lambda: fit_many([object()], X, y), TypeError, r"nets\[0\]"),
    (lambda: fit_many([classifiers(1)[0]] * 2, X, y), ValueError, "same network twice"),
    (lambda: fit_many(classifiers(2), X, y, optimizers=[Adam()]), ValueError, "1 entries"),
    (lambda: fit_many(classifiers(2), X, y, optimizers=Adam()), TypeError, "sequence"),
    (lambda: fit_many(classifiers(2), X, y, optimizers=[Adam(), "adam"]), TypeError,
     r"optimizers\[1\]"),
    (lambda: fit_many(classifiers(2), X, y, optimizers=[Adam()] * 2), ValueError,
     "same optimizer twice"),
    (lambda: fit_many(classifiers(2), X, y, seeds=[1]), ValueError, "1 entries"),
    (lambda: fit_many(classifiers(2), X, y, seed=1), TypeError, "seeds="),
    (lambda: fit_many(classifiers(2), X, y, optimizer=Adam()), TypeError, "optimizers="),
    (lambda: fit_many(classifiers(2), X, y, n_jobs=0), ValueError, "n_jobs"),
    (lambda: fit_many(classifiers(2), X, y, n_jobs=1.5), TypeError, "n_jobs"),
    (lambda: fit_many(classifiers(1) + [fastnn.MLP([5, 3])], X, y), ValueError,
     r"nets\[1\] does not take the data"),
    (lambda: fit_many(classifiers(1) + classifiers(1, dtype="float32"), X, y), ValueError,
     r"nets\[1\] does not take the data"),
    (lambda: fit_many(classifiers(2), X[:, :5], y), ValueError, "X"),
    (lambda: fit_many(classifiers(2), X, y, epochs=-1), ValueError, "epochs"),
])
def test_fit_many_refuses_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_ensemble_is_the_mean_of_its_members():
    nets = classifiers(3)
    fit_many(nets, X, y, epochs=2, seeds=[0, 1, 2])
    ensemble = Ensemble(nets)
    expected = sum(net.forward(X) for net in nets) / 3
    np.testing.assert_allclose(ensemble.forward(X), expected, rtol=1e-15)
    np.testing.assert_allclose(ensemble.predict(X).sum(axis=1), 1, rtol=1e-12)
    assert (len(ensemble), ensemble.n_in, ensemble.n_out) == (3, 8, 3)
    assert "3 members" in repr(ensemble)
    assert Ensemble(nets[0]).members == (nets[0],)


@pytest.mark.parametrize("members, error, message", [
    ([], ValueError, "at least one"),
    ([object()], TypeError, r"members\[0\]"),
    (classifiers(1) + [fastnn.MLP([5, 4, 3], output_activation="softmax")], ValueError,
     r"members\[1\] takes 5 inputs"),
    (classifiers(1) + [fastnn.MLP([8, 4, 2], output_activation="softmax")], ValueError,
     r"members\[1\] has 2 outputs"),
    (classifiers(1) + [fastnn.MLP([8, 4, 3])], ValueError, "output activation"),
])
def test_ensemble_refuses_members_that_do_not_match(members, error, message):
    with pytest.raises(error, match=message):
        Ensemble(members)


def test_ensemble_checks_its_input():
    with pytest.raises(ValueError, match="X"):
        Ensemble(classifiers(2)).forward(np.zeros((2, 5)))
