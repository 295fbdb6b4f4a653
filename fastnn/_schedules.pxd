# Design: learning-rate schedules as torch.optim.lr_scheduler computes them. A schedule's state is
# a Schedule (fastnn/_plan.pxd) inside the optimizer's Rule, so that the compiled epoch
# (fastnn/_passes.pxd) can step a per-batch schedule after every batch without Python, and Python
# (fastnn/schedules.py, through fastnn/_rules.pyx) steps the others between epochs: both run the
# two functions below, the only implementation. Each new lr comes from the current one by torch's
# own chainable recurrences (get_lr), not by closed forms, operation for operation and in the
# same order, so that the sequence of learning rates is torch's to the last bit; like torch's,
# the recurrences go on from an lr the user changed between two steps. Nothing here holds the GIL.
from libc.math cimport cos, pi

from fastnn._plan cimport EXPONENTIAL_LR, STEP_LR, WARMUP_COSINE, Schedule


cdef inline double schedule_start(Schedule* s, double lr) noexcept nogil:
    """Bind the schedule s to a rule whose lr is `lr`: base_lr = lr, no step taken; returns the
    lr of step 0 (what torch's scheduler constructor sets)."""
    s.base_lr = lr
    s.last_epoch = 0
    if s.kind == WARMUP_COSINE and s.warmup > 0:
        # SequentialLR starts LinearLR alone, at its epoch 0
        lr = lr * s.start_factor
    s.last_lr = lr
    return lr


cdef inline double cosine_closed_form(Schedule* s, long long e) noexcept nogil:
    """CosineAnnealingLR's lr at its epoch e by its closed form (_get_closed_form_lr)."""
    return s.eta_min + (s.base_lr - s.eta_min) * (1 + cos(pi * e / s.T_max)) / 2


cdef inline double cosine_step(Schedule* s, double lr, long long e) noexcept nogil:
    """CosineAnnealingLR's recurrence from the lr of its epoch e - 1 to that of e >= 1."""
    cdef long long T = s.T_max
    if (e - 1 - T) % (2 * T) == 0:
        # at the bottom of the cosine the ratio below would divide by 1 + cos(pi) = 0
        return lr + (s.base_lr - s.eta_min) * (1 - cos(pi / T)) / 2
    return (1 + cos(pi * e / T)) / (1 + cos(pi * (e - 1) / T)) * (lr - s.eta_min) + s.eta_min


cdef inline double schedule_step(Schedule* s, double lr) noexcept nogil:
    """One step of the schedule s (torch's scheduler.step()) from the current lr; returns the new
    lr, also kept in s.last_lr. The kind is one of ScheduleKind but NO_SCHEDULE (the caller
    checks); its parameters were checked when it was made (step_size, T_max >= 1)."""
    cdef long long t
    s.last_epoch += 1
    t = s.last_epoch
    if s.kind == STEP_LR:
        if t % s.step_size == 0:
            lr = lr * s.gamma
    elif s.kind == EXPONENTIAL_LR:
        lr = lr * s.gamma
    elif s.kind == WARMUP_COSINE:
        if t < s.warmup:
            # LinearLR's recurrence at its epoch t, with end_factor 1 and total_iters = warmup
            lr = lr * (1.0 + (1.0 - s.start_factor)
                       / (s.warmup * s.start_factor + (t - 1) * (1.0 - s.start_factor)))
        elif t == s.warmup:
            # SequentialLR enters CosineAnnealingLR at the milestone by its closed form at epoch
            # 0: base_lr, up to the rounding of eta_min + (base_lr - eta_min)
            lr = cosine_closed_form(s, 0)
        else:
            lr = cosine_step(s, lr, t - s.warmup)
    s.last_lr = lr
    return lr
