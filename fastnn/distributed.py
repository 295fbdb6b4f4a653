"""Synchronous data-parallel training over MPI (mpi4py): `fit` on a shard of the data per process.

Run one process per machine (or core) under ``mpiexec``; each calls `fit` with the same network
and settings and its own rows. The processes train one network together: the global batch of
``batch_size`` rows is split among them by where its rows live, each computes the gradient of its
part, one all-reduce per step sums the gradients with the parts of the loss and of the
normalizer, and every process applies the same update to the same weights, which stay equal
everywhere. The result is the single-process `fastnn.training.fit` on all the rows (concatenated
in rank order) with the same batches, to rounding (only the order of the sums differs)::

    mpiexec -n 4 python train.py        # pip install "fastnn-cpu[mpi]" gives mpiexec

    from mpi4py import MPI
    import fastnn, fastnn.distributed

    comm = MPI.COMM_WORLD
    rows = fastnn.distributed.shard(len(X), comm)        # this process's rows, or read its own
    net = fastnn.MLP([64, 128, 10], activation="relu", output_activation="softmax",
                     loss="cross_entropy", seed=0)
    history = fastnn.distributed.fit(net, X[rows], y[rows], comm=comm, epochs=20, seed=0,
                                     validation_data=(X_val, y_val) if comm.rank == 0 else None)

Design: the compiled engine computes a shard's sums (`Engine.shard_gradient`, without the GIL,
into a buffer of the flat gradient and two trailing elements, allocated once per fit) and applies
the update from the summed buffer (`Engine.reduced_step`: divide by the global S, add the L2
term's gradient once, clip, the optimizer's compiled rule). Between them MPI sums the buffer in
place, through a persistent all-reduce request made once per fit (MPI-4's ``MPI_Allreduce_init``;
a plain ``Allreduce`` per step with an MPI library older than that). Unlike `fit`'s compiled
epochs, this loop enters Python once per step (~2 us): MPI's own latency, which every step pays
anyway, is several times that. Rank 0 validates, records the History, runs the callbacks
(early stopping, checkpoints of the model, logs) and prints; its stop decision and validation
loss are broadcast after every epoch, and its final weights (the best epoch's, after early
stopping) and History at the end.

Speed: each step pays an all-reduce of the whole gradient (latency plus bytes over bandwidth),
so only networks and batches whose compute per step is large against it gain (bench/DISTRIBUTED.md
measures and models it). With ``shuffle=False`` a global batch is split among the processes only
where it spans several shards: contiguous shards then make each process train alone in turn.

Not supported: batch normalization and dropout (their batch statistics and masks would be each
shard's, not the global batch's, so the result would not be the single-process one: `fit`
refuses them), ``validation_split`` (give rank 0 ``validation_data``), checkpoints for resuming,
and Ctrl-C handling (under ``mpiexec``, Ctrl-C ends every process).
"""
import json
import math

import numpy as np

from fastnn import training
from fastnn._extras import require
from fastnn._validation import check_int, check_real
from fastnn.callbacks import EarlyStopping, stops
from fastnn.layers import stream_key
from fastnn.optimizers import Adam
from fastnn.progress import reporter
from fastnn.schedules import check_schedule

__all__ = ["PeerError", "fit", "shard", "world"]


class PeerError(RuntimeError):
    """Another process of the fit failed; this one stops too, rather than wait for it."""


def _mpi():
    """mpi4py's MPI module (which initializes MPI), or an ImportError naming the extra that
    installs mpi4py."""
    require("mpi4py", "data-parallel training")
    from mpi4py import MPI

    return MPI


def world():
    """``MPI.COMM_WORLD``: every process mpiexec started (with the mpi extra:
    ``pip install "fastnn-cpu[mpi]"``)."""
    return _mpi().COMM_WORLD


def shard(n, comm=None):
    """The rows of ``n`` that this process takes in an even, contiguous split among ``comm``'s
    processes (the first ``n % size`` processes take one row more), as a slice.

    Parameters
    ----------
    n : int
        Rows of the whole data (>= the number of processes).
    comm : mpi4py.MPI.Comm, optional
        Default ``MPI.COMM_WORLD``.

    Returns
    -------
    slice
    """
    comm = world() if comm is None else comm
    n = check_int("n", n, comm.size)
    size, extra = divmod(n, comm.size)
    start = comm.rank * size + min(comm.rank, extra)
    return slice(start, start + size + (comm.rank < extra))


def fit(net, X, Y, comm=None, optimizer=None, epochs=10, batch_size=32, shuffle=True, seed=None,
        validation_data=None, early_stopping=False, patience=10, min_delta=0.0, verbose=0,
        sample_weight=None, clip_grad_norm=None, schedule=None, callbacks=None):
    """Train ``net`` together with the other processes of ``comm``, each on its own rows.

    Every process calls it with a network of the same architecture and the same settings; rank
    0's weights and optimizer state are the start of all. The rows of all processes, in rank
    order, are the training data of the single-process `fastnn.training.fit` this reproduces:
    the same global batches of ``batch_size`` rows, in the same order for the same ``seed``, and
    the same weights after each update, to rounding.

    Parameters
    ----------
    net : fastnn.MLP
        Without batch normalization or dropout.
    X : array-like of shape (N_r, n_in)
        This process's rows (at least one; shards of any sizes).
    Y : array-like of shape (N_r, n_out), or (N_r,) integer labels for softmax cross-entropy
    comm : mpi4py.MPI.Comm, optional
        The processes that train together; default ``MPI.COMM_WORLD``.
    optimizer : fastnn.Optimizer, optional
        Default ``Adam()``.
    epochs, batch_size, shuffle, seed, sample_weight, clip_grad_norm, schedule
        As in `fastnn.training.fit`; ``batch_size`` is the global batch's rows, wherever they
        live. With ``seed=None``, rank 0 draws the seed of the shuffling.
    validation_data : pair or triple, optional
        Read on rank 0 only (other ranks may pass None): the objective after each epoch.
    early_stopping, patience, min_delta
        As in `fastnn.training.fit`, decided on rank 0.
    verbose : bool or {0, 1, 2}
        One line per epoch, printed by rank 0.
    callbacks : sequence, optional
        As in `fastnn.training.fit`, run on rank 0 only (so a `fastnn.callbacks.ModelCheckpoint`
        or `CSVLogger` writes once); the other ranks' are ignored. One that returns True stops
        every process.

    Returns
    -------
    History
        Rank 0's, on every process.

    Raises
    ------
    ValueError, TypeError
        On every process, if any process's data or settings are wrong (naming its rank), so that
        none waits for the others forever.
    FloatingPointError
        On every process, as in `fastnn.training.fit` (the network and optimizer are restored to
        their state at the start of the epoch).
    PeerError
        If rank 0 failed in validation or a callback; rank 0 raises the error itself.
    """
    MPI = _mpi()
    comm = MPI.COMM_WORLD if comm is None else comm
    data, validation, optimizer, schedule, max_norm, callbacks, shape = _agree(comm, lambda: _check(
        net, X, Y, optimizer, epochs, batch_size, shuffle, validation_data, early_stopping,
        patience, min_delta, verbose, sample_weight, clip_grad_norm, schedule, callbacks,
        comm.rank))
    settings, sizes = zip(*comm.allgather((dict(shape, epochs=epochs, batch_size=batch_size,
                                                  shuffle=bool(shuffle), seed=seed),
                                             data.X.shape[0])))
    for name in settings[0]:
        values = [each[name] for each in settings]
        if len(set(values)) > 1:
            # every process finds the same difference and raises, rather than wait in a
            # collective call the others never make
            raise ValueError(f"the processes must train the same network with the same "
                             f"settings; its {name} differs, by rank: {values}")
    # rank 0's start, and rank 0's seed when none is given, are every process's
    state = comm.bcast((net.state_dict(), optimizer.state_dict(),
                        schedule.state_dict() if schedule is not None else None,
                        np.random.SeedSequence().entropy) if comm.rank == 0 else None, root=0)
    net.load_state_dict(state[0])
    optimizer.load_state_dict(state[1])
    if schedule is not None:
        schedule.load_state_dict(state[2])
    rng = np.random.default_rng(seed if seed is not None else state[3])
    if seed is not None:
        net.random_state = (stream_key(seed), 0)
    n = sum(sizes)
    history = training.History()
    bar = (reporter(2 if verbose else 0, epochs, n, show_lr=schedule is not None)
           if comm.rank == 0 else None)
    epoch_run = _Epochs(net, data, optimizer, comm, MPI, sizes, batch_size, max_norm, schedule)
    if comm.rank == 0:
        for callback in callbacks:
            callback.on_train_begin(net)
    try:
        for epoch in range(epochs):
            if bar is not None:
                bar.start(epoch)
            lr = optimizer.lr
            try:
                loss = epoch_run(rng.permutation(n) if shuffle else None)
            except FloatingPointError as error:
                raise FloatingPointError(f"epoch {epoch + 1}: {error}") from None
            stop, val_loss = _from_rank0(comm, _epoch_end, net, validation, history, callbacks,
                                         bar, epoch, loss, lr, min_delta)
            if val_loss is not None and not math.isfinite(val_loss):
                epoch_run.restore()
                raise FloatingPointError(
                    f"epoch {epoch + 1}: the validation loss became NaN or infinite; the network "
                    f"and the optimizer were restored to their state at the start of the epoch")
            if schedule is not None and schedule.interval != "step":
                schedule._epoch_end(loss, val_loss)
            if stop:
                break
    finally:
        epoch_run.free()
    if comm.rank == 0:
        for callback in callbacks:
            callback.on_train_end(history)
    # the best epoch's weights, when early stopping on rank 0 restored them
    comm.Bcast(net.params, root=0)
    return comm.bcast(history, root=0)


def _agree(comm, check):
    """``check()``'s result on every process, or, if it raised on any, an error on all (this
    process's own, or one naming the ranks that failed): no process goes on to wait forever in
    a collective call the others never make."""
    try:
        result, failure = check(), None
    except (ValueError, TypeError) as error:
        result, failure = error, f"{type(error).__name__}: {error}"
    failures = comm.allgather(failure)
    if failure is not None:
        raise result
    if any(failures):
        ranks = [rank for rank, text in enumerate(failures) if text]
        raise ValueError(f"rank {ranks[0]} refused its data or settings ({failures[ranks[0]]})"
                         + (f"; so did ranks {ranks[1:]}" if len(ranks) > 1 else ""))
    return result


def _from_rank0(comm, work, *args):
    """``work(*args)``, run on rank 0, broadcast to every process. An error there is raised
    there and, as a PeerError, on the others."""
    result = failure = None
    if comm.rank == 0:
        try:
            result = work(*args)
        except BaseException as error:
            comm.bcast((None, f"{type(error).__name__}: {error}"), root=0)
            raise
    result, failure = comm.bcast((result, None), root=0)
    if failure is not None:
        raise PeerError(f"rank 0 failed: {failure}")
    return result


def _check(net, X, Y, optimizer, epochs, batch_size, shuffle, validation_data, early_stopping,
           patience, min_delta, verbose, sample_weight, clip_grad_norm, schedule, callbacks,
           rank):
    """This process's arguments checked and converted (what `fit` unpacks), or the error."""
    if not hasattr(net, "check_data"):
        raise TypeError(f"net must be a fastnn.MLP, got {type(net).__name__}")
    unsupported = [layer.kind for layer in net.layers
                   if layer.kind == "batch_norm" or (layer.kind == "dropout" and layer.rate > 0)]
    if unsupported:
        raise ValueError(f"data-parallel training refuses {unsupported[0]} layers: their batch "
                         f"statistics or masks would be each process's, not the global batch's, "
                         f"so the fit would not be the single-process one")
    optimizer = Adam() if optimizer is None else training.check_optimizer(optimizer)
    max_norm = training.check_clip_grad_norm(clip_grad_norm)
    check_int("epochs", epochs, 0)
    check_int("batch_size", batch_size, 1)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    check_int("patience", patience, 1)
    check_real("min_delta", min_delta, low=0)
    training._check_verbose(verbose)
    callbacks = training._check_callbacks(callbacks)
    data = net.check_data(X, Y, sample_weight)
    validation = None
    if rank == 0 and validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a pair (X_val, Y_val) or a triple "
                             "(X_val, Y_val, sample_weight_val)")
        validation = net.check_data(*validation_data)
    if early_stopping:
        if rank == 0 and validation is None:
            raise ValueError("early_stopping watches the validation loss: give rank 0 "
                             "validation_data")
        callbacks.insert(0, EarlyStopping("val_loss", min_delta, patience))
    if schedule is not None:
        schedule = check_schedule(schedule, optimizer)
    shape = {"network": json.dumps(net.config(), sort_keys=True), "optimizer": repr(optimizer),
             "schedule": repr(schedule), "clip_grad_norm": max_norm}
    return data, validation, optimizer, schedule, max_norm, callbacks, shape


def _epoch_end(net, validation, history, callbacks, bar, epoch, loss, lr, min_delta):
    """Rank 0's work after an epoch, as `fastnn.training.fit` does it: validate, record, call
    the callbacks, show. Returns (stop, val_loss); a val_loss that is not finite is returned
    before anything is recorded."""
    logs = {"loss": loss}
    if validation is not None:
        logs["val_loss"] = net.loss(validation)
        if not math.isfinite(logs["val_loss"]):
            return False, logs["val_loss"]
        if net.loss_name == "cross_entropy":
            logs["val_accuracy"] = training._accuracy(net, validation)
    logs["lr"] = lr
    training._record(history, logs, min_delta)
    stop = False
    for callback in callbacks:
        stop = stops(callback, callback.on_epoch_end(epoch, dict(logs))) or stop
    history.stopped_early = stop
    if bar is not None:
        bar.end(logs)
    return stop, logs.get("val_loss")


class _Epochs:
    """The data-parallel epochs of one fit on this process: its rows, the gradient buffer and
    the all-reduce request, made once."""

    def __init__(self, net, data, optimizer, comm, MPI, sizes, batch_size, max_norm, schedule):
        self.net, self.data, self.optimizer, self.comm = net, data, optimizer, comm
        self.engine = net._engine
        self.rule = optimizer.bind(net)
        self.n = sum(sizes)
        self.lo = sum(sizes[:comm.rank])
        self.hi = self.lo + sizes[comm.rank]
        self.batch_size, self.max_norm = batch_size, max_norm
        self.schedule = schedule if schedule is not None and schedule.interval == "step" else None
        # (n_params + 2,) the shard's gradient, weighted loss and part of S; summed in place
        self.buffer = np.zeros(net.n_params + 2, dtype=net.dtype)
        self.totals = np.zeros(2)
        self.in_place, self.sum = MPI.IN_PLACE, MPI.SUM
        try:
            self.request = comm.Allreduce_init(MPI.IN_PLACE, self.buffer, MPI.SUM)
        except (NotImplementedError, MPI.Exception):
            # an MPI library older than MPI-4: a plain all-reduce per step
            self.request = None
        self.snapshot = None

    def __call__(self, order):
        """One epoch over the global rows in ``order`` (all of them as stored for None): the
        mean over the samples of J on their batch before its update, as `fit` reports it."""
        n_batches = -(-self.n // self.batch_size)
        # positions of this process's rows in the epoch's global order, and its rows in turn
        if order is None:
            positions = np.arange(self.lo, self.hi)
            rows = None
        else:
            mine = (order >= self.lo) & (order < self.hi)
            positions = np.flatnonzero(mine)
            rows = np.ascontiguousarray(order[mine] - self.lo, dtype=np.intp)
        counts = np.bincount(positions // self.batch_size, minlength=n_batches)
        starts = (np.cumsum(counts) - counts).tolist()
        counts = counts.tolist()
        self.snapshot = (self.engine.snapshot(), self.optimizer.state_dict(),
                         self.schedule.state_dict() if self.schedule is not None else None)
        X, Y, s = self.data
        engine, rule, buffer, totals = self.engine, self.rule, self.buffer, self.totals
        request, scheduled, max_norm = self.request, self.schedule is not None, self.max_norm
        totals[:] = 0
        for b in range(n_batches):
            engine.shard_gradient(X, Y, s, rows, starts[b], counts[b], buffer)
            if request is None:
                self.comm.Allreduce(self.in_place, buffer, self.sum)
            else:
                request.Start()
                request.Wait()
            if engine.reduced_step(buffer, rule, max_norm, scheduled, totals):
                break
        else:
            if self.net._intact(self.optimizer):
                return float(totals[0] / totals[1]) if totals[1] > 0 else math.nan
        self.restore()
        raise FloatingPointError(
            "the loss became NaN or infinite; the network and the optimizer (and the schedule) "
            "were restored to their state at the start of the epoch (a learning rate too high, "
            "or inputs or targets too large?)")

    def restore(self):
        """Put the network, the optimizer and a per-step schedule back as the epoch found them."""
        self.net._restore_epoch(self.snapshot, self.optimizer, self.schedule)

    def free(self):
        """Free the all-reduce request (MPI warns of one left at exit)."""
        if self.request is not None:
            self.request.Free()
            self.request = None
