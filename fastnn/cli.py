"""The ``fastnn`` command line.

``fastnn train`` trains a network on the handwritten digits that ship with fastnn, split three
ways as the course notes teach: a training split to fit on, a validation split for early stopping
(model selection), and a test split used once, at the end.
"""
import argparse
import os
import sys

import numpy as np

from fastnn import registry
from fastnn._validation import MAX_INT, MAX_WIDTH, check_allocation
from fastnn.datasets import load_digits
from fastnn.network import MLP
from fastnn.optimizers import Adam


def stratified_split(y, fractions, rng):
    """Row indices of each split, every class divided in the same ``fractions``."""
    parts = [[] for _ in fractions]
    bounds = np.cumsum(fractions)[:-1]
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        for part, chunk in zip(parts, np.split(rows, np.round(bounds * rows.size).astype(int))):
            part.append(chunk)
    return [rng.permutation(np.concatenate(part)) for part in parts]


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


def check_save_path(path):
    """Refuse, before any training, a --save path the model could not be written to.

    `fastnn.io.save` writes a temporary file in the target's folder and renames it, so the folder
    must exist and be writable (and searchable); the path itself must not be a folder.
    """
    if not path:
        raise ValueError("--save needs a file path")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"cannot save the model to {path!r}: it is a folder")
    if not os.path.isdir(folder):
        problem = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise ValueError(f"cannot save the model to {path!r}: the folder {folder!r} {problem}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot save the model to {path!r}: the folder {folder!r} is not "
                         f"writable")


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


def train(args):
    """Train on the digits, report the validation loss per epoch and the test accuracy."""
    if args.save is not None:
        check_save_path(args.save)
    X, y = load_digits()
    X = X / 16.0
    train_rows, val_rows, test_rows = stratified_split(y, (0.6, 0.2, 0.2),
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
    history = net.fit(X[train_rows], y[train_rows], optimizer=Adam(lr=args.lr), epochs=args.epochs,
                      batch_size=args.batch_size, seed=args.seed,
                      validation_data=(X[val_rows], y[val_rows]), early_stopping=True,
                      patience=args.patience, verbose=0 if args.quiet else 1)
    best = history.best_epoch
    val_accuracy = np.mean(net.predict(X[val_rows]).argmax(axis=1) == y[val_rows])
    print(f"kept epoch {best + 1} of {history.epochs} "
          f"(validation loss {history.val_loss[best]:.4f}, "
          f"validation accuracy {val_accuracy:.3f})")
    if args.save is not None:
        net.save(args.save)
        print(f"saved to {args.save}")
    test_accuracy = np.mean(net.predict(X[test_rows]).argmax(axis=1) == y[test_rows])
    print(f"test accuracy: {test_accuracy:.3f}")


def main(argv=None):
    """Entry point of the ``fastnn`` console script."""
    parser = argparse.ArgumentParser(prog="fastnn", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    trainer = commands.add_parser("train", help="train a network on the bundled handwritten digits")
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
    trainer.add_argument("--save", metavar="PATH", help="save the trained network to PATH")
    trainer.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    args = parser.parse_args(argv)
    if args.command != "train":
        parser.print_help()
        return 2
    try:
        train(args)
        # written now, inside the try, so that a closed pipe is seen here and not at exit
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`fastnn train | head -1`): the Python docs' recipe. Point stdout
        # at devnull so that the interpreter's last flush does not fail again, and stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (ValueError, TypeError, OSError, FloatingPointError, MemoryError) as error:
        print(f"fastnn: error: {error}", file=sys.stderr)
        return 1
    except OverflowError as error:
        # every option is checked against its bounds first: this is a last line of defence
        print(f"fastnn: error: a number is too large: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
