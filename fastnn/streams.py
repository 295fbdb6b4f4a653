"""Training on data larger than memory: chunk sources, the bounded shuffle buffer and the
prefetching thread.

`fastnn.training.fit` takes a stream wherever it takes arrays: a Dask array or DataFrame, a NumPy
memory-map, any iterable of ``(X, Y)`` or ``(X, Y, sample_weight)`` chunks (NumPy arrays, pandas
or Arrow batches), a function that returns a new such iterable each epoch, or a `Stream` that
says how to read one of these. Each epoch reads the chunks one after another, never the whole
data at once.

Design
------
- A *source* lists the chunks of an epoch (`_Source.chunks`): row slices of a memory-map or of
  any sliceable array, the row blocks of a Dask array, the partitions of a Dask DataFrame, or the
  items of an iterable. A background thread (`_Prefetcher`) loads the next chunk (a Dask block is
  computed where the scheduler puts it, a memory-map's rows are read from the file) and checks it
  with ``net.check_data`` while the current one trains: the compiled epoch runs without the GIL,
  so both go on at once. At most ``prefetch`` chunks wait in its queue.
- Without shuffling, the chunks train as if they were one array: the rows that do not fill a
  batch at the end of a chunk are carried over and completed by the first rows of the next one,
  so the batches (and the last, partial one) are those of the in-memory fit, and so are the
  weights, to rounding (the sums of the reported loss go in another order).
- With shuffling, the chunks come in an order drawn from fit's seed (when the source can read
  them in any order), and a bounded buffer mixes rows within and across chunks: each chunk joins
  the rows the buffer kept, the whole is permuted, the full batches of all but ``shuffle_buffer``
  of its rows train, and the rest waits for the next chunk. The same seed gives the same fit; the
  order differs from the in-memory fit's (a permutation of all the rows would need them all).
- Memory: the chunk that trains, the buffer, the chunk being loaded and those waiting, a few
  chunks in all, whatever the size of the data.
- Each chunk is checked as in-memory data is (shape, dtype, finite values, targets in the loss'
  range, labels in 0..n_out-1) before the kernel sees it; an error names the chunk and its rows.

Classes: a network's classes are its output units, so integer labels are checked per chunk to be
in 0..n_out-1 and nothing needs to be known up front. The scikit-learn estimators stream through
``partial_fit(X, y, classes=...)`` (dask-ml's ``Incremental`` calls it block by block), which
needs all the classes at the first call, as scikit-learn's does.

Not with a stream: ``validation_split`` (give ``validation_data``, which may stream too),
``checkpoint`` and ``resume``.
"""
import collections
import math
import queue
import sys
import threading

import numpy as np

from fastnn._validation import CheckedData, check_int

__all__ = ["Stream", "is_stream"]

# The bytes of X a chunk of a memory-map holds by default: large enough that Python's work per
# chunk is nothing beside the chunk's training, small enough to stay far below memory.
CHUNK_BYTES = 16 << 20


def is_dask(data):
    """Whether ``data`` is a Dask collection (checked without importing Dask)."""
    dask = sys.modules.get("dask")
    return dask is not None and dask.is_dask_collection(data)


def is_stream(X, Y=None):
    """Whether `fit` reads ``X`` (with ``Y``) as a stream of chunks rather than as arrays.

    Parameters
    ----------
    X : object
        A `Stream`, a Dask array or DataFrame, a NumPy memory-map; or, with ``Y`` None, an
        iterator, a function, or a list or tuple whose items are ``(X, Y[, sample_weight])``
        chunks.
    Y : object, optional

    Returns
    -------
    bool
    """
    if isinstance(X, (Stream, np.memmap)) or is_dask(X):
        return True
    if Y is not None:
        return False
    if callable(X) or hasattr(X, "__next__"):
        return True
    return (isinstance(X, (list, tuple)) and len(X) > 0
            and all(isinstance(chunk, tuple) and len(chunk) in (2, 3) for chunk in X))


class Stream:
    """Chunks of training or validation data that `fastnn.training.fit` reads one after
    another, each epoch.

    `fit` makes one with the defaults from what it is given; make one to choose them.

    Parameters
    ----------
    X : dask array or DataFrame, numpy.memmap, iterable or function
        A Dask array (its row blocks are the chunks) or DataFrame (its partitions); an array that
        slices without reading everything (a memory-map, a zarr or h5py array), read in chunks of
        ``chunk_rows`` rows; or, with ``Y`` None, an iterable of ``(X, Y)`` or ``(X, Y,
        sample_weight)`` chunks of NumPy arrays, pandas DataFrames and Series or Arrow record
        batches, tables and arrays, or a function that returns a new one each epoch (an iterator
        serves a single epoch).
    Y : array-like, optional
        The targets of an array or Dask X: an array of the same rows (a Dask array or Series of
        the same row blocks or partitions, or any array sliced as X is).
    sample_weight : array-like, optional
        The sample weights, given as ``Y``.
    chunk_rows : int, optional
        Rows per chunk of a sliced array: by default those of 16 MiB of X. (A Dask collection
        keeps its blocks; rechunk it to change them.)
    shuffle_buffer : int, optional
        With shuffling, the rows the buffer keeps from one chunk to mix with the next; by
        default as many as the chunk that comes in. Memory grows with it.
    prefetch : int, default 1
        Chunks loaded ahead of the one that trains (>= 1).

    Attributes
    ----------
    rows : int or None
        The rows of an epoch, once known (at the start for arrays, after the first epoch for
        other streams).
    once : bool
        Whether it can be read only once (X an iterator): it serves a single epoch.
    """

    def __init__(self, X, Y=None, sample_weight=None, *, chunk_rows=None, shuffle_buffer=None,
                 prefetch=1):
        if isinstance(X, Stream):
            raise TypeError("X is a Stream already")
        if chunk_rows is not None:
            chunk_rows = check_int("chunk_rows", chunk_rows, 1)
        self.shuffle_buffer = (None if shuffle_buffer is None
                               else check_int("shuffle_buffer", shuffle_buffer, 0))
        self.prefetch = check_int("prefetch", prefetch, 1)
        self._source = _source(X, Y, sample_weight, chunk_rows)
        self.rows, self.once = self._source.rows, self._source.once

    # ---- reading --------------------------------------------------------------------------

    def checked_chunks(self, net, rng=None):
        """The epoch's chunks as CheckedData for ``net``, loaded and checked in a background
        thread: a context manager that gives an iterator.

        Parameters
        ----------
        net : fastnn.MLP
        rng : numpy.random.Generator, optional
            Draws the order of the chunks when the source can read them in any order; in their
            order without it.
        """
        return _Prefetcher(self._checked(net, self._source.chunks(rng)), self.prefetch)

    def _checked(self, net, chunks):
        """Each raw chunk checked for ``net`` (empty ones skipped); counts the rows.

        As in memory, the sample weights (times the class weights) must have a positive sum
        over the whole epoch, not in each chunk: a batch whose weights are all zero makes no
        update."""
        rows, normalizer = 0, 0.0
        for where, (X, Y, s) in chunks:
            X, Y = _numpy(X), _numpy(Y)
            if X.ndim >= 1 and X.shape[0] == 0:
                continue
            try:
                data = CheckedData(*net._checked(X, Y, None if s is None else _numpy(s),
                                                 part=True))
            except (ValueError, TypeError) as error:
                raise type(error)(f"chunk {where}: {error}") from None
            rows += data.X.shape[0]
            normalizer += net._normalizer(data)
            yield data
        if rows == 0:
            raise ValueError("the stream gave no rows: at least one sample is needed")
        if not normalizer > 0:
            raise ValueError("the stream's sample weights (times its class weights) sum to 0 "
                             "over the epoch: the weighted mean loss is undefined")
        self.rows = rows

    # ---- training -------------------------------------------------------------------------

    def train_epoch(self, net, optimizer, batch_size, rng=None, clip_grad_norm=None,
                    schedule=None, progress=None):
        """One epoch of minibatch updates over the stream, run in compiled code chunk by chunk.

        Parameters
        ----------
        net : fastnn.MLP
        optimizer : fastnn.Optimizer
        batch_size : int
            Rows per update (>= 1); the last batch of the epoch may be smaller.
        rng : numpy.random.Generator, optional
            Shuffle with it (the order of the chunks and the buffer, see the module's notes);
            without it, the rows train in the stream's order, in the batches of the in-memory
            fit.
        clip_grad_norm : float, optional
            As `fastnn.MLP.train_epoch`.
        schedule : fastnn.schedules.Schedule, optional
            One with ``interval="step"``, stepped after each batch.
        progress : callable, optional
            ``progress(rows, loss)``, called after each chunk.

        Returns
        -------
        float
            The mean over the samples (weighted) of J on their batch before its update.

        Raises
        ------
        FloatingPointError
            If a loss or a parameter becomes NaN or infinite; the network, the optimizer and
            the schedule are then restored to their state at the start of the epoch.
        """
        from fastnn import training  # training imports this module

        max_norm = training.check_clip_grad_norm(clip_grad_norm)
        batch_size = check_int("batch_size", batch_size, 1)
        net._training_rows(batch_size)
        rule = training.check_optimizer(optimizer).bind(net)
        snapshot = (net._engine.snapshot(), optimizer.state_dict(),
                    schedule.state_dict() if schedule is not None else None)
        epoch = _Epoch(net, rule, batch_size, max_norm, schedule is not None, rng,
                       self.shuffle_buffer, progress)
        try:
            with self.checked_chunks(net, rng) as chunks:
                for chunk in chunks:
                    epoch.feed(chunk)
            epoch.finish()
        except KeyboardInterrupt:
            # as in memory: the last completed update stays
            if not net._intact(optimizer):
                net._restore_epoch(snapshot, optimizer, schedule)
            raise
        except BaseException:
            # a chunk that fails its checks, or a loss that is not finite: the epoch is undone
            net._restore_epoch(snapshot, optimizer, schedule)
            raise
        if not net._intact(optimizer):
            net._restore_epoch(snapshot, optimizer, schedule)
            raise FloatingPointError(NONFINITE)
        return epoch.total / epoch.seen

    def loss(self, net):
        """The objective on the whole stream, in evaluation mode, as `fastnn.MLP.loss` gives it
        on the rows in memory (to rounding), read chunk by chunk."""
        weighted = normalizer = 0.0
        with self.checked_chunks(net) as chunks:
            for chunk in chunks:
                S = net._normalizer(chunk)
                if S == 0:  # weights all zero: the chunk adds nothing
                    continue
                # the chunk's J less its penalty is loss_scale sum_i s_i L_i / S_c
                weighted += (net.loss(chunk) - _penalty(net, S)) * S
                normalizer += S
        return weighted / normalizer + _penalty(net, normalizer)

    def accuracy(self, net):
        """A classifier's validation accuracy on the whole stream (see
        `fastnn.History.val_accuracy`), read chunk by chunk."""
        from fastnn.training import _accuracy

        hits = weights = rows = unweighted = 0.0
        with self.checked_chunks(net) as chunks:
            for chunk in chunks:
                n = chunk.X.shape[0]
                weight = n if chunk.sample_weight is None else float(chunk.sample_weight.sum())
                share = _accuracy(net, chunk)
                hits, weights = hits + share * weight, weights + weight
                # for weights that are all zero: the plain mean, as in memory
                rows, unweighted = rows + n, unweighted + share * n
        return hits / weights if weights > 0 else unweighted / rows


NONFINITE = ("the loss became NaN or infinite; the network and the optimizer (and the schedule) "
             "were restored to their state at the start of the epoch (a learning rate too high, "
             "or inputs or targets too large?)")


def _penalty(net, S):
    """The objective's L2 term for data of normalizer S."""
    penalty = 0.5 * net.l2 * sum(float(np.dot(W.ravel(), W.ravel())) for W in net.weights)
    return penalty / S if net._l2_per_sample else penalty


class _Epoch:
    """The batches of one streamed epoch, fed chunk by chunk to the compiled epoch loop."""

    def __init__(self, net, rule, batch_size, max_norm, scheduled, rng, shuffle_buffer,
                 progress):
        self.net, self.rule, self.batch_size = net, rule, batch_size
        self.max_norm, self.scheduled, self.rng = max_norm, scheduled, rng
        self.shuffle_buffer, self.progress = shuffle_buffer, progress
        self.carry = None    # CheckedData: unshuffled, the rows kept for the next chunk
        # shuffled, the buffer: the rows kept are at the slots `kept` of `pool`, and each chunk
        # is written into its `free` slots, so no row is copied twice
        self.pool = self.kept = self.free = None
        self.total = self.seen = 0.0
        self.rows = 0

    def feed(self, chunk):
        """Train the full batches ``chunk`` completes; keep the rest."""
        if self.rng is None:
            self._in_order(chunk)
        else:
            self._shuffled(chunk)
        if self.progress is not None:
            self.progress(self.rows, self.total / self.seen if self.seen > 0 else math.nan)

    def finish(self):
        """Train the rows left, the last (maybe partial) batches of the epoch."""
        carry, self.carry = self.carry, None
        if self.kept is not None:
            carry = CheckedData(*(None if a is None else a[self.kept] for a in self.pool))
            self.pool = self.kept = self.free = None
        if carry is None or carry.X.shape[0] == 0:
            return
        n = carry.X.shape[0]
        if self.net._batch_norm and n % self.batch_size == 1:
            raise ValueError(f"batch normalization in training needs batches of at least 2 rows: "
                             f"the stream's rows in batches of {self.batch_size} leave a last "
                             f"batch of 1 (choose another batch_size)")
        order = None if self.rng is None else self.rng.permutation(n)
        self._train(carry, order, -(-n // self.batch_size))

    def _in_order(self, chunk):
        """Without shuffling: the batches of the in-memory fit, the one that straddles two
        chunks made of the carried rows and the first of this chunk."""
        n, start, size = chunk.X.shape[0], 0, self.batch_size
        if self.carry is not None:
            start = min(size - self.carry.X.shape[0], n)
            self.carry = _concat(self.carry, _rows(chunk, 0, start))
            if self.carry.X.shape[0] < size:
                return
            carry, self.carry = self.carry, None
            self._train(carry, None, 1)
        full = (n - start) // size
        if full:
            self._train(_rows(chunk, start, start + full * size), None, full)
        rest = start + full * size
        if rest < n:
            self.carry = CheckedData(*(None if a is None else a[rest:].copy() for a in chunk))

    def _shuffled(self, chunk):
        """With shuffling: this chunk and the kept rows permuted, their full batches but the
        last ``shuffle_buffer`` rows (or a chunk's worth) trained, those kept."""
        slots = self._place(chunk)
        held = slots if self.kept is None else np.concatenate([self.kept, slots])
        keep = chunk.X.shape[0] if self.shuffle_buffer is None else self.shuffle_buffer
        batches = max(held.size - keep, 0) // self.batch_size
        order = held[self.rng.permutation(held.size)]
        if batches:
            self._train(self.pool, order, batches)
        trained = batches * self.batch_size
        # in increasing order, the next chunk is written ~3x faster than to scattered rows
        self.kept = order[trained:]
        self.free = np.concatenate([self.free, np.sort(order[:trained])])

    def _place(self, chunk):
        """Write ``chunk`` into free slots of the pool (made, or grown, to hold it beside the
        kept rows) and return those slots."""
        n = chunk.X.shape[0]
        if self.pool is None or self.free.size < n:
            kept = 0 if self.kept is None else self.kept.size
            keep = n if self.shuffle_buffer is None else self.shuffle_buffer
            # the buffer keeps up to keep + batch_size - 1 rows (what fills no batch), so a
            # pool of this size takes every chunk of this size without growing again
            rows = max(kept, keep + self.batch_size - 1) + n
            pool = CheckedData(np.empty((rows, chunk.X.shape[1]), chunk.X.dtype),
                               np.empty((rows, chunk.Y.shape[1]), chunk.Y.dtype),
                               None if self.pool is None or self.pool.sample_weight is None
                               else np.ones(rows, chunk.X.dtype))
            if kept:
                for old, new in zip(self.pool, pool):
                    if old is not None:
                        new[:kept] = old[self.kept]
            self.pool, self.kept = pool, np.arange(kept)
            self.free = np.arange(kept, rows)
        slots, self.free = self.free[:n], self.free[n:]
        if chunk.sample_weight is not None and self.pool.sample_weight is None:
            self.pool = self.pool._replace(sample_weight=np.ones(self.pool.X.shape[0],
                                                                 chunk.X.dtype))
        for part, whole in zip(chunk, self.pool):
            if whole is not None:
                whole[slots] = 1 if part is None else part
        return slots

    def _train(self, data, order, batches):
        """The first ``batches`` batches of checked ``data`` (in ``order``) through the compiled
        epoch loop."""
        X, Y, s = data
        if order is not None:
            order = np.ascontiguousarray(order, dtype=np.intp)
        self.total, self.seen, done = self.net._engine.epoch(
            X, Y, s, order, self.batch_size, self.rule, self.max_norm, self.scheduled, 0, batches,
            self.total, self.seen)
        if done < batches:
            raise FloatingPointError(NONFINITE)
        self.rows += min(batches * self.batch_size, X.shape[0])


def _rows(data, start, stop):
    """Rows start..stop-1 of checked data (views)."""
    return CheckedData(*(None if a is None else a[start:stop] for a in data))


def _concat(first, second):
    """Two pieces of checked data one after the other (a sample weight of 1 for rows of a piece
    without them, when the other has some)."""
    parts = []
    for a, b in zip(first, second):
        if a is None and b is None:
            parts.append(None)
            continue
        a = np.ones(first.X.shape[0], second.X.dtype) if a is None else a
        b = np.ones(second.X.shape[0], first.X.dtype) if b is None else b
        parts.append(np.concatenate([a, b]))
    return CheckedData(*parts)


# ---- the prefetching thread ---------------------------------------------------------------------

class _Prefetcher:
    """Runs an iterator in a background thread, at most ``depth`` items ahead of the consumer
    (it waits for room before making the next); re-raises its errors in the consumer. A context
    manager: leaving it stops the thread (waited for on a normal exit; after an error or
    Ctrl-C, left to end on its own once the user's source returns)."""

    def __init__(self, items, depth):
        self._queue = queue.SimpleQueue()
        self._room = threading.Semaphore(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), daemon=True,
                                        name="fastnn-prefetch")

    def __enter__(self):
        self._thread.start()
        return self._items()

    def __exit__(self, kind, error, traceback):
        self._stop.set()
        if kind is None:
            self._thread.join()
        # after an error or Ctrl-C the thread may be inside the user's source (a read that
        # blocks): it is not waited for; it ends, a daemon, when that returns (it then sees the
        # stop and makes nothing more)

    def _run(self, items):
        try:
            items = iter(items)
            while self._wait_for_room():
                try:
                    item = next(items)
                except StopIteration:
                    self._queue.put((False, None))
                    return
                self._queue.put((True, item))
        except BaseException as error:  # the consumer raises it, whatever it is
            self._queue.put((False, error))

    def _wait_for_room(self):
        """Whether there is room for one more item; False if the consumer stopped first."""
        while not self._stop.is_set():
            if self._room.acquire(timeout=0.05):
                return True
        return False

    def _items(self):
        while True:
            more, item = self._queue.get()
            if more:
                # the next item loads while this one is used
                self._room.release()
                yield item
            elif item is None:
                return
            else:
                raise item


# ---- sources ------------------------------------------------------------------------------------

def _source(X, Y, sample_weight, chunk_rows):
    """The source that reads X (with Y and sample_weight)."""
    if is_dask(X):
        if hasattr(X, "npartitions") and not hasattr(X, "blocks"):
            return _DaskFrame(X, Y, sample_weight)
        return _DaskArray(X, Y, sample_weight)
    if Y is None:
        if sample_weight is not None:
            raise ValueError("a stream of chunks carries its sample weights in its chunks "
                             "(X, Y, sample_weight): give no sample_weight")
        return _Iterable(X)
    return _Sliced(X, Y, sample_weight, chunk_rows)


class _Source:
    """What a stream reads: ``chunks(rng)`` yields ``(where, (X, Y, s))`` for an epoch, ``where``
    naming the chunk in error messages."""

    rows = None
    once = False    # whether it can be read only once (an iterator)

    def chunks(self, rng):
        raise NotImplementedError


def _length(name, array, rows):
    """Refuse ``array`` (Y or sample weights) unless it has ``rows`` rows."""
    length = getattr(array, "shape", (None,))[0]
    if length is not None and not (isinstance(length, float) and math.isnan(length)) \
            and length != rows:
        raise ValueError(f"X has {rows} rows but {name} has {length}")


class _Sliced(_Source):
    """Row slices of arrays that slice without reading everything (a memory-map)."""

    def __init__(self, X, Y, s, chunk_rows):
        if getattr(X, "ndim", None) != 2:
            raise ValueError(f"X must be 2-dimensional (n_samples, n_features), got "
                             f"{getattr(X, 'shape', type(X).__name__)}")
        self.rows = X.shape[0]
        for name, array in (("Y", Y), ("sample_weight", s)):
            if array is not None:
                _length(name, array, self.rows)
        if chunk_rows is None:
            row_bytes = max(1, X.shape[1] * X.dtype.itemsize)
            chunk_rows = max(1, CHUNK_BYTES // row_bytes)
        self.X, self.Y, self.s, self.chunk_rows = X, Y, s, chunk_rows

    def chunks(self, rng):
        starts = np.arange(0, self.rows, self.chunk_rows)
        if rng is not None:
            starts = starts[rng.permutation(starts.size)]
        for start in starts.tolist():
            stop = min(start + self.chunk_rows, self.rows)
            # np.array reads the rows into memory here, in the loading thread
            yield (f"{start // self.chunk_rows} (rows {start} to {stop - 1})",
                   tuple(None if a is None else np.array(a[start:stop])
                         for a in (self.X, self.Y, self.s)))


class _DaskArray(_Source):
    """The row blocks of a Dask array, each computed (by the current scheduler: a Client's
    workers if there is one) when the loading thread reaches it."""

    def __init__(self, X, Y, s):
        import dask.array as da

        if X.ndim != 2:
            raise ValueError(f"X must be 2-dimensional (n_samples, n_features), got shape "
                             f"{X.shape}")
        if any(math.isnan(c) for c in X.chunks[0]):
            raise ValueError("X has blocks of unknown size: call X.compute_chunk_sizes() first")
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        self.rows = X.shape[0]
        self.dask = da
        self.X = X
        self.others = []
        for name, array in (("Y", Y), ("sample_weight", s)):
            if array is None:
                self.others.append(None)
                continue
            _length(name, array, self.rows)
            if not is_dask(array):
                array = da.from_array(np.asarray(array), chunks=-1)
            if hasattr(array, "to_dask_array"):
                array = array.to_dask_array(lengths=True)
            array = array.rechunk({0: X.chunks[0], **({1: -1} if array.ndim == 2 else {})})
            self.others.append(array)
        if self.others[0] is None:
            raise ValueError("a Dask array X needs Y")
        self.offsets = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(int)

    def chunks(self, rng):
        n = len(self.X.chunks[0])
        blocks = range(n) if rng is None else rng.permutation(n).tolist()
        parts = [_pieces(a, a.blocks) for a in [self.X, *self.others] if a is not None]
        tasks = [[pieces[k] for pieces in parts] for k in blocks]
        for k, computed in zip(blocks, _computed(self.dask, tasks)):
            loaded = iter(computed)
            where = f"{k} (rows {self.offsets[k]} to {self.offsets[k + 1] - 1})"
            yield where, tuple(None if a is None else next(loaded) for a in [self.X, *self.others])


class _DaskFrame(_Source):
    """The partitions of a Dask DataFrame (X) with a Dask Series or DataFrame (Y) of the same
    partitions, each computed when the loading thread reaches it."""

    def __init__(self, X, Y, s):
        import dask

        if Y is None:
            raise ValueError("a Dask DataFrame X needs Y")
        for name, array in (("Y", Y), ("sample_weight", s)):
            if array is not None and (not is_dask(array)
                                      or getattr(array, "npartitions", None) != X.npartitions):
                raise ValueError(f"{name} of a Dask DataFrame X must be a Dask Series or "
                                 f"DataFrame of its {X.npartitions} partitions")
        self.dask, self.X, self.Y, self.s = dask, X, Y, s

    def chunks(self, rng):
        n = self.X.npartitions
        partitions = range(n) if rng is None else rng.permutation(n).tolist()
        parts = [_pieces(a, a.partitions) for a in (self.X, self.Y, self.s) if a is not None]
        tasks = [[pieces[k] for pieces in parts] for k in partitions]
        for k, loaded in zip(partitions, _computed(self.dask, tasks)):
            yield f"{k} (partition {k})", (*loaded[:2], loaded[2] if self.s is not None else None)


def _pieces(collection, pieces):
    """The row blocks (or partitions) of a Dask ``collection``, ``pieces`` being its ``blocks``
    or ``partitions`` accessor: the distributed Client's futures of them when it holds them all
    (the collection was persisted on the workers), else lazy collections of one block each.

    A held block is sent from the worker that has it, with no task to schedule: a block computed
    through ``client.compute`` costs a graph, a scheduler round trip and a task on a worker
    (~10 ms each on a 2-core machine, measured), as much as training a chunk of a small network.
    """
    n = len(collection.chunks[0]) if hasattr(collection, "chunks") else collection.npartitions
    distributed = sys.modules.get("distributed")
    if distributed is not None:
        held = {future.key: future for future in distributed.futures_of(collection)}
        if held:
            graph = collection.__dask_graph__()
            keys = [_target(graph, key, held) for key in _flat(collection.__dask_keys__())]
            if len(keys) == n and all(key in held for key in keys):
                return [held[key] for key in keys]
    return [pieces[k] for k in range(n)]


def _target(graph, key, held):
    """The held key that ``key`` stands for: a persisted DataFrame names its partitions by
    aliases (tasks that only pass on another key) of the keys its futures hold."""
    while key not in held and type(graph.get(key)).__name__ == "Alias":
        key = graph[key].target
    return key


def _flat(keys):
    """A collection's nested lists of keys, one after another (a row block's columns are one
    block: a Dask array X is rechunked so)."""
    for key in keys:
        if isinstance(key, list):
            yield from _flat(key)
        else:
            yield key


def _computed(dask, tasks, ahead=4):
    """The values of each of ``tasks`` (lists of Dask collections or futures), in turn. On a
    distributed Client, the next ``ahead`` tasks are computed on the workers meanwhile and each
    task's values come in one transfer, straight from the workers; else each is computed by the
    local scheduler when its turn comes."""
    distributed = sys.modules.get("distributed")
    try:
        client = distributed.get_client() if distributed is not None else None
    except ValueError:  # no client
        client = None
    if client is None:
        for parts in tasks:
            yield dask.compute(*parts)
        return
    # straight from the worker that holds a block: through the scheduler (distributed's default
    # for a client outside the workers) each block travels twice, the second time into this
    # process beside the training (a LocalCluster's scheduler runs here too). A Client made
    # with direct_to_workers=False (workers not reachable from here) keeps its way.
    direct = client.direct_to_workers is not False
    futures = collections.deque()
    submitted = 0
    for k in range(len(tasks)):
        while submitted < len(tasks) and submitted <= k + ahead:
            futures.append([part if isinstance(part, distributed.Future)
                            else client.compute(part) for part in tasks[submitted]])
            submitted += 1
        yield client.gather(futures.popleft(), direct=direct)


class _Iterable(_Source):
    """The items of an iterable, a new one each epoch from a function or a re-iterable
    container; an iterator serves one epoch."""

    def __init__(self, chunks):
        self.source, self.used = chunks, False
        try:
            self.once = not callable(chunks) and iter(chunks) is chunks
        except TypeError:
            raise TypeError(f"a stream of chunks is an iterable of (X, Y[, sample_weight]) "
                            f"chunks or a function that returns one, got "
                            f"{type(chunks).__name__}") from None

    def chunks(self, rng):
        if callable(self.source):
            items = self.source()
        elif hasattr(self.source, "__next__"):
            if self.used:
                raise ValueError("an iterator of chunks serves one epoch: give a function that "
                                 "returns a new iterator each epoch (or a list) to train more")
            items = self.source
        else:
            items = self.source
        self.used = True
        for k, item in enumerate(items):
            if not (isinstance(item, (tuple, list)) and len(item) in (2, 3)):
                raise TypeError(f"chunk {k}: a chunk is a pair (X, Y) or a triple (X, Y, "
                                f"sample_weight), got {type(item).__name__}")
            yield f"{k}", (item[0], item[1], item[2] if len(item) == 3 else None)


def _numpy(part):
    """A chunk's part as a NumPy array: pandas and Arrow objects converted, memory-maps read."""
    module = type(part).__module__.split(".")[0]
    if module == "pandas":
        return part.to_numpy()
    if module == "pyarrow":
        if hasattr(part, "columns"):  # a RecordBatch or Table: one column per feature
            return np.column_stack([_numpy(column) for column in part.columns])
        if hasattr(part, "chunks"):  # a ChunkedArray
            return part.to_numpy()
        return part.to_numpy(zero_copy_only=False)
    if isinstance(part, np.memmap):
        return np.array(part)
    return part


def stream_data(net, X, Y, sample_weight, validation_data, validation_split, saves, epochs):
    """`fit`'s training stream and its validation data (a stream, checked data, or None).

    Parameters
    ----------
    net : fastnn.MLP
    X, Y, sample_weight : as `fastnn.training.fit` takes them, X a stream
    validation_data : pair or triple, or Stream, optional
    validation_split : float
    saves : bool
        Whether the fit writes or resumes a checkpoint.
    epochs : int
        The epochs the fit runs at most: a stream read once (an iterator) serves only one.
    """
    if validation_split:
        raise ValueError("validation_split needs the rows in memory; with a stream, give "
                         "validation_data (which may be a stream too)")
    if saves:
        raise ValueError("checkpoint and resume need the data in memory (they fingerprint it); "
                         "with a stream, save the network after each epoch with a "
                         "fastnn.callbacks.ModelCheckpoint")
    if isinstance(X, Stream) and (Y is not None or sample_weight is not None):
        raise TypeError("with a Stream as X, give no Y or sample_weight: the Stream holds them")
    data = X if isinstance(X, Stream) else Stream(X, Y, sample_weight)
    _check_epochs("X", data, epochs)
    if validation_data is None or isinstance(validation_data, Stream):
        validation = validation_data
    elif not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be a pair (X_val, Y_val), a triple (X_val, Y_val, "
                         "sample_weight_val) or a fastnn.streams.Stream")
    elif is_stream(*validation_data[:2]):
        validation = Stream(*validation_data)
    else:
        try:
            return data, net.check_data(*validation_data)
        except (ValueError, TypeError) as error:
            raise type(error)(f"validation_data: {error}") from None
    if validation is not None:
        _check_epochs("validation_data", validation, epochs)
    return data, validation


def _check_epochs(name, stream, epochs):
    """Refuse, before any training, a stream read once (an iterator) for more than one epoch:
    it would be empty at the start of the second."""
    if stream.once and epochs > 1:
        raise ValueError(f"{name}: an iterator of chunks serves one epoch, and the fit runs up "
                         f"to {epochs}: give a function that returns a new iterable of chunks "
                         f"each epoch (such as lambda: iter(...)), or a list of chunks")
