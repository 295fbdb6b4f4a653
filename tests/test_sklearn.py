"""fastnn.sklearn against scikit-learn: its estimator checks, its meta-estimators, and its own MLPs.

The estimators draw scikit-learn's initial weights and visit its batches in its order, so 'sgd' and
'adam' and 'lbfgs' reproduce scikit-learn's weights to rounding.
"""
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")
from sklearn import neural_network
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastnn import sklearn as fastnn_sklearn
from fastnn.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    """A stratified train/test split of digits, pixels scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def diabetes():
    """A train/test split of diabetes with X and y standardized on the training part."""
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(X_train)
    mean, std = y_train.mean(), y_train.std()
    return (scaler.transform(X_train), scaler.transform(X_test), (y_train - mean) / std,
            (y_test - mean) / std)


def fit_both(name, X, y, sample_weight=None, **settings):
    """scikit-learn's and fastnn's estimator `name` fitted with the same settings."""
    settings.setdefault("random_state", 0)
    return tuple(getattr(module, name)(**settings).fit(X, y, sample_weight=sample_weight)
                 for module in (neural_network, fastnn_sklearn))


def assert_same_fit(ours, theirs, rtol):
    """Equal weights, loss curve and iteration count."""
    assert ours.n_iter_ == theirs.n_iter_
    for mine, reference in zip(ours.coefs_ + ours.intercepts_,
                               theirs.coefs_ + theirs.intercepts_):
        assert mine.shape == reference.shape
        np.testing.assert_allclose(mine, reference, rtol=rtol, atol=rtol)
    if hasattr(theirs, "loss_curve_"):
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=rtol)


# ---- scikit-learn's estimator checks, none expected to fail -----------------------------------

@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---- the same numbers as scikit-learn --------------------------------------------------------

SGD_SETTINGS = [
    dict(momentum=0.0),
    dict(momentum=0.9, nesterovs_momentum=False),
    dict(momentum=0.9),
    dict(learning_rate="invscaling", power_t=0.25),
    # the rate drops by 5 after every epoch that does not improve the loss by 0.05
    dict(learning_rate="adaptive", tol=0.05, n_iter_no_change=1),
    dict(early_stopping=True, n_iter_no_change=2),
    dict(batch_size=64, shuffle=False, alpha=0.01),
]


@pytest.mark.parametrize("settings", SGD_SETTINGS)
def test_sgd_classifier_reproduces_sklearn(digits, settings):
    X_train, _, y_train, _ = digits
    theirs, ours = fit_both("MLPClassifier", X_train, y_train, solver="sgd",
                            learning_rate_init=0.1, max_iter=8, hidden_layer_sizes=(20,),
                            **settings)
    assert_same_fit(ours, theirs, rtol=1e-9)
    if settings.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert ours.best_validation_score_ == theirs.best_validation_score_


@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_sgd_regressor_reproduces_sklearn(diabetes, n_outputs, activation):
    X_train, _, y_train, _ = diabetes
    y = y_train if n_outputs == 1 else np.c_[y_train, y_train ** 2, -y_train]
    theirs, ours = fit_both("MLPRegressor", X_train, y, solver="sgd", learning_rate_init=0.01,
                            activation=activation, max_iter=10, hidden_layer_sizes=(16, 8),
                            alpha=0.0 if n_outputs > 1 else 1e-4)
    assert_same_fit(ours, theirs, rtol=1e-9)


def test_multi_output_loss_with_penalty_is_close_to_sklearn(diabetes):
    """The one estimated quantity: the penalty part of an epoch, for several outputs.

    With alpha = 1 (ten thousand times the default) the loss curves still agree to 1e-4.
    """
    X_train, _, y_train, _ = diabetes
    y = np.c_[y_train, y_train ** 2]
    theirs, ours = fit_both("MLPRegressor", X_train, y, solver="sgd", learning_rate_init=0.01,
                            alpha=1.0, max_iter=10)
    np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-4)



@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_poisson_regressor_reproduces_sklearn(diabetes, solver):
    """The exp output and the half Poisson deviance: weights, predictions and the reported loss
    (fastnn's loss plus the terms in y alone) are scikit-learn's."""
    X_train, _, y_train, _ = diabetes
    counts = np.random.default_rng(3).poisson(np.exp(1 + X_train[:, 2] / 2))
    settings = dict(learning_rate_init=0.01) if solver != "lbfgs" else {}
    theirs, ours = fit_both("MLPRegressor", X_train, counts, loss="poisson", solver=solver,
                            max_iter=15, hidden_layer_sizes=(12,), **settings)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    assert_same_fit(ours, theirs, rtol=1e-7 if solver == "lbfgs" else 1e-9)
    np.testing.assert_allclose(ours.predict(X_train), theirs.predict(X_train), rtol=1e-7)


def test_poisson_validation_loss_curve_is_the_reported_loss_on_the_validation_part(diabetes):
    X_train, _, y_train, _ = diabetes
    counts = np.random.default_rng(4).poisson(np.exp(1 + X_train[:, 2] / 2))
    theirs, ours = fit_both("MLPRegressor", X_train, counts, loss="poisson", solver="adam",
                            max_iter=8, early_stopping=True, learning_rate_init=0.01,
                            hidden_layer_sizes=(12,))
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)
    assert len(ours.validation_loss_curve_) == ours.n_iter_
    assert np.isfinite(ours.validation_loss_curve_).all()

def test_sample_weights_reproduce_sklearn(digits):
    X_train, _, y_train, _ = digits
    weights = np.random.default_rng(0).integers(1, 4, size=len(y_train)).astype(float)
    theirs, ours = fit_both("MLPClassifier", X_train, y_train, sample_weight=weights,
                            solver="sgd", learning_rate_init=0.1, max_iter=5,
                            hidden_layer_sizes=(20,))
    # The weights follow scikit-learn's; the reported loss weights batches by their weight sum,
    # not their row count (documented), so it is only close.
    for mine, reference in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(mine, reference, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-2)


@pytest.mark.parametrize("name, data", [("MLPClassifier", "digits"),
                                        ("MLPRegressor", "diabetes")])
def test_lbfgs_reproduces_sklearn(request, name, data):
    X_train, _, y_train, _ = request.getfixturevalue(data)
    theirs, ours = fit_both(name, X_train, y_train, solver="lbfgs", max_iter=30,
                            hidden_layer_sizes=(20,))
    assert_same_fit(ours, theirs, rtol=1e-7)


def test_adam_reproduces_sklearn(digits):
    X_train, _, y_train, _ = digits
    theirs, ours = fit_both("MLPClassifier", X_train, y_train, max_iter=20,
                            hidden_layer_sizes=(20,))
    assert_same_fit(ours, theirs, rtol=1e-9)


def test_float32_keeps_float32_weights(digits):
    X_train, _, y_train, _ = digits
    X32 = X_train.astype(np.float32)
    theirs, ours = fit_both("MLPClassifier", X32, y_train, solver="sgd", learning_rate_init=0.1,
                            max_iter=3, hidden_layer_sizes=(20,))
    assert all(c.dtype == np.float32 for c in ours.coefs_ + ours.intercepts_)
    assert_same_fit(ours, theirs, rtol=1e-4)
    assert ours.predict_proba(X32).dtype == np.float32


def test_partial_fit_and_warm_start_reproduce_sklearn(digits):
    X_train, _, y_train, _ = digits
    settings = dict(solver="sgd", learning_rate_init=0.1, hidden_layer_sizes=(20,),
                    random_state=0)
    theirs = neural_network.MLPClassifier(**settings)
    ours = MLPClassifier(**settings)
    for start in range(0, 600, 200):
        part = slice(start, start + 200)
        for estimator in (theirs, ours):
            estimator.partial_fit(X_train[part], y_train[part], classes=np.arange(10))
    assert_same_fit(ours, theirs, rtol=1e-9)
    settings.update(warm_start=True, max_iter=3)
    theirs, ours = (m.MLPClassifier(**settings) for m in (neural_network, fastnn_sklearn))
    for _ in range(2):
        theirs.fit(X_train, y_train)
        ours.fit(X_train, y_train)
    assert_same_fit(ours, theirs, rtol=1e-9)


# ---- accuracy against scikit-learn with its defaults -----------------------------------------

def test_digits_accuracy_matches_sklearn(digits):
    X_train, X_test, y_train, y_test = digits
    theirs, ours = fit_both("MLPClassifier", X_train, y_train, hidden_layer_sizes=(32,),
                            max_iter=100)
    accuracy = ours.score(X_test, y_test)
    assert accuracy > 0.95
    assert abs(accuracy - theirs.score(X_test, y_test)) <= 0.01


def test_diabetes_r2_matches_sklearn(diabetes):
    X_train, X_test, y_train, y_test = diabetes
    theirs, ours = fit_both("MLPRegressor", X_train, y_train, solver="sgd",
                            learning_rate_init=0.01, hidden_layer_sizes=(20,), max_iter=100)
    r2 = ours.score(X_test, y_test)
    assert r2 > 0.25  # this split's test part is hard: a linear model scores 0.36
    assert abs(r2 - theirs.score(X_test, y_test)) <= 0.02


# ---- target kinds ----------------------------------------------------------------------------

def test_binary_classification(digits):
    X_train, X_test, y_train, y_test = digits
    labels = np.where(y_train >= 5, "high", "low")
    theirs, ours = fit_both("MLPClassifier", X_train, labels, solver="sgd",
                            learning_rate_init=0.1, max_iter=10, hidden_layer_sizes=(20,))
    assert ours.out_activation_ == "logistic" and ours.n_outputs_ == 1
    assert list(ours.classes_) == ["high", "low"]
    proba = ours.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_allclose(proba, theirs.predict_proba(X_test), rtol=1e-8)
    np.testing.assert_array_equal(ours.predict(X_test), theirs.predict(X_test))
    np.testing.assert_allclose(ours.predict_log_proba(X_test), np.log(proba))


def test_multilabel_classification(digits):
    X_train, X_test, y_train, _ = digits
    Y = np.c_[y_train % 2 == 0, y_train > 4, y_train == 7].astype(int)
    theirs, ours = fit_both("MLPClassifier", X_train, Y, solver="sgd", learning_rate_init=0.1,
                            max_iter=10, hidden_layer_sizes=(20,))
    assert ours.out_activation_ == "logistic" and ours.n_outputs_ == 3
    assert ours.predict(X_test).shape == (len(X_test), 3)
    np.testing.assert_array_equal(ours.predict(X_test), theirs.predict(X_test))
    np.testing.assert_allclose(ours.predict_proba(X_test), theirs.predict_proba(X_test),
                               rtol=1e-8)


LABELS = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3])


@pytest.mark.parametrize("y", [LABELS, LABELS.astype(np.int32), LABELS.astype(np.uint8),
                               LABELS - 2.0, np.array(list("abcdefghij"))[LABELS], LABELS > 4,
                               LABELS % 2, np.where(LABELS > 4, "high", "low"),
                               np.c_[LABELS % 2, LABELS > 4].astype(int)],
                         ids=["int64", "int32", "uint8", "float", "str", "bool",
                              "binary", "binary-str", "multilabel"])
def test_targets_are_encoded_and_decoded_as_label_binarizer_does(y):
    from sklearn.preprocessing import LabelBinarizer
    X = np.random.default_rng(0).normal(size=(len(y), 3))
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    binarizer = LabelBinarizer().fit(y)
    for part in (y, y[:5]):  # all the classes, and some of them (partial_fit's batches)
        Y = clf._encode(part, np.float32)
        expected = binarizer.transform(part).astype(np.float32)
        assert Y.dtype == expected.dtype and Y.flags.c_contiguous
        np.testing.assert_array_equal(Y, expected)
        scores = np.random.default_rng(1).random(Y.shape)
        decoded, expected = clf._decode(scores), binarizer.inverse_transform(scores)
        assert decoded.dtype == expected.dtype
        np.testing.assert_array_equal(decoded, expected)
    np.testing.assert_array_equal(clf.predict(X), binarizer.inverse_transform(
        clf.predict_proba(X)[:, 1:] if clf.n_outputs_ == 1 else clf.predict_proba(X)))


def test_multi_output_regression(diabetes):
    X_train, X_test, y_train, _ = diabetes
    Y = np.c_[y_train, -2 * y_train]
    theirs, ours = fit_both("MLPRegressor", X_train, Y, solver="lbfgs", max_iter=50)
    assert ours.predict(X_test).shape == (len(X_test), 2)
    assert ours.score(X_train, Y) > 0.5
    # scikit-learn's L-BFGS sees a value divided by n_outputs with an undivided gradient
    # (documented); the fits still agree closely.
    np.testing.assert_allclose(ours.predict(X_test), theirs.predict(X_test), atol=0.05)


# ---- inputs and scikit-learn's tooling -------------------------------------------------------

def test_dataframe_and_sparse_inputs(diabetes):
    X_train, _, y_train, _ = diabetes
    frame = pd.DataFrame(X_train, columns=[f"x{i}" for i in range(X_train.shape[1])])
    settings = dict(solver="sgd", learning_rate_init=0.01, max_iter=5, random_state=0)
    from_frame = MLPRegressor(**settings).fit(frame, pd.Series(y_train))
    assert list(from_frame.feature_names_in_) == list(frame.columns)
    from_sparse = MLPRegressor(**settings).fit(scipy.sparse.csr_array(X_train), y_train)
    np.testing.assert_allclose(from_frame.predict(frame), from_sparse.predict(X_train))
    with pytest.warns(UserWarning, match="feature names"):
        from_frame.predict(X_train)


def test_pipeline_grid_search_and_cross_validation(digits):
    X_train, X_test, y_train, y_test = digits
    pipeline = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(20,),
                                                             max_iter=30, random_state=0))
    search = GridSearchCV(pipeline, {"mlpclassifier__alpha": [1e-4, 1e-1]}, cv=2, n_jobs=2)
    search.fit(X_train, y_train)
    assert search.score(X_test, y_test) > 0.9
    scores = cross_val_score(MLPRegressor(solver="lbfgs", max_iter=30, random_state=0),
                             X_train, X_train[:, 20], cv=3)
    assert scores.mean() > 0.5


def test_clone_and_pickle_round_trip(digits):
    X_train, X_test, y_train, _ = digits
    estimator = MLPClassifier(solver="sgd", hidden_layer_sizes=(20,), max_iter=5,
                              random_state=0).fit(X_train, y_train)
    fresh = clone(estimator)
    assert fresh.get_params() == estimator.get_params() and not hasattr(fresh, "coefs_")
    copy = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(copy.predict_proba(X_test), estimator.predict_proba(X_test))
    # coefs_ stay views of the unpickled network, and the momentum carries on identically.
    assert np.shares_memory(copy.coefs_[0], copy._net.params)
    for model in (estimator, copy):
        model.partial_fit(X_train, y_train)
    np.testing.assert_array_equal(copy.predict_proba(X_test), estimator.predict_proba(X_test))


def test_parameter_names_are_each_classs_own():
    # fastnn.sklearn reads them once per class, not at every get_params as scikit-learn does
    import inspect

    class Wide(MLPClassifier):
        def __init__(self, width=3):
            super().__init__(hidden_layer_sizes=(width,))
            self.width = width

    assert Wide(width=5).get_params() == {"width": 5}
    assert clone(Wide(width=5)).hidden_layer_sizes == (5,)
    for Estimator in (MLPClassifier, MLPRegressor):
        assert list(Estimator().get_params()) == sorted(inspect.signature(Estimator).parameters)
    assert "loss" in MLPRegressor().get_params() and "loss" not in MLPClassifier().get_params()


# ---- errors as scikit-learn users know them --------------------------------------------------

def test_errors(digits):
    X_train, _, y_train, _ = digits
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X_train)
    with pytest.raises(InvalidParameterError):
        # scikit-learn's name for it is 'logistic'
        MLPClassifier(activation="sigmoid").fit(X_train, y_train)
    with pytest.raises(InvalidParameterError, match="loss"):
        MLPRegressor(loss="gamma").fit(X_train, y_train)
    with pytest.raises(ValueError, match=">= 0"):
        MLPRegressor(loss="poisson").fit(X_train, y_train - 1000)
    with pytest.raises(ValueError, match="hidden_layer_sizes must be > 0"):
        MLPClassifier(hidden_layer_sizes=(10, 0)).fit(X_train, y_train)
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier().fit(np.where(X_train > 0.5, np.nan, X_train), y_train)
    with pytest.raises(AttributeError, match="partial_fit"):
        MLPRegressor(solver="lbfgs").partial_fit(X_train, y_train)
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X_train, y_train)
    fitted = MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, warm_start=True)
    fitted.fit(X_train, y_train)
    with pytest.raises(ValueError, match="layer sizes"):
        fitted.set_params(hidden_layer_sizes=(6,)).fit(X_train, y_train)
    with pytest.raises(ValueError, match="non-finite"):
        MLPRegressor(solver="sgd", learning_rate_init=1.0, activation="identity",
                     max_iter=50).fit(X_train, 1e6 * y_train)


def test_verbose_prints_sklearns_lines(digits, capsys):
    X_train, _, y_train, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning):
            MLPClassifier(max_iter=2, verbose=True, hidden_layer_sizes=(5,)).fit(X_train, y_train)
    assert capsys.readouterr().out.startswith("Iteration 1, loss = ")


def interrupt_after(epochs, monkeypatch, how):
    """Patch the epoch runner so that an interrupt comes as epoch ``epochs + 1`` starts: raised
    from it ("raise"), or as a real SIGINT ("signal", which the compiled epoch sees before its
    first batch)."""
    import os
    import signal

    real = fastnn_sklearn.run_epoch
    calls = []

    def run_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == epochs + 1:
            if how == "raise":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(fastnn_sklearn, "run_epoch", run_epoch)


@pytest.mark.parametrize("how, epochs_done", [("raise", 3), ("signal", 3)])
@pytest.mark.parametrize("Estimator, solver", [(MLPClassifier, "adam"), (MLPClassifier, "sgd"),
                                               (MLPRegressor, "adam"), (MLPRegressor, "sgd")])
def test_an_interrupted_fit_describes_the_epochs_it_completed(monkeypatch, Estimator, solver, how,
                                                              epochs_done):
    import signal

    X = np.random.default_rng(0).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    interrupt_after(3, monkeypatch, how)
    estimator = Estimator(hidden_layer_sizes=(5,), solver=solver, max_iter=50, batch_size=20,
                          tol=0, random_state=0)
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        estimator.fit(X, y)
    # as scikit-learn: the fit returns with what it did; the epoch the interrupt came in made
    # no update, so the weights are those of the epochs counted.
    assert estimator.n_iter_ == epochs_done
    assert len(estimator.loss_curve_) == epochs_done and np.all(np.isfinite(estimator.loss_curve_))
    assert estimator.t_ == epochs_done * 60
    assert estimator.loss_ == estimator.loss_curve_[-1]
    assert estimator._optimizer.steps == epochs_done * 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    estimator.predict(X)
