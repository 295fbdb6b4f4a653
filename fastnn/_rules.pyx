# Design: an optimizer's update rule as the engine reads it: the kind (UpdateKind in
# fastnn/_plan.pxd), the hyperparameters, the update count, the state vectors the kind declares,
# and the learning-rate schedule bound to its lr (ScheduleKind), which a compiled epoch may step.
# fastnn/optimizers.py holds one per optimizer, fastnn/schedules.py binds schedules to them;
# fastnn/registry.py names the kinds. A lock covers every read and write of the rule, its state
# and its schedule: the engine holds it for a whole pass, so a state vector can neither be
# replaced nor read half-updated while a pass runs, and the lr cannot change in the middle of one.
import weakref

import numpy as np
from cpython.pythread cimport PyThread_allocate_lock, PyThread_free_lock, PyThread_release_lock

from fastnn._lock cimport take
from fastnn._plan cimport (ADAM, ADAMW, EXPONENTIAL_LR, MAX_STATE, NO_SCHEDULE, RMSPROP, SGD,
                           STEP_LR, WARMUP_COSINE)
from fastnn._passes cimport known_rule
from fastnn._schedules cimport schedule_start, schedule_step

# The codes of the update kernels, by the names fastnn/registry.py uses.
UPDATE_CODES = {"sgd": SGD, "adam": ADAM, "adamw": ADAMW, "rmsprop": RMSPROP}
# How many state vectors each kind keeps, each as long as the parameter vector.
STATE_VECTORS = {SGD: 1, ADAM: 2, ADAMW: 2, RMSPROP: 3}
# The codes of the compiled learning-rate schedules, by the names fastnn/registry.py uses.
SCHEDULE_CODES = {"step": STEP_LR, "exponential": EXPONENTIAL_LR, "warmup_cosine": WARMUP_COSINE}
# Every rule alive, for the fork handlers of fastnn._engine.
LIVE = weakref.WeakSet()


cdef class UpdateRule:
    """An optimizer's update rule and state, as the engine reads them (see fastnn.optimizers).

    Parameters
    ----------
    kind : int
        A code of UPDATE_CODES; any other is a ValueError.
    lr : float
        The learning rate (see `lr`).
    momentum, nesterov, beta1, beta2, eps, eps_hat, weight_decay, alpha, centered
        The other hyperparameters (see `set`).
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
        self.rule.schedule.kind = NO_SCHEDULE
        self.lr = lr
        self.set(momentum, nesterov, beta1, beta2, eps, eps_hat, weight_decay, alpha, centered)
        self.states = None
        LIVE.add(self)

    @property
    def lr(self):
        """The learning rate: set by the optimizer, and by the schedule bound to it."""
        self.acquire()
        value = self.rule.lr
        self.release()
        return value

    @lr.setter
    def lr(self, double value):
        self.acquire()
        self.rule.lr = value
        self.release()

    def set(self, double momentum=0, bint nesterov=False, double beta1=0, double beta2=0,
            double eps=0, bint eps_hat=False, double weight_decay=0, double alpha=0,
            bint centered=False):
        """Change the hyperparameters but lr (those a kind does not read stay 0); the state and
        lr are kept."""
        self.acquire()
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
        """Copies of the state vectors (None: no state), the update count and lr, taken at
        once."""
        self.acquire()
        try:
            if self.states is None:
                return None, self.rule.t, self.rule.lr
            return tuple(state.copy() for state in self.states), self.rule.t, self.rule.lr
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

    def bind_schedule(self, int kind, double gamma=1, long long step_size=1, long long warmup=0,
                      long long T_max=1, double start_factor=1, double eta_min=0, state=None):
        """Bind a schedule to lr, in place of any bound before.

        Parameters
        ----------
        kind : int
            A code of SCHEDULE_CODES.
        gamma, step_size, warmup, T_max, start_factor, eta_min
            Its parameters (see Schedule in fastnn/_plan.pxd); step_size and T_max >= 1.
        state : tuple (last_epoch, base_lr, last_lr), optional
            Bind it with this state (from `schedule_state`), lr left as it is. Without, it starts:
            base_lr is lr now, no step is taken, and lr becomes the schedule's first.

        Returns
        -------
        float
            The lr.
        """
        if kind not in SCHEDULE_CODES.values() or step_size < 1 or T_max < 1 or warmup < 0:
            raise ValueError(f"unknown schedule kind {kind}, or step_size {step_size}, T_max "
                             f"{T_max} < 1 or warmup {warmup} < 0")
        cdef long long last_epoch = 0
        cdef double base_lr = 0, last_lr = 0
        if state is not None:
            # converted before the lock is taken: a bad value raises with no lock held
            last_epoch, base_lr, last_lr = state
        self.acquire()
        try:
            self.rule.schedule.kind = kind
            self.rule.schedule.gamma = gamma
            self.rule.schedule.step_size = step_size
            self.rule.schedule.warmup = warmup
            self.rule.schedule.T_max = T_max
            self.rule.schedule.start_factor = start_factor
            self.rule.schedule.eta_min = eta_min
            if state is None:
                self.rule.lr = schedule_start(&self.rule.schedule, self.rule.lr)
            else:
                self.rule.schedule.last_epoch = last_epoch
                self.rule.schedule.base_lr = base_lr
                self.rule.schedule.last_lr = last_lr
            return self.rule.lr
        finally:
            self.release()

    def step_schedule(self):
        """One step of the bound schedule (ValueError if none): sets and returns the new lr."""
        self.acquire()
        try:
            if self.rule.schedule.kind == NO_SCHEDULE:
                raise ValueError("no schedule is bound to this update rule")
            self.rule.lr = schedule_step(&self.rule.schedule, self.rule.lr)
            return self.rule.lr
        finally:
            self.release()

    def schedule_state(self):
        """The bound schedule's (kind, last_epoch, base_lr, last_lr), taken at once; kind is 0
        (NO_SCHEDULE) when none is bound."""
        self.acquire()
        try:
            return (self.rule.schedule.kind, self.rule.schedule.last_epoch,
                    self.rule.schedule.base_lr, self.rule.schedule.last_lr)
        finally:
            self.release()
