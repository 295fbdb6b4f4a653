"""Two builds of fastnn timed against each other in the same run: every fastnn measurement of
bench/compare.py, once with each build, interleaved; the median of the per-repeat ratios new / base.

``--base`` and ``--new`` are two source checkouts of fastnn, each built in place
(``python setup.py build_ext --inplace``). Every measurement runs bench/worker.py (this folder's
benchmark code, the same for both sides) in its own process with ``PYTHONPATH`` set to one
checkout; the worker reports the file of every fastnn module it loaded, and a run whose modules do
not all come from that checkout stops with an error (an editable install elsewhere must not be timed
by mistake). In each repeat the two sides of one measurement run back to back, the base first in
even repeats and the new build first in odd ones, so that drift of the shared machine cancels in
the ratio of the pair. Run from the project root as::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab.py --base DIR_A --new DIR_B

``--new`` the same folder as ``--base`` (or a second copy of the same commit) measures the noise
floor. The exit status is 1 when a median ratio is above the bound (1.03), else 0.

On a shared machine, ``--nice -10`` (as root) puts the workers ahead of other sessions' processes
(each worker gets a session and autogroup of its own at that niceness; a plain ``nice`` does not
rank across sessions while the kernel's autogroups are on). Without it, a neighbour's burst
made single ratios of the same build against itself range from 0.04 to 23 (the widest on mid,
large and growth).
Measurements whose interval reaches past 1.03 are named at the end: run them again with more
repeats (``--cases digits e2e --repeats 30``; the small cases cost a few seconds a repeat).
bench/AB-noise.md has the noise floor and the repeats each measurement needs.
"""
import argparse
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from compare import busy_seconds, fmt_time, markdown

from cases import CASES, DIGITS, GROWTH_WIDTHS, INFERENCE_ROWS

HERE = Path(__file__).resolve().parent
BOUND = 1.03
COMMAND = ("env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab.py "
           "--base DIR_A --new DIR_B")
# Growth widths timed by default: the wider ones cost 4 s (512), 11 s (1024) and 41 s (2048) per
# process on 2 cores and are BLAS-bound like the mid and large cases; ask for them by name.
DEFAULT_GROWTH = tuple(w for w in GROWTH_WIDTHS if w <= 256)


def measurements():
    """{key: (label, worker args, case name)}: every fastnn measurement bench/compare.py makes."""
    jobs = {}
    for case in CASES:
        jobs[f"{case.name}/fastnn-fit"] = (f"{case.name}: step inside fit", ("step", case.name,
                                                                             "fastnn-fit"))
        jobs[f"{case.name}/fastnn-step"] = (f"{case.name}: train_step", ("step", case.name,
                                                                         "fastnn-step"))
    for rows in INFERENCE_ROWS:
        jobs[f"forward-{rows}/fastnn"] = (f"forward, {rows} row{'s' * (rows > 1)}",
                                          ("forward", rows, "fastnn"))
    jobs["e2e/fastnn"] = (f"digits end to end ({DIGITS['epochs']} epochs Adam)", ("e2e", "fastnn"))
    for width in GROWTH_WIDTHS:
        jobs[f"w{width}/fastnn-fit"] = (f"growth w{width}: step inside fit",
                                        ("growth", width, "fastnn-fit"))
    return {key: (label, args, key.split("/")[0]) for key, (label, args) in jobs.items()}


MEASUREMENTS = measurements()
ALL_CASES = list(dict.fromkeys(case for _, _, case in MEASUREMENTS.values()))
DEFAULT_CASES = [c for c in ALL_CASES if not c.startswith("w") or int(c[1:]) in DEFAULT_GROWTH]


def checkout(path):
    """The resolved folder ``path``, after checking it holds fastnn built in place."""
    folder = Path(path).resolve()
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    if not (folder / "fastnn" / "__init__.py").is_file():
        raise SystemExit(f"{folder}: no fastnn/__init__.py (not a fastnn checkout)")
    if not list((folder / "fastnn").glob(f"*{suffix}")):
        raise SystemExit(f"{folder}: no compiled module fastnn/*{suffix}; build it in place "
                         f"first:\n  cd {folder} && {sys.executable} setup.py build_ext --inplace")
    return folder


def describe(folder):
    """(commit, description) of the checkout; commit is None unless it is a git checkout whose
    tracked files are those of the commit."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "log", "-1", "--format=%H %h %s"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None, "not a git checkout"
    commit, text = head.split(" ", 1)
    return (None, text + " (with uncommitted changes)") if dirty else (commit, text)


def renice(nice):
    """Add ``nice`` to this process's niceness, in a new session whose autogroup gets the same
    niceness: with the kernel's autogroups on (/proc/sys/kernel/sched_autogroup_enabled), niceness
    only ranks processes within one session, so os.nice alone does not put a worker ahead of
    another session's processes. Negative values need root."""
    os.setsid()
    os.nice(nice)
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(nice))
    except OSError:
        pass


def worker(folder, args, nice=0):
    """Run bench/worker.py ``args`` in a new process with fastnn imported from ``folder``.

    Returns its result and the cores other processes kept busy meanwhile, after checking that every
    fastnn module it loaded came from ``folder``. Not retried when the machine is busy (as
    bench/compare.py does): the two sides of a pair see the same drift, and the median of the pair
    ratios shrugs off a burst that hit one side, at no cost in time.
    """
    env = dict(os.environ, PYTHONPATH=str(folder))
    started, busy = time.perf_counter(), busy_seconds()
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, str(HERE / "worker.py"), "--origin", *map(str, args)],
                          capture_output=True, text=True, cwd=HERE, env=env, check=False,
                          preexec_fn=(lambda: renice(nice)) if nice else None)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = after.ru_utime + after.ru_stime - child.ru_utime - child.ru_stime
    foreign = (busy_seconds() - busy - own) / (time.perf_counter() - started)
    if done.returncode != 0:
        raise RuntimeError(f"worker {args} with PYTHONPATH={folder} failed:\n{done.stderr}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    origin, own_dir = out["fastnn"], (folder / "fastnn").resolve()
    stray = {name: file for name, file in origin.items()
             if file is None or not Path(file).resolve().is_relative_to(own_dir)}
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    if not origin or stray or not any(file.endswith(suffix) for file in origin.values()):
        raise RuntimeError(f"worker {' '.join(map(str, args))} with PYTHONPATH={folder} did not "
                           f"time a build from {own_dir}: it loaded {json.dumps(origin, indent=1)}")
    return out["result"], max(0.0, foreign)


def seconds(result):
    """The timed figure of a worker result (end to end: (seconds, accuracy))."""
    return result[0] if isinstance(result, list) else result


def median_interval(values, coverage=0.88):
    """A distribution-free interval for the median of ``values``: the order statistics
    (x_(k), x_(n+1-k)) with the largest k whose binomial coverage is at least ``coverage`` (about
    90%: 89% with 10 values; with 3 values even the full range covers only 75%: then it is min and
    max). Returns (low, high, coverage)."""
    xs, n = sorted(values), len(values)

    def covers(k):
        return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n

    k = 1
    while k + 1 <= (n + 1) // 2 and covers(k + 1) >= coverage:
        k += 1
    return xs[k - 1], xs[n - k], covers(k)


def fmt_ratio(ratio):
    return f"{ratio:.3f}"


def measure(args, base, new):
    """Time every measurement of ``args.cases``: base and new interleaved, ``args.repeats`` times.

    Returns the run as a JSON-ready dict (what bench/ab.py --report renders); with ``args.raw``
    the dict so far is also written there after every repeat.
    """
    cases = ALL_CASES if args.cases == ["all"] else args.cases
    keys = [key for key, (_, _, case) in MEASUREMENTS.items() if case in cases]
    (base_commit, base_text), (new_commit, new_text) = describe(base), describe(new)
    command = ["env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab.py",
               f"--base {args.base}", f"--new {args.new}", f"--repeats {args.repeats}"]
    command += [f"--nice {args.nice}"] if args.nice else []
    command += ["--cases", *args.cases] if args.cases != DEFAULT_CASES else []
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info
                    if line.startswith("model name")), platform.processor())
    run = {"command": " ".join(command), "base": str(base), "new": str(new),
           "base_commit": base_text, "new_commit": new_text,
           "same": base == new or (base_commit is not None and base_commit == new_commit),
           "nice": args.nice, "date": f"{datetime.datetime.now():%Y-%m-%d %H:%M}",
           "machine": f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}",
           "cores": os.cpu_count(), "load": [os.getloadavg()[0], None], "minutes": 0.0,
           "repeats": 0, "results": {key: {"A": [], "B": []} for key in keys},
           "busy_elsewhere": {key: {"A": [], "B": []} for key in keys}}
    sides = {"A": base, "B": new}
    print(f"{len(keys)} measurements x 2 sides x {args.repeats} repeats", file=sys.stderr)
    started = time.perf_counter()
    for r in range(args.repeats):
        for key in keys:
            for side in ("AB" if r % 2 == 0 else "BA"):
                result, busy = worker(sides[side], MEASUREMENTS[key][1], args.nice)
                run["results"][key][side].append(result)
                run["busy_elsewhere"][key][side].append(busy)
        spent = time.perf_counter() - started
        run.update(repeats=r + 1, minutes=spent / 60, load=[run["load"][0], os.getloadavg()[0]])
        if args.raw:  # after every repeat: what was measured survives an interrupted run
            args.raw.write_text(json.dumps(run))
        print(f"  repeat {r + 1}/{args.repeats} done, {spent:.0f} s, about "
              f"{spent / (r + 1) * (args.repeats - r - 1):.0f} s to go", file=sys.stderr,
              flush=True)
    return run


def report(run):
    """(the Markdown report of ``run``, the labels of the measurements slower than the bound)."""
    rows, slower, unsure = [], [], []
    n = run["repeats"]
    for key, sides in run["results"].items():
        a = [seconds(x) for x in sides["A"][:n]]
        b = [seconds(x) for x in sides["B"][:n]]
        ratios = [y / x for x, y in zip(a, b)]
        ratio = statistics.median(ratios)
        low, high, _ = median_interval(ratios)
        label = MEASUREMENTS[key][0]
        if ratio > BOUND:
            slower.append(label)
        elif high > BOUND:
            unsure.append(key.split("/")[0])
        busy = run["busy_elsewhere"][key]
        rows.append([label, fmt_time(statistics.median(a)), fmt_time(statistics.median(b)),
                     fmt_ratio(ratio), f"{fmt_ratio(low)} - {fmt_ratio(high)}",
                     f"{statistics.median(busy['A'] + busy['B']):.2f}",
                     "within 3%" if ratio <= BOUND else "**NOT within 3%**"])
    cover = median_interval([0.0] * n)[2]
    table = markdown(["measurement", "A median", "B median", "B / A (median of ratios)",
                      f"B / A, {cover:.0%} interval", "busy elsewhere", f"<= {BOUND}"], rows)
    notes = []
    if "e2e/fastnn" in run["results"]:
        accuracy = {side: statistics.median(x[1] for x in run["results"]["e2e/fastnn"][side][:n])
                    for side in "AB"}
        notes.append(f"Digits end to end test accuracy: A {accuracy['A']:.4f}, "
                     f"B {accuracy['B']:.4f}.")
    notes.append("Every measurement within 3% or faster." if not slower else
                 f"Slower than 3%: {', '.join(slower)}.")
    if unsure:
        notes.append(f"{len(unsure)} within 3% but with an interval reaching past it (not "
                     f"conclusive; more repeats: --cases {' '.join(dict.fromkeys(unsure))}).")
    title = "A against itself (noise floor)" if run["same"] else "new build against base"
    niceness = f"; every worker ran at niceness {run['nice']:+d}" if run["nice"] else ""
    load = "load average {:.2f} at the start, {:.2f} at the end".format(*run["load"])
    text = f"""# fastnn A/B: {title}

```bash
{run["command"]}
```

- A (base): `{run["base"]}`: {run["base_commit"]}
- B (new): `{run["new"]}`: {run["new_commit"]}
- Run {run["date"]}, {run["minutes"]:.1f} minutes; {run["machine"]}; {load}.

Each measurement ran {n} times per side, each time in its own process (bench/worker.py, the
figure being the median of 7 timed blocks after a warm-up), the two sides back to back (A first
in even repeats, B first in odd ones). A and B medians are over the repeats; the ratio is the
median of the {n} per-repeat ratios B / A; the interval is a distribution-free one for that
median (order statistics). Steps are seconds per training step, forward per call, end to end per
`fit`. "busy elsewhere" is the median over the runs of the cores other processes kept busy
meanwhile (out of {run["cores"]}){niceness}.

{table}

{" ".join(notes)}
"""
    return text, slower


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="cases: " + " ".join(ALL_CASES) + " (or all)")
    parser.add_argument("--base", help="checkout of the reference build (A)")
    parser.add_argument("--new", help="checkout of the build under test (B)")
    parser.add_argument("--repeats", type=int, default=10,
                        help="processes per side and measurement (default 10)")
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, metavar="CASE",
                        help="which cases (default: all but the growth widths above 256)")
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) to this file")
    parser.add_argument("--raw", type=Path,
                        help="write every result (JSON) to this file, after every repeat")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness added to each worker (negative: ahead of other processes; "
                             "needs root)")
    parser.add_argument("--report", type=Path, metavar="RAW",
                        help="measure nothing: the report of a file written by --raw (an "
                             "interrupted run's too)")
    args = parser.parse_args()

    if args.report:
        run = json.loads(args.report.read_text())
        if not run["repeats"]:
            parser.error(f"{args.report}: no repeat was completed")
    else:
        if not (args.base and args.new):
            parser.error("--base and --new are required (or --report)")
        unknown = sorted(set(args.cases) - set(ALL_CASES) - ({"all"} if args.cases == ["all"]
                                                              else set()))
        if unknown:
            parser.error(f"unknown case(s) {' '.join(unknown)}; known: {' '.join(ALL_CASES)}")
        if args.repeats < 1:
            parser.error("--repeats must be at least 1")
        if args.nice < 0 and os.geteuid() != 0:
            parser.error("a negative --nice needs root")
        base, new = checkout(args.base), checkout(args.new)
        for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            if name in os.environ:
                print(f"warning: {name} is set; benchmarks run with it unset: {COMMAND}",
                      file=sys.stderr)
        run = measure(args, base, new)
    text, slower = report(run)
    print(text)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    sys.exit(1 if slower else 0)


if __name__ == "__main__":
    main()
