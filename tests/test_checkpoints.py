"""fit(checkpoint=..., resume=...): a run resumed from a checkpoint ends as the run never stopped,
bit for bit; a checkpoint of another run is refused; a damaged or hostile checkpoint is refused
without anything in it being executed."""
import io
import json
import shutil
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import checkpoints
from fastnn.callbacks import Callback, CSVLogger, ModelCheckpoint
from fastnn.schedules import ExponentialLR, ReduceLROnPlateau


def data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)


def network():
    return fastnn.MLP([5, 24, 3], output_activation="softmax", loss="cross_entropy", seed=1,
                      dropout=0.2, batch_norm=True)


SCHEDULES = {"plateau": lambda: ReduceLROnPlateau(factor=0.5, patience=1),
             "per-step": lambda: ExponentialLR(0.999, interval="step"), "none": lambda: None}


def run(epochs, schedule="plateau", seed=3, callbacks=(), X=None, y=None, **options):
    """A fit as a script would write it: everything made afresh, then fit."""
    if X is None:
        X, y = data()
    net = network()
    history = net.fit(X, y, fastnn.Adam(0.01), epochs=epochs, batch_size=16, seed=seed,
                      validation_split=0.25, schedule=SCHEDULES[schedule](),
                      callbacks=list(callbacks), **options)
    return net, history


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("every", [1, 2])
def test_a_resumed_run_ends_as_the_run_never_stopped(tmp_path, schedule, every):
    path = tmp_path / "run.ckpt"
    whole, whole_history = run(7, schedule)
    run(3, schedule, checkpoint=path, checkpoint_every=every)
    resumed, history = run(7, schedule, checkpoint=path, checkpoint_every=every, resume=True)
    assert history == whole_history
    np.testing.assert_array_equal(resumed.params, whole.params)
    np.testing.assert_array_equal(resumed.buffers, whole.buffers)
    assert resumed.random_state == whole.random_state


def test_resume_true_starts_afresh_without_a_checkpoint_file(tmp_path):
    path = tmp_path / "run.ckpt"
    net, history = run(2, checkpoint=path, resume=True)
    twin, twin_history = run(2)
    assert history == twin_history and path.exists()
    np.testing.assert_array_equal(net.params, twin.params)


def test_without_a_seed_the_shuffling_and_the_split_are_resumed(tmp_path):
    path, copy = tmp_path / "run.ckpt", tmp_path / "copy.ckpt"
    run(2, seed=None, checkpoint=path)
    shutil.copy(path, copy)
    first, first_history = run(5, seed=None, resume=path)
    second, second_history = run(5, seed=None, resume=copy)
    assert first_history == second_history
    np.testing.assert_array_equal(first.params, second.params)


def test_early_stopping_and_the_callbacks_states_are_resumed(tmp_path):
    X, Y = np.random.default_rng(0).normal(size=(60, 5)), np.random.default_rng(1).normal(
        size=(60, 3))

    def noise_run(epochs, log, **options):
        net = fastnn.MLP([5, 32, 3], seed=0, dropout=0.1)
        history = net.fit(X, Y, fastnn.Adam(0.02), epochs=epochs, batch_size=8, seed=0,
                          validation_split=0.3, early_stopping=True, patience=4,
                          callbacks=[CSVLogger(log), ModelCheckpoint(
                              tmp_path / "best.fastnn", save_best_only=True)], **options)
        return net, history
    whole, whole_history = noise_run(40, tmp_path / "whole.csv")
    assert whole_history.stopped_early
    path = tmp_path / "run.ckpt"
    stop_at = whole_history.epochs - 2
    noise_run(stop_at, tmp_path / "log.csv", checkpoint=path, checkpoint_every=3)
    # the epochs after the last checkpoint ran and were logged, then the run died
    resumed, history = noise_run(40, tmp_path / "log.csv", checkpoint=path, resume=True)
    assert history == whole_history
    np.testing.assert_array_equal(resumed.params, whole.params)
    assert (tmp_path / "log.csv").read_text() == (tmp_path / "whole.csv").read_text()
    # a finished run resumed does nothing more
    again, again_history = noise_run(40, tmp_path / "again.csv", checkpoint=path, resume=True)
    assert again_history == whole_history
    np.testing.assert_array_equal(again.params, whole.params)


def test_a_callback_of_ones_own_keeps_its_state(tmp_path):
    class Counter(Callback):
        def on_train_begin(self, net):
            self.count, self.trace = 0, np.zeros(2)

        def on_epoch_end(self, epoch, logs):
            self.count += 1
            self.trace += [1, logs["loss"]]

        def state_dict(self):
            return {"count": self.count, "trace": self.trace.copy()}

        def load_state_dict(self, state):
            self.count, self.trace = state["count"], np.array(state["trace"])
    path, counter = tmp_path / "run.ckpt", Counter()
    run(2, callbacks=[counter], checkpoint=path)
    run(5, callbacks=[counter], checkpoint=path, resume=True)
    whole = Counter()
    run(5, callbacks=[whole])
    assert counter.count == 5 and np.array_equal(counter.trace, whole.trace)


@pytest.mark.parametrize("state, error, message", [
    ({"when": object()}, TypeError, "keeps None, booleans, numbers"),
    ({"bad name": 1}, ValueError, "keys of letters, digits and underscores"),
    ({"table": np.array(["a"])}, TypeError, "arrays of numbers"),
    ({"value": float("nan")}, ValueError, "is NaN"),
])
def test_a_state_a_checkpoint_cannot_keep_is_refused(tmp_path, state, error, message):
    class Odd(Callback):
        def state_dict(self):
            return state
    with pytest.raises(error, match=message):
        run(1, callbacks=[Odd()], checkpoint=tmp_path / "run.ckpt")


# ---- refused: a checkpoint of another run ------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "run.ckpt"
    run(2, checkpoint=path)
    return path


@pytest.mark.parametrize("change, message", [
    (dict(batch_size=8), "batch_size 8 \\(the checkpoint's: 16\\)"),
    (dict(seed=4), "seed 4"),
    (dict(shuffle=False), "shuffle False"),
    (dict(clip_grad_norm=1.0), "clip_grad_norm 1.0"),
    (dict(optimizer=fastnn.Adam(0.01, beta1=0.8)), "optimizer"),
    (dict(optimizer=fastnn.SGD(0.01)), "optimizer"),
    (dict(schedule=None), "schedule None"),
    (dict(validation_split=0.5), "validation_split 0.5"),
    (dict(early_stopping=True), "callbacks \\[\\] that keep a state, this fit has "
                                "\\['EarlyStopping'\\]"),
])
def test_a_checkpoint_of_a_fit_with_other_settings_is_refused(saved, change, message):
    X, y = data()
    options = dict(optimizer=fastnn.Adam(0.01), epochs=4, batch_size=16, seed=3,
                   validation_split=0.25, schedule=SCHEDULES["plateau"]())
    options.update(change)
    net = network()
    before = net.state_dict()
    with pytest.raises(fastnn.ModelFileError, match=message):
        net.fit(X, y, resume=saved, **options)
    np.testing.assert_array_equal(net.params, before["params"])


def test_a_checkpoint_of_other_data_or_another_network_is_refused(saved):
    X, y = data()
    with pytest.raises(fastnn.ModelFileError, match="training data are not the checkpoint's"):
        run(4, X=X + 1, y=y, resume=saved)
    with pytest.raises(fastnn.ModelFileError, match="of another network"):
        fastnn.MLP([5, 24, 3], output_activation="softmax", loss="cross_entropy").fit(
            X, y, resume=saved)
    with pytest.raises(ValueError, match="at epoch 2, past epochs=1"):
        run(1, resume=saved)


@pytest.mark.parametrize("resume, checkpoint, error, message", [
    (True, None, ValueError, "give checkpoint=PATH"),
    (3, None, TypeError, "resume must be a path"),
    ("absent.ckpt", None, FileNotFoundError, "no fastnn checkpoint"),
])
def test_bad_resume_arguments_are_refused(tmp_path, resume, checkpoint, error, message):
    with pytest.raises(error, match=message):
        run(1, resume=tmp_path / resume if isinstance(resume, str) else resume,
            checkpoint=checkpoint)


def test_a_checkpoint_path_that_cannot_be_written_is_refused_before_training(tmp_path):
    net = network()
    before = net.params.copy()
    with pytest.raises(FileNotFoundError, match="the folder .* does not exist"):
        net.fit(*data(), checkpoint=tmp_path / "absent" / "run.ckpt")
    with pytest.raises(IsADirectoryError):
        net.fit(*data(), checkpoint=tmp_path)
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        net.fit(*data(), checkpoint=tmp_path / "run.ckpt", checkpoint_every=0)
    np.testing.assert_array_equal(net.params, before)


# ---- refused: damaged and hostile checkpoints ---------------------------------------------------


def members(path):
    """The checkpoint's members, {name without .npy: array}, read as they are."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename[:-4]: np.lib.format.read_array(archive.open(info),
                                                             allow_pickle=False)
                for info in archive.infolist()}


def rewrite(path, contents, compression=zipfile.ZIP_STORED):
    """Write ``contents`` ({name: array}) as an .npz archive at ``path``."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, array in contents.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=True)
            archive.writestr(f"{name}.npy", buffer.getvalue())


def state_of(contents):
    return json.loads(str(contents["state"]))


def with_state(contents, change):
    state = state_of(contents)
    change(state)
    return {**contents, "state": np.array(json.dumps(state))}


class Exploding:
    def __reduce__(self):
        return (print, ("UNPICKLED",))


def edit(key, value):
    def change(state):
        state[key] = value
    return change


def edit_history(key, value):
    def change(state):
        state["history"][key] = value
    return change


HOSTILE = {
    "a pickle": lambda c: {**c, "state": np.array([Exploding()], dtype=object)},
    "a pickled optimizer state": lambda c: {**c, "optimizer.exp_avg": np.array(
        [Exploding()], dtype=object)},
    "an unknown member": lambda c: {**c, "extra": np.zeros(3)},
    "a member missing": lambda c: {k: v for k, v in c.items() if k != "optimizer.exp_avg_sq"},
    "params of another size": lambda c: {**c, "params": c["params"][:-1]},
    "NaN params": lambda c: {**c, "params": np.full_like(c["params"], np.nan)},
    "another format": lambda c: {**c, "format": np.array("fastnn.MLP")},
    "a newer version": lambda c: {**c, "version": np.array(2)},
    "a state that is not JSON": lambda c: {**c, "state": np.array("{not json")},
    "a key named twice": lambda c: {**c, "state": np.array(
        str(c["state"])[:-1] + ', "epoch": 1}')},
    "a NaN loss": lambda c: {**c, "state": np.array(
        str(c["state"]).replace('"loss": [', '"loss": [NaN, ', 1))},
    "an unknown key": lambda c: with_state(c, edit("extra", 1)),
    "a history too short": lambda c: with_state(c, edit_history("loss", [0.5])),
    "a best epoch past the end": lambda c: with_state(c, edit_history("best_epoch", 9)),
    "an epoch count of the wrong type": lambda c: with_state(c, edit("epoch", "2")),
    "a generator state out of range": lambda c: with_state(c, lambda s: s["shuffle_rng"][
        "state"].update(state=2 ** 200)),
    "another kind of generator": lambda c: with_state(c, lambda s: s["shuffle_rng"].update(
        bit_generator="MT19937")),
    "a negative step": lambda c: with_state(c, lambda s: s["optimizer"].update(step=-1)),
    "a callback array not announced": lambda c: {**c, "callback0.weights": np.zeros(2)},
    "a bad schedule state": lambda c: with_state(c, lambda s: s["schedule"].update(
        last_epoch=-3)),
}


@pytest.mark.parametrize("damage", list(HOSTILE))
def test_a_hostile_checkpoint_is_refused_and_never_unpickled(saved, damage, capfd):
    contents = members(saved)
    rewrite(saved, HOSTILE[damage](contents))
    net = network()
    before = net.state_dict()
    X, y = data()
    with pytest.raises(fastnn.ModelFileError, match="cannot resume from"):
        net.fit(X, y, fastnn.Adam(0.01), epochs=4, batch_size=16, seed=3,
                validation_split=0.25, schedule=SCHEDULES["plateau"](), resume=saved)
    assert "UNPICKLED" not in capfd.readouterr().out
    np.testing.assert_array_equal(net.params, before["params"])
    assert net.random_state == before["random_state"]


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "compressed", "a model file"])
def test_a_damaged_checkpoint_is_refused(saved, tmp_path, damage):
    if damage == "truncated":
        saved.write_bytes(saved.read_bytes()[:-200])
    elif damage == "not a zip":
        saved.write_text("epoch,loss\n0,1.0\n")
    elif damage == "compressed":
        rewrite(saved, members(saved), zipfile.ZIP_DEFLATED)
    else:
        network().save(saved)
    message = "a model file, not a checkpoint" if damage == "a model file" else "cannot resume"
    with pytest.raises(fastnn.ModelFileError, match=message):
        run(4, resume=saved)


def test_reading_checks_the_members_before_reading_them(saved):
    # the network's size bounds every vector: a member that claims more is refused from its
    # header, before its data are read
    contents = members(saved)
    contents["params"] = np.zeros(10 ** 6)
    rewrite(saved, contents)
    with pytest.raises(fastnn.ModelFileError, match="its member params is 8000128 bytes long"):
        checkpoints.read(saved, network(), fastnn.Adam())
