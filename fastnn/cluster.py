"""fastnn on a Dask cluster (``pip install "fastnn-cpu[dask]"``): batch prediction block by
block on the workers, and BLAS threads per worker for searches.

Training on Dask collections needs nothing from here: `fastnn.training.fit` reads a Dask array
or DataFrame as a stream (`fastnn.streams`), computing one block at a time where the scheduler
puts it. Searches need nothing either: scikit-learn's ``GridSearchCV`` and
``RandomizedSearchCV`` run the `fastnn.sklearn` estimators on the workers under
``joblib.parallel_config(backend="dask")``; `limit_blas_threads` keeps their BLAS from
oversubscribing the cores.

Design
------
- A lazy prediction is one task that holds the model (a ``dask.delayed`` of it) and one task per
  block of X that takes the block and that task's result: the model is serialized once and sent
  to each worker once, however many blocks there are, rather than once per block.
- The output's shape and dtype are learned by running the method on one row of zeros here, so
  building the result computes nothing.
- This module imports Dask only inside its functions: `fastnn.network` and `fastnn.sklearn` come
  here only for an X that is a Dask collection, when Dask is imported already.
"""
import uuid

import numpy as np

from fastnn._extras import require

__all__ = ["lazy_predict", "limit_blas_threads"]


def lazy_predict(model, method, X):
    """``getattr(model, method)(X)`` for a Dask array or DataFrame X, as a lazy Dask result
    computed block by block on the workers, the model sent once.

    Parameters
    ----------
    model : fastnn.MLP or fastnn.sklearn estimator
        Fitted; its ``method`` maps an (N, n_features) array to N rows of outputs.
    method : str
        "forward", "predict", "predict_proba", "predict_log_proba", ...
    X : dask.array.Array or dask.dataframe.DataFrame
        Of shape (N, n_features). A Dask array may have several column blocks (they are joined).

    Returns
    -------
    dask.array.Array or dask.dataframe.Series or dask.dataframe.DataFrame
        For an array X, an array of the row blocks of X; for a DataFrame, a Series (1-D outputs,
        such as class labels) or a DataFrame with columns 0, 1, ... on X's index.
    """
    dask = require("dask", "predicting on a Dask collection")
    n_features = X.shape[1]
    if not isinstance(n_features, (int, np.integer)):
        raise ValueError("X has an unknown number of columns")
    apply = getattr(model, method)
    sample = np.asarray(apply(np.zeros((1, int(n_features)))))
    held = dask.delayed(model, name=f"fastnn-model-{uuid.uuid4().hex}", pure=True)
    if hasattr(X, "map_partitions"):
        pandas = require("pandas", "predicting on a Dask DataFrame")
        meta = (pandas.Series(sample[:0], dtype=sample.dtype) if sample.ndim == 1
                else pandas.DataFrame(sample[:0]))
        return X.map_partitions(_frame_block, held, method, meta=meta)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-dimensional (n_samples, n_features), got shape {X.shape}")
    X = X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X
    if sample.ndim == 1:
        return X.map_blocks(_array_block, held, method, sample[:0], dtype=sample.dtype,
                            drop_axis=1, chunks=(X.chunks[0],))
    return X.map_blocks(_array_block, held, method, sample[:0], dtype=sample.dtype,
                        chunks=(X.chunks[0], (sample.shape[1],)))


def _array_block(block, model, method, empty):
    """The method's outputs for one block (on a worker); ``empty`` shapes those of no rows."""
    if block.shape[0] == 0:
        return np.empty((0, *empty.shape[1:]), dtype=empty.dtype)
    return np.asarray(getattr(model, method)(block))


def _frame_block(frame, model, method):
    """The method's outputs for one partition (on a worker), on its index."""
    import pandas

    if len(frame) == 0:
        outputs = np.asarray(getattr(model, method)(np.zeros((1, frame.shape[1]))))[:0]
    else:
        outputs = np.asarray(getattr(model, method)(frame))
    if outputs.ndim == 1:
        return pandas.Series(outputs, index=frame.index)
    return pandas.DataFrame(outputs, index=frame.index)


def limit_blas_threads(client, threads=1):
    """Limit the BLAS of each worker of ``client``, present and future, to ``threads`` threads.

    A search runs one fit per worker thread at once; each fit's matrix products would otherwise
    start as many BLAS threads as the machine has cores, and the cluster would run (worker
    threads x cores) threads on its cores. fastnn's own measurements: one BLAS thread per
    concurrent fit gives the best throughput for small and medium networks.

    The limit is set by a worker plugin with threadpoolctl when a worker starts (and now, on the
    running ones), after importing fastnn, so that SciPy's BLAS, which fastnn's kernels call, is
    loaded and limited as well as NumPy's. Starting the workers with ``OPENBLAS_NUM_THREADS=1``
    (and ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``) in their environment does the same.

    Parameters
    ----------
    client : distributed.Client
    threads : int, default 1
        BLAS threads per worker process (>= 1).

    Returns
    -------
    distributed.diagnostics.plugin.WorkerPlugin
        The plugin registered.
    """
    from fastnn._validation import check_int

    threads = check_int("threads", threads, 1)
    distributed = require("distributed", "limiting the BLAS threads of Dask workers")
    require("threadpoolctl", "limiting the BLAS threads of Dask workers")

    class BlasThreads(distributed.WorkerPlugin):
        """Holds the BLAS of a worker to ``threads`` threads from its start to its end."""

        name = "fastnn-blas-threads"

        def __init__(self, threads):
            self.threads = threads

        def setup(self, worker):
            import threadpoolctl

            import fastnn  # noqa: F401 (loads SciPy's BLAS, so that it is limited too)

            self.limits = threadpoolctl.threadpool_limits(limits=self.threads, user_api="blas")

        def teardown(self, worker):
            self.limits.restore_original_limits()

    plugin = BlasThreads(threads)
    client.register_plugin(plugin)
    return plugin
