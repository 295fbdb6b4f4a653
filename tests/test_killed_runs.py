"""A training killed with SIGKILL in the middle of an epoch and resumed from its last checkpoint
ends with the weights, bit for bit, of the run that was never stopped: `fit(checkpoint=...,
resume=True)` in Python and `fastnn train --checkpoint/--resume`, with shuffling, dropout, batch
normalization, a learning-rate schedule, a validation split and early stopping."""
import json
import signal
import time

import numpy as np
import pytest

import fastnn

from processes import Watched

EPOCHS = 6

FIT = """
    import json, sys
    import numpy as np
    import fastnn
    from fastnn.schedules import ReduceLROnPlateau
    checkpoint = sys.argv[1] if sys.argv[1] != "-" else None
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12000, 16))
    y = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 0.5)
    net = fastnn.MLP([16, 128, 128, 3], output_activation="softmax", loss="cross_entropy",
                     seed=0, dropout=0.2, batch_norm=True)
    history = net.fit(X, y, fastnn.Adam(1e-3), epochs=int(sys.argv[2]), batch_size=16, seed=5,
                      validation_split=0.2, early_stopping=True, patience=50,
                      schedule=ReduceLROnPlateau(factor=0.5, patience=1),
                      checkpoint=checkpoint, resume=checkpoint is not None,
                      callbacks=[lambda epoch, logs: print("EPOCH", epoch, flush=True)])
    print("RESULT " + json.dumps({"params": net.params.tolist(), "buffers": net.buffers.tolist(),
                                  "random_state": list(net.random_state),
                                  "loss": history.loss, "val_loss": history.val_loss}),
          flush=True)
"""


def result(trainer):
    _, line = trainer.wait_for("RESULT ")
    assert trainer.finish() == 0, trainer.report()
    return json.loads(line[len("RESULT "):])


def kill_in_epoch(trainer, epoch):
    """SIGKILL ``trainer`` a little after it reports the end of epoch ``epoch - 1`` (counted from
    0): in the middle of epoch ``epoch`` or a later one, or while it writes a checkpoint."""
    trainer.wait_for(f"EPOCH {epoch - 1}")
    time.sleep(0.05)
    trainer.process.send_signal(signal.SIGKILL)
    assert trainer.finish() == -signal.SIGKILL


def test_fit_killed_and_resumed_ends_as_never_stopped(tmp_path):
    path = tmp_path / "run.ckpt"
    kill_in_epoch(Watched.python(FIT, path, EPOCHS), 3)
    resumed = Watched.python(FIT, path, EPOCHS)
    resumed_result = result(resumed)
    # it went on from the last checkpoint (whichever the kill left whole), not from the start
    first = int([line for line in resumed.seen if line.startswith("EPOCH")][0].split()[1])
    assert 0 < first < EPOCHS
    whole = result(Watched.python(FIT, "-", EPOCHS))
    assert resumed_result == whole
    assert len(whole["loss"]) == EPOCHS


def test_fastnn_train_killed_and_resumed_ends_as_never_stopped(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16000, 8))
    frame = pd.DataFrame(X, columns=[f"x{k}" for k in range(8)])
    frame["kind"] = np.where(X[:, 0] > 0.5, "a", np.where(X[:, 1] > 0, "b", "c"))
    frame["id"] = np.arange(len(frame))
    frame.to_csv(tmp_path / "table.csv", index=False)
    options = ["-m", "fastnn", "train", "table.csv", "--target", "kind", "--drop", "id",
               "--hidden", "128,64", "--dropout", "0.2", "--batch-size", "16", "--epochs",
               str(EPOCHS)]
    killed = Watched([*options, "--checkpoint", "run.ckpt", "--save", "resumed.fastnn"],
                     cwd=tmp_path)
    killed.wait_for(f"epoch 3/{EPOCHS} - ")
    time.sleep(0.05)
    killed.process.send_signal(signal.SIGKILL)
    assert killed.finish() == -signal.SIGKILL
    assert not (tmp_path / "resumed.fastnn").exists()
    resumed = Watched([*options, "--resume", "run.ckpt", "--save", "resumed.fastnn"],
                      cwd=tmp_path)
    assert resumed.finish() == 0, resumed.report()
    epochs = [line.split(" - ")[0] for line in resumed.seen if line.startswith("epoch ")]
    assert any(line.startswith("resuming from run.ckpt after epoch ") for line in resumed.seen)
    assert epochs[-1] == f"epoch {EPOCHS}/{EPOCHS}" and len(epochs) < EPOCHS
    whole = Watched([*options, "--save", "whole.fastnn"], cwd=tmp_path)
    assert whole.finish() == 0, whole.report()
    models = [fastnn.TabularModel.load(tmp_path / name)
              for name in ("resumed.fastnn", "whole.fastnn")]
    np.testing.assert_array_equal(models[0].network.params, models[1].network.params)
    assert models[0].metrics == models[1].metrics
    # the lines of the epochs run after the resume are those of the run never stopped
    tail = [line.split(" - ")[:-2] for line in resumed.seen if line.startswith("epoch ")]
    assert tail == [line.split(" - ")[:-2] for line in whole.seen
                    if line.startswith("epoch ")][-len(tail):]
