"""fastnn on a Dask cluster (fastnn.cluster, fastnn.streams): a LocalCluster of two worker
processes runs a grid search with the results of one without Dask, streams a Dask array and
DataFrame into the in-memory fit's weights, trains under dask-ml's Incremental, and predicts
lazily, the model sent once."""
import os
import warnings

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
pytest.importorskip("sklearn")

import joblib
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

import fastnn
from fastnn.cluster import limit_blas_threads
from fastnn.sklearn import MLPClassifier

ROWS, FEATURES, CLASSES = 1003, 5, 3


@pytest.fixture(scope="module")
def client():
    """A client of two worker processes of one thread each, whose workers import this fastnn
    (its folder on their PYTHONPATH) with their BLAS on one thread."""
    folder = os.path.dirname(os.path.dirname(fastnn.__file__))
    # LocalCluster also sets OMP_NUM_THREADS and OPENBLAS_NUM_THREADS to 1 in this process's
    # environment and leaves them: the processes later tests start would inherit a BLAS limit
    environment = dict(os.environ)
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = folder + (os.pathsep + path if path else "")
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            limit_blas_threads(client)
            yield client
    finally:
        os.environ.clear()
        os.environ.update(environment)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, FEATURES))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    return X, y


def network():
    return fastnn.MLP([FEATURES, 16, CLASSES], activation="tanh", output_activation="softmax",
                      loss="cross_entropy", seed=1)


def test_the_workers_blas_runs_on_one_thread(client):
    from threadpoolctl import threadpool_info

    def blas_threads():
        import fastnn  # noqa: F401 (SciPy's BLAS, which the kernels call, is loaded)

        return {info["filepath"]: info["num_threads"] for info in threadpool_info()
                if info["user_api"] == "blas"}

    for threads in client.run(blas_threads).values():
        assert threads and set(threads.values()) == {1}


@pytest.mark.parametrize("search", [
    lambda: GridSearchCV(MLPClassifier(max_iter=30, random_state=0),
                         {"hidden_layer_sizes": [(4,), (16,)], "alpha": [1e-4, 1.0]}, cv=3),
    lambda: RandomizedSearchCV(MLPClassifier(max_iter=30, random_state=0),
                               {"hidden_layer_sizes": [(4,), (8,), (16,)],
                                "learning_rate_init": [1e-3, 1e-2]}, n_iter=3, cv=2,
                               random_state=0),
])
def test_a_search_on_the_cluster_finds_what_it_finds_without_dask(client, data, search):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the short fits
        local = search().fit(X, y)
        with joblib.parallel_config(backend="dask"), \
                distributed.get_task_stream(client) as tasks:
            remote = search().fit(X, y)
    assert tasks.data, "the search ran no task on the workers"
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(remote.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"], rtol=1e-12)
    np.testing.assert_allclose(remote.best_estimator_.coefs_[0], local.best_estimator_.coefs_[0],
                               rtol=1e-12, atol=1e-12)


def test_a_dask_array_streams_to_the_in_memory_weights(client, data):
    X, y = data
    expected, streamed = network(), network()
    options = dict(epochs=2, batch_size=32, shuffle=False, optimizer=fastnn.Adam(lr=1e-2))
    history = expected.fit(X, y, validation_data=(X[:200], y[:200]), **options)
    options["optimizer"] = fastnn.Adam(lr=1e-2)
    # blocks of 150 rows: batches of 32 straddle them
    X_dask, y_dask = da.from_array(X, chunks=(150, FEATURES)), da.from_array(y, chunks=150)
    streamed_history = streamed.fit(X_dask, y_dask, validation_data=(X_dask[:200], y_dask[:200]),
                                    **options)
    np.testing.assert_allclose(streamed.params, expected.params, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(streamed_history.val_loss, history.val_loss, rtol=1e-12)


def test_a_dask_dataframe_streams_to_the_in_memory_weights(client, data):
    pandas = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, y = data
    expected, streamed = network(), network()
    expected.fit(X, y, epochs=2, batch_size=32, shuffle=False)
    frame = dd.from_pandas(pandas.DataFrame(X, columns=list("abcde")), npartitions=4)
    target = dd.from_pandas(pandas.Series(y), npartitions=4)
    streamed.fit(frame, target, epochs=2, batch_size=32, shuffle=False)
    np.testing.assert_allclose(streamed.params, expected.params, rtol=1e-12, atol=1e-12)


def test_persisted_collections_stream_from_their_futures(client, data, monkeypatch):
    pandas = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    from fastnn import streams

    X, y = data
    expected = network()
    expected.fit(X, y, epochs=2, batch_size=32, shuffle=False)
    arrays = client.persist([da.from_array(X, chunks=(150, FEATURES)),
                             da.from_array(y, chunks=150)])
    frames = client.persist([dd.from_pandas(pandas.DataFrame(X, columns=list("abcde")),
                                            npartitions=4),
                             dd.from_pandas(pandas.Series(y), npartitions=4)])
    distributed.wait([*arrays, *frames])
    # the held blocks are gathered as they are: no block is computed again
    monkeypatch.setattr(client, "compute", None)
    for X_dask, y_dask in (arrays, frames):
        assert all(isinstance(piece, distributed.Future)
                   for piece in streams._pieces(X_dask, None))
        streamed = network()
        streamed.fit(X_dask, y_dask, epochs=2, batch_size=32, shuffle=False)
        np.testing.assert_allclose(streamed.params, expected.params, rtol=1e-12, atol=1e-12)


def test_a_shuffled_dask_stream_is_reproducible(client, data):
    X, y = data
    X_dask, y_dask = da.from_array(X, chunks=(150, FEATURES)), da.from_array(y, chunks=150)
    nets = [network(), network()]
    for net in nets:
        net.fit(X_dask, y_dask, epochs=2, seed=7)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)


def test_partial_fit_under_dask_ml_incremental(client, data):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = data
    X_dask, y_dask = da.from_array(X, chunks=(250, FEATURES)), da.from_array(y, chunks=250)
    incremental = wrappers.Incremental(MLPClassifier(hidden_layer_sizes=(8,), random_state=0),
                                       scoring="accuracy", shuffle_blocks=False)
    incremental.fit(X_dask, y_dask, classes=np.arange(CLASSES))
    expected = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    for start in range(0, ROWS, 250):
        expected.partial_fit(X[start:start + 250], y[start:start + 250],
                             classes=np.arange(CLASSES))
    for got, want in zip(incremental.estimator_.coefs_, expected.coefs_):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(incremental.predict(X_dask).compute(), expected.predict(X))


def model_tasks(result):
    """The keys of ``result``'s graph that hold the model."""
    return [key for key in dict(result.__dask_graph__())
            if str(key[0] if isinstance(key, tuple) else key).startswith("fastnn-model")]


def test_a_lazy_forward_equals_the_in_memory_one_and_sends_the_model_once(client, data):
    X, _ = data
    net = network()
    X_dask = da.from_array(X, chunks=(100, FEATURES))
    outputs = net.forward(X_dask)
    assert isinstance(outputs, da.Array) and outputs.shape == (ROWS, CLASSES)
    assert outputs.numblocks == (11, 1)
    assert len(model_tasks(outputs)) == 1
    np.testing.assert_allclose(outputs.compute(), net.forward(X), rtol=1e-12, atol=1e-15)


def test_lazy_predictions_of_the_estimators(client, data):
    pandas = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, y)
    X_dask = da.from_array(X, chunks=(300, FEATURES))
    for method in ("predict", "predict_proba", "predict_log_proba"):
        lazy = getattr(clf, method)(X_dask)
        assert isinstance(lazy, da.Array) and len(model_tasks(lazy)) == 1
        np.testing.assert_allclose(lazy.compute(), getattr(clf, method)(X), rtol=1e-12)
    frame = dd.from_pandas(pandas.DataFrame(X), npartitions=3)
    labels = clf.predict(frame)
    assert isinstance(labels, dd.Series)
    np.testing.assert_array_equal(labels.compute().to_numpy(), clf.predict(X))
