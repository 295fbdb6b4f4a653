"""fit's callbacks: user functions that see each epoch's logs and may stop the training, and the
ready ones of fastnn.callbacks (EarlyStopping, ModelCheckpoint, CSVLogger)."""
import csv
import math

import numpy as np
import pytest

import fastnn
from fastnn.callbacks import Callback, CSVLogger, EarlyStopping, ModelCheckpoint


def data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)


def classifier():
    return fastnn.MLP([4, 16, 3], output_activation="softmax", loss="cross_entropy", seed=0)


def noise(n=40, seed=0):
    """Targets to memorize: the validation loss soon gets worse as training goes on."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)), rng.normal(size=(n, 2))


FIT = dict(optimizer=None, epochs=6, batch_size=16, seed=0, validation_split=0.25)


def fit(net, callbacks, X=None, Y=None, **options):
    if X is None:
        X, Y = data()
    return net.fit(X, Y, **{**FIT, "optimizer": fastnn.Adam(0.01), **options},
                   callbacks=callbacks)


# ---- user functions ------------------------------------------------------------------------------


def test_a_function_sees_each_epochs_logs():
    seen = []
    history = fit(classifier(), [lambda epoch, logs: seen.append((epoch, logs))])
    assert [epoch for epoch, _ in seen] == list(range(6))
    assert all(list(logs) == ["loss", "val_loss", "val_accuracy", "lr"] for _, logs in seen)
    assert [logs["loss"] for _, logs in seen] == history.loss
    assert [logs["val_loss"] for _, logs in seen] == history.val_loss
    assert [logs["val_accuracy"] for _, logs in seen] == history.val_accuracy
    assert all(0 <= a <= 1 for a in history.val_accuracy)


def test_a_regression_has_no_accuracy_and_no_validation_without_validation_data():
    seen = []
    X, Y = noise()
    fastnn.MLP([3, 2], seed=0).fit(X, Y, epochs=2, callbacks=[lambda e, logs: seen.append(logs)])
    assert [sorted(logs) for logs in seen] == [["loss", "lr"]] * 2


def test_a_function_that_returns_true_stops_the_training():
    def stop_after_third(epoch, logs):
        return epoch == 2
    net = classifier()
    history = fit(net, [stop_after_third])
    assert history.epochs == 3 and history.stopped_early and not history.interrupted
    twin = classifier()
    fit(twin, None, epochs=3)
    np.testing.assert_array_equal(net.params, twin.params)


def test_every_callback_sees_the_last_epoch_before_the_training_stops():
    later = []
    history = fit(classifier(), [lambda e, logs: e == 1, lambda e, logs: later.append(e)])
    assert history.epochs == 2 and later == [0, 1]


def test_each_callback_gets_its_own_copy_of_the_logs():
    def meddle(epoch, logs):
        logs["loss"] = -1.0
    seen = []
    history = fit(classifier(), [meddle, lambda e, logs: seen.append(logs["loss"])], epochs=2)
    assert seen == history.loss


@pytest.mark.parametrize("answer", [1, "stop", [True], 0.0])
def test_a_callback_answering_other_than_true_false_or_none_is_refused(answer):
    with pytest.raises(TypeError, match="returns True to stop the training"):
        fit(classifier(), [lambda epoch, logs: answer])


@pytest.mark.parametrize("callbacks, message", [
    (lambda epoch, logs: None, "must be a list of callbacks"),
    ("CSVLogger", "must be a list of callbacks"),
    ([EarlyStopping], "give an instance"),
    ([42], "a function f\\(epoch, logs\\)"),
])
def test_bad_callbacks_are_refused_before_training(callbacks, message):
    net = classifier()
    before = net.params.copy()
    with pytest.raises(TypeError, match=message):
        fit(net, callbacks)
    np.testing.assert_array_equal(net.params, before)


def test_a_callback_object_is_told_when_training_begins_and_ends():
    class Recorder(Callback):
        def __init__(self):
            self.events = []

        def on_train_begin(self, net):
            self.events.append(("begin", net))

        def on_epoch_end(self, epoch, logs):
            self.events.append(("epoch", epoch))

        def on_train_end(self, history):
            self.events.append(("end", history.epochs))
    recorder, net = Recorder(), classifier()
    fit(net, [recorder], epochs=2)
    assert recorder.events == [("begin", net), ("epoch", 0), ("epoch", 1), ("end", 2)]


def test_the_end_is_told_when_the_training_raises():
    ended = []

    class Ending(Callback):
        def on_train_end(self, history):
            ended.append(history.epochs)

    def explode(epoch, logs):
        if epoch == 1:
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        fit(classifier(), [explode, Ending()])
    assert ended == [2]


# ---- EarlyStopping -------------------------------------------------------------------------------


def test_early_stopping_is_fits_early_stopping():
    X, Y = noise()
    net, twin = fastnn.MLP([3, 32, 2], seed=0), fastnn.MLP([3, 32, 2], seed=0)
    options = dict(optimizer=None, epochs=60, batch_size=8, seed=0, validation_split=0.3)
    by_argument = net.fit(X, Y, **{**options, "optimizer": fastnn.Adam(0.02)},
                          early_stopping=True, patience=3)
    stopper = EarlyStopping(patience=3)
    by_callback = twin.fit(X, Y, **{**options, "optimizer": fastnn.Adam(0.02)},
                           callbacks=[stopper])
    assert by_argument == by_callback and by_callback.stopped_early
    np.testing.assert_array_equal(net.params, twin.params)
    assert stopper.best_epoch == by_callback.best_epoch
    assert stopper.best == by_callback.val_loss[stopper.best_epoch]
    assert stopper.stopped_epoch == by_callback.epochs - 1 == stopper.best_epoch + 3


def test_early_stopping_restores_the_best_epochs_weights():
    X, Y = noise()
    weights = []
    net = fastnn.MLP([3, 32, 2], seed=0)
    history = net.fit(X, Y, fastnn.Adam(0.02), epochs=60, batch_size=8, seed=0,
                      validation_split=0.3,
                      callbacks=[lambda e, logs: weights.append(net.params.copy()),
                                 EarlyStopping(patience=3)])
    np.testing.assert_array_equal(net.params, weights[history.best_epoch])
    kept = fastnn.MLP([3, 32, 2], seed=0)
    kept.fit(X, Y, fastnn.Adam(0.02), epochs=60, batch_size=8, seed=0, validation_split=0.3,
             callbacks=[EarlyStopping(patience=3, restore_best_weights=False)])
    np.testing.assert_array_equal(kept.params, weights[-1])


def test_early_stopping_on_accuracy_waits_for_a_higher_one():
    stopper = EarlyStopping("val_accuracy", patience=2)
    assert stopper.mode == "max"
    history = fit(classifier(), [stopper], epochs=40)
    best = max(history.val_accuracy)
    assert stopper.best == best and history.val_accuracy[stopper.best_epoch] == best
    if history.stopped_early:
        assert all(a <= best for a in history.val_accuracy[stopper.best_epoch:])


def test_early_stopping_names_what_the_logs_lack():
    X, Y = noise()
    with pytest.raises(ValueError, match="monitors 'val_loss'.*give fit validation_data"):
        fastnn.MLP([3, 2], seed=0).fit(X, Y, epochs=2, callbacks=[EarlyStopping()])


@pytest.mark.parametrize("options, error, message", [
    (dict(patience=0), ValueError, "patience must be >= 1"),
    (dict(min_delta=-1), ValueError, "min_delta must be >= 0"),
    (dict(mode="up"), ValueError, "unknown mode .up."),
    (dict(monitor=3), TypeError, "monitor must be the name"),
    (dict(restore_best_weights="yes"), TypeError, "restore_best_weights must be True or False"),
])
def test_early_stopping_checks_its_settings(options, error, message):
    with pytest.raises(error, match=message):
        EarlyStopping(**options)


# ---- ModelCheckpoint -----------------------------------------------------------------------------


def test_model_checkpoint_saves_each_epoch_as_a_model_file(tmp_path):
    weights = []
    net = classifier()
    saver = ModelCheckpoint(tmp_path / "model-{epoch:02d}-{val_loss:.3f}.fastnn")
    history = fit(net, [lambda e, logs: weights.append(net.params.copy()), saver], epochs=3)
    names = [f"model-{k + 1:02d}-{v:.3f}.fastnn" for k, v in enumerate(history.val_loss)]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert saver.saved == [str(tmp_path / name) for name in names]
    for name, params in zip(names, weights):
        np.testing.assert_array_equal(fastnn.load(tmp_path / name).params, params)


def test_model_checkpoint_can_keep_only_the_best(tmp_path):
    X, Y = noise()
    saved = []

    class Watch(ModelCheckpoint):
        def on_epoch_end(self, epoch, logs):
            count = len(self.saved)
            super().on_epoch_end(epoch, logs)
            if len(self.saved) > count:
                saved.append(epoch)
    net = fastnn.MLP([3, 32, 2], seed=0)
    history = net.fit(X, Y, fastnn.Adam(0.02), epochs=15, batch_size=8, seed=0,
                      validation_split=0.3,
                      callbacks=[Watch(tmp_path / "best.fastnn", save_best_only=True)])
    improving = [k for k, v in enumerate(history.val_loss) if v < min(history.val_loss[:k],
                                                                     default=math.inf)]
    assert saved == improving and improving[-1] == history.best_epoch
    assert [p.name for p in tmp_path.iterdir()] == ["best.fastnn"]


@pytest.mark.parametrize("path, message", [
    ("model-{step}.fastnn", "has a field that is not 'epoch'"),
    ("model-{epoch:q}.fastnn", "bad format"),
    ("", "needs a file path"),
])
def test_model_checkpoint_refuses_a_path_it_cannot_fill(path, message):
    with pytest.raises(ValueError, match=message):
        ModelCheckpoint(path)


def test_model_checkpoint_refuses_a_missing_folder_before_training(tmp_path):
    net = classifier()
    before = net.params.copy()
    with pytest.raises(ValueError, match="does not exist"):
        fit(net, [ModelCheckpoint(tmp_path / "absent" / "model.fastnn")])
    np.testing.assert_array_equal(net.params, before)


# ---- CSVLogger -----------------------------------------------------------------------------------


def rows(path, delimiter=","):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f, delimiter=delimiter))


def test_csv_logger_writes_a_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    history = fit(classifier(), [CSVLogger(path)], epochs=3)
    table = rows(path)
    assert table[0] == ["epoch", "loss", "val_loss", "val_accuracy", "lr"]
    assert [int(row[0]) for row in table[1:]] == [0, 1, 2]
    assert [float(row[1]) for row in table[1:]] == history.loss
    assert [float(row[2]) for row in table[1:]] == history.val_loss


def test_csv_logger_replaces_or_appends(tmp_path):
    path = tmp_path / "log.tsv"
    fit(classifier(), [CSVLogger(path, separator="\t")], epochs=2)
    fit(classifier(), [CSVLogger(path, separator="\t")], epochs=2)
    assert len(rows(path, "\t")) == 3
    fit(classifier(), [CSVLogger(path, separator="\t", append=True)], epochs=2)
    table = rows(path, "\t")
    assert len(table) == 5 and table[0][0] == "epoch" and table[3][0] == "0"


@pytest.mark.parametrize("options, error, message", [
    (dict(separator=",,"), ValueError, "separator must be one character"),
    (dict(separator="\n"), ValueError, "separator must be one character"),
    (dict(append="no"), TypeError, "append must be True or False"),
])
def test_csv_logger_checks_its_settings(tmp_path, options, error, message):
    with pytest.raises(error, match=message):
        CSVLogger(tmp_path / "log.csv", **options)


def test_a_multi_label_sigmoid_output_gets_the_share_of_outputs_right():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    Y = np.c_[X[:, 0] > 0, X[:, 1] > 0].astype(float)
    net = fastnn.MLP([4, 8, 2], output_activation="sigmoid", loss="cross_entropy", seed=0)
    history = net.fit(X[:60], Y[:60], epochs=2, validation_data=(X[60:], Y[60:]))
    hits = (net.predict(X[60:]) > 0.5) == (Y[60:] > 0.5)
    assert history.val_accuracy[-1] == hits.mean()
