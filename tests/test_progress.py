"""fit's progress: a live bar per epoch in a terminal (tqdm's, or a plain one without tqdm), one
clean line per epoch elsewhere; the bar changes no result and runs no Python per batch."""
import fcntl
import functools
import io
import os
import re
import struct
import sys
import termios
import threading

import numpy as np
import pytest

import fastnn
from fastnn import network, progress, training


class Terminal:
    """Standard output on a pseudo-terminal, its output collected by a thread (a terminal's
    buffer is small: a writer nobody reads would block)."""

    def __init__(self):
        self.master, slave = os.openpty()
        # 30 rows of 120 columns (a new pseudo-terminal has none, and tqdm fits its bar to them)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        self.stream = io.TextIOWrapper(os.fdopen(slave, "wb", buffering=0), encoding="utf-8",
                                       write_through=True)
        self.chunks = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.chunks.append(data)

    def output(self):
        """What was written, once the writer is closed."""
        self.stream.close()
        self.reader.join(10)
        os.close(self.master)
        # a terminal turns "\n" into "\r\n"
        return b"".join(self.chunks).decode("utf-8").replace("\r\n", "\n")


@pytest.fixture
def terminal(monkeypatch):
    """fit's progress written to a pseudo-terminal (as to a standard output that is one: pytest
    puts its own standard output back when a test starts)."""
    screen = Terminal()
    monkeypatch.setattr(training, "reporter", functools.partial(progress.reporter,
                                                                stream=screen.stream))
    return screen


def data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)


def classifier(dropout=0.0):
    return fastnn.MLP([8, 32, 3], output_activation="softmax", loss="cross_entropy", seed=0,
                      dropout=dropout)


def train(verbose, **options):
    net = classifier(options.pop("dropout", 0.2))
    X, y = data()
    schedule = fastnn.schedules.ExponentialLR(0.999, interval="step")
    history = net.fit(X, y, fastnn.Adam(0.01), epochs=3, batch_size=8, seed=0,
                      validation_split=0.2, verbose=verbose, schedule=schedule, **options)
    return net, history


def test_a_pipe_gets_one_clean_line_per_epoch(capsys):
    _, history = train(1)
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.startswith(f"epoch {k + 1}/3 - loss ")
                                   for k, line in enumerate(lines))
    assert all(f"val_loss {v:.4g}" in line for line, v in zip(lines, history.val_loss))
    assert all("val_accuracy" in line and "lr " in line and "samples/s" in line
               for line in lines)


def stream_of_unknown_length():
    """A function that gives the rows of `data` in chunks of 250, each epoch: a stream whose
    length fit learns only at the end of its first epoch."""
    X, y = data()
    return lambda: ((X[i:i + 250], y[i:i + 250]) for i in range(0, len(X), 250))


def test_a_stream_of_unknown_length_gets_its_rate_from_the_first_epoch(capsys):
    classifier().fit(stream_of_unknown_length(), None, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert float(line.split(" samples/s")[0].rsplit(" ", 1)[1]) > 0


def test_a_stream_of_unknown_length_counts_its_rows_in_tqdms_bar(terminal):
    pytest.importorskip("tqdm")
    classifier().fit(stream_of_unknown_length(), None, epochs=2, verbose=1)
    out = terminal.output()
    draws = [draw for line in out.split("\n") for draw in line.split("\r") if draw]
    # the rows so far and their rate, without a total, then the whole epoch
    assert any(re.match(r"epoch 1/2: [1-9][0-9.]*k? samples \[.*samples/s", draw)
               for draw in draws)
    finals = [line.split("\r")[-1] for line in out.split("\n") if line]
    assert [line[:len("epoch 1/2: 100%|")] for line in finals] == ["epoch 1/2: 100%|",
                                                                   "epoch 2/2: 100%|"]


def test_without_tqdm_a_stream_of_unknown_length_counts_its_rows(terminal, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    classifier().fit(stream_of_unknown_length(), None, epochs=2, verbose=1)
    out = terminal.output()
    assert re.search(r"epoch 1/2 [1-9][0-9]* samples - [0-9]+ samples/s - loss ", out)
    assert "epoch 2/2 [" in out


@pytest.mark.parametrize("verbose", [0, False])
def test_silent(capsys, verbose):
    train(verbose)
    assert capsys.readouterr().out == ""


def test_verbose_true_is_one_and_two_is_lines_even_in_a_terminal(terminal):
    train(True)
    train(2)
    out = terminal.output()
    first, second = out.split("epoch 1/3 - ")[0], out.split("epoch 3/3 - ")[-1]
    assert "%|" in first          # the bar
    assert "%|" not in second and "\r" not in second


@pytest.mark.parametrize("verbose, error", [(3, ValueError), (-1, ValueError),
                                            ("yes", TypeError), (1.0, TypeError)])
def test_verbose_is_checked(verbose, error):
    with pytest.raises(error, match="verbose"):
        train(verbose)


def test_a_terminal_gets_tqdms_bar(terminal):
    pytest.importorskip("tqdm")
    network.CHUNK_SECONDS, before = 0.001, network.CHUNK_SECONDS
    try:
        _, history = train(1)
    finally:
        network.CHUNK_SECONDS = before
    out = terminal.output()
    assert "\r" in out and "samples/s" in out and "loss " in out
    # str.splitlines would split at the carriage returns too
    finals = [line.split("\r")[-1] for line in out.split("\n") if line]
    assert len(finals) == 3
    for k, line in enumerate(finals):
        assert line.startswith(f"epoch {k + 1}/3: 100%|")
        assert f"val_loss {history.val_loss[k]:.4g}" in line and "val_accuracy" in line


def test_without_tqdm_a_terminal_gets_a_plain_bar(terminal, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    network.CHUNK_SECONDS, before = 0.001, network.CHUNK_SECONDS
    try:
        _, history = train(1)
    finally:
        network.CHUNK_SECONDS = before
    out = terminal.output()
    assert "\r" in out and "[####" in out and " left - " in out and "samples/s" in out
    finals = [line.split("\r")[-1].rstrip() for line in out.split("\n") if line]
    assert [line.split(" - ")[0] for line in finals] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all(f"val_loss {v:.4g}" in line for line, v in zip(finals, history.val_loss))


def test_the_bar_changes_nothing_bit_for_bit(terminal):
    network.CHUNK_SECONDS, before = 0.0005, network.CHUNK_SECONDS
    try:
        shown, shown_history = train(1)
    finally:
        network.CHUNK_SECONDS = before
    hidden, hidden_history = train(0)
    assert terminal.output().count("\r") > 3 * 3   # redrawn several times in each epoch
    assert shown_history == hidden_history
    np.testing.assert_array_equal(shown.params, hidden.params)
    assert shown.random_state == hidden.random_state


def test_the_bar_runs_no_python_per_batch(terminal):
    """Count the Python calls during a fit of 2 epochs of 20000 batches each, with the bar on:
    the compiled chunks run ~0.1 s each, so the calls follow the time taken, not the batches."""
    X, y = data(20000)
    net = classifier()
    net.fit(X[:100], y[:100], epochs=1, verbose=1)    # tqdm imported, the workspace grown
    calls = {"python": 0, "fastnn": 0, "chunks": 0}
    package = os.path.dirname(fastnn.__file__)

    def count(frame, event, arg):
        if event == "call":
            calls["python"] += 1
            calls["fastnn"] += frame.f_code.co_filename.startswith(package)
            # the bar's update follows each compiled chunk
            calls["chunks"] += (frame.f_code.co_name == "update"
                                and frame.f_code.co_filename.endswith("progress.py"))
    sys.setprofile(count)
    try:
        net.fit(X, y, fastnn.SGD(0.01), epochs=2, batch_size=1, seed=0, verbose=1)
    finally:
        sys.setprofile(None)
    batches = 2 * 20000
    print(f"{batches} batches: {calls['chunks']} compiled chunks; {calls['fastnn']} calls of "
          f"fastnn's Python, {calls['python']} Python calls in all (tqdm's drawing)",
          file=sys.stderr)
    assert 2 <= calls["chunks"] < batches / 100
    assert calls["fastnn"] < batches / 100
    # tqdm measures the width of each character of the bar it draws, once per chunk
    assert calls["python"] < 1000 * (calls["chunks"] + 2)
    terminal.output()


def test_the_reporter_suits_the_stream(monkeypatch):
    screen = Terminal()
    try:
        assert progress.reporter(0, 3, 10, stream=screen.stream) is None
        assert type(progress.reporter(2, 3, 10, stream=screen.stream)) is progress.EpochLines
        assert type(progress.reporter(1, 3, 10, stream=screen.stream)) is progress.TqdmBar
        monkeypatch.setitem(sys.modules, "tqdm", None)
        assert type(progress.reporter(1, 3, 10, stream=screen.stream)) is progress.PlainBar
    finally:
        screen.output()
    pipe = io.StringIO()
    assert type(progress.reporter(1, 3, 10, stream=pipe)) is progress.EpochLines
    # standard output as it is when fit starts, by default
    monkeypatch.setattr(sys, "stdout", pipe)
    assert progress.reporter(1, 3, 10).stream is pipe
