"""Optimizers: the update rules of ``torch.optim.SGD``, ``torch.optim.Adam``,
``torch.optim.AdamW`` and ``torch.optim.RMSprop``.

An optimizer keeps its state (momentum buffer, moment estimates, step count) for one network,
allocated at its first update as flat vectors like the network's parameters. The updates
themselves run in compiled code (``fastnn/_updates.pxd``). Its learning rate may be driven by a
schedule (`fastnn.schedules`). Optimizers pickle with their state and learning rate; an unpickled
one continues with the first network of the same size it updates.
"""
import os
import threading
import weakref

import numpy as np

from fastnn import registry
from fastnn._rules import UpdateRule
from fastnn._validation import check_int, check_real

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop"]

# An optimizer's attributes that are not its settings: its compiled rule and its bindings.
_RUNTIME = ("_rule", "_network", "_adoptable", "_schedule", "_binding")

# Every optimizer alive: their binding locks are taken across fork(), as the engine's are, so a
# child never inherits one held by a thread it does not have.
_LIVE = weakref.WeakSet()
_forking = threading.local()


def _before_fork():
    """Take every optimizer's binding lock (this thread remembers which)."""
    _forking.held = list(_LIVE)
    for optimizer in _forking.held:
        optimizer._binding.acquire()


def _after_fork():
    """Release what _before_fork took in this thread, in the parent and in the child."""
    held, _forking.held = getattr(_forking, "held", None) or [], None
    for optimizer in held:
        optimizer._binding.release()


# registered after fastnn._engine's (imported above, with fastnn.registry): fork handlers run
# "before" in reverse order, so these locks are taken first, as bind() takes its lock before the
# rule's
os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)


def _setting(name, doc, **bounds):
    """A real hyperparameter, kept in ``_<name>``, checked by `check_real` with ``bounds`` and
    handed to the compiled rule (``_sync``) when set."""

    def get(self):
        return getattr(self, f"_{name}")

    def set(self, value):
        setattr(self, f"_{name}", check_real(name, value, **bounds))
        self._sync()

    return property(get, set, doc=doc)


def _flag(name, doc):
    """A True/False hyperparameter, kept in ``_<name>`` and handed to the compiled rule."""

    def get(self):
        return getattr(self, f"_{name}")

    def set(self, value):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
        setattr(self, f"_{name}", value)
        self._sync()

    return property(get, set, doc=doc)


def _weight_decay_property():
    """The ``weight_decay`` property (torch.optim's weight decay factor)."""
    return _setting("weight_decay", "torch.optim's weight decay factor (finite, >= 0).", low=0)


class Optimizer:
    """Base class of the optimizers; use `SGD` or `Adam`.

    A subclass names its rule in `fastnn.registry.OPTIMIZERS` as ``_kind`` and implements only
    ``_sync``, which hands its hyperparameters to the compiled rule; the state vectors are those
    the registry declares.

    Parameters
    ----------
    lr : float
        The learning rate, finite and >= 0.
    """

    _kind = None

    def __init__(self, lr):
        self._rule = UpdateRule(registry.OPTIMIZERS[self._kind].code, 0.0)
        self._network = None
        self._adoptable = False
        # the compiled schedule bound to lr (a weak reference; fastnn.schedules)
        self._schedule = None
        self._binding = threading.Lock()
        _LIVE.add(self)
        self.lr = lr

    @property
    def lr(self):
        """The learning rate: as set, or as the schedule bound to the optimizer last set it (a
        per-step schedule changes it after every batch of an epoch)."""
        return self._rule.lr

    @lr.setter
    def lr(self, value):
        self._rule.lr = check_real("lr", value, low=0)

    @property
    def steps(self):
        """The number of updates made so far."""
        return self._rule.t

    def reset(self):
        """Forget the state and the network it belongs to; the next update starts afresh."""
        with self._binding:
            self._network = None
            self._adoptable = False

    def _sync(self):
        raise NotImplementedError

    def _hyperparameters(self):
        """The settings but the learning rate, by name (``{"momentum": 0.9, ...}``): what a
        training checkpoint compares with the optimizer of the run it resumes."""
        return {name.lstrip("_"): value for name, value in vars(self).items()
                if name not in _RUNTIME}

    def bind(self, network):
        """The compiled rule for updating ``network``, with state allocated at its first use.

        Used by `fastnn.MLP`'s training methods: an optimizer holds the state of one network.
        Threads that bind one optimizer at once see one owner: the others get the error.
        """
        bound = self._network
        if bound is not None and bound() is network:
            # already this network's (the common case, every step): no lock needed, since a
            # reset() racing with this step is as if it came after it
            return self._rule
        with self._binding:
            owner = self._network() if self._network is not None else None
            if owner is not network:
                if owner is not None:
                    raise ValueError(
                        "this optimizer holds the state of another network; create one optimizer "
                        "per network, or call reset() first")
                states = self._rule.states
                if not (self._adoptable and states[0].size == network.params.size
                        and states[0].dtype == network.params.dtype):
                    self._rule.allocate(network.params.size, network.params.dtype)
                self._network = weakref.ref(network)
                self._adoptable = False
            return self._rule

    def state_dict(self):
        """Copies of the state: ``{"lr": the learning rate, "step": updates done, name: vector,
        ...}`` with the names of ``torch.optim`` (only ``"lr"`` before the first update)."""
        vectors, step, lr = self._rule.copy_state()
        if vectors is None:
            return {"lr": lr}
        names = registry.OPTIMIZERS[self._kind].state
        return {"lr": lr, "step": step, **dict(zip(names, vectors))}

    def load_state_dict(self, state):
        """Set the state and the learning rate from a `state_dict` of an optimizer of the same
        kind and size (without ``"lr"``, the learning rate is kept)."""
        names = registry.OPTIMIZERS[self._kind].state
        if not isinstance(state, dict):
            raise ValueError(f"a {type(self).__name__} state is a dict, got "
                             f"{type(state).__name__}")
        lr = check_real("lr", state["lr"], low=0) if "lr" in state else None
        state = {k: v for k, v in state.items() if k != "lr"}
        if not state:
            self.reset()
            if lr is not None:
                self.lr = lr
            return
        if set(state) != {"step", *names}:
            raise ValueError(f"a {type(self).__name__} state has 'lr', 'step' and {list(names)}")
        step = check_int("step", state["step"], 0)
        vectors = [np.asarray(state[name]) for name in names]
        if any(v.ndim != 1 or v.shape != vectors[0].shape or v.dtype.kind != "f"
               for v in vectors):
            raise ValueError(f"state vectors must be 1-D float arrays of one length, got "
                             f"{[(v.shape, v.dtype.name) for v in vectors]}")
        with self._binding:
            current = self._rule.states
            if current is None or current[0].shape != vectors[0].shape:
                self._rule.allocate(vectors[0].size, vectors[0].dtype)
                self._network = None
                self._adoptable = True
        self._rule.load_state(vectors, step)
        if lr is not None:
            self.lr = lr

    def __getstate__(self):
        # the compiled rule, the weak reference to the network and the lock do not pickle: keep
        # the settings (the Python attributes) and copies of the state with the lr (a bound
        # schedule pickles with the schedule, see fastnn.schedules)
        settings = {k: v for k, v in self.__dict__.items()
                    if k not in ("_rule", "_network", "_binding", "_schedule")}
        return settings, self.state_dict()

    def __setstate__(self, pickled):
        settings, state = pickled
        # fastnn 0.1 kept the lr among the settings, not in the state
        if "_lr" in settings:
            state = {**state, "lr": settings.pop("_lr")}
        self.__dict__.update(settings)
        self._rule = UpdateRule(registry.OPTIMIZERS[self._kind].code, 0.0)
        self._network = None
        self._adoptable = False
        self._schedule = None
        self._binding = threading.Lock()
        _LIVE.add(self)
        self._sync()
        # adopted by the first network of this size the optimizer updates
        self.load_state_dict(state)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    ``g += weight_decay * w`` (every parameter, biases too), ``buf = momentum * buf + g``
    (``buf = g`` at the first step), then ``w -= lr * (g + momentum * buf)`` with Nesterov or
    ``w -= lr * buf`` without; ``w -= lr * g`` when momentum is 0.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate, finite and >= 0.
    momentum : float, default 0.0
        The momentum factor, finite and >= 0.
    nesterov : bool, default False
        Use Nesterov momentum (needs momentum > 0).
    weight_decay : float, default 0.0
        torch's weight decay, finite and >= 0: added times the parameters to the gradient of
        every parameter. Unlike the network's ``l2`` (on the dense weights only), it is part of
        the optimizer, not of the objective.
    """

    _kind = "sgd"

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        self._momentum, self._nesterov, self._weight_decay = 0.0, False, 0.0
        super().__init__(lr)
        self._check_nesterov(check_real("momentum", momentum, low=0), nesterov)
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay

    @property
    def momentum(self):
        """The momentum factor."""
        return self._momentum

    @momentum.setter
    def momentum(self, value):
        value = check_real("momentum", value, low=0)
        self._check_nesterov(value, self._nesterov)
        self._momentum = value
        self._sync()

    @property
    def nesterov(self):
        """Whether the momentum is Nesterov's."""
        return self._nesterov

    @nesterov.setter
    def nesterov(self, value):
        if not isinstance(value, bool):
            raise TypeError(f"nesterov must be True or False, got {value!r}")
        self._check_nesterov(self._momentum, value)
        self._nesterov = value
        self._sync()

    weight_decay = _weight_decay_property()

    @staticmethod
    def _check_nesterov(momentum, nesterov):
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")

    def _sync(self):
        self._rule.set(momentum=self._momentum, nesterov=self._nesterov,
                       weight_decay=self._weight_decay)

    def __repr__(self):
        return (f"SGD(lr={self.lr!r}, momentum={self._momentum!r}, nesterov={self._nesterov!r}, "
                f"weight_decay={self._weight_decay!r})")


class Adam(Optimizer):
    """Adam with bias correction, as ``torch.optim.Adam``.

    ``m = beta1 m + (1 - beta1) g``, ``v = beta2 v + (1 - beta2) g^2``, then at step t
    ``w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``; with ``eps_hat``,
    ``w -= lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)`` as Keras and
    scikit-learn do (eps is then Kingma and Ba's epsilon-hat, added before the bias correction).

    Parameters
    ----------
    lr : float, default 0.001
        The learning rate, finite and >= 0.
    beta1, beta2 : float, default 0.9, 0.999
        Decay rates of the first and second moment estimates, in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, finite and >= 0.
    eps_hat : bool, default False
        Add eps before the bias correction of the second moment (Keras's and scikit-learn's
        Adam) rather than after it (torch's).
    weight_decay : float, default 0.0
        torch.optim.Adam's weight decay, finite and >= 0: ``g += weight_decay * w`` for every
        parameter before the moments (an L2 term in the gradient; see `AdamW` for the
        decoupled form).
    """

    _kind = "adam"

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, eps_hat=False,
                 weight_decay=0.0):
        self._beta1, self._beta2, self._eps, self._eps_hat = 0.9, 0.999, 1e-8, False
        self._weight_decay = 0.0
        # not super(): AdamW runs this too without being an Adam (see AdamW)
        Optimizer.__init__(self, lr)
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.eps_hat = eps_hat
        self.weight_decay = weight_decay

    weight_decay = _weight_decay_property()

    beta1 = _setting("beta1", "Decay rate of the first moment estimate.", low=0, high=1,
                     high_open=True)
    beta2 = _setting("beta2", "Decay rate of the second moment estimate.", low=0, high=1,
                     high_open=True)
    eps = _setting("eps", "Added to the denominator for numerical stability.", low=0)
    eps_hat = _flag("eps_hat", "Whether eps is added before the bias correction (Keras, "
                               "scikit-learn).")

    def _sync(self):
        self._rule.set(beta1=self._beta1, beta2=self._beta2, eps=self._eps,
                       eps_hat=self._eps_hat, weight_decay=self._weight_decay)

    def __repr__(self):
        return (f"{type(self).__name__}(lr={self.lr!r}, beta1={self._beta1!r}, "
                f"beta2={self._beta2!r}, eps={self._eps!r}, eps_hat={self._eps_hat!r}, "
                f"weight_decay={self._weight_decay!r})")


class AdamW(Optimizer):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    ``w *= 1 - lr * weight_decay`` (every parameter, biases too), then `Adam`'s step on the
    gradient itself.

    Parameters
    ----------
    lr : float, default 0.001
        The learning rate, finite and >= 0.
    beta1, beta2 : float, default 0.9, 0.999
        Decay rates of the first and second moment estimates, in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, finite and >= 0.
    eps_hat : bool, default False
        Add eps before the bias correction (see `Adam`).
    weight_decay : float, default 0.01
        The decoupled decay factor, finite and >= 0.
    """

    _kind = "adamw"

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, eps_hat=False,
                 weight_decay=0.01):
        Adam.__init__(self, lr, beta1, beta2, eps, eps_hat, weight_decay)

    # Adam's settings, shared rather than inherited: an AdamW is not an Adam (its kind and
    # state differ in meaning), and every optimizer is a direct subclass of Optimizer
    beta1, beta2, eps, eps_hat = Adam.beta1, Adam.beta2, Adam.eps, Adam.eps_hat
    weight_decay = Adam.weight_decay
    _sync, __repr__ = Adam._sync, Adam.__repr__


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``.

    ``g += weight_decay * w``; ``square_avg = alpha square_avg + (1 - alpha) g^2``;
    ``avg = sqrt(square_avg - grad_avg^2) + eps`` when centered (``grad_avg`` the moving
    average of g), else ``sqrt(square_avg) + eps``; then ``buf = momentum buf + g / avg``,
    ``w -= lr buf`` with momentum, ``w -= lr g / avg`` without.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate, finite and >= 0.
    alpha : float, default 0.99
        The smoothing constant, in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, finite and >= 0.
    momentum : float, default 0.0
        The momentum factor, finite and >= 0.
    centered : bool, default False
        Normalize by an estimate of the gradient's variance rather than its second moment.
    weight_decay : float, default 0.0
        torch's weight decay, finite and >= 0 (added times the parameters to the gradient).
    """

    _kind = "rmsprop"

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, centered=False,
                 weight_decay=0.0):
        self._alpha, self._eps, self._momentum, self._centered = 0.99, 1e-8, 0.0, False
        self._weight_decay = 0.0
        super().__init__(lr)
        self.alpha = alpha
        self.eps = eps
        self.momentum = momentum
        self.centered = centered
        self.weight_decay = weight_decay

    alpha = _setting("alpha", "The smoothing constant of the moving averages.", low=0, high=1,
                     high_open=True)
    eps = _setting("eps", "Added to the denominator for numerical stability.", low=0)
    momentum = _setting("momentum", "The momentum factor.", low=0)
    centered = _flag("centered", "Whether the gradient is normalized by its estimated variance.")

    weight_decay = _weight_decay_property()

    def _sync(self):
        self._rule.set(momentum=self._momentum, eps=self._eps,
                       weight_decay=self._weight_decay, alpha=self._alpha,
                       centered=self._centered)

    def __repr__(self):
        return (f"RMSprop(lr={self.lr!r}, alpha={self._alpha!r}, eps={self._eps!r}, "
                f"momentum={self._momentum!r}, centered={self._centered!r}, "
                f"weight_decay={self._weight_decay!r})")
