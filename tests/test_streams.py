"""Training on streams (fastnn.streams): memory-maps and iterables of chunks train to the weights
of the in-memory fit when unshuffled, shuffle reproducibly within a bounded buffer, check every
chunk before the kernel sees it, and hold a few chunks in memory, never the whole data."""
import os
import threading
import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn.schedules import StepLR
from fastnn.streams import Stream, _Epoch, is_stream

from processes import run_code

ROWS, FEATURES, CLASSES = 1003, 5, 3


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, FEATURES))
    return X, rng.integers(0, CLASSES, ROWS), rng.uniform(0.5, 2.0, ROWS)


def network(**options):
    return fastnn.MLP([FEATURES, 16, CLASSES], activation="tanh", output_activation="softmax",
                      loss="cross_entropy", seed=1, **options)


def chunked(X, y, w=None, rows=50):
    """The data as a list of (X, y[, w]) chunks of ``rows`` rows."""
    return [(X[i:i + rows], y[i:i + rows]) + (() if w is None else (w[i:i + rows],))
            for i in range(0, len(X), rows)]


def memmap(tmp_path, X):
    path = tmp_path / "X.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=X.dtype, shape=X.shape)
    array[:] = X
    array.flush()
    return np.load(path, mmap_mode="r")


@pytest.mark.parametrize("chunk_rows", [1, 31, 32, 77, 2000])
def test_an_unshuffled_memmap_trains_to_the_in_memory_weights(tmp_path, data, chunk_rows):
    # batches of 32 straddle chunks of 31 and 77 rows; 1003 rows leave a partial last batch
    X, y, w = data
    expected, streamed = network(), network()
    fit = dict(epochs=2, batch_size=32, shuffle=False, optimizer=fastnn.Adam(lr=1e-2),
               validation_data=(X[:100], y[:100]))
    history = expected.fit(X, y, sample_weight=w, **fit)
    fit["optimizer"] = fastnn.Adam(lr=1e-2)
    streamed_history = streamed.fit(Stream(memmap(tmp_path, X), y, w, chunk_rows=chunk_rows),
                                    None, **fit)
    np.testing.assert_allclose(streamed.params, expected.params, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(streamed_history.loss, history.loss, rtol=1e-12)
    assert streamed_history.val_loss == history.val_loss


def test_a_memmap_is_a_stream_as_it_is(tmp_path, data):
    X, y, _ = data
    expected, streamed = network(), network()
    expected.fit(X, y, epochs=1, shuffle=False)
    streamed.fit(memmap(tmp_path, X), y, epochs=1, shuffle=False)
    np.testing.assert_allclose(streamed.params, expected.params, rtol=1e-12, atol=1e-12)


def test_chunks_of_numpy_pandas_and_arrow_train_alike(data):
    pandas = pytest.importorskip("pandas")
    pyarrow = pytest.importorskip("pyarrow")
    X, y, _ = data
    frames = [(pandas.DataFrame(a), pandas.Series(b)) for a, b in chunked(X, y)]
    batches = [(pyarrow.RecordBatch.from_arrays([pyarrow.array(a[:, j]) for j in range(FEATURES)],
                                                names=list("abcde")), pyarrow.array(b))
               for a, b in chunked(X, y)]
    expected = network()
    expected.fit(X, y, epochs=2, shuffle=False)
    for chunks in (chunked(X, y), frames, batches, lambda: iter(chunked(X, y))):
        streamed = network()
        streamed.fit(chunks, None, epochs=2, shuffle=False)
        np.testing.assert_allclose(streamed.params, expected.params, rtol=1e-12, atol=1e-12)


def test_a_step_schedule_clipping_and_dropout_follow_the_in_memory_fit(data):
    X, y, _ = data
    nets = [network(dropout=0.3), network(dropout=0.3)]
    for net, X_fit, y_fit in ((nets[0], X, y), (nets[1], chunked(X, y, rows=45), None)):
        optimizer = fastnn.SGD(lr=0.1, momentum=0.9)
        net.fit(X_fit, y_fit, optimizer, epochs=2, batch_size=16, shuffle=False, seed=3,
                clip_grad_norm=0.5, schedule=StepLR(step_size=7, gamma=0.9, interval="step"))
    np.testing.assert_allclose(nets[1].params, nets[0].params, rtol=1e-12, atol=1e-12)


def test_shuffling_is_reproducible_and_mixes_rows_across_chunks(data):
    X, y, _ = data
    X = X.copy()
    X[:, 0] = np.arange(ROWS)   # each row says where it comes from
    seen = []
    nets = [network(), network(), network()]
    for net, seed in zip(nets, (0, 0, 1)):
        net.fit(lambda: iter(chunked(X, y, rows=100)), None, epochs=2, batch_size=32, seed=seed)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)
    assert not np.array_equal(nets[0].params, nets[2].params)

    # the rows of the first batches come from more than one chunk of 100
    stream = Stream(chunked(X, y, rows=100))
    rng = np.random.default_rng(0)

    class Spy(_Epoch):
        def _train(self, data, order, batches):
            seen.append(data.X[order[:batches * self.batch_size], 0] // 100)

    epoch = Spy(network(), None, 32, 0.0, False, rng, None, None)
    with stream.checked_chunks(network(), rng) as chunks:
        for chunk in chunks:
            epoch.feed(chunk)
    epoch.finish()
    assert len(np.unique(seen[1])) > 1
    assert sorted(np.concatenate(seen).tolist()) == sorted((np.arange(ROWS) // 100).tolist())


def test_the_shuffle_buffer_trains_each_row_once_with_its_weight_as_it_grows(data):
    # chunks of growing sizes make the buffer grow (its kept rows moved to the new one); chunks
    # without weights beside chunks with them train at weight 1
    X, y, w = data
    X = X.copy()
    X[:, 0] = np.arange(ROWS)
    bounds = [0, 7, 57, 257, 260, 560, ROWS]
    chunks = [(X[a:b], y[a:b]) + ((w[a:b],) if k % 2 else ())
              for k, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    expected = np.concatenate([w[a:b] if k % 2 else np.ones(b - a)
                               for k, (a, b) in enumerate(zip(bounds, bounds[1:]))])
    trained = []

    class Spy(_Epoch):
        def _train(self, data, order, batches):
            rows = order[:min(batches * self.batch_size, order.size)]
            trained.append((data.X[rows, 0].astype(int), data.sample_weight[rows]))

    net = network()
    rng = np.random.default_rng(0)
    epoch = Spy(net, None, 32, 0.0, False, rng, None, None)
    with Stream(chunks).checked_chunks(net, rng) as loaded:
        for chunk in loaded:
            epoch.feed(chunk)
    epoch.finish()
    ids = np.concatenate([ids for ids, _ in trained])
    weights = np.concatenate([weights for _, weights in trained])
    assert sorted(ids.tolist()) == list(range(ROWS))
    np.testing.assert_array_equal(weights, expected[ids])


def test_the_shuffle_buffer_is_bounded(data):
    X, y, _ = data
    stream = Stream(chunked(X, y, rows=100), shuffle_buffer=10)
    sizes = []

    class Sized(_Epoch):
        def _train(self, data, order, batches):
            sizes.append(data.X.shape[0])
            super()._train(data, order, batches)

    net = network()
    rng = np.random.default_rng(0)
    epoch = Sized(net, fastnn.Adam().bind(net), 32, 0.0, False, rng, 10, None)
    with stream.checked_chunks(net, rng) as chunks:
        for chunk in chunks:
            epoch.feed(chunk)
            assert epoch.kept.size < 10 + 32
    epoch.finish()
    assert max(sizes) < 100 + 10 + 32


def test_chunks_load_in_a_background_thread(data):
    X, y, _ = data
    threads = set()

    def chunks():
        for chunk in chunked(X, y):
            threads.add(threading.current_thread().name)
            yield chunk

    network().fit(chunks, None, epochs=1)
    assert threads == {"fastnn-prefetch"}


@pytest.mark.parametrize("change, message", [
    (lambda X, y: (X[:, :4], y), "chunk 3: X has 4 columns, the network expects 5"),
    (lambda X, y: (np.where(np.arange(50)[:, None] == 7, np.nan, X), y),
     "chunk 3: X contains NaN or infinity .* at row 7"),
    (lambda X, y: (X, y + 3), r"chunk 3: class labels in Y must be in 0\.\.2"),
    (lambda X, y: (X, y[:10]), "chunk 3: X has 50 rows but Y has 10"),
])
def test_a_bad_chunk_is_named_and_its_epoch_undone(data, change, message):
    X, y, _ = data
    chunks = chunked(X, y)
    chunks[3] = change(*chunks[3])
    net = network()
    before = net.params.copy()
    with pytest.raises(ValueError, match=message):
        net.fit(chunks, None, epochs=1)
    np.testing.assert_array_equal(net.params, before)


def test_a_memmap_chunk_is_named_by_its_rows(tmp_path, data):
    X, y, _ = data
    X = X.copy()
    X[500, 1] = np.inf
    with pytest.raises(ValueError, match=r"chunk 5 \(rows 500 to 599\): X contains"):
        network().fit(Stream(memmap(tmp_path, X), y, chunk_rows=100), None, shuffle=False)


@pytest.mark.parametrize("chunks, options, error, message", [
    (lambda c: iter(c), dict(epochs=2), ValueError, "an iterator of chunks serves one epoch"),
    (lambda c: c, dict(validation_split=0.2), ValueError, "validation_split needs the rows"),
    (lambda c: c, dict(checkpoint="run.ckpt"), ValueError, "checkpoint and resume"),
    (lambda c: iter([]), dict(epochs=1), ValueError, "the stream gave no rows"),
    (lambda c: [(c[0][0][:0], c[0][1][:0])], dict(), ValueError, "the stream gave no rows"),
    (lambda c: iter([c[0][0]] * 2), dict(epochs=1), TypeError, "a chunk is a pair"),
    (lambda c: Stream(c), dict(sample_weight=np.ones(3)), TypeError, "give no Y or sample_weight"),
])
def test_streams_refuse_what_they_cannot_do(tmp_path, monkeypatch, data, chunks, options, error,
                                            message):
    monkeypatch.chdir(tmp_path)
    X, y, _ = data
    with pytest.raises(error, match=message):
        network().fit(chunks(chunked(X, y)), None, **options)


def test_an_iterator_for_several_epochs_is_refused_before_training(data):
    X, y, _ = data
    net = network()
    before = net.params.copy()
    for fit in (dict(X=iter(chunked(X, y))),
                dict(X=chunked(X, y), validation_data=Stream(iter(chunked(X, y))))):
        with pytest.raises(ValueError, match="serves one epoch.*runs up to 3.*give a function"):
            net.fit(fit.pop("X"), None, epochs=3, **fit)
    np.testing.assert_array_equal(net.params, before)
    chunks = iter(chunked(X, y))
    with pytest.raises(ValueError, match="runs up to 2"):
        net.fit(chunks, None, epochs=2)
    assert len(list(chunks)) == len(chunked(X, y))   # not a chunk was read
    net.fit(iter(chunked(X, y)), None, epochs=1)     # one epoch is what an iterator serves


def test_chunks_whose_weights_are_all_zero_train_as_in_memory(data):
    # in memory, only the whole data's weights must have a positive sum: a batch whose weights
    # are all zero makes no update; the same holds for a chunk of a stream
    X, y, w = data
    w = w.copy()
    w[100:250] = 0.0    # chunks 2 to 4 of 50 rows
    expected, streamed = network(), network()
    options = dict(epochs=2, batch_size=32, shuffle=False, optimizer=fastnn.Adam(lr=1e-2))
    history = expected.fit(X, y, sample_weight=w, validation_data=(X, y, w), **options)
    options["optimizer"] = fastnn.Adam(lr=1e-2)
    streamed_history = streamed.fit(chunked(X, y, w), None,
                                    validation_data=Stream(chunked(X, y, w)), **options)
    np.testing.assert_allclose(streamed.params, expected.params, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(streamed_history.val_loss, history.val_loss, rtol=1e-12)
    network().fit(chunked(X, y, w), None, epochs=1, seed=0)   # shuffled too

    # as in memory, weights that are all zero over the whole data are refused
    net = network()
    before = net.params.copy()
    with pytest.raises(ValueError, match="sample_weight must be >= 0 with a positive sum"):
        net.fit(X, y, sample_weight=np.zeros(ROWS))
    with pytest.raises(ValueError, match="sample weights .* sum to 0 over the epoch"):
        net.fit(chunked(X, y, np.zeros(ROWS)), None, epochs=1)
    np.testing.assert_array_equal(net.params, before)
    with pytest.raises(ValueError, match="chunk 0: sample_weight must be >= 0"):
        net.fit([(X[:50], y[:50], -w[:50])], None, epochs=1)


def test_batch_norm_refuses_a_last_batch_of_one_row(data):
    X, y, _ = data
    net = network(batch_norm=True)
    with pytest.raises(ValueError, match="leave a last batch of 1"):
        net.fit(chunked(X[:33], y[:33], rows=10), None, epochs=1, batch_size=32)


def test_a_stream_validates_and_reports_accuracy_as_in_memory(data):
    X, y, w = data
    expected, streamed = network(), network()
    validation = (X[:300], y[:300], w[:300])
    history = expected.fit(X, y, epochs=2, shuffle=False, validation_data=validation)
    streamed_history = streamed.fit(chunked(X, y), None, epochs=2, shuffle=False,
                                    validation_data=Stream(chunked(*validation, rows=64)))
    np.testing.assert_allclose(streamed_history.val_loss, history.val_loss, rtol=1e-12)
    np.testing.assert_allclose(streamed_history.val_accuracy, history.val_accuracy, rtol=1e-12)


def test_is_stream():
    X = np.zeros((4, 2))
    assert not is_stream(X, np.zeros(4))
    assert not is_stream([[0.0, 1.0]], [0])
    assert is_stream([(X, np.zeros(4))])
    assert is_stream(lambda: iter([]))


def test_memory_is_bounded_by_the_chunk_not_the_data(tmp_path):
    rng = np.random.default_rng(0)
    rows, features, chunk_rows = 200_000, 8, 10_000      # 12.8 MB of X, chunks of 0.64 MB
    X = memmap(tmp_path, rng.normal(size=(rows, features)))
    y = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float64,
                                  shape=(rows, 1))
    y[:] = rng.normal(size=(rows, 1))
    net = fastnn.MLP([features, 4, 1], seed=0)
    tracemalloc.start()
    try:
        net.fit(Stream(X, y, chunk_rows=chunk_rows), None, epochs=1, batch_size=256, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    chunk_bytes = chunk_rows * (features + 1) * 8
    assert peak < 8 * chunk_bytes < X.nbytes / 2


BLOCKED_SOURCE = """
    import os, signal, threading, time
    import numpy as np
    import fastnn
    net = fastnn.MLP([4, 8, 2], seed=0)
    def chunks():
        yield np.random.rand(50, 4), np.random.rand(50, 2)
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        threading.Event().wait()          # a read that never returns (a socket, a queue)
    started = time.perf_counter()
    history = net.fit(chunks, None, epochs=2, batch_size=16)
    print(history.interrupted, time.perf_counter() - started < 5)
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_while_the_source_blocks_returns_without_waiting_for_it():
    done = run_code(BLOCKED_SOURCE, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]
