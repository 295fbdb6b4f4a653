"""Callbacks: what `fastnn.training.fit` calls after each epoch, with that epoch's logs.

A callback is a function ``f(epoch, logs)`` or a `Callback`. ``epoch`` counts from 0 (as
`fastnn.History` indexes its lists); ``logs`` is a dict of the epoch's ``loss``, its ``lr`` and,
with validation data, its ``val_loss`` and, for a classifier, ``val_accuracy``. Returning True
stops the training after that epoch (None or False goes on). The ready ones follow Keras:
`EarlyStopping`, `ModelCheckpoint` and `CSVLogger`.

A callback with a state (``state_dict`` and ``load_state_dict``) has it saved in the checkpoints
`fit` writes, so a resumed run goes on as if it had never stopped.
"""
import csv
import math
import os

import numpy as np

from fastnn._validation import check_choice, check_int, check_real

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "CSVLogger", "as_callback", "stops"]

# The entries of an epoch's logs, in the order they are shown.
LOG_NAMES = ("loss", "val_loss", "val_accuracy", "lr")


class Callback:
    """Base class of the callbacks: override the methods needed.

    `fit` calls ``on_train_begin(net)`` once, ``on_epoch_end(epoch, logs)`` after each epoch and
    ``on_train_end(history)`` once at the end, also when the training stops early, raises or is
    interrupted by Ctrl-C.
    """

    def on_train_begin(self, net):
        """The training of ``net`` (a `fastnn.MLP`) begins."""

    def on_epoch_end(self, epoch, logs):
        """Epoch ``epoch`` (counted from 0) ended with ``logs``; return True to stop training."""

    def on_train_end(self, history):
        """The training ended; ``history`` is the `fastnn.History` `fit` returns."""

    def state_dict(self):
        """What a checkpoint keeps of the callback, as ``{name: value}``: values that JSON holds
        (None, bool, int, float, str, and lists of them) or NumPy arrays of numbers. Nothing by
        default."""
        return {}

    def load_state_dict(self, state):
        """Continue from a `state_dict` (after ``on_train_begin``, when `fit` resumes)."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)}")


class _Function(Callback):
    """A function ``f(epoch, logs)`` as a callback."""

    def __init__(self, function):
        self.function = function

    def on_epoch_end(self, epoch, logs):
        return self.function(epoch, logs)

    def __repr__(self):
        return repr(self.function)


def as_callback(callback):
    """``callback`` as a `Callback`: itself, or a function ``f(epoch, logs)`` wrapped."""
    if isinstance(callback, Callback):
        return callback
    if isinstance(callback, type) and issubclass(callback, Callback):
        raise TypeError(f"callbacks holds the class {callback.__name__}; give an instance, "
                        f"{callback.__name__}(...)")
    if not callable(callback):
        raise TypeError(f"a callback is a fastnn.callbacks.Callback or a function f(epoch, logs), "
                        f"got {callback!r}")
    return _Function(callback)


def stops(callback, answer):
    """Whether ``answer``, what ``callback.on_epoch_end`` returned, stops the training: True
    does, None and False do not, anything else is a TypeError."""
    if answer is None or isinstance(answer, (bool, np.bool_)):
        return bool(answer)
    raise TypeError(f"a callback returns True to stop the training, or None or False to go on; "
                    f"{callback!r} returned {answer!r}")


def _mode(monitor, mode):
    """"min" or "max" for ``mode`` ("auto": "max" for an accuracy, else "min")."""
    mode = check_choice("mode", mode, ("auto", "min", "max"))
    if mode == "auto":
        return "max" if "accuracy" in monitor else "min"
    return mode


def _watched(callback, logs):
    """The value ``callback`` monitors in ``logs``, or a ValueError naming what the logs hold."""
    value = logs.get(callback.monitor)
    if value is None:
        hint = (" (it is measured on validation data: give fit validation_data or "
                "validation_split)" if callback.monitor.startswith("val_") else "")
        raise ValueError(f"{type(callback).__name__} monitors {callback.monitor!r}, which the "
                         f"epoch's logs do not hold{hint}; they hold {sorted(logs)}")
    return value


def _improves(value, best, mode, min_delta):
    """Whether ``value`` beats ``best`` (None: nothing yet) by more than ``min_delta``."""
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _best_state(state):
    """``state["best"]`` checked: None or a finite number."""
    best = state.get("best")
    if best is not None:
        best = check_real("best", best)
    return best


class EarlyStopping(Callback):
    """Stop when a monitored value has stopped improving, as ``keras.callbacks.EarlyStopping``.

    Parameters
    ----------
    monitor : str, default "val_loss"
        The entry of the logs to watch: "val_loss", "val_accuracy", "loss".
    min_delta : float, default 0.0
        The least change that counts as an improvement (>= 0).
    patience : int, default 10
        Epochs without improvement after which training stops (>= 1).
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower or higher is better; "auto": higher for an accuracy, else lower.
    restore_best_weights : bool, default True
        End the training (however it ends: stopped, all epochs run, or Ctrl-C) with the
        network's parameters and buffers of the best epoch. Keras' default is False, and it
        restores only when it stops the training; fastnn's ``fit(early_stopping=True)`` has
        always restored them.

    Attributes
    ----------
    best : float or None
        The best value seen.
    best_epoch : int or None
        The epoch (from 0) that gave it.
    stopped_epoch : int or None
        The epoch after which it stopped the training (None if it did not).
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=10, mode="auto",
                 restore_best_weights=True):
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be the name of an entry of the logs, got {monitor!r}")
        self.monitor = monitor
        self.min_delta = check_real("min_delta", min_delta, low=0)
        self.patience = check_int("patience", patience, 1)
        self.mode = _mode(monitor, mode)
        if not isinstance(restore_best_weights, (bool, np.bool_)):
            raise TypeError(f"restore_best_weights must be True or False, got "
                            f"{restore_best_weights!r}")
        self.restore_best_weights = bool(restore_best_weights)
        self._reset(None)

    def _reset(self, net):
        self.net = net
        self.best = self.best_epoch = self.stopped_epoch = None
        self.wait = 0
        self._weights = None

    def on_train_begin(self, net):
        self._reset(net)

    def on_epoch_end(self, epoch, logs):
        value = _watched(self, logs)
        if _improves(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                state = self.net.state_dict()
                self._weights = (state["params"], state["buffers"])
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, history):
        if self._weights is not None:
            params, buffers = self._weights
            self.net.load_state_dict({"params": params, "buffers": buffers,
                                      "random_state": self.net.random_state})

    def state_dict(self):
        """``best``, ``best_epoch``, ``wait`` and the best epoch's ``params`` and ``buffers``
        (when restoring them)."""
        state = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}
        if self._weights is not None:
            state["params"], state["buffers"] = self._weights
        return state

    def load_state_dict(self, state):
        if not isinstance(state, dict) or not ({"best", "best_epoch", "wait"} <= set(state) <= {
                "best", "best_epoch", "wait", "params", "buffers"}):
            raise ValueError("an EarlyStopping state has 'best', 'best_epoch', 'wait' and "
                             "maybe 'params' and 'buffers'")
        best = _best_state(state)
        best_epoch = state["best_epoch"]
        if best_epoch is not None:
            best_epoch = check_int("best_epoch", best_epoch, 0)
        if (best is None) != (best_epoch is None):
            raise ValueError("an EarlyStopping state has a best value and its epoch, or neither")
        wait = check_int("wait", state["wait"], 0)
        weights = None
        if "params" in state or "buffers" in state:
            if best is None or not {"params", "buffers"} <= set(state):
                raise ValueError("an EarlyStopping state has the best epoch's params and "
                                 "buffers together, with its best value")
            current = self.net.state_dict()
            # checked as the network checks a state of its own, and kept as copies
            self.net.load_state_dict({"params": state["params"], "buffers": state["buffers"],
                                      "random_state": current["random_state"]})
            weights = (self.net.params.copy(), self.net.buffers.copy())
            self.net.load_state_dict(current)
        self.best, self.best_epoch, self.wait, self._weights = best, best_epoch, wait, weights

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, min_delta={self.min_delta!r}, "
                f"patience={self.patience!r}, mode={self.mode!r}, "
                f"restore_best_weights={self.restore_best_weights!r})")


class ModelCheckpoint(Callback):
    """Save the network after each epoch (or only when it improves), as
    ``keras.callbacks.ModelCheckpoint``: a model file for `fastnn.load`.

    Not to be confused with ``fit(checkpoint=...)``, which writes what resuming the training
    needs (the optimizer's state, the schedule, the random generators, ...).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (atomically, by `fastnn.MLP.save`). It may name the epoch (counted
        from 1) and the logs' entries in ``str.format`` fields: ``"model-{epoch:03d}.fastnn"``,
        ``"model-{val_loss:.3f}.fastnn"``.
    monitor : str, default "val_loss"
        The entry of the logs that decides, with ``save_best_only``, whether an epoch is better.
    save_best_only : bool, default False
        Save only the epochs that improve on the best ``monitor`` so far.
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower or higher is better; "auto": higher for an accuracy, else lower.

    Attributes
    ----------
    best : float or None
        The best value of ``monitor`` seen (with ``save_best_only``).
    saved : list of str
        The files written by the last fit.
    """

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        self.path = os.fsdecode(os.fspath(path))
        if not self.path:
            raise ValueError("ModelCheckpoint needs a file path")
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be the name of an entry of the logs, got {monitor!r}")
        try:
            self.path.format(epoch=1, **dict.fromkeys(LOG_NAMES, 0.0))
        except (KeyError, IndexError, ValueError, AttributeError) as error:
            raise ValueError(f"ModelCheckpoint's path {self.path!r} has a field that is not "
                             f"'epoch' or one of {list(LOG_NAMES)}, or a bad format: "
                             f"{type(error).__name__}: {error}") from None
        self.monitor = monitor
        if not isinstance(save_best_only, (bool, np.bool_)):
            raise TypeError(f"save_best_only must be True or False, got {save_best_only!r}")
        self.save_best_only = bool(save_best_only)
        self.mode = _mode(monitor, mode)
        self.net, self.best, self.saved = None, None, []

    def on_train_begin(self, net):
        folder = os.path.dirname(os.path.abspath(self.path.format(
            epoch=1, **dict.fromkeys(LOG_NAMES, 0.0))))
        if not os.path.isdir(folder):
            raise ValueError(f"ModelCheckpoint cannot save to {self.path!r}: the folder "
                             f"{folder!r} does not exist")
        self.net, self.best, self.saved = net, None, []

    def on_epoch_end(self, epoch, logs):
        if self.save_best_only:
            value = _watched(self, logs)
            if not _improves(value, self.best, self.mode, 0.0):
                return False
            self.best = value
        values = {name: math.nan for name in LOG_NAMES}
        values.update(logs)
        path = self.path.format(epoch=epoch + 1, **values)
        self.net.save(path)
        self.saved.append(path)
        return False

    def state_dict(self):
        """``best``."""
        return {"best": self.best}

    def load_state_dict(self, state):
        if not isinstance(state, dict) or set(state) != {"best"}:
            raise ValueError("a ModelCheckpoint state has 'best'")
        self.best = _best_state(state)

    def __repr__(self):
        return (f"ModelCheckpoint({self.path!r}, monitor={self.monitor!r}, "
                f"save_best_only={self.save_best_only!r}, mode={self.mode!r})")


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file, as ``keras.callbacks.CSVLogger``: the
    columns ``epoch`` (from 0), then the logs' entries (``loss``, ``val_loss``,
    ``val_accuracy``, ``lr``, those the fit has).

    Each row is flushed as it is written, so the file can be followed during the training. When
    `fit` resumes from a checkpoint, the rows written after that checkpoint are cut from the file
    before the training goes on, so each epoch appears once.

    Parameters
    ----------
    path : str or os.PathLike
    separator : str, default ","
        One character.
    append : bool, default False
        Add to the file (with no new header if it has lines) instead of replacing it.
    """

    def __init__(self, path, separator=",", append=False):
        self.path = os.fsdecode(os.fspath(path))
        if not self.path:
            raise ValueError("CSVLogger needs a file path")
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"":
            raise ValueError(f"separator must be one character (not a quote or a line break), "
                             f"got {separator!r}")
        if not isinstance(append, (bool, np.bool_)):
            raise TypeError(f"append must be True or False, got {append!r}")
        self.separator, self.append = separator, bool(append)
        self._file = self._writer = None
        self._resume_at = None

    def on_train_begin(self, net):
        self._close()
        self._resume_at = None
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ValueError(f"CSVLogger cannot write {self.path!r}: the folder {folder!r} does "
                             f"not exist")

    def on_epoch_end(self, epoch, logs):
        if self._file is None:
            self._open(list(logs))
        self._writer.writerow({"epoch": epoch, **logs})
        self._file.flush()
        return False

    def _open(self, names):
        """Open the file for the first row, writing the header when the file starts afresh."""
        if self._resume_at is not None:
            self._file = open(self.path, "r+", newline="", encoding="utf-8")
            self._file.seek(0, os.SEEK_END)
            if self._file.tell() < self._resume_at:
                self._file.close()
                self._file = None
                raise ValueError(f"CSVLogger: {self.path!r} is shorter than when the checkpoint "
                                 f"was written: it was changed since")
            self._file.seek(self._resume_at)
            self._file.truncate()
            header = self._resume_at == 0
        else:
            mode = "a" if self.append else "w"
            self._file = open(self.path, mode, newline="", encoding="utf-8")
            header = not (self.append and self._file.tell() > 0)
        self._writer = csv.DictWriter(self._file, ["epoch", *names], delimiter=self.separator,
                                      extrasaction="ignore")
        if header:
            self._writer.writeheader()

    def on_train_end(self, history):
        self._close()

    def _close(self):
        if self._file is not None:
            self._file.close()
        self._file = self._writer = None

    def state_dict(self):
        """``size``: the file's length in bytes after the last row written (None before)."""
        if self._file is None:
            return {"size": self._resume_at}
        return {"size": self._file.tell()}

    def load_state_dict(self, state):
        if not isinstance(state, dict) or set(state) != {"size"}:
            raise ValueError("a CSVLogger state has 'size'")
        size = state["size"]
        self._resume_at = None if size is None else check_int("size", size, 0)

    def __repr__(self):
        return (f"CSVLogger({self.path!r}, separator={self.separator!r}, "
                f"append={self.append!r})")
