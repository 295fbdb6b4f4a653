"""How many threads fastnn's matrix products use, chosen around each compiled call.

Design
------
fastnn multiplies matrices through SciPy's BLAS (``scipy.linalg.cython_blas``). In the wheels of
NumPy 2 and SciPy that is its own OpenBLAS (``scipy.libs/libscipy_openblas*``), a different library
from NumPy's; `blas_library` finds the one SciPy's ``dgemm`` lives in, and only that one is set.

Below `PARALLEL_WORK` multiply-adds per product, more BLAS threads cost more than they give: on a
quiet 2-core machine 1 and 2 threads are within ~20% for digits-sized networks, and beside a busy
process 2 threads were 4x slower than 1 (threads that wait for a descheduled partner). So each
compiled call (an epoch, a step, a forward pass, a loss, a gradient) runs under `run`:

- one thread when its largest product is below `PARALLEL_WORK`;
- otherwise the user's limit: the library's setting when the call began (which reflects
  ``threadpoolctl.threadpool_limits``, ``OPENBLAS_NUM_THREADS`` and ``OMP_NUM_THREADS``), lowered
  by fastnn's own `set_threads` / `limit`;
- one thread whenever another fastnn call is running in another thread (`fit_many`, or
  scikit-learn's searches under the threading backend): two calls on two cores each run on one,
  never 2 x 2 threads on 2 cores.

The library's setting is restored when the last running fastnn call ends. The setting is
process-wide (BLAS libraries have one per process, as threadpoolctl's limits are): code of the
user's that calls SciPy's BLAS in another thread *while* a fastnn call runs gets fastnn's choice
for that time (NumPy's own BLAS is a different library and is never touched). Without a BLAS that
threadpoolctl can control (or on a platform where the library cannot be located) nothing is set
and the products run as the library is configured.
"""
import contextvars
import ctypes
import functools
import itertools
import os
import threading
from contextlib import contextmanager

from fastnn._validation import check_int

# Products of fewer multiply-adds than this (rows x n_in x n_out of the widest dense layer) run on
# one BLAS thread. Measured in bench/threads.py (bench/THREADS.md): at 1e8 (784-512-10, batch 256)
# one thread was still 10% faster than two on a quiet 2-core machine, and 5.7x faster beside a busy
# process; only products of ~1e9 and more (~0.1 s on one core) leave the split room to pay.
PARALLEL_WORK = 1 << 30

# The user's cap: set_threads for the process, limit() for a block of code (per thread/context).
_process_cap = None
_context_cap = contextvars.ContextVar("fastnn_threads", default=None)

_state_lock = threading.Lock()
_running = 0     # fastnn calls now running (in all threads)
_saved = None    # the library's setting before the first of them began
_current = None  # what fastnn last set while calls run


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


# The Fortran name of dgemm as SciPy's builds link it: plain (reference names), scipy-openblas's
# prefixed one, and their 64-bit-integer variants.
DGEMM_NAMES = ("dgemm_", "scipy_dgemm_", "dgemm", "dgemm_64_", "scipy_dgemm_64_")


def _file_of(address):
    """The path of the loaded shared object holding ``address``, or None (dladdr)."""
    try:
        dladdr = ctypes.CDLL(None).dladdr
    except (OSError, AttributeError):
        return None
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    info = _DlInfo()
    if not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.path.realpath(os.fsdecode(info.dli_fname))


def _dgemm_file():
    """The path of the shared library whose dgemm scipy.linalg.cython_blas calls, or None.

    cython_blas's dgemm is a wrapper in cython_blas's own module; the BLAS routine it calls is
    looked up among that module's dependencies, as the dynamic linker resolved it.
    """
    from scipy.linalg import cython_blas
    capsule = cython_blas.__pyx_capi__["dgemm"]
    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    wrapper = _file_of(api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule)))
    if wrapper is None:
        return None
    module = ctypes.CDLL(wrapper)
    for name in DGEMM_NAMES:
        routine = getattr(module, name, None)
        if routine is not None:
            return _file_of(ctypes.cast(routine, ctypes.c_void_p).value)
    return None


@functools.cache
def blas_library():
    """The threadpoolctl controller of the BLAS that fastnn's products run in.

    Returns
    -------
    threadpoolctl.LibController or None
        The controller of the library holding the dgemm SciPy's ``cython_blas`` calls
        (``.filepath``, ``.get_num_threads()``, ``.set_num_threads(n)``), or None when
        threadpoolctl cannot control it or the library cannot be located.
    """
    path = _dgemm_file()
    if path is None:
        return None
    from threadpoolctl import ThreadpoolController
    for library in ThreadpoolController().lib_controllers:
        if os.path.realpath(library.filepath) == path:
            return library
    return None


@functools.cache
def _controls():
    """(get, set) of the thread count of `blas_library`, or None.

    OpenBLAS's own C functions when found (~0.1 us a call, a few times less than threadpoolctl's
    methods, which look the symbol up on each call); threadpoolctl's methods otherwise.
    """
    library = blas_library()
    if library is None:
        return None
    if library.internal_api == "openblas":
        dynlib = ctypes.CDLL(library.filepath)
        for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
            get = getattr(dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
            put = getattr(dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                put.restype, put.argtypes = None, [ctypes.c_int]
                return get, put
    return library.get_num_threads, library.set_num_threads


def set_threads(n_threads):
    """Cap the BLAS threads of fastnn's products in the whole process.

    Parameters
    ----------
    n_threads : int or None
        At most this many threads (>= 1); None removes the cap (the library's own setting, as
        threadpoolctl or ``OPENBLAS_NUM_THREADS`` leave it, is then the only limit). Products
        below `PARALLEL_WORK` multiply-adds run on one thread whatever the cap.
    """
    global _process_cap
    _process_cap = None if n_threads is None else check_int("n_threads", n_threads, 1)


def get_threads():
    """The cap in force in this thread: `limit`'s if inside one, else `set_threads`'s.

    Returns
    -------
    int or None
        None when fastnn sets no cap of its own.
    """
    cap = _context_cap.get()
    return _process_cap if cap is None else cap


@contextmanager
def limit(n_threads):
    """Cap the BLAS threads of fastnn's products inside a ``with`` block, in this thread.

    Parameters
    ----------
    n_threads : int
        At most this many threads (>= 1).

    Examples
    --------
    >>> import fastnn
    >>> with fastnn.threads.limit(1):
    ...     pass  # net.fit(X, Y) here runs its products on one thread
    """
    token = _context_cap.set(check_int("n_threads", n_threads, 1))
    try:
        yield
    finally:
        _context_cap.reset(token)


def product_work(sizes, rows):
    """Multiply-adds of the largest product of a pass over ``rows`` rows.

    Parameters
    ----------
    sizes : sequence of int
        The input width and the dense layers' widths (`fastnn.MLP.sizes`).
    rows : int

    Returns
    -------
    int
    """
    return rows * max((a * b for a, b in zip(sizes, sizes[1:])), default=0)


def choose(work, setting, cap):
    """The thread count for a call alone in the process.

    Parameters
    ----------
    work : int
        `product_work` of the call.
    setting : int
        The library's setting when fastnn's calls began (the user's limit).
    cap : int or None
        fastnn's own cap (`get_threads`).

    Returns
    -------
    int
    """
    if work < PARALLEL_WORK:
        return 1
    return setting if cap is None else min(setting, cap)


def run(work, function, *args):
    """``function(*args)`` (a compiled call) with the BLAS threads fastnn chooses for ``work``.

    Parameters
    ----------
    work : int
        `product_work` of the call.
    function : callable
    *args
        Its arguments.

    Returns
    -------
    object
        What ``function`` returns.
    """
    controls = _controls()
    if controls is None:
        return function(*args)
    _begin(controls, work)
    try:
        return function(*args)
    finally:
        _end(controls)


def _begin(controls, work):
    global _running, _saved, _current
    get, put = controls
    with _state_lock:
        if _running == 0:
            _saved = _current = get()
        _running += 1
        wanted = 1 if _running > 1 else choose(work, _saved, get_threads())
        if wanted != _current:
            put(wanted)
            _current = wanted


def _end(controls):
    global _running, _current
    with _state_lock:
        _running -= 1
        if _running == 0 and _current != _saved:
            controls[1](_saved)
            _current = _saved
