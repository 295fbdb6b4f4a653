# The BLAS thread policy of fastnn's compiled calls (fastnn/_blas_threads.pyx).

cdef void enter(long long work, int cap) noexcept
cdef void leave() noexcept
cdef bint may_split(long long work, int cap) noexcept
cdef int threads_now() noexcept nogil
cdef int set_alone(int n) noexcept nogil
cdef bint chooses() noexcept nogil
