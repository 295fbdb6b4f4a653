"""Measure one thing in this process and print it as one JSON line; bench/compare.py runs one
worker per (case, peer) and repeat, so no peer shares a process (or a BLAS thread pool) with
another.

Usage::

    python bench/worker.py step CASE PEER       # seconds per training step
    python bench/worker.py growth WIDTH PEER    # the same, on the growth sweep's case
    python bench/worker.py forward ROWS PEER    # seconds per forward pass
    python bench/worker.py e2e PEER             # digits end to end: seconds and test accuracy
    python bench/worker.py alloc                # fastnn's Python allocations per train_step
    python bench/worker.py rss                  # peak RSS of a fastnn fit on the large case
    python bench/worker.py info                 # versions and threadpoolctl.threadpool_info()

With ``--origin`` first (``worker.py --origin step digits fastnn-fit``), the line is
``{"result": ..., "fastnn": {module: file}}`` instead: the file of every ``fastnn`` module the
measurement loaded, so that bench/ab.py can check which build of fastnn (``PYTHONPATH``) was timed.
"""
import json
import statistics
import sys
import time

from cases import CASES, CASES_BY_NAME, growth_case
from endtoend import FORWARDS, TRAINERS
from peers import STEP_PEERS, fastnn_fit

WARMUP_SECONDS = 0.1
SAMPLES = 7
SAMPLE_SECONDS = 0.04


def seconds_per_step(run, steps):
    """The median over SAMPLES timed blocks of the seconds per step of ``run``.

    ``run()`` does ``steps`` steps. Calls during a warm-up of WARMUP_SECONDS (at least two) are not
    timed; each block repeats ``run`` enough times to last about SAMPLE_SECONDS.
    """
    started, calls = time.perf_counter(), 0
    while calls < 2 or time.perf_counter() - started < WARMUP_SECONDS:
        run()
        calls += 1
    per_call = (time.perf_counter() - started) / calls
    repeat = max(1, round(SAMPLE_SECONDS / per_call))
    samples = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        for _ in range(repeat):
            run()
        samples.append((time.perf_counter() - started) / (repeat * steps))
    return statistics.median(samples)


def _most_allocated(run, steps):
    """The most bytes, traced by tracemalloc, that any one of ``steps`` calls of ``run`` added."""
    import tracemalloc

    most = 0
    for _ in range(steps):
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run()
        most = max(most, tracemalloc.get_traced_memory()[1] - before)
    return most


def train_step_allocations(case, steps=200):
    """Python allocations of ``MLP.train_step`` after warm-up, traced by tracemalloc.

    Returns
    -------
    peak : int
        The most bytes any one step allocated beyond what it started with (0 when a step
        allocates nothing that tracemalloc sees), less what the same loop shows around a call
        of an empty function (the loop's own integers).
    net : float
        Bytes still held after the steps, per step (a leak would show here).
    """
    import tracemalloc

    run, _ = STEP_PEERS["fastnn-step"](case)
    for _ in range(10):
        run()
    tracemalloc.start()
    harness = _most_allocated(lambda: None, steps)
    start = tracemalloc.get_traced_memory()[0]
    peak = _most_allocated(run, steps) - harness
    net = (tracemalloc.get_traced_memory()[0] - start) / steps
    tracemalloc.stop()
    return peak, net


def fit_peak_rss(case):
    """Peak resident memory in MiB of this process: before, and after, one ``fit`` of ``case``."""
    import resource

    run, _ = fastnn_fit(case)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    run()
    return before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def library_info():
    """Versions of fastnn and its peers, and the thread pools they run with every one loaded."""
    import numpy
    import scipy.linalg
    import sklearn
    import threadpoolctl
    import torch

    import fastnn

    return {"versions": {"fastnn": f"{fastnn.__version__} ({fastnn.__file__})",
                         "numpy": numpy.__version__, "scipy": scipy.__version__,
                         "torch": torch.__version__, "scikit-learn": sklearn.__version__},
            "threadpool_info": threadpoolctl.threadpool_info()}


def fastnn_origin():
    """{module name: file} for every module of the package ``fastnn`` this process has loaded."""
    return {name: getattr(module, "__file__", None) for name, module in sorted(sys.modules.items())
            if name == "fastnn" or name.startswith("fastnn.")}


def main(argv):
    origin = argv[:1] == ["--origin"]
    if origin:
        argv = argv[1:]
    if not argv:
        raise SystemExit(__doc__)
    kind = argv[0]
    if kind == "step":
        result = seconds_per_step(*STEP_PEERS[argv[2]](CASES_BY_NAME[argv[1]]))
    elif kind == "growth":
        result = seconds_per_step(*STEP_PEERS[argv[2]](growth_case(int(argv[1]))))
    elif kind == "forward":
        result = seconds_per_step(*FORWARDS[argv[2]](int(argv[1])))
    elif kind == "e2e":
        result = TRAINERS[argv[1]]()
    elif kind == "alloc":
        result = {case.name: train_step_allocations(case) for case in CASES}
    elif kind == "info":
        result = library_info()
    elif kind == "rss":
        result = fit_peak_rss(CASES_BY_NAME["large"])
    else:
        raise SystemExit(__doc__)
    if origin:
        result = {"result": result, "fastnn": fastnn_origin()}
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
