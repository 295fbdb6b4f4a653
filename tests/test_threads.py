"""The thread policy (fastnn.threads): which library, what it chooses, what it restores, and the
n_threads options of MLP, fit and the estimators."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fastnn
from fastnn import _blas_threads, threads

from processes import run_code

needs_control = pytest.mark.skipif(not threads.controlled(),
                                   reason="fastnn does not set this BLAS's threads")
rng = np.random.default_rng(0)
X = rng.standard_normal((2000, 64))
y = rng.integers(0, 10, 2000)


def library():
    """threadpoolctl's controller of fastnn's BLAS."""
    from threadpoolctl import ThreadpoolController
    path = threads.blas_file()
    return next(lib for lib in ThreadpoolController().lib_controllers
                if os.path.realpath(lib.filepath) == path)


@pytest.fixture(autouse=True)
def two_threads():
    """Each test starts with the library at 2 threads, the default threshold and no fastnn cap,
    and leaves them so."""
    if not threads.controlled():
        yield
        return
    lib = library()
    before = lib.get_num_threads()
    lib.set_num_threads(2)
    yield
    threads.set_threads(None)
    _blas_threads.set_parallel_work(threads.PARALLEL_WORK)
    _blas_threads.set_choosing(True)
    lib.set_num_threads(before)


def seen_while_training(nets, parallel_work=None, predict=False, **fit):
    """What a watcher sees while the networks train (or, with ``predict``, run forward passes
    over X), one thread each: the policy's states ``{(running calls, the count it set)}``, the
    library's counts read while calls ran (which may include the setting of a moment between two
    calls), and the library's count after."""
    if parallel_work is not None:
        _blas_threads.set_parallel_work(parallel_work)
    lib, states, counts, done = library(), set(), set(), threading.Event()

    def predicting(net):
        for _ in range(200):
            net.forward(X)

    def watch():
        while not done.is_set():
            running, _, current = _blas_threads.state()
            if running:
                states.add((running, current))
                counts.add(lib.get_num_threads())

    watcher = threading.Thread(target=watch)
    trainers = [threading.Thread(target=predicting, args=(net,)) if predict else
                threading.Thread(target=net.fit, args=(X, y), kwargs={"epochs": 20, **fit})
                for net in nets]
    watcher.start()
    for trainer in trainers:
        trainer.start()
    for trainer in trainers:
        trainer.join()
    done.set()
    watcher.join()
    return states, counts, lib.get_num_threads()


def classifier(**options):
    return fastnn.MLP([64, 100, 10], output_activation="softmax", loss="cross_entropy", seed=0,
                      **options)


@needs_control
def test_the_library_is_the_one_scipys_blas_calls():
    paths = {os.path.realpath(info["filepath"]) for info in threadpool_info()}
    assert threads.blas_file() in paths
    assert "openblas" in os.path.basename(threads.blas_file())


@needs_control
def test_small_products_run_on_one_thread_and_the_setting_comes_back():
    states, counts, after = seen_while_training([classifier()], batch_size=200)
    assert states == {(1, 1)}
    assert 1 in counts
    assert after == 2
    assert _blas_threads.state()[0] == 0


@needs_control
def test_large_products_run_on_the_users_setting():
    states, counts, after = seen_while_training([classifier()], parallel_work=0, predict=True)
    assert states == {(1, 2)}
    assert counts == {2}
    assert after == 2


@needs_control
def test_an_epoch_of_large_products_uses_at_most_the_users_setting():
    # the epoch chooses between one BLAS thread and the user's 2 by timing: either, never more,
    # and the setting comes back
    net = classifier()
    states, counts, after = seen_while_training([net], parallel_work=0, batch_size=200)
    assert states <= {(1, 1), (1, 2)}
    assert counts <= {1, 2}
    assert after == 2
    assert net._engine.split_state["hi"] == 2


@needs_control
def test_an_epoch_that_does_not_choose_keeps_the_users_setting():
    _blas_threads.set_choosing(False)  # as bench/threads.py forces 2 threads
    states, counts, after = seen_while_training([classifier()], parallel_work=0, batch_size=200)
    assert states == {(1, 2)}
    assert counts == {2}
    assert after == 2


@needs_control
def test_threadpoolctl_limit_is_honoured():
    with threadpool_limits(limits=1, user_api="blas"):
        states, counts, after = seen_while_training([classifier()], parallel_work=0)
        assert states == {(1, 1)}
        assert counts == {1}
        assert after == 1
    assert library().get_num_threads() == 2


@needs_control
@pytest.mark.parametrize("where", ["set_threads", "MLP", "fit", "attribute"])
def test_fastnns_caps_lower_the_setting(where):
    net = classifier(n_threads=1 if where == "MLP" else None)
    fit = {"n_threads": 1} if where == "fit" else {}
    if where == "set_threads":
        threads.set_threads(1)
        assert threads.get_threads() == 1
    if where == "attribute":
        net.n_threads = 1
    states, counts, after = seen_while_training([net], parallel_work=0, **fit)
    assert states == {(1, 1)}
    assert 1 in counts
    assert after == 2
    assert net.n_threads == (None if where in ("set_threads", "fit") else 1)


@needs_control
def test_a_cap_above_the_users_setting_does_not_raise_it():
    threads.set_threads(8)
    net = classifier(n_threads=4)
    states, counts, _ = seen_while_training([net], parallel_work=0, predict=True)
    assert states == {(1, 2)}
    assert counts == {2}
    states, counts, _ = seen_while_training([net], parallel_work=0)
    assert states <= {(1, 1), (1, 2)}
    assert counts <= {1, 2}
    assert net._engine.split_state["hi"] == 2


@needs_control
def test_concurrent_calls_run_on_one_thread_each():
    states, counts, after = seen_while_training([classifier(), classifier()], parallel_work=0)
    assert (2, 1) in states  # the fits overlapped, then on one thread each
    assert all(count == 1 for running, count in states if running == 2)
    assert 1 in counts
    assert after == 2


@needs_control
def test_the_setting_is_restored_when_a_call_fails():
    net, other = classifier(), fastnn.MLP([64, 5, 10], output_activation="softmax",
                                          loss="cross_entropy")
    data = net.check_data(X, y)
    with pytest.raises(ValueError, match="does not fit this network"):
        net._engine.epoch(data.X, data.Y, None, None, 200, fastnn.Adam().bind(other))
    assert _blas_threads.state()[0] == 0
    assert library().get_num_threads() == 2


@needs_control
def test_numpys_blas_is_not_touched():
    others = [info for info in threadpool_info() if info["user_api"] == "blas"
              and os.path.realpath(info["filepath"]) != threads.blas_file()]
    if not others:
        pytest.skip("numpy and scipy share one BLAS here")
    counts = set()
    done = threading.Event()

    def watch():
        while not done.is_set():
            if _blas_threads.state()[0]:
                counts.add(next(i["num_threads"] for i in threadpool_info()
                                if i["filepath"] == others[0]["filepath"]))

    with threadpool_limits(limits=2, user_api="blas"):
        watcher = threading.Thread(target=watch)
        watcher.start()
        classifier().fit(X, y, epochs=20)
        done.set()
        watcher.join()
    assert counts <= {2}


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), ("2", TypeError),
                                        (1.5, TypeError), (True, TypeError)])
def test_bad_caps_are_refused(bad, error):
    with pytest.raises(error, match="n_threads"):
        threads.set_threads(bad)
    with pytest.raises(error, match="n_threads"):
        classifier(n_threads=bad)
    net = classifier()
    with pytest.raises(error, match="n_threads"):
        net.n_threads = bad
    with pytest.raises(error, match="n_threads"):
        net.fit(X[:10], y[:10], epochs=1, n_threads=bad)
    assert net.n_threads is None


def test_import_fastnn_neither_locates_the_blas_nor_imports_threadpoolctl():
    code = ("import sys, fastnn; from fastnn import _blas_threads; "
            "print(_blas_threads.is_attached(), 'threadpoolctl' in sys.modules)")
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(fastnn.__file__)),
                                         env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


@needs_control
def test_environment_limit_is_honoured():
    code = ("import fastnn, numpy as np; from fastnn import _blas_threads as b; "
            "b.set_parallel_work(0); net = fastnn.MLP([4, 8, 1]); "
            "net.train_step(np.ones((4, 4)), np.ones((4, 1)), fastnn.SGD()); print(b.state())")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(fastnn.__file__)),
                                         env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "(0, 1, 1)"  # saved and set: the environment's 1


@needs_control
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_results_do_not_depend_on_the_thread_count(dtype, tol):
    Xw = rng.standard_normal((600, 256))

    def trained(n):
        net = fastnn.MLP([256, 300, 10], output_activation="softmax", loss="cross_entropy",
                         seed=0, dtype=dtype, n_threads=n)
        net.fit(Xw, y[:600], epochs=3, batch_size=300, seed=1)
        return net.params.copy(), net.forward(Xw), net.loss(Xw, y[:600])
    _blas_threads.set_parallel_work(0)
    one, two = trained(1), trained(2)
    np.testing.assert_allclose(one[0], two[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(one[1], two[1], rtol=tol, atol=tol)
    assert one[2] == pytest.approx(two[2], rel=tol)


def test_two_threads_building_their_first_networks_at_once_both_train():
    # A search under joblib's threading backend builds its first two networks at once. The
    # first thread's lookup of the BLAS waits (up to a second) until the second thread trains:
    # without a lock, the second one would attach and train while the first attached, which
    # attach refuses.
    code = """
        import threading, time
        import numpy as np
        import fastnn
        from fastnn import _blas_threads, threads
        lookups, located = [], threads.blas_file

        def slow_first_lookup():
            lookups.append(threading.current_thread().name)
            if len(lookups) == 1:
                deadline = time.monotonic() + 1
                while _blas_threads.state()[0] == 0 and time.monotonic() < deadline:
                    time.sleep(0.001)
            return located()

        threads.blas_file = slow_first_lookup
        X, y = np.random.default_rng(0).standard_normal((20000, 8)), np.arange(20000) % 3
        errors = []

        def train(pause):
            time.sleep(pause)
            try:
                net = fastnn.MLP([8, 16, 3], output_activation="softmax", loss="cross_entropy")
                net.fit(X, y, epochs=20, batch_size=10)
            except Exception as error:
                errors.append(repr(error))

        trainers = [threading.Thread(target=train, args=(pause,)) for pause in (0, 0.1)]
        for trainer in trainers:
            trainer.start()
        for trainer in trainers:
            trainer.join()
        print(errors, len(lookups))
    """
    out = run_code(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "1"]
