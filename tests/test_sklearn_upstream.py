"""scikit-learn's own MLP test module, run against fastnn.sklearn's estimators.

Nothing is copied by hand: at collection, this module reads the installed
``sklearn/neural_network/tests/test_mlp.py``, replaces its import of scikit-learn's
``MLPClassifier`` and ``MLPRegressor`` with fastnn.sklearn's, and runs the result in its own
namespace, so pytest collects scikit-learn's test functions with their parametrizations, under
their own names and line numbers. The tests that read scikit-learn's private state, which
fastnn's estimators do not have, are strict expected failures, each with its reason in `XFAIL`
(strict: one that starts passing fails the run, and its entry goes). The module skips itself
when scikit-learn's tests are not installed.
"""
import importlib.util
import re

import pytest

pytest.importorskip("sklearn")
try:
    _spec = importlib.util.find_spec("sklearn.neural_network.tests.test_mlp")
except ImportError:  # sklearn.neural_network.tests itself is not installed
    _spec = None
if _spec is None or _spec.origin is None:
    pytest.skip("scikit-learn's test module sklearn/neural_network/tests/test_mlp.py is not "
                "installed", allow_module_level=True)

UPSTREAM_IMPORT = re.compile(r"^from sklearn\.neural_network import MLPClassifier, MLPRegressor$",
                             re.MULTILINE)
FASTNN_IMPORT = "from fastnn.sklearn import MLPClassifier, MLPRegressor"

# test name: why it fails with fastnn's estimators
XFAIL = {
    "test_gradient": (
        "reads scikit-learn's private `_loss_grad_lbfgs(packed, X, Y, sample_weight, "
        "activations, deltas, coef_grads, intercept_grads)` to compare its gradient with finite "
        "differences; fastnn's gradient is the compiled `MLP.gradients` (checked against finite "
        "differences in tests/test_gradients.py)"),
    "test_learning_rate_warmstart": (
        "reads `_optimizer.learning_rate`, an attribute of scikit-learn's private SGDOptimizer; "
        "fastnn's `_optimizer` is a fastnn.SGD whose rate is `lr` (the 'invscaling' rates after "
        "warm starts are scikit-learn's: tests/test_sklearn.py reproduces its weights)"),
    "test_adaptive_learning_rate": (
        "reads `_optimizer.learning_rate` of scikit-learn's private SGDOptimizer (fastnn.SGD's "
        "is `lr`); the 'adaptive' schedule itself is scikit-learn's, reproduced to rounding in "
        "tests/test_sklearn.py"),
}


def _upstream_source(path):
    """The upstream module's text with fastnn's estimators imported in place of scikit-learn's
    (the line count, hence every line number in a traceback, is unchanged)."""
    with open(path, encoding="utf-8") as file:
        source = file.read()
    source, count = UPSTREAM_IMPORT.subn(FASTNN_IMPORT, source)
    if count != 1:
        raise RuntimeError(f"{path} no longer imports MLPClassifier and MLPRegressor in one "
                           f"line; update UPSTREAM_IMPORT")
    return source


exec(compile(_upstream_source(_spec.origin), _spec.origin, "exec"), globals())


def _mark_expected_failures():
    """Mark the tests of `XFAIL` as strict expected failures, and check that each exists."""
    missing = set(XFAIL) - set(globals())
    if missing:
        raise RuntimeError(f"scikit-learn's test module has no {sorted(missing)}; update XFAIL")
    for name, reason in XFAIL.items():
        globals()[name] = pytest.mark.xfail(reason=reason, strict=True)(globals()[name])


_mark_expected_failures()


@pytest.fixture
def global_random_seed():
    """scikit-learn's conftest fixture at its default value (its tests run with seed 42 unless
    SKLEARN_TESTS_GLOBAL_RANDOM_SEED says otherwise)."""
    return 42


def test_the_upstream_estimators_are_fastnns():
    """The module under test runs fastnn's estimators, not scikit-learn's."""
    import fastnn.sklearn

    assert MLPClassifier is fastnn.sklearn.MLPClassifier  # noqa: F821 (from the exec above)
    assert MLPRegressor is fastnn.sklearn.MLPRegressor  # noqa: F821
