"""Threads: every figure and goal of issue 12, as ratios measured in one run.

Run from the project root (as root: ``--nice -10`` puts the benchmark, in a session and
autogroup of its own, ahead of other sessions' processes, as bench/ab.py does; the OpenBLAS
overrides unset in this command only, see DESIGN.md):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python bench/threads.py --nice -10

``--quick`` is a smoke run (one repeat, short fits): its figures are not the goals' measure.

1. The policy. Each case trains 20 epochs of Adam through `fit` with its products forced onto 1
   BLAS thread (``n_threads=1``: no row split either), forced onto 2, and as the policy chooses
   (which splits each batch's rows between two threads from `fastnn.threads.SPLIT_WORK`
   multiply-adds per product, and from `fastnn.threads.PARALLEL_WORK` chooses by timing, step
   by step, between one BLAS thread and two), interleaved ``--repeats`` times (medians; the
   order of the three rotates; a pause after each two-thread fit lets OpenBLAS's threads stop
   spinning). Then again beside a busy neighbour: a Python busy loop this script starts (in its
   session, at its niceness) and stops. Goals: no case slower
   than the better of 1 and 2 threads by more than 10%; beside the neighbour, none slower than
   1.5x its quiet time.
2. scikit-learn's defaults on digits: fastnn.sklearn's MLPClassifier(random_state=0) against
   scikit-learn's (goal: >= 3x faster, the same epochs and loss), and against the time of the
   same BLAS products alone (goal: within 1.15x): the fit's five products per batch, called
   through SciPy's BLAS as many times as the fit calls them, on the thread count the policy
   chooses, less the measured cost of a call from Python. When the fit splits its batches'
   rows between two threads, its products are those of the halves, run two at a time: the
   measure is then the critical path, the larger half's products on one thread (the full
   batch's products on one thread are printed too).
3. fit_many: K = 8 digits-sized networks, n_jobs=2 against one after another, after a warm-up
   run of each, interleaved ``--repeats`` times (medians; the order alternates). Goal: >= 1.8x.
4. GridSearchCV over 8 settings, cv=3, on digits: fastnn.sklearn with n_jobs=2 under joblib's
   threading backend against scikit-learn's MLPClassifier with n_jobs=2 (processes). Goals: the
   same best parameters and score, >= 5x less wall time. Each side's first search is timed
   apart and printed, not compared: scikit-learn's starts loky's worker processes (which later
   searches reuse), fastnn's locates the BLAS and starts its row-split worker. Then
   ``--repeats`` searches of each side, interleaved (the order alternates); the goal is the
   ratio of the medians.
5. Results independent of the thread count: a fit on 1 and on 2 BLAS threads, and one split
   between two threads, float64, equal to 1e-12 (relative).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings

import joblib
import numpy as np
import threadpoolctl
from ab import renice
from scipy.linalg.blas import dgemm
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier as SklearnMLP

import fastnn
from fastnn import _blas_threads, threads
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
GOALS = []  # (goal, figure, met)
# After a product on several threads, OpenBLAS's threads spin for 2^28 cycles (~0.1 s here)
# before they sleep; part 1 waits this long after each forced two-thread fit, so that the next
# fit does not start beside them (the row split would see a busy core and not split)
SETTLE = 0.25


def goal(name, figure, met):
    GOALS.append((name, figure, bool(met)))


def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


def case_data(sizes, rows):
    if rows is None:
        return digits()
    rng = np.random.default_rng(0)
    return rng.standard_normal((rows, sizes[0])), rng.integers(0, sizes[-1], rows)


def two_blas_threads():
    """Every call on the library's 2 threads: no threshold, no choice by timing."""
    _blas_threads.set_parallel_work(0)
    _blas_threads.set_choosing(False)


def policy_defaults():
    _blas_threads.set_parallel_work(threads.PARALLEL_WORK)
    _blas_threads.set_choosing(True)


def fit_time(sizes, batch, X, y, mode, epochs):
    """Seconds of ``epochs`` of Adam; mode 1 or 2 forces that many BLAS threads, "policy" not."""
    net = fastnn.MLP(list(sizes), output_activation="softmax", loss="cross_entropy", seed=0,
                     n_threads=1 if mode == 1 else None)
    if mode == 2:
        two_blas_threads()
    try:
        with threadpoolctl.threadpool_limits(2 if mode == 2 else None, user_api="blas"):
            started = time.perf_counter()
            net.fit(X, y, epochs=epochs, batch_size=batch, seed=0)
            return time.perf_counter() - started
    finally:
        policy_defaults()


def policy_rows(repeats, epochs, cases):
    rows = {}
    for name, sizes, batch, n in cases:
        X, y = case_data(sizes, n)
        times = {1: [], 2: [], "policy": []}
        fit_time(sizes, batch, X, y, "policy", epochs)  # warm-up
        modes = list(times)
        for repeat in range(repeats):
            for mode in modes[repeat % 3:] + modes[:repeat % 3]:
                times[mode].append(fit_time(sizes, batch, X, y, mode, epochs))
                if mode == 2:
                    time.sleep(SETTLE)
        rows[name] = {mode: statistics.median(t) for mode, t in times.items()}
    return rows


def busy_neighbour():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def policy(repeats, epochs, cases):
    quiet = policy_rows(repeats, epochs, cases)
    neighbour = busy_neighbour()
    try:
        time.sleep(0.5)
        busy = policy_rows(repeats, epochs, cases)
    finally:
        neighbour.kill()
        neighbour.wait()
    print(f"\n## 1. The policy ({epochs} epochs of Adam through fit; median seconds)\n")
    print("| case | machine | 1 thread | 2 threads | policy | policy / best | busy / quiet |")
    print("|---|---|---|---|---|---|---|")
    worst_best = worst_busy = 0.0
    for name in quiet:
        slowdown = busy[name]["policy"] / quiet[name]["policy"]
        worst_busy = max(worst_busy, slowdown)
        for label, rows in (("quiet", quiet), ("busy neighbour", busy)):
            t = rows[name]
            ratio = t["policy"] / min(t[1], t[2])
            worst_best = max(worst_best, ratio)
            print(f"| {name} | {label} | {t[1]:.4f} | {t[2]:.4f} | {t['policy']:.4f} | "
                  f"{ratio:.2f} | {slowdown:.2f} |")
    goal("policy / better of 1 and 2 threads, worst case (quiet and busy)", f"{worst_best:.2f}",
         worst_best <= 1.10)
    goal("policy beside a busy neighbour / quiet, worst case", f"{worst_busy:.2f}",
         worst_busy <= 1.5)


def products(sizes, batch):
    """The (trans_a, trans_b, m, n, k) of fastnn's row-major products in one training step of a
    dense network of these sizes on ``batch`` rows (fastnn/_dense.pxd): each layer's forward,
    its dW, and its dA but for the first layer's."""
    out = []
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        out.append((False, False, batch, n_out, n_in))     # Z = A W
        out.append((True, False, n_in, n_out, batch))      # dW = A^T D
        if k > 0:
            out.append((False, True, batch, n_in, n_out))  # dA = D W^T
    return out


def products_seconds(shapes, steps):
    """Seconds of ``steps`` rounds of the row-major products ``shapes`` through SciPy's BLAS,
    less the cost of calling it from Python (a round of 1x1x1 products)."""
    rng = np.random.default_rng(0)
    calls = []
    for ta, tb, m, n, k in shapes:
        A = rng.standard_normal((k, m) if ta else (m, k))
        B = rng.standard_normal((n, k) if tb else (k, n))
        C = np.zeros((m, n))
        # row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: no copies
        calls.append((B.T, A.T, int(tb), int(ta), C.T))
    tiny = [(np.ones((1, 1), order="F"), np.ones((1, 1), order="F"), 0, 0,
             np.zeros((1, 1), order="F"))] * len(calls)

    def run(calls):
        started = time.perf_counter()
        for _ in range(steps):
            for a, b, trans_a, trans_b, c in calls:
                dgemm(1.0, a, b, trans_a=trans_a, trans_b=trans_b, beta=0.0, c=c, overwrite_c=1)
        return time.perf_counter() - started
    run(calls[:1])
    return min(run(calls) for _ in range(3)) - min(run(tiny) for _ in range(3))


def sklearn_defaults(repeats, max_iter):
    X, y = digits()
    warnings.simplefilter("ignore", ConvergenceWarning)
    ours, theirs = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        fast = FastnnMLP(random_state=0, max_iter=max_iter).fit(X, y)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        slow = SklearnMLP(random_state=0, max_iter=max_iter).fit(X, y)
        theirs.append(time.perf_counter() - started)
    ours, theirs = min(ours), min(theirs)
    batch = min(200, X.shape[0])
    steps = fast.n_iter_ * -(-X.shape[0] // batch)
    # the policy's thread count for these products: one below PARALLEL_WORK
    work = batch * max(a * b for a, b in zip(fast._net.sizes, fast._net.sizes[1:]))
    limit = 1 if work < threads.PARALLEL_WORK else None
    split = fast._net._engine.split_steps > 0
    with threadpoolctl.threadpool_limits(limit, user_api="blas"):
        whole = products_seconds(products(fast._net.sizes, batch), steps)
        blas = (products_seconds(products(fast._net.sizes, batch - batch // 2), steps) if split
                else whole)
    same = fast.n_iter_ == slow.n_iter_ and abs(fast.loss_ - slow.loss_) <= 1e-9 * slow.loss_
    print(f"\n## 2. scikit-learn's defaults on digits (MLPClassifier(random_state=0, "
          f"max_iter={max_iter}); best of {repeats})\n")
    print(f"fastnn.sklearn {ours:.3f} s, scikit-learn {theirs:.3f} s: x{theirs / ours:.2f}; "
          f"epochs {fast.n_iter_} / {slow.n_iter_}, final loss {fast.loss_:.10f} / "
          f"{slow.loss_:.10f}")
    print(f"the same {steps} x {len(products(fast._net.sizes, batch))} products through SciPy's "
          f"BLAS alone ({'1 thread' if limit == 1 else 'the library setting'}): {whole:.3f} s; "
          f"fastnn's fit / products x{ours / whole:.2f}")
    if split:
        print(f"the fit split its batches' rows between two threads: the critical path, the "
              f"{batch - batch // 2}-row half's products on one thread: {blas:.3f} s; fastnn's fit "
              f"/ products x{ours / blas:.2f}")
    goal("sklearn defaults on digits: scikit-learn time / fastnn time", f"{theirs / ours:.2f}",
         theirs / ours >= 3)
    goal("sklearn defaults on digits: same epochs and loss as scikit-learn",
         f"{fast.n_iter_} / {slow.n_iter_}", same)
    goal("sklearn defaults on digits: fastnn time / its BLAS products' time", f"{ours / blas:.2f}",
         ours / blas <= 1.15)


def fit_many(repeats, epochs):
    X, y = digits()

    def nets():
        return [fastnn.MLP([64, 100, 10], output_activation="softmax", loss="cross_entropy",
                           seed=k) for k in range(8)]

    def timed(n_jobs):
        batch = nets()
        started = time.perf_counter()
        fastnn.fit_many(batch, X, y, seeds=list(range(8)), epochs=epochs, batch_size=200,
                        n_jobs=n_jobs)
        return time.perf_counter() - started

    timed(1), timed(2)  # warm-up: the first engines, the row split's worker, the thread pool
    one, many = [], []
    for repeat in range(repeats):
        for n_jobs, out in ((1, one), (2, many))[::1 if repeat % 2 == 0 else -1]:
            out.append(timed(n_jobs))
    one, many = statistics.median(one), statistics.median(many)
    print(f"\n## 3. fit_many, 8 networks 64-100-10, {epochs} epochs, batch 200 (median seconds)\n")
    print(f"one after another {one:.3f} s, fit_many n_jobs=2 {many:.3f} s: "
          f"throughput x{one / many:.2f}")
    goal("fit_many K=8, n_jobs=2 / one after another (throughput)", f"{one / many:.2f}",
         one / many >= 1.8)


def grid_search(max_iter, repeats):
    X, y = digits()
    warnings.simplefilter("ignore", ConvergenceWarning)

    def ours():
        with joblib.parallel_config(backend="threading"):
            search = GridSearchCV(FastnnMLP(max_iter=max_iter, random_state=0), GRID, cv=3,
                                  n_jobs=2)
            return search.fit(X, y)

    def theirs():
        search = GridSearchCV(SklearnMLP(max_iter=max_iter, random_state=0), GRID, cv=3,
                              n_jobs=2)
        return search.fit(X, y)

    def timed(search):
        started = time.perf_counter()
        result = search()
        return time.perf_counter() - started, (result.best_params_, result.best_score_)

    first = {side: timed(side) for side in (ours, theirs)}
    times = {ours: [], theirs: []}
    bests = {side: {repr(best)} for side, (_, best) in first.items()}
    for repeat in range(repeats):
        for side in (ours, theirs) if repeat % 2 == 0 else (theirs, ours):
            seconds, best = timed(side)
            times[side].append(seconds)
            bests[side].add(repr(best))
    ours_time, theirs_time = statistics.median(times[ours]), statistics.median(times[theirs])
    (_, (ours_params, ours_score)), (_, (theirs_params, theirs_score)) = first[ours], first[theirs]
    # every search of a side found the same, and the two sides the same
    same = (len(bests[ours]) == len(bests[theirs]) == 1 and ours_params == theirs_params
            and abs(ours_score - theirs_score) <= 1e-12)
    print(f"\n## 4. GridSearchCV, 8 settings, cv=3, digits, max_iter={max_iter}, n_jobs=2 "
          f"(median of {repeats} interleaved searches each, after a first one)\n")
    print(f"fastnn.sklearn (threads): {ours_time:.3f} s (first search {first[ours][0]:.3f} s), "
          f"best {ours_params} score {ours_score:.6f}")
    print(f"scikit-learn (processes): {theirs_time:.3f} s (first search {first[theirs][0]:.3f} "
          f"s, with loky's start), best {theirs_params} score {theirs_score:.6f}")
    print(f"first searches: x{first[theirs][0] / first[ours][0]:.2f}; medians: "
          f"x{theirs_time / ours_time:.2f}")
    goal("GridSearchCV: same best parameters and score", str(same), same)
    goal("GridSearchCV: scikit-learn (processes) time / fastnn (threads) time (medians)",
         f"{theirs_time / ours_time:.2f}", theirs_time / ours_time >= 5)


def thread_independence():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((2048, 512)), rng.integers(0, 10, 2048)

    def trained(n):
        net = fastnn.MLP([512, 512, 10], output_activation="softmax", loss="cross_entropy",
                         seed=0, n_threads=n)
        net.fit(X, y, epochs=6, batch_size=1024, seed=1)
        return net.params.copy(), net._engine.split_state
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        adaptive, chosen = trained(None)  # 1 or 2 BLAS threads, chosen by timing
        _blas_threads.set_parallel_work(1 << 62)  # as if below the threshold: rows split
        try:
            split, state = trained(None)
        finally:
            policy_defaults()
        two_blas_threads()
        try:
            (one, _), (two, _) = trained(1), trained(2)
        finally:
            policy_defaults()
    scale = np.max(np.abs(one))
    same = max(float(np.max(np.abs(one - other))) / scale for other in (two, adaptive))
    diff = max(same, float(np.max(np.abs(one - split))) / scale)
    print(f"\n## 5. 512-512-10, 6 epochs, batch 1024: 1 against 2 BLAS threads "
          f"(max relative difference of the parameters {same:.1e}, also for the epoch choosing "
          f"by timing, {chosen['blas_steps']} of its 12 steps on 2) and against rows split between "
          f"two threads ({state['steps']} split steps): {diff:.1e}")
    goal("results on 1 and 2 BLAS threads and split (float64), max relative difference",
         f"{diff:.1e}",
         diff <= 1e-12)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: one repeat, short fits (not the goals' measure)")
    parser.add_argument("--sections", type=lambda text: [int(n) for n in text.split(",")],
                        default=[1, 2, 3, 4, 5], help="which parts to run, e.g. 3,4 (all)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of this benchmark's own session (negative: as root)")
    args = parser.parse_args()
    if args.nice:
        renice(args.nice)
    repeats = 1 if args.quick else args.repeats
    print(f"cores: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()}")
    print("fastnn's BLAS:", threads.blas_file(), "(threads set by fastnn:",
          f"{threads.controlled()})")
    for info in threadpoolctl.threadpool_info():
        print(f"  {info['filepath']}: {info['internal_api']} {info['version']} "
              f"{info.get('architecture', '')} threads={info['num_threads']}")

    sections = {1: lambda: policy(repeats, 3 if args.quick else 20,
                                  CASES[:1] if args.quick else CASES),
                2: lambda: sklearn_defaults(1 if args.quick else 3, 20 if args.quick else 200),
                3: lambda: fit_many(repeats, 3 if args.quick else 20),
                4: lambda: grid_search(5 if args.quick else 30, repeats),
                5: thread_independence}
    for number in args.sections:
        sections[number]()

    print("\n## Goals\n")
    print("| goal | figure | met |")
    print("|---|---|---|")
    for name, figure, met in GOALS:
        print(f"| {name} | {figure} | {'yes' if met else 'NO'} |")


if __name__ == "__main__":
    main()
