# Design: the compiled half of the input checks (fastnn/_validation.py is the other): a fast path
# that accepts an array the engine can read as it is, without creating a Python object, and one
# vectorizable finiteness scan.
cimport numpy as cnp
import numpy as np
from cython cimport floating

from fastnn._passes cimport finite

cnp.import_array()


cdef inline void* data(cnp.ndarray array) noexcept:
    return cnp.PyArray_DATA(array)


def ready(object candidate, Py_ssize_t n_columns, cnp.dtype dtype, cnp.ndarray like=None):
    """True when ``candidate`` is an ndarray the engine can read as it is: exactly of ``dtype``,
    C-contiguous, of shape (N, n_columns) with N >= 1 rows (as many as ``like`` has, if given),
    and finite.

    The fast path of the input checks in fastnn/_validation.py; False sends data through the
    general checks, which convert it or say what is wrong. Reading the shape here creates no
    Python integers, so a training step allocates nothing.
    """
    cdef cnp.ndarray array
    if not cnp.PyArray_CheckExact(candidate):
        return False
    array = <cnp.ndarray>candidate
    if (<void*>cnp.PyArray_DESCR(array) != <void*>dtype or cnp.PyArray_NDIM(array) != 2
            or not cnp.PyArray_IS_C_CONTIGUOUS(array) or cnp.PyArray_DIM(array, 1) != n_columns
            or cnp.PyArray_DIM(array, 0) == 0
            or (like is not None and cnp.PyArray_DIM(array, 0) != cnp.PyArray_DIM(like, 0))):
        return False
    if dtype.type_num == cnp.NPY_DOUBLE:
        return _all_finite[double](<double*>data(array), cnp.PyArray_SIZE(array))
    return _all_finite[float](<float*>data(array), cnp.PyArray_SIZE(array))


def all_finite(cnp.ndarray X):
    """True when no element of the C-contiguous float32/float64 array X is NaN or infinite."""
    cdef Py_ssize_t n = X.size
    if X.dtype == np.float64:
        return _all_finite[double](<double*>data(X), n)
    if X.dtype == np.float32:
        return _all_finite[float](<float*>data(X), n)
    raise TypeError(f"all_finite takes float32 or float64, not {X.dtype}")


cdef bint _all_finite(floating* X, Py_ssize_t n) noexcept:
    with nogil:
        return finite(X, n)
