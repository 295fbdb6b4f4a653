"""What `fastnn.training.fit` shows while it trains: a live bar per epoch in a terminal, one line
per epoch elsewhere.

With ``verbose=1`` and standard output a terminal, each epoch gets a bar with the running loss,
the time left and the samples per second, which ends as a line with the validation loss (and
accuracy) once the epoch is over. The bar is drawn by tqdm where it is installed
(``pip install "fastnn-cpu[progress]"``) and by a plain text bar where it is not. When standard
output is not a terminal (a pipe, a file, a captured stream), and with ``verbose=2``, nothing is
drawn during an epoch and one line is written at its end, without carriage returns.

A live bar is fed by `fastnn.MLP.train_epoch`'s ``progress`` function, called between compiled
chunks of batches about 0.1 s long: nothing here runs per batch.
"""
import math
import shutil
import sys
import time

__all__ = ["EpochLines", "PlainBar", "TqdmBar", "reporter"]


def reporter(verbose, epochs, rows, show_lr=False, stream=None):
    """What shows the progress of a fit: None (``verbose=0``), a bar (``verbose=1`` in a
    terminal) or one line per epoch.

    Parameters
    ----------
    verbose : {0, 1, 2}
    epochs : int
        The epochs the fit runs at most.
    rows : int or None
        The training rows of each epoch; None while unknown (a stream before its first epoch
        ends: the bar then counts rows without a total, and ``rows`` is set when known).
    show_lr : bool, default False
        Show each epoch's learning rate (it has a schedule).
    stream : file-like, optional
        Where to write; standard output (as it is when called) by default.

    Returns
    -------
    EpochLines, PlainBar, TqdmBar or None
    """
    if not verbose:
        return None
    stream = sys.stdout if stream is None else stream
    if verbose >= 2 or not _is_terminal(stream):
        return EpochLines(stream, epochs, rows, show_lr)
    try:
        import tqdm
    except ImportError:
        return PlainBar(stream, epochs, rows, show_lr)
    return TqdmBar(stream, epochs, rows, show_lr, tqdm.tqdm)


def _is_terminal(stream):
    """Whether ``stream`` is a terminal (False for a closed or unusual stream)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _number(value):
    """A loss or a metric as shown: 4 significant digits."""
    return f"{value:.4g}"


def metrics_text(logs, show_lr, separator=" - "):
    """The epoch's ``logs`` (loss, val_loss, val_accuracy, lr) as text, those present only."""
    names = ("loss", "val_loss", "val_accuracy") + (("lr",) if show_lr else ())
    return separator.join(f"{name} {_number(logs[name])}" for name in names
                          if logs.get(name) is not None)


def _duration(seconds):
    """``seconds`` as m:ss, or h:mm:ss from an hour."""
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class EpochLines:
    """One line per epoch, written when the epoch ends: its number, loss, validation loss and
    accuracy (when measured), learning rate (with a schedule) and duration.

    Parameters
    ----------
    stream : file-like
    epochs : int
    rows : int or None
        As `reporter` takes them; when None, set the attribute before `end` (fit sets it
        once a stream's first epoch is read).
    show_lr : bool
    """

    #: Whether it shows the progress within an epoch (so wants ``update`` calls).
    live = False

    def __init__(self, stream, epochs, rows, show_lr):
        self.stream, self.epochs, self.rows, self.show_lr = stream, epochs, rows, show_lr
        self.epoch, self.done, self.started = 0, 0, time.perf_counter()

    def start(self, epoch):
        """Epoch ``epoch`` (counted from 0) begins."""
        self.epoch, self.done, self.started = epoch, 0, time.perf_counter()

    def update(self, rows, loss):
        """``rows`` of the epoch are done, at a running loss ``loss``."""
        self.done = rows

    def end(self, logs):
        """The epoch is over: write its line."""
        self._write(self._line(logs) + "\n")

    def _line(self, logs):
        """The epoch's line: ``epoch 3/10 - loss 0.1234 - val_loss 0.2345 - 1.234s - 3200
        samples/s``."""
        seconds = time.perf_counter() - self.started
        return (f"epoch {self.epoch + 1}/{self.epochs} - {metrics_text(logs, self.show_lr)} - "
                f"{seconds:.3f}s - {self.rows / max(seconds, 1e-9):.0f} samples/s")

    def resumed(self, path, epochs):
        """The fit goes on from the checkpoint ``path``, after ``epochs`` epochs."""
        self._write(f"resuming from {path} after epoch {epochs}\n")

    def interrupt(self):
        """Ctrl-C stopped the training: say where."""
        of = "" if self.rows is None else f" of {self.rows}"
        where = f" after {self.done}{of} samples" if self.live else ""
        self._write(f"interrupted (Ctrl-C) in epoch {self.epoch + 1}/{self.epochs}{where}\n")

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()


class PlainBar(EpochLines):
    """A text bar redrawn in place (carriage returns) during each epoch, for a terminal without
    tqdm: ``epoch 3/10 [#######.......] 4500/10000 - 0:02 left - 3200 samples/s - loss 0.1234``.
    The epoch's line replaces it at its end."""

    live = True
    WIDTH = 20  # characters of the bar itself

    def __init__(self, stream, epochs, rows, show_lr):
        super().__init__(stream, epochs, rows, show_lr)
        self.drawn = 0

    def start(self, epoch):
        super().start(epoch)
        self.drawn = 0
        self.update(0, math.nan)

    def update(self, rows, loss):
        super().update(rows, loss)
        seconds = time.perf_counter() - self.started
        text = f"epoch {self.epoch + 1}/{self.epochs} "
        if self.rows is None:  # a stream of unknown length: the rows so far, no bar
            text += f"{rows} samples"
        else:
            filled = self.WIDTH * rows // max(self.rows, 1)
            text += f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {rows}/{self.rows}"
        if rows:
            rate = rows / seconds if seconds > 0 else math.inf
            if self.rows is not None:
                text += f" - {_duration((self.rows - rows) / rate)} left"
            text += f" - {rate:.0f} samples/s - loss {_number(loss)}"
        self._draw(text)

    def end(self, logs):
        # the whole line, wrapped if the terminal is narrow: it is the epoch's record
        self._draw(self._line(logs), cut=False)
        self._write("\n")
        self.drawn = 0

    def interrupt(self):
        if self.drawn:
            self._write("\n")
            self.drawn = 0
        super().interrupt()

    def _draw(self, text, cut=True):
        """Replace the line drawn last by ``text``, cut to the terminal's width (with cut)."""
        if cut:
            text = text[:shutil.get_terminal_size().columns - 1]
        self._write("\r" + text + " " * max(self.drawn - len(text), 0))
        self.drawn = len(text)


class TqdmBar(EpochLines):
    """A tqdm bar per epoch: percentage, bar, samples done, time spent and left, samples per
    second and the running loss; left on screen at the epoch's end with its validation results.

    Parameters
    ----------
    stream, epochs, rows, show_lr
        As for `EpochLines`.
    tqdm : type
        ``tqdm.tqdm``.
    """

    live = True

    def __init__(self, stream, epochs, rows, show_lr, tqdm):
        super().__init__(stream, epochs, rows, show_lr)
        self.tqdm, self.bar = tqdm, None

    def start(self, epoch):
        super().start(epoch)
        # mininterval 0: the compiled chunks already come about 0.1 s apart; total None (a
        # stream of unknown length): a count and a rate, without a bar
        self.bar = self.tqdm(total=self.rows, desc=f"epoch {epoch + 1}/{self.epochs}",
                             unit=" samples", unit_scale=True, file=self.stream, leave=True,
                             dynamic_ncols=True, mininterval=0, smoothing=0.1)

    def update(self, rows, loss):
        super().update(rows, loss)
        self.bar.set_postfix_str(f"loss {_number(loss)}", refresh=False)
        self.bar.update(rows - self.bar.n)

    def end(self, logs):
        self.bar.set_postfix_str(metrics_text(logs, self.show_lr, ", "), refresh=False)
        self.bar.total = self.rows
        self.bar.update(self.rows - self.bar.n)
        self.bar.close()
        self.bar = None

    def interrupt(self):
        if self.bar is not None:
            self.bar.close()
        super().interrupt()
