from fastnn._plan cimport Rule


cdef class UpdateRule:
    cdef Rule rule
    cdef readonly tuple states     # the rule's state vectors, each (n_params,)
