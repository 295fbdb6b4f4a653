"""fastnn against its peers, every peer measured in this one run: prints the comparison tables and
the targets, and writes bench/RESULTS.md and bench/growth.png.

Each (case, peer) runs in its own process (bench/worker.py), once per repeat; the repeats are
interleaved (every measurement of repeat r before any of repeat r + 1) so that drift of the shared
machine hits all peers alike, and the tables report medians over the repeats. Run as::

    cd bench && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=.. python compare.py
"""
import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cases import (
    CASES,
    CASES_BY_NAME,
    DIGITS,
    GROWTH_WIDTHS,
    INFERENCE_ROWS,
    MIN_DIGITS_ACCURACY,
    TARGETS,
    growth_case,
)
from peers import GROWTH_PEERS, STEP_PEERS, fit_batches

HERE = Path(__file__).resolve().parent
FORWARD_PEERS = ("fastnn", "torch", "sklearn")
E2E_PEERS = ("fastnn", "sklearn", "torch")
# From the project root, with fastnn built in place (`python setup.py build_ext --inplace`); drop
# PYTHONPATH when fastnn is installed.
COMMAND = "cd bench && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=.. python compare.py"


# A measurement during which other processes kept more than this many cores busy is taken again
# (the machine is shared: a neighbour's burst stalls multithreaded peers by up to 100 ms per step).
MAX_FOREIGN_LOAD = 0.25
RETRIES = 4


def busy_seconds():
    """CPU seconds spent by the whole machine so far (user, nice, system, irq, softirq, steal)."""
    fields = open("/proc/stat").readline().split()[1:]
    user, nice, system, _, _, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def worker(*args):
    """Run bench/worker.py with ``args`` in a new process; its JSON result.

    Retried (after a pause) while the rest of the machine was busy during the run.
    """
    for attempt in range(RETRIES + 1):
        started, busy = time.perf_counter(), busy_seconds()
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run([sys.executable, str(HERE / "worker.py"), *map(str, args)],
                              capture_output=True, text=True, cwd=HERE)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = after.ru_utime + after.ru_stime - child.ru_utime - child.ru_stime
        foreign = (busy_seconds() - busy - own) / (time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"worker {args} failed:\n{done.stderr}")
        if foreign <= MAX_FOREIGN_LOAD or attempt == RETRIES:
            break
        print(f"  {' '.join(map(str, args))}: {foreign:.2f} cores busy elsewhere, again",
              file=sys.stderr, flush=True)
        time.sleep(2 + 3 * attempt)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(jobs, repeats):
    """{key: [result of each repeat]} for ``jobs`` = {key: worker args}, interleaved."""
    results = {key: [] for key in jobs}
    for r in range(repeats):
        for key, args in jobs.items():
            results[key].append(worker(*args))
        print(f"  repeat {r + 1}/{repeats} done", file=sys.stderr, flush=True)
    return results


def machine():
    """CPU model, versions and the thread pools each library runs, as a worker process sees them."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            **worker("info")}


def fmt_time(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def fmt_ratio(ratio):
    return f"1/{1 / ratio:.0f}" if ratio < 0.01 else f"{ratio:.3g}"


def markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def step_tables(median):
    """Seconds per training step, and fastnn's ratios to each peer."""
    peers = list(STEP_PEERS)
    times = [[case.name, " ".join(map(str, case.sizes)), case.activation, case.batch, case.dtype]
             + [fmt_time(median[f"{case.name}/{peer}"]) for peer in peers] for case in CASES]
    others = [peer for peer in peers if not peer.startswith("fastnn")]
    ratios = []
    for case in CASES:
        for mine in ("fastnn-fit", "fastnn-step"):
            ratios.append([case.name, mine] + [
                fmt_ratio(median[f"{case.name}/{mine}"] / median[f"{case.name}/{peer}"])
                for peer in others])
    return (markdown(["case", "sizes", "act", "batch", "dtype"] + peers, times),
            markdown(["case", "fastnn"] + [f"/ {peer}" for peer in others], ratios))


def growth_outputs(median, path):
    """The growth table, and the plot saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [[w] + [fmt_time(median[f"w{w}/{peer}"]) for peer in GROWTH_PEERS]
            + [fmt_ratio(median[f"w{w}/fastnn-fit"] / median[f"w{w}/{peer}"])
               for peer in GROWTH_PEERS[1:]] for w in GROWTH_WIDTHS]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for peer in GROWTH_PEERS:
        ax.loglog(GROWTH_WIDTHS, [median[f"w{w}/{peer}"] for w in GROWTH_WIDTHS], "o-", label=peer)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("width w (network w-w-w-10, relu, batch 128, float32)")
    ax.set_ylabel("seconds per training step (median)")
    ax.set_title("Time per SGD step as the network widens")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return markdown(["width"] + list(GROWTH_PEERS) + [f"fastnn / {p}" for p in GROWTH_PEERS[1:]],
                    rows)


def target_table(median, accuracy, alloc):
    """One row per target: ratio, bound, met or not."""
    rows = []
    for label, mine, peer, bound in TARGETS:
        ratio = median[mine] / median[peer]
        rows.append([label, fmt_ratio(ratio), f"<= {fmt_ratio(bound)}",
                     "met" if ratio <= bound else "NOT MET"])
    rows.append(["digits end to end test accuracy", f"{accuracy:.4f}",
                 f">= {MIN_DIGITS_ACCURACY}",
                 "met" if accuracy >= MIN_DIGITS_ACCURACY else "NOT MET"])
    worst = max(peak for peak, _ in alloc.values())
    rows.append(["Python allocations per train_step after warm-up (worst case)", f"{worst} B",
                 "0 B", "met" if worst == 0 else "NOT MET"])
    return markdown(["target (ratio = fastnn / peer, same run)", "measured", "bound", ""], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the step, forward cases")
    parser.add_argument("--slow-repeats", type=int, default=2,
                        help="repeats of the end-to-end and growth runs")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()

    info = machine()
    print(json.dumps(info["threadpool_info"], indent=1))
    jobs = {f"{case.name}/{peer}": ("step", case.name, peer)
            for case in CASES for peer in STEP_PEERS}
    jobs.update({f"forward-{rows}/{peer}": ("forward", rows, peer)
                 for rows in INFERENCE_ROWS for peer in FORWARD_PEERS})
    print(f"steps and forward: {len(jobs)} measurements x {args.repeats}", file=sys.stderr)
    results = measure(jobs, args.repeats)
    slow = {f"e2e/{peer}": ("e2e", peer) for peer in E2E_PEERS}
    slow.update({f"{growth_case(w).name}/{peer}": ("growth", w, peer)
                 for w in GROWTH_WIDTHS for peer in GROWTH_PEERS})
    print(f"end to end and growth: {len(slow)} measurements x {args.slow_repeats}", file=sys.stderr)
    results.update(measure(slow, args.slow_repeats))
    alloc, rss = worker("alloc"), worker("rss")

    median = {key: statistics.median(r[0] if key.startswith("e2e/") else r for r in runs)
              for key, runs in results.items()}
    accuracy = {peer: statistics.median(r[1] for r in results[f"e2e/{peer}"]) for peer in E2E_PEERS}
    times, ratios = step_tables(median)
    forward = markdown(["rows"] + list(FORWARD_PEERS) + ["fastnn / torch", "fastnn / sklearn"], [
        [rows] + [fmt_time(median[f"forward-{rows}/{p}"]) for p in FORWARD_PEERS]
        + [fmt_ratio(median[f"forward-{rows}/fastnn"] / median[f"forward-{rows}/{p}"])
           for p in FORWARD_PEERS[1:]] for rows in INFERENCE_ROWS])
    e2e = markdown(["peer", "wall time (median)", "test accuracy", "fastnn / peer"], [
        [peer, fmt_time(median[f"e2e/{peer}"]), f"{accuracy[peer]:.4f}",
         fmt_ratio(median["e2e/fastnn"] / median[f"e2e/{peer}"])] for peer in E2E_PEERS])
    growth = growth_outputs(median, HERE / "growth.png")
    memory = markdown(["case", "most bytes allocated within one train_step", "bytes kept per step"],
                      [[name, peak, f"{net:g}"] for name, (peak, net) in alloc.items()])
    targets = target_table(median, accuracy["fastnn"], alloc)

    report = f"""# fastnn benchmark results

Regenerate (from the project root, after an in-place build or install; about 15 minutes on 2 cores):

```bash
{COMMAND}
```

Run {datetime.datetime.now():%Y-%m-%d %H:%M}. Every (case, peer) was timed in its own process,
{args.repeats} times (end to end and growth: {args.slow_repeats}), interleaved; each figure is the
median over the repeats of the median of 7 timed blocks after a warm-up. Ratios are fastnn / peer
within this run.

## Targets

{targets}

## Training step (seconds per step)

Squared error (fastnn's: sum over outputs, mean over samples), SGD, identity output, same dtype in
every peer. `fastnn-step` is one `MLP.train_step` call; `fastnn-fit` is the per-step cost inside one
`fit(epochs=1, shuffle=False)` over many batches; `gemm` is NumPy's matmul into preallocated
outputs for exactly the products of one step (the GEMM bound); `gemm-scipy` is the same products
through SciPy's BLAS, the OpenBLAS build fastnn's kernels call (NumPy bundles another).

{times}

Ratios (fastnn / peer):

{ratios}

## End to end: scikit-learn's digits

64-128-10 relu, softmax cross-entropy, Adam lr {DIGITS["lr"]}, batch {DIGITS["batch"]},
{DIGITS["epochs"]} epochs, no early stopping, no L2, float64; X / 16, stratified 75/25 split. Wall
time of the training call.

{e2e}

## Inference: forward of the 64-128-10 net (float64)

{forward}

## Growth: w-w-w-10 relu, batch 128, float32

![time per step against width](growth.png)

{growth}

## Memory

Python allocations (tracemalloc) of `MLP.train_step` after 10 warm-up steps, over 200 steps:

{memory}

Peak RSS of a process that runs one `fit` of the large case: {rss[0]:.0f} MiB before the fit
(interpreter, libraries, network and the fit's {fit_batches(CASES_BY_NAME["large"])} batches of
data), {rss[1]:.0f} MiB after it.

## Machine

- CPU: {info["cpu"]}, {info["cores"]} cores (shared; absolute times drift, ratios in one run hold)
- Python {info["python"]}; {", ".join(f"{k} {v}" for k, v in info["versions"].items())}
- `threadpoolctl.threadpool_info()` in a worker with every library loaded:

```json
{json.dumps(info["threadpool_info"], indent=1)}
```
"""
    args.out.write_text(report)
    print(f"\n{targets}\n\n{times}\n\n{ratios}\n\n{e2e}\n\n{forward}\n\n{growth}\n\n{memory}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
