# Design: an optimizer's update rule as the engine reads it: the kind (UpdateKind in
# fastnn/_plan.pxd), the hyperparameters, the update count and the state vectors the kind
# declares. fastnn/optimizers.py holds one per optimizer; fastnn/registry.py names the kinds.
# A lock covers every read and write of the rule and its state: the engine holds it for a whole
# pass, so a state vector can neither be replaced nor read half-updated while a pass runs.
import weakref

import numpy as np
from cpython.pythread cimport PyThread_allocate_lock, PyThread_free_lock, PyThread_release_lock

from fastnn._lock cimport take
from fastnn._plan cimport ADAM, ADAMW, MAX_STATE, RMSPROP, SGD
from fastnn._passes cimport known_rule

# The codes of the update kernels, by the names fastnn/registry.py uses.
UPDATE_CODES = {"sgd": SGD, "adam": ADAM, "adamw": ADAMW, "rmsprop": RMSPROP}
# How many state vectors each kind keeps, each as long as the parameter vector.
STATE_VECTORS = {SGD: 1, ADAM: 2, ADAMW: 2, RMSPROP: 3}
# Every rule alive, for the fork handlers of fastnn._engine.
LIVE = weakref.WeakSet()


cdef class UpdateRule:
    """An optimizer's update rule and state, as the engine reads them (see fastnn.optimizers).

    Parameters
    ----------
    kind : int
        A code of UPDATE_CODES; any other is a ValueError.
    lr, momentum, nesterov, beta1, beta2, eps, eps_hat, weight_decay, alpha, centered
        The hyperparameters (see `set`).
    """

    def __cinit__(self):
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError("could not allocate the update rule's lock")

    def __dealloc__(self):
        if self.lock != NULL:
            PyThread_free_lock(self.lock)

    cdef int acquire(self) except -1:
        return take(self.lock)

    cdef void release(self) noexcept:
        PyThread_release_lock(self.lock)

    def __init__(self, int kind, double lr, double momentum=0, bint nesterov=False,
                 double beta1=0, double beta2=0, double eps=0, bint eps_hat=False,
                 double weight_decay=0, double alpha=0, bint centered=False):
        if not known_rule(kind) or kind not in STATE_VECTORS or STATE_VECTORS[kind] > MAX_STATE:
            raise ValueError(f"unknown update rule kind {kind}")
        self.rule.kind = kind
        self.rule.t = 0
        self.set(lr, momentum, nesterov, beta1, beta2, eps, eps_hat, weight_decay, alpha, centered)
        self.states = None
        LIVE.add(self)

    def set(self, double lr, double momentum=0, bint nesterov=False, double beta1=0,
            double beta2=0, double eps=0, bint eps_hat=False, double weight_decay=0,
            double alpha=0, bint centered=False):
        """Change the hyperparameters (those a kind does not read stay 0); the state is kept."""
        self.acquire()
        self.rule.lr = lr
        self.rule.momentum = momentum
        self.rule.nesterov = nesterov
        self.rule.beta1 = beta1
        self.rule.beta2 = beta2
        self.rule.eps = eps
        self.rule.eps_hat = eps_hat
        self.rule.weight_decay = weight_decay
        self.rule.alpha = alpha
        self.rule.centered = centered
        self.release()

    def allocate(self, Py_ssize_t n_params, dtype):
        """Zero state vectors for n_params parameters of dtype, and the update count."""
        states = tuple(np.zeros(n_params, dtype=dtype)
                       for _ in range(STATE_VECTORS[self.rule.kind]))
        self.acquire()
        self.states = states
        self.rule.t = 0
        self.release()

    def copy_state(self):
        """Copies of the state vectors and the update count, taken at once (None: no state)."""
        self.acquire()
        try:
            if self.states is None:
                return None
            return tuple(state.copy() for state in self.states), self.rule.t
        finally:
            self.release()

    def load_state(self, vectors, long long t):
        """Copy ``vectors`` (shaped as the state) into the state and set the update count."""
        self.acquire()
        try:
            if self.states is None or len(vectors) != len(self.states) or any(
                    v.shape != s.shape for v, s in zip(vectors, self.states)):
                raise ValueError("state vectors of another shape than this rule's")
            for state, vector in zip(self.states, vectors):
                state[:] = vector
            self.rule.t = t
        finally:
            self.release()

    @property
    def kind(self):
        """The kind's code."""
        return self.rule.kind

    @property
    def t(self):
        """The number of updates done."""
        return self.rule.t
