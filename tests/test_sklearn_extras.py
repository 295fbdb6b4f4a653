"""fastnn.sklearn's parameters beyond scikit-learn's: more hidden activations, dropout, batch
normalization, class weights, the regressor's absolute and Huber losses, validation_loss_curve_;
and its scikit-learn behaviour where a fit diverges or coefs_ are set by hand.

Their defaults change nothing: the estimators keep reproducing scikit-learn's MLPs.
"""
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
import references
from sklearn import neural_network
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastnn import registry
from fastnn.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

NEW_ACTIVATIONS = ("leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "softplus")


@pytest.fixture(scope="module")
def digits():
    """A train/test split of digits, pixels scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def diabetes():
    """Diabetes with X and y standardized."""
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), (y - y.mean()) / y.std()


def assert_same_weights(ours, theirs, rtol=1e-9):
    """Equal weights and biases, layer by layer."""
    for mine, reference in zip(ours.coefs_ + ours.intercepts_,
                               theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, reference, rtol=rtol, atol=rtol)


def early_stopping_split(estimator, X, y):
    """The validation part a fit with early stopping holds out: scikit-learn's train_test_split
    on the random state after the initial weights (and the dropout seed), stratified for binary
    targets, as fastnn.sklearn documents."""
    random_state = np.random.RandomState(estimator.random_state)
    sizes = [X.shape[1], *estimator.hidden_layer_sizes, estimator.n_outputs_]
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        random_state.uniform(size=(fan_in, fan_out))
        random_state.uniform(size=fan_out)
    if estimator.dropout:
        random_state.randint(np.iinfo(np.int32).max)
    binary = isinstance(estimator, MLPClassifier) and estimator.n_outputs_ == 1
    _, X_val, _, y_val = train_test_split(X, y, random_state=random_state,
                                          test_size=estimator.validation_fraction,
                                          stratify=y if binary else None)
    return X_val, y_val


# ---- scikit-learn's estimator checks with the extras set -------------------------------------

EXTRAS = [
    MLPClassifier(activation="gelu", dropout=0.1, batch_norm=True, class_weight="balanced"),
    MLPClassifier(activation="softplus", dropout=0.2),
    MLPRegressor(activation="silu", dropout=0.1, batch_norm=True, loss="huber",
                 huber_delta=0.5),
    MLPRegressor(activation="leaky_relu", loss="absolute_error"),
]


def expected_failed_checks(estimator):
    """The checks that fail by design with these settings, and why."""
    failing = {}
    if estimator.dropout or estimator.batch_norm:
        reason = ("a sample weight of 2 is not a repeated row here: dropout draws a mask per "
                  "row, and batch normalization's batch statistics are unweighted (as PyTorch's)")
        failing.update(check_sample_weight_equivalence_on_dense_data=reason,
                       check_sample_weight_equivalence_on_sparse_data=reason)
    if getattr(estimator, "class_weight", None) == "balanced":
        reason = ("these checks call partial_fit, which rejects class_weight='balanced' as "
                  "scikit-learn's SGDClassifier does (the frequencies are those of all the data)")
        failing.update(check_fit_score_takes_y=reason, check_n_features_in_after_fitting=reason,
                       check_estimators_partial_fit_n_features=reason)
    return failing


@parametrize_with_checks(EXTRAS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks_with_extras(estimator, check):
    check(estimator)


def test_partial_fit_rejects_balanced_class_weights(digits):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="'balanced' is not supported for partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X_train, y_train,
                                                           classes=np.arange(10))


# ---- the defaults change nothing -------------------------------------------------------------

@pytest.mark.parametrize("name, settings", [
    ("MLPClassifier", dict(solver="sgd", learning_rate_init=0.1, early_stopping=True)),
    ("MLPClassifier", dict(solver="adam")),
    ("MLPRegressor", dict(solver="sgd", learning_rate_init=0.01)),
    ("MLPRegressor", dict(solver="lbfgs")),
])
def test_extras_at_their_defaults_reproduce_sklearn(digits, diabetes, name, settings):
    X, y = (digits[0], digits[2]) if name == "MLPClassifier" else diabetes
    extras = dict(dropout=0.0, batch_norm=False)
    if name == "MLPClassifier":
        extras.update(class_weight=None)
    else:
        extras.update(loss="squared_error", huber_delta=1.0)
    common = dict(hidden_layer_sizes=(20,), max_iter=8, random_state=0, **settings)
    theirs = getattr(neural_network, name)(**common).fit(X, y)
    ours = (MLPClassifier if name == "MLPClassifier" else MLPRegressor)(**common, **extras)
    ours.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert_same_weights(ours, theirs, rtol=1e-7 if settings["solver"] == "lbfgs" else 1e-9)
    if settings.get("early_stopping"):
        np.testing.assert_array_equal(ours.validation_scores_, theirs.validation_scores_)


# ---- activations -----------------------------------------------------------------------------

def test_the_activations_are_sklearns_four_and_fastnns_other_hidden_ones():
    names = set(MLPClassifier._parameter_constraints["activation"][0].options)
    fastnn_names = set(registry.hidden_activations()) - {"sigmoid"} | {"logistic"}
    assert names == fastnn_names
    assert names >= {"identity", "logistic", "tanh", "relu", *NEW_ACTIVATIONS}


@pytest.mark.parametrize("activation", NEW_ACTIVATIONS)
def test_a_new_activation_computes_its_function(diabetes, activation):
    X, y = diabetes
    reg = MLPRegressor(activation=activation, hidden_layer_sizes=(7, 5), solver="sgd",
                       learning_rate_init=0.01, max_iter=3, random_state=0).fit(X, y)
    A = X
    for W, b in zip(reg.coefs_[:-1], reg.intercepts_[:-1]):
        info = registry.ACTIVATIONS[activation]
        A = references.activation(A @ W + b, activation, info.default)
    np.testing.assert_allclose(reg.predict(X), (A @ reg.coefs_[-1] + reg.intercepts_[-1]).ravel(),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", NEW_ACTIVATIONS)
def test_a_new_activation_starts_from_sklearns_weights_and_learns(digits, activation):
    X_train, X_test, y_train, y_test = digits
    # a rate so small that one epoch leaves the initial weights (scikit-learn's for relu, which
    # has the same factor) as they were
    settings = dict(hidden_layer_sizes=(20,), solver="sgd", learning_rate_init=1e-12,
                    max_iter=1, random_state=0)
    theirs = neural_network.MLPClassifier(activation="relu", **settings).fit(X_train, y_train)
    ours = MLPClassifier(activation=activation, **settings).fit(X_train, y_train)
    assert_same_weights(ours, theirs, rtol=1e-9)
    clf = MLPClassifier(activation=activation, hidden_layer_sizes=(32,), max_iter=60,
                        random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.93


# ---- dropout ---------------------------------------------------------------------------------

def test_dropout_is_deterministic_given_random_state(digits):
    X_train, X_test, y_train, _ = digits
    settings = dict(hidden_layer_sizes=(20,), dropout=0.3, max_iter=5)
    first, second, other = (MLPClassifier(random_state=seed, **settings).fit(X_train, y_train)
                            for seed in (0, 0, 1))
    assert_same_weights(first, second, rtol=0)
    assert not np.allclose(first.coefs_[0], other.coefs_[0])
    without = MLPClassifier(random_state=0, **{**settings, "dropout": 0.0}).fit(X_train, y_train)
    assert not np.allclose(first.coefs_[0], without.coefs_[0])
    # prediction is in evaluation mode: no masks
    np.testing.assert_array_equal(first.predict_proba(X_test), first.predict_proba(X_test))


def test_dropout_trains_and_predicts_without_masks(digits):
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier(hidden_layer_sizes=(64,), dropout=0.5, max_iter=60,
                        random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.93
    hidden = np.maximum(X_test @ clf.coefs_[0] + clf.intercepts_[0], 0)
    logits = hidden @ clf.coefs_[1] + clf.intercepts_[1]
    np.testing.assert_allclose(clf.predict_proba(X_test), references.activation(logits, "softmax"),
                               rtol=1e-10, atol=1e-14)


# ---- batch normalization ---------------------------------------------------------------------

def test_batch_norm_normalizes_between_dense_and_activation(digits):
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier(hidden_layer_sizes=(32,), batch_norm=True, max_iter=40,
                        random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.93
    params, buffers = clf._net.named_parameters(), clf._net.named_buffers()
    (gamma,) = [v for k, v in params.items() if k.endswith("gamma")]
    (beta,) = [v for k, v in params.items() if k.endswith("beta")]
    (mean,) = [v for k, v in buffers.items() if k.endswith("running_mean")]
    (var,) = [v for k, v in buffers.items() if k.endswith("running_var")]
    assert not np.allclose(mean, 0) and not np.allclose(gamma, 1)
    Z = X_test @ clf.coefs_[0] + clf.intercepts_[0]
    hidden = np.maximum((Z - mean) / np.sqrt(var + 1e-5) * gamma + beta, 0)
    logits = hidden @ clf.coefs_[1] + clf.intercepts_[1]
    np.testing.assert_allclose(clf.predict_proba(X_test), references.activation(logits, "softmax"),
                               rtol=1e-9, atol=1e-12)
    # the running statistics predict: a row alone gets what it gets among others
    np.testing.assert_allclose(clf.predict_proba(X_test[:1]), clf.predict_proba(X_test)[:1])


def test_batch_norm_auto_batches_never_leave_one_row(diabetes):
    X, y = diabetes
    X, y = X[:401], y[:401]  # 2 * 200 + 1 rows
    reg = MLPRegressor(hidden_layer_sizes=(8,), batch_norm=True, max_iter=3,
                       random_state=0).fit(X, y)
    assert reg.n_iter_ == 3
    with pytest.raises(ValueError, match="at least 2 rows"):
        MLPRegressor(batch_norm=True, batch_size=100, max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="n_samples = 1"):
        MLPRegressor(batch_norm=True).fit(X[:1], y[:1])


def test_early_stopping_keeps_the_best_epochs_running_statistics(digits):
    X_train, _, y_train, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(16,), batch_norm=True, dropout=0.2,
                        early_stopping=True, learning_rate_init=0.05, n_iter_no_change=3,
                        max_iter=30, random_state=0).fit(X_train, y_train)
    X_val, y_val = early_stopping_split(clf, X_train, y_train)
    assert np.argmax(clf.validation_scores_) < clf.n_iter_ - 1
    assert clf.score(X_val, y_val) == clf.best_validation_score_


@pytest.mark.parametrize("settings", [dict(dropout=0.1), dict(batch_norm=True)])
def test_dropout_and_batch_norm_need_a_stochastic_solver(digits, settings):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="solver='sgd' or 'adam'"):
        MLPClassifier(solver="lbfgs", **settings).fit(X_train, y_train)


def test_invalid_extras_are_refused(digits):
    X_train, _, y_train, _ = digits
    for estimator in (MLPClassifier(dropout=1.0), MLPClassifier(dropout=-0.1),
                      MLPClassifier(batch_norm="yes"), MLPClassifier(class_weight="even"),
                      MLPClassifier(activation="sigmoid"), MLPRegressor(loss="huber",
                                                                        huber_delta=0),
                      MLPRegressor(loss="quantile")):
        with pytest.raises(InvalidParameterError):
            estimator.fit(X_train, y_train)


# ---- warm starts that change the settings ----------------------------------------------------

def test_a_warm_start_continues_under_new_layers_and_loss(diabetes):
    X, y = diabetes
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, warm_start=True, random_state=0)
    reg.fit(X, y)
    for change in (dict(activation="gelu"), dict(dropout=0.2), dict(loss="huber"),
                   dict(huber_delta=0.3)):
        before = [c.copy() for c in reg.coefs_]
        reg.set_params(**change).fit(X, y)
        # it went on from where it was: one epoch's change, not a new start
        assert np.abs(reg.coefs_[0] - before[0]).max() < 0.05
        assert reg._net.activation == registry.ACTIVATIONS[reg.activation].name
    assert reg._net.loss_name == "huber" and reg._net.loss_options == {"delta": 0.3}
    with pytest.raises(ValueError, match="batch_norm=False"):
        reg.set_params(batch_norm=True).fit(X, y)


# ---- class weights ---------------------------------------------------------------------------

def balanced(y, sample_weight=None):
    """n_samples / (n_classes * np.bincount(y)) per sample, the counts weighted."""
    counts = np.bincount(y, weights=sample_weight)
    return (counts.sum() / (len(counts) * counts))[y]


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_balanced_class_weights_are_the_equivalent_sample_weights(digits, solver):
    X_train, _, y_train, _ = digits
    keep = (y_train < 3) | (np.arange(len(y_train)) % 4 == 0)  # classes 0-2 four times as many
    X, y = X_train[keep], y_train[keep]
    settings = dict(hidden_layer_sizes=(20,), solver=solver, learning_rate_init=0.1, max_iter=5,
                    random_state=0)
    ours = MLPClassifier(class_weight="balanced", **settings).fit(X, y)
    weighted = MLPClassifier(**settings).fit(X, y, sample_weight=balanced(y))
    assert_same_weights(ours, weighted, rtol=1e-12)
    if solver == "sgd":
        # (L-BFGS's line search with these weights parts from scikit-learn's at rounding level
        # after a few iterations, as scikit-learn's own does when the weights are scaled by 3)
        theirs = neural_network.MLPClassifier(**settings).fit(X, y, sample_weight=balanced(y))
        assert_same_weights(ours, theirs)
    # with sample weights: the counts are weighted and the weights multiply
    sample_weight = np.random.default_rng(0).integers(1, 4, size=len(y)).astype(float)
    ours = MLPClassifier(class_weight="balanced", **settings).fit(X, y,
                                                                  sample_weight=sample_weight)
    weighted = MLPClassifier(**settings).fit(
        X, y, sample_weight=sample_weight * balanced(y, sample_weight))
    assert_same_weights(ours, weighted, rtol=1e-12)


def test_class_weight_dicts_multiply_the_sample_weights(digits):
    X_train, _, y_train, _ = digits
    class_weight = {0: 3.0, 4: 0.5, 9: 0.0}
    settings = dict(hidden_layer_sizes=(20,), solver="sgd", learning_rate_init=0.1, max_iter=4,
                    random_state=0)
    ours = MLPClassifier(class_weight=class_weight, **settings).fit(X_train, y_train)
    per_sample = np.array([class_weight.get(c, 1.0) for c in y_train])
    theirs = neural_network.MLPClassifier(**settings).fit(X_train, y_train,
                                                          sample_weight=per_sample)
    assert_same_weights(ours, theirs)
    # partial_fit takes them too
    ours = MLPClassifier(class_weight=class_weight, **settings)
    theirs = neural_network.MLPClassifier(**settings)
    for estimator, weights in ((ours, None), (theirs, per_sample)):
        estimator.partial_fit(X_train, y_train, sample_weight=weights, classes=np.arange(10))
    assert_same_weights(ours, theirs)


def test_a_class_weight_for_all_the_classes_fits_data_that_lacks_some(digits):
    """As scikit-learn's: keys that are not classes are fine when every class is named (a
    cross-validation fold without some class)."""
    X_train, _, y_train, _ = digits
    keep = y_train < 8
    class_weight = {c: 1.0 + c for c in range(10)}
    settings = dict(hidden_layer_sizes=(10,), max_iter=3, random_state=0)
    ours = MLPClassifier(class_weight=class_weight, **settings).fit(X_train[keep], y_train[keep])
    weighted = MLPClassifier(**settings).fit(X_train[keep], y_train[keep],
                                             sample_weight=1.0 + y_train[keep])
    assert_same_weights(ours, weighted, rtol=0)


def test_string_labels_take_class_weights(digits):
    X_train, _, y_train, _ = digits
    labels = np.where(y_train % 2 == 0, "even", "odd")
    settings = dict(hidden_layer_sizes=(10,), max_iter=3, random_state=0)
    ours = MLPClassifier(class_weight={"odd": 2.0}, **settings).fit(X_train, labels)
    weighted = MLPClassifier(**settings).fit(X_train, labels,
                                             sample_weight=np.where(labels == "odd", 2.0, 1.0))
    assert_same_weights(ours, weighted, rtol=0)


def test_multilabel_class_weights_follow_sklearns_multi_output_rule(digits):
    X_train, _, y_train, _ = digits
    Y = np.c_[y_train % 2 == 0, y_train > 6, y_train == 7].astype(int)
    settings = dict(hidden_layer_sizes=(10,), max_iter=3, random_state=0)
    product = np.prod([balanced(Y[:, k]) for k in range(3)], axis=0)
    ours = MLPClassifier(class_weight="balanced", **settings).fit(X_train, Y)
    weighted = MLPClassifier(**settings).fit(X_train, Y, sample_weight=product)
    assert_same_weights(ours, weighted, rtol=1e-12)
    dicts = [{0: 1.0, 1: 2.0}, {1: 3.0}, {0: 0.5}]
    ours = MLPClassifier(class_weight=dicts, **settings).fit(X_train, Y)
    product = np.prod([np.where(Y[:, k] == 1, d.get(1, 1.0), d.get(0, 1.0))
                       for k, d in enumerate(dicts)], axis=0)
    weighted = MLPClassifier(**settings).fit(X_train, Y, sample_weight=product)
    assert_same_weights(ours, weighted, rtol=0)


@pytest.mark.parametrize("class_weight, target, match", [
    ({0: 1.0, 11: 2.0}, "multiclass", r"names \[11\], which are not classes, and not \[1, 2,"),
    ({0: -1.0}, "multiclass", r"class_weight\[0\] must be a finite number >= 0"),
    ({0: np.inf}, "multiclass", "finite number"),
    ({0: "heavy"}, "multiclass", "finite number"),
    ([{0: 1.0}], "multiclass", "list of class_weight dicts is for multilabel"),
    ({0: 2.0}, "multilabel", "list of dicts"),
    ([{0: 1.0}], "multilabel", "1 dicts for 2 label columns"),
    ([{0: 1.0}, {2: 1.0}], "multilabel", r"class_weight\[1\] names \[2\]"),
    ({"zero": 1.0}, "multiclass", r"names \['zero'\]"),
    ([{0: 1.0}, "balanced"], "multilabel", r"class_weight\[1\] must be a dict"),
])
def test_class_weight_errors_are_clear(digits, class_weight, target, match):
    X_train, _, y_train, _ = digits
    y = y_train if target == "multiclass" else np.c_[y_train % 2, y_train > 4].astype(int)
    with pytest.raises(ValueError, match=match):
        MLPClassifier(class_weight=class_weight, max_iter=1).fit(X_train, y)


def test_a_class_whose_samples_all_weigh_nothing_stays_at_nothing(digits):
    X_train, _, y_train, _ = digits
    sample_weight = np.where(y_train == 3, 0.0, 1.0)
    settings = dict(hidden_layer_sizes=(10,), max_iter=3, random_state=0)
    ours = MLPClassifier(class_weight="balanced", **settings).fit(X_train, y_train,
                                                                  sample_weight=sample_weight)
    counts = np.bincount(y_train, weights=sample_weight)
    per_class = np.divide(counts.sum(), 10 * counts, out=np.zeros(10), where=counts > 0)
    weighted = MLPClassifier(**settings).fit(X_train, y_train,
                                             sample_weight=sample_weight * per_class[y_train])
    assert_same_weights(ours, weighted, rtol=1e-12)


# ---- the regressor's losses ------------------------------------------------------------------

@pytest.fixture(scope="module")
def outliers():
    """A linear target with small noise; a tenth of the training targets moved up by 30."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 1.5]) + 0.1 * rng.normal(size=600)
    y_train = y[:400].copy()
    y_train[rng.choice(400, 40, replace=False)] += 30
    return X[:400], X[400:], y_train, y[400:]


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_robust_losses_learn_through_outliers(outliers, solver):
    X_train, X_test, y_train, y_test = outliers
    scores = {}
    for loss in ("squared_error", "absolute_error", "huber"):
        reg = MLPRegressor(loss=loss, hidden_layer_sizes=(10,), solver=solver, max_iter=300,
                           learning_rate_init=0.01, random_state=0).fit(X_train, y_train)
        scores[loss] = reg.score(X_test, y_test)
        if solver == "adam" and loss != "squared_error":
            assert reg.loss_curve_[-1] < 0.7 * reg.loss_curve_[0]
    assert scores["absolute_error"] > 0.98 and scores["huber"] > 0.98
    assert scores["squared_error"] < 0.5


@pytest.mark.parametrize("loss", ["absolute_error", "huber"])
def test_the_reported_loss_is_the_documented_objective(diabetes, loss):
    X, y = diabetes
    reg = MLPRegressor(loss=loss, huber_delta=0.5, hidden_layer_sizes=(10,), solver="lbfgs",
                       alpha=0.1, max_iter=50, random_state=0).fit(X, y)
    residual = np.abs(reg.predict(X) - y)
    per_sample = residual if loss == "absolute_error" else np.where(
        residual <= 0.5, residual ** 2 / 2, 0.5 * (residual - 0.25))
    penalty = 0.05 * sum((W ** 2).sum() for W in reg.coefs_) / len(y)
    np.testing.assert_allclose(reg.loss_, per_sample.mean() + penalty, rtol=1e-10)
    assert reg.score(X, y) > 0.45


def test_huber_with_a_large_delta_is_the_squared_error(diabetes):
    X, y = diabetes
    settings = dict(hidden_layer_sizes=(10,), solver="sgd", learning_rate_init=0.01, max_iter=5,
                    random_state=0)
    huber = MLPRegressor(loss="huber", huber_delta=1e6, **settings).fit(X, y)
    theirs = neural_network.MLPRegressor(**settings).fit(X, y)
    assert_same_weights(huber, theirs, rtol=1e-9)
    np.testing.assert_allclose(huber.loss_curve_, theirs.loss_curve_, rtol=1e-9)


def test_several_outputs_report_the_loss_averaged_over_them(diabetes):
    X, y = diabetes
    Y = np.c_[y, -y]
    one = MLPRegressor(loss="absolute_error", solver="lbfgs", alpha=0.0, max_iter=20,
                       random_state=0, hidden_layer_sizes=(10,)).fit(X, Y)
    np.testing.assert_allclose(one.loss_, np.abs(one.predict(X) - Y).mean(), rtol=1e-10)


# ---- validation_loss_curve_ ------------------------------------------------------------------

@pytest.mark.parametrize("epochs", [1, 2, 3])
def test_validation_loss_curve_is_the_loss_on_the_validation_part(digits, epochs):
    X_train, _, y_train, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(10,), early_stopping=True, alpha=0.01,
                        max_iter=epochs, n_iter_no_change=100, random_state=0)
    clf.fit(X_train, y_train)
    assert len(clf.validation_loss_curve_) == len(clf.validation_scores_) == clf.n_iter_ == epochs
    # the fit ends with the best epoch's weights: the loss it recorded is theirs
    best = int(np.argmax(clf.validation_scores_))
    X_val, y_val = early_stopping_split(clf, X_train, y_train)
    assert clf.score(X_val, y_val) == clf.validation_scores_[best]
    penalty = 0.005 * sum((W ** 2).sum() for W in clf.coefs_) / len(y_val)
    expected = log_loss(y_val, clf.predict_proba(X_val), labels=clf.classes_) + penalty
    np.testing.assert_allclose(clf.validation_loss_curve_[best], expected, rtol=1e-10)


def test_validation_loss_curve_of_several_regression_outputs(diabetes):
    X, y = diabetes
    Y = np.c_[y, y ** 2]
    reg = MLPRegressor(hidden_layer_sizes=(10,), early_stopping=True, alpha=0.1, max_iter=1,
                       learning_rate_init=0.01, random_state=0).fit(X, Y)
    X_val, Y_val = early_stopping_split(reg, X, Y)
    penalty = 0.05 * sum((W ** 2).sum() for W in reg.coefs_) / len(Y_val)
    expected = ((reg.predict(X_val) - Y_val) ** 2).mean() / 2 + penalty
    np.testing.assert_allclose(reg.validation_loss_curve_, [expected], rtol=1e-10)


def test_validation_loss_curve_is_none_without_early_stopping(diabetes):
    X, y = diabetes
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=2).fit(X, y)
    assert reg.validation_loss_curve_ is None and reg.validation_scores_ is None


def test_validation_curves_start_when_a_warm_start_turns_early_stopping_on(diabetes):
    X, y = diabetes
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, warm_start=True,
                       random_state=0).fit(X, y)
    reg.set_params(early_stopping=True).fit(X, y)
    assert len(reg.validation_scores_) == len(reg.validation_loss_curve_) == 2
    reg.set_params(early_stopping=False).fit(X, y)
    assert reg.validation_scores_ is None and np.isfinite(reg.best_loss_)


# ---- a diverging fit -------------------------------------------------------------------------

def test_a_diverging_fit_with_early_stopping_goes_on_as_sklearns():
    """scikit-learn's weights become NaN and stay so; fastnn records the same epochs without
    ever holding NaN, and both end with the best epoch's weights."""
    X, y = load_iris(return_X_y=True)
    settings = dict(hidden_layer_sizes=100, activation="identity", solver="sgd",
                    learning_rate_init=1, max_iter=20, early_stopping=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scikit-learn's overflows
        theirs = neural_network.MLPRegressor(**settings).fit(X, y)
    with pytest.warns(RuntimeWarning, match="became NaN or infinite in epoch 6"):
        ours = MLPRegressor(**settings).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 20
    for mine, reference in ((ours.loss_curve_, theirs.loss_curve_),
                            (ours.validation_scores_, theirs.validation_scores_)):
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(reference))
        np.testing.assert_allclose(np.nan_to_num(mine), np.nan_to_num(reference), rtol=1e-9)
    assert np.isnan(ours.validation_loss_curve_[-1])
    assert_same_weights(ours, theirs, rtol=1e-9)
    assert np.isfinite(ours._net.params).all() and np.isfinite(ours.predict(X)).all()


# ---- coefs_ set by hand ----------------------------------------------------------------------

def test_coefs_set_by_hand_are_the_model(diabetes):
    X, y = diabetes
    reg = MLPRegressor(hidden_layer_sizes=(6,), max_iter=2, random_state=0).fit(X, y)
    W0 = np.full_like(reg.coefs_[0], 0.1)
    reg.coefs_[0] = W0
    expected = np.maximum(X @ W0 + reg.intercepts_[0], 0) @ reg.coefs_[1] + reg.intercepts_[1]
    np.testing.assert_allclose(reg.predict(X), expected.ravel(), rtol=1e-12)
    assert np.shares_memory(reg.coefs_[0], reg._net.params)
    copy = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(copy.predict(X), reg.predict(X))
    reg.coefs_ = [W0, np.zeros((5, 1))]
    with pytest.raises(ValueError, match=r"coefs_\[1\] has 5 rows for a layer of 6 units"):
        reg.predict(X)
    reg.coefs_ = [W0, np.zeros(6)]
    with pytest.raises(ValueError, match=r"coefs_\[1\] must be a matrix"):
        reg.predict(X)
    reg.coefs_ = [W0, np.full((6, 1), np.nan)]
    with pytest.raises(ValueError, match="NaN"):
        reg.predict(X)


def test_partial_fit_continues_from_coefs_set_by_hand(digits):
    """A model built from its public attributes, as scikit-learn's test_fit builds one, goes on
    from them as scikit-learn's does."""
    X_train, _, y_train, _ = digits
    X, y = X_train[:50], (y_train[:50] > 4).astype(int)
    rng = np.random.default_rng(0)
    coefs = [rng.normal(size=(64, 3)), rng.normal(size=(3, 1))]
    intercepts = [rng.normal(size=3), rng.normal(size=1)]
    settings = dict(hidden_layer_sizes=(3,), solver="sgd", momentum=0, random_state=0)
    theirs, ours = neural_network.MLPClassifier(**settings), MLPClassifier(**settings)
    for model in (theirs, ours):
        model.coefs_ = [c.copy() for c in coefs]
        model.intercepts_ = [b.copy() for b in intercepts]
        model.n_features_in_, model.out_activation_ = 64, "logistic"
    # what scikit-learn needs besides; fastnn derives or starts them
    theirs.n_outputs_, theirs.n_layers_, theirs.t_, theirs.n_iter_ = 1, 3, 0, 0
    theirs.loss_curve_, theirs.best_loss_, theirs._no_improvement_count = [], np.inf, 0
    for model in (theirs, ours):
        model.partial_fit(X, y, classes=[0, 1])
    assert ours.n_layers_ == 3 and ours.n_outputs_ == 1
    assert_same_weights(ours, theirs)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-9)
