# Design: the engine runs whole passes of a network (forward, loss, gradients, a training step, an
# epoch of minibatches) over one flat parameter vector, one flat gradient vector and a workspace
# sized for the largest batch seen, all allocated once and reused. The passes are fused-type
# functions that run with the GIL released; the Engine methods only pick the float or double one.
# Inputs arrive validated and converted (C-contiguous, the engine's dtype, matching shapes) from the
# Python layer (fastnn/_validation.py, whose fast path is `ready` below); the passes trust them.
cimport numpy as cnp
import numpy as np
from cpython.pythread cimport (NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock,
                               PyThread_allocate_lock, PyThread_free_lock, PyThread_release_lock,
                               PyThread_type_lock)
from cython cimport floating
from libc.math cimport NAN, isfinite

from fastnn._activations cimport (IDENTITY, SIGMOID, RELU, TANH, SOFTMAX, activation_forward,
                                  activation_backward)
from fastnn._dense cimport dense_forward, dense_backward, dense_backward_descend
from fastnn._losses cimport SQUARED_ERROR, CROSS_ENTROPY, loss_forward, loss_backward
from fastnn._updates cimport sgd_update, adam_update

cnp.import_array()

cdef enum UpdateKind:
    SGD = 0
    ADAM = 1

# The codes the kernels know, by the names the Python API uses.
ACTIVATIONS = {"identity": IDENTITY, "sigmoid": SIGMOID, "relu": RELU, "tanh": TANH,
               "softmax": SOFTMAX}
LOSSES = {"squared_error": SQUARED_ERROR, "cross_entropy": CROSS_ENTROPY}
UPDATES = {"sgd": SGD, "adam": ADAM}

# forward and loss run over rows in blocks of at least this many, so evaluating a large data set
# needs a workspace of this size, not one of its size.
cdef Py_ssize_t MIN_BLOCK_ROWS = 1024


cdef struct Arch:
    Py_ssize_t n_layers       # L, the number of weight layers
    Py_ssize_t n_params       # length of the flat parameter vector
    Py_ssize_t* sizes         # (L + 1,) layer widths, the input first
    Py_ssize_t* w_off         # (L,) where W_l (sizes[l], sizes[l+1]) starts in the parameters
    Py_ssize_t* b_off         # (L,) where b_l (sizes[l+1],) starts in the parameters
    Py_ssize_t* a_off         # (L + 1,) where A_l (rows, sizes[l]) starts in the workspace, l >= 1
    Py_ssize_t z_off          # output logits Z_L (rows, sizes[L]), when the output is not identity
    Py_ssize_t d_off[2]       # two (rows, max width) buffers for dJ/dZ, used in turn
    Py_ssize_t xb_off         # (rows, sizes[0]) batch inputs gathered for a shuffled epoch
    Py_ssize_t yb_off         # (rows, sizes[L]) batch targets gathered for a shuffled epoch
    Py_ssize_t sb_off         # (rows,) batch sample weights gathered for a shuffled epoch
    int hidden                # Activation of the hidden layers
    int output                # Activation of the output layer
    int loss                  # Loss
    double l2
    # J = loss_scale sum_i s_i L_i / S + (l2/2) sum ||W||^2, divided by S too if l2_per_sample,
    # where S = sum_i s_i (N without sample weights). fastnn's own objective has loss_scale 1 and
    # no l2_per_sample; scikit-learn's has 1/2 for squared error and l2_per_sample.
    double loss_scale
    bint l2_per_sample


cdef struct Rule:
    int kind                  # UpdateKind
    double lr, momentum, beta1, beta2, eps
    bint nesterov
    bint eps_hat              # Adam's eps added before the bias correction (Keras, scikit-learn)
    long long t               # updates done so far


cdef inline floating* output_logits(Arch* a, floating* work) noexcept nogil:
    if a.output == IDENTITY:
        return work + a.a_off[a.n_layers]
    return work + a.z_off


cdef void forward_pass(Arch* a, floating* P, floating* work,
                       floating* X,                    # IN (N, sizes[0])
                       Py_ssize_t N) noexcept nogil:
    """A_l = f(A_{l-1} @ W_l + b_l) for l = 1..L into the workspace, with A_0 = X."""
    cdef Py_ssize_t l, L = a.n_layers
    cdef floating* A_prev = X
    cdef floating* A
    cdef floating* Z
    for l in range(L):
        A = work + a.a_off[l + 1]
        Z = output_logits(a, work) if l == L - 1 else A
        dense_forward(Z, A_prev, P + a.w_off[l], P + a.b_off[l], N, a.sizes[l], a.sizes[l + 1])
        activation_forward(A, Z, N, a.sizes[l + 1], a.output if l == L - 1 else a.hidden)
        A_prev = A


cdef double penalty(Arch* a, floating* P) noexcept nogil:
    """(l2 / 2) sum_l ||W_l||^2."""
    cdef Py_ssize_t l, i, size
    cdef double total = 0
    cdef floating* W
    if a.l2 == 0:
        return 0
    for l in range(a.n_layers):
        W = P + a.w_off[l]
        size = a.sizes[l] * a.sizes[l + 1]
        for i in range(size):
            total += <double>W[i] * W[i]
    return 0.5 * a.l2 * total


cdef double forward_loss(Arch* a, floating* P, floating* work, floating* X, floating* Y,
                         floating* s, Py_ssize_t N) noexcept nogil:
    """sum_i s_i L_i over the N rows of X (N, sizes[0]), Y (N, sizes[L]) and s (N,) or NULL.

    Leaves the forward pass in work.
    """
    cdef Py_ssize_t L = a.n_layers
    forward_pass(a, P, work, X, N)
    return loss_forward(output_logits(a, work), work + a.a_off[L], Y, s, N, a.sizes[L],
                        a.output, a.loss)


cdef inline double weight_sum(floating* s, Py_ssize_t N) noexcept nogil:
    """S = sum_i s_i, or N when s is NULL."""
    cdef Py_ssize_t i
    cdef double total = 0
    if s == NULL:
        return N
    for i in range(N):
        total += s[i]
    return total


cdef inline double objective(Arch* a, floating* P, double weighted_loss, double S) noexcept nogil:
    """J from sum_i s_i L_i and S = sum_i s_i."""
    return a.loss_scale * weighted_loss / S + penalty(a, P) / (S if a.l2_per_sample else 1)


cdef void backward_pass(Arch* a, floating* P, floating* G, floating* work,
                        floating* X,                   # IN (N, sizes[0])
                        floating* Y,                   # IN (N, sizes[L])
                        floating* s,                   # IN (N,) sample weights, or NULL
                        Py_ssize_t N, double S, double descend) noexcept nogil:
    """G = dJ/dP (see Arch for J; S = sum_i s_i), after forward_pass on X.

    With descend > 0, take the plain gradient-descent step P -= descend * dJ/dP instead, layer by
    layer as the gradient is found, and leave G alone.
    """
    cdef Py_ssize_t l, i, size, L = a.n_layers
    cdef floating* D = work + a.d_off[0]
    cdef floating* D_prev = work + a.d_off[1]
    cdef floating* swap
    cdef floating* A_prev
    cdef floating decay = <floating>(a.l2 / S if a.l2_per_sample else a.l2)
    loss_backward(D, work + a.a_off[L], Y, s, N, a.sizes[L], a.output, a.loss,
                  <floating>(a.loss_scale / S))
    for l in range(L - 1, -1, -1):
        A_prev = X if l == 0 else work + a.a_off[l]
        if descend > 0:
            dense_backward_descend(D_prev if l > 0 else NULL, P + a.w_off[l], P + a.b_off[l], D,
                                   A_prev, N, a.sizes[l], a.sizes[l + 1], <floating>descend,
                                   decay)
        else:
            dense_backward(D_prev if l > 0 else NULL, G + a.w_off[l], G + a.b_off[l], D, A_prev,
                           P + a.w_off[l], N, a.sizes[l], a.sizes[l + 1])
        if l > 0:
            activation_backward(D_prev, A_prev, N, a.sizes[l], a.hidden)
            swap = D
            D = D_prev
            D_prev = swap
    if decay != 0 and descend <= 0:
        for l in range(L):
            size = a.sizes[l] * a.sizes[l + 1]
            for i in range(size):
                G[a.w_off[l] + i] = G[a.w_off[l] + i] + decay * P[a.w_off[l] + i]


cdef void update(Arch* a, Rule* r, floating* P, floating* G, floating* S1, floating* S2) noexcept nogil:
    """One optimizer update of P from the gradient G; S1, S2 are the rule's state vectors."""
    r.t += 1
    if r.kind == SGD:
        sgd_update(P, G, S1, a.n_params, r.lr, r.momentum, r.nesterov)
    else:
        adam_update(P, G, S1, S2, a.n_params, r.lr, r.beta1, r.beta2, r.eps, r.t, r.eps_hat)


cdef double train_step(Arch* a, Rule* r, floating* P, floating* G, floating* S1, floating* S2,
                       floating* work, floating* X, floating* Y, floating* s,
                       Py_ssize_t N) noexcept nogil:
    """J on the batch (X, Y, s) of N rows, then one update; no update when J is not finite.

    A batch whose sample weights are all zero carries no information: it returns 0, no update.
    """
    cdef double S = weight_sum(s, N)
    cdef double J
    if S == 0:
        return 0
    J = objective(a, P, forward_loss(a, P, work, X, Y, s, N), S)
    if not isfinite(J):
        return J
    if r.kind == SGD and r.momentum == 0 and r.lr > 0:
        # plain gradient descent needs no stored gradient: step inside the backward pass
        r.t += 1
        backward_pass(a, P, G, work, X, Y, s, N, S, r.lr)
        return J
    backward_pass(a, P, G, work, X, Y, s, N, S, 0)
    update(a, r, P, G, S1, S2)
    return J


cdef Py_ssize_t run_epoch(Arch* a, Rule* r, floating* P, floating* G, floating* S1, floating* S2,
                          floating* work,
                          floating* X,                 # IN (N, sizes[0])
                          floating* Y,                 # IN (N, sizes[L])
                          floating* s,                 # IN (N,) sample weights, or NULL
                          Py_ssize_t N,
                          Py_ssize_t* order,           # IN (N,) row order, or NULL for 0..N-1
                          Py_ssize_t batch, double* total) noexcept nogil:
    """Train on consecutive batches of `batch` rows (the last may be smaller).

    Adds J times the rows (or, with sample weights, the weight) of each batch to total and
    returns the number of batches done, which is short of all of them only when a loss was not
    finite (that batch made no update).
    """
    cdef Py_ssize_t k, start, rows, i, j, done = 0
    cdef Py_ssize_t n_in = a.sizes[0], n_out = a.sizes[a.n_layers]
    cdef floating* xb
    cdef floating* yb
    cdef floating* sb
    cdef double J
    for k in range((N + batch - 1) // batch):
        start = k * batch
        rows = min(batch, N - start)
        if order == NULL:
            xb = X + start * n_in
            yb = Y + start * n_out
            sb = s + start if s != NULL else NULL
        else:
            xb = work + a.xb_off
            yb = work + a.yb_off
            sb = work + a.sb_off if s != NULL else NULL
            for i in range(rows):
                for j in range(n_in):
                    xb[i * n_in + j] = X[order[start + i] * n_in + j]
                for j in range(n_out):
                    yb[i * n_out + j] = Y[order[start + i] * n_out + j]
                if s != NULL:
                    sb[i] = s[order[start + i]]
        J = train_step(a, r, P, G, S1, S2, work, xb, yb, sb, rows)
        if not isfinite(J):
            return done
        total[0] += J * weight_sum(sb, rows)
        done += 1
    return done


cdef class UpdateRule:
    """An optimizer's update rule and state, as the engine reads them (see fastnn.optimizers)."""
    cdef Rule rule
    cdef readonly object state1, state2

    def __init__(self, int kind, double lr, double momentum=0, bint nesterov=False,
                 double beta1=0, double beta2=0, double eps=0, bint eps_hat=False):
        self.rule.kind = kind
        self.rule.t = 0
        self.set(lr, momentum, nesterov, beta1, beta2, eps, eps_hat)
        self.state1 = self.state2 = None

    def set(self, double lr, double momentum, bint nesterov, double beta1, double beta2, double eps,
            bint eps_hat):
        """Change the hyperparameters; the state is kept."""
        self.rule.lr = lr
        self.rule.momentum = momentum
        self.rule.nesterov = nesterov
        self.rule.beta1 = beta1
        self.rule.beta2 = beta2
        self.rule.eps = eps
        self.rule.eps_hat = eps_hat

    def allocate(self, Py_ssize_t n_params, dtype):
        """Zero state vectors for n_params parameters of dtype, and the update count."""
        self.state1 = np.zeros(n_params, dtype=dtype)
        self.state2 = np.zeros(n_params if self.rule.kind == ADAM else 0, dtype=dtype)
        self.rule.t = 0

    @property
    def t(self):
        """The number of updates done."""
        return self.rule.t

    @t.setter
    def t(self, long long value):
        self.rule.t = value


cdef inline void* data(cnp.ndarray array) noexcept:
    return cnp.PyArray_DATA(array)


cdef inline void* optional(cnp.ndarray array) noexcept:
    """The data of an optional array (sample weights): NULL for None."""
    return data(array) if array is not None else NULL


cdef class Engine:
    """The compiled state of one network: architecture, flat parameters and gradients, workspace.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, the input first.
    hidden, output, loss : int
        Codes of the hidden and output activations and of the loss (ACTIVATIONS, LOSSES).
    l2 : float
        The L2 penalty on the weights.
    dtype : numpy.dtype
        float32 or float64.
    loss_scale : float, default 1
        Factor on the data term of the objective.
    l2_per_sample : bool, default False
        Divide the penalty by the batch's weight sum too (scikit-learn's objective).

    Notes
    -----
    The objective on a batch of N rows with sample weights s (ones when None) is
    ``J = loss_scale sum_i s_i L_i / S + (l2/2) sum_l ||W_l||^2 [/ S]`` with ``S = sum_i s_i``.
    Arrays passed to the methods are C-contiguous, of the engine's dtype, with N >= 1 rows.
    The methods hold a lock: the passes run without the GIL, and two threads using one network
    at once must not share (or reallocate) its workspace.
    """
    cdef Arch arch
    cdef bint is_double
    cdef Py_ssize_t rows               # rows the workspace holds
    cdef Py_ssize_t[::1] layout        # sizes, w_off, b_off, a_off, back to back
    cdef readonly cnp.ndarray params   # (n_params,) W_1, b_1, W_2, b_2, ...
    cdef readonly cnp.ndarray grad     # (n_params,) laid out as params
    cdef cnp.ndarray work
    cdef PyThread_type_lock lock

    def __cinit__(self):
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError("could not allocate the engine's lock")

    def __dealloc__(self):
        if self.lock != NULL:
            PyThread_free_lock(self.lock)

    cdef void acquire(self) noexcept:
        """Take the lock, waiting without the GIL (its holder may need the GIL to finish)."""
        if not PyThread_acquire_lock(self.lock, NOWAIT_LOCK):
            with nogil:
                PyThread_acquire_lock(self.lock, WAIT_LOCK)

    def __init__(self, sizes, int hidden, int output, int loss, double l2, dtype,
                 double loss_scale=1, bint l2_per_sample=False):
        cdef Py_ssize_t l, L = len(sizes) - 1, offset = 0
        self.layout = np.zeros(4 * (L + 1), dtype=np.intp)
        self.arch.n_layers = L
        self.arch.sizes = &self.layout[0]
        self.arch.w_off = &self.layout[L + 1]
        self.arch.b_off = &self.layout[2 * (L + 1)]
        self.arch.a_off = &self.layout[3 * (L + 1)]
        for l in range(L + 1):
            self.arch.sizes[l] = sizes[l]
        for l in range(L):
            self.arch.w_off[l] = offset
            offset += self.arch.sizes[l] * self.arch.sizes[l + 1]
            self.arch.b_off[l] = offset
            offset += self.arch.sizes[l + 1]
        self.arch.n_params = offset
        self.arch.hidden = hidden
        self.arch.output = output
        self.arch.loss = loss
        self.arch.l2 = l2
        self.arch.loss_scale = loss_scale
        self.arch.l2_per_sample = l2_per_sample
        self.is_double = np.dtype(dtype) == np.float64
        self.params = np.zeros(offset, dtype=dtype)
        self.grad = np.zeros(offset, dtype=dtype)
        self.rows = 0
        self.reserve(1)

    def set_objective(self, double l2, double loss_scale, bint l2_per_sample):
        """Change the penalty, the factor on the data term and whether the penalty is divided by
        S too."""
        self.arch.l2 = l2
        self.arch.loss_scale = loss_scale
        self.arch.l2_per_sample = l2_per_sample

    cdef void reserve(self, Py_ssize_t rows):
        """Grow the workspace to hold passes over `rows` rows (it never shrinks)."""
        cdef Py_ssize_t l, L = self.arch.n_layers, offset = 0, widest = 0, per_row = 0
        if rows <= self.rows:
            return
        for l in range(L + 1):
            widest = max(widest, self.arch.sizes[l])
            per_row += self.arch.sizes[l]
        # A_1..A_L, Z_L, two dJ/dZ buffers, gathered X, Y and weights of a batch
        per_row += self.arch.sizes[L] + 2 * widest + self.arch.sizes[L] + 1
        # allocate before touching the layout: a failed allocation leaves the engine as it was
        self.work = np.empty(rows * per_row, dtype=self.params.dtype)
        for l in range(1, L + 1):
            self.arch.a_off[l] = offset
            offset += rows * self.arch.sizes[l]
        self.arch.z_off = offset
        offset += rows * self.arch.sizes[L]
        self.arch.d_off[0] = offset
        self.arch.d_off[1] = offset + rows * widest
        offset += 2 * rows * widest
        self.arch.xb_off = offset
        offset += rows * self.arch.sizes[0]
        self.arch.yb_off = offset
        offset += rows * self.arch.sizes[L]
        self.arch.sb_off = offset
        self.rows = rows

    cdef Py_ssize_t block_rows(self, Py_ssize_t N):
        """Rows per block for forward and loss over N rows, with the workspace reserved for them."""
        cdef Py_ssize_t block = min(N, max(self.rows, MIN_BLOCK_ROWS))
        self.reserve(block)
        return block

    def forward(self, cnp.ndarray X):
        """The network's output (N, n_out), a new array, on X (N, n_in)."""
        cdef cnp.npy_intp shape[2]
        shape[0] = X.shape[0]
        shape[1] = self.arch.sizes[self.arch.n_layers]
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, shape, cnp.PyArray_TYPE(self.params), 0)
        if shape[0] == 0:
            return out
        self.acquire()
        try:
            self._forward_blocks(X, out)
        finally:
            PyThread_release_lock(self.lock)
        return out

    cdef void _forward_blocks(self, cnp.ndarray X, cnp.ndarray out):
        cdef Py_ssize_t N = X.shape[0], k, start, rows, block = self.block_rows(N)
        cdef Py_ssize_t n_in = self.arch.sizes[0], n_out = self.arch.sizes[self.arch.n_layers]
        for k in range((N + block - 1) // block):
            start = k * block
            rows = min(block, N - start)
            if self.is_double:
                self._forward[double](<double*>data(X) + start * n_in,
                                      <double*>data(out) + start * n_out, rows)
            else:
                self._forward[float](<float*>data(X) + start * n_in,
                                     <float*>data(out) + start * n_out, rows)

    cdef void _forward(self, floating* X, floating* out, Py_ssize_t N) noexcept:
        cdef Py_ssize_t i, size = N * self.arch.sizes[self.arch.n_layers]
        cdef floating* P = <floating*>data(self.params)
        cdef floating* work = <floating*>data(self.work)
        cdef floating* A
        with nogil:
            forward_pass(&self.arch, P, work, X, N)
            A = work + self.arch.a_off[self.arch.n_layers]
            for i in range(size):
                out[i] = A[i]

    def loss(self, cnp.ndarray X, cnp.ndarray Y, cnp.ndarray s=None):
        """The objective J on X (N, n_in), Y (N, n_out), sample weights s (N,) or None."""
        self.acquire()
        try:
            return self._loss_blocks(X, Y, s)
        finally:
            PyThread_release_lock(self.lock)

    cdef double _loss_blocks(self, cnp.ndarray X, cnp.ndarray Y, cnp.ndarray s):
        cdef Py_ssize_t N = X.shape[0], k, start, rows, block = self.block_rows(N)
        cdef Py_ssize_t n_in = self.arch.sizes[0], n_out = self.arch.sizes[self.arch.n_layers]
        cdef double total = 0
        if N == 0:
            return NAN
        for k in range((N + block - 1) // block):
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
            return objective(&self.arch, <double*>data(self.params), total,
                             weight_sum(<double*>optional(s), N))
        return objective(&self.arch, <float*>data(self.params), total,
                         weight_sum(<float*>optional(s), N))

    cdef double _loss(self, floating* X, floating* Y, floating* s, Py_ssize_t start,
                      Py_ssize_t N) noexcept:
        cdef double total
        cdef floating* P = <floating*>data(self.params)
        cdef floating* work = <floating*>data(self.work)
        with nogil:
            total = forward_loss(&self.arch, P, work, X, Y, s + start if s != NULL else NULL, N)
        return total

    def gradients(self, cnp.ndarray X, cnp.ndarray Y, cnp.ndarray s=None):
        """J on X (N, n_in), Y (N, n_out), sample weights s (N,) or None; self.grad = dJ/dparams."""
        cdef Py_ssize_t N = X.shape[0]
        self.acquire()
        try:
            self.reserve(N)
            if self.is_double:
                return self._gradients[double](<double*>data(X), <double*>data(Y),
                                               <double*>optional(s), N)
            return self._gradients[float](<float*>data(X), <float*>data(Y), <float*>optional(s), N)
        finally:
            PyThread_release_lock(self.lock)

    cdef double _gradients(self, floating* X, floating* Y, floating* s, Py_ssize_t N) noexcept:
        cdef floating* P = <floating*>data(self.params)
        cdef floating* G = <floating*>data(self.grad)
        cdef floating* work = <floating*>data(self.work)
        cdef double J, S
        with nogil:
            S = weight_sum(s, N)
            J = objective(&self.arch, P, forward_loss(&self.arch, P, work, X, Y, s, N), S)
            backward_pass(&self.arch, P, G, work, X, Y, s, N, S, 0)
        return J

    def step(self, cnp.ndarray X, cnp.ndarray Y, cnp.ndarray s, UpdateRule rule):
        """J on the batch X (N, n_in), Y (N, n_out), weights s (N,) or None, then one update by
        rule (none if J is not finite)."""
        cdef Py_ssize_t N = X.shape[0]
        self.acquire()
        try:
            self.reserve(N)
            if self.is_double:
                return self._step[double](<double*>data(X), <double*>data(Y),
                                          <double*>optional(s), N, rule)
            return self._step[float](<float*>data(X), <float*>data(Y), <float*>optional(s), N,
                                     rule)
        finally:
            PyThread_release_lock(self.lock)

    cdef double _step(self, floating* X, floating* Y, floating* s, Py_ssize_t N,
                      UpdateRule rule) noexcept:
        cdef floating* P = <floating*>data(self.params)
        cdef floating* G = <floating*>data(self.grad)
        # local references keep the state alive should another thread reset the optimizer
        cdef cnp.ndarray state1 = rule.state1, state2 = rule.state2
        cdef floating* S1 = <floating*>data(state1)
        cdef floating* S2 = <floating*>data(state2)
        cdef floating* work = <floating*>data(self.work)
        cdef double J
        with nogil:
            J = train_step(&self.arch, &rule.rule, P, G, S1, S2, work, X, Y, s, N)
        return J

    def epoch(self, cnp.ndarray X, cnp.ndarray Y, cnp.ndarray s, cnp.ndarray order,
              Py_ssize_t batch_size, UpdateRule rule):
        """Train one epoch on X (N, n_in), Y (N, n_out), weights s (N,) or None, in batches of
        batch_size rows taken in `order` (intp (N,)) or, for None, as stored.

        Returns
        -------
        total : float
            sum over the batches done of J times the batch's rows (weight sum, with weights).
        done : int
            batches done; fewer than all only if a loss was not finite.
        """
        cdef Py_ssize_t N = X.shape[0]
        cdef Py_ssize_t* rows = <Py_ssize_t*>data(order) if order is not None else NULL
        cdef double total = 0
        cdef Py_ssize_t done
        self.acquire()
        try:
            self.reserve(min(batch_size, N))
            if self.is_double:
                done = self._epoch[double](<double*>data(X), <double*>data(Y),
                                           <double*>optional(s), N, rows, batch_size, rule, &total)
            else:
                done = self._epoch[float](<float*>data(X), <float*>data(Y), <float*>optional(s),
                                          N, rows, batch_size, rule, &total)
        finally:
            PyThread_release_lock(self.lock)
        return total, done

    cdef Py_ssize_t _epoch(self, floating* X, floating* Y, floating* s, Py_ssize_t N,
                           Py_ssize_t* order, Py_ssize_t batch, UpdateRule rule,
                           double* total) noexcept:
        cdef floating* P = <floating*>data(self.params)
        cdef floating* G = <floating*>data(self.grad)
        # local references keep the state alive should another thread reset the optimizer
        cdef cnp.ndarray state1 = rule.state1, state2 = rule.state2
        cdef floating* S1 = <floating*>data(state1)
        cdef floating* S2 = <floating*>data(state2)
        cdef floating* work = <floating*>data(self.work)
        cdef Py_ssize_t done
        with nogil:
            done = run_epoch(&self.arch, &rule.rule, P, G, S1, S2, work, X, Y, s, N, order, batch,
                             total)
        return done


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
    cdef Py_ssize_t i, n = X.size
    if X.dtype == np.float64:
        return _all_finite[double](<double*>data(X), n)
    if X.dtype == np.float32:
        return _all_finite[float](<float*>data(X), n)
    raise TypeError(f"all_finite takes float32 or float64, not {X.dtype}")


cdef bint _all_finite(floating* X, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    cdef floating s = 0
    with nogil:
        # 0 * x is NaN exactly when x is NaN or infinite: one vectorizable pass, no branch.
        for i in range(n):
            s = s + 0 * X[i]
    return s == 0
