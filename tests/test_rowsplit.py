"""Row-split epochs (fastnn.threads, SPLIT_WORK): a batch's rows between two threads give the update
of the unsplit step up to rounding (1e-12 in float64, 1e-5 in float32) and the same bits whichever
thread computes a half; networks with batch normalization or dropout, caps of one thread and small
batches are not split; the worker thread survives neither fork nor the engine."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastnn
from fastnn import _blas_threads, threads
from fastnn.schedules import StepLR

pytestmark = [
    pytest.mark.skipif(not threads.controlled(), reason="fastnn does not set this BLAS's threads"),
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the split needs two CPUs"),
]
TOL = {"float64": 1e-12, "float32": 1e-5}
rng = np.random.default_rng(0)
# 64-128-10 on batches of 256 rows: 2.1M multiply-adds in the largest product, above SPLIT_WORK;
# 1000 rows leave a last batch of 232
X = rng.standard_normal((1000, 64))
y = rng.integers(0, 10, 1000)
weights = rng.uniform(0.1, 2.0, 1000)
# unshuffled, the second batch of 256 rows weighs nothing: no update, on one thread or split
weightless = np.where((np.arange(1000) >= 256) & (np.arange(1000) < 512), 0.0, weights)
OPTIMIZERS = {
    "momentum": lambda: fastnn.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "plain sgd": lambda: fastnn.SGD(0.05),
    "adam": lambda: fastnn.Adam(1e-3),
    "adamw": lambda: fastnn.AdamW(1e-3, weight_decay=1e-2),
    "rmsprop": lambda: fastnn.RMSprop(1e-3, momentum=0.5),
    "centered rmsprop": lambda: fastnn.RMSprop(1e-3, momentum=0.5, centered=True),
}
# RMSprop divides each gradient by its root mean square: where a gradient is near zero by
# cancellation, float32's rounding of it moves a parameter by more than 1e-5 within 3 epochs
# whatever the order of the sums (measured: at one parameter, the unsplit float32 run is 4.3e-5
# from the float64 one, the split float32 run 3.5e-6), so RMSprop is compared in float64 only
CASES = [(optimizer, dtype) for optimizer in OPTIMIZERS for dtype in TOL
         if not ("rmsprop" in optimizer and dtype == "float32")]


@pytest.fixture(autouse=True)
def two_threads():
    """The library at 2 threads, as on a default 2-core machine (the split needs 2 allowed)."""
    with threadpool_limits(2, user_api="blas"):
        yield


def trained(n_threads, optimizer, dtype="float64", rows=1000, batch_size=256, layers=(128,),
            fit=None, **options):
    net = fastnn.MLP([64, *layers, 10], output_activation="softmax", loss="cross_entropy", l2=1e-3,
                     seed=0, dtype=dtype, n_threads=n_threads, **options)
    net.fit(X[:rows], y[:rows], OPTIMIZERS[optimizer](), epochs=3, batch_size=batch_size, seed=1,
            **(fit or {}))
    return net


def assert_close(split, unsplit, dtype):
    assert split._engine.split_steps > 0 and unsplit._engine.split_steps == 0
    np.testing.assert_allclose(split.params, unsplit.params, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("optimizer, dtype", CASES)
def test_a_split_epoch_equals_the_unsplit_one(optimizer, dtype):
    assert_close(trained(None, optimizer, dtype), trained(1, optimizer, dtype), dtype)


@pytest.mark.parametrize("fit, options", [
    ({"sample_weight": weights}, {}),
    ({}, {"loss_options": {"weight": np.linspace(0.5, 2.0, 10)}}),
    ({"sample_weight": weights}, {"loss_options": {"weight": np.linspace(0.5, 2.0, 10),
                                                   "label_smoothing": 0.1}}),
    ({"sample_weight": weightless, "shuffle": False}, {}),
    ({"clip_grad_norm": 0.05}, {}),
    ({"schedule": StepLR(2, gamma=0.5, interval="step")}, {}),
], ids=["sample weights", "class weights", "both and smoothing", "a weightless batch", "clipping",
        "schedule"])
def test_split_epochs_with_weights_clipping_and_a_schedule(fit, options):
    assert_close(trained(None, "adam", fit=fit, **options),
                 trained(1, "adam", fit=fit if "schedule" not in fit else
                         {"schedule": StepLR(2, gamma=0.5, interval="step")}, **options),
                 "float64")


def test_a_last_batch_of_one_row_is_not_split():
    # 257 rows: a batch of 256 split, then one of a single row on one thread
    split, unsplit = trained(None, "adam", rows=257), trained(1, "adam", rows=257)
    assert split._engine.split_steps == 3
    assert_close(split, unsplit, "float64")


def test_results_do_not_depend_on_which_thread_computes_a_half():
    # the worker takes halves only after a few steps on one thread are timed, and not at all
    # when it is late: the arithmetic is the same either way
    first, second = trained(None, "adam"), trained(None, "adam")
    assert first._engine.split_steps == second._engine.split_steps > 0
    np.testing.assert_array_equal(first.params, second.params)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_epoch_choosing_its_blas_threads_gives_one_threads_bits(dtype):
    # products above PARALLEL_WORK: the epoch does not split; it times steps on one BLAS thread,
    # tries the library's 2 when the cores look idle and keeps them while they pay: which, and
    # when, depends on timing; the bits do not
    _blas_threads.set_parallel_work(0)
    try:
        adaptive = trained(None, "adam", dtype, layers=(256,), batch_size=128)
        one_thread = trained(1, "adam", dtype, layers=(256,), batch_size=128)
    finally:
        _blas_threads.set_parallel_work(threads.PARALLEL_WORK)
    assert adaptive._engine.split_state["hi"] == 2
    assert adaptive._engine.split_steps == one_thread._engine.split_steps == 0
    np.testing.assert_array_equal(adaptive.params, one_thread.params)


@pytest.mark.parametrize("options", [{"dropout": 0.2}, {"batch_norm": True}])
def test_batch_norm_and_dropout_are_not_split(options):
    # their statistics and masks are the whole batch's: the same bits as on one thread
    split, unsplit = trained(None, "adam", **options), trained(1, "adam", **options)
    assert split._engine.split_steps == 0
    np.testing.assert_array_equal(split.params, unsplit.params)


def test_small_batches_one_thread_caps_and_the_users_limit_are_not_split():
    assert trained(None, "adam", batch_size=32)._engine.split_steps == 0  # 0.26M multiply-adds
    assert trained(1, "adam")._engine.split_steps == 0
    threads.set_threads(1)
    try:
        assert trained(None, "adam")._engine.split_steps == 0
    finally:
        threads.set_threads(None)
    with threadpool_limits(1, user_api="blas"):
        assert trained(None, "adam")._engine.split_steps == 0
    assert trained(2, "adam")._engine.split_steps > 0


FORK_AFTER_A_SPLIT_FIT = """
    import os, sys
    import numpy as np
    import fastnn
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((1000, 64)), rng.integers(0, 10, 1000)
    net = fastnn.MLP([64, 128, 10], output_activation="softmax", loss="cross_entropy", seed=0)
    net.fit(X, y, epochs=2, batch_size=256)
    assert net._engine.split_steps > 0
    pid = os.fork()
    if pid == 0:
        before = net._engine.split_steps
        net.fit(X, y, epochs=2, batch_size=256)
        ok = net._engine.split_steps > before and np.isfinite(net.params).all()
        os.write(1, b"CHILD OK\\n" if ok else b"CHILD WRONG\\n")
        os._exit(0 if ok else 2)
    net.fit(X, y, epochs=2, batch_size=256)
    _, status = os.waitpid(pid, 0)
    print("PARENT child exit", os.waitstatus_to_exitcode(status), flush=True)
"""


def test_the_worker_thread_does_not_survive_fork_broken():
    # the engine stops its worker before fork(); parent and child each start one again
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(FORK_AFTER_A_SPLIT_FIT)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "CHILD OK" in done.stdout and "PARENT child exit 0" in done.stdout


def test_a_network_of_few_parameters_splits_its_update_too():
    # 13 parameters: the engine thread's range of the update is empty (the worker's starts at a
    # multiple of 8), and batches of 2^17 rows make the product large enough to split
    X_tall = rng.standard_normal((1 << 17, 1))
    y_tall = np.sin(3 * X_tall)
    nets = [fastnn.MLP([1, 4, 1], loss="squared_error", seed=0, n_threads=n_threads)
            for n_threads in (None, 1)]
    for net in nets:
        net.fit(X_tall, y_tall, fastnn.Adam(1e-2), epochs=3, batch_size=1 << 17, shuffle=False)
    assert nets[0]._engine.split_steps == 3 and nets[1]._engine.split_steps == 0
    np.testing.assert_allclose(nets[0].params, nets[1].params, rtol=1e-12, atol=1e-12)


def test_weightless_batches_are_not_timed_as_steps():
    # a batch of weight 0 returns at once: timed, it would make a step on one thread look as
    # if it took nanoseconds, and every parallel step look as if it did not pay
    net = trained(None, "adam", fit={"sample_weight": weightless, "shuffle": False})
    assert net._engine.split_state["single_ns"] > 10_000
