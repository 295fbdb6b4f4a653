"""Pictures of a training: the loss per epoch, and the confusion matrix of a classifier.

matplotlib is optional: ``pip install "fastnn-cpu[plot]"``. It is imported when a picture is
drawn, never when fastnn is imported. `loss_curves` and `confusion_matrix` draw on the Axes they
are given; without one, on a new pyplot figure, so that a notebook or a script shows it with the
user's own backend (fastnn never chooses one). `training_figure` builds a
`matplotlib.figure.Figure` without pyplot, which saves to a file with no backend and no display:
the command line's ``fastnn train --plot FILE`` writes it.
"""
import dataclasses
import importlib
import os

import numpy as np

from fastnn._extras import require
from fastnn._validation import check_int
from fastnn.training import History

__all__ = ["loss_curves", "confusion_matrix", "training_figure", "check_figure_path"]

# Class names longer than this are cut, so that the matrix keeps its room.
LABEL_CHARS = 20
# Inches per row and column of a confusion matrix in `training_figure`.
CELL_INCHES = 0.45


def _import(module, purpose):
    """The matplotlib module ``module``, or an ImportError that says how to install it."""
    require("matplotlib", purpose)
    return importlib.import_module(module)


def _axes(ax, purpose):
    """``ax`` checked to be a matplotlib Axes, or the Axes of a new pyplot figure."""
    if ax is None:
        pyplot = _import("matplotlib.pyplot", purpose)
        return pyplot.subplots(layout="constrained")[1]
    axes = _import("matplotlib.axes", purpose)
    if not isinstance(ax, axes.Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    return ax


def _per_epoch(history, name):
    """``history.<name>`` as a float array of one value per epoch, or None if it is absent or
    empty (a history without validation has no ``val_loss``)."""
    values = getattr(history, name, None)
    if values is None:
        return None
    try:
        values = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"history.{name} must be a list of numbers") from None
    if values.ndim != 1:
        raise ValueError(f"history.{name} must be a flat list of numbers, one per epoch")
    if values.size == 0:
        return None
    if values.size != history.epochs:
        raise ValueError(f"history.{name} has {values.size} values for {history.epochs} epochs")
    return values


def _recorded(history):
    """The names of what ``history`` records per epoch besides the loss, for messages."""
    return [f.name for f in dataclasses.fields(history)
            if f.name not in ("loss", "val_loss") and not f.name.startswith("val_")
            and isinstance(getattr(history, f.name), list) and getattr(history, f.name)]


def _kept(history, kept):
    """The checked index of the epoch to mark: ``kept``, or by default the best epoch if
    training stopped early (fit restored it), else the last."""
    if kept is not None:
        return check_int("kept", kept, 0, history.epochs - 1)
    if history.stopped_early and history.best_epoch is not None:
        return check_int("history.best_epoch", history.best_epoch, 0, history.epochs - 1)
    return history.epochs - 1


def loss_curves(history, ax=None, *, metric=None, log=False, kept=None, title="Loss per epoch"):
    """Draw the training and validation loss of each epoch, the kept epoch marked.

    Parameters
    ----------
    history : fastnn.History
        As `fastnn.MLP.fit` returns it (``TabularModel.history`` too), of at least one epoch.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new pyplot figure by default.
    metric : str, optional
        The name of another per-epoch record of the history, drawn dashed against a second
        y-axis on the right: ``"lr"`` (the learning rate), or any list attribute of one value
        per epoch; its ``"val_" + metric`` record too, if the history has one.
    log : bool, default False
        A logarithmic loss axis (the losses must then be positive).
    kept : int, optional
        The index of the epoch whose weights the network kept, marked by a vertical line and a
        dot on the loss that chose it (validation, else training). By default the best epoch if
        training stopped early, else the last epoch. After ``fit(early_stopping=True)`` that ran
        all its epochs, fit restored the best epoch too: pass ``history.best_epoch``.
    title : str, default "Loss per epoch"

    Returns
    -------
    matplotlib.axes.Axes
        The Axes of the loss (the metric's is its twin: ``ax.figure.axes``).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If the history has no epochs, records another number of values than epochs, has no
        per-epoch ``metric``, or holds a loss <= 0 for ``log``.
    """
    if not isinstance(history, History):
        raise TypeError(f"history must be a fastnn.History, got {type(history).__name__}")
    loss = _per_epoch(history, "loss")
    if loss is None:
        raise ValueError("the history has no epochs: there is nothing to plot")
    val_loss = _per_epoch(history, "val_loss")
    if not isinstance(log, (bool, np.bool_)):
        raise TypeError(f"log must be True or False, got {log!r}")
    if log and min(loss.min(), np.inf if val_loss is None else val_loss.min()) <= 0:
        raise ValueError("log=True needs positive losses, and this history holds a loss <= 0")
    if metric is not None:
        if not isinstance(metric, str):
            raise TypeError(f"metric must be the name of a per-epoch record, got {metric!r}")
        values = _per_epoch(history, metric) if metric not in ("loss", "val_loss") else None
        if values is None:
            raise ValueError(f"the history has no per-epoch record {metric!r} to plot beside "
                             f"the loss (it records: {', '.join(_recorded(history)) or 'none'})")
        val_values = _per_epoch(history, f"val_{metric}")
    kept = _kept(history, kept)
    ax = _axes(ax, "plotting a history")
    ticker = _import("matplotlib.ticker", "plotting a history")

    epochs = np.arange(1, history.epochs + 1)
    ax.plot(epochs, loss, color="C0", label="training loss")
    watched = loss
    if val_loss is not None:
        ax.plot(epochs, val_loss, color="C1", label="validation loss")
        watched = val_loss
    ax.axvline(kept + 1, color="0.5", linestyle=":", linewidth=1)
    ax.plot([kept + 1], [watched[kept]], "o", color="C3", zorder=3,
            label=f"kept: epoch {kept + 1} of {history.epochs}")
    if log:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="loss (log scale)" if log else "loss", title=title)
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if metric is not None:
        right = ax.twinx()
        handles += right.plot(epochs, values, "--", color="C2",
                              label=metric if val_values is None else f"training {metric}")
        if val_values is not None:
            handles += right.plot(epochs, val_values, "--", color="C4",
                                  label=f"validation {metric}")
        right.set_ylabel(metric)
        labels = [handle.get_label() for handle in handles]
    ax.legend(handles, labels, loc="best", fontsize="small")
    return ax


def _counts(matrix):
    """``matrix`` as a square 2-D int64 array of non-negative counts."""
    try:
        counts = np.asarray(matrix)
    except ValueError:
        raise ValueError("matrix must be a square table of counts (a list of rows of one "
                         "length)") from None
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.size == 0:
        raise ValueError(f"matrix must be a square table of counts, got shape {counts.shape}")
    if counts.dtype.kind == "f" and np.all(np.isfinite(counts)) and np.all(counts % 1 == 0):
        counts = counts.astype(np.int64)
    if counts.dtype.kind not in "iu" or counts.min() < 0:
        raise ValueError("matrix must hold counts: integers >= 0")
    return counts.astype(np.int64)


def _shared_start(labels):
    """The length of the beginning all ``labels`` share, to the end of its last word."""
    start = os.path.commonprefix(labels)
    while start and start[-1].isalnum():
        start = start[:-1]
    return len(start)


def _labels(classes, n):
    """The names of ``n`` classes as short strings: ``classes``, or 0..n-1."""
    if classes is None:
        return [str(k) for k in range(n)]
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__len__"):
        raise TypeError(f"classes must be a sequence of class names, got {classes!r}")
    if len(classes) != n:
        raise ValueError(f"classes names {len(classes)} classes for a {n} x {n} matrix")
    labels = [str(name) for name in classes]
    if n > 1 and max(map(len, labels)) > LABEL_CHARS:
        # long names that share their first or last words ("species 12 of the forest") are
        # told apart by the words between: show those
        start = _shared_start(labels)
        end = _shared_start([label[start:][::-1] for label in labels])
        middles = [label[start:len(label) - end] for label in labels]
        if all(middles):
            labels = [("\u2026" if start else "") + middle + ("\u2026" if end else "")
                      for middle in middles]
    head = (LABEL_CHARS - 1) // 2
    tail = LABEL_CHARS - 1 - head
    return [label if len(label) <= LABEL_CHARS else f"{label[:head]}\u2026{label[-tail:]}"
            for label in labels]


def confusion_matrix(matrix, classes=None, ax=None, *, title="Confusion matrix"):
    """Draw a confusion matrix as an image, each cell annotated with its count.

    Parameters
    ----------
    matrix : array-like of int, shape (n_classes, n_classes)
        ``matrix[i][j]`` rows of true class i predicted as class j, as
        `fastnn.metrics.confusion_matrix` returns it (and ``TabularModel.metrics[part]
        ["confusion_matrix"]`` holds it).
    classes : sequence, optional
        The class names, in the matrix's order (``TabularModel.target.classes``); 0, 1, ...
        by default. Long names are cut to 20 characters: to what tells them apart, where they
        share a beginning or an ending, else in the middle.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new pyplot figure by default.
    title : str, default "Confusion matrix"

    Returns
    -------
    matplotlib.axes.Axes
        Its texts are the counts, row by row (``ax.texts``).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If ``matrix`` is not a square table of counts, or ``classes`` does not name its rows.
    """
    counts = _counts(matrix)
    n = counts.shape[0]
    labels = _labels(classes, n)
    ax = _axes(ax, "plotting a confusion matrix")
    ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(int(counts.max()), 1))
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted class", ylabel="true class",
           title=title)
    width, height = ax.get_position().size * ax.figure.get_size_inches()
    cell_points = 72 * min(width, height) / n
    label_size = 10 if n <= 10 else 8
    # the column names turned where, side by side, they would run into each other (a
    # character is about 0.6 of the font size wide)
    turned = 0.6 * label_size * max(map(len, labels)) > 0.9 * cell_points
    ax.set_xticklabels(labels, rotation=45 if turned else 0, ha="right" if turned else "center",
                       rotation_mode="anchor", fontsize=label_size)
    ax.set_yticklabels(labels, fontsize=label_size)
    # the counts fill about half a cell's width: smaller for many classes or many digits
    size = min(10.0, cell_points / 2, 1.2 * cell_points / len(str(counts.max())))
    # white on the dark cells; zeros grey, so that the errors stand out
    colors = np.where(counts > counts.max() / 2, "white", np.where(counts == 0, "0.6", "black"))
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=size,
                    color=colors[i, j])
    return ax


def training_figure(history, *, kept=None, log=False, matrix=None, classes=None, title=None,
                    matrix_title="Confusion matrix"):
    """A figure of the loss curves and, given a confusion matrix, the matrix beside them,
    made without pyplot: save it with ``figure.savefig(path)``, on any machine.

    Parameters
    ----------
    history : fastnn.History
    kept : int, optional
        The kept epoch, as for `loss_curves`.
    log : bool, default False
        A logarithmic loss axis.
    matrix : array-like of int, shape (n_classes, n_classes), optional
        A confusion matrix, drawn as `confusion_matrix` draws it in a second panel.
    classes : sequence, optional
        Its class names.
    title : str, optional
        The figure's title, above both panels.
    matrix_title : str, default "Confusion matrix"

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure_module = _import("matplotlib.figure", "drawing the training figure")
    if matrix is None:
        figure = figure_module.Figure(figsize=(6.4, 4.8), layout="constrained")
        loss_axes = figure.add_subplot()
    else:
        # the matrix grows with the classes, so that its counts stay legible
        side = max(4.8, CELL_INCHES * _counts(matrix).shape[0] + 1.8)
        figure = figure_module.Figure(figsize=(6.4 + side, side), layout="constrained")
        loss_axes, matrix_axes = figure.subplots(1, 2, width_ratios=[6.4, side])
        confusion_matrix(matrix, classes, matrix_axes, title=matrix_title)
    loss_curves(history, loss_axes, kept=kept, log=log)
    if title is not None:
        figure.suptitle(title)
    return figure


def check_figure_path(path, option="--plot"):
    """Refuse, before any work, a figure file whose format matplotlib cannot write, or the
    lack of matplotlib.

    Parameters
    ----------
    path : str
        The file to write; its ending names the format (``.png``, ``.pdf``, ``.svg``, ...).
    option : str, default "--plot"
        The option that named it, for the messages.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If the ending of ``path`` is not a format matplotlib writes.
    """
    figure_module = _import("matplotlib.figure", option)
    formats = figure_module.Figure().canvas.get_supported_filetypes()
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix not in formats:
        others = ", ".join(f".{name}" for name in sorted(formats)
                           if name not in ("png", "pdf", "svg"))
        raise ValueError(f"{option} {path!r}: cannot tell the image format from the file's "
                         f"name: end it with .png, .pdf or .svg (or {others})")
