# Design: the BLAS threads of fastnn's own products, chosen around each compiled call of the
# engine at the cost of a few C calls (no Python, no allocation), so that a train_step of a tiny
# network costs what it costs without a policy. fastnn/threads.py finds the thread-count
# functions of the BLAS SciPy's cython_blas calls (once, at the first engine) and gives their
# addresses to `attach`; the engine calls `enter` before its passes and `leave` after, both with
# the GIL held. The counters below and the library's setting change under `guard`, a mutex of
# their own, because a row-split epoch also changes the setting between its batches without the
# GIL (`set_alone`).
#
# The choice: one thread for a call whose largest product has fewer than `parallel_work`
# multiply-adds, or when another fastnn call runs in another thread (two calls on two cores each
# get one, never 2 x 2 threads); otherwise the library's setting when the first running call
# began (the user's limit: threadpoolctl, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS), lowered by the
# call's cap (MLP(n_threads=...), fit's n_threads) and the process's (fastnn.threads.set_threads).
# The setting is put back when the last running call ends.
#
# A call on one BLAS thread may still use two cores by splitting its batches' rows between two
# threads of its own (an epoch: fastnn/_passes.pxd, split_step): `may_split` allows it when the
# call runs alone, its products are of at least `split_work` multiply-adds (below, the hand-offs
# cost more than the half saves) and its caps (the library's setting, the call's and the
# process's) allow two threads. An epoch whose products are of `parallel_work` or more does not
# split: it chooses, batch by batch, between one BLAS thread and the threads `enter` gave it
# (`threads_now`), by timing both (fastnn/_passes.pxd, choose_blas), so that it runs on the better
# of the two beside a busy process as on a quiet machine.

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t* mutex, void* attr)
    int pthread_mutex_lock(pthread_mutex_t* mutex)
    int pthread_mutex_unlock(pthread_mutex_t* mutex)
    int pthread_atfork(void (*prepare)() noexcept nogil, void (*parent)() noexcept nogil,
                       void (*child)() noexcept nogil)

ctypedef int (*get_threads_t)() noexcept nogil
ctypedef void (*set_threads_t)(int) noexcept nogil

cdef get_threads_t get_threads = NULL
cdef set_threads_t set_threads = NULL
cdef bint attached = False
cdef int running = 0      # fastnn calls running now, in all threads
cdef int saved = 0        # the library's setting when the first of them began
cdef int current = 0      # what the library is set to while they run
cdef int process_cap = 0  # fastnn.threads.set_threads (0: none)
# measured in bench/threads.py (bench/THREADS.md); fastnn.threads.PARALLEL_WORK
cdef long long parallel_work = 1 << 23
# measured in bench/threads.py (bench/THREADS.md); fastnn.threads.SPLIT_WORK
cdef long long split_work = 1 << 19
cdef bint choosing = True  # epochs of large products choose between 1 and enter's threads
cdef pthread_mutex_t guard


cdef void guard_again() noexcept nogil:
    """In a child after fork(): a guard that another thread of the parent held is free again."""
    pthread_mutex_init(&guard, NULL)


pthread_mutex_init(&guard, NULL)
pthread_atfork(NULL, NULL, guard_again)


cdef void enter(long long work, int cap) noexcept:
    """Set the library's threads for a call whose largest product has `work` multiply-adds,
    under the call's cap (0: none). With the GIL held."""
    global running, saved, current
    cdef int wanted
    if set_threads == NULL:
        return
    pthread_mutex_lock(&guard)
    if running == 0:
        saved = current = get_threads()
    running += 1
    if running > 1 or work < parallel_work:
        wanted = 1
    else:
        wanted = saved
        if 0 < cap < wanted:
            wanted = cap
        if 0 < process_cap < wanted:
            wanted = process_cap
    if wanted != current:
        set_threads(wanted)
        current = wanted
    pthread_mutex_unlock(&guard)


cdef bint may_split(long long work, int cap) noexcept:
    """Whether the call `enter` began last, with these `work` and `cap`, may split its rows
    between two threads, each of whose products then runs on one BLAS thread. With the GIL
    held."""
    cdef bint alone
    if set_threads == NULL:
        return False
    pthread_mutex_lock(&guard)
    alone = running == 1
    pthread_mutex_unlock(&guard)
    return (alone and split_work <= work and saved >= 2 and (cap == 0 or cap >= 2)
            and (process_cap == 0 or process_cap >= 2))


cdef bint chooses() noexcept nogil:
    """Whether an epoch of large products chooses between one thread and `enter`'s by timing
    (otherwise it keeps `enter`'s)."""
    return choosing


cdef int threads_now() noexcept nogil:
    """The threads the library is set to now (1 where the policy does not set them)."""
    cdef int n
    if set_threads == NULL:
        return 1
    pthread_mutex_lock(&guard)
    n = current
    pthread_mutex_unlock(&guard)
    return n


cdef int set_alone(int n) noexcept nogil:
    """Set the library to n threads if the calling call is the only one running (no more than
    `enter` gave it: the caller's business), and return the threads it is set to now. Without
    the GIL, between the batches of a row-split epoch."""
    global current
    cdef int now
    if set_threads == NULL:
        return 1
    pthread_mutex_lock(&guard)
    if running == 1 and n != current:
        set_threads(n)
        current = n
    now = current
    pthread_mutex_unlock(&guard)
    return now


cdef void leave() noexcept:
    """The call that `enter` began has ended: the last one puts the user's setting back. With the
    GIL held."""
    global running, current
    if set_threads == NULL:
        return
    pthread_mutex_lock(&guard)
    running -= 1
    if running == 0 and current != saved:
        set_threads(saved)
        current = saved
    pthread_mutex_unlock(&guard)


def is_attached():
    """Whether `attach` has run (found functions or not)."""
    return attached


def controls():
    """Whether `attach` was given functions: the policy sets the BLAS's threads."""
    return set_threads != NULL


def attach(get_address, set_address):
    """Use the C functions at these addresses (``int get(void)``, ``void set(int)``) to read and
    set the BLAS's thread count; both None: leave the BLAS as configured. Once, before any call
    runs."""
    global get_threads, set_threads, attached
    if running:
        raise RuntimeError("the BLAS thread controls cannot change while fastnn calls run")
    if (get_address is None) != (set_address is None):
        raise ValueError("give both thread-count functions or neither")
    if get_address is None:
        get_threads, set_threads = NULL, NULL
    else:
        get_threads = <get_threads_t><size_t>get_address
        set_threads = <set_threads_t><size_t>set_address
    attached = True


def set_cap(int n):
    """The process's cap (0: none)."""
    global process_cap
    process_cap = n


def get_cap():
    """The process's cap (0: none)."""
    return process_cap


def set_parallel_work(long long n):
    """Products of fewer multiply-adds than n run on one thread."""
    global parallel_work
    parallel_work = n


def get_parallel_work():
    """Products of fewer multiply-adds than this run on one thread."""
    return parallel_work


def set_split_work(long long n):
    """Batches whose largest product has fewer multiply-adds than n are not split."""
    global split_work
    split_work = n


def set_choosing(bint choose):
    """Whether epochs of large products choose their BLAS threads by timing (the default), or
    keep what `enter` gives them (for benchmarks that force a thread count)."""
    global choosing
    choosing = choose


def get_split_work():
    """Batches whose largest product has fewer multiply-adds than this are not split."""
    return split_work


def state():
    """(running calls, the setting saved when they began, the setting now), for the tests."""
    pthread_mutex_lock(&guard)
    try:
        return running, saved, current
    finally:
        pthread_mutex_unlock(&guard)
