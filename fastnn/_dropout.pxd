# Design: inverted dropout as a forward/backward pair, with the random numbers drawn by a
# counter-based generator: the u-th number of a stream is a pure function of (key, u), so a pass
# needs no generator object, runs without the GIL, and is reproduced exactly from the key and the
# counter where the pass started (a fit's seed sets the key; each training pass moves the counter
# on by the numbers it drew). The generator is SplitMix64 (Steele, Lea and Flood, "Fast splittable
# pseudorandom number generators", OOPSLA 2014): mix64(key + u * golden gamma).
from cython cimport floating
from libc.stdint cimport uint64_t


cdef inline uint64_t splitmix64(uint64_t key, uint64_t u) noexcept nogil:
    """The u-th 64-bit number of the stream `key`."""
    cdef uint64_t z = key + (u + 1) * <uint64_t>0x9E3779B97F4A7C15ULL
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline double uniform(uint64_t key, uint64_t u) noexcept nogil:
    """The u-th number of the stream `key`, uniform in [0, 1) with 53 random bits."""
    return <double>(splitmix64(key, u) >> 11) * (1.0 / 9007199254740992.0)


cdef inline void dropout_forward(floating* A,       # OUT (N, M), may be X
                                 floating* mask,    # OUT (N, M) 0 or 1 / (1 - rate)
                                 floating* X,       # IN  (N, M)
                                 Py_ssize_t size,   # N * M
                                 double rate, uint64_t key, uint64_t counter) noexcept nogil:
    """Each unit kept with probability 1 - rate and scaled by 1 / (1 - rate): A = X * mask.

    Unit i is dropped when the (counter + i)-th uniform number is below rate.
    """
    cdef Py_ssize_t i
    cdef floating scale = <floating>(1 / (1 - rate))
    for i in range(size):
        mask[i] = scale if uniform(key, counter + <uint64_t>i) >= rate else 0
        A[i] = X[i] * mask[i]


cdef inline void dropout_backward(floating* D,      # INOUT (N, M): dJ/dA in, dJ/dX out
                                  floating* mask,   # IN    (N, M) from dropout_forward
                                  Py_ssize_t size) noexcept nogil:
    """D = D * mask."""
    cdef Py_ssize_t i
    for i in range(size):
        D[i] = D[i] * mask[i]
