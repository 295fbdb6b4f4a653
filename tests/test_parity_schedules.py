"""Gradient-norm clipping and learning-rate schedules equal PyTorch's.

Every schedule's learning rates equal ``torch.optim.lr_scheduler``'s step for step (to the last
bits: both run torch's recurrences); ReduceLROnPlateau takes torch's decisions. Training
trajectories by `train_step` (a torch loop's ``clip_grad_norm_``, ``optimizer.step()``,
``scheduler.step()``) and by `fit` (a per-batch schedule stepped inside the compiled epoch, or an
epoch schedule stepped after each epoch) follow torch.optim with the scheduler and clipping to
~1e-12 in float64, for SGD (plain and momentum), Adam, AdamW and RMSprop, and to ~1e-5 in float32.
The clipping kernel equals its NumPy reference, also where a sum of squares overflows or the
gradient is not finite; a step whose clipped gradient is not finite is refused. The schedule's
state survives save/restore, pickling, a second fit, a diverged epoch and Ctrl-C consistently.
"""
import json
import math
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastnn
from fastnn import _kernels, registry
from fastnn.schedules import ExponentialLR, ReduceLROnPlateau, Schedule, StepLR, WarmupCosine
from fastnn.training import run_epoch

from helpers import DTYPES, TOL, batches, make_targets
from test_torch_parity import FLOAT64_TOL, assert_matches, torch_flat, torch_objective, torch_twin

lr_scheduler = torch.optim.lr_scheduler
# the folder of the fastnn the tests import (installed or built in place), for subprocesses
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
# fastnn and torch run the same recurrences in double; a build that fuses multiply-adds (with
# FASTNN_MARCH_NATIVE) may differ in the last bit
LR_TOL = 1e-14


def torch_warmup_cosine(schedule, optimizer):
    """WarmupCosine's torch equivalent, as its documentation writes it."""
    if schedule.warmup == 0:
        return lr_scheduler.CosineAnnealingLR(optimizer, schedule.T_max, schedule.eta_min)
    linear = lr_scheduler.LinearLR(optimizer, schedule.start_factor, 1.0,
                                   total_iters=schedule.warmup)
    cosine = lr_scheduler.CosineAnnealingLR(optimizer, schedule.T_max, schedule.eta_min)
    return lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[schedule.warmup])


# The torch scheduler of each registered schedule, made from a fastnn schedule and an optimizer.
TORCH_SCHEDULES = {
    "step": lambda s, o: lr_scheduler.StepLR(o, s.step_size, s.gamma),
    "exponential": lambda s, o: lr_scheduler.ExponentialLR(o, s.gamma),
    "warmup_cosine": torch_warmup_cosine,
    "plateau": lambda s, o: lr_scheduler.ReduceLROnPlateau(
        o, s.mode, s.factor, s.patience, s.threshold, s.threshold_mode, s.cooldown, s.min_lr,
        s.eps),
}


def twin_scheduler(schedule, optimizer):
    return TORCH_SCHEDULES[schedule._kind](schedule, optimizer)


def torch_lr(optimizer):
    return optimizer.param_groups[0]["lr"]


def test_every_registered_schedule_has_a_torch_twin_and_a_class():
    assert set(TORCH_SCHEDULES) == set(registry.SCHEDULES)
    assert {cls._kind for cls in Schedule.__subclasses__()} == set(registry.SCHEDULES)
    for name, info in registry.SCHEDULES.items():
        assert info.torch.split("(")[0] in dir(lr_scheduler), name


# ---- learning rates, step by step -----------------------------------------------------------

SCHEDULE_CASES = {
    "step": lambda interval: StepLR(7, gamma=0.5, interval=interval),
    "step_every": lambda interval: StepLR(1, gamma=0.8, interval=interval),
    "exponential": lambda interval: ExponentialLR(0.93, interval=interval),
    "cosine": lambda interval: WarmupCosine(12, interval=interval),
    "cosine_eta_min": lambda interval: WarmupCosine(9, eta_min=0.013, interval=interval),
    # 50 steps run through the cosine's bottom twice and up again (torch's period 2 T_max)
    "warmup_cosine": lambda interval: WarmupCosine(11, warmup=5, start_factor=0.1, eta_min=1e-3,
                                                   interval=interval),
    "warmup_one": lambda interval: WarmupCosine(20, warmup=1, interval=interval),
    "warmup_default_factor": lambda interval: WarmupCosine(30, warmup=8, interval=interval),
}


@pytest.mark.parametrize("interval", ["epoch", "step"])
@pytest.mark.parametrize("case", list(SCHEDULE_CASES))
def test_schedule_learning_rates_equal_torch_scheduler(case, interval):
    schedule = SCHEDULE_CASES[case](interval)
    optimizer = fastnn.SGD(lr=0.37, momentum=0.9)
    parameter = torch.zeros(1, requires_grad=True)
    torch_optimizer = torch.optim.SGD([parameter], lr=0.37, momentum=0.9)
    twin = twin_scheduler(schedule, torch_optimizer)
    schedule.bind(optimizer)
    fastnn_lrs, torch_lrs = [optimizer.lr], [torch_lr(torch_optimizer)]
    for _ in range(50):
        torch_optimizer.step()              # a step without gradients: torch's order of calls
        twin.step()
        assert schedule.step() == optimizer.lr
        fastnn_lrs.append(optimizer.lr)
        torch_lrs.append(torch_lr(torch_optimizer))
        assert schedule.last_lr == pytest.approx(twin.get_last_lr()[0], rel=LR_TOL, abs=0)
    np.testing.assert_allclose(fastnn_lrs, torch_lrs, rtol=LR_TOL, atol=0)
    assert schedule.last_epoch == twin.last_epoch == 50
    assert optimizer.state_dict()["lr"] == optimizer.lr


def test_warmup_cosine_equals_sequential_lr_with_its_quirks():
    """The warm-up stops short of base_lr, the cosine enters at base_lr by its closed form, T_max
    counts from the milestone, and the rate rises again after the cosine's bottom."""
    schedule = WarmupCosine(6, warmup=4, start_factor=0.5, eta_min=0.01)
    optimizer = fastnn.Adam(lr=0.2)
    parameter = torch.zeros(1, requires_grad=True)
    torch_optimizer = torch.optim.Adam([parameter], lr=0.2)
    twin = torch_warmup_cosine(schedule, torch_optimizer)
    schedule.bind(optimizer)
    lrs = [optimizer.lr]
    for _ in range(20):
        torch_optimizer.step()
        twin.step()
        schedule.step()
        assert optimizer.lr == pytest.approx(torch_lr(torch_optimizer), rel=LR_TOL, abs=0)
        lrs.append(optimizer.lr)
    assert lrs[0] == pytest.approx(0.1) and max(lrs[:4]) < 0.2
    assert lrs[4] == pytest.approx(0.2, rel=1e-15)                 # the milestone
    assert lrs[4 + 6] == pytest.approx(0.01, rel=1e-12)            # the cosine's bottom
    assert lrs[4 + 12] == pytest.approx(0.2, rel=1e-12)            # and its top again


def test_schedule_goes_on_from_an_lr_changed_by_hand_as_torch_recurrences_do():
    schedule = WarmupCosine(10, warmup=3, eta_min=0.001)
    optimizer = fastnn.SGD(lr=0.5)
    parameter = torch.zeros(1, requires_grad=True)
    torch_optimizer = torch.optim.SGD([parameter], lr=0.5)
    twin = twin_scheduler(schedule, torch_optimizer)
    schedule.bind(optimizer)
    for step in range(15):
        if step in (2, 7):
            optimizer.lr = torch_optimizer.param_groups[0]["lr"] = 0.05 * (step + 1)
        torch_optimizer.step()
        twin.step()
        schedule.step()
        assert optimizer.lr == pytest.approx(torch_lr(torch_optimizer), rel=LR_TOL, abs=0)


PLATEAU_CASES = [
    dict(),
    dict(patience=0, factor=0.5),
    dict(patience=2, factor=0.3, cooldown=2, threshold=0.05),
    dict(patience=1, factor=0.5, threshold=0.02, threshold_mode="abs", min_lr=0.04),
    dict(mode="max", patience=1, factor=0.2, threshold=0.01),
    dict(mode="max", patience=0, threshold=0.1, threshold_mode="abs", cooldown=1, eps=0.01),
]


@pytest.mark.parametrize("settings", PLATEAU_CASES, ids=range(len(PLATEAU_CASES)))
def test_reduce_lr_on_plateau_takes_torchs_decisions(settings):
    rng = np.random.default_rng(7)
    # losses that improve, stall, jump and fall: plateaus long and short
    metrics = np.concatenate([np.linspace(2, 1, 8), np.full(5, 1.0), rng.uniform(0.9, 1.2, 20),
                              np.linspace(0.9, 0.5, 6), [math.nan, 0.5, 0.4]])
    schedule = ReduceLROnPlateau(**settings)
    optimizer = fastnn.RMSprop(lr=0.8)
    parameter = torch.zeros(1, requires_grad=True)
    torch_optimizer = torch.optim.RMSprop([parameter], lr=0.8)
    twin = twin_scheduler(schedule, torch_optimizer)
    schedule.bind(optimizer)
    reductions = 0
    for metric in metrics:
        before = optimizer.lr
        twin.step(metric)
        assert schedule.step(float(metric)) == optimizer.lr == torch_lr(torch_optimizer)
        reductions += optimizer.lr < before
        state = schedule.state_dict()
        assert (state["best"], state["num_bad_epochs"], state["cooldown_counter"]) == (
            twin.best, twin.num_bad_epochs, twin.cooldown_counter)
    assert reductions >= 1
    assert schedule.last_lr == twin.get_last_lr()[0]


# ---- the clipping kernel --------------------------------------------------------------------

def reference_clip(G, max_norm):
    """torch's clip_grad_norm_ in NumPy (the norm scaled by the largest entry, which never
    overflows for finite entries): the clipped copy and the norm before."""
    G = np.asarray(G, dtype=np.float64)
    scale = np.abs(G).max()
    norm = scale * np.sqrt(np.sum((G / scale) ** 2)) if scale > 0 else 0.0
    coef = max_norm / (norm + 1e-6)
    return G * min(coef, 1.0), norm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ratio", [0.2, 0.999, 1.0, 3.0], ids=["clips", "barely", "at", "no"])
def test_clip_kernel_equals_numpy_reference(dtype, ratio):
    G = np.random.default_rng(3).normal(scale=2.0, size=101).astype(dtype)
    original = G.copy()
    max_norm = ratio * np.linalg.norm(original.astype(np.float64))
    expected, norm = reference_clip(original, max_norm)
    assert _kernels.clip_grad_norm(G, max_norm) == pytest.approx(norm, rel=TOL[dtype]["rtol"])
    np.testing.assert_allclose(G, expected, **TOL[dtype])
    if ratio > 1:
        # a factor >= 1 leaves the gradient exactly as it was
        np.testing.assert_array_equal(G, original)


def test_clip_kernel_equals_torch_clip_grad_norm():
    rng = np.random.default_rng(4)
    parts = [rng.normal(size=shape) for shape in ((4, 12), (12,), (12, 7), (7,))]
    tensors = [torch.zeros(p.shape, dtype=torch.float64, requires_grad=True) for p in parts]
    for tensor, part in zip(tensors, parts):
        tensor.grad = torch.from_numpy(part.copy())
    flat = np.concatenate([p.ravel() for p in parts])
    total = torch.nn.utils.clip_grad_norm_(tensors, 1.5)
    norm = _kernels.clip_grad_norm(flat, 1.5)
    assert norm == pytest.approx(total.item(), rel=1e-15)
    assert_matches(flat, np.concatenate([t.grad.numpy().ravel() for t in tensors]), 1e-15)


def test_clip_kernel_scales_a_sum_of_squares_that_overflows():
    rng = np.random.default_rng(5)
    G = rng.normal(size=50) * 1e200                  # squares overflow a double
    expected, norm = reference_clip(G, 1.0)
    assert math.isfinite(norm)
    assert _kernels.clip_grad_norm(G, 1.0) == pytest.approx(norm, rel=1e-14)
    np.testing.assert_allclose(G, expected, rtol=1e-14)
    assert np.linalg.norm(G) == pytest.approx(1.0, rel=1e-6)


def test_clip_kernel_with_a_nonfinite_gradient_behaves_as_torch():
    """A NaN norm makes the whole gradient NaN (torch's clamp keeps the NaN); an infinite one
    gives coef 0: the infinite entries become NaN, the others 0."""
    for value, zeros in ((math.nan, False), (math.inf, True)):
        G = np.array([1.0, -2.0, value, 3.0])
        grads = torch.from_numpy(G.copy())
        tensor = torch.zeros(4, dtype=torch.float64, requires_grad=True)
        tensor.grad = grads
        total = torch.nn.utils.clip_grad_norm_([tensor], 1.0).item()
        norm = _kernels.clip_grad_norm(G, 1.0)
        assert (math.isnan(norm) and math.isnan(total)) or norm == total == math.inf
        np.testing.assert_array_equal(G, tensor.grad.numpy())
        assert np.isnan(G[2]) and (np.all(G[[0, 1, 3]] == 0) if zeros else np.isnan(G).all())


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_a_step_whose_clipped_gradient_is_not_finite_is_refused_and_changes_nothing(kind):
    """J is finite (summed in double) but the float32 gradient overflows: its norm is infinite,
    the clipped gradient holds NaNs, and the step is refused with the network intact."""
    net = fastnn.MLP([3, 4, 2], activation="identity", dtype="float32", seed=0)
    X = np.full((4, 3), 1e10, dtype=np.float32)
    Y = np.zeros((4, 2), dtype=np.float32)
    net.params[:] = 1e9
    optimizer = fastnn.SGD(lr=0.1) if kind == "sgd" else fastnn.Adam()
    params = net.params.copy()
    with pytest.raises(FloatingPointError, match="left as they were"):
        net.train_step(X, Y, optimizer, clip_grad_norm=1.0)
    np.testing.assert_array_equal(net.params, params)
    assert optimizer.steps == 0
    schedule = ExponentialLR(0.5, interval="step")
    with pytest.raises(FloatingPointError, match="restored"):
        net.train_epoch(net.check_data(X, Y), optimizer, 2, clip_grad_norm=1.0,
                        schedule=schedule)
    np.testing.assert_array_equal(net.params, params)
    assert optimizer.steps == 0 and schedule.last_epoch == 0
    assert optimizer.lr == schedule.last_lr == (0.1 if kind == "sgd" else 0.001)


# ---- trajectories against torch.optim with a scheduler and clip_grad_norm_ ------------------

# name: (fastnn optimizer, torch optimizer, a per-batch schedule)
TRAJECTORY_OPTIMIZERS = {
    "sgd": (lambda: fastnn.SGD(lr=0.2), lambda p: torch.optim.SGD(p, lr=0.2),
            lambda: StepLR(4, gamma=0.5, interval="step")),
    "momentum": (lambda: fastnn.SGD(lr=0.1, momentum=0.9),
                 lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
                 lambda: StepLR(3, gamma=0.5, interval="step")),
    "adam": (lambda: fastnn.Adam(lr=0.02), lambda p: torch.optim.Adam(p, lr=0.02),
             lambda: WarmupCosine(12, warmup=4, start_factor=0.25, eta_min=1e-3,
                                  interval="step")),
    "adamw": (lambda: fastnn.AdamW(lr=0.02, weight_decay=0.1),
              lambda p: torch.optim.AdamW(p, lr=0.02, weight_decay=0.1),
              lambda: ExponentialLR(0.9, interval="step")),
    "rmsprop": (lambda: fastnn.RMSprop(lr=0.01, momentum=0.5, centered=True),
                lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
                lambda: WarmupCosine(7, interval="step")),
}
# a norm below the gradients' (~0.5 to 3 here): most steps are clipped
MAX_NORM = 0.3


def setup(kind, seed, dtype="float64", rows=23):
    """A network, 23 rows (batches of 5 leave a last batch of 3), the optimizers, schedules
    and the torch twin (float64)."""
    rng = np.random.default_rng(seed)
    net = fastnn.MLP([4, 12, 7, 3], activation="tanh", output_activation="softmax",
                     loss="cross_entropy", l2=1e-3, seed=seed, dtype=dtype)
    X = rng.normal(size=(rows, 4))
    Y = make_targets(rng, rows, 3, "softmax", "cross_entropy")
    model = torch_twin(net)
    make_fastnn, make_torch, make_schedule = TRAJECTORY_OPTIMIZERS[kind]
    return net, X, Y, make_fastnn(), model, make_torch(model.parameters()), make_schedule()


def torch_step(net, model, optimizer, X, Y, max_norm):
    """One torch step: backward, clip_grad_norm_ (if max_norm), optimizer.step(); J and the
    gradient's norm before clipping."""
    optimizer.zero_grad()
    J = torch_objective(net, model, torch.from_numpy(X), torch.from_numpy(Y))
    J.backward()
    norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm).item() if max_norm
            else None)
    optimizer.step()
    return J.item(), norm


@pytest.mark.parametrize("clip", [None, MAX_NORM], ids=["no_clip", "clip"])
@pytest.mark.parametrize("kind", list(TRAJECTORY_OPTIMIZERS))
def test_train_step_trajectory_with_schedule_and_clipping_equals_torch(kind, clip):
    net, X, Y, optimizer, model, torch_optimizer, schedule = setup(kind, seed=41)
    twin = twin_scheduler(schedule, torch_optimizer)
    schedule.bind(optimizer)
    sequence = batches(X, Y, 5)
    norms = []
    for step in range(20):
        Xb, Yb = sequence[step % len(sequence)]
        J = net.train_step(Xb, Yb, optimizer, clip_grad_norm=clip)
        schedule.step()
        J_torch, norm = torch_step(net, model, torch_optimizer, Xb, Yb, clip)
        twin.step()
        norms.append(norm)
        assert J == pytest.approx(J_torch, rel=FLOAT64_TOL), f"step {step}"
        assert optimizer.lr == pytest.approx(torch_lr(torch_optimizer), rel=LR_TOL, abs=0)
    assert_matches(net.params, torch_flat(model), FLOAT64_TOL)
    if clip:
        assert sum(norm > clip for norm in norms) >= 10, "the max_norm should clip"
    assert optimizer.steps == schedule.last_epoch == 20


def torch_fit(net, model, torch_optimizer, X, Y, epochs, batch_size, max_norm, per_batch=None,
              per_epoch=None, validation=None):
    """torch's loop of fit(shuffle=False): per-epoch mean losses, the lr at each epoch's start,
    validation losses; per_batch steps after each optimizer.step(), per_epoch after each
    epoch (with the validation loss, or the training loss, for ReduceLROnPlateau)."""
    losses, lrs, val_losses = [], [], []
    for _ in range(epochs):
        lrs.append(torch_lr(torch_optimizer))
        total = 0.0
        for Xb, Yb in batches(X, Y, batch_size):
            total += torch_step(net, model, torch_optimizer, Xb, Yb, max_norm)[0] * len(Xb)
            if per_batch is not None:
                per_batch.step()
        losses.append(total / len(X))
        if validation is not None:
            with torch.no_grad():
                val_losses.append(torch_objective(net, model, *map(torch.from_numpy,
                                                                  validation)).item())
        if isinstance(per_epoch, lr_scheduler.ReduceLROnPlateau):
            per_epoch.step(val_losses[-1] if validation is not None else losses[-1])
        elif per_epoch is not None:
            per_epoch.step()
    return losses, lrs, val_losses


@pytest.mark.parametrize("clip", [None, MAX_NORM], ids=["no_clip", "clip"])
@pytest.mark.parametrize("kind", list(TRAJECTORY_OPTIMIZERS))
def test_fit_with_a_per_batch_schedule_in_the_compiled_epoch_equals_torch(kind, clip):
    net, X, Y, optimizer, model, torch_optimizer, schedule = setup(kind, seed=42)
    twin = twin_scheduler(schedule, torch_optimizer)
    history = net.fit(X, Y, optimizer=optimizer, epochs=4, batch_size=5, shuffle=False,
                      clip_grad_norm=clip, schedule=schedule)
    losses, lrs, _ = torch_fit(net, model, torch_optimizer, X, Y, 4, 5, clip, per_batch=twin)
    np.testing.assert_allclose(history.loss, losses, rtol=FLOAT64_TOL)
    np.testing.assert_allclose(history.lr, lrs, rtol=LR_TOL, atol=0)
    assert_matches(net.params, torch_flat(model), FLOAT64_TOL)
    assert optimizer.steps == schedule.last_epoch == 4 * 5
    assert optimizer.lr == pytest.approx(torch_lr(torch_optimizer), rel=LR_TOL, abs=0)
    assert schedule.last_lr == optimizer.lr == optimizer.state_dict()["lr"]


@pytest.mark.parametrize("make_schedule", [
    lambda: StepLR(2, gamma=0.5), lambda: ExponentialLR(0.7),
    lambda: WarmupCosine(3, warmup=2, start_factor=0.2, eta_min=0.002)],
    ids=["step", "exponential", "warmup_cosine"])
def test_fit_with_an_epoch_schedule_equals_torch(make_schedule):
    net, X, Y, optimizer, model, torch_optimizer, _ = setup("momentum", seed=43)
    schedule = make_schedule()
    twin = twin_scheduler(schedule, torch_optimizer)
    history = net.fit(X, Y, optimizer=optimizer, epochs=6, batch_size=5, shuffle=False,
                      clip_grad_norm=MAX_NORM, schedule=schedule)
    losses, lrs, _ = torch_fit(net, model, torch_optimizer, X, Y, 6, 5, MAX_NORM, per_epoch=twin)
    np.testing.assert_allclose(history.loss, losses, rtol=FLOAT64_TOL)
    np.testing.assert_allclose(history.lr, lrs, rtol=LR_TOL, atol=0)
    assert len(set(history.lr)) > 2
    assert_matches(net.params, torch_flat(model), FLOAT64_TOL)
    assert schedule.last_epoch == 6


@pytest.mark.parametrize("with_validation", [True, False], ids=["val_loss", "train_loss"])
def test_fit_with_reduce_lr_on_plateau_equals_torchs_decisions(with_validation):
    net, X, Y, optimizer, model, torch_optimizer, _ = setup("adam", seed=44, rows=40)
    validation = (X[25:], Y[25:]) if with_validation else None
    X, Y = X[:25], Y[:25]
    # a large rate makes the loss oscillate; a demanding threshold makes plateaus
    optimizer.lr = torch_optimizer.param_groups[0]["lr"] = 0.3
    schedule = ReduceLROnPlateau(factor=0.5, patience=1, threshold=0.05)
    twin = twin_scheduler(schedule, torch_optimizer)
    history = net.fit(X, Y, optimizer=optimizer, epochs=12, batch_size=5, shuffle=False,
                      validation_data=validation, schedule=schedule)
    losses, lrs, val_losses = torch_fit(net, model, torch_optimizer, X, Y, 12, 5, None,
                                        per_epoch=twin, validation=validation)
    np.testing.assert_allclose(history.loss, losses, rtol=FLOAT64_TOL)
    np.testing.assert_allclose(history.val_loss, val_losses, rtol=FLOAT64_TOL)
    assert history.lr == lrs
    assert len(set(history.lr)) >= 3, "the schedule should lower the rate at least twice"
    assert_matches(net.params, torch_flat(model), FLOAT64_TOL)
    assert optimizer.lr == torch_lr(torch_optimizer) == schedule.last_lr


def test_float32_fit_with_clipping_and_a_per_batch_schedule_follows_torch():
    net, X, Y, optimizer, model, torch_optimizer, schedule = setup("adam", seed=45,
                                                                   dtype="float32")
    twin = twin_scheduler(schedule, torch_optimizer)
    history = net.fit(X, Y, optimizer=optimizer, epochs=4, batch_size=5, shuffle=False,
                      clip_grad_norm=MAX_NORM, schedule=schedule)
    losses, lrs, _ = torch_fit(net, model, torch_optimizer, X, Y, 4, 5, MAX_NORM, per_batch=twin)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-5)
    np.testing.assert_allclose(history.lr, lrs, rtol=LR_TOL, atol=0)
    assert_matches(net.params, torch_flat(model), 1e-5)


# ---- the schedule's state: continued fits, save and restore, failures, Ctrl-C ---------------

def test_a_second_fit_continues_the_schedule_as_one_longer_fit():
    results = []
    for splits in ([5], [2, 3]):
        net, X, Y, optimizer, _, _, schedule = setup("adam", seed=46)
        lrs = []
        for epochs in splits:
            lrs += net.fit(X, Y, optimizer=optimizer, epochs=epochs, batch_size=5,
                           shuffle=False, clip_grad_norm=MAX_NORM, schedule=schedule).lr
        results.append((net.params.copy(), lrs, optimizer.lr, schedule.last_epoch))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1:] == results[1][1:]
    assert results[0][3] == 25


@pytest.mark.parametrize("make_schedule", [
    lambda: WarmupCosine(9, warmup=3, interval="step"),
    lambda: ReduceLROnPlateau(patience=0, factor=0.5, threshold=0.05)],
    ids=["warmup_cosine", "plateau"])
def test_state_dicts_restore_a_training_run(make_schedule):
    """Save the network, the optimizer (with its lr) and the schedule halfway; new objects
    that bind the schedule and load the three continue exactly as the run itself."""
    net, X, Y, optimizer, _, _, _ = setup("momentum", seed=47)
    schedule = make_schedule()
    net.fit(X, Y, optimizer=optimizer, epochs=3, batch_size=5, shuffle=False, schedule=schedule)
    saved = (net.state_dict(), optimizer.state_dict(), schedule.state_dict())
    net.fit(X, Y, optimizer=optimizer, epochs=3, batch_size=5, shuffle=False, schedule=schedule)

    other_net, _, _, other_optimizer, _, _, _ = setup("momentum", seed=47)
    other_schedule = make_schedule().bind(other_optimizer)
    other_net.load_state_dict(saved[0])
    other_optimizer.load_state_dict(saved[1])
    other_schedule.load_state_dict(saved[2])
    assert other_optimizer.lr == saved[1]["lr"]
    other_net.fit(X, Y, optimizer=other_optimizer, epochs=3, batch_size=5, shuffle=False,
                  schedule=other_schedule)
    np.testing.assert_array_equal(other_net.params, net.params)
    assert other_optimizer.lr == optimizer.lr
    assert other_schedule.state_dict() == schedule.state_dict()


def test_a_schedule_pickles_with_its_optimizer_and_goes_on():
    optimizer = fastnn.Adam(lr=0.05)
    schedule = WarmupCosine(5, warmup=2, interval="step").bind(optimizer)
    for _ in range(3):
        schedule.step()
    copy_optimizer, copy_schedule = pickle.loads(pickle.dumps((optimizer, schedule)))
    assert copy_schedule.optimizer is copy_optimizer
    assert copy_optimizer.lr == optimizer.lr
    assert copy_schedule.state_dict() == schedule.state_dict()
    assert [copy_schedule.step() for _ in range(4)] == [schedule.step() for _ in range(4)]
    alone = pickle.loads(pickle.dumps(schedule))
    assert alone.optimizer.lr == optimizer.lr and alone.last_epoch == schedule.last_epoch
    plateau = pickle.loads(pickle.dumps(ReduceLROnPlateau(patience=3).bind(optimizer)))
    assert plateau.state_dict()["last_lr"] == optimizer.lr


def test_a_diverged_epoch_restores_the_schedule_with_the_network_and_optimizer():
    net, X, Y, optimizer, _, _, _ = setup("sgd", seed=48)
    schedule = StepLR(2, gamma=0.5, interval="step")
    net.fit(X, Y, optimizer=optimizer, epochs=1, batch_size=5, shuffle=False, schedule=schedule)
    optimizer.lr = 1e300                                  # the next epoch diverges
    params, state = net.params.copy(), schedule.state_dict()
    with pytest.raises(FloatingPointError, match="restored"):
        net.fit(X, Y, optimizer=optimizer, epochs=1, batch_size=5, shuffle=False,
                schedule=schedule)
    np.testing.assert_array_equal(net.params, params)
    assert optimizer.lr == 1e300 and schedule.state_dict() == state
    assert schedule.last_epoch == optimizer.steps == 5


def test_a_failed_validation_loss_restores_the_per_batch_schedule():
    rng = np.random.default_rng(49)
    net, optimizer = fastnn.MLP([4, 3], seed=49), fastnn.Adam(lr=0.02)
    X, Y = rng.normal(size=(23, 4)), rng.normal(size=(23, 3))
    schedule = ExponentialLR(0.5, interval="step").bind(optimizer)
    data = net.check_data(X, Y)
    # a huge input makes the linear network's squared error overflow
    validation = net.check_data(np.full((2, 4), 1e300), Y[:2])
    params = net.params.copy()
    with pytest.raises(FloatingPointError, match="schedule were restored"):
        run_epoch(net, data, optimizer, 5, validation=validation, schedule=schedule)
    assert schedule.last_epoch == 0 and optimizer.lr == 0.02
    np.testing.assert_array_equal(net.params, params)
    run_epoch(net, data, optimizer, 5, schedule=schedule)
    assert schedule.last_epoch == optimizer.steps == 5 and optimizer.lr == 0.02 * 0.5 ** 5


CTRL_C = """
    import json, os, signal, threading, time
    import numpy as np
    import fastnn
    from fastnn.schedules import WarmupCosine
    rng = np.random.default_rng(0)
    net = fastnn.MLP([8, 32, 2], seed=0)
    X, Y = rng.normal(size=(20_000, 8)), rng.normal(size=(20_000, 2))

    def fit(X, Y, optimizer, schedule):
        return net.fit(X, Y, optimizer=optimizer, epochs=1, batch_size=1, shuffle=False,
                       clip_grad_norm=1.0, schedule=schedule)

    # calibrate: rows for an epoch of about 1.5 s
    started = time.perf_counter()
    fit(X, Y, fastnn.SGD(lr=1e-3), WarmupCosine(10, interval="step"))
    rows = int(1.5 * len(X) / (time.perf_counter() - started))
    X, Y = rng.normal(size=(rows, 8)), rng.normal(size=(rows, 2))
    optimizer = fastnn.SGD(lr=1e-3, momentum=0.9)
    schedule = WarmupCosine(1000, warmup=100, interval="step")
    sent = []

    def interrupt():
        time.sleep(0.3)
        sent.append(True)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    # fit returns its History, marked interrupted
    interrupted = fit(X, Y, optimizer, schedule).interrupted
    try:
        # a signal that came after the epoch: let it in here
        while not sent:
            time.sleep(0.01)
        time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    replay = WarmupCosine(1000, warmup=100).bind(fastnn.SGD(lr=1e-3))
    for _ in range(schedule.last_epoch):
        replay.step()
    print("RESULT " + json.dumps({"interrupted": interrupted, "rows": rows,
                                  "steps": optimizer.steps, "schedule_steps": schedule.last_epoch,
                                  "lr": optimizer.lr, "replayed_lr": replay.last_lr}), flush=True)
"""


def test_ctrl_c_leaves_one_schedule_step_per_batch_done():
    """SIGINT stops the compiled epoch between batches: the schedule (stepped in the compiled
    loop) has taken exactly one step per update made, and the lr is the schedule's at that
    count."""
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONFAULTHANDLER": "1"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(CTRL_C)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["steps"] == result["schedule_steps"] > 0
    assert result["lr"] == result["replayed_lr"]
    if not result["interrupted"]:
        pytest.skip("the epoch ended before the signal (a very fast machine)")
    assert result["steps"] < result["rows"]


# ---- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("value, error", [
    (0, ValueError), (0.0, ValueError), (-1.0, ValueError), (math.nan, ValueError),
    (math.inf, ValueError), ("1", TypeError), (True, TypeError), ([1.0], TypeError)])
def test_bad_clip_grad_norm_is_refused_by_every_entry_point(value, error):
    net, X, Y, optimizer, _, _, _ = setup("adam", seed=50)
    data = net.check_data(X, Y)
    params = net.params.copy()
    calls = [lambda: net.train_step(X, Y, optimizer, clip_grad_norm=value),
             lambda: net.train_epoch(data, optimizer, 5, clip_grad_norm=value),
             lambda: run_epoch(net, data, optimizer, 5, clip_grad_norm=value),
             lambda: net.fit(X, Y, optimizer, epochs=1, clip_grad_norm=value),
             lambda: fastnn.training.fit(net, X, Y, optimizer, epochs=1, clip_grad_norm=value)]
    for call in calls:
        with pytest.raises(error, match="clip_grad_norm"):
            call()
    np.testing.assert_array_equal(net.params, params)
    assert optimizer.steps == 0


@pytest.mark.parametrize("make, message", [
    (lambda: StepLR(0), "step_size must be >= 1"),
    (lambda: StepLR(2.5), "step_size must be an integer"),
    (lambda: StepLR(2, gamma=0), "gamma must be > 0"),
    (lambda: StepLR(2, gamma=1.5), "gamma must be <= 1"),
    (lambda: ExponentialLR(math.nan), "gamma must be finite"),
    (lambda: ExponentialLR("0.9"), "gamma must be a real number"),
    (lambda: ExponentialLR(0.9, interval="batch"), "unknown interval"),
    (lambda: WarmupCosine(0), "T_max must be >= 1"),
    (lambda: WarmupCosine(5, warmup=-1), "warmup must be >= 0"),
    (lambda: WarmupCosine(5, start_factor=0), "start_factor must be > 0"),
    (lambda: WarmupCosine(5, start_factor=1.5), "start_factor must be <= 1"),
    (lambda: WarmupCosine(5, eta_min=-0.1), "eta_min must be >= 0"),
    (lambda: ReduceLROnPlateau(mode="avg"), "unknown mode"),
    (lambda: ReduceLROnPlateau(factor=1.0), "factor must be < 1"),
    (lambda: ReduceLROnPlateau(patience=-1), "patience must be >= 0"),
    (lambda: ReduceLROnPlateau(threshold_mode="x"), "unknown threshold_mode"),
    (lambda: ReduceLROnPlateau(cooldown=1.5), "cooldown must be an integer"),
    (lambda: ReduceLROnPlateau(min_lr=-1), "min_lr must be >= 0"),
])
def test_bad_schedule_arguments_are_refused(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_schedules_misused_are_refused_with_clear_errors():
    net, X, Y, optimizer, _, _, _ = setup("adam", seed=51)
    data = net.check_data(X, Y)
    with pytest.raises(TypeError, match="schedule must be a fastnn schedule"):
        net.fit(X, Y, optimizer, epochs=1, schedule=lr_scheduler.StepLR)
    with pytest.raises(TypeError, match="bound to a fastnn optimizer"):
        StepLR(2).bind(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
    unbound = StepLR(2)
    for use in (unbound.step, unbound.state_dict, lambda: unbound.last_lr,
                lambda: ReduceLROnPlateau().step(1.0)):
        with pytest.raises(ValueError, match="not bound"):
            use()
    schedule = StepLR(2).bind(fastnn.Adam())
    with pytest.raises(ValueError, match="another optimizer"):
        net.fit(X, Y, optimizer, epochs=1, schedule=schedule)
    # a second compiled schedule on one optimizer replaces the first, which then refuses to step
    first = ExponentialLR(0.5).bind(optimizer)
    StepLR(3).bind(optimizer)
    with pytest.raises(ValueError, match="another schedule was bound"):
        first.step()
    with pytest.raises(ValueError, match="another schedule was bound"):
        net.fit(X, Y, optimizer, epochs=1, schedule=first)
    with pytest.raises(ValueError, match="interval='step'"):
        net.train_epoch(data, optimizer, 5, schedule=StepLR(3))
    plateau = ReduceLROnPlateau().bind(optimizer)
    with pytest.raises(TypeError, match="metric must be a real number"):
        plateau.step("low")
    with pytest.raises(ValueError, match="other settings"):
        StepLR(4).bind(optimizer).load_state_dict(StepLR(3).bind(fastnn.SGD()).state_dict())
    with pytest.raises(ValueError, match="state_dict has the entries"):
        StepLR(3).bind(optimizer).load_state_dict({"last_epoch": 2})
    assert optimizer.steps == 0


def test_bad_optimizer_states_are_refused():
    optimizer = fastnn.SGD(momentum=0.9)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        optimizer.load_state_dict({"lr": -1.0})
    with pytest.raises(ValueError, match="a SGD state has 'lr', 'step'"):
        optimizer.load_state_dict({"lr": 0.1, "step": 1})
    optimizer.load_state_dict({"lr": 0.25})
    assert optimizer.lr == 0.25 and optimizer.state_dict() == {"lr": 0.25}
