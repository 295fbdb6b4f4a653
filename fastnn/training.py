"""Training by minibatches: `fit` and its `History`.

The minibatch loop itself (gather, forward, backward, gradient clipping, update, a per-batch
learning-rate schedule, loss accumulation) runs in compiled code for a whole epoch at a time;
Python is entered once per epoch, for validation, an epoch-interval schedule, early stopping, the
history and progress.
"""
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from fastnn._validation import CheckedData, check_int, check_real
from fastnn.layers import stream_key
from fastnn.optimizers import Adam, Optimizer
from fastnn.schedules import check_schedule

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
    lr : list of float
        The optimizer's learning rate at the start of each epoch, which its first batch used
        (a per-batch schedule changes it within the epoch).
    best_epoch : int or None
        Index of the epoch with the lowest validation loss (the lowest training loss without
        validation data); None if no epoch ran. With early stopping, the network ends with the
        weights of this epoch.
    stopped_early : bool
        Whether early stopping ended the training before ``epochs``.
    """

    loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    best_epoch: int = None
    stopped_early: bool = False

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


def _split(net, X, Y, sample_weight, validation_data, validation_split):
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
    # As Keras does: the last fraction of the rows, taken before any shuffling.
    n = train.X.shape[0]
    n_train = int(n * (1 - validation_split))
    if n_train == 0 or n_train == n:
        raise ValueError(f"validation_split={validation_split} of {n} samples leaves "
                         f"{'no training' if n_train == 0 else 'no validation'} samples")
    parts = [(a[:n_train], a[n_train:]) if a is not None else (None, None) for a in train]
    train = CheckedData(*(p[0] for p in parts))
    validation = CheckedData(*(p[1] for p in parts))
    if min(net._normalizer(train), net._normalizer(validation)) <= 0:
        raise ValueError("validation_split leaves a part whose sample weights are all zero (or "
                         "whose class weights sum to zero)")
    return train, validation


def run_epoch(net, data, optimizer, batch_size, order=None, validation=None, clip_grad_norm=None,
              schedule=None):
    """One epoch of minibatch updates on checked data, run in compiled code, the validation
    objective after it, and a step of the schedule, as `fit` runs each epoch.

    Parameters
    ----------
    net : fastnn.MLP
    data : CheckedData
        From ``net.check_data``.
    optimizer : fastnn.Optimizer
    batch_size : int
        Rows per update (>= 1); the last batch may be smaller.
    order : ndarray of int, shape (N,), optional
        The order in which to visit the rows (gathered into a reused buffer); as stored if None.
    validation : CheckedData, optional
        Checked data on which to evaluate the objective after the epoch.
    clip_grad_norm : float, optional
        Clip each batch's gradient to this norm before its update (see `fit`).
    schedule : fastnn.schedules.Schedule, optional
        Bound to ``optimizer`` if it is not yet. One with ``interval="step"`` steps after each
        batch, inside the compiled loop; one with ``interval="epoch"`` steps once after the epoch
        (`fastnn.schedules.ReduceLROnPlateau` with the validation loss, or with the training
        loss without validation).

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
    if validation is not None and not isinstance(validation, CheckedData):
        raise TypeError("validation must be the CheckedData that net.check_data returns")
    check_optimizer(optimizer)
    if schedule is not None:
        schedule = check_schedule(schedule, optimizer)
    per_batch = schedule if schedule is not None and schedule.interval == "step" else None
    if validation is None:
        loss = net.train_epoch(data, optimizer, batch_size, order, clip_grad_norm, per_batch)
        val_loss = None
    else:
        try:
            # refused before the epoch changes anything
            validation = net.check_data(validation)
        except ValueError as error:
            raise ValueError(f"validation: {error}") from None
        snapshot = (net.state_dict(), optimizer.state_dict(),
                    per_batch.state_dict() if per_batch is not None else None)
        loss = net.train_epoch(data, optimizer, batch_size, order, clip_grad_norm, per_batch)
        val_loss = net.loss(validation)
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
        min_delta=0.0, verbose=0, sample_weight=None, clip_grad_norm=None, schedule=None):
    """Train ``net`` on (X, Y) by minibatch updates.

    Parameters
    ----------
    net : fastnn.MLP
    X : array-like of shape (N, n_in)
    Y : array-like of shape (N, n_out), or (N,) integer labels for softmax cross-entropy
    optimizer : fastnn.SGD or fastnn.Adam, optional
        Default ``Adam()``. Its state carries over between calls to fit with the same optimizer.
    epochs : int, default 10
        Passes over the training data (>= 0).
    batch_size : int, default 32
        Rows per update (>= 1); the last, smaller batch of an epoch is used, not dropped.
    shuffle : bool, default True
        Visit the rows in a new random order each epoch; in their order when False.
    seed : int or None
        Seed of the shuffling and of the dropout masks: the same seed gives the same fit. With
        None, the rows are shuffled afresh and the dropout generator goes on from where it is.
    validation_data : pair (X_val, Y_val) or triple (X_val, Y_val, sample_weight_val), optional
        Data on which the objective is measured after each epoch.
    validation_split : float in [0, 1), default 0.0
        Instead of validation_data, hold out this last fraction of the rows (before shuffling).
        The validation objective is measured in evaluation mode (no dropout, batch
        normalization by its running statistics).
    early_stopping : bool, default False
        Stop when the validation loss has not improved by more than ``min_delta`` for
        ``patience`` epochs, and end with the weights of the best epoch. Needs validation.
    patience : int, default 10
        Epochs without improvement before stopping (>= 1).
    min_delta : float, default 0.0
        The least decrease of the validation loss that counts as an improvement (>= 0).
    verbose : int, default 0
        1 prints one line per epoch.
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

    Returns
    -------
    History

    Raises
    ------
    FloatingPointError
        If the training loss becomes NaN or infinite. The network and the optimizer are then
        restored to their state at the start of that epoch, the last one whose weights were finite
        and gave a finite loss.
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
    verbose = check_int("verbose", verbose, 0)
    data, validation = _split(net, X, Y, sample_weight, validation_data, validation_split)
    if early_stopping and validation is None:
        raise ValueError("early_stopping watches the validation loss: give validation_data or "
                         "validation_split > 0")
    if schedule is not None:
        # bound (which sets the optimizer's lr to its first) once every argument is checked
        schedule = check_schedule(schedule, optimizer)
    rng = np.random.default_rng(seed)
    if seed is not None:
        net.random_state = (stream_key(seed), 0)
    history = History()
    best, best_params, waited = math.inf, None, 0
    for epoch in range(epochs):
        started = time.perf_counter()
        order = rng.permutation(data.X.shape[0]) if shuffle else None
        lr = optimizer.lr
        try:
            loss, val_loss = run_epoch(net, data, optimizer, batch_size, order, validation,
                                       clip_grad_norm, schedule)
        except FloatingPointError as error:
            raise FloatingPointError(f"epoch {epoch + 1}: {error}") from None
        history.loss.append(loss)
        history.lr.append(lr)
        watched = loss if val_loss is None else val_loss
        if val_loss is not None:
            history.val_loss.append(val_loss)
        if watched < best - min_delta or history.best_epoch is None:
            best, history.best_epoch, waited = watched, epoch, 0
            if early_stopping:
                best_params = net.state_dict()
        else:
            waited += 1
        if verbose:
            line = f"epoch {epoch + 1}/{epochs} - loss {loss:.6g}"
            if val_loss is not None:
                line += f" - val_loss {val_loss:.6g}"
            if schedule is not None:
                line += f" - lr {lr:.6g}"
            print(f"{line} - {time.perf_counter() - started:.3f}s", file=sys.stdout, flush=True)
        if early_stopping and waited >= patience:
            history.stopped_early = True
            break
    if early_stopping and best_params is not None:
        net.load_state_dict({**best_params, "random_state": net.random_state})
    return history
