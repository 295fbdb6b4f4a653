"""Data-parallel training over MPI (fastnn.distributed): the step time of the bench cases with 1
and 2 processes on this machine, the all-reduce's cost per byte, whether overlapping the
all-reduce with the backward pass would pay, and a model of the speed-up on 2-64 machines.

Run from the project root (fastnn built in place; the mpi extra installed)::

    cd bench && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \\
        PYTHONPATH=.. python data_parallel.py

It starts ``mpiexec -n 1`` and ``mpiexec -n 2`` of itself (``--worker``), each process with one
BLAS thread, and prints markdown tables (bench/DISTRIBUTED.md says how to read them).
``--quick`` is a smoke run: few steps, the small cases only.

The model: a step on P machines takes ``T_c / P + o + T_ar(P)``: ``T_c`` the compute of a whole
global batch (shard gradient and update, measured with 1 process), ``o`` the loop's fixed cost
per step (measured: 1 process's distributed step minus its compute), ``T_ar(P)`` a ring
all-reduce of the gradient (n_params + 2 numbers) over a network of latency ``a`` and bandwidth
``bw``: ``2 (P - 1) a + 2 (P - 1) / P * bytes / bw``. The speed-up is against the single-process
compiled ``fit`` step ``T_1``. Compute per row is taken as constant, so the global batch above
which P machines beat one is ``B* = (o + T_ar(P)) / (t_1 - t_c / P)`` (``t`` per row).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from cases import CASES, batches

HERE = os.path.dirname(os.path.abspath(__file__))
QUICK_CASES = ("notes-64", "digits")
MACHINES = (2, 4, 8, 16, 32, 64)
# all-reduce sizes, in float64 numbers
ALLREDUCE_SIZES = (1, 16, 256, 4096, 65536, 1 << 20, 4 << 20)


def mpiexec():
    """mpiexec beside the interpreter (the mpich wheel's), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def median_seconds(run, repeats):
    """The median over ``repeats`` of the seconds ``run()`` takes."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# ---- worker: runs under mpiexec ------------------------------------------------------------------

def shard_plan(order, lo, hi, batch, n_batches):
    """This process's rows in the epoch ``order`` and, per global batch, where they start and how
    many there are (as fastnn.distributed's epoch computes them)."""
    mine = (order >= lo) & (order < hi)
    rows = np.ascontiguousarray(order[mine] - lo, dtype=np.intp)
    counts = np.bincount(np.flatnonzero(mine) // batch, minlength=n_batches)
    return rows, (np.cumsum(counts) - counts).tolist(), counts.tolist()


def measure_case(case, comm, MPI, steps, repeats):
    """Seconds per step of one case: the distributed step, its compute alone, and (1 process)
    the compiled fit's step; the same with an overlapped all-reduce (2 processes)."""
    import fastnn
    from fastnn import distributed

    net = fastnn.MLP(list(case.sizes), activation=case.activation, output_activation="identity",
                     loss="squared_error", dtype=case.dtype, seed=0)
    X, Y = batches(case, steps)
    rows = distributed.shard(len(X), comm)
    data = net.check_data(X[rows], Y[rows])
    optimizer = fastnn.SGD(lr=case.lr)
    sizes = comm.allgather(data.X.shape[0])
    epochs = distributed._Epochs(net, data, optimizer, comm, MPI, sizes, case.batch, 0.0, None)
    order = np.random.default_rng(0).permutation(len(X))
    engine, rule, buffer = net._engine, epochs.rule, epochs.buffer
    local, starts, counts = shard_plan(order, epochs.lo, epochs.hi, case.batch, steps)
    totals = np.zeros(2)
    spare = np.zeros_like(buffer)

    def compute():
        for b in range(steps):
            engine.shard_gradient(data.X, data.Y, None, local, starts[b], counts[b], buffer)
            engine.reduced_step(buffer, rule, 0.0, False, totals)

    def overlapped():
        # the all-reduce of a gradient-sized buffer left to run during the compute
        for b in range(steps):
            request = comm.Iallreduce(MPI.IN_PLACE, spare, MPI.SUM)
            engine.shard_gradient(data.X, data.Y, None, local, starts[b], counts[b], buffer)
            request.Wait()
            engine.reduced_step(buffer, rule, 0.0, False, totals)

    def blocking():
        for b in range(steps):
            comm.Allreduce(MPI.IN_PLACE, spare, MPI.SUM)
            engine.shard_gradient(data.X, data.Y, None, local, starts[b], counts[b], buffer)
            engine.reduced_step(buffer, rule, 0.0, False, totals)

    result = {"params": net.n_params, "bytes": buffer.nbytes}
    for name, run in (("step", lambda: epochs(order)), ("compute", compute),
                      ("overlapped", overlapped), ("blocking", blocking)):
        run()
        comm.Barrier()
        result[name] = median_seconds(run, repeats) / steps
    if comm.size == 1:
        train = net.check_data(X, Y)
        epoch = lambda: net.train_epoch(train, optimizer, case.batch, order)  # noqa: E731
        epoch()
        result["fit"] = median_seconds(epoch, repeats) / steps
    epochs.free()
    return result


def measure_allreduce(comm, MPI, quick):
    """Seconds per in-place all-reduce of float64 buffers of ALLREDUCE_SIZES numbers."""
    times = {}
    for n in ALLREDUCE_SIZES[:-2] if quick else ALLREDUCE_SIZES:
        buffer = np.ones(n)
        calls = max(3, min(2000, (1 << 22) // n))

        def run(buffer=buffer, calls=calls):
            for _ in range(calls):
                comm.Allreduce(MPI.IN_PLACE, buffer, MPI.SUM)

        run()
        comm.Barrier()
        times[n * 8] = median_seconds(run, 5) / calls
    return times


def worker(args):
    from fastnn import distributed

    comm = distributed.world()
    MPI = distributed._mpi()
    chosen = [case for case in CASES if not args.quick or case.name in QUICK_CASES]
    results = {"ranks": comm.size, "cases": {}}
    for case in chosen:
        steps = max(4, min(args.steps, int(2e6 // (case.batch * sum(case.sizes) ** 1.5) + 4)))
        results["cases"][case.name] = measure_case(case, comm, MPI, steps, args.repeats)
    if comm.size > 1:
        results["allreduce"] = measure_allreduce(comm, MPI, args.quick)
    if comm.rank == 0:
        with open(args.out, "w") as f:
            json.dump(results, f)


# ---- the tables ----------------------------------------------------------------------------------

def run_ranks(ranks, args):
    """Rank 0's results of the worker under mpiexec -n ranks."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "out.json")
        command = [mpiexec(), "-n", str(ranks), sys.executable, os.path.abspath(__file__),
                   "--worker", "--out", out, "--steps", str(args.steps),
                   "--repeats", str(args.repeats)] + (["--quick"] if args.quick else [])
        subprocess.run(command, check=True)
        with open(out) as f:
            return json.load(f)


def microseconds(seconds):
    return f"{seconds * 1e6:.3g}"


def allreduce_fit(times):
    """Latency (s) and seconds per byte of a least-squares line through the all-reduce times."""
    sizes = np.array([float(size) for size in times])
    seconds = np.array(list(times.values()))
    per_byte, latency = np.polyfit(sizes, seconds, 1)
    return max(latency, 0.0), per_byte


def ring(machines, size, latency, bandwidth):
    """Seconds of a ring all-reduce of ``size`` bytes on ``machines`` machines."""
    return 2 * (machines - 1) * latency + 2 * (machines - 1) / machines * size / bandwidth


def report(one, two, latency, bandwidth):
    lines = ["## Step times on this machine (microseconds per step)", "",
             "| case | params | fit, 1 process | distributed, 1 | its compute | its loop and "
             "all-reduce | distributed, 2 | compute, 2 | 2 vs fit |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, a in one["cases"].items():
        b = two["cases"][name]
        lines.append(f"| {name} | {a['params']:,} | {microseconds(a['fit'])} | "
                     f"{microseconds(a['step'])} | {microseconds(a['compute'])} | "
                     f"{microseconds(a['step'] - a['compute'])} | {microseconds(b['step'])} | "
                     f"{microseconds(b['compute'])} | {a['fit'] / b['step']:.2f}x |")
    measured_latency, per_byte = allreduce_fit(two["allreduce"])
    lines += ["", "## All-reduce of float64 buffers, 2 processes, this machine (shared memory)", "",
              "| bytes | microseconds | ns per byte |", "|---|---|---|"]
    lines += [f"| {int(size):,} | {microseconds(t)} | {t / int(size) * 1e9:.3g} |"
              for size, t in two["allreduce"].items()]
    lines += ["", f"Least-squares line: {measured_latency * 1e6:.3g} us + "
                  f"{per_byte * 1e9:.3g} ns per byte.", "",
              "## Overlap: an all-reduce of a gradient-sized buffer during the step's compute, "
              "2 processes (microseconds per step)", "",
              "| case | all-reduce, then compute | started before, waited after | ratio |",
              "|---|---|---|---|"]
    for name, b in two["cases"].items():
        lines.append(f"| {name} | {microseconds(b['blocking'])} | "
                     f"{microseconds(b['overlapped'])} | "
                     f"{b['overlapped'] / b['blocking']:.2f} |")
    lines += ["", f"## Model: speed-up over the 1-process fit on P machines, a network of "
                  f"{latency * 1e6:g} us latency and {bandwidth * 8 / 1e9:g} Gbit/s", "",
              "| case | " + " | ".join(f"P={p}" for p in MACHINES)
              + " | pays from a global batch of (P=2) | (P=8) |",
              "|---|" + "---|" * (len(MACHINES) + 2)]
    for name, a in one["cases"].items():
        fit, compute, overhead = a["fit"], a["compute"], max(a["step"] - a["compute"], 0.0)
        batch = next(case.batch for case in CASES if case.name == name)
        speedups = [fit / (compute / p + overhead + ring(p, a["bytes"], latency, bandwidth))
                    for p in MACHINES]
        pays = []
        for p in (2, 8):
            gain = (fit - compute / p) / batch
            cost = overhead + ring(p, a["bytes"], latency, bandwidth)
            pays.append(f"{cost / gain:,.0f} rows" if gain > 0 else "never")
        lines.append(f"| {name} | " + " | ".join(f"{s:.2f}" for s in speedups)
                     + f" | {pays[0]} | {pays[1]} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small cases, few steps")
    parser.add_argument("--steps", type=int, default=200, help="most steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=7, help="timed epochs (the median)")
    parser.add_argument("--latency", type=float, default=25e-6,
                        help="the model network's latency in seconds (default 25e-6)")
    parser.add_argument("--gbits", type=float, default=10.0,
                        help="the model network's bandwidth in Gbit/s (default 10)")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if mpiexec() is None:
        sys.exit("no mpiexec: pip install \"fastnn-cpu[mpi]\"")
    if args.quick:
        args.steps, args.repeats = min(args.steps, 20), min(args.repeats, 3)
    one, two = run_ranks(1, args), run_ranks(2, args)
    print(report(one, two, args.latency, args.gbits * 1e9 / 8))


if __name__ == "__main__":
    main()
