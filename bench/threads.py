"""Threads: fastnn's BLAS thread policy, fit_many, and GridSearchCV under the threading backend.

Run from the project root as root (``--nice -10`` puts the benchmark, in a session and autogroup
of its own, ahead of other sessions' processes, as bench/ab.py does; the OpenBLAS overrides unset
in this command only, see DESIGN.md):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python bench/threads.py --nice -10

Three parts, each a ratio measured in one run:

1. The policy. Each case trains 20 epochs of Adam through `fit` with its products forced onto 1
   BLAS thread, forced onto 2, and as the policy chooses, interleaved ``--repeats`` times
   (medians; the order of the three rotates, so that none always follows another). Then again
   beside a busy neighbour: a Python busy loop, pinned nowhere, that this script starts (in its
   session, at its niceness: a process of equal rank) and stops. Goals: the policy within 10% of
   the better of 1 and 2 threads, and beside the neighbour within 1.5x its quiet time.
2. fit_many: K = 8 digits-sized networks, n_jobs=2 against one after another. Goal: >= 1.8x.
3. GridSearchCV over 8 settings, cv=3, on digits: fastnn.sklearn with n_jobs=2 under joblib's
   threading backend against scikit-learn's MLPClassifier with n_jobs=2 (processes). Goals: the
   same best parameters and score, >= 5x less wall time.
"""
import argparse
import statistics
import subprocess
import sys
import time
import warnings

import joblib
import numpy as np
import threadpoolctl
from ab import renice
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier as SklearnMLP

import fastnn
from fastnn import threads
from fastnn.sklearn import MLPClassifier as FastnnMLP

# (name, sizes, batch size, rows): digits-sized cases and one of 1e8 multiply-adds per product
CASES = [
    ("64-100-10 b200", (64, 100, 10), 200, None),
    ("64-512-10 b128", (64, 512, 10), 128, None),
    ("64-32-10 b32", (64, 32, 10), 32, None),
    ("784-512-10 b256", (784, 512, 10), 256, 512),
]
GRID = {"hidden_layer_sizes": [(50,), (100,)], "alpha": [1e-4, 1e-2],
        "learning_rate_init": [1e-3, 1e-2]}


def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


def case_data(sizes, rows):
    if rows is None:
        return digits()
    rng = np.random.default_rng(0)
    return rng.standard_normal((rows, sizes[0])), rng.integers(0, sizes[-1], rows)


def fit_time(sizes, batch, X, y, mode):
    """Seconds of 20 epochs of Adam; mode 1 or 2 forces that many BLAS threads, "policy" not."""
    net = fastnn.MLP(list(sizes), output_activation="softmax", loss="cross_entropy", seed=0)
    saved = threads.PARALLEL_WORK
    try:
        if mode == 2:
            threads.PARALLEL_WORK = 0
        with threadpoolctl.threadpool_limits(2 if mode == 2 else None, user_api="blas"), \
                threads.limit(1 if mode == 1 else 2):
            started = time.perf_counter()
            net.fit(X, y, epochs=20, batch_size=batch, seed=0)
            return time.perf_counter() - started
    finally:
        threads.PARALLEL_WORK = saved


def policy_rows(repeats):
    rows = {}
    for name, sizes, batch, n in CASES:
        X, y = case_data(sizes, n)
        times = {1: [], 2: [], "policy": []}
        fit_time(sizes, batch, X, y, "policy")  # warm-up
        modes = list(times)
        for repeat in range(repeats):
            for mode in modes[repeat % 3:] + modes[:repeat % 3]:
                times[mode].append(fit_time(sizes, batch, X, y, mode))
        rows[name] = {mode: statistics.median(t) for mode, t in times.items()}
    return rows


def busy_neighbour():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def fit_many_ratio(repeats):
    X, y = digits()

    def nets():
        return [fastnn.MLP([64, 100, 10], output_activation="softmax", loss="cross_entropy",
                           seed=k) for k in range(8)]

    one, many = [], []
    for _ in range(repeats):
        for n_jobs, out in ((1, one), (2, many)):
            batch = nets()
            started = time.perf_counter()
            fastnn.fit_many(batch, X, y, seeds=list(range(8)), epochs=20, batch_size=200,
                            n_jobs=n_jobs)
            out.append(time.perf_counter() - started)
    return statistics.median(one), statistics.median(many)


def grid_search():
    X, y = digits()
    warnings.simplefilter("ignore", ConvergenceWarning)
    started = time.perf_counter()
    with joblib.parallel_config(backend="threading"):
        ours = GridSearchCV(FastnnMLP(max_iter=30, random_state=0), GRID, cv=3, n_jobs=2)
        ours.fit(X, y)
    ours_time = time.perf_counter() - started
    started = time.perf_counter()
    theirs = GridSearchCV(SklearnMLP(max_iter=30, random_state=0), GRID, cv=3, n_jobs=2)
    theirs.fit(X, y)
    theirs_time = time.perf_counter() - started
    return ours, ours_time, theirs, theirs_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of this benchmark's own session (negative: as root)")
    args = parser.parse_args()
    if args.nice:
        renice(args.nice)
    print("fastnn's BLAS:", threads.blas_library().filepath)
    for info in threadpoolctl.threadpool_info():
        print(f"  {info['filepath']}: {info['internal_api']} {info['version']} "
              f"{info.get('architecture', '')} threads={info['num_threads']}")

    quiet = policy_rows(args.repeats)
    neighbour = busy_neighbour()
    try:
        time.sleep(0.5)
        busy = policy_rows(args.repeats)
    finally:
        neighbour.kill()
        neighbour.wait()
    print("\n## 1. The policy (20 epochs of Adam through fit; median seconds)\n")
    print("| case | machine | 1 thread | 2 threads | policy | policy / best | busy / quiet |")
    print("|---|---|---|---|---|---|---|")
    for name in quiet:
        for label, rows in (("quiet", quiet), ("busy neighbour", busy)):
            t = rows[name]
            best = min(t[1], t[2])
            print(f"| {name} | {label} | {t[1]:.4f} | {t[2]:.4f} | {t['policy']:.4f} | "
                  f"{t['policy'] / best:.2f} | "
                  f"{busy[name]['policy'] / quiet[name]['policy']:.2f} |")

    one, many = fit_many_ratio(args.repeats)
    print("\n## 2. fit_many, 8 networks 64-100-10, 20 epochs, batch 200 (median seconds)\n")
    print(f"one after another {one:.3f} s, fit_many n_jobs=2 {many:.3f} s: "
          f"throughput x{one / many:.2f}")

    ours, ours_time, theirs, theirs_time = grid_search()
    print("\n## 3. GridSearchCV, 8 settings, cv=3, digits, max_iter=30, n_jobs=2\n")
    print(f"fastnn.sklearn (threads): {ours_time:.2f} s, best {ours.best_params_} "
          f"score {ours.best_score_:.6f}")
    print(f"scikit-learn (processes): {theirs_time:.2f} s, best {theirs.best_params_} "
          f"score {theirs.best_score_:.6f}")
    print(f"same best parameters: {ours.best_params_ == theirs.best_params_}; "
          f"wall-time ratio x{theirs_time / ours_time:.2f}")


if __name__ == "__main__":
    main()
