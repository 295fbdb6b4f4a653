"""fastnn.metrics against scikit-learn's metric functions of the same names, on random labels and
values, with absent classes and perfect and constant predictions among them."""
import warnings

import numpy as np
import pytest

sklearn_metrics = pytest.importorskip("sklearn.metrics")

from fastnn import metrics


def label_cases():
    rng = np.random.default_rng(0)
    for case in range(200):
        n_classes, n = int(rng.integers(2, 7)), int(rng.integers(1, 40))
        y_true = rng.integers(0, n_classes, n)
        y_pred = rng.integers(0, n_classes, n)
        if case % 4 == 0:
            y_pred = y_true.copy()               # perfect
        elif case % 4 == 1:
            y_pred = np.full(n, n_classes - 1)   # one class predicted, others absent
        yield n_classes, y_true, y_pred


@pytest.mark.parametrize("n_classes, y_true, y_pred", list(label_cases()))
def test_classification_metrics_equal_scikit_learns(n_classes, y_true, y_pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # scikit-learn warns of classes absent from y_true
        expected = {
            "accuracy": sklearn_metrics.accuracy_score(y_true, y_pred),
            "balanced_accuracy": sklearn_metrics.balanced_accuracy_score(y_true, y_pred),
            "f1_macro": sklearn_metrics.f1_score(y_true, y_pred, average="macro"),
        }
    found = metrics.classification_metrics(y_true, y_pred, n_classes)
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, abs=1e-12), name
    np.testing.assert_array_equal(found["confusion_matrix"], sklearn_metrics.confusion_matrix(
        y_true, y_pred, labels=range(n_classes)))
    assert found["rows"] == len(y_true)


def value_cases():
    rng = np.random.default_rng(1)
    for case in range(100):
        n = int(rng.integers(2, 50))
        y_true = rng.normal(size=n) * 10 ** rng.uniform(-3, 3)
        y_pred = y_true + rng.normal(size=n) * (case % 3)
        if case % 10 == 0:
            y_true = np.full(n, 3.5)             # constant target: R^2 is 1 or 0
            y_pred = y_true + (case % 20 == 0)
        yield y_true, y_pred


@pytest.mark.parametrize("y_true, y_pred", list(value_cases()))
def test_regression_metrics_equal_scikit_learns(y_true, y_pred):
    found = metrics.regression_metrics(y_true, y_pred)
    assert found["rmse"] == pytest.approx(
        sklearn_metrics.root_mean_squared_error(y_true, y_pred), rel=1e-12, abs=1e-300)
    assert found["mae"] == pytest.approx(sklearn_metrics.mean_absolute_error(y_true, y_pred),
                                         rel=1e-12, abs=1e-300)
    assert found["r2"] == pytest.approx(sklearn_metrics.r2_score(y_true, y_pred), abs=1e-12)


@pytest.mark.parametrize("call", [
    lambda: metrics.accuracy([0, 1], [0]),
    lambda: metrics.rmse([], []),
    lambda: metrics.confusion_matrix([0, 3], [0, 1], 3),
    lambda: metrics.f1_macro([0.5, 1], [0, 1], 2),
])
def test_bad_labels_are_refused(call):
    with pytest.raises(ValueError):
        call()
