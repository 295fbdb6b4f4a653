"""Memory: the resident set stays flat over many calls, and `MLP.release` gives the workspace back.

Each leak test runs its loop once to warm up (caches, the BLAS's buffers, the allocator's pools),
then measures the growth of the resident set over the full loop, after a garbage collection, and
asserts it under LIMIT. A leak of b bytes a call grows it by b * n: the reduced loops (run by
default) catch leaks of about 200 bytes a train_step or forward and 10 kB a fit or save/load; the
full-size ones (marked slow, run with `-m slow`) ten times smaller. No test measures time.

Under AddressSanitizer (the FASTNN_SANITIZE=1 build) the resident set means nothing (freed memory
is held in quarantine, shadow memory grows), so the module skips itself there.
"""
import gc
import os

import numpy as np
import pytest

import fastnn

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1 << 20
LIMIT = 2 * MB


def _asan_loaded():
    with open("/proc/self/maps") as f:
        return "libasan" in f.read()


pytestmark = [
    pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)"),
    pytest.mark.skipif(os.path.exists("/proc/self/maps") and _asan_loaded(),
                       reason="resident memory means nothing under AddressSanitizer"),
]


def rss():
    """Resident set size of this process, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def growth(loop, n):
    """RSS growth over loop(n), after a warm-up of loop(n // 10)."""
    loop(max(n // 10, 1))
    gc.collect()
    before = rss()
    loop(n)
    gc.collect()
    return rss() - before


def data(n_in=8, n_out=2, rows=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(rows, n_in)), rng.normal(size=(rows, n_out))


def sizes(n):
    return [n, pytest.param(10 * n, marks=pytest.mark.slow)]


@pytest.mark.parametrize("n", sizes(10_000))
def test_train_steps_do_not_leak(n):
    X, Y = data()
    net = fastnn.MLP([8, 16, 16, 2], dropout=0.1, batch_norm=True, seed=0, dtype="float32")
    optimizer = fastnn.Adam(1e-3)

    def loop(k):
        for _ in range(k):
            net.train_step(X, Y, optimizer)

    grown = growth(loop, n)
    assert grown < LIMIT, f"RSS grew by {grown / MB:.2f} MB over {n} train_steps"
    assert np.isfinite(net.params).all()


@pytest.mark.parametrize("n", sizes(10_000))
def test_one_row_forwards_do_not_leak(n):
    X, _ = data()
    net = fastnn.MLP([8, 16, 16, 2], batch_norm=True, seed=0)
    row = X[:1]

    def loop(k):
        for _ in range(k):
            net.forward(row)

    grown = growth(loop, n)
    assert grown < LIMIT, f"RSS grew by {grown / MB:.2f} MB over {n} one-row forwards"


@pytest.mark.parametrize("n", sizes(200))
def test_fits_do_not_leak(n):
    X, Y = data()

    def loop(k):
        for i in range(k):
            net = fastnn.MLP([8, 16, 2], dropout=0.1, seed=i)
            net.fit(X, Y, fastnn.Adam(1e-3), epochs=3, batch_size=4, seed=i)

    grown = growth(loop, n)
    assert grown < LIMIT, f"RSS grew by {grown / MB:.2f} MB over {n} fits"


@pytest.mark.parametrize("n", sizes(100))
def test_split_fits_do_not_leak(n):
    # batches of 256 rows of a 64-128-10 network: split between the engine's thread and a worker
    # thread, which each network starts and stops
    X, Y = data(n_in=64, n_out=10, rows=512)

    def loop(k):
        for i in range(k):
            net = fastnn.MLP([64, 128, 10], seed=i)
            net.fit(X, Y, fastnn.Adam(1e-3), epochs=2, batch_size=256, seed=i)

    grown = growth(loop, n)
    assert grown < LIMIT, f"RSS grew by {grown / MB:.2f} MB over {n} split fits"


@pytest.mark.parametrize("n", sizes(200))
def test_save_load_round_trips_do_not_leak(n, tmp_path, monkeypatch):
    # save fsyncs every file: a disk cost that has nothing to do with memory
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    net = fastnn.MLP([8, 16, 2], batch_norm=True, seed=0)
    path = tmp_path / "model.npz"
    loaded = []

    def loop(k):
        loaded.clear()
        for _ in range(k):
            net.save(path)
            loaded[:] = [fastnn.load(path)]

    grown = growth(loop, n)
    assert grown < LIMIT, f"RSS grew by {grown / MB:.2f} MB over {n} save/load round trips"
    np.testing.assert_array_equal(loaded[0].params, net.params)


def test_release_gives_back_a_grown_workspace():
    # 200,000 rows of a 16-32-32-1 network: gradients need a workspace of about 200 MB, which
    # NumPy allocates by mmap, so freeing it returns it to the system whatever glibc keeps.
    rows = 200_000
    rng = np.random.default_rng(0)
    net = fastnn.MLP([16, 32, 32, 1], seed=0)
    checked = net.check_data(rng.normal(size=(rows, 16)), rng.normal(size=(rows, 1)))
    # a first round sets up what stays (the BLAS's thread buffers)
    net.gradients(checked)
    net.release()
    gc.collect()
    start = rss()

    net.gradients(checked)
    grown = rss() - start
    assert grown > 100 * MB, f"the workspace for {rows} rows grew RSS by {grown / MB:.1f} MB only"

    net.release()
    gc.collect()
    kept = rss() - start
    assert kept < 8 * MB, f"after release RSS is {kept / MB:.1f} MB above the start " \
                          f"(it had grown by {grown / MB:.1f} MB)"

    # forward evaluates in blocks of rows: 200,000 rows need no workspace of their size
    out = net.forward(checked.X)
    assert out.shape == (rows, 1)
    assert rss() - start < 16 * MB
