"""The compiled engine's own methods refuse what their passes cannot read, with an error and not a
crash, even called directly (the Python layer checks user input before; these are its second
line), and a Ctrl-C handler that frees the workspace of a paused pass does not pull it from under
the pass."""
import os
import signal

import numpy as np
import pytest

import fastnn

from processes import run_code


@pytest.fixture
def engine():
    net = fastnn.MLP([4, 8, 2], seed=0)
    rule = fastnn.SGD(lr=0.1).bind(net)
    rng = np.random.default_rng(0)
    X, Y = rng.random((10, 4)), rng.random((10, 2))
    out = np.zeros(net.params.size + 2)
    return net._engine, rule, X, Y, out


@pytest.mark.parametrize("change, match", [
    (lambda X, Y, s, o, a, r: (X.astype(np.float32), Y, s, o, a, r), "dtype"),
    (lambda X, Y, s, o, a, r: (np.asfortranarray(X), Y, s, o, a, r), "C-contiguous"),
    (lambda X, Y, s, o, a, r: (X[:, :2].copy(), Y, s, o, a, r), "n_in"),
    (lambda X, Y, s, o, a, r: (X, Y[:5].copy(), s, o, a, r), "n_out"),
    (lambda X, Y, s, o, a, r: (X, Y, np.ones(1), o, a, r), "sample weights"),
    (lambda X, Y, s, o, a, r: (X, Y, s, np.arange(10, dtype=np.int32), a, r), "intp"),
    (lambda X, Y, s, o, a, r: (X, Y, s, np.zeros(1, np.intp), a, r), "outside the order"),
    (lambda X, Y, s, o, a, r: (X, Y, s, np.full(10, 10**12, np.intp), a, r), "outside X"),
    (lambda X, Y, s, o, a, r: (X, Y, s, o, 10**9, r), "outside X"),
    (lambda X, Y, s, o, a, r: (X, Y, s, o, -10**8, r), "outside X"),
    (lambda X, Y, s, o, a, r: (X, Y, s, o, a, 10**7), "outside X"),
    (lambda X, Y, s, o, a, r: (X, Y, s, o, a, -5), "outside X"),
])
def test_shard_gradient_refuses_what_it_cannot_read(engine, change, match):
    eng, _, X, Y, out = engine
    with pytest.raises(ValueError, match=match):
        eng.shard_gradient(*change(X, Y, None, None, 0, 10), out)


def test_shard_gradient_refuses_a_read_only_buffer(engine):
    eng, _, X, Y, out = engine
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        eng.shard_gradient(X, Y, None, None, 0, 10, out)


def test_reduced_step_refuses_totals_it_would_write_wrongly(engine):
    eng, rule, _, _, out = engine
    for totals in (np.zeros(4)[::2], np.zeros(2)):
        totals.flags.writeable = totals.base is not None
        with pytest.raises(ValueError, match="contiguous and writeable"):
            eng.reduced_step(out, rule, 0.0, False, totals)


@pytest.mark.parametrize("call", [
    lambda eng, rule, X, Y, out: eng.epoch(X, Y, None, None, 4, None),
    lambda eng, rule, X, Y, out: eng.reduced_step(out, None, 0.0, False, np.zeros(2)),
    lambda eng, rule, X, Y, out: eng.gradients(X, None),
    lambda eng, rule, X, Y, out: eng.normalizer(None),
    lambda eng, rule, X, Y, out: eng.shard_gradient(None, Y, None, None, 0, 10, out),
])
def test_none_is_a_type_error(engine, call):
    with pytest.raises(TypeError):
        call(*engine)


@pytest.mark.parametrize("call, match", [
    (lambda eng, rule, X, Y: eng.epoch(X, Y, None, np.zeros(1, np.intp), 4, rule), "order"),
    (lambda eng, rule, X, Y: eng.epoch(np.zeros((1, 1)), Y, None, None, 4, rule), "n_in"),
    (lambda eng, rule, X, Y: eng.loss(X, Y, np.ones(1)), "sample weights"),
])
def test_epoch_and_loss_refuse_arrays_they_cannot_read(engine, call, match):
    eng, rule, X, Y, _ = engine
    with pytest.raises(ValueError, match=match):
        call(eng, rule, X, Y)


RELEASE_IN_HANDLER = """
    import os, signal, threading, time
    import numpy as np
    import fastnn
    net = fastnn.MLP([512, 512, 512, 10], seed=0)
    X = np.random.default_rng(0).random((200_000, 512))
    calls = []
    def handler(signum, frame):
        calls.append(1)
        net.release()        # frees the workspace of the pass paused for this handler
    signal.signal(signal.SIGINT, handler)
    def poke():
        for _ in range(20):
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=poke, daemon=True).start()
    out = net.forward(X)
    print(len(calls) > 0, np.isfinite(out).all())
"""


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_a_handler_that_releases_the_workspace_of_a_paused_pass_does_not_crash_it():
    done = run_code(RELEASE_IN_HANDLER, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]
