"""fastnn.sklearn's estimators in scikit-learn Pipelines (after a StandardScaler) convert with
skl2onnx.to_onnx once `fastnn.sklearn.register_skl2onnx` has run, as scikit-learn's own MLPs do:
the same outputs (label and probabilities, a ZipMap by default; variable), whose values
onnxruntime computes equal to the pipeline's predictions (float64 to 1e-12, float32 to 1e-6) for
every layer kind fastnn.sklearn builds (batch normalization, dropout, fastnn's activations)."""
import warnings

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")

from sklearn.neural_network import MLPClassifier as SklearnClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastnn.sklearn as fsk

from helpers import assert_onnx_close, onnx_session

BATCHES = (1, 1000)


@pytest.fixture(scope="module", autouse=True)
def registered():
    fsk.register_skl2onnx()


def fitted(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_pipeline(StandardScaler(), estimator).fit(X, y)


def classification_data(kind, rng, n=150):
    X = rng.normal(size=(n, 4)) * [1, 10, 0.1, 3] + [0, 5, 0, -2]
    if kind == "text":
        return X, rng.choice(["ant", "bee", "cat"], n)
    if kind == "binary":
        return X, rng.choice([3, 7], n)
    return X, (rng.uniform(size=(n, 3)) > 0.5).astype(int)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["text", "binary", "multilabel"])
@pytest.mark.parametrize("settings", [
    {}, {"activation": "gelu", "batch_norm": True, "dropout": 0.2}, {"activation": "elu"}])
def test_skl2onnx_pipeline_classifier(kind, settings, dtype):
    rng = np.random.default_rng(0)
    X, y = classification_data(kind, rng)
    estimator = fsk.MLPClassifier(hidden_layer_sizes=(8, 5), max_iter=20, random_state=0,
                                  **settings)
    pipeline = fitted(estimator, X.astype(dtype), y)
    model = skl2onnx.to_onnx(pipeline, X[:1].astype(dtype),
                             options={id(estimator): {"zipmap": False}})
    run = onnx_session(model)
    for rows in BATCHES:
        Xb = rng.normal(size=(rows, 4)).astype(dtype)
        label, probabilities = run.run(None, {"X": Xb})
        assert_onnx_close(probabilities, pipeline.predict_proba(Xb), dtype)
        assert np.array_equal(label, pipeline.predict(Xb))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_skl2onnx_pipeline_regressor(dtype):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 4))
    Y = np.stack([X[:, 0] - X[:, 1], X[:, 2] * 2], axis=1)
    pipeline = fitted(fsk.MLPRegressor(hidden_layer_sizes=(6,), activation="softplus",
                                       max_iter=20, random_state=0), X.astype(dtype), Y)
    run = onnx_session(skl2onnx.to_onnx(pipeline, X[:1].astype(dtype)))
    assert [o.name for o in run.get_outputs()] == ["variable"]
    for rows in BATCHES:
        Xb = rng.normal(size=(rows, 4)).astype(dtype)
        (variable,) = run.run(None, {"X": Xb})
        assert_onnx_close(variable, pipeline.predict(Xb), dtype)


def test_skl2onnx_outputs_as_for_sklearns_own_mlp():
    """With skl2onnx's defaults (a ZipMap of the probabilities), the graph's outputs have the
    names and types of scikit-learn's MLPClassifier's, and the same values."""
    rng = np.random.default_rng(2)
    X, y = classification_data("text", rng)
    ours = fitted(fsk.MLPClassifier(hidden_layer_sizes=(5,), max_iter=10, random_state=0), X, y)
    theirs = fsk.to_sklearn(ours[-1])
    theirs = make_pipeline(ours[0], theirs)
    runs = [onnx_session(skl2onnx.to_onnx(p, X[:1].astype(np.float32))) for p in (ours, theirs)]
    assert ([(o.name, o.type) for o in runs[0].get_outputs()]
            == [(o.name, o.type) for o in runs[1].get_outputs()])
    Xf = X.astype(np.float32)
    (label_a, proba_a), (label_b, proba_b) = (run.run(None, {"X": Xf}) for run in runs)
    assert np.array_equal(label_a, label_b)
    assert [set(row) for row in proba_a] == [set(row) for row in proba_b]
    for a, b in zip(proba_a, proba_b):
        np.testing.assert_allclose([a[k] for k in sorted(a)], [b[k] for k in sorted(b)],
                                   rtol=1e-6, atol=1e-6)


def test_sklearns_own_mlp_still_converts():
    rng = np.random.default_rng(4)
    X, y = classification_data("binary", rng)
    pipeline = fitted(SklearnClassifier(hidden_layer_sizes=(4,), max_iter=10, random_state=0),
                      X, y)
    label, _ = onnx_session(skl2onnx.to_onnx(pipeline, X[:1].astype(np.float32))).run(
        None, {"X": X.astype(np.float32)})
    assert np.array_equal(label, pipeline.predict(X))
