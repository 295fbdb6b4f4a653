# Design: the engine holds the compiled state of one network: its Plan (fastnn/_plan.pxd), the flat
# parameter, gradient and buffer vectors, and a workspace laid out for the plan and sized for the
# largest batch seen, all allocated once and reused. Its methods pick the float or double
# specialization of the passes (fastnn/_passes.pxd) and run them with the GIL released, under the
# engine's lock. Inputs arrive validated and converted (C-contiguous, the engine's dtype, matching
# shapes) from the Python layer (fastnn/_validation.py); the passes trust them.
#
# Threads: one lock per engine covers every read and write of its vectors and workspace; a
# training pass also holds its update rule's lock (always the engine's first), so nothing another
# thread does can tear a pass or a copy. Fork: the handlers below take every lock before fork()
# and release them in both processes after, so a child never inherits a lock held by a thread it
# does not have. Ctrl-C: see fastnn/_interrupt.h; epochs stop between batches, forward and loss
# between blocks, in the main thread (the one Python raises KeyboardInterrupt in). BLAS threads:
# each method runs its passes between enter and leave of fastnn/_blas_threads.pyx, which set the
# threads of SciPy's BLAS for the call's largest product and the engine's cap (n_threads). Row
# split: an epoch that `may_split` allows (and whose plan has no batch normalization or dropout)
# computes half of each batch's gradient on a worker thread the engine owns (fastnn/_worker.h),
# started at the first such epoch and stopped before fork() (the child starts its own if needed).
import os
import threading
import weakref

cimport numpy as cnp
import numpy as np
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.pythread cimport (PyThread_allocate_lock, PyThread_free_lock, PyThread_get_thread_ident,
                               PyThread_release_lock, PyThread_type_lock)
from cython cimport floating
from libc.math cimport NAN
from libc.stdint cimport uint64_t

from fastnn._activations cimport (ELU, EXP, GELU, GELU_TANH, IDENTITY, LEAKY_RELU, RELU,
                                  SIGMOID, SILU, SOFTMAX, SOFTPLUS, TANH, needs_input)
from fastnn._blas_threads cimport chooses, enter, leave, may_split, set_alone, threads_now
from fastnn._losses cimport ABSOLUTE_ERROR, CROSS_ENTROPY, HUBER, POISSON, SQUARED_ERROR
from fastnn._plan cimport (ACTIVATION, BATCH_NORM, DENSE, DROPOUT, MAX_STATE, NO_SCHEDULE, Layer,
                           Plan)
from fastnn._lock cimport hold, take
from fastnn._passes cimport (EPOCH_INTERRUPTED, STEP_INTERRUPTED, STEP_LOSS, STEP_PARAMS,
                             SPLIT_PROBE_AFTER, Split, backward_pass, fastnn_worker, forward_loss, forward_pass,
                             gather_batch, head_output, known_rule, normalizer, objective,
                             reduced_step, run_epoch, shard_sums, state_count, train_step)
from fastnn._rules cimport UpdateRule
from fastnn._schedules cimport schedule_step
from fastnn._rules import LIVE as LIVE_RULES

from fastnn import _blas_threads

cdef extern from "_interrupt.h" nogil:
    volatile int fastnn_interrupted
    int fastnn_watch_sigint()

cdef extern from "_worker.h" nogil:
    fastnn_worker* fastnn_worker_start()
    void fastnn_worker_stop(fastnn_worker* w)
    int fastnn_usable_cpus()

cnp.import_array()

# The thread Python raises KeyboardInterrupt in.
cdef unsigned long MAIN_THREAD = threading.main_thread().ident
# train_step's statuses (StepStatus in fastnn/_passes.pxd), for fastnn/network.py
STEP_NONFINITE_LOSS = STEP_LOSS
STEP_NONFINITE_PARAMS = STEP_PARAMS
# Every engine alive, for the fork handlers, and what each forking thread holds.
LIVE = weakref.WeakSet()
_forking = threading.local()


def _before_fork():
    """Take every engine's lock, then every update rule's, so no pass runs across fork()."""
    cdef Engine engine
    cdef UpdateRule rule
    held = _forking.held = (list(LIVE), list(LIVE_RULES))
    for engine in held[0]:
        hold(engine.lock)
        engine.stop_worker()
    for rule in held[1]:
        hold(rule.lock)


def _release_after_fork():
    """Release what _before_fork took in this thread."""
    cdef Engine engine
    cdef UpdateRule rule
    held = getattr(_forking, "held", None)
    if held is None:
        return
    _forking.held = None
    for rule in held[1]:
        rule.release()
    for engine in held[0]:
        PyThread_release_lock(engine.lock)


def _after_fork_in_child():
    """Release the locks; the forking thread is the child's main thread now."""
    global MAIN_THREAD
    MAIN_THREAD = threading.main_thread().ident
    _release_after_fork()


os.register_at_fork(before=_before_fork, after_in_parent=_release_after_fork,
                    after_in_child=_after_fork_in_child)


cdef inline bint watch_interrupts() noexcept:
    """Whether this call should stop at Ctrl-C: in the main thread, with fastnn's handler in front
    of Python's (put there again if another handler was installed since). Clears a flag left by
    an earlier interrupt."""
    global fastnn_interrupted
    if PyThread_get_thread_ident() != MAIN_THREAD or not fastnn_watch_sigint():
        return False
    fastnn_interrupted = 0
    return True

# The codes the kernels know, by the names fastnn/registry.py uses.
LAYER_CODES = {"dense": DENSE, "activation": ACTIVATION, "dropout": DROPOUT,
               "batch_norm": BATCH_NORM}
ACTIVATION_CODES = {"identity": IDENTITY, "sigmoid": SIGMOID, "relu": RELU, "tanh": TANH,
                    "softmax": SOFTMAX, "leaky_relu": LEAKY_RELU, "elu": ELU, "gelu": GELU,
                    "gelu_tanh": GELU_TANH, "silu": SILU, "softplus": SOFTPLUS, "exp": EXP}
# The activations whose backward kernel reads Z, which the memory plan therefore keeps.
INPUT_DERIVATIVES = {name for name, code in ACTIVATION_CODES.items() if needs_input(code)}
LOSS_CODES = {"squared_error": SQUARED_ERROR, "cross_entropy": CROSS_ENTROPY,
              "absolute_error": ABSOLUTE_ERROR, "poisson": POISSON, "huber": HUBER}

# forward and loss run over rows in blocks of at least this many, so evaluating a large data set
# needs a workspace of this size, not one of its size.
cdef Py_ssize_t MIN_BLOCK_ROWS = 1024
# a single training pass of at least this many rows x parameters stops at Ctrl-C between layers
cdef Py_ssize_t LONG_PASS = 1 << 20


cdef inline void* data(cnp.ndarray array) noexcept:
    return cnp.PyArray_DATA(array)


cdef inline void* optional(cnp.ndarray array) noexcept:
    """The data of an optional array (sample weights): NULL for None."""
    return data(array) if array is not None else NULL


cdef inline void states_of(UpdateRule rule, floating** state) noexcept:
    """Point state[i] at the data of the rule's i-th state array (its moments), for the passes."""
    cdef Py_ssize_t i
    for i in range(len(rule.states)):
        state[i] = <floating*>data(<cnp.ndarray>rule.states[i])


cdef inline bint reads_output(Layer* L) noexcept:
    """Whether the layer's backward kernel reads its own output (most activations: f' from A)."""
    return L.kind == ACTIVATION and not needs_input(L.act)


cdef inline bint reads_input(Layer* L) noexcept:
    """Whether the layer's backward kernel reads its input (dense: dW = A^T D; GELU, SiLU,
    softplus: f' from Z)."""
    return L.kind == DENSE or (L.kind == ACTIVATION and needs_input(L.act))


cdef class Engine:
    """The compiled state of one network: its plan, flat parameters, gradient, buffers, workspace.

    Parameters
    ----------
    n_in : int
        Width of the input.
    layers : sequence of tuples (kind, act, n_out, alpha, eps, affine)
        The plan, by the codes of LAYER_CODES and ACTIVATION_CODES: ``act`` is an ACTIVATION's
        code, ``alpha`` its parameter, DROPOUT's rate or BATCH_NORM's momentum, ``eps``
        BATCH_NORM's, ``affine`` whether a DENSE layer has a bias or a BATCH_NORM gamma and beta.
        At least one DENSE layer first among those with parameters; the last layer is the output
        activation.
    loss : int
        The loss' code (LOSS_CODES).
    l2 : float
        The L2 penalty on the dense layers' weights.
    dtype : numpy.dtype
        float32 or float64.
    loss_scale : float, default 1
        Factor on the data term of the objective.
    l2_per_sample : bool, default False
        Divide the penalty by the batch's weight sum too (scikit-learn's objective).
    loss_param : float, default 0
        The loss' parameter (HUBER's delta, > 0; softmax CROSS_ENTROPY's label smoothing, in
        [0, 1]; unused by the other losses).
    loss_weight : array-like of shape (n_out,), optional
        CROSS_ENTROPY's weights per output, finite and >= 0: the class weights w of a softmax
        output (not all zero), the pos_weight of a sigmoid one. Copied as float64.

    Notes
    -----
    The objective on a batch of N rows with sample weights s (ones when None) is
    ``J = loss_scale sum_i s_i L_i / S + (l2/2) sum_l ||W_l||^2 [/ S]`` with ``S = sum_i s_i``,
    or with class weights ``S = sum_i s_i r_i``, ``r_i = sum_k w_k Y_ik`` (`normalizer`).
    forward and loss evaluate (running statistics, no dropout); gradients, step and epoch train
    (batch statistics, dropout). gradients changes nothing but the gradient; step and epoch move
    the running statistics and the dropout generator's counter. Arrays passed to the methods are
    C-contiguous, of the engine's dtype, with N >= 1 rows. The methods hold a lock: the passes run
    without the GIL, and two threads using one network at once must not share (or reallocate) its
    workspace.
    """
    cdef Plan plan
    cdef bint is_double
    cdef Py_ssize_t rows               # rows the workspace holds
    cdef Py_ssize_t widest
    cdef long long widest_product      # multiply-adds per row of the largest dense layer
    cdef public int n_threads          # the cap of the BLAS threads of its calls (0: none)
    cdef readonly cnp.ndarray params   # (n_params,) each layer's parameters in turn
    cdef readonly cnp.ndarray grad     # (n_params,) laid out as params
    cdef readonly cnp.ndarray buffers  # (n_buffers,) each batch normalization's running statistics
    cdef cnp.ndarray work
    cdef cnp.ndarray backup            # parameters and rule state before a checked step
    cdef cnp.ndarray loss_weight       # (n_out,) float64: what plan.loss_weight points to
    cdef Split split                   # the worker thread and its state for row-split epochs
    cdef cnp.ndarray split_work        # the worker's workspace, of the workspace's layout
    cdef cnp.ndarray split_sums        # (2, n_params + 2) the two halves' shard_sums
    cdef PyThread_type_lock lock
    cdef object __weakref__            # for the fork handlers' registry

    def __cinit__(self):
        self.plan.layers = NULL
        self.plan.loss_weight = NULL
        self.split.worker = NULL
        self.split.split_ns = self.split.single_ns = 0
        self.split.skip = self.split.singles = self.split.steps = 0
        self.split.paid = 0
        self.split.pause = SPLIT_PROBE_AFTER
        self.split.hi = 0
        self.split.halves = False
        self.split.batch = 0
        self.split.blas = False
        self.split.blas_ns = 0
        self.split.blas_steps = self.split.blas_skip = self.split.blas_total = 0
        self.split.blas_pause = SPLIT_PROBE_AFTER
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError("could not allocate the engine's lock")

    def __dealloc__(self):
        fastnn_worker_stop(self.split.worker)
        PyMem_Free(self.plan.layers)
        if self.lock != NULL:
            PyThread_free_lock(self.lock)

    cdef int acquire(self) except -1:
        """Take the lock, waiting without the GIL (its holder may need the GIL to finish)."""
        return take(self.lock)

    cdef int pause(self, UpdateRule rule) except -1:
        """Ctrl-C arrived during a pass: let go of the engine's lock (and rule's), run Python's
        signal handlers with no fastnn lock held (they may use this network), and take the
        locks back, even when a handler raises (KeyboardInterrupt then propagates). A handler
        (or another thread meanwhile) may have shrunk the workspace (`release`): it is grown back
        to the rows the paused pass was sized for before the pass goes on."""
        global fastnn_interrupted
        cdef Py_ssize_t rows = self.rows
        fastnn_interrupted = 0
        if rule is not None:
            rule.release()
        PyThread_release_lock(self.lock)
        try:
            PyErr_CheckSignals()
        finally:
            hold(self.lock)
            if rule is not None:
                hold(rule.lock)
            self.reserve(rows)
        return 0

    cdef void stop_worker(self) noexcept:
        """Stop and join the worker thread, if there is one (with the lock held: no split step is
        under way); the next row-split epoch starts another."""
        with nogil:
            fastnn_worker_stop(self.split.worker)
        self.split.worker = NULL

    cdef Split* splitter(self, Py_ssize_t batch):
        """How an epoch of batches of `batch` rows uses the cores, after `enter` and `reserve`:
        the split of each batch's rows between this thread and the worker, on one BLAS thread
        each (``halves``); or, when `enter` gave the call two BLAS threads or more (products of
        `parallel_work`), the choice between one BLAS thread and those, step by step
        (choose_blas in fastnn/_passes.pxd); or NULL: one thread, as `enter` set it. No split
        where `may_split` says no, the process has one CPU, the plan has batch normalization or
        dropout (whose statistics and masks are the whole batch's), or no worker thread can be
        started."""
        cdef Py_ssize_t size = cnp.PyArray_DIM(self.work, 0)
        cdef int hi = threads_now()
        cdef bint halves = hi < 2
        if not halves and not chooses():
            return NULL
        if halves:
            if (batch < 2 or self.plan.n_buffers or self.plan.n_random
                    or not may_split(batch * self.widest_product, self.n_threads)
                    or fastnn_usable_cpus() < 2):
                return NULL
            if self.split.worker == NULL:
                self.split.worker = fastnn_worker_start()
                if self.split.worker == NULL:
                    return NULL
            if self.split_work is None or cnp.PyArray_DIM(self.split_work, 0) < size:
                self.split_work = np.empty(size, dtype=self.params.dtype)
            if self.split_sums is None:
                self.split_sums = np.empty(2 * (self.plan.n_params + 2), dtype=self.params.dtype)
        if halves != self.split.halves or batch != self.split.batch:
            # timings of other steps say nothing of these: time them anew
            self.split.halves = halves
            self.split.batch = batch
            self.split.split_ns = self.split.single_ns = 0
            self.split.singles = self.split.skip = self.split.paid = 0
            self.split.pause = self.split.blas_pause = SPLIT_PROBE_AFTER
            self.split.blas = False
            self.split.blas_skip = 0
        self.split.is_double = self.is_double
        self.split.p = &self.plan
        self.split.P = data(self.params)
        self.split.B = data(self.buffers)
        self.split.work = data(self.split_work) if halves else NULL
        self.split.sums = data(self.split_sums) if halves else NULL
        # the epoch begins on the threads the last one ended on
        self.split.hi = hi
        if not halves:
            with nogil:
                set_alone(hi if self.split.blas else 1)
        return &self.split

    @property
    def split_steps(self):
        """How many training steps this engine has split between two threads."""
        return self.split.steps

    @property
    def split_state(self):
        """The row split's and the BLAS threads' choice as it stands, for tests and benchmarks:
        a dict of ``steps`` (split steps made), ``blas_steps`` (steps of full batches made on
        the BLAS's own threads, by an epoch that does not split), ``hi`` (the BLAS threads the
        last epoch could use), ``blas`` (its steps run on them now), ``blas_pause``, ``pause``
        (the batches the next try that does not pay pauses the BLAS's threads and the worker
        for)."""
        return {"steps": self.split.steps, "parallel_steps": self.split.parallel_total,
                "single_ns": self.split.single_ns, "split_ns": self.split.split_ns,
                "blas_steps": self.split.blas_total,
                "hi": self.split.hi, "blas": bool(self.split.blas),
                "blas_pause": self.split.blas_pause, "pause": self.split.pause}

    cdef bint long_pass(self, Py_ssize_t N):
        """Whether one training pass over N rows is long enough (~1M multiply-adds) for Ctrl-C
        to be watched inside it (watching costs a system call)."""
        return N * self.plan.n_params >= LONG_PASS and watch_interrupts()

    def __init__(self, Py_ssize_t n_in, layers, int loss, double l2, dtype, double loss_scale=1,
                 bint l2_per_sample=False, double loss_param=0.0, loss_weight=None):
        cdef Py_ssize_t k, n = len(layers), width = n_in, n_params = 0, n_buffers = 0
        cdef Layer* L
        if self.plan.layers != NULL:
            raise RuntimeError("an Engine is built once")
        if n < 2 or n_in < 1:
            raise ValueError("a plan needs an input width >= 1 and at least two layers")
        if loss not in LOSS_CODES.values():
            raise ValueError(f"unknown loss code {loss}")
        self.plan.layers = <Layer*>PyMem_Malloc(n * sizeof(Layer))
        if self.plan.layers == NULL:
            raise MemoryError("could not allocate the plan")
        self.plan.n_layers = n
        self.plan.n_in = n_in
        self.plan.first_param = -1
        self.plan.n_random = 0
        self.widest = n_in
        self.widest_product = 0
        self.n_threads = 0
        for k in range(n):
            L = &self.plan.layers[k]
            L.kind, L.act, L.n_out, L.alpha, L.eps, L.affine = layers[k]
            if (L.kind not in LAYER_CODES.values() or L.n_out < 1
                    or (L.kind == ACTIVATION and L.act not in ACTIVATION_CODES.values())):
                raise ValueError(f"layer {k}: unknown kind {L.kind}, activation {L.act} or "
                                 f"width {L.n_out}")
            if L.kind != DENSE and L.n_out != width:
                raise ValueError(f"layer {k} keeps the width {width}, not {L.n_out}")
            L.n_in = width
            L.p_off, L.n_p, L.buf_off = n_params, 0, n_buffers
            if L.kind == DENSE:
                L.n_p = width * L.n_out + (L.n_out if L.affine else 0)
                self.widest_product = max(self.widest_product, width * L.n_out)
            elif L.kind == BATCH_NORM:
                L.n_p = 2 * L.n_out if L.affine else 0
                n_buffers += 2 * L.n_out
            elif L.kind == DROPOUT and L.alpha > 0:
                self.plan.n_random += L.n_out
            if L.n_p and self.plan.first_param < 0:
                if L.kind != DENSE:
                    raise ValueError("the first layer with parameters must be dense")
                self.plan.first_param = k
            n_params += L.n_p
            width = L.n_out
            self.widest = max(self.widest, width)
            # the memory plan: overwrite the input when no backward kernel reads it (the first
            # layer's input is the caller's X; the loss reads the head's input, the logits)
            L.in_place = (k > 0 and not reads_input(L)
                          and not reads_output(&self.plan.layers[k - 1])
                          and (k < n - 1 or L.act == IDENTITY))
        if self.plan.layers[n - 1].kind != ACTIVATION or self.plan.first_param < 0:
            raise ValueError("a plan has a dense layer and ends with the output activation")
        self.plan.n_out = width
        self.plan.n_params = n_params
        self.plan.n_buffers = n_buffers
        self.plan.loss = loss
        self.plan.loss_param = loss_param
        if loss_weight is not None:
            if loss != CROSS_ENTROPY or self.plan.layers[n - 1].act not in (SOFTMAX, SIGMOID):
                raise ValueError("loss weights go with the cross-entropy of a softmax or sigmoid "
                                 "output")
            self.loss_weight = np.array(loss_weight, dtype=np.float64).reshape(-1)
            if self.loss_weight.shape[0] != width:
                raise ValueError(f"the loss weights must be one per output ({width}), got "
                                 f"{self.loss_weight.shape[0]}")
            self.plan.loss_weight = <double*>data(self.loss_weight)
        self.plan.key = 0
        self.plan.counter = 0
        self.plan.watch = False
        self.set_objective(l2, loss_scale, l2_per_sample)
        self.is_double = np.dtype(dtype) == np.float64
        self.params = np.zeros(n_params, dtype=dtype)
        self.grad = np.zeros(n_params, dtype=dtype)
        self.buffers = np.zeros(n_buffers, dtype=dtype)
        self.rows = 0
        self.reserve(1)
        if not _blas_threads.is_attached():
            from fastnn.threads import attach_blas
            attach_blas()
        LIVE.add(self)

    def layout(self):
        """Each layer's (start, length) in the parameters and (start, length) in the buffers."""
        cdef Py_ssize_t k
        cdef Layer* L
        result = []
        for k in range(self.plan.n_layers):
            L = &self.plan.layers[k]
            result.append(((L.p_off, L.n_p),
                           (L.buf_off, 2 * L.n_out if L.kind == BATCH_NORM else 0)))
        return result

    def set_objective(self, double l2, double loss_scale, bint l2_per_sample):
        """Change the penalty, the factor on the data term and whether the penalty is divided by
        S too (between passes: a pass sees one objective)."""
        self.acquire()
        self.plan.l2 = l2
        self.plan.loss_scale = loss_scale
        self.plan.l2_per_sample = l2_per_sample
        PyThread_release_lock(self.lock)

    @property
    def random_state(self):
        """The dropout generator's (key, counter): its stream and the numbers drawn so far."""
        return int(self.plan.key), int(self.plan.counter)

    @random_state.setter
    def random_state(self, value):
        # converted before the lock is taken: a bad value raises with no lock held
        cdef uint64_t key = value[0], counter = value[1]
        self.acquire()
        self.plan.key, self.plan.counter = key, counter
        PyThread_release_lock(self.lock)

    def snapshot(self):
        """Copies of the parameters and buffers and the generator's state, taken at once."""
        self.acquire()
        try:
            return (self.params.copy(), self.buffers.copy(),
                    (int(self.plan.key), int(self.plan.counter)))
        finally:
            PyThread_release_lock(self.lock)

    def restore(self, params, buffers=None, random_state=None):
        """Set the parameters, the buffers and the generator's state (None: kept) at once, from
        arrays of their shapes; all are converted first, so a bad one changes nothing."""
        cdef uint64_t key = self.plan.key, counter = self.plan.counter
        params = np.ascontiguousarray(params, dtype=self.params.dtype).reshape(self.plan.n_params)
        if buffers is not None:
            buffers = np.ascontiguousarray(buffers, dtype=self.params.dtype).reshape(
                self.plan.n_buffers)
        if random_state is not None:
            key, counter = random_state[0], random_state[1]
        self.acquire()
        try:
            self.params[:] = params
            if buffers is not None:
                self.buffers[:] = buffers
            self.plan.key, self.plan.counter = key, counter
        finally:
            PyThread_release_lock(self.lock)

    cdef Py_ssize_t layout_workspace(self, Py_ssize_t rows, bint write):
        """The workspace's length for passes over `rows` rows; with write, lay the plan out in
        it."""
        cdef Py_ssize_t k, n, offset = 0, out = 0
        cdef Layer* L
        for k in range(self.plan.n_layers):
            L = &self.plan.layers[k]
            n = L.n_out
            if not L.in_place:
                out = offset
                offset += rows * n
            if write:
                L.out = out
                L.saved = offset
            if L.kind == DROPOUT:
                offset += rows * n                  # mask
            elif L.kind == BATCH_NORM:
                offset += 3 * n + rows * n          # mean, variance, 1/std, xhat
        if write:
            self.plan.d_off[0] = offset
            self.plan.d_off[1] = offset + rows * self.widest
            self.plan.scratch = offset + 2 * rows * self.widest
        offset += 2 * rows * self.widest + 2 * self.widest
        if write:
            self.plan.xb_off = offset
            self.plan.yb_off = offset + rows * self.plan.n_in
            self.plan.sb_off = offset + rows * (self.plan.n_in + self.plan.n_out)
        return offset + rows * (self.plan.n_in + self.plan.n_out + 1)

    cdef void reserve(self, Py_ssize_t rows):
        """Grow the workspace to hold passes over `rows` rows (it never shrinks)."""
        if rows <= self.rows:
            return
        # allocate before touching the layout: a failed allocation leaves the engine as it was
        self.work = np.empty(self.layout_workspace(rows, False), dtype=self.params.dtype)
        self.layout_workspace(rows, True)
        self.rows = rows

    def release(self):
        """Shrink the workspace back to one row, and drop the row split's (they grow again when
        needed)."""
        self.acquire()
        try:
            self.rows = 0
            self.reserve(1)
            self.split_work = None
        finally:
            PyThread_release_lock(self.lock)

    cdef long long block_work(self, Py_ssize_t N):
        """Multiply-adds of the largest product of one block of forward or loss over N rows."""
        return min(N, max(self.rows, MIN_BLOCK_ROWS)) * self.widest_product

    cdef Py_ssize_t block_rows(self, Py_ssize_t N):
        """Rows per block for forward and loss over N rows, with the workspace reserved for them."""
        cdef Py_ssize_t block = min(N, max(self.rows, MIN_BLOCK_ROWS))
        self.reserve(block)
        return block

    cdef int check_rule(self, UpdateRule rule, bint scheduled=False) except -1:
        """Refuse a rule the passes cannot run: of an unknown kind, or whose state vectors are not
        of this network's length and dtype (checked without creating a Python object). Called
        with the rule's lock held, so the state checked is the state the pass uses. With scheduled,
        also one without a schedule to step."""
        cdef cnp.ndarray state
        if (not known_rule(rule.rule.kind) or rule.states is None
                or len(rule.states) != state_count(rule.rule.kind)):
            raise ValueError("the update rule is of an unknown kind or has no state")
        for state in rule.states:
            if (cnp.PyArray_NDIM(state) != 1 or cnp.PyArray_DIM(state, 0) != self.plan.n_params
                    or cnp.PyArray_TYPE(state) != cnp.PyArray_TYPE(self.params)
                    or not cnp.PyArray_IS_C_CONTIGUOUS(state)):
                raise ValueError("the update rule's state does not fit this network")
        if scheduled and rule.rule.schedule.kind == NO_SCHEDULE:
            raise ValueError("the update rule has no schedule to step")
        return 0

    # ---- evaluation ----------------------------------------------------------------------

    def forward(self, cnp.ndarray X not None):
        """The network's output (N, n_out), a new array, on X (N, n_in), in evaluation mode."""
        cdef cnp.npy_intp shape[2]
        shape[0] = X.shape[0]
        shape[1] = self.plan.n_out
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, shape, cnp.PyArray_TYPE(self.params), 0)
        if shape[0] == 0:
            return out
        self.acquire()
        enter(self.block_work(shape[0]), self.n_threads)
        try:
            self._forward_blocks(X, out)
        finally:
            leave()
            PyThread_release_lock(self.lock)
        return out

    cdef int _forward_blocks(self, cnp.ndarray X, cnp.ndarray out) except -1:
        cdef Py_ssize_t N = X.shape[0], k, start, rows, block = self.block_rows(N)
        cdef Py_ssize_t n_in = self.plan.n_in, n_out = self.plan.n_out
        cdef bint watch = N > block and watch_interrupts()
        for k in range((N + block - 1) // block):
            if watch and fastnn_interrupted:
                self.pause(None)
            start = k * block
            rows = min(block, N - start)
            if self.is_double:
                self._forward[double](<double*>data(X) + start * n_in,
                                      <double*>data(out) + start * n_out, rows)
            else:
                self._forward[float](<float*>data(X) + start * n_in,
                                     <float*>data(out) + start * n_out, rows)
        return 0

    cdef void _forward(self, floating* X, floating* out, Py_ssize_t N) noexcept:
        cdef Py_ssize_t i, size = N * self.plan.n_out
        cdef floating* P = <floating*>data(self.params)
        cdef floating* B = <floating*>data(self.buffers)
        cdef floating* work = <floating*>data(self.work)
        cdef floating* A
        with nogil:
            forward_pass(&self.plan, P, B, work, X, N, False, 0)
            A = head_output(&self.plan, work)
            for i in range(size):
                out[i] = A[i]

    def loss(self, cnp.ndarray X not None, cnp.ndarray Y not None, cnp.ndarray s=None):
        """The objective J on X (N, n_in), Y (N, n_out), sample weights s (N,) or None, in
        evaluation mode."""
        self.check_rows(X, Y, s, None, 0, X.shape[0])
        self.acquire()
        enter(self.block_work(X.shape[0]), self.n_threads)
        try:
            return self._loss_blocks(X, Y, s)
        finally:
            leave()
            PyThread_release_lock(self.lock)

    def normalizer(self, cnp.ndarray Y not None, cnp.ndarray s=None):
        """S for targets Y (N, n_out) and sample weights s (N,) or None: N, sum_i s_i, or with
        class weights sum_i s_i r_i (see Notes), in float64."""
        if self.is_double:
            return normalizer(&self.plan, <double*>data(Y), <double*>optional(s), Y.shape[0])
        return normalizer(&self.plan, <float*>data(Y), <float*>optional(s), Y.shape[0])

    cdef double _loss_blocks(self, cnp.ndarray X, cnp.ndarray Y, cnp.ndarray s) except? -1:
        cdef Py_ssize_t N = X.shape[0], k, start, rows, block = self.block_rows(N)
        cdef Py_ssize_t n_in = self.plan.n_in, n_out = self.plan.n_out
        cdef double total = 0
        cdef bint watch = N > block and watch_interrupts()
        if N == 0:
            return NAN
        for k in range((N + block - 1) // block):
            if watch and fastnn_interrupted:
                self.pause(None)
            start = k * block
            rows = min(block, N - start)
            if self.is_double:
                total += self._loss[double](<double*>data(X) + start * n_in,
                                            <double*>data(Y) + start * n_out,
                                            <double*>optional(s), start, rows)
            else:
                total += self._loss[float](<float*>data(X) + start * n_in,
                                           <float*>data(Y) + start * n_out,
                                           <float*>optional(s), start, rows)
        if self.is_double:
            return objective(&self.plan, <double*>data(self.params), total,
                             normalizer(&self.plan, <double*>data(Y), <double*>optional(s), N))
        return objective(&self.plan, <float*>data(self.params), total,
                         normalizer(&self.plan, <float*>data(Y), <float*>optional(s), N))

    cdef double _loss(self, floating* X, floating* Y, floating* s, Py_ssize_t start,
                      Py_ssize_t N) noexcept:
        cdef double total
        cdef floating* P = <floating*>data(self.params)
        cdef floating* B = <floating*>data(self.buffers)
        cdef floating* work = <floating*>data(self.work)
        with nogil:
            total = forward_loss(&self.plan, P, B, work, X, Y, s + start if s != NULL else NULL,
                                 N, False, 0)
        return total

    # ---- training ------------------------------------------------------------------------

    def gradients(self, cnp.ndarray X not None, cnp.ndarray Y not None, cnp.ndarray s=None):
        """J on X (N, n_in), Y (N, n_out), sample weights s (N,) or None, in training mode, and
        a copy of dJ/dparams made under the lock. Nothing else changes (the dropout masks are the
        ones the next step would draw)."""
        cdef Py_ssize_t N = X.shape[0]
        cdef double J
        cdef bint watch = self.long_pass(N)
        self.acquire()
        enter(N * self.widest_product, self.n_threads)
        try:
            self.reserve(N)
            while True:
                self.plan.watch = watch
                if self.is_double:
                    J = self._gradients[double](<double*>data(X), <double*>data(Y),
                                                <double*>optional(s), N)
                else:
                    J = self._gradients[float](<float*>data(X), <float*>data(Y),
                                               <float*>optional(s), N)
                self.plan.watch = False
                if not (watch and fastnn_interrupted):
                    return J, self.grad.copy()
                self.pause(None)
        finally:
            self.plan.watch = False
            leave()
            PyThread_release_lock(self.lock)

    cdef double _gradients(self, floating* X, floating* Y, floating* s, Py_ssize_t N) noexcept:
        cdef floating* P = <floating*>data(self.params)
        cdef floating* B = <floating*>data(self.buffers)
        cdef floating* G = <floating*>data(self.grad)
        cdef floating* work = <floating*>data(self.work)
        cdef double J, S
        cdef bint intact
        with nogil:
            S = normalizer(&self.plan, Y, s, N)
            J = objective(&self.plan, P,
                          forward_loss(&self.plan, P, B, work, X, Y, s, N, True,
                                       self.plan.counter), S)
            backward_pass(&self.plan, P, G, work, X, Y, s, N, S, 0, NULL, &intact)
        return J

    def step(self, cnp.ndarray X not None, cnp.ndarray Y not None, cnp.ndarray s,
             UpdateRule rule not None, double max_norm=0):
        """J on the batch X (N, n_in), Y (N, n_out), weights s (N,) or None, then one checked
        update by rule, of the gradient clipped to the norm max_norm if it is > 0.

        Returns
        -------
        J : float
        status : int
            0 done; 1 J was not finite and nothing changed; 2 the update made a parameter NaN or
            infinite and was undone (parameters and the rule's state as before).
        """
        cdef Py_ssize_t N = X.shape[0], size
        cdef int status
        cdef double J
        cdef bint watch = self.long_pass(N)
        self.acquire()
        enter(N * self.widest_product, self.n_threads)
        try:
            rule.acquire()
            try:
                self.check_rule(rule)
                self.reserve(N)
                size = (1 + state_count(rule.rule.kind)) * self.plan.n_params + self.plan.n_buffers
                if self.backup is None or cnp.PyArray_DIM(self.backup, 0) < size:
                    self.backup = np.empty(size, dtype=self.params.dtype)
                while True:
                    self.plan.watch = watch
                    if self.is_double:
                        status = self._step[double](<double*>data(X), <double*>data(Y),
                                                    <double*>optional(s), N, rule, max_norm, &J)
                    else:
                        status = self._step[float](<float*>data(X), <float*>data(Y),
                                                   <float*>optional(s), N, rule, max_norm, &J)
                    self.plan.watch = False
                    if status != STEP_INTERRUPTED:
                        return J, status
                    # nothing changed: a handler that does not raise lets the step start again
                    self.pause(rule)
                    self.check_rule(rule)
            finally:
                self.plan.watch = False
                rule.release()
        finally:
            leave()
            PyThread_release_lock(self.lock)

    cdef int _step(self, floating* X, floating* Y, floating* s, Py_ssize_t N, UpdateRule rule,
                   double max_norm, double* J) noexcept:
        cdef floating* P = <floating*>data(self.params)
        cdef floating* B = <floating*>data(self.buffers)
        cdef floating* G = <floating*>data(self.grad)
        cdef floating* work = <floating*>data(self.work)
        cdef floating* backup = <floating*>data(self.backup)
        cdef floating* state[MAX_STATE]
        cdef int status
        cdef double S
        states_of(rule, state)
        with nogil:
            status = train_step(&self.plan, &rule.rule, P, B, G, state, work, X, Y, s, N, backup,
                                max_norm, J, &S)
        return status

    def epoch(self, cnp.ndarray X not None, cnp.ndarray Y not None, cnp.ndarray s,
              cnp.ndarray order, Py_ssize_t batch_size, UpdateRule rule not None,
              double max_norm=0, bint scheduled=False,
              Py_ssize_t start=0, Py_ssize_t stop=-1, double total=0, double seen=0):
        """Train on X (N, n_in), Y (N, n_out), weights s (N,) or None, in batches of batch_size
        rows taken in `order` (intp (N,)) or, for None, as stored: the batches start, start + 1,
        ... before stop (-1: to the end of the epoch). Each gradient is clipped to the norm
        max_norm if it is > 0; with scheduled, the rule's schedule (which it must have) is stepped
        after each batch. An epoch run in several calls, each from the `done` and with the
        `total` and `seen` the last returned, gives what one call gives, bit for bit.

        In the main thread, Ctrl-C stops the epoch between two batches, or within one (which then
        changes nothing), and raises KeyboardInterrupt (Python's handler runs; one that does not
        raise lets the epoch go on): the network then holds the last completed update, and the
        rule's schedule has taken a step for each.

        Returns
        -------
        total : float
            ``total`` plus, over the batches done, J times the batch's rows (weight sum, with
            weights).
        seen : float
            ``seen`` plus the rows (weight sums) of the batches done.
        done : int
            The batch after the last one done: ``stop`` (the number of batches for -1), fewer
            only if a loss was not finite.
        """
        cdef Py_ssize_t N = X.shape[0], done = start, n_batches
        cdef Py_ssize_t* rows
        cdef int status
        cdef bint watch
        cdef Split* split
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n_batches = (N + batch_size - 1) // batch_size
        if stop < 0:
            stop = n_batches
        if not 0 <= start <= stop <= n_batches:
            raise ValueError(f"the batches {start} to {stop} are not within the epoch's "
                             f"{n_batches}")
        # the rows the batches start, ..., stop - 1 read, in order (or X)
        self.check_rows(X, Y, s, order, min(start * batch_size, N),
                        min(stop * batch_size, N) - min(start * batch_size, N))
        rows = <Py_ssize_t*>data(order) if order is not None else NULL
        watch = watch_interrupts()
        self.acquire()
        enter(min(batch_size, N) * self.widest_product, self.n_threads)
        try:
            rule.acquire()
            try:
                self.check_rule(rule, scheduled)
                while True:
                    self.reserve(min(batch_size, N))
                    # within a batch only when one is long: the check per layer costs more than
                    # a small batch's whole step is worth waiting for
                    self.plan.watch = watch and self.long_pass(min(batch_size, N))
                    split = self.splitter(min(batch_size, N))
                    if self.is_double:
                        status = self._epoch[double](<double*>data(X), <double*>data(Y),
                                                     <double*>optional(s), N, rows, batch_size,
                                                     stop, rule, max_norm, scheduled, watch,
                                                     split, &total, &seen, &done)
                    else:
                        status = self._epoch[float](<float*>data(X), <float*>data(Y),
                                                    <float*>optional(s), N, rows, batch_size,
                                                    stop, rule, max_norm, scheduled, watch,
                                                    split, &total, &seen, &done)
                    self.plan.watch = False
                    if status != EPOCH_INTERRUPTED:
                        break
                    # a handler that does not raise lets the epoch go on from batch `done`,
                    # with the rule's state as it is now
                    self.pause(rule)
                    self.check_rule(rule)
            finally:
                self.plan.watch = False
                rule.release()
        finally:
            leave()
            PyThread_release_lock(self.lock)
        return total, seen, done

    cdef int _epoch(self, floating* X, floating* Y, floating* s, Py_ssize_t N,
                    Py_ssize_t* order, Py_ssize_t batch, Py_ssize_t stop, UpdateRule rule,
                    double max_norm, bint scheduled, bint watch, Split* split, double* total,
                    double* seen, Py_ssize_t* done) noexcept:
        cdef floating* P = <floating*>data(self.params)
        cdef floating* B = <floating*>data(self.buffers)
        cdef floating* G = <floating*>data(self.grad)
        cdef floating* work = <floating*>data(self.work)
        cdef floating* state[MAX_STATE]
        cdef int status
        states_of(rule, state)
        with nogil:
            status = run_epoch(&self.plan, &rule.rule, P, B, G, state, work, X, Y, s, N, order,
                               batch, stop, max_norm, scheduled, watch, split, total, seen,
                               done)
        return status

    # ---- data-parallel training (fastnn/distributed.py) ------------------------------------

    cdef int check_rows(self, cnp.ndarray X, cnp.ndarray Y, cnp.ndarray s, cnp.ndarray order,
                         Py_ssize_t start, Py_ssize_t rows) except -1:
        """Refuse arrays and a row range the passes cannot read: X (N, n_in), Y (N, n_out),
        s (N,) or None, C-contiguous of the network's dtype; order None or an intp vector with
        entries in [0, N); the rows start, ..., start + rows - 1 within order (or X)."""
        cdef Py_ssize_t N = cnp.PyArray_DIM(X, 0) if cnp.PyArray_NDIM(X) == 2 else -1
        cdef Py_ssize_t i
        cdef Py_ssize_t* named
        cdef int kind = cnp.PyArray_TYPE(self.params)
        if (N < 0 or cnp.PyArray_DIM(X, 1) != self.plan.n_in or cnp.PyArray_NDIM(Y) != 2
                or cnp.PyArray_DIM(Y, 0) != N or cnp.PyArray_DIM(Y, 1) != self.plan.n_out
                or cnp.PyArray_TYPE(X) != kind or cnp.PyArray_TYPE(Y) != kind
                or not cnp.PyArray_IS_C_CONTIGUOUS(X) or not cnp.PyArray_IS_C_CONTIGUOUS(Y)):
            raise ValueError("the engine takes X (N, n_in) and Y (N, n_out), C-contiguous, of "
                             "the network's dtype")
        if s is not None and (cnp.PyArray_NDIM(s) != 1 or cnp.PyArray_DIM(s, 0) != N
                              or cnp.PyArray_TYPE(s) != kind
                              or not cnp.PyArray_IS_C_CONTIGUOUS(s)):
            raise ValueError("the engine takes sample weights s (N,) of the network's dtype")
        if order is not None:
            if (cnp.PyArray_NDIM(order) != 1 or cnp.PyArray_TYPE(order) != cnp.NPY_INTP
                    or not cnp.PyArray_IS_C_CONTIGUOUS(order)):
                raise ValueError("the engine takes an order of intp")
            if start < 0 or rows < 0 or start + rows > cnp.PyArray_DIM(order, 0):
                raise ValueError("the rows are outside the order")
            named = <Py_ssize_t*>data(order)
            for i in range(start, start + rows):
                if not 0 <= named[i] < N:
                    raise ValueError("the order names rows outside X")
        elif start < 0 or rows < 0 or start + rows > N:
            raise ValueError("the rows are outside X")
        return 0

    def shard_gradient(self, cnp.ndarray X not None, cnp.ndarray Y not None, cnp.ndarray s,
                       cnp.ndarray order, Py_ssize_t start, Py_ssize_t rows,
                       cnp.ndarray out not None):
        """This process's part of a global batch, in training mode, into ``out`` (n_params + 2,)
        of the engine's dtype: the unnormalized gradient, the weighted loss and the part of S of
        the rows order[start], ..., order[start + rows - 1] of X (N, n_in), Y (N, n_out), s (N,)
        or None (rows start... as stored for an order of None; rows may be 0). See shard_sums in
        fastnn/_passes.pxd; the sums of ``out`` over the processes go to `reduced_step`."""
        cdef Py_ssize_t* rows_of
        self.check_rows(X, Y, s, order, start, rows)
        if (cnp.PyArray_NDIM(out) != 1 or cnp.PyArray_DIM(out, 0) != self.plan.n_params + 2
                or cnp.PyArray_TYPE(out) != cnp.PyArray_TYPE(self.params)
                or not cnp.PyArray_IS_C_CONTIGUOUS(out) or not cnp.PyArray_ISWRITEABLE(out)):
            raise ValueError("the gradient buffer must be (n_params + 2,), of the network's "
                             "dtype, contiguous and writeable")
        rows_of = <Py_ssize_t*>data(order) if order is not None else NULL
        self.acquire()
        enter(rows * self.widest_product, self.n_threads)
        try:
            self.reserve(max(rows, 1))
            if self.is_double:
                self._shard_gradient[double](<double*>data(X), <double*>data(Y),
                                             <double*>optional(s), rows_of, start, rows,
                                             <double*>data(out))
            else:
                self._shard_gradient[float](<float*>data(X), <float*>data(Y),
                                            <float*>optional(s), rows_of, start, rows,
                                            <float*>data(out))
        finally:
            leave()
            PyThread_release_lock(self.lock)

    cdef void _shard_gradient(self, floating* X, floating* Y, floating* s, Py_ssize_t* order,
                              Py_ssize_t start, Py_ssize_t rows, floating* out) noexcept:
        cdef floating* P = <floating*>data(self.params)
        cdef floating* B = <floating*>data(self.buffers)
        cdef floating* work = <floating*>data(self.work)
        cdef floating* xb
        cdef floating* yb
        cdef floating* sb
        with nogil:
            gather_batch(&self.plan, work, X, Y, s, order, start, rows, &xb, &yb, &sb)
            shard_sums(&self.plan, P, B, work, xb, yb, sb, rows, 1.0, out)

    def reduced_step(self, cnp.ndarray G not None, UpdateRule rule not None, double max_norm,
                     bint scheduled, cnp.ndarray totals not None):
        """One update by ``rule`` from G (n_params + 2,): the sums over the processes of
        `shard_gradient`'s ``out`` on one global batch (its first n_params elements become the
        batch's gradient). With ``scheduled``, the rule's schedule then steps. Adds J times S and
        S to ``totals`` (float64 (2,)), as `epoch` adds them to its total and seen.

        Returns
        -------
        int
            0 done (or no update: S was 0); 1 J was not finite and nothing changed.
        """
        cdef int status
        cdef double J, S
        if (cnp.PyArray_NDIM(G) != 1 or cnp.PyArray_DIM(G, 0) != self.plan.n_params + 2
                or cnp.PyArray_TYPE(G) != cnp.PyArray_TYPE(self.params)
                or not cnp.PyArray_IS_C_CONTIGUOUS(G) or cnp.PyArray_NDIM(totals) != 1
                or cnp.PyArray_DIM(totals, 0) != 2 or cnp.PyArray_TYPE(totals) != cnp.NPY_DOUBLE
                or not cnp.PyArray_IS_C_CONTIGUOUS(totals) or not cnp.PyArray_ISWRITEABLE(totals)):
            raise ValueError("reduced_step takes G (n_params + 2,) of the network's dtype and "
                             "totals (2,) of float64, contiguous and writeable")
        self.acquire()
        try:
            rule.acquire()
            try:
                self.check_rule(rule, scheduled)
                if self.is_double:
                    status = self._reduced_step[double](<double*>data(G), rule, max_norm, &J, &S)
                else:
                    status = self._reduced_step[float](<float*>data(G), rule, max_norm, &J, &S)
                if status == 0:
                    if scheduled:
                        rule.rule.lr = schedule_step(&rule.rule.schedule, rule.rule.lr)
                    (<double*>data(totals))[0] += J * S
                    (<double*>data(totals))[1] += S
                return status
            finally:
                rule.release()
        finally:
            PyThread_release_lock(self.lock)

    cdef int _reduced_step(self, floating* G, UpdateRule rule, double max_norm, double* J,
                           double* S) noexcept:
        cdef floating* P = <floating*>data(self.params)
        cdef floating* state[MAX_STATE]
        cdef int status
        states_of(rule, state)
        with nogil:
            status = reduced_step(&self.plan, &rule.rule, P, G, state, max_norm, J, S, False)
        return status
