# Design: an optimizer's update rule as the engine reads it: the kind (UpdateKind in
# fastnn/_plan.pxd), the hyperparameters, the update count and the state vectors the kind
# declares. fastnn/optimizers.py holds one per optimizer; fastnn/registry.py names the kinds.
import numpy as np

from fastnn._plan cimport ADAM, MAX_STATE, SGD
from fastnn._passes cimport known_rule

# The codes of the update kernels, by the names fastnn/registry.py uses.
UPDATE_CODES = {"sgd": SGD, "adam": ADAM}
# How many state vectors each kind keeps, each as long as the parameter vector.
STATE_VECTORS = {SGD: 1, ADAM: 2}


cdef class UpdateRule:
    """An optimizer's update rule and state, as the engine reads them (see fastnn.optimizers).

    Parameters
    ----------
    kind : int
        A code of UPDATE_CODES; any other is a ValueError.
    lr, momentum, nesterov, beta1, beta2, eps, eps_hat
        The hyperparameters (see `set`).
    """

    def __init__(self, int kind, double lr, double momentum=0, bint nesterov=False,
                 double beta1=0, double beta2=0, double eps=0, bint eps_hat=False):
        if not known_rule(kind) or kind not in STATE_VECTORS or STATE_VECTORS[kind] > MAX_STATE:
            raise ValueError(f"unknown update rule kind {kind}")
        self.rule.kind = kind
        self.rule.t = 0
        self.set(lr, momentum, nesterov, beta1, beta2, eps, eps_hat)
        self.states = None

    def set(self, double lr, double momentum, bint nesterov, double beta1, double beta2,
            double eps, bint eps_hat):
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
        self.states = tuple(np.zeros(n_params, dtype=dtype)
                            for _ in range(STATE_VECTORS[self.rule.kind]))
        self.rule.t = 0

    @property
    def kind(self):
        """The kind's code."""
        return self.rule.kind

    @property
    def t(self):
        """The number of updates done."""
        return self.rule.t

    @t.setter
    def t(self, long long value):
        self.rule.t = value
