"""Training throughput and memory of streamed data (fastnn.streams) against data in memory.

Three cases train one shuffled epoch of the same network with the same batch size:

- ``in memory``: an (N, F) NumPy array, ``MLP.fit(X, y)``;
- ``memory-map``: a .npy file of ``factor`` x N rows opened with ``mmap_mode="r"``, read in
  chunks of ``--chunk-rows`` by the prefetching thread;
- ``dask array``: a Dask array of ``factor`` x N rows, its blocks of ``--chunk-rows`` rows made
  by the workers of a LocalCluster (2 processes of 1 thread, BLAS on 1 thread) and sent to the
  training process one after another.

Throughput is rows trained per second; the goal for each stream is >= 80% of the in-memory
figure. Memory is the peak of what the training process allocates during the fit, by
tracemalloc (NumPy reports its arrays to it), not RSS: the pages of a memory-map the kernel
keeps cached count in RSS although they are the file's, not the process's. The goal: a peak
within a few chunks (8 x the bytes of a chunk of X and y) and far below the data (half of it).

Run (see bench/STREAMING.md)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python bench/streaming.py
"""
import argparse
import functools
import os
import sys
import tempfile
import time
import tracemalloc

# bench/distributed.py (the MPI bench) would shadow the distributed package here and in the
# Dask workers (spawned processes inherit sys.path): this folder is not needed on it
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or os.curdir) != os.path.dirname(os.path.abspath(__file__))]

import numpy as np  # noqa: E402

import fastnn  # noqa: E402
from fastnn.streams import Stream  # noqa: E402

COMMAND = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python bench/streaming.py"
THROUGHPUT_GOAL = 0.8
CHUNKS_GOAL = 8


def network(features, hidden, seed=0):
    return fastnn.MLP([features, hidden, 10], activation="relu", output_activation="softmax",
                      loss="cross_entropy", seed=seed)


def measure(train, rows):
    """(rows per second, peak bytes allocated) of ``train()``."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    try:
        train()
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return rows / seconds, peak


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


def dask_case(rows, features, chunk_rows, fit):
    """(rows per second, peak bytes) of ``fit`` on a Dask array made on a LocalCluster."""
    import dask.array as da
    from distributed import Client, LocalCluster

    from fastnn.cluster import limit_blas_threads

    folder = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (folder, os.environ.get("PYTHONPATH")) if p)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        limit_blas_threads(client)
        state = da.random.default_rng(0)
        X = state.normal(size=(rows, features), chunks=(chunk_rows, features))
        y = state.integers(0, 10, size=rows, chunks=chunk_rows)
        fit(X[:chunk_rows], y[:chunk_rows])   # warm up the workers
        return measure(lambda: fit(X, y), rows)


def mib(n_bytes):
    return f"{n_bytes / 2 ** 20:.1f} MiB"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the in-memory case")
    parser.add_argument("--factor", type=int, default=10, help="streams hold this many times more")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--chunk-rows", type=int, default=25_000)
    parser.add_argument("--smoke", action="store_true",
                        help="a quick run on small data (figures not meaningful)")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask case")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.chunk_rows = 20_000, 5_000
    features, chunk_rows, streamed_rows = args.features, args.chunk_rows, args.rows * args.factor

    def fit(X, y):
        network(features, args.hidden).fit(X, y, fastnn.Adam(lr=1e-3), epochs=1,
                                           batch_size=args.batch, seed=0)

    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(args.rows, features)), rng.integers(0, 10, args.rows)
    fit(X[:chunk_rows], y[:chunk_rows])   # warm up
    results = [("in memory", args.rows, *measure(functools.partial(fit, X, y), args.rows))]
    del X, y
    with tempfile.TemporaryDirectory() as folder:
        X_map, y_map = write_memmap(folder, streamed_rows, features, chunk_rows, 2)
        stream = Stream(X_map, y_map, chunk_rows=chunk_rows)
        fit(Stream(X_map[:chunk_rows], y_map[:chunk_rows]), None)   # warm up
        results.append(("memory-map", streamed_rows,
                        *measure(functools.partial(fit, stream, None), streamed_rows)))
        del stream, X_map, y_map
    if not args.no_dask:
        results.append(("dask array", streamed_rows, *dask_case(streamed_rows, features,
                                                                chunk_rows, fit)))

    chunk_bytes = chunk_rows * (features + 1) * 8
    base = results[0][2]
    print(f"fastnn {fastnn.__version__}, Python {sys.version.split()[0]}, network "
          f"{features}-{args.hidden}-10, batch {args.batch}, one shuffled epoch; chunks of "
          f"{chunk_rows} rows ({mib(chunk_bytes)} of X and y){' (smoke run)' * args.smoke}\n")
    print("| data | rows | data size | rows/s | vs in memory | peak allocated | "
          "peak / chunk | goals |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    passed = True
    for name, rows, rate, peak in results:
        data_bytes = rows * (features + 1) * 8
        if name == "in memory":
            verdict = "reference"
        else:
            fast = rate >= THROUGHPUT_GOAL * base
            small = peak <= CHUNKS_GOAL * chunk_bytes and peak <= data_bytes / 2
            passed = passed and fast and small
            verdict = (f"throughput {'pass' if fast else 'FAIL'}, memory "
                       f"{'pass' if small else 'FAIL'}")
        print(f"| {name} | {rows} | {mib(data_bytes)} | {rate:,.0f} | {rate / base:.2f} | "
              f"{mib(peak)} | {peak / chunk_bytes:.1f} | {verdict} |")
    print(f"\ngoals: throughput >= {THROUGHPUT_GOAL:.0%} of in memory; peak allocated <= "
          f"{CHUNKS_GOAL} chunks and <= half the data. {'All met.' if passed else 'NOT all met.'}")
    try:
        import threadpoolctl
        print("BLAS:", [(i["internal_api"], i.get("architecture"), i["num_threads"])
                        for i in threadpoolctl.threadpool_info()])
    except ImportError:
        pass
    print(f"command: {COMMAND}{' --smoke' * args.smoke}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
