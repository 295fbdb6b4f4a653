"""fastnn.sklearn estimators fitted in threads by scikit-learn's searches (joblib's threading
backend): the same results as one fit after another, and one BLAS thread per concurrent fit."""
import threading

import joblib
import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402

from fastnn import _blas_threads, threads  # noqa: E402
from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

rng = np.random.default_rng(0)
X = rng.standard_normal((240, 6))
y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
GRID = {"hidden_layer_sizes": [(8,), (16,)], "alpha": [1e-4, 1e-2]}
pytestmark = pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)


def test_grid_search_in_threads_equals_one_fit_after_another():
    alone = GridSearchCV(MLPClassifier(max_iter=15, random_state=0), GRID, cv=3).fit(X, y)
    with joblib.parallel_config(backend="threading"):
        together = GridSearchCV(MLPClassifier(max_iter=15, random_state=0), GRID, cv=3,
                                n_jobs=2).fit(X, y)
    assert together.best_params_ == alone.best_params_
    np.testing.assert_allclose(together.cv_results_["mean_test_score"],
                               alone.cv_results_["mean_test_score"], rtol=1e-12)
    np.testing.assert_allclose(together.best_estimator_.coefs_[0],
                               alone.best_estimator_.coefs_[0], rtol=1e-12, atol=1e-12)


def test_with_one_thread_per_fit_a_search_in_threads_equals_the_sequential_one_bit_for_bit():
    # (without n_threads=1, an epoch large enough to split its rows splits only while no other
    # fastnn call runs: the two searches then agree to rounding)
    from sklearn.model_selection import cross_validate

    def weights(n_jobs):
        with joblib.parallel_config(backend="threading"):
            result = cross_validate(MLPClassifier((16,), max_iter=15, random_state=0,
                                                  n_threads=1), X, y, cv=4, n_jobs=n_jobs,
                                    return_estimator=True)
        return [np.concatenate([W.ravel() for W in e.coefs_]) for e in result["estimator"]]
    for alone, together in zip(weights(1), weights(2)):
        np.testing.assert_array_equal(together, alone)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_cross_val_score_in_threads_equals_one_fit_after_another(solver):
    target = X @ np.arange(1.0, 7.0)
    model = MLPRegressor(hidden_layer_sizes=(12,), solver=solver, max_iter=20, random_state=0)
    alone = cross_val_score(model, X, target, cv=4)
    with joblib.parallel_config(backend="threading"):
        together = cross_val_score(model, X, target, cv=4, n_jobs=2)
    np.testing.assert_allclose(together, alone, rtol=1e-12)


def test_concurrent_fits_run_one_blas_thread_each():
    if not threads.controlled():
        pytest.skip("fastnn does not set this BLAS's threads")
    states, done = set(), threading.Event()

    def watch():
        while not done.is_set():
            running, _, current = _blas_threads.state()
            states.add((running, current))

    big = np.tile(X, (10, 1))  # epochs long enough for the fits to overlap
    watcher = threading.Thread(target=watch)
    watcher.start()
    _blas_threads.set_parallel_work(0)  # every call alone would take the user's setting
    try:
        with joblib.parallel_config(backend="threading"):
            GridSearchCV(MLPClassifier((256,), max_iter=10, random_state=0),
                         {"alpha": [1e-4, 1e-2]}, cv=2, n_jobs=2).fit(big, np.tile(y, 10))
    finally:
        _blas_threads.set_parallel_work(threads.PARALLEL_WORK)
        done.set()
        watcher.join()
    assert any(running > 1 for running, _ in states)  # the fits did overlap
    assert all(current == 1 for running, current in states if running > 1)


@pytest.mark.parametrize("bad, error", [(0, ValueError), ("2", TypeError), (1.5, TypeError)])
def test_bad_n_threads_is_refused_by_the_estimators(bad, error):
    for estimator in (MLPClassifier(n_threads=bad), MLPRegressor(n_threads=bad)):
        with pytest.raises(error, match="n_threads"):
            estimator.fit(X, y)


def test_n_threads_reaches_the_network_and_changes_no_number():
    capped = MLPClassifier((16,), max_iter=5, random_state=0, n_threads=1).fit(X, y)
    free = MLPClassifier((16,), max_iter=5, random_state=0).fit(X, y)
    assert capped._net.n_threads == 1 and free._net.n_threads is None
    np.testing.assert_array_equal(capped.coefs_[0], free.coefs_[0])
    assert capped.set_params(n_threads=None).fit(X, y)._net.n_threads is None
