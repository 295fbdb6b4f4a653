"""fastnn on a Dask cluster: a grid search on the workers, training on a Dask array that never
sits whole in memory, and a lazy batch prediction.

Run: ``python examples/dask_cluster.py`` (needs ``pip install "fastnn-cpu[dask,sklearn]"``). It
starts a LocalCluster of two worker processes; give ``Client`` a scheduler's address instead to
use a real cluster (every worker needs fastnn installed).
"""
import dask.array as da
import joblib
from distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV

import fastnn
from fastnn.cluster import limit_blas_threads
from fastnn.datasets import load_digits
from fastnn.sklearn import MLPClassifier

if __name__ == "__main__":
    client = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    limit_blas_threads(client)          # one BLAS thread per concurrent fit

    X, y = load_digits()
    search = GridSearchCV(MLPClassifier(max_iter=50, random_state=0),
                          {"hidden_layer_sizes": [(32,), (64,)], "alpha": [1e-4, 1e-2]}, cv=3)
    with joblib.parallel_config(backend="dask"):
        search.fit(X / 16, y)
    print("search:", search.best_params_, round(search.best_score_, 4))

    # A Dask array kept in the workers' memory: each epoch sends its blocks one at a time from
    # there (not persisted, each epoch would compute every block again)
    big = da.concatenate([da.from_array(X / 16, chunks=(600, 64))] * 20)
    labels = da.concatenate([da.from_array(y, chunks=600)] * 20)
    big, labels = client.persist([big, labels])
    net = fastnn.MLP([64, 64, 10], output_activation="softmax", loss="cross_entropy", seed=0)
    history = net.fit(big, labels, epochs=3, batch_size=64, seed=0)
    print("streamed training, loss per epoch:", [round(v, 4) for v in history.loss])

    probabilities = net.predict(big)    # lazy: nothing is computed yet
    print("accuracy:", (probabilities.argmax(axis=1) == labels).mean().compute())
    client.close()
