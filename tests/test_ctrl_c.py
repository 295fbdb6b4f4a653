"""Ctrl-C in the middle of a long compiled epoch: SIGINT sent to another process that trains stops
it within a fraction of a second, at a batch boundary. `fit` returns the History so far (marked
interrupted) with the network at its last update; `fastnn train` saves what it has with --save
and exits with status 130. The stop latency measured is printed (pytest -s shows it)."""
import json
import os
import sys
import time

import numpy as np
import pytest

import fastnn

from processes import Watched

# the latency the tests allow (a busy machine may delay the process by a scheduler tick or two;
# it is typically a few milliseconds)
MAX_LATENCY = 0.5
# how long an epoch should take, and when in it the signal comes
EPOCH_SECONDS, SIGNAL_AFTER = 2.0, 0.7

FIT = """
    import json, sys, time
    import numpy as np
    import fastnn
    target, batch = float(sys.argv[1]), 64
    rng = np.random.default_rng(0)
    net = fastnn.MLP([32, 256, 256, 10], dtype="float32", seed=0)
    initial = net.params.copy()
    make = lambda n: (rng.normal(size=(n, 32)).astype(np.float32),
                      rng.normal(size=(n, 10)).astype(np.float32))
    X, Y = make(2048)
    net.fit(X[:256], Y[:256], fastnn.SGD(1e-4), epochs=1, batch_size=batch, shuffle=False)
    started = time.perf_counter()
    net.fit(X, Y, fastnn.SGD(1e-4), epochs=1, batch_size=batch, shuffle=False)
    rows = int(target * 2048 / (time.perf_counter() - started))
    net.params[:] = initial
    X, Y = make(rows)
    print("TRAINING", rows, flush=True)
    history = net.fit(X, Y, fastnn.SGD(1e-4), epochs=3, batch_size=batch, shuffle=False,
                      verbose=int(sys.argv[2]))
    ended = time.monotonic()
    # consistent: the parameters after some whole number of batches, replayed batch by batch as
    # epochs of one batch (an epoch's step may split the batch's rows between two threads, which
    # gives train_step's update up to rounding only)
    replica = fastnn.MLP([32, 256, 256, 10], dtype="float32", seed=0)
    replica.params[:] = initial
    optimizer, batches, per_epoch = fastnn.SGD(1e-4), 0, -(-rows // batch)
    while not np.array_equal(replica.params, net.params) and batches < 3 * per_epoch:
        start = batches % per_epoch * batch
        replica.fit(X[start:start + batch], Y[start:start + batch], optimizer, epochs=1,
                    batch_size=batch, shuffle=False)
        batches += 1
    print("RESULT " + json.dumps({
        "ended": ended, "interrupted": history.interrupted, "epochs": history.epochs,
        "per_epoch": per_epoch, "batches": batches,
        "at_a_boundary": bool(np.array_equal(replica.params, net.params)),
        "split": net._engine.split_steps > 0,
        "usable": bool(np.isfinite(net.fit(X[:512], Y[:512], epochs=1).loss[0]))}), flush=True)
"""


def test_ctrl_c_stops_fit_within_a_fraction_of_a_second():
    trainer = Watched.python(FIT, EPOCH_SECONDS, 1)
    trainer.wait_for("TRAINING")
    time.sleep(SIGNAL_AFTER)
    sent = time.monotonic()
    trainer.process.send_signal(2)
    _, line = trainer.wait_for("RESULT ")
    assert trainer.finish() == 0, trainer.report()
    result = json.loads(line[len("RESULT "):])
    latency = result["ended"] - sent
    done = result["batches"] - result["epochs"] * result["per_epoch"]
    print(f"fit: stopped {latency * 1000:.1f} ms after SIGINT, after {done} batches of epoch "
          f"{result['epochs'] + 1} (of {result['per_epoch']})", file=sys.stderr)
    assert result["interrupted"] and result["epochs"] < 3
    assert latency < MAX_LATENCY
    assert result["at_a_boundary"] and 0 < done < result["per_epoch"]
    # the epoch stopped was split between two threads where the machine allows it
    assert result["split"] or not fastnn.threads.controlled() or len(os.sched_getaffinity(0)) < 2
    assert result["usable"]
    assert f"interrupted (Ctrl-C) in epoch {result['epochs'] + 1}/3" in trainer.seen


def test_ctrl_c_stops_fastnn_train_which_saves_and_exits_130(tmp_path):
    pd = pytest.importorskip("pandas")
    # rows for an epoch of about EPOCH_SECONDS, timed on this machine as the command trains
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(2048, 10))
    net = fastnn.MLP([10, 256, 256, 2], output_activation="softmax", loss="cross_entropy")
    net.fit(probe[:256], probe[:256, 0] > 0, epochs=1)
    started = time.perf_counter()
    net.fit(probe, probe[:, 0] > 0, epochs=1)
    rows = int(EPOCH_SECONDS * 2048 / (time.perf_counter() - started) / 0.6)
    X = rng.normal(size=(rows, 10))
    frame = pd.DataFrame(X, columns=[f"x{k}" for k in range(10)])
    frame["label"] = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    frame.to_csv(tmp_path / "table.csv", index=False)
    trainer = Watched(["-m", "fastnn", "train", "table.csv", "--hidden", "256,256", "--epochs",
                       "5", "--save", "model.fastnn"], cwd=tmp_path)
    trainer.wait_for("network [")
    time.sleep(SIGNAL_AFTER)
    sent = time.monotonic()
    trainer.process.send_signal(2)
    stopped, _ = trainer.wait_for("interrupted (Ctrl-C) in epoch 1/5")
    status = trainer.finish()
    print(f"fastnn train: stopped {(stopped - sent) * 1000:.1f} ms after SIGINT "
          f"({rows} rows); exit status {status}", file=sys.stderr)
    assert status == 130, trainer.report()
    assert stopped - sent < MAX_LATENCY
    assert "fastnn: interrupted (Ctrl-C) after 0 complete epochs; saved" in trainer.errors
    assert "Traceback" not in trainer.errors
    assert any(line.startswith("saved to model.fastnn") for line in trainer.seen)
    model = fastnn.TabularModel.load(tmp_path / "model.fastnn")
    assert model.training["interrupted"] and model.training["epochs_run"] == 0
    assert "interrupted (Ctrl-C)" in model.summary()


def test_ctrl_c_before_training_exits_130_without_a_traceback(tmp_path):
    trainer = Watched.python("""
        import os, signal, sys
        from fastnn import cli, datasets
        def interrupted(*args):
            os.kill(os.getpid(), signal.SIGINT)
        datasets.load_digits = interrupted
        cli.load_digits = interrupted
        sys.exit(cli.main(["train", "--epochs", "1"]))
    """)
    assert trainer.finish() == 130
    assert trainer.errors.strip() == "fastnn: interrupted (Ctrl-C)"


# ---- in this process: what fit returns and leaves --------------------------------------------


def interrupt_at(epoch):
    def callback(k, logs):
        if k == epoch:
            raise KeyboardInterrupt
    return callback


def test_fit_returns_the_history_of_the_epochs_done():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(64, 3)), rng.normal(size=(64, 2))
    net, twin = fastnn.MLP([3, 8, 2], seed=0), fastnn.MLP([3, 8, 2], seed=0)
    history = net.fit(X, Y, epochs=10, seed=0, callbacks=[interrupt_at(2)])
    assert history.interrupted and not history.stopped_early and history.epochs == 3
    whole = twin.fit(X, Y, epochs=3, seed=0)
    assert (history.loss, history.best_epoch) == (whole.loss, whole.best_epoch)
    np.testing.assert_array_equal(net.params, twin.params)


def test_an_interrupted_fit_with_early_stopping_ends_with_the_best_epoch():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
    weights = []
    net = fastnn.MLP([3, 32, 2], seed=0)
    history = net.fit(X, Y, fastnn.Adam(0.02), epochs=50, batch_size=8, seed=0,
                      validation_split=0.3, early_stopping=True, patience=40,
                      callbacks=[lambda k, logs: weights.append(net.params.copy()),
                                 interrupt_at(30)])
    assert history.interrupted and history.epochs == 31 and history.best_epoch < 30
    np.testing.assert_array_equal(net.params, weights[history.best_epoch])
