"""The ``fastnn`` command line: train a network on your own table, predict with it, evaluate it.

``fastnn train [DATA]`` trains on a CSV, TSV or Parquet file (the handwritten digits that ship
with fastnn when DATA is absent), split three ways as the course notes teach: a training split to
fit on, a validation split for early stopping (model selection), and a test split used once, at
the end. ``fastnn predict``, ``fastnn evaluate`` and ``fastnn info`` use a saved model;
``fastnn export`` writes it as an ONNX graph or a safetensors file.

Exit status: 0 on success; 2 for a usage error or input that cannot be used (a data file, model
file or checkpoint that is missing, unreadable or unfit: missing columns or values, unseen
categories, ...); 1 for any other failure (a setting out of range, too little memory, a file that
cannot be written); 130 when Ctrl-C stopped it (``fastnn train`` then saves what it has trained,
with ``--save``).
"""
import argparse
import contextlib
import functools
import os
import sys

import numpy as np

from fastnn import distributed, io, plots, registry
from fastnn._extras import require
from fastnn._validation import MAX_INT, MAX_WIDTH, check_allocation
from fastnn.datasets import load_digits
from fastnn.io import ModelFileError, ModelFileNotFoundError
from fastnn.metrics import confusion_matrix
from fastnn.network import MLP
from fastnn.optimizers import Adam
from fastnn.preprocessing import IMPUTE
from fastnn.summary import metrics_lines, network_summary
from fastnn.tables import DataError, read_table
from fastnn.tabular import TASKS, TabularModel, stratified_split

# Suffixes of files --out will not write CSV into.
NOT_CSV = (".parquet", ".pq", ".tsv", ".tab")
# The exit status after Ctrl-C, as a shell reports a command that SIGINT ended (128 + 2).
INTERRUPTED = 130


class UsageError(Exception):
    """Options that do not fit together, or do not fit the model they are used with."""


def hidden_sizes(text):
    """'64' or '128,64' as a tuple of positive ints, each at most MAX_WIDTH."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"hidden sizes are integers separated by commas, not {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive, got {text!r}")
    if max(sizes) > MAX_WIDTH:
        raise argparse.ArgumentTypeError(f"hidden sizes must be at most {MAX_WIDTH}, got {text!r}")
    return sizes


def positive_int(text):
    """'200' as an int of at least 1 and at most MAX_INT."""
    return bounded_int(text, 1)


def non_negative_int(text):
    """'0' as an int of at least 0 and at most MAX_INT."""
    return bounded_int(text, 0)


def bounded_int(text, minimum):
    """``text`` as an int in [minimum, MAX_INT], else argparse's usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    if value > MAX_INT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_INT}, got {text}")
    return value


def fraction(text):
    """'0.2' as a float in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and less than 1, got {text}")
    return value


def check_save_path(path, option="--save", what="save the model"):
    """Refuse, before any work, an output path that could not be written to.

    `fastnn.io.save` writes a temporary file in the target's folder and renames it, so the folder
    must exist and be writable (and searchable); the path itself must not be a folder.
    """
    if not path:
        raise ValueError(f"{option} needs a file path")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"cannot {what} to {path!r}: it is a folder")
    if not os.path.isdir(folder):
        problem = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise ValueError(f"cannot {what} to {path!r}: the folder {folder!r} {problem}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot {what} to {path!r}: the folder {folder!r} is not writable")


def check_plot_path(args):
    """Refuse, before training, a --plot file that could not be written: its folder, its format,
    matplotlib, and the --save file (which it would overwrite)."""
    check_save_path(args.plot, "--plot", "write the plot")
    plots.check_figure_path(args.plot)
    if args.save is not None and os.path.abspath(args.save) == os.path.abspath(args.plot):
        raise UsageError(f"--save and --plot both name {args.plot!r}: the plot would overwrite "
                         f"the model")


def write_plot(args, history, matrix, classes, title):
    """`fastnn train --plot`: the loss curves, the kept epoch (the best, with validation; early
    stopping restored it) and the test split's confusion matrix if there is one."""
    if not history.epochs:
        # Ctrl-C came in the first epoch
        print(f"no epoch completed: nothing plotted to {args.plot}")
        return
    kept = history.best_epoch if history.val_loss else history.epochs - 1
    # a log scale shows the late epochs, where training and validation part, which a linear
    # one flattens under the first epochs' losses
    log = min(history.loss + history.val_loss) > 0
    rows = 0 if matrix is None else int(np.sum(matrix))
    figure = plots.training_figure(history, kept=kept, log=log, matrix=matrix, classes=classes,
                                   title=title, matrix_title=f"Test split ({rows} rows)")
    figure.savefig(args.plot)
    print(f"plotted to {args.plot}")


def check_memory(sizes, batch_norm, batch_rows):
    """Refuse, before allocating, a network or a workspace larger than the machine's memory."""
    n_params = sum((n_in + 1) * n_out for n_in, n_out in zip(sizes, sizes[1:]))
    if batch_norm:
        n_params += 2 * sum(sizes[1:-1])
    # float64 parameters, their gradient and Adam's two moment estimates
    check_allocation(f"a network of {n_params:,} parameters", 4 * n_params, 8)
    # at least every layer's output and two rows of deltas as wide as the widest layer, per row
    per_row = sum(sizes[1:]) + 2 * max(sizes)
    check_allocation(f"the workspace for batches of {batch_rows} rows", batch_rows * per_row, 8)


def checkpointing(args):
    """fit's checkpoint arguments from the options: write to --checkpoint (or, resuming, to the
    --resume file), go on from --resume; none with --distributed."""
    if args.distributed:
        return {}
    path = args.checkpoint if args.checkpoint is not None else args.resume
    if path is not None:
        check_save_path(path, "--checkpoint", "write the checkpoint")
    return {"checkpoint": path, "checkpoint_every": args.checkpoint_every,
            "resume": args.resume}


def report_interrupt(history, args):
    """Say that Ctrl-C stopped the training, and what was kept; the exit status."""
    kept = (f"; saved the model it reached to {args.save}" if args.save is not None
            else "; nothing saved (no --save)")
    print(f"fastnn: interrupted (Ctrl-C) after {history.epochs} complete epochs{kept}",
          file=sys.stderr)
    return INTERRUPTED


def kept_line(history):
    """What the training kept, for people: the best epoch and its validation loss."""
    done = f"the {history.epochs} completed" if history.interrupted else f"{history.epochs}"
    if history.best_epoch is None:
        return "no epoch completed"
    if history.val_loss:
        return (f"kept epoch {history.best_epoch + 1} of {done} "
                f"(validation loss {history.val_loss[history.best_epoch]:.4f})")
    return f"trained {done} epochs (no validation rows: no early stopping)"


def train_digits(args, comm=None):
    """Train on the digits, report the validation loss per epoch and the test accuracy (with
    ``comm``, data-parallel: this process on its share of the training rows)."""
    if args.save is not None:
        check_save_path(args.save)
    if args.plot is not None:
        check_plot_path(args)
    options = checkpointing(args)
    X, y = load_digits()
    X = X / 16.0
    fractions = (1 - args.val_size - args.test_size, args.val_size, args.test_size)
    train_rows, val_rows, test_rows = stratified_split(y, fractions,
                                                       np.random.default_rng(args.seed))
    sizes = [X.shape[1], *args.hidden, 10]
    # the largest pass: a training batch, or the validation and test sets evaluated whole
    check_memory(sizes, args.batch_norm,
                 max(min(args.batch_size, len(train_rows)), len(val_rows), len(test_rows)))
    net = MLP(sizes, activation=args.activation,
              output_activation="softmax", loss="cross_entropy", l2=args.l2, seed=args.seed,
              dropout=args.dropout, batch_norm=args.batch_norm)
    print(f"digits: {len(train_rows)} training, {len(val_rows)} validation, {len(test_rows)} test "
          f"images; network {list(net.sizes)}")
    rows, fit = train_rows, net.fit
    if comm is not None:
        rows = train_rows[distributed.shard(len(train_rows), comm)]
        fit = functools.partial(distributed.fit, net, comm=comm)
    history = fit(X[rows], y[rows], optimizer=Adam(lr=args.lr), epochs=args.epochs,
                  batch_size=args.batch_size, seed=args.seed,
                  validation_data=(X[val_rows], y[val_rows]), early_stopping=True,
                  patience=args.patience, verbose=0 if args.quiet else 1, **options)
    val_accuracy = np.mean(net.predict(X[val_rows]).argmax(axis=1) == y[val_rows])
    print(f"{kept_line(history)}, validation accuracy {val_accuracy:.3f}")
    if args.save is not None:
        net.save(args.save)
        print(f"saved to {args.save}")
    test_accuracy = np.mean(net.predict(X[test_rows]).argmax(axis=1) == y[test_rows])
    print(f"test accuracy: {test_accuracy:.3f}")
    if args.plot is not None:
        predicted = net.predict(X[test_rows]).argmax(axis=1)
        write_plot(args, history, confusion_matrix(y[test_rows], predicted, 10), range(10),
                   f"digits: network {list(net.sizes)}")
    return report_interrupt(history, args) if history.interrupted else 0


def train_table(args, comm=None):
    """Train on the user's table: report the task, the split, the loss per epoch and the
    held-out metrics, and save the model with its preprocessing (with ``comm``,
    data-parallel)."""
    if args.save is not None:
        check_save_path(args.save)
    if args.plot is not None:
        check_plot_path(args)
    options = checkpointing(args)
    frame = read_table(args.data)
    print(f"{args.data}: {len(frame)} rows, {len(frame.columns)} columns")
    model = TabularModel(hidden=args.hidden, activation=args.activation, epochs=args.epochs,
                         lr=args.lr, batch_size=args.batch_size, l2=args.l2,
                         dropout=args.dropout, batch_norm=args.batch_norm,
                         patience=args.patience, impute=args.impute, seed=args.seed)
    model.fit(frame, target=args.target, task=args.task, drop=args.drop,
              test_size=args.test_size, val_size=args.val_size, verbose=1 if args.quiet else 2,
              comm=comm, **options)
    history = model.history
    print(kept_line(history))
    if args.save is not None:
        model.save(args.save)
        print(f"saved to {args.save}")
    classes = model.target.classes if model.target.task == "classification" else None
    for part, metrics in model.metrics.items():
        print(f"{part} metrics ({metrics['rows']} rows):")
        print("\n".join(metrics_lines(metrics, classes)))
    if args.plot is not None:
        tested = classes is not None and "test" in model.metrics
        write_plot(args, history, model.metrics["test"]["confusion_matrix"] if tested else None,
                   classes,
                   f"{os.path.basename(args.data)}: {model.target.task} of "
                   f"{model.target.name!r}, network {list(model.network.sizes)}")
    return report_interrupt(history, args) if history.interrupted else 0


def train(args):
    """`fastnn train`: on the data file if one is given, else on the bundled digits; with
    --distributed, data-parallel with the other processes of mpiexec, rank 0 alone printing,
    saving and plotting."""
    if not args.distributed:
        return train_on(args, None)
    if args.checkpoint is not None or args.resume is not None:
        raise UsageError("--distributed writes no checkpoint and resumes none: leave out "
                         "--checkpoint and --resume")
    comm = distributed.world()
    if comm.rank == 0:
        return train_on(args, comm)
    args.save = args.plot = None
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        return train_on(args, comm)


def train_on(args, comm):
    """`train` in this process (with ``comm``, as one of its processes)."""
    if args.data is not None:
        return train_table(args, comm)
    given = [option for option, value in (("--target", args.target), ("--task", args.task),
                                          ("--drop", args.drop), ("--impute", args.impute))
             if value]
    if given:
        raise UsageError(f"{', '.join(given)}: only with a data file (fastnn train DATA "
                         f"{given[0]} ...)")
    if not (args.test_size and args.val_size):
        raise UsageError("the digits are split with a validation and a test part: "
                         "--test-size and --val-size must be > 0")
    return train_digits(args, comm)


def read_for(model, path):
    """The table in ``path``, its text columns read as text as ``model`` expects them."""
    return read_table(path, text_columns=model.text_columns())


def predict(args):
    """`fastnn predict`: the prediction for each row, as CSV."""
    model = TabularModel.load(args.model)
    if args.proba and model.target.task != "classification":
        raise UsageError(f"--proba gives class probabilities, and {args.model!r} is a "
                         f"regression model")
    if args.out is not None:
        if args.out.lower().endswith(NOT_CSV):
            raise UsageError(f"--out writes CSV, not into {args.out!r}: name it .csv")
        check_save_path(args.out, "--out", "write the predictions")
    frame = read_for(model, args.data)
    pd = require("pandas", "writing predictions")
    if args.proba:
        probabilities = model.predict_proba(frame)
        out = pd.DataFrame({model.target.name: model.target.decode(probabilities.argmax(axis=1))})
        for k, label in enumerate(model.target.classes):
            out[f"P({label})"] = probabilities[:, k]
    else:
        out = pd.DataFrame({model.target.name: model.predict(frame)})
    if args.out is None:
        out.to_csv(sys.stdout, index=False)
    else:
        out.to_csv(args.out, index=False)
        print(f"wrote {len(out)} predictions to {args.out}")


def evaluate(args):
    """`fastnn evaluate`: the model's metrics on a table that holds the target."""
    model = TabularModel.load(args.model)
    metrics = model.evaluate(read_for(model, args.data))
    classes = model.target.classes if model.target.task == "classification" else None
    print(f"{args.model} on {args.data} ({metrics['rows']} rows):")
    print("\n".join(metrics_lines(metrics, classes)))


def info(args):
    """`fastnn info`: what a model file holds, as Keras' summary."""
    net, preprocessing = io.load_with_preprocessing(args.model)
    if preprocessing is None:
        print("fastnn network, without preprocessing (it takes its inputs as numbers, as they "
              "are)")
        print(network_summary(net))
    else:
        print(TabularModel.load(args.model).summary())


def export(args):
    """`fastnn export`: a model file as an ONNX graph, or as a safetensors model file."""
    if args.onnx is None and args.safetensors is None:
        raise UsageError("export needs --onnx FILE or --safetensors FILE (or both)")
    if args.safetensors is not None and not io.is_safetensors(args.safetensors):
        raise UsageError(f"--safetensors writes a .safetensors file, not {args.safetensors!r}: "
                         f"name it .safetensors")
    for option, path in (("--onnx", args.onnx), ("--safetensors", args.safetensors)):
        if path is not None:
            check_save_path(path, option, "export the model")
    net, preprocessing = io.load_with_preprocessing(args.model)
    model = net if preprocessing is None else TabularModel.load(args.model)
    if args.onnx is not None:
        model.to_onnx(args.onnx, dtype=args.dtype)
        inputs = ("one input per feature column, (N, 1)" if preprocessing is not None
                  else f"input X (N, {net.sizes[0]})")
        print(f"wrote {args.onnx}: ONNX graph of {args.dtype or net.dtype.name}, {inputs}")
    if args.safetensors is not None:
        model.save(args.safetensors)
        print(f"wrote {args.safetensors}: safetensors")


def parser():
    """The parser of the ``fastnn`` command line."""
    parser = argparse.ArgumentParser(prog="fastnn", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    trainer = commands.add_parser(
        "train", help="train a network on a data file, or on the bundled handwritten digits",
        description="Train a network on DATA (the bundled handwritten digits without it). Rows "
                    "are numbered from 1, after the header, in messages.")
    trainer.add_argument("data", nargs="?", metavar="DATA",
                         help="a .csv, .tsv or .parquet file with a header (text files may be "
                              "compressed: .gz, .bz2, .xz, .zst, .zip)")
    trainer.add_argument("--target", metavar="COLUMN",
                         help="the column to predict (default: the last column)")
    trainer.add_argument("--task", choices=TASKS,
                         help="default: classification for a target of text, booleans or at "
                              "most 20 distinct integers, else regression")
    trainer.add_argument("--drop", metavar="COLUMN", action="append", default=[],
                         help="leave a column out (an identifier, say); repeat for more")
    trainer.add_argument("--impute", choices=IMPUTE,
                         help="fill missing feature values with the training rows' mean or "
                              "median (categorical ones: their most frequent category); "
                              "without, missing values are an error")
    trainer.add_argument("--test-size", type=fraction, default=0.2,
                         help="share of the rows held out for the test (default 0.2)")
    trainer.add_argument("--val-size", type=fraction, default=0.2,
                         help="share of the rows held out for early stopping (default 0.2)")
    trainer.add_argument("--epochs", type=positive_int, default=200,
                         help="most epochs (default 200)")
    trainer.add_argument("--hidden", type=hidden_sizes, default=(64,),
                         help="hidden layer widths, e.g. 128,64 (default 64)")
    trainer.add_argument("--activation", choices=registry.hidden_activations(), default="relu",
                         help="activation of the hidden layers (default relu)")
    trainer.add_argument("--dropout", type=float, default=0.0,
                         help="dropout rate after each hidden layer (default 0)")
    trainer.add_argument("--batch-norm", action="store_true",
                         help="batch normalization before each hidden activation")
    trainer.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    trainer.add_argument("--l2", type=float, default=0.0, help="L2 penalty (default 0)")
    trainer.add_argument("--batch-size", type=int, default=32, help="rows per update (default 32)")
    trainer.add_argument("--patience", type=int, default=20,
                         help="epochs without validation improvement before stopping (default 20)")
    trainer.add_argument("--seed", type=non_negative_int, default=0,
                         help="seed of split, init and shuffling")
    trainer.add_argument("--save", metavar="PATH",
                         help="save the trained model to PATH (with DATA: with its preprocessing, "
                              "for fastnn predict)")
    trainer.add_argument("--checkpoint", metavar="PATH",
                         help="write what resuming needs to PATH every --checkpoint-every epochs "
                              "(the weights, the optimizer, the random generators, the history)")
    trainer.add_argument("--checkpoint-every", type=positive_int, default=1, metavar="N",
                         help="epochs between two checkpoints (default 1)")
    trainer.add_argument("--resume", metavar="PATH",
                         help="go on from the checkpoint at PATH, written by the same command "
                              "(and keep checkpointing there unless --checkpoint names another "
                              "file); the end is the same as if it had never stopped")
    trainer.add_argument("--plot", metavar="FILE",
                         help="draw the loss per epoch, the kept epoch marked, to FILE (.png, "
                              ".pdf, .svg, ...; needs matplotlib), with the test split's "
                              "confusion matrix beside it for a classification")
    trainer.add_argument("--distributed", action="store_true",
                         help="train data-parallel with the processes of mpiexec (mpiexec -n 4 "
                              "fastnn train DATA --distributed; needs the mpi extra), each on its "
                              "share of the training rows: the same network as one process "
                              "trains; rank 0 alone prints and saves. No checkpoints")
    trainer.add_argument("--quiet", action="store_true",
                         help="no progress (without it: a bar per epoch in a terminal, tqdm's "
                              "if installed; a line per epoch otherwise)")
    predictor = commands.add_parser(
        "predict", help="predict the target of each row of a data file",
        description="Write the prediction for each row of DATA as CSV, in the rows' order. DATA "
                    "needs the model's feature columns, in any order; other columns are ignored.")
    predictor.add_argument("model", metavar="MODEL", help="a model saved by fastnn train DATA")
    predictor.add_argument("data", metavar="DATA", help="a .csv, .tsv or .parquet file")
    predictor.add_argument("--out", metavar="FILE", help="write the CSV to FILE (default: stdout)")
    predictor.add_argument("--proba", action="store_true",
                           help="add each class's probability, in columns P(class)")
    evaluator = commands.add_parser(
        "evaluate", help="the metrics of a model on a data file that holds the target",
        description="Print the model's metrics on DATA, which holds the target column: "
                    "accuracy, balanced accuracy, F1 (macro) and the confusion matrix for a "
                    "classification; RMSE, MAE and R^2 for a regression.")
    evaluator.add_argument("model", metavar="MODEL", help="a model saved by fastnn train DATA")
    evaluator.add_argument("data", metavar="DATA", help="a .csv, .tsv or .parquet file")
    shower = commands.add_parser(
        "info", help="what a model file holds: layers, features, classes, training, metrics")
    shower.add_argument("model", metavar="MODEL", help="a model saved by fastnn train")
    exporter = commands.add_parser(
        "export", help="write a model as an ONNX graph, or as a safetensors model file",
        description="Write MODEL as an ONNX graph of standard operators (opset 17; 19 with text "
                    "columns) for onnxruntime and other runtimes, and/or as a .safetensors model "
                    "file. A model trained on a table takes one input per feature column, named "
                    "by the column, of shape (N, 1), and gives label and probabilities (or "
                    "variable, for a regression); a network alone takes X (N, n_in) and gives "
                    "Y.")
    exporter.add_argument("model", metavar="MODEL", help="a model saved by fastnn train")
    exporter.add_argument("--onnx", metavar="FILE", help="write the ONNX graph to FILE")
    exporter.add_argument("--dtype", choices=("float32", "float64"),
                          help="the ONNX graph's numbers (default: the model's, float64 for "
                               "fastnn train's)")
    exporter.add_argument("--safetensors", metavar="FILE",
                          help="write the model, with its preprocessing, to FILE.safetensors")
    return parser


COMMANDS = {"train": train, "predict": predict, "evaluate": evaluate, "info": info,
            "export": export}


def main(argv=None):
    """Entry point of the ``fastnn`` console script.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: the process's).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for a usage error or unusable input, 130 after
        Ctrl-C, 1 otherwise.
    """
    args = parser().parse_args(argv)
    if args.command is None:
        parser().print_help()
        return 2
    try:
        status = COMMANDS[args.command](args) or 0
        # written now, inside the try, so that a closed pipe is seen here and not at exit
        sys.stdout.flush()
    except KeyboardInterrupt:
        # Ctrl-C outside the training (which stops and returns): reading, saving, evaluating
        print("\nfastnn: interrupted (Ctrl-C)", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`fastnn train | head -1`): the Python docs' recipe. Point stdout
        # at devnull so that the interpreter's last flush does not fail again, and stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (UsageError, DataError, ModelFileError, ModelFileNotFoundError) as error:
        # an OSError made of (errno, message) prints as "[Errno 2] message": show the message
        message = error.strerror if isinstance(error, OSError) and not error.filename else error
        print(f"fastnn: error: {message}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, FloatingPointError, MemoryError,
            ImportError) as error:
        print(f"fastnn: error: {error}", file=sys.stderr)
        return 1
    except OverflowError as error:
        # every option is checked against its bounds first: this is a last line of defence
        print(f"fastnn: error: a number is too large: {error}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
