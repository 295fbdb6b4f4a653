# Design: the one way fastnn takes its locks. A thread that must wait releases the GIL while it
# waits, because the holder may need the GIL to finish (a compiled pass takes it back to return).
from cpython.pythread cimport (NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock,
                               PyThread_type_lock)


cdef inline void take(PyThread_type_lock lock) noexcept:
    """Acquire `lock`, waiting without the GIL."""
    if not PyThread_acquire_lock(lock, NOWAIT_LOCK):
        with nogil:
            PyThread_acquire_lock(lock, WAIT_LOCK)
