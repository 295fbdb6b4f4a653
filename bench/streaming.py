"""Training throughput and memory of streamed data (fastnn.streams) against data in memory.

For each network (64-64-10 as the smallest case, 64-256-10 as a digits-sized one), these cases
train one shuffled epoch with the same batch size:

- ``in memory``: an (N, F) NumPy array, ``MLP.fit(X, y)``;
- ``memory-map``: a .npy file of ``factor`` x N rows opened with ``mmap_mode="r"``, read in
  chunks of ``--chunk-rows`` by the prefetching thread;
- ``dask array, persisted``: a Dask array of ``factor`` x N rows in blocks of ``--chunk-rows``
  rows, made and persisted on the workers of a LocalCluster (2 processes of 1 thread, BLAS on 1
  thread) before the timing, as data that lives on the cluster: each block is sent from the
  worker that holds it to the training process;
- ``dask array, made each epoch`` (shown, not a goal): the same array not persisted, so each
  epoch the workers draw every block again (``da.random``) beside the training.

Throughput is rows trained per second (the best of ``--repeat`` epochs); the goal for each
stream is >= 80% of the in-memory figure of the same network. Memory is the peak of what the
training process allocates during one more epoch, by tracemalloc (NumPy reports its arrays to
it; it is off while timing, as it slows Dask's event loop several times), not RSS: the pages of
a memory-map the kernel keeps cached count in RSS although they are the file's, not the
process's. The goal: a peak within a few chunks (6 x the bytes of a chunk of X and y) and far
below the data (half of it).

The training process runs its BLAS on ``--blas-threads`` threads (1 by default) in every case:
on 2 cores the cluster's workers and the loading thread need the other one, and beside a busy
process OpenBLAS's second thread makes a 64-256-10 epoch up to 10x slower (measured), which
would compare thread policies rather than streams.

Run (see bench/STREAMING.md; about a minute)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python bench/streaming.py
"""
import argparse
import functools
import os
import sys
import tempfile
import time
import tracemalloc

import numpy as np

import fastnn
from fastnn.streams import Stream

COMMAND = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python bench/streaming.py"
THROUGHPUT_GOAL = 0.8
CHUNKS_GOAL = 6


def network(features, hidden, seed=0):
    return fastnn.MLP([features, hidden, 10], activation="relu", output_activation="softmax",
                      loss="cross_entropy", seed=seed)


def measure(train, rows, repeat):
    """(rows per second, peak bytes allocated) of ``train()``: the best rate of ``repeat``
    runs, and the peak of one more run under tracemalloc (which slows every allocation, those
    of Dask's event loop most: it is not on while timing)."""
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        train()
        rates.append(rows / (time.perf_counter() - started))
    tracemalloc.start()
    try:
        train()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return max(rates), peak


def write_memmap(folder, rows, features, chunk_rows, seed):
    """X (rows, features) and labels (rows,) written to .npy files chunk by chunk, opened
    read-only as memory-maps."""
    rng = np.random.default_rng(seed)
    paths = os.path.join(folder, "X.npy"), os.path.join(folder, "y.npy")
    X = np.lib.format.open_memmap(paths[0], mode="w+", dtype=np.float64, shape=(rows, features))
    y = np.lib.format.open_memmap(paths[1], mode="w+", dtype=np.int64, shape=(rows,))
    for start in range(0, rows, chunk_rows):
        stop = min(start + chunk_rows, rows)
        X[start:stop] = rng.normal(size=(stop - start, features))
        y[start:stop] = rng.integers(0, 10, stop - start)
    X.flush()
    y.flush()
    del X, y
    return np.load(paths[0], mmap_mode="r"), np.load(paths[1], mmap_mode="r")


def dask_cases(rows, features, chunk_rows, fits, repeat):
    """{(hidden, case): (rows per second, peak bytes)} of each of ``fits`` ({hidden: fit}) on a
    Dask array made on a LocalCluster, persisted there and not."""
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    from fastnn.cluster import limit_blas_threads

    folder = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (folder, os.environ.get("PYTHONPATH")) if p)
    results = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        limit_blas_threads(client)
        state = da.random.default_rng(0)
        X = state.normal(size=(rows, features), chunks=(chunk_rows, features))
        y = state.integers(0, 10, size=rows, chunks=chunk_rows)
        X_held, y_held = client.persist([X, y])
        wait([X_held, y_held])
        for hidden, fit in fits.items():
            fit(X_held[:chunk_rows], y_held[:chunk_rows])   # warm up the workers
            results[hidden, "dask array, persisted"] = measure(
                functools.partial(fit, X_held, y_held), rows, repeat)
            results[hidden, "dask array, made each epoch"] = measure(
                functools.partial(fit, X, y), rows, repeat)
    return results


def mib(n_bytes):
    return f"{n_bytes / 2 ** 20:.1f} MiB"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the in-memory case")
    parser.add_argument("--factor", type=int, default=10, help="streams hold this many times more")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 256],
                        help="the hidden layer's width, one network each")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--chunk-rows", type=int, default=25_000)
    parser.add_argument("--repeat", type=int, default=2, help="epochs timed per case")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads of the training process")
    parser.add_argument("--smoke", action="store_true",
                        help="a quick run on small data (figures not meaningful)")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask cases")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.chunk_rows, args.repeat = 20_000, 5_000, 1
    import threadpoolctl

    with threadpoolctl.threadpool_limits(args.blas_threads, user_api="blas"):
        results = run(args)
        blas = [(i["internal_api"], i.get("architecture"), i["num_threads"])
                for i in threadpoolctl.threadpool_info()]
    return report(args, results, blas)


def run(args):
    """{(hidden, case): (rows, rows per second, peak bytes)} of every case."""
    features, chunk_rows, streamed_rows = args.features, args.chunk_rows, args.rows * args.factor

    def fitter(hidden):
        def fit(X, y):
            network(features, hidden).fit(X, y, fastnn.Adam(lr=1e-3), epochs=1,
                                          batch_size=args.batch, seed=0)
        return fit

    fits = {hidden: fitter(hidden) for hidden in args.hidden}
    results = {}
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(args.rows, features)), rng.integers(0, 10, args.rows)
    for hidden, fit in fits.items():
        fit(X[:chunk_rows], y[:chunk_rows])   # warm up
        results[hidden, "in memory"] = (args.rows, *measure(functools.partial(fit, X, y),
                                                            args.rows, args.repeat))
    del X, y
    with tempfile.TemporaryDirectory() as folder:
        X_map, y_map = write_memmap(folder, streamed_rows, features, chunk_rows, 2)
        stream = Stream(X_map, y_map, chunk_rows=chunk_rows)
        for hidden, fit in fits.items():
            fit(Stream(X_map[:chunk_rows], y_map[:chunk_rows]), None)   # warm up
            results[hidden, "memory-map"] = (streamed_rows, *measure(
                functools.partial(fit, stream, None), streamed_rows, args.repeat))
        del stream, X_map, y_map
    if not args.no_dask:
        for key, figures in dask_cases(streamed_rows, features, chunk_rows, fits,
                                       args.repeat).items():
            results[key] = (streamed_rows, *figures)
    return results


def report(args, results, blas):
    """Print the table and ``blas``, the training process' BLAS libraries; 0 if every goal is
    met, else 1."""
    features, chunk_rows = args.features, args.chunk_rows
    chunk_bytes = chunk_rows * (features + 1) * 8
    print(f"fastnn {fastnn.__version__}, Python {sys.version.split()[0]}, batch {args.batch}, "
          f"one shuffled epoch, BLAS on {args.blas_threads} thread(s) in the training process; "
          f"best of {args.repeat}; chunks of {chunk_rows} rows ({mib(chunk_bytes)} of X and y)"
          f"{' (smoke run)' * args.smoke}\n")
    print("| network | data | rows | data size | rows/s | vs in memory | peak allocated | "
          "peak / chunk | goals |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    passed = True
    for (hidden, name), (rows, rate, peak) in results.items():
        base = results[hidden, "in memory"][1]
        data_bytes = rows * (features + 1) * 8
        if name == "in memory":
            verdict = "reference"
        else:
            fast = rate >= THROUGHPUT_GOAL * base
            small = peak <= CHUNKS_GOAL * chunk_bytes and peak <= data_bytes / 2
            verdict = (f"throughput {'pass' if fast else 'FAIL'}, memory "
                       f"{'pass' if small else 'FAIL'}")
            if name == "dask array, made each epoch":
                verdict = f"not a goal ({verdict})"
            else:
                passed = passed and fast and small
        print(f"| {features}-{hidden}-10 | {name} | {rows} | {mib(data_bytes)} | {rate:,.0f} | "
              f"{rate / base:.2f} | {mib(peak)} | {peak / chunk_bytes:.1f} | {verdict} |")
    print(f"\ngoals: throughput >= {THROUGHPUT_GOAL:.0%} of in memory; peak allocated <= "
          f"{CHUNKS_GOAL} chunks and <= half the data. {'All met.' if passed else 'NOT all met.'}")
    print("BLAS of the training process (API, kernel, threads):", blas)
    print(f"command: {COMMAND}{' --smoke' * args.smoke}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
