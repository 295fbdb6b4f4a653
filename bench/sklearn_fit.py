"""Time `fit` of fastnn.sklearn against scikit-learn's own MLP estimators, same data and settings.

Run from the project root (unsetting the OpenBLAS overrides in this command only, see DESIGN.md):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python bench/sklearn_fit.py

`--threads 1` limits the BLAS of both libraries to one thread: on a shared, loaded machine
two-thread BLAS calls on these small matrices wait for a busy core and both libraries slow down
several-fold. Each case fits both estimators ``--repeats`` times with the same random_state,
alternating them so that both see the same machine load, and prints the median fit time, the
ratio, the number of epochs or iterations, and the held-out accuracy (digits) or R^2 (diabetes,
standardized).
"""
import argparse
import statistics
import time
import warnings

import numpy as np
import sklearn
import threadpoolctl
from sklearn import neural_network
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastnn
from fastnn import sklearn as fastnn_sklearn

CASES = [
    ("digits", "MLPClassifier", dict()),
    ("digits", "MLPClassifier", dict(solver="sgd", learning_rate_init=0.1)),
    ("digits", "MLPClassifier", dict(solver="lbfgs")),
    ("digits", "MLPClassifier", dict(hidden_layer_sizes=(20,), batch_size=32)),
    ("diabetes", "MLPRegressor", dict(learning_rate_init=0.01, early_stopping=True)),
    ("diabetes", "MLPRegressor", dict(hidden_layer_sizes=(20,), solver="sgd",
                                      learning_rate_init=0.01)),
    ("diabetes", "MLPRegressor", dict(solver="lbfgs", alpha=10.0)),
]


def datasets():
    """Train/test splits of digits (pixels / 16) and diabetes (standardized X and y)."""
    X, y = load_digits(return_X_y=True)
    digits = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    x_scaler, y_scaler = StandardScaler().fit(X_train), StandardScaler().fit(y_train[:, None])
    diabetes = (x_scaler.transform(X_train), x_scaler.transform(X_test),
                y_scaler.transform(y_train[:, None]).ravel(),
                y_scaler.transform(y_test[:, None]).ravel())
    return {"digits": digits, "diabetes": diabetes}


def time_fit(estimator, X, y):
    started = time.perf_counter()
    estimator.fit(X, y)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="limit the BLAS threads of both libraries (default: the BLAS's own)")
    args = parser.parse_args()
    with threadpoolctl.threadpool_limits(args.threads, user_api="blas"):
        run(args.repeats)


def run(repeats):
    print(f"fastnn {fastnn.__version__} ({fastnn.__file__}), scikit-learn {sklearn.__version__}, "
          f"numpy {np.__version__}")
    for pool in threadpoolctl.threadpool_info():
        print(f"  {pool['internal_api']} {pool['version']} {pool.get('architecture')} "
              f"threads={pool['num_threads']} {pool['filepath']}")
    data = datasets()
    print(f"\n{'data':9} {'estimator':14} {'settings':52} {'sklearn s':>9} {'fastnn s':>9} "
          f"{'ratio':>6} {'iters sk/fn':>11} {'score sk':>8} {'score fn':>8}")
    warnings.simplefilter("ignore", ConvergenceWarning)
    for name, estimator, settings in CASES:
        X_train, X_test, y_train, y_test = data[name]
        settings = dict(random_state=0, **settings)
        times = {"sk": [], "fn": []}
        fitted = {}
        for _ in range(repeats):
            for key, module in (("sk", neural_network), ("fn", fastnn_sklearn)):
                fitted[key] = getattr(module, estimator)(**settings)
                times[key].append(time_fit(fitted[key], X_train, y_train))
        sk, fn = statistics.median(times["sk"]), statistics.median(times["fn"])
        shown = ", ".join(f"{k}={v}" for k, v in settings.items()
                          if k != "random_state") or "defaults"
        print(f"{name:9} {estimator:14} {shown:52} {sk:9.4f} {fn:9.4f} {sk / fn:6.1f} "
              f"{fitted['sk'].n_iter_:>5}/{fitted['fn'].n_iter_:<5} "
              f"{fitted['sk'].score(X_test, y_test):8.4f} "
              f"{fitted['fn'].score(X_test, y_test):8.4f}")


if __name__ == "__main__":
    main()
