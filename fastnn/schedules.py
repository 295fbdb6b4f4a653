"""Learning-rate schedules, with the semantics of ``torch.optim.lr_scheduler``.

A schedule drives the learning rate of one optimizer. It is bound to it by `Schedule.bind` (or by
`fastnn.MLP.fit` at its first use): the optimizer's lr at that moment is the schedule's base rate,
and the optimizer's lr becomes the schedule's first, as constructing a torch scheduler does. Each
`Schedule.step` then sets the optimizer's lr, as ``scheduler.step()`` does; ``optimizer.lr`` and
``optimizer.state_dict()`` show it. The new rate comes from the current one by torch's own
recurrences, so an lr changed by hand between two steps carries on, as in torch.

A schedule's ``interval`` says when `fit` steps it: ``"epoch"``, once after each epoch (where a
torch loop calls ``scheduler.step()`` after each epoch), or ``"step"``, after each batch (after
``optimizer.step()``), inside the compiled epoch with no Python per batch. In a loop of
`fastnn.MLP.train_step` calls, call ``schedule.step()`` yourself, as in torch::

    schedule = StepLR(step_size=30, gamma=0.1).bind(optimizer)
    for epoch in range(100):
        for X, Y in batches:
            net.train_step(X, Y, optimizer)
        schedule.step()

`StepLR`, `ExponentialLR` and `WarmupCosine` are compiled (``fastnn/_schedules.pxd``): their state
lives in the optimizer's compiled rule, which holds one such schedule at a time (binding another
replaces it, and the one replaced refuses to step). `ReduceLROnPlateau` watches a loss, once per
epoch, in Python. ``state_dict()`` and ``load_state_dict()`` save and restore a schedule as
torch's do; the optimizer's lr is the optimizer's state (``optimizer.state_dict()``). To resume:
bind the schedule to the optimizer, then load the optimizer's and the schedule's states.
"""
import math
import numbers
import weakref

from fastnn import registry
from fastnn._validation import check_choice, check_int, check_real
from fastnn.optimizers import Optimizer

__all__ = ["Schedule", "StepLR", "ExponentialLR", "WarmupCosine", "ReduceLROnPlateau"]

INTERVALS = ("epoch", "step")


def check_schedule(schedule, optimizer):
    """``schedule`` checked, and bound to ``optimizer`` if it is not bound yet (as `fit` does).

    Raises
    ------
    TypeError
        If ``schedule`` is not a fastnn schedule.
    ValueError
        If it is bound to another optimizer, or was replaced on this one by another schedule.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a fastnn schedule (fastnn.schedules.StepLR, "
                        f"ExponentialLR, WarmupCosine, ReduceLROnPlateau), got "
                        f"{type(schedule).__name__}")
    if schedule.optimizer is None:
        return schedule.bind(optimizer)
    if schedule.optimizer is not optimizer:
        raise ValueError("this schedule drives another optimizer's learning rate; create one "
                         "schedule per optimizer")
    schedule._check_current()
    return schedule


class Schedule:
    """Base class of the schedules; use `StepLR`, `ExponentialLR`, `WarmupCosine` or
    `ReduceLROnPlateau`.

    A subclass names its kind in `fastnn.registry.SCHEDULES` (``_kind``) and its hyperparameters
    in ``_parameters``: for a compiled kind, the keywords of ``UpdateRule.bind_schedule``, its
    state then kept in the optimizer's compiled rule. A kind run in Python overrides `bind`,
    `step`, the state and ``_check_current`` (see `ReduceLROnPlateau`).

    Parameters
    ----------
    interval : {"epoch", "step"}
        When `fit` steps it: after each epoch, or after each batch.
    """

    _kind = None
    _parameters = ()

    def __init__(self, interval):
        self.interval = check_choice("interval", interval, INTERVALS)
        self._optimizer = None

    @property
    def optimizer(self):
        """The optimizer whose learning rate it drives (None before `bind`)."""
        return self._optimizer

    def bind(self, optimizer):
        """Drive ``optimizer``'s learning rate from now on, starting afresh (as constructing the
        torch scheduler): the base rate is ``optimizer.lr``, no step is taken, and
        ``optimizer.lr`` becomes the schedule's first rate.

        Parameters
        ----------
        optimizer : fastnn.Optimizer

        Returns
        -------
        Schedule
            This schedule.
        """
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"a schedule is bound to a fastnn optimizer, got "
                            f"{type(optimizer).__name__}")
        self._optimizer = optimizer
        optimizer._rule.bind_schedule(registry.SCHEDULES[self._kind].code,
                                      **self._compiled_parameters())
        optimizer._schedule = weakref.ref(self)
        return self

    def _compiled_parameters(self):
        return {name: getattr(self, name) for name in self._parameters}

    def _check_current(self):
        """The bound optimizer's compiled rule, if this schedule is still the one bound to it."""
        if self._optimizer is None:
            raise ValueError("the schedule is not bound to an optimizer: call "
                             "schedule.bind(optimizer) first, or give it to fit")
        owner = self._optimizer._schedule
        if owner is None or owner() is not self:
            raise ValueError("another schedule was bound to this schedule's optimizer since; "
                             "bind this one again to use it")
        return self._optimizer._rule

    @property
    def last_epoch(self):
        """The steps taken since it was bound (torch's ``last_epoch``)."""
        return self._check_current().schedule_state()[1]

    @property
    def last_lr(self):
        """The learning rate its last step (or its binding) set (torch's ``get_last_lr()[0]``)."""
        return self._check_current().schedule_state()[3]

    def step(self):
        """One step (torch's ``scheduler.step()``): sets and returns the optimizer's new lr."""
        return self._check_current().step_schedule()

    def _epoch_end(self, loss, val_loss):
        """The step `fit` takes after each epoch of an epoch-interval schedule."""
        self.step()

    def _settings(self):
        """The hyperparameters and interval, as a state_dict holds them."""
        return {"name": type(self).__name__, "interval": self.interval,
                **{name: getattr(self, name) for name in self._parameters}}

    def state_dict(self):
        """The schedule's settings and state: its name, interval and hyperparameters, and
        ``last_epoch``, ``base_lr``, ``last_lr``."""
        _, last_epoch, base_lr, last_lr = self._check_current().schedule_state()
        return {**self._settings(), "last_epoch": last_epoch, "base_lr": base_lr,
                "last_lr": last_lr}

    def load_state_dict(self, state):
        """Continue from a `state_dict` of a schedule with the same settings, bound to the same
        optimizer (the optimizer's lr is left as it is: restore it with its own state_dict).

        Raises
        ------
        ValueError
            If the schedule is not bound, or ``state`` is of other settings or malformed.
        """
        rule = self._check_current()
        values = self._check_state(state, ("last_epoch", "base_lr", "last_lr"))
        last_epoch = check_int("last_epoch", values["last_epoch"], 0)
        base_lr = check_real("base_lr", values["base_lr"], low=0)
        last_lr = check_real("last_lr", values["last_lr"], low=0)
        rule.bind_schedule(registry.SCHEDULES[self._kind].code, **self._compiled_parameters(),
                           state=(last_epoch, base_lr, last_lr))

    def _check_state(self, state, names):
        """``state`` if it is a dict of this schedule's settings and of the entries ``names``."""
        settings = self._settings()
        if not isinstance(state, dict) or set(state) != {*settings, *names}:
            raise ValueError(f"a {type(self).__name__} state_dict has the entries "
                             f"{sorted({*settings, *names})}")
        differing = sorted(k for k, v in settings.items() if state[k] != v)
        if differing:
            raise ValueError(f"the state_dict is of a schedule with other settings: "
                             f"{', '.join(f'{k}={state[k]!r}' for k in differing)}")
        return state

    def __getstate__(self):
        # the schedule's state lives in its optimizer's compiled rule: pickle it with the
        # optimizer (pickled beside it, or within it), and bind it again when unpickled
        settings = {k: v for k, v in self.__dict__.items() if k != "_optimizer"}
        try:
            self._check_current()
        except ValueError:
            return settings, None, None
        return settings, self._optimizer, self.state_dict()

    def __setstate__(self, pickled):
        settings, optimizer, state = pickled
        self.__dict__.update(settings)
        self._optimizer = None
        if optimizer is not None:
            self._restore(optimizer, state)

    def _restore(self, optimizer, state):
        """Bind to ``optimizer`` in ``state`` (its lr left as it is), when unpickled."""
        self._optimizer = optimizer
        optimizer._schedule = weakref.ref(self)
        self.load_state_dict(state)

    def __repr__(self):
        arguments = ", ".join(f"{name}={getattr(self, name)!r}"
                              for name in (*self._parameters, "interval"))
        return f"{type(self).__name__}({arguments})"


class StepLR(Schedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps, as
    ``torch.optim.lr_scheduler.StepLR(optimizer, step_size, gamma)``.

    After t steps the rate is ``base_lr * gamma ** (t // step_size)`` (computed as torch does,
    by one multiplication at each multiple of step_size).

    Parameters
    ----------
    step_size : int
        Steps (epochs, or batches with ``interval="step"``) between two decays, >= 1.
    gamma : float, default 0.1
        The factor, in (0, 1] (torch also takes factors > 1; a rate that grows without bound is
        refused here).
    interval : {"epoch", "step"}, default "epoch"
        When `fit` steps it: after each epoch, or after each batch.
    """

    _kind = "step"
    _parameters = ("step_size", "gamma")

    def __init__(self, step_size, gamma=0.1, interval="epoch"):
        super().__init__(interval)
        self.step_size = check_int("step_size", step_size, 1)
        self.gamma = _factor(gamma)


class ExponentialLR(Schedule):
    """Multiply the learning rate by ``gamma`` at every step, as
    ``torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)``.

    Parameters
    ----------
    gamma : float
        The factor, in (0, 1].
    interval : {"epoch", "step"}, default "epoch"
        When `fit` steps it: after each epoch, or after each batch.
    """

    _kind = "exponential"
    _parameters = ("gamma",)

    def __init__(self, gamma, interval="epoch"):
        super().__init__(interval)
        self.gamma = _factor(gamma)


class WarmupCosine(Schedule):
    """Cosine annealing after a linear warm-up, as torch's::

        SequentialLR(optimizer, [LinearLR(optimizer, start_factor, end_factor=1.0,
                                          total_iters=warmup),
                                 CosineAnnealingLR(optimizer, T_max, eta_min)],
                     milestones=[warmup])

    and, with ``warmup=0``, as ``CosineAnnealingLR(optimizer, T_max, eta_min)`` alone.

    Step by step, with torch's quirks: at step t < warmup the rate is LinearLR's,
    ``base_lr * (start_factor + (1 - start_factor) t / warmup)`` (by its recurrence), so the
    warm-up never reaches base_lr itself; at t = warmup the cosine starts by its closed form at
    its epoch 0, ``eta_min + (base_lr - eta_min)``; after, CosineAnnealingLR's recurrence at its
    epoch e = t - warmup, which follows ``eta_min + (base_lr - eta_min) (1 + cos(pi e / T_max))
    / 2``: T_max counts the steps after the warm-up, the rate is eta_min at e = T_max and, as in
    torch, rises again after it (a period of 2 T_max).

    Parameters
    ----------
    T_max : int
        The cosine's half period in steps after the warm-up, >= 1.
    warmup : int, default 0
        Steps of linear warm-up, >= 0.
    start_factor : float, default 1/3
        The warm-up's first rate as a fraction of base_lr, in (0, 1] (LinearLR's default).
    eta_min : float, default 0.0
        The least rate, >= 0.
    interval : {"epoch", "step"}, default "epoch"
        When `fit` steps it: after each epoch, or after each batch.
    """

    _kind = "warmup_cosine"
    _parameters = ("T_max", "warmup", "start_factor", "eta_min")

    def __init__(self, T_max, warmup=0, start_factor=1.0 / 3, eta_min=0.0, interval="epoch"):
        super().__init__(interval)
        self.T_max = check_int("T_max", T_max, 1)
        self.warmup = check_int("warmup", warmup, 0)
        self.start_factor = check_real("start_factor", start_factor, low=0, high=1)
        if self.start_factor == 0:
            raise ValueError("start_factor must be > 0, got 0.0")
        self.eta_min = check_real("eta_min", eta_min, low=0)


class ReduceLROnPlateau(Schedule):
    """Multiply the learning rate by ``factor`` when a loss stops improving, as
    ``torch.optim.lr_scheduler.ReduceLROnPlateau``.

    `fit` steps it after each epoch with the validation loss, or with the training loss when it
    has no validation data. An epoch improves on the best loss so far when its loss is below
    ``best * (1 - threshold)`` (``threshold_mode="rel"``) or ``best - threshold`` ("abs"); above
    ``best * (1 + threshold)`` or ``best + threshold`` in ``mode="max"``. After more than
    ``patience`` epochs without improvement, the rate becomes ``max(lr * factor, min_lr)`` (if
    that lowers it by more than eps), and ``cooldown`` epochs pass before epochs count again.
    Its rate does not change when bound.

    Parameters
    ----------
    mode : {"min", "max"}, default "min"
    factor : float, default 0.1
        In [0, 1).
    patience : int, default 10
        Epochs without improvement tolerated, >= 0.
    threshold : float, default 1e-4
        >= 0.
    threshold_mode : {"rel", "abs"}, default "rel"
    cooldown : int, default 0
        >= 0.
    min_lr : float, default 0.0
        >= 0.
    eps : float, default 1e-8
        The least change of the rate that is made, >= 0.
    """

    _kind = "plateau"
    _parameters = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown",
                   "min_lr", "eps")
    _state = ("last_epoch", "best", "num_bad_epochs", "cooldown_counter", "last_lr")

    def __init__(self, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        super().__init__("epoch")
        self.mode = check_choice("mode", mode, ("min", "max"))
        self.factor = check_real("factor", factor, low=0, high=1, high_open=True)
        self.patience = check_int("patience", patience, 0)
        self.threshold = check_real("threshold", threshold, low=0)
        self.threshold_mode = check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.cooldown = check_int("cooldown", cooldown, 0)
        self.min_lr = check_real("min_lr", min_lr, low=0)
        self.eps = check_real("eps", eps, low=0)
        self._bound_state = None

    def bind(self, optimizer):
        """Watch a loss for ``optimizer`` from now on, starting afresh (no best loss yet); its
        learning rate is left as it is.

        Parameters
        ----------
        optimizer : fastnn.Optimizer

        Returns
        -------
        ReduceLROnPlateau
            This schedule.
        """
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"a schedule is bound to a fastnn optimizer, got "
                            f"{type(optimizer).__name__}")
        self._optimizer = optimizer
        self._bound_state = {"last_epoch": 0, "best": self._worst(), "num_bad_epochs": 0,
                             "cooldown_counter": 0, "last_lr": optimizer.lr}
        return self

    def _worst(self):
        return math.inf if self.mode == "min" else -math.inf

    def _check_current(self):
        if self._optimizer is None:
            raise ValueError("the schedule is not bound to an optimizer: call "
                             "schedule.bind(optimizer) first, or give it to fit")
        return self._bound_state

    @property
    def last_epoch(self):
        """The steps taken since it was bound."""
        return self._check_current()["last_epoch"]

    @property
    def last_lr(self):
        """The optimizer's learning rate after the last step (or at binding)."""
        return self._check_current()["last_lr"]

    @property
    def best(self):
        """The best loss seen so far (inf, or -inf in mode "max", before the first step)."""
        return self._check_current()["best"]

    def _is_better(self, current, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return current < best * (1.0 - self.threshold)
        if self.mode == "min":
            return current < best - self.threshold
        if self.threshold_mode == "rel":
            return current > best * (self.threshold + 1.0)
        return current > best + self.threshold

    def step(self, metric):
        """One step with this epoch's loss (torch's ``scheduler.step(metric)``): may lower the
        optimizer's lr, and returns it.

        Parameters
        ----------
        metric : float
            The watched loss (a NaN never improves).
        """
        if isinstance(metric, bool) or not isinstance(metric, numbers.Real):
            raise TypeError(f"metric must be a real number, got {metric!r}")
        current = float(metric)
        state = self._check_current()
        state["last_epoch"] += 1
        if self._is_better(current, state["best"]):
            state["best"] = current
            state["num_bad_epochs"] = 0
        else:
            state["num_bad_epochs"] += 1
        if state["cooldown_counter"] > 0:
            state["cooldown_counter"] -= 1
            state["num_bad_epochs"] = 0
        if state["num_bad_epochs"] > self.patience:
            old_lr = self._optimizer.lr
            new_lr = max(old_lr * self.factor, self.min_lr)
            if old_lr - new_lr > self.eps:
                self._optimizer.lr = new_lr
            state["cooldown_counter"] = self.cooldown
            state["num_bad_epochs"] = 0
        state["last_lr"] = self._optimizer.lr
        return state["last_lr"]

    def _epoch_end(self, loss, val_loss):
        self.step(loss if val_loss is None else val_loss)

    def state_dict(self):
        """The schedule's settings and state: its name, interval and hyperparameters, and
        ``last_epoch``, ``best``, ``num_bad_epochs``, ``cooldown_counter``, ``last_lr``."""
        return {**self._settings(), **self._check_current()}

    def load_state_dict(self, state):
        """Continue from a `state_dict` of a schedule with the same settings (see
        `Schedule.load_state_dict`)."""
        self._check_current()
        values = self._check_state(state, self._state)
        best = values["best"]
        if isinstance(best, bool) or not isinstance(best, numbers.Real):
            raise TypeError(f"best must be a real number, got {best!r}")
        self._bound_state = {
            "last_epoch": check_int("last_epoch", values["last_epoch"], 0),
            "best": float(best),
            "num_bad_epochs": check_int("num_bad_epochs", values["num_bad_epochs"], 0),
            "cooldown_counter": check_int("cooldown_counter", values["cooldown_counter"], 0),
            "last_lr": check_real("last_lr", values["last_lr"], low=0)}

    def _restore(self, optimizer, state):
        self._optimizer = optimizer
        self.load_state_dict(state)

    def __repr__(self):
        arguments = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._parameters)
        return f"ReduceLROnPlateau({arguments})"


def _factor(gamma):
    """``gamma`` checked as a decay factor in (0, 1]."""
    gamma = check_real("gamma", gamma, low=0, high=1)
    if gamma == 0:
        raise ValueError("gamma must be > 0, got 0.0")
    return gamma
