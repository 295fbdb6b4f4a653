"""How many threads fastnn's matrix products use, and the user's caps on them.

Design
------
fastnn multiplies matrices through SciPy's BLAS (``scipy.linalg.cython_blas``). In the wheels of
NumPy 2 and SciPy that is its own OpenBLAS (``scipy.libs/libscipy_openblas*``), a different library
from NumPy's; `blas_file` finds the one SciPy's ``dgemm`` lives in, and only that one is set.

Below `PARALLEL_WORK` multiply-adds per product, more BLAS threads cost more than they give: on a
quiet 2-core machine 1 and 2 threads are within ~20% for digits-sized networks, and beside a busy
process 2 threads were 4-20x slower than 1 (threads that wait for a descheduled partner). So each
compiled call of the engine (an epoch, a step, a forward pass, a loss, a gradient) runs

- on one thread when its largest product is below `PARALLEL_WORK` multiply-adds;
- otherwise on the user's limit: the library's setting when the call began (which reflects
  ``threadpoolctl.threadpool_limits``, ``OPENBLAS_NUM_THREADS`` and ``OMP_NUM_THREADS``), lowered
  by the network's ``n_threads`` (`fastnn.MLP`, ``fit``, the scikit-learn estimators) and by
  `set_threads` for the whole process;
- on one thread whenever another fastnn call runs in another thread (`fastnn.fit_many`, or
  scikit-learn's searches under joblib's threading backend): two calls on two cores each run on
  one, never 2 x 2 threads on 2 cores.

Between the two, an epoch (``fit``, the estimators) of a network without batch normalization or
dropout whose batches' largest product has at least `SPLIT_WORK` multiply-adds splits each batch's
rows between two threads, each on one BLAS thread: fastnn's own worker thread (started at the
first such epoch, asleep between fits, stopped before ``fork()``) computes the gradient of one
half while the calling thread computes the other's, then each sums the two and steps half of the
parameters. This takes
two cores where two BLAS threads would not pay; the result equals that of an unsplit step up to
rounding (the gradient's sums are added in another order) and does not depend on timing: a
worker that is late (a busy neighbour) leaves its half to the calling thread, and one that keeps
making steps slower than one thread's is left out for a while (the engine times its steps). The
split needs two CPUs in the process's affinity mask, two threads allowed by the caps below, and
no other fastnn call running; ``n_threads=1`` (or `set_threads` (1)) turns it off.

Above `PARALLEL_WORK`, an epoch does not take the BLAS's threads for good: two BLAS threads pay
there on a quiet machine, but beside a busy process every product waits for the BLAS thread the
process preempts (10-15x slower). So it times a few steps on one BLAS thread, then tries the
user's setting when the cores look idle (the kernel's count of runnable tasks, less this
process's own, in ``/proc/loadavg``; not trusted where it counts more tasks than ``/proc`` shows,
as in a container), keeps it while its steps are faster, and goes back to one thread at the
first step that takes twice their average. 1 and 2 BLAS threads give the same bits, so the
choice, which depends on timing, changes no result. The row split's worker waits the same way
to be tried while the cores look busy, where busy counts any thread but the caller and the
worker (a BLAS's thread spinning after a threaded product takes a core as a neighbour does).

The choice is compiled (fastnn/_blas_threads.pyx): a few C calls per compiled call, none of them
when nothing changes, so a step of a tiny network costs what it costs without a policy. The
library's setting is restored when the last running fastnn call ends. The setting is
process-wide (BLAS libraries have one per process, as threadpoolctl's limits are): code of the
user's that calls SciPy's BLAS in another thread *while* a fastnn call runs gets fastnn's choice
for that time (NumPy's own BLAS is a different library and is never touched). With a BLAS other
than OpenBLAS, or where the library cannot be located, nothing is set and the products run as
the library is configured.
"""
import functools
import os
import threading

from fastnn import _blas_threads
from fastnn._validation import check_int

__all__ = ["PARALLEL_WORK", "SPLIT_WORK", "blas_file", "controlled", "set_threads", "get_threads",
           "check_n_threads"]

# Products of fewer multiply-adds than this (rows x n_in x n_out of the widest dense layer) run on
# one BLAS thread (their epochs split rows, below). Measured on a quiet 2-core machine (bench/ab.py
# against OpenBLAS's own choice, bench/THREADS.md): two BLAS threads are 3-35% faster than the
# row split from 8.4M multiply-adds (growth w256, mid, large), the split 15-20% faster at 2-4M
# (growth w128, 64-512-10 batch 128). Beside a busy process two BLAS threads are 8-23x slower
# than one (descheduled partners) and the split backs off: above this threshold that cliff is the
# price of the quiet machine's speed; ``n_threads=1`` avoids it.
PARALLEL_WORK = 1 << 23
_blas_threads.set_parallel_work(PARALLEL_WORK)

# An epoch whose batches' largest product has at least this many multiply-adds (and fewer than
# PARALLEL_WORK) splits each batch's rows between two threads of its own. Measured with
# bench/threads.py's machine (2 cores, SkylakeX), 20 epochs of Adam on digits, split / one
# thread (medians of 7): 0.61 at 1.3M (64-100-10, batch 200, scikit-learn's defaults), 0.63 at
# 1M (64-512-10, batch 32), 0.78 at 0.8M (64-100-10, batch 128), 0.76-0.87 at 0.5M (64-128-10
# batch 64, 64-256-10 batch 32, 64-1024-10 batch 8, 64-64-64-10 batch 128), 1.04 at 0.4M
# (64-100-10, batch 64), 1.06-1.14 at 0.25M and below: there the hand-offs and the halves'
# smaller products cost more than the second core gives.
SPLIT_WORK = 1 << 19
_blas_threads.set_split_work(SPLIT_WORK)

# Held while the first engines locate the BLAS: two threads that build their first networks at
# once (a search under joblib's threading backend) must not both attach, the second while the
# first one's epoch runs, which `_blas_threads.attach` refuses.
_attaching = threading.Lock()

# The Fortran name of dgemm as SciPy's builds link it: plain (reference names), scipy-openblas's
# prefixed one, and their 64-bit-integer variants.
DGEMM_NAMES = ("dgemm_", "scipy_dgemm_", "dgemm", "dgemm_64_", "scipy_dgemm_64_")


def _file_of(ctypes, address):
    """The path of the loaded shared object holding ``address``, or None (dladdr)."""

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    try:
        dladdr = ctypes.CDLL(None).dladdr
    except (OSError, AttributeError):
        return None
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
    info = DlInfo()
    if not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.path.realpath(os.fsdecode(info.dli_fname))


@functools.cache
def blas_file():
    """The path of the shared library whose dgemm fastnn's products call.

    cython_blas's dgemm is a wrapper in cython_blas's own module; the BLAS routine it calls is
    looked up among that module's dependencies, as the dynamic linker resolved it.

    Returns
    -------
    str or None
        None where the library cannot be located (no ``dladdr``: not Linux or macOS).
    """
    import ctypes

    from scipy.linalg import cython_blas
    capsule = cython_blas.__pyx_capi__["dgemm"]
    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    wrapper = _file_of(ctypes, api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule)))
    if wrapper is None:
        return None
    module = ctypes.CDLL(wrapper)
    for name in DGEMM_NAMES:
        routine = getattr(module, name, None)
        if routine is not None:
            return _file_of(ctypes, ctypes.cast(routine, ctypes.c_void_p).value)
    return None


def _openblas_controls(path):
    """The addresses of OpenBLAS's ``int get_num_threads(void)`` and ``void
    set_num_threads(int)`` in the library at ``path``, or None if it is not an OpenBLAS."""
    import ctypes
    try:
        library = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_", "_64"):
            get = getattr(library, f"{prefix}openblas_get_num_threads{suffix}", None)
            put = getattr(library, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                return (ctypes.cast(get, ctypes.c_void_p).value,
                        ctypes.cast(put, ctypes.c_void_p).value)
    return None


def attach_blas():
    """Give the compiled policy the thread-count functions of `blas_file`'s library (once, at
    the first engine built; not at ``import fastnn``, which stays free of ctypes). Threads that
    call it at once attach once: the others wait, then find it done."""
    with _attaching:
        if _blas_threads.is_attached():
            return
        path = blas_file()
        controls = _openblas_controls(path) if path is not None else None
        _blas_threads.attach(*(controls or (None, None)))


def controlled():
    """Whether fastnn sets the threads of its BLAS (an OpenBLAS it located).

    Returns
    -------
    bool
    """
    if not _blas_threads.is_attached():
        attach_blas()
    return _blas_threads.controls()


def check_n_threads(n_threads):
    """``n_threads`` as given to `fastnn.MLP`, ``fit`` or an estimator: None or an int >= 1.

    Parameters
    ----------
    n_threads : int or None

    Returns
    -------
    int or None

    Raises
    ------
    TypeError
        If it is not an integer (nor None).
    ValueError
        If it is below 1.
    """
    return None if n_threads is None else check_int("n_threads", n_threads, 1)


def set_threads(n_threads):
    """Cap the BLAS threads of fastnn's products in the whole process.

    Parameters
    ----------
    n_threads : int or None
        At most this many threads (>= 1); None removes the cap (the library's own setting, as
        threadpoolctl or ``OPENBLAS_NUM_THREADS`` leave it, is then the only limit). Products
        below `PARALLEL_WORK` multiply-adds run on one thread whatever the cap.

    Examples
    --------
    >>> import fastnn
    >>> fastnn.threads.set_threads(1)   # fastnn's products on one thread from now on
    >>> fastnn.threads.get_threads()
    1
    >>> fastnn.threads.set_threads(None)
    """
    _blas_threads.set_cap(check_n_threads(n_threads) or 0)


def get_threads():
    """The process's cap set by `set_threads`.

    Returns
    -------
    int or None
        None when there is none.
    """
    return _blas_threads.get_cap() or None
