from cpython.pythread cimport PyThread_type_lock

from fastnn._plan cimport Rule


cdef class UpdateRule:
    cdef Rule rule
    cdef readonly tuple states     # the rule's state vectors, each (n_params,)
    cdef PyThread_type_lock lock   # held by every read and write of rule and states
    cdef object __weakref__        # for the fork handlers' registry
    cdef int acquire(self) except -1
    cdef void release(self) noexcept
