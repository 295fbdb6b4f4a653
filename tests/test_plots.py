"""Pictures of a training (`fastnn.plots`, `History.plot`, `fastnn train --plot`): the Axes carry
the history's values, the kept epoch and the confusion matrix's counts and class names; the files
written are PNG images of the figure's size; bad input ends with a clear message, the command
line's before any training. (Without matplotlib: test_plots_without_matplotlib.py.)"""
import dataclasses

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")

from matplotlib.figure import Figure
from matplotlib.image import imread

import fastnn
from fastnn import plots
from fastnn.cli import main
from fastnn.datasets import load_digits
from fastnn.metrics import confusion_matrix

from helpers import run_python

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def new_axes():
    """The Axes of a figure made without pyplot (no backend, no window)."""
    return Figure().add_subplot()


def a_history(stopped_early=True):
    return fastnn.History(loss=[2.0, 1.0, 0.6, 0.4, 0.3], val_loss=[2.1, 1.2, 0.9, 1.0, 1.1],
                          lr=[0.1, 0.1, 0.05, 0.05, 0.025], best_epoch=2,
                          stopped_early=stopped_early)


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def assert_png(path, size_inches, dpi):
    """``path`` holds a PNG image of ``size_inches`` at ``dpi``."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    height, width = imread(path).shape[:2]
    assert (width, height) == tuple(round(side * dpi) for side in size_inches)


# ---- the loss curves ---------------------------------------------------------------------------


def test_the_curves_are_the_history_and_the_kept_epoch_is_marked():
    history = a_history()
    ax = plots.loss_curves(history, new_axes())
    lines = lines_by_label(ax)
    epochs = [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(lines["training loss"].get_xdata(), epochs)
    np.testing.assert_array_equal(lines["training loss"].get_ydata(), history.loss)
    np.testing.assert_array_equal(lines["validation loss"].get_xdata(), epochs)
    np.testing.assert_array_equal(lines["validation loss"].get_ydata(), history.val_loss)
    # the dot on the validation loss, which chose the epoch, and the line through it
    marker = lines["kept: epoch 3 of 5"]
    assert (list(marker.get_xdata()), list(marker.get_ydata())) == ([3], [0.9])
    assert marker.get_marker() == "o"
    assert [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"] == [3]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["training loss", "validation loss", "kept: epoch 3 of 5"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("epoch", "loss",
                                                                  "Loss per epoch")
    assert ax.get_yscale() == "linear"


def test_history_plot_draws_the_same_and_returns_the_axes():
    history = a_history()
    ax = new_axes()
    assert history.plot(ax, title="run 7") is ax
    assert ax.get_title() == "run 7"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "training loss", "validation loss", "kept: epoch 3 of 5"]


@pytest.mark.parametrize("stopped_early, kept, marked", [
    (True, None, 3),       # the best epoch, which early stopping restored
    (False, None, 5),      # the last epoch's weights
    (False, 2, 3),         # early stopping that ran every epoch restored the best too
    (True, 0, 1),
])
def test_the_kept_epoch(stopped_early, kept, marked):
    ax = a_history(stopped_early).plot(new_axes(), kept=kept)
    [marker] = [line for line in ax.get_lines() if line.get_label().startswith("kept")]
    assert marker.get_label() == f"kept: epoch {marked} of 5"
    assert marker.get_ydata()[0] == a_history().val_loss[marked - 1]


def test_without_validation_the_training_loss_carries_the_mark():
    history = fastnn.History(loss=[3.0, 2.0, 1.0], best_epoch=2)
    lines = lines_by_label(history.plot(new_axes()))
    assert "validation loss" not in lines
    assert list(lines["kept: epoch 3 of 3"].get_ydata()) == [1.0]


def test_a_fit_history_is_drawn_as_recorded():
    X, y = load_digits()
    net = fastnn.MLP([64, 16, 10], output_activation="softmax", loss="cross_entropy", seed=0)
    history = net.fit(X / 16, y, epochs=4, validation_split=0.2, seed=0)
    lines = lines_by_label(history.plot(new_axes(), kept=history.best_epoch))
    assert list(lines["training loss"].get_ydata()) == history.loss
    assert list(lines["validation loss"].get_ydata()) == history.val_loss
    kept = lines[f"kept: epoch {history.best_epoch + 1} of 4"]
    assert list(kept.get_ydata()) == [history.val_loss[history.best_epoch]]


def test_log_scale():
    ax = a_history().plot(new_axes(), log=True)
    assert (ax.get_yscale(), ax.get_ylabel()) == ("log", "loss (log scale)")
    history = fastnn.History(loss=[1.0, -0.5], best_epoch=1)
    with pytest.raises(ValueError, match="log=True needs positive losses"):
        history.plot(new_axes(), log=True)


def test_a_per_epoch_record_is_drawn_on_a_second_axis():
    ax = a_history().plot(new_axes(), metric="lr")
    [right] = [other for other in ax.figure.axes if other is not ax]
    [lr] = right.get_lines()
    assert (lr.get_label(), right.get_ylabel()) == ("lr", "lr")
    np.testing.assert_array_equal(lr.get_ydata(), a_history().lr)
    assert "lr" in [text.get_text() for text in ax.get_legend().get_texts()]


def test_a_metric_a_history_records_later_is_drawn_by_its_name():
    @dataclasses.dataclass
    class Recording(fastnn.History):
        accuracy: list = dataclasses.field(default_factory=list)
        val_accuracy: list = dataclasses.field(default_factory=list)

    history = Recording(loss=[1.0, 0.5], val_loss=[1.1, 0.7], best_epoch=1,
                        accuracy=[0.6, 0.8], val_accuracy=[0.55, 0.7])
    ax = history.plot(new_axes(), metric="accuracy")
    right = ax.figure.axes[1]
    assert {line.get_label(): list(line.get_ydata()) for line in right.get_lines()} == {
        "training accuracy": [0.6, 0.8], "validation accuracy": [0.55, 0.7]}
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend[-2:] == ["training accuracy", "validation accuracy"]


@pytest.mark.parametrize("history, options, error, message", [
    (fastnn.History(), {}, ValueError, "the history has no epochs"),
    (fastnn.History(loss=[1.0, 0.5], val_loss=[1.0], best_epoch=1), {}, ValueError,
     "history.val_loss has 1 values for 2 epochs"),
    (fastnn.History(loss=["a"], best_epoch=0), {}, TypeError, "history.loss must be a list"),
    (fastnn.History(loss=[1.0], best_epoch=0), {"metric": "accuracy"}, ValueError,
     "the history has no per-epoch record 'accuracy'"),
    (fastnn.History(loss=[1.0], lr=[0.1], best_epoch=0), {"metric": "f1"}, ValueError,
     "(it records: lr)"),
    (fastnn.History(loss=[1.0], best_epoch=0), {"metric": "val_loss"}, ValueError,
     "no per-epoch record 'val_loss'"),
    (fastnn.History(loss=[1.0], best_epoch=0), {"metric": 3}, TypeError, "metric must be"),
    (fastnn.History(loss=[1.0], best_epoch=0), {"kept": 1}, ValueError, "kept must be <= 0"),
    (fastnn.History(loss=[1.0], best_epoch=0), {"kept": 0.5}, TypeError, "kept must be"),
    (fastnn.History(loss=[1.0], best_epoch=0), {"log": "yes"}, TypeError, "log must be"),
    (fastnn.History(loss=[1.0], best_epoch=3, stopped_early=True), {}, ValueError,
     "history.best_epoch must be <= 0"),
])
def test_bad_histories_and_options_are_refused(history, options, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        history.plot(new_axes(), **options)


def test_only_histories_and_axes_are_taken():
    with pytest.raises(TypeError, match="history must be a fastnn.History"):
        plots.loss_curves({"loss": [1.0]}, new_axes())
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes, got Figure"):
        a_history().plot(Figure())


def test_without_axes_a_new_pyplot_figure_is_drawn():
    pyplot = pytest.importorskip("matplotlib.pyplot")
    ax = a_history().plot()
    try:
        assert ax.figure in map(pyplot.figure, pyplot.get_fignums())
        assert len(ax.get_lines()) == 4
    finally:
        pyplot.close(ax.figure)


# ---- the confusion matrix ----------------------------------------------------------------------


def test_the_cells_are_the_counts_and_the_axes_the_classes():
    matrix = [[50, 2, 0], [3, 41, 7], [0, 12, 1234]]
    ax = plots.confusion_matrix(matrix, ["cat", "dog", "bird"], new_axes(), title="test split")
    assert [text.get_text() for text in ax.texts] == [str(n) for row in matrix for n in row]
    # each count sits on its cell, column j and row i
    assert [text.get_position() for text in ax.texts[:4]] == [(0, 0), (1, 0), (2, 0), (0, 1)]
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), matrix)
    assert [label.get_text() for label in ax.get_xticklabels()] == ["cat", "dog", "bird"]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["cat", "dog", "bird"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == (
        "predicted class", "true class", "test split")
    # legible on every cell: white on the darkest, grey zeros
    colors = [text.get_color() for text in ax.texts]
    assert colors[8] == "white" and colors[2] == "0.6" and colors[0] == "black"


def test_the_classes_default_to_their_codes_and_counts_may_come_from_metrics():
    y_true, y_pred = [0, 1, 2, 2, 1], [0, 2, 2, 2, 1]
    matrix = confusion_matrix(y_true, y_pred, 3)
    ax = plots.confusion_matrix(matrix, ax=new_axes())
    assert [label.get_text() for label in ax.get_xticklabels()] == ["0", "1", "2"]
    assert [text.get_text() for text in ax.texts] == ["1", "0", "0", "0", "1", "1", "0", "0",
                                                      "2"]
    # counts as floats (from JSON, say) that are whole numbers are counts
    ax = plots.confusion_matrix(np.array(matrix, dtype=float), ax=new_axes())
    assert ax.texts[8].get_text() == "2"


def test_long_class_names_are_cut_to_what_tells_them_apart():
    names = [f"species number {k:02d} of the forest" for k in range(12)]
    ax = plots.confusion_matrix(np.eye(12, dtype=int), names, new_axes())
    assert [label.get_text() for label in ax.get_yticklabels()][:3] == [
        "\u202600\u2026", "\u202601\u2026", "\u202602\u2026"]
    ax = plots.confusion_matrix(np.eye(2, dtype=int), ["no", "a name longer than twenty"],
                                new_axes())
    labels = [label.get_text() for label in ax.get_xticklabels()]
    assert labels == ["no", "a name lo\u2026han twenty"] and len(labels[1]) == 20


@pytest.mark.parametrize("matrix, classes, error, message", [
    ([[1, 2, 3]], None, ValueError, "square table of counts, got shape (1, 3)"),
    ([], None, ValueError, "square table of counts"),
    ([[1, 2], [3]], None, ValueError, "square table of counts"),
    ([[1, -2], [3, 4]], None, ValueError, "counts: integers >= 0"),
    ([[1, 0.5], [3, 4]], None, ValueError, "counts: integers >= 0"),
    ([[1, np.nan], [3, 4]], None, ValueError, "counts: integers >= 0"),
    ([["a", "b"], ["c", "d"]], None, ValueError, "counts: integers >= 0"),
    ([[1, 2], [3, 4]], ["a", "b", "c"], ValueError, "classes names 3 classes for a 2 x 2"),
    ([[1, 2], [3, 4]], "ab", TypeError, "classes must be a sequence"),
])
def test_bad_matrices_are_refused(matrix, classes, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        plots.confusion_matrix(matrix, classes, new_axes())


# ---- the figure and its file -------------------------------------------------------------------


def test_the_training_figure_is_saved_as_a_png(tmp_path):
    figure = plots.training_figure(a_history(), matrix=[[5, 1], [0, 7]], classes=["no", "yes"],
                                   title="a run")
    loss_axes, matrix_axes = figure.axes
    assert loss_axes.get_title() == "Loss per epoch" and figure.get_suptitle() == "a run"
    assert [text.get_text() for text in matrix_axes.texts] == ["5", "1", "0", "7"]
    figure.savefig(tmp_path / "run.png")
    assert_png(tmp_path / "run.png", figure.get_size_inches(), figure.dpi)
    alone = plots.training_figure(a_history(), log=True)
    assert len(alone.axes) == 1 and alone.axes[0].get_yscale() == "log"


@pytest.mark.parametrize("path", ["plot", "plot.txt", "plot.csv", "plot."])
def test_a_file_name_without_an_image_format_is_refused(path):
    with pytest.raises(ValueError, match="cannot tell the image format"):
        plots.check_figure_path(path)


# ---- fastnn train --plot -----------------------------------------------------------------------


@pytest.fixture
def figures(monkeypatch):
    """The figures `fastnn train --plot` draws, as it draws them."""
    drawn = []

    def recording(*args, **kwargs):
        drawn.append(draw(*args, **kwargs))
        return drawn[-1]

    draw = plots.training_figure
    monkeypatch.setattr(plots, "training_figure", recording)
    return drawn


def test_train_plots_the_digits_losses_and_test_confusion_matrix(tmp_path, capsys, figures):
    path = tmp_path / "digits.png"
    assert main(["train", "--quiet", "--epochs", "5", "--hidden", "16", "--plot",
                 str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"plotted to {path}"
    [figure] = figures
    assert_png(path, figure.get_size_inches(), figure.dpi)
    loss_axes, matrix_axes = figure.axes
    kept = int(out.split("kept epoch ")[1].split()[0])
    assert lines_by_label(loss_axes)[f"kept: epoch {kept} of 5"]
    assert loss_axes.get_yscale() == "log"
    assert [label.get_text() for label in matrix_axes.get_xticklabels()] == list("0123456789")
    counts = np.array([int(text.get_text()) for text in matrix_axes.texts]).reshape(10, 10)
    test_rows = int(out.split(" test images")[0].split()[-1])
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert counts.sum() == test_rows and matrix_axes.get_title() == f"Test split ({test_rows} rows)"
    assert np.trace(counts) / test_rows == pytest.approx(accuracy, abs=5e-4)


def a_table(folder, task):
    """A CSV file of a classification (text classes) or a regression."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    x, kind = rng.normal(size=300), rng.choice(["a", "b"], 300)
    target = (np.where(x > 0.3, "high", np.where(x > -0.3, "middle", "low"))
              if task == "classification" else 3 * x + (kind == "a"))
    path = folder / f"{task}.csv"
    pd.DataFrame({"x": x, "kind": kind, "y": target}).to_csv(path, index=False)
    return path


def test_train_plots_a_tables_classes(tmp_path, capsys, figures):
    data, path = a_table(tmp_path, "classification"), tmp_path / "plot.png"
    assert main(["train", str(data), "--quiet", "--epochs", "5", "--hidden", "8", "--plot",
                 str(path)]) == 0
    out = capsys.readouterr().out
    [figure] = figures
    assert_png(path, figure.get_size_inches(), figure.dpi)
    matrix_axes = figure.axes[1]
    assert [label.get_text() for label in matrix_axes.get_yticklabels()] == ["high", "low",
                                                                             "middle"]
    # the cells are the test metrics' confusion matrix, as printed
    lines = out.split("test metrics")[1].splitlines()
    start = next(k for k, line in enumerate(lines) if "confusion matrix" in line) + 2
    assert [text.get_text() for text in matrix_axes.texts] == [
        n for line in lines[start:start + 3] for n in line.split()[1:]]


def test_train_plots_a_regressions_losses_alone(tmp_path, capsys, figures):
    data, path = a_table(tmp_path, "regression"), tmp_path / "plot.png"
    assert main(["train", str(data), "--quiet", "--epochs", "5", "--hidden", "8", "--plot",
                 str(path)]) == 0
    [figure] = figures
    assert len(figure.axes) == 1 and len(figure.axes[0].texts) == 0
    assert_png(path, figure.get_size_inches(), figure.dpi)


def test_without_validation_rows_the_last_epoch_is_kept(tmp_path, capsys, figures):
    data, path = a_table(tmp_path, "classification"), tmp_path / "plot.png"
    assert main(["train", str(data), "--quiet", "--epochs", "3", "--val-size", "0", "--plot",
                 str(path)]) == 0
    assert "kept: epoch 3 of 3" in lines_by_label(figures[0].axes[0])


def inside_a_file(folder):
    (folder / "file").write_text("")
    return folder / "file" / "plot.png"


@pytest.mark.parametrize("make_path, status, message", [
    (lambda tmp: tmp, 1, "cannot write the plot to"),
    (lambda tmp: tmp / "missing" / "plot.png", 1, "does not exist"),
    (inside_a_file, 1, "is not a folder"),
    (lambda tmp: tmp / "plot.txt", 1, "cannot tell the image format"),
    (lambda tmp: tmp / "model.png", 2, "--save and --plot both name"),
])
def test_an_unusable_plot_path_is_refused_before_training(tmp_path, capsys, make_path, status,
                                                          message):
    path = make_path(tmp_path)
    assert main(["train", "--quiet", "--save", str(tmp_path / "model.png"), "--plot",
                 str(path)]) == status
    out, err = capsys.readouterr()
    assert err.startswith("fastnn: error:") and message in err, err
    assert out == ""


def test_the_command_line_draws_without_pyplot(tmp_path):
    result = run_python("""
        import sys
        from fastnn.cli import main
        assert main(["train", "--quiet", "--epochs", "1", "--plot", "plot.png"]) == 0
        assert "matplotlib.figure" in sys.modules and "matplotlib.pyplot" not in sys.modules
        """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "plot.png").read_bytes().startswith(PNG_SIGNATURE)
