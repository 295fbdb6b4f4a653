"""Training by minibatches: `fit` and its `History`.

The minibatch loop itself (gather, forward, backward, gradient clipping, update, a per-batch
learning-rate schedule, loss accumulation) runs in compiled code for a whole epoch at a time, or,
while a progress bar is shown, in compiled chunks of about 0.1 s; Python is entered between
epochs (and chunks), never per batch, for validation, an epoch-interval schedule, callbacks,
checkpoints, the history and progress.

Ctrl-C stops the compiled epoch at the next batch boundary (or within the batch, which then
changes nothing): `fit` returns the History so far, marked ``interrupted``.
"""
import functools
import hashlib
import json
import math
import operator
import os
from dataclasses import dataclass, field

import numpy as np

from fastnn import checkpoints, io, threads
from fastnn._validation import CheckedData, check_int, check_real
from fastnn.callbacks import EarlyStopping, as_callback, stops
from fastnn.layers import stream_key
from fastnn.optimizers import Adam, Optimizer
from fastnn.progress import reporter
from fastnn.schedules import check_schedule
from fastnn.streams import Stream, is_stream, stream_data

__all__ = ["History", "fit", "run_epoch"]


@dataclass
class History:
    """What `fit` recorded, one entry per epoch.

    Attributes
    ----------
    loss : list of float
        The training objective of each epoch: the mean over its samples of J on their batch,
        taken before each batch's update (as Keras and scikit-learn report it).
    val_loss : list of float
        The objective on the validation data after each epoch (empty without validation data).
    val_accuracy : list of float
        For a classifier (cross-entropy of a softmax or sigmoid output), the share of the
        validation rows (weighted by their sample weights) whose predicted class is the target's
        (the most likely class of a softmax; each output above 0.5 or not, for a sigmoid) after
        each epoch; empty otherwise.
    lr : list of float
        The optimizer's learning rate at the start of each epoch, which its first batch used
        (a per-batch schedule changes it within the epoch).
    best_epoch : int or None
        Index of the epoch with the lowest validation loss (the lowest training loss without
        validation data); None if no epoch ran. With early stopping, the network ends with the
        weights of this epoch.
    stopped_early : bool
        Whether a callback (early stopping among them) ended the training before ``epochs``.
    interrupted : bool
        Whether Ctrl-C ended the training (see `fit`).
    """

    loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    best_epoch: int = None
    stopped_early: bool = False
    interrupted: bool = False

    @property
    def epochs(self):
        """The number of epochs run."""
        return len(self.loss)

    def plot(self, ax=None, *, metric=None, log=False, kept=None, title="Loss per epoch"):
        """Draw the training and validation loss of each epoch, the kept epoch marked (with
        matplotlib: ``pip install "fastnn-cpu[plot]"``).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw; a new pyplot figure by default.
        metric : str, optional
            Another per-epoch record to draw against a second y-axis, by its name: ``"lr"``,
            or any list attribute of one value per epoch (with its ``"val_" + metric``).
        log : bool, default False
            A logarithmic loss axis.
        kept : int, optional
            The index of the epoch whose weights the network kept; by default `best_epoch` if
            training stopped early, else the last epoch (pass `best_epoch` after an early-stopping
            fit that ran all its epochs: fit restored it too).
        title : str, default "Loss per epoch"

        Returns
        -------
        matplotlib.axes.Axes

        See Also
        --------
        fastnn.plots.loss_curves : what this calls, where the rest is described.
        """
        from fastnn.plots import loss_curves  # fastnn.plots imports this module

        return loss_curves(self, ax, metric=metric, log=log, kept=kept, title=title)


def check_optimizer(optimizer):
    """``optimizer`` if it is a fastnn optimizer, else a TypeError."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastnn optimizer (fastnn.SGD, fastnn.Adam, "
                        f"fastnn.AdamW, fastnn.RMSprop), got {type(optimizer).__name__}")
    return optimizer


def check_clip_grad_norm(clip_grad_norm):
    """The maximum gradient norm the compiled step takes: 0 (no clipping) for None, else
    ``clip_grad_norm`` checked to be a finite real > 0."""
    if clip_grad_norm is None:
        return 0.0
    max_norm = check_real("clip_grad_norm", clip_grad_norm, low=0)
    if max_norm == 0:
        raise ValueError("clip_grad_norm must be > 0 (or None for no clipping), got 0.0")
    return max_norm


def _split(net, X, Y, sample_weight, validation_data, validation_split, split_seed):
    """The checked training data and validation data (None without validation)."""
    train = net.check_data(X, Y, sample_weight)
    if validation_data is not None:
        if validation_split:
            raise ValueError("give validation_data or validation_split, not both")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a pair (X_val, Y_val) or a triple "
                             "(X_val, Y_val, sample_weight_val)")
        try:
            return train, net.check_data(*validation_data)
        except (ValueError, TypeError) as error:
            raise type(error)(f"validation_data: {error}") from None
    if not validation_split:
        return train, None
    n = train.X.shape[0]
    n_train = int(n * (1 - validation_split))
    if n_train == 0 or n_train == n:
        raise ValueError(f"validation_split={validation_split} of {n} samples leaves "
                         f"{'no training' if n_train == 0 else 'no validation'} samples")
    # a stream of its own: the shuffling of the epochs draws from the seed's first one
    rng = np.random.default_rng(np.random.SeedSequence(split_seed, spawn_key=(SPLIT_STREAM,)))
    held = np.zeros(n, dtype=bool)
    held[_held_out(n, _classes(net, train.Y), n - n_train, rng)] = True
    train, validation = (CheckedData(*(a[rows] if a is not None else None for a in train))
                         for rows in (~held, held))
    if min(net._normalizer(train), net._normalizer(validation)) <= 0:
        raise ValueError("validation_split leaves a part whose sample weights are all zero (or "
                         "whose class weights sum to zero)")
    return train, validation


def _classes(net, Y):
    """The class of each row of the checked targets Y, for a classifier (cross-entropy of a
    softmax output, or of a single sigmoid output); None for any other network."""
    if net.loss_name != "cross_entropy":
        return None
    if net.output_activation == "softmax":
        return Y.argmax(axis=1)
    return Y[:, 0] > 0.5 if Y.shape[1] == 1 else None


def _held_out(n, classes, n_held, rng):
    """``n_held`` of ``n`` row indices drawn at random by ``rng``: from each class (with
    ``classes``) its share of them, as scikit-learn's stratified split, else from all rows."""
    if classes is None:
        return rng.permutation(n)[:n_held]
    labels, counts = np.unique(classes, return_counts=True)
    quotas = counts * (n_held / n)
    take = np.floor(quotas).astype(np.intp)
    # the rows left over go one each to the classes with the largest remainders
    take[np.argsort(take - quotas, kind="stable")[:n_held - take.sum()]] += 1
    groups = np.split(np.argsort(classes, kind="stable"), np.cumsum(counts)[:-1])
    return np.concatenate([rng.permutation(group)[:k] for group, k in zip(groups, take)])


def run_epoch(net, data, optimizer, batch_size, order=None, validation=None, clip_grad_norm=None,
              schedule=None, progress=None):
    """One epoch of minibatch updates on checked data, run in compiled code, the validation
    objective after it, and a step of the schedule, as `fit` runs each epoch.

    Parameters
    ----------
    net : fastnn.MLP
    data : CheckedData or fastnn.streams.Stream
        From ``net.check_data``, or a stream read chunk by chunk.
    optimizer : fastnn.Optimizer
    batch_size : int
        Rows per update (>= 1); the last batch may be smaller.
    order : ndarray of int, shape (N,), or numpy.random.Generator, optional
        The order in which to visit the rows (gathered into a reused buffer); as stored if None.
        For a stream, the generator that shuffles it (see `fastnn.streams`).
    validation : CheckedData or fastnn.streams.Stream, optional
        Checked data on which to evaluate the objective after the epoch.
    clip_grad_norm : float, optional
        Clip each batch's gradient to this norm before its update (see `fit`).
    schedule : fastnn.schedules.Schedule, optional
        Bound to ``optimizer`` if it is not yet. One with ``interval="step"`` steps after each
        batch, inside the compiled loop; one with ``interval="epoch"`` steps once after the epoch
        (`fastnn.schedules.ReduceLROnPlateau` with the validation loss, or with the training
        loss without validation).
    progress : callable, optional
        ``progress(rows, loss)``, called about every 0.1 s during the epoch (see
        `fastnn.MLP.train_epoch`).

    Returns
    -------
    loss : float
        The mean over the samples (weighted) of J on their batch before its update.
    val_loss : float or None
        The objective on ``validation`` after the epoch.

    Raises
    ------
    FloatingPointError
        If a loss, a parameter or the validation loss becomes NaN or infinite; the network, the
        optimizer and the schedule are then restored to their state at the start of the epoch.
    """
    if validation is not None and not isinstance(validation, (CheckedData, Stream)):
        raise TypeError("validation must be the CheckedData that net.check_data returns, or a "
                        "fastnn.streams.Stream")
    check_optimizer(optimizer)
    if schedule is not None:
        schedule = check_schedule(schedule, optimizer)
    per_batch = schedule if schedule is not None and schedule.interval == "step" else None
    train_epoch = (functools.partial(data.train_epoch, net) if isinstance(data, Stream)
                   else functools.partial(net.train_epoch, data))
    if validation is None:
        loss = train_epoch(optimizer, batch_size, order, clip_grad_norm, per_batch, progress)
        val_loss = None
    else:
        try:
            # refused before the epoch changes anything (a stream's chunks: when read)
            if not isinstance(validation, Stream):
                validation = net.check_data(validation)
        except ValueError as error:
            raise ValueError(f"validation: {error}") from None
        snapshot = (net.state_dict(), optimizer.state_dict(),
                    per_batch.state_dict() if per_batch is not None else None)
        loss = train_epoch(optimizer, batch_size, order, clip_grad_norm, per_batch, progress)
        val_loss = (validation.loss(net) if isinstance(validation, Stream)
                    else net.loss(validation))
        if not math.isfinite(val_loss):
            net.load_state_dict(snapshot[0])
            optimizer.load_state_dict(snapshot[1])
            if per_batch is not None:
                per_batch.load_state_dict(snapshot[2])
            raise FloatingPointError(
                "the validation loss became NaN or infinite; the network, the optimizer and the "
                "schedule were restored to their state at the start of the epoch")
    if schedule is not None and per_batch is None:
        schedule._epoch_end(loss, val_loss)
    return loss, val_loss


def fit(net, X, Y, optimizer=None, epochs=10, batch_size=32, shuffle=True, seed=None,
        validation_data=None, validation_split=0.0, early_stopping=False, patience=10,
        min_delta=0.0, verbose=0, sample_weight=None, clip_grad_norm=None, schedule=None,
        callbacks=None, checkpoint=None, checkpoint_every=1, resume=None, n_threads=None):
    """Train ``net`` on (X, Y) by minibatch updates.

    Parameters
    ----------
    net : fastnn.MLP
    X : array-like of shape (N, n_in), or a stream
        A stream is read chunk by chunk, each epoch, never whole: a Dask array or DataFrame, a
        NumPy memory-map, an iterable (or a function returning one) of ``(X, Y)`` or ``(X, Y,
        sample_weight)`` chunks with ``Y`` None, or a `fastnn.streams.Stream` (see there; not
        with ``validation_split``, ``checkpoint`` or ``resume``).
    Y : array-like of shape (N, n_out), or (N,) integer labels for softmax cross-entropy
    optimizer : fastnn.SGD or fastnn.Adam, optional
        Default ``Adam()``. Its state carries over between calls to fit with the same optimizer.
    epochs : int, default 10
        Passes over the training data (>= 0). A resumed run counts the epochs done before its
        checkpoint: it runs ``epochs`` minus those.
    batch_size : int, default 32
        Rows per update (>= 1); the last, smaller batch of an epoch is used, not dropped.
    shuffle : bool, default True
        Visit the rows in a new random order each epoch; in their order when False.
    seed : int or None
        Seed of the shuffling, of the dropout masks and of ``validation_split``: the same seed
        gives the same fit. With None, the rows are shuffled (and split) afresh and the dropout
        generator goes on from where it is.
    validation_data : pair (X_val, Y_val) or triple (X_val, Y_val, sample_weight_val), optional
        Data on which the objective is measured after each epoch; with a streamed X, it may be
        a stream too (a pair of Dask collections, or a `fastnn.streams.Stream`).
    validation_split : float in [0, 1), default 0.0
        Instead of validation_data, hold out this fraction of the rows (``N - int(N (1 -
        validation_split))`` of them), drawn at random from the seed as scikit-learn's early
        stopping draws them: for a classifier (cross-entropy of a softmax output, or of one
        sigmoid output) each class keeps its share in both parts (stratified), so a file sorted
        by class still gives a validation set of every class. (fastnn 0.1 held out the last
        rows, as Keras does.) The other rows are trained on in their order. The validation
        objective is measured in evaluation mode (no dropout, batch normalization by its
        running statistics).
    early_stopping : bool, default False
        Stop when the validation loss has not improved by more than ``min_delta`` for
        ``patience`` epochs, and end with the weights of the best epoch (also when Ctrl-C ends
        the training). Needs validation. The same as the callback
        ``fastnn.callbacks.EarlyStopping("val_loss", min_delta, patience)``.
    patience : int, default 10
        Epochs without improvement before stopping (>= 1).
    min_delta : float, default 0.0
        The least decrease of the validation loss that counts as an improvement (>= 0).
    verbose : bool or {0, 1, 2}, default 0
        0 (False): silent. 1 (True): a progress bar per epoch when standard output is a terminal
        (tqdm's where it is installed, ``pip install "fastnn-cpu[progress]"``, else a plain text
        bar) with the running loss, the time left and the samples per second, ending as a line
        with the epoch's validation loss and accuracy; one line per epoch when standard output
        is a pipe or a file. 2: one line per epoch. The bar runs the epoch in compiled chunks of
        about 0.1 s: nothing runs per batch in Python, and the result is the same, bit for bit.
    sample_weight : array-like of shape (N,), optional
        Non-negative weights of the samples: each batch's objective is its weighted mean
        ``sum_i s_i L_i / sum_i s_i`` (a batch whose weights are all zero makes no update).
    clip_grad_norm : float, optional
        Clip each batch's gradient, before its update, to this Euclidean norm (> 0) over all
        parameters, as ``torch.nn.utils.clip_grad_norm_(parameters, clip_grad_norm)``:
        ``G *= clip_grad_norm / (||G|| + 1e-6)`` when that factor is below 1. The gradient is
        the objective's (with the network's l2); an optimizer's weight decay comes after.
    schedule : fastnn.schedules.Schedule, optional
        A learning-rate schedule for ``optimizer``, bound to it at its first use (its base rate
        is then the optimizer's lr). With ``interval="epoch"`` it steps after each epoch (a
        `fastnn.schedules.ReduceLROnPlateau` with the validation loss, or the training loss
        without validation data); with ``interval="step"``, after each batch, inside the compiled
        epoch. Another call of fit with the same schedule and optimizer continues it. The
        history records the rate of each epoch.
    callbacks : sequence, optional
        Functions ``f(epoch, logs)`` or `fastnn.callbacks.Callback` objects (`EarlyStopping`,
        `ModelCheckpoint`, `CSVLogger`, ...), called in order after each epoch with its index
        (from 0) and its logs: ``{"loss", "val_loss", "val_accuracy", "lr"}`` (those measured).
        One that returns True stops the training after that epoch.
    checkpoint : str or os.PathLike, optional
        Write what resuming needs to this file every ``checkpoint_every`` epochs and after the
        last one (atomically; see `fastnn.checkpoints`): the network, the optimizer's state, the
        schedule, the shuffling generator's and the dropout generator's states, the epochs done,
        the History so far and the callbacks' states (the best epoch's weights of early
        stopping).
    checkpoint_every : int, default 1
        Epochs between two checkpoints (>= 1).
    resume : str, os.PathLike or bool, optional
        Go on from a checkpoint: the one at this path, or with True the ``checkpoint`` file if
        it exists (a first run then starts afresh, so one command serves both). The fit must be
        called as the one that wrote it: the same network (weights aside), optimizer and
        schedule settings, data, batch size, shuffling, seed, clipping and validation, and
        callbacks that keep a state of the same kinds in the same order. It then ends with the
        weights, bit for bit, of a run that was never stopped.
    n_threads : int, optional
        At most this many BLAS threads for this fit's products (>= 1), instead of the network's
        ``n_threads`` (see `fastnn.threads`); the network's is back after the fit.

    Returns
    -------
    History
        Also when Ctrl-C ends the training: `fit` then returns the History of the epochs
        completed, with ``interrupted`` True (so a script goes on to save or report what it
        has; check ``history.interrupted`` to stop there). The network holds the last completed
        update (or, with early stopping, the best epoch's weights); the epoch the interrupt
        came in is not recorded, and the checkpoint file keeps the last epoch it was written
        after.

    Raises
    ------
    FloatingPointError
        If the training loss becomes NaN or infinite. The network and the optimizer are then
        restored to their state at the start of that epoch, the last one whose weights were finite
        and gave a finite loss (with early stopping, the network then ends with the best epoch's
        weights).
    fastnn.ModelFileError
        If the checkpoint to resume from is not a readable checkpoint, or not one of this fit.
    """
    optimizer = Adam() if optimizer is None else check_optimizer(optimizer)
    check_clip_grad_norm(clip_grad_norm)
    epochs = check_int("epochs", epochs, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    validation_split = check_real("validation_split", validation_split, low=0, high=1,
                                  high_open=True)
    patience = check_int("patience", patience, 1)
    min_delta = check_real("min_delta", min_delta, low=0)
    verbose = _check_verbose(verbose)
    callbacks = _check_callbacks(callbacks)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 1)
    n_threads = threads.check_n_threads(n_threads)
    if checkpoint is not None:
        # refused before any work: a folder that does not exist, a path that is a folder
        io._destination(checkpoint, "save the checkpoint")
    resume = _resume_path(resume, checkpoint)
    saved = checkpoints.read(resume, net, optimizer) if resume is not None else None
    split_seed = seed
    if validation_split and seed is None:
        # a split drawn afresh is drawn again, the same, when the run resumes
        split_seed = (saved["split_seed"] if saved is not None
                      else np.random.SeedSequence().entropy)
    if is_stream(X, Y):
        data, validation = stream_data(net, X, Y, sample_weight, validation_data,
                                       validation_split, checkpoint is not None or resume, epochs)
    else:
        data, validation = _split(net, X, Y, sample_weight, validation_data, validation_split,
                                  split_seed)
    if early_stopping and validation is None:
        raise ValueError("early_stopping watches the validation loss: give validation_data or "
                         "validation_split > 0")
    if early_stopping:
        callbacks.insert(0, EarlyStopping("val_loss", min_delta, patience))
    if schedule is not None:
        # bound (which sets the optimizer's lr to its first) once every argument is checked
        schedule = check_schedule(schedule, optimizer)
    run = None
    if checkpoint is not None or saved is not None:
        run = {"settings": _settings(net, optimizer, schedule, batch_size, shuffle, seed,
                                     clip_grad_norm, validation_data, validation_split),
               "data": {"train": _fingerprint(data),
                        "validation": _fingerprint(validation) if validation is not None
                        else None},
               "split_seed": split_seed if validation_split and seed is None else None}
    if saved is not None:
        _check_resumable(resume, saved, run, epochs)
    rng = np.random.default_rng(seed)
    if seed is not None and saved is None:
        net.random_state = (stream_key(seed), 0)
    history = History()
    rows = data.rows if isinstance(data, Stream) else data.X.shape[0]
    bar = reporter(verbose, epochs, rows, show_lr=schedule is not None)
    for callback in callbacks:
        callback.on_train_begin(net)
    network_threads = net.n_threads
    if n_threads is not None:
        net.n_threads = n_threads
    try:
        if saved is not None:
            _restore(resume, saved, net, optimizer, schedule, rng, history, callbacks)
            if bar is not None:
                bar.resumed(resume, history.epochs)
        _train(net, data, validation, optimizer, schedule, epochs, batch_size, shuffle, rng,
               clip_grad_norm, min_delta, callbacks, history, bar, checkpoint, checkpoint_every,
               run)
    finally:
        net.n_threads = network_threads
        for callback in callbacks:
            callback.on_train_end(history)
    return history


def _train(net, data, validation, optimizer, schedule, epochs, batch_size, shuffle, rng,
           clip_grad_norm, min_delta, callbacks, history, bar, checkpoint, checkpoint_every,
           run):
    """`fit`'s epochs, from the first not yet in ``history``: train, validate, record, call
    the callbacks, show, and write checkpoints; Ctrl-C ends them (``history.interrupted``)."""
    # cross-entropy goes with a softmax or sigmoid output: a classifier, whose accuracy is shown
    classifier = net.loss_name == "cross_entropy"
    try:
        for epoch in range(history.epochs, epochs):
            if history.stopped_early:
                break
            if bar is not None:
                bar.start(epoch)
            if isinstance(data, Stream):
                order = rng if shuffle else None
            else:
                order = rng.permutation(data.X.shape[0]) if shuffle else None
            lr = optimizer.lr
            try:
                loss, val_loss = run_epoch(net, data, optimizer, batch_size, order, validation,
                                           clip_grad_norm, schedule,
                                           bar.update if bar is not None and bar.live else None)
            except FloatingPointError as error:
                raise FloatingPointError(f"epoch {epoch + 1}: {error}") from None
            logs = {"loss": loss}
            if val_loss is not None:
                logs["val_loss"] = val_loss
                if classifier:
                    logs["val_accuracy"] = _accuracy(net, validation)
            logs["lr"] = lr
            _record(history, logs, min_delta)
            stop = False
            for callback in callbacks:
                stop = stops(callback, callback.on_epoch_end(epoch, dict(logs))) or stop
            history.stopped_early = stop
            if bar is not None:
                if isinstance(data, Stream):
                    bar.rows = data.rows  # known once a stream's first epoch is read
                bar.end(logs)
            if checkpoint is not None and (
                    (epoch + 1) % checkpoint_every == 0 or stop or epoch + 1 == epochs):
                _write_checkpoint(checkpoint, net, optimizer, schedule, rng, history, callbacks,
                                  run)
    except KeyboardInterrupt:
        history.interrupted = True
        if bar is not None:
            bar.interrupt()


def _record(history, logs, min_delta):
    """Add an epoch's ``logs`` to ``history``, and update its best epoch."""
    history.loss.append(logs["loss"])
    history.lr.append(logs["lr"])
    if "val_loss" in logs:
        history.val_loss.append(logs["val_loss"])
    if "val_accuracy" in logs:
        history.val_accuracy.append(logs["val_accuracy"])
    watched = history.val_loss if history.val_loss else history.loss
    if history.best_epoch is None or watched[-1] < watched[history.best_epoch] - min_delta:
        history.best_epoch = len(watched) - 1


def _accuracy(net, data):
    """The share of the checked ``data``'s rows (weighted by their sample weights) that ``net``
    classifies as their targets (see `History.val_accuracy`)."""
    if isinstance(data, Stream):
        return data.accuracy(net)
    outputs, Y = net.predict(data.X), data.Y
    if net.output_activation == "softmax":
        hits = outputs.argmax(axis=1) == Y.argmax(axis=1)
    else:
        hits = ((outputs > 0.5) == (Y > 0.5)).mean(axis=1)
    weights = data.sample_weight
    if weights is None or not weights.sum() > 0:
        return float(np.mean(hits))
    return float(np.average(hits, weights=weights))


def _check_verbose(verbose):
    """``verbose`` as 0, 1 or 2 (False and True are 0 and 1, as scikit-learn and Keras take
    them)."""
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    return check_int("verbose", verbose, 0, maximum=2)


def _check_callbacks(callbacks):
    """``callbacks`` as a new list of `fastnn.callbacks.Callback`."""
    if callbacks is None:
        return []
    if callable(callbacks) or not hasattr(callbacks, "__iter__") or isinstance(callbacks,
                                                                                (str, bytes)):
        raise TypeError(f"callbacks must be a list of callbacks, got {callbacks!r}")
    return [as_callback(callback) for callback in callbacks]


# ---- checkpoints and resuming --------------------------------------------------------------------

# The spawn key of the stream that draws the validation split from fit's seed.
SPLIT_STREAM = 0x73706C6974


def _resume_path(resume, checkpoint):
    """The checkpoint to resume from (None: start afresh)."""
    if resume is None or resume is False:
        return None
    if resume is True:
        if checkpoint is None:
            raise ValueError("resume=True goes on from the checkpoint file: give checkpoint=PATH "
                             "too, or resume=PATH")
        return checkpoint if os.path.exists(checkpoint) else None
    if not isinstance(resume, (str, bytes, os.PathLike)):
        raise TypeError(f"resume must be a path, True or None, got {resume!r}")
    return resume


def _settings(net, optimizer, schedule, batch_size, shuffle, seed, clip_grad_norm,
              validation_data, validation_split):
    """What a resumed fit must share with the one that wrote its checkpoint, as JSON data."""
    if seed is not None:
        try:
            seed = operator.index(seed)
        except TypeError:
            raise TypeError(f"a fit that writes or resumes a checkpoint takes an integer seed "
                            f"or None, got {seed!r}") from None
    settings = {"batch_size": batch_size, "shuffle": bool(shuffle), "seed": seed,
                "clip_grad_norm": clip_grad_norm and float(clip_grad_norm),
                "optimizer": {"name": type(optimizer).__name__,
                              **optimizer._hyperparameters()},
                "schedule": schedule._settings() if schedule is not None else None,
                "validation": ("data" if validation_data is not None
                               else "split" if validation_split else None),
                "validation_split": validation_split}
    return json.loads(json.dumps(settings))


def _fingerprint(data):
    """A digest of checked data: its arrays' shapes, dtypes and bytes."""
    digest = hashlib.blake2b(digest_size=16)
    for array in data:
        if array is None:
            digest.update(b"none")
        else:
            digest.update(repr((array.shape, array.dtype.str)).encode())
            digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _check_resumable(path, saved, run, epochs):
    """Refuse a checkpoint that is not of this fit."""
    where = f"cannot resume from {os.fsdecode(path)!r}"
    old, new = saved["settings"], run["settings"]
    differing = [f"{key} {new.get(key)!r} (the checkpoint's: {old.get(key)!r})"
                 for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    if differing:
        raise io.ModelFileError(f"{where}: it was written by a fit with other settings: this fit "
                                f"has {'; '.join(differing)}")
    for part in ("train", "validation"):
        if saved["data"][part] != run["data"][part]:
            what = "training" if part == "train" else "validation"
            raise io.ModelFileError(f"{where}: this fit's {what} data are not the checkpoint's")
    if saved["epoch"] > epochs:
        raise ValueError(f"{where}: it is at epoch {saved['epoch']}, past epochs={epochs}")


def _restore(path, saved, net, optimizer, schedule, rng, history, callbacks):
    """Put the run where the checkpoint ``saved`` (read from ``path``) left it; on a failure,
    leave the network, the optimizer and the schedule as they were."""
    before = (net.state_dict(), optimizer.state_dict(),
              schedule.state_dict() if schedule is not None else None)
    stateful = [(type(callback).__name__, callback) for callback in callbacks
                if callback.state_dict()]
    names = [name for name, _ in saved["callbacks"]]
    try:
        if names != [name for name, _ in stateful]:
            raise ValueError(f"it was written with the callbacks {names} that keep a state, "
                             f"this fit has {[name for name, _ in stateful]}")
        net.load_state_dict(saved["network"])
        optimizer.load_state_dict(saved["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(saved["schedule"])
        rng.bit_generator.state = saved["shuffle_rng"]
        for (_, state), (_, callback) in zip(saved["callbacks"], stateful):
            callback.load_state_dict(state)
    except (ValueError, TypeError) as error:
        net.load_state_dict(before[0])
        optimizer.load_state_dict(before[1])
        if schedule is not None:
            schedule.load_state_dict(before[2])
        raise io.ModelFileError(f"cannot resume from {os.fsdecode(path)!r}: {error}") from None
    entries = saved["history"]
    for name in ("loss", "val_loss", "val_accuracy", "lr"):
        getattr(history, name).extend(entries[name])
    history.best_epoch, history.stopped_early = entries["best_epoch"], entries["stopped_early"]


def _write_checkpoint(path, net, optimizer, schedule, rng, history, callbacks, run):
    """Write the run's state after its last epoch to the checkpoint file ``path``."""
    states = [(type(callback).__name__, callback.state_dict()) for callback in callbacks]
    state = {**run, "epoch": history.epochs, "shuffle_rng": rng.bit_generator.state,
             "history": {"loss": history.loss, "val_loss": history.val_loss,
                         "val_accuracy": history.val_accuracy, "lr": history.lr,
                         "best_epoch": history.best_epoch, "stopped_early": history.stopped_early},
             "schedule": schedule.state_dict() if schedule is not None else None}
    checkpoints.write(path, net, state, optimizer.state_dict(),
                      [(name, callback_state) for name, callback_state in states
                       if callback_state])
