"""The thread policy (fastnn.threads): which library, what it chooses, what it restores."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fastnn
from fastnn import threads

LIBRARY = threads.blas_library()
needs_library = pytest.mark.skipif(LIBRARY is None, reason="no BLAS threadpoolctl can control")
BIG = threads.PARALLEL_WORK


def seen(work):
    """The thread count of fastnn's BLAS inside a call of ``work`` multiply-adds."""
    return threads.run(work, LIBRARY.get_num_threads)


@pytest.fixture(autouse=True)
def two_threads():
    """Each test starts with the library at 2 threads and no fastnn cap, and leaves it so."""
    if LIBRARY is None:
        yield
        return
    before = LIBRARY.get_num_threads()
    LIBRARY.set_num_threads(2)
    yield
    threads.set_threads(None)
    LIBRARY.set_num_threads(before)


@needs_library
def test_the_library_is_the_one_scipys_blas_calls():
    paths = {os.path.realpath(info["filepath"]) for info in threadpool_info()}
    assert os.path.realpath(LIBRARY.filepath) in paths
    # scipy's dgemm symbol lives in it
    assert threads._dgemm_file() == os.path.realpath(LIBRARY.filepath)


@needs_library
def test_small_work_runs_on_one_thread_big_work_on_the_users_setting():
    assert seen(0) == 1
    assert seen(BIG - 1) == 1
    assert seen(BIG) == 2
    assert LIBRARY.get_num_threads() == 2


@needs_library
def test_the_setting_is_restored_even_when_the_call_raises():
    def fails():
        assert LIBRARY.get_num_threads() == 1
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        threads.run(0, fails)
    assert LIBRARY.get_num_threads() == 2


@needs_library
def test_threadpoolctl_limit_is_honoured():
    with threadpool_limits(limits=1, user_api="blas"):
        assert seen(BIG) == 1
    assert seen(BIG) == 2


@needs_library
def test_set_threads_and_limit_cap_fastnn():
    threads.set_threads(1)
    assert threads.get_threads() == 1
    assert seen(BIG) == 1
    threads.set_threads(None)
    assert seen(BIG) == 2
    with threads.limit(1):
        assert threads.get_threads() == 1
        assert seen(BIG) == 1
    assert threads.get_threads() is None
    # a cap above the user's setting does not raise it
    threads.set_threads(8)
    assert seen(BIG) == 2


@needs_library
def test_limit_is_per_thread():
    inside = threading.Event()
    release = threading.Event()

    def capped():
        with threads.limit(1):
            inside.set()
            release.wait(10)
    worker = threading.Thread(target=capped)
    worker.start()
    inside.wait(10)
    assert threads.get_threads() is None
    release.set()
    worker.join()


@needs_library
def test_concurrent_calls_run_on_one_thread_each():
    started = threading.Barrier(2, timeout=10)
    counts = []

    def call():
        def body():
            started.wait()
            counts.append(LIBRARY.get_num_threads())
            started.wait()
        threads.run(BIG, body)
    workers = [threading.Thread(target=call) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert counts == [1, 1]
    assert LIBRARY.get_num_threads() == 2


@needs_library
def test_numpys_blas_is_not_touched():
    others = [info for info in threadpool_info() if info["user_api"] == "blas"
              and os.path.realpath(info["filepath"]) != os.path.realpath(LIBRARY.filepath)]
    if not others:
        pytest.skip("numpy and scipy share one BLAS here")
    with threadpool_limits(limits=2, user_api="blas"):
        counts = threads.run(0, lambda: [i["num_threads"] for i in threadpool_info()
                                         if i["filepath"] == others[0]["filepath"]])
    assert counts == [2]


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), ("2", TypeError),
                                        (1.5, TypeError), (True, TypeError)])
def test_bad_caps_are_refused(bad, error):
    with pytest.raises(error, match="n_threads"):
        threads.set_threads(bad)
    with pytest.raises(error, match="n_threads"):
        with threads.limit(bad):
            pass


def test_product_work_is_the_widest_layer_times_the_rows():
    assert threads.product_work((64, 100, 10), 200) == 200 * 6400
    assert threads.product_work((3,), 10) == 0


@needs_library
def test_environment_limit_is_honoured():
    code = ("from fastnn import threads; "
            "print(threads.run(threads.PARALLEL_WORK, threads.blas_library().get_num_threads))")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(fastnn.__file__)),
                                         env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "1"


@needs_library
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_results_do_not_depend_on_the_thread_count(monkeypatch, dtype, tol):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 64))
    y = rng.integers(0, 10, 600)

    def trained(n):
        net = fastnn.MLP([64, 200, 10], output_activation="softmax", loss="cross_entropy",
                         seed=0, dtype=dtype)
        with threads.limit(n):
            net.fit(X, y, epochs=3, batch_size=300, seed=1)
            return net.params.copy(), net.forward(X), net.loss(X, y)
    monkeypatch.setattr(threads, "PARALLEL_WORK", 0)
    one, two = trained(1), trained(2)
    np.testing.assert_allclose(one[0], two[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(one[1], two[1], rtol=tol, atol=tol)
    assert one[2] == pytest.approx(two[2], rel=tol)
