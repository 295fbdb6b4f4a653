# Design: the one way fastnn takes its locks. A thread that must wait releases the GIL while it
# waits, because the holder may need the GIL to finish (a compiled pass takes it back to return),
# and a wait is interrupted by signals, so Ctrl-C reaches a main thread waiting for a network
# another thread trains (Python's handler runs; KeyboardInterrupt propagates, no lock held).
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport (NOWAIT_LOCK, PY_LOCK_ACQUIRED, WAIT_LOCK, PyLockStatus,
                               PyThread_acquire_lock, PyThread_type_lock)

cdef extern from "pythread.h":
    PyLockStatus PyThread_acquire_lock_timed(PyThread_type_lock lock, long long microseconds,
                                             int intr_flag) nogil


cdef inline int take(PyThread_type_lock lock) except -1:
    """Acquire `lock`, waiting without the GIL and running Python's signal handlers if a signal
    interrupts the wait."""
    cdef PyLockStatus status
    if PyThread_acquire_lock(lock, NOWAIT_LOCK):
        return 0
    while True:
        with nogil:
            status = PyThread_acquire_lock_timed(lock, -1, 1)
        if status == PY_LOCK_ACQUIRED:
            return 0
        PyErr_CheckSignals()


cdef inline void hold(PyThread_type_lock lock) noexcept:
    """Acquire `lock`, waiting without the GIL and without interruption: for the fork handlers
    and for taking back locks let go for a signal handler, which must not fail half-way."""
    if not PyThread_acquire_lock(lock, NOWAIT_LOCK):
        with nogil:
            PyThread_acquire_lock(lock, WAIT_LOCK)
