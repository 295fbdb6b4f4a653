"""`TabularModel`: a network trained on a table, carrying everything prediction needs.

Design
------
A model is three parts: the `Preprocessor` of its feature columns (`fastnn.preprocessing`), its
target (`ClassTarget` or `NumericTarget`, `fastnn.targets`) and an `MLP`. `fit` splits the rows
three ways (training; validation, for early stopping; test, used once at the end), stratified by
class for a classification; learns the preprocessing from the training rows; trains; and records
the metrics on the held-out rows. `save` writes the network with the rest as JSON in the model
file's ``preprocessing`` member (see `fastnn.io`), and `load` checks that JSON as strictly as
`fastnn.io` checks a network's config: every key known, every value of its type and range, the
columns and classes consistent with the network.

- Classification: a softmax output and cross-entropy, one output per class.
- Regression: an identity output and squared error, trained on the standardized target: with a
  target of unit scale, the initialization and the default learning rate suit any units.
  Predictions and metrics are in the target's own units.
"""
import functools

import numpy as np

from fastnn import _schema, distributed, io, onnx_export, registry
from fastnn._validation import check_choice, check_int, check_real
from fastnn.io import ModelFileError
from fastnn.metrics import classification_metrics, regression_metrics
from fastnn.network import MLP
from fastnn.optimizers import Adam
from fastnn.preprocessing import IMPUTE, Preprocessor, check_frame, refuse_missing
from fastnn.summary import metrics_lines, network_summary
from fastnn.tables import DataError
from fastnn.targets import ClassTarget, NumericTarget, infer_task, target_from_config

__all__ = ["TabularModel", "stratified_split"]

# The version of the JSON a model file holds beside its network.
VERSION = 1
TASKS = ("classification", "regression")
# The network's head for each task: output activation and loss.
HEADS = {"classification": ("softmax", "cross_entropy"), "regression": ("identity",
                                                                        "squared_error")}
PARTS = ("train", "validation", "test")


def stratified_split(y, fractions, rng):
    """Row indices of each split, every class divided in the same ``fractions``.

    Parameters
    ----------
    y : ndarray of shape (N,)
        The class of each row.
    fractions : sequence of float
        The share of each split, summing to 1.
    rng : numpy.random.Generator

    Returns
    -------
    list of ndarray of int
        One array of row indices per split, in random order.
    """
    parts = [[] for _ in fractions]
    bounds = np.cumsum(fractions)[:-1]
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        for part, chunk in zip(parts, np.split(rows, np.round(bounds * rows.size).astype(int))):
            part.append(chunk)
    return [rng.permutation(np.concatenate(part)) for part in parts]


def _random_split(n, fractions, rng):
    """Row indices of each split of ``n`` rows in ``fractions``, at random."""
    bounds = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return np.split(rng.permutation(n), bounds)


class TabularModel:
    """A network for the rows of a table: classification or regression of one target column
    from the others, with the preprocessing that turns a row into the network's inputs.

    Parameters
    ----------
    hidden : sequence of int, default (64,)
        Widths of the hidden layers (none: a linear or logistic model).
    activation : str, default "relu"
        Activation of the hidden layers, one of `fastnn.registry.hidden_activations()`.
    epochs : int, default 200
        Most passes over the training rows (early stopping may end sooner).
    lr : float, default 1e-3
        Adam's learning rate.
    batch_size : int, default 32
    l2 : float, default 0.0
        L2 penalty on the weights.
    dropout : float, default 0.0
        Dropout rate after each hidden layer.
    batch_norm : bool, default False
        Batch normalization before each hidden activation.
    patience : int, default 20
        Epochs without a lower validation loss before training stops.
    impute : {"mean", "median"}, optional
        Fill missing feature values: numeric ones with the training rows' mean or median,
        categorical ones with their most frequent category. Without, missing values are refused.
    seed : int or None, default 0
        Seed of the split, the initialization, the shuffling and dropout.

    Attributes
    ----------
    network : fastnn.MLP
        The trained network (None before `fit`).
    preprocessor : fastnn.preprocessing.Preprocessor
        The feature columns and how they become inputs.
    target : fastnn.targets.ClassTarget or NumericTarget
        The target column: its name, and its classes or its standardization.
    training : dict
        What `fit` did: the split (``test_size``, ``val_size``, ``rows`` per part), the
        ``dropped`` columns, why the task was chosen (``task_reason``), ``epochs_run``,
        ``best_epoch``, ``stopped_early`` and, if Ctrl-C stopped the training, ``interrupted``.
    metrics : dict
        The metrics on the held-out rows at the end of training, by part (``"validation"``,
        ``"test"``; a part without rows is absent): see `evaluate`.
    history : fastnn.History
        The losses of each epoch of `fit` (None for a loaded model: a file does not keep them).
    """

    def __init__(self, hidden=(64,), activation="relu", epochs=200, lr=1e-3, batch_size=32,
                 l2=0.0, dropout=0.0, batch_norm=False, patience=20, impute=None, seed=0):
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__len__"):
            raise TypeError(f"hidden must be a sequence of layer widths, got {hidden!r}")
        self.hidden = [check_int(f"hidden[{k}]", n, 1) for k, n in enumerate(hidden)]
        self.activation = check_choice("activation", activation, registry.hidden_activations())
        self.epochs = check_int("epochs", epochs, 1)
        self.lr = check_real("lr", lr, low=0)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.l2 = check_real("l2", l2, low=0)
        self.dropout = check_real("dropout", dropout, low=0, high=1, high_open=True)
        if not isinstance(batch_norm, (bool, np.bool_)):
            raise TypeError(f"batch_norm must be True or False, got {batch_norm!r}")
        self.batch_norm = bool(batch_norm)
        self.patience = check_int("patience", patience, 1)
        if impute is not None:
            check_choice("impute", impute, IMPUTE)
        self.impute = impute
        self.seed = None if seed is None else check_int("seed", seed, 0)
        self.network = self.preprocessor = self.target = None
        self.training, self.metrics, self.history = {}, {}, None

    def settings(self):
        """The constructor's parameters, as JSON-ready data."""
        return {"hidden": list(self.hidden), "activation": self.activation,
                "epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size,
                "l2": self.l2, "dropout": self.dropout, "batch_norm": self.batch_norm,
                "patience": self.patience, "impute": self.impute, "seed": self.seed}

    # ---- training --------------------------------------------------------------------------

    def fit(self, frame, target=None, *, task=None, drop=(), test_size=0.2, val_size=0.2,
            verbose=0, callbacks=None, checkpoint=None, checkpoint_every=1, resume=None,
            comm=None):
        """Split the rows of ``frame``, learn the preprocessing, train, and record the metrics on
        the held-out rows.

        Parameters
        ----------
        frame : pandas.DataFrame
        target : str, optional
            The column to predict; the last column by default.
        task : {"classification", "regression"}, optional
            Inferred by default from the target (`fastnn.targets.infer_task`):
            classification for text, booleans or a few distinct integers, else regression.
        drop : sequence of str, default ()
            Columns to leave out (identifiers, say); every other column is a feature.
        test_size : float in [0, 1), default 0.2
            The share of the rows held out to test the trained network once.
        val_size : float in [0, 1), default 0.2
            The share of the rows held out for early stopping (none: train all ``epochs``).
        verbose : int, default 0
            1 prints the task, the features, the split and the network; 2 also each epoch's
            progress (see `fastnn.training.fit`'s ``verbose=1``).
        callbacks, checkpoint, checkpoint_every, resume
            As for `fastnn.training.fit`, which trains the network: the checkpoint holds the
            network's training, and resuming needs the same table and settings (the split and
            the preprocessing are made again, the same, from them).
        comm : mpi4py.MPI.Comm, optional
            Train data-parallel with its processes (`fastnn.distributed.fit`), each of which
            calls this with the same table and settings: each makes the same split and
            preprocessing and trains on its share of the training rows; the network is the one
            a single process trains. No checkpoint or resume then.

        Returns
        -------
        TabularModel
            self; also when Ctrl-C stops the training, with the network it reached and
            ``training["interrupted"]`` True.

        Raises
        ------
        fastnn.tables.DataError
            If a column is missing or unusable, a value is missing (without ``impute``), the
            target is unfit for the task, or the rows are too few to split.
        """
        check_frame(frame)
        names = list(frame.columns)
        target = names[-1] if target is None else target
        if target not in names:
            raise DataError(f"the data have no column {target!r} to predict (its columns: "
                            f"{_schema.brief(names)})")
        if isinstance(drop, str):
            raise TypeError(f"drop is a list of column names, got the string {drop!r}")
        drop = list(drop)
        unknown = [name for name in drop if name not in names]
        if unknown:
            raise DataError(f"cannot drop {', '.join(map(repr, unknown))}: the data have no "
                            f"such column")
        if target in drop:
            raise DataError(f"cannot drop {target!r}: it is the target")
        features = [name for name in names if name != target and name not in drop]
        if not features:
            raise DataError(f"no feature columns: the data have only the target {target!r}"
                            + (" and the dropped columns" if drop else ""))
        test_size = check_real("test_size", test_size, low=0, high=1, high_open=True)
        val_size = check_real("val_size", val_size, low=0, high=1, high_open=True)
        if test_size + val_size >= 1:
            raise ValueError(f"test_size + val_size must be < 1, got {test_size} + {val_size}")
        verbose = check_int("verbose", verbose, 0)
        if self.impute is None:
            refuse_missing(frame, features)
        y = frame[target]
        if task is None:
            task, reason = infer_task(y)
        else:
            task, reason = check_choice("task", task, TASKS), "as asked"
        rng = np.random.default_rng(self.seed)
        fractions = (1 - val_size - test_size, val_size, test_size)
        # every row's target is checked before the split, so that a message names them all
        if task == "classification":
            target_column = ClassTarget.fit(y)
            Y = target_column.encode(y)
            rows = stratified_split(Y, fractions, rng)
        else:
            NumericTarget.fit(y)
            rows = _random_split(len(frame), fractions, rng)
        self._check_split(len(frame), rows, fractions)
        train = np.zeros(len(frame), dtype=bool)
        train[rows[0]] = True
        preprocessor = Preprocessor.fit(frame, features, train, self.impute)
        if task == "regression":
            target_column = NumericTarget.fit(y[train])
            Y = target_column.encode(y)
        X = preprocessor.transform(frame)
        if verbose:
            _report(target_column, reason, preprocessor, rows)
        options = dict(callbacks=callbacks)
        if comm is None:
            options.update(checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                           resume=resume)
        elif checkpoint is not None or resume is not None:
            raise ValueError("data-parallel training (comm) writes no checkpoint and resumes "
                             "none")
        network, history = self._train(X, Y, rows, target_column, verbose, options, comm)
        # the model changes only once training has succeeded
        self.network, self.preprocessor, self.target = network, preprocessor, target_column
        self.history = history
        self.training = {
            "test_size": test_size, "val_size": val_size, "dropped": drop,
            "task_reason": reason, "rows": dict(zip(PARTS, map(len, rows))),
            "epochs_run": history.epochs, "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early}
        if history.interrupted:
            self.training["interrupted"] = True
        self.metrics = {part: self._metrics(X[part_rows], Y[part_rows])
                        for part, part_rows in zip(PARTS[1:], rows[1:]) if part_rows.size}
        return self

    def _check_split(self, n, rows, fractions):
        """Refuse a split that leaves a part without rows (or a batch-normalized network fewer
        than two training rows)."""
        least = 2 if self.batch_norm else 1
        for part, part_rows, fraction in zip(PARTS, rows, fractions):
            if fraction > 0 and part_rows.size < (least if part == "train" else 1):
                raise DataError(
                    f"the data have {n} rows, too few to split: the {part} part "
                    f"({fraction:.0%}) gets {part_rows.size} (use more rows, or change "
                    f"--test-size and --val-size)")

    def _train(self, X, Y, rows, target, verbose, options, comm=None):
        """A network for ``target`` trained on the training rows, stopping early on the
        validation rows if there are any, and its History; ``options`` are more of
        `fastnn.training.fit`'s arguments. With ``comm``, data-parallel, on this process's
        share of the training rows."""
        output, loss = HEADS[target.task]
        network = MLP([X.shape[1], *self.hidden, target.n_outputs],
                      activation=self.activation, output_activation=output, loss=loss,
                      l2=self.l2, seed=self.seed, dropout=self.dropout,
                      batch_norm=self.batch_norm)
        if verbose:
            print(f"network {list(network.sizes)}, {output} output, {loss} loss")
        validation = (X[rows[1]], Y[rows[1]]) if rows[1].size else None
        train, fit = rows[0], network.fit
        if comm is not None:
            train = train[distributed.shard(train.size, comm)]
            fit = functools.partial(distributed.fit, network, comm=comm)
        history = fit(X[train], Y[train], optimizer=Adam(lr=self.lr),
                              epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
                              validation_data=validation, early_stopping=validation is not None,
                              patience=self.patience, verbose=1 if verbose >= 2 else 0,
                              **options)
        return network, history

    def _metrics(self, X, Y):
        """The metrics of the network on inputs X against encoded targets Y."""
        outputs = self.network.predict(X)
        if self.target.task == "classification":
            return classification_metrics(Y, outputs.argmax(axis=1), len(self.target.classes))
        return regression_metrics(self.target.decode(Y), self.target.decode(outputs))

    # ---- prediction ------------------------------------------------------------------------

    def text_columns(self):
        """The columns whose values are text: categorical features with text categories, and
        the target if its classes are text. A file should be read with these as text even
        where all their values look like numbers (`fastnn.tables.read_table`).

        Returns
        -------
        list of str
        """
        names = [column.name for column in self.preprocessor.columns
                 if column.kind == "categorical" and isinstance(column.categories[0], str)]
        if self.target.task == "classification" and isinstance(self.target.classes[0], str):
            names.append(self.target.name)
        return names

    def _inputs(self, frame):
        if self.network is None:
            raise ValueError("this TabularModel is not trained: call fit, or load a saved one")
        return self.preprocessor.transform(frame)

    def predict(self, frame):
        """The predicted target of each row of ``frame``.

        Parameters
        ----------
        frame : pandas.DataFrame
            With every feature column, matched by name (in any order); other columns, the
            target among them, are ignored.

        Returns
        -------
        ndarray of shape (len(frame),)
            Classes, of their type (str, bool, int or float), or numbers in the target's units.

        Raises
        ------
        fastnn.tables.DataError
            If a feature column is missing, holds a category the model has not seen or a value
            of the wrong kind, or a value is missing and the model does not impute.
        """
        X = self._inputs(frame)
        outputs = self.network.predict(X)
        if self.target.task == "classification":
            return self.target.decode(outputs.argmax(axis=1))
        return self.target.decode(outputs)

    def predict_proba(self, frame):
        """The probability of each class for each row of ``frame`` (classification only).

        Parameters
        ----------
        frame : pandas.DataFrame
            As for `predict`.

        Returns
        -------
        ndarray of shape (len(frame), n_classes)
            Columns in the order of ``target.classes``.
        """
        X = self._inputs(frame)
        if self.target.task != "classification":
            raise ValueError("predict_proba is for a classification model; this one does "
                             "regression")
        return self.network.predict(X)

    def evaluate(self, frame):
        """The metrics of the model on the rows of ``frame``, which must hold the target.

        Parameters
        ----------
        frame : pandas.DataFrame

        Returns
        -------
        dict
            Classification: ``rows``, ``accuracy``, ``balanced_accuracy``, ``f1_macro``,
            ``confusion_matrix`` (a list of rows: true class; columns: predicted class, in the
            order of ``target.classes``). Regression: ``rows``, ``rmse``, ``mae``, ``r2``.

        Raises
        ------
        fastnn.tables.DataError
            As `predict`, or if the target column is absent, has a missing value or one that is
            not a class of the model (or, for a regression, not a number).
        """
        X = self._inputs(frame)
        if self.target.name not in frame.columns:
            raise DataError(f"the data have no column {self.target.name!r}: evaluating needs the "
                            f"true target of each row")
        return self._metrics(X, self.target.encode(frame[self.target.name]))

    # ---- files -----------------------------------------------------------------------------

    def config(self):
        """Everything but the network's parameters, as JSON-ready data: the content of the
        model file's ``preprocessing`` member."""
        return {"version": VERSION, "features": self.preprocessor.config(),
                "target": self.target.config(), "settings": self.settings(),
                "training": self.training, "metrics": self.metrics}

    def save(self, path):
        """Write the model to ``path``: the network (as `fastnn.io.save`) and, beside it, the
        preprocessing, the target, the settings and the metrics.

        Parameters
        ----------
        path : str or os.PathLike
        """
        if self.network is None:
            raise ValueError("this TabularModel is not trained: there is nothing to save")
        io.save(self.network, path, preprocessing=self.config())

    def to_onnx(self, path=None, dtype=None):
        """The model as an ONNX graph of standard operators: the preprocessing, the network and
        the decoding of the target, for onnxruntime (see `fastnn.onnx_export` for the layout).

        Each feature column is an input of its own, named by the column, of shape (N, 1):
        numbers in ``dtype`` (NaN for a missing value), categories as strings, int64, double or
        bool, as the column's categories are. A classification gives "label" (N,) and
        "probabilities" (N, n_classes), a regression "variable" (N, 1). An unseen category is
        encoded as all zeros, where `predict` refuses it.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Write the model there (atomically), as an ``.onnx`` file.
        dtype : {"float32", "float64"}, optional
            The dtype of the numbers; the network's (float64) by default.

        Returns
        -------
        onnx.ModelProto

        Raises
        ------
        ImportError
            If onnx is not installed (``pip install "fastnn-cpu[onnx]"``).
        """
        if self.network is None:
            raise ValueError("this TabularModel is not trained: there is nothing to export")
        model = onnx_export.tabular_model(self, dtype)
        if path is not None:
            onnx_export.write(model, path)
        return model

    @classmethod
    def load(cls, path):
        """Read a model written by `save`.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        TabularModel

        Raises
        ------
        FileNotFoundError
            If there is no file at ``path`` (it is also a ValueError).
        fastnn.ModelFileError
            If the file is not a readable fastnn model, holds a network without preprocessing
            (load that with `fastnn.load`), or its preprocessing is invalid or does not fit its
            network.
        """
        net, document = io.load_with_preprocessing(path)
        if document is None:
            raise ModelFileError(f"cannot load {str(path)!r} as a tabular model: it holds a "
                                 f"network alone, without the preprocessing of a table (load it "
                                 f"with fastnn.load)")
        try:
            return cls._from_config(document, net)
        except (ValueError, TypeError) as error:
            raise ModelFileError(f"cannot load {str(path)!r}: its preprocessing is invalid: "
                                 f"{error}") from None

    @classmethod
    def _from_config(cls, document, net):
        """The model ``document`` (as `config` returns it) and ``net`` make, every value of
        ``document`` checked and checked against ``net``."""
        _schema.fields(document, "it", ("version", "features", "target", "settings",
                                        "training", "metrics"))
        version = _schema.integer(document["version"], "version", 1)
        if version > VERSION:
            raise ValueError(f"it was written by a newer fastnn (version {version}); upgrade "
                             f"fastnn to read it")
        model = cls(**_check_settings(document["settings"]))
        model.preprocessor = Preprocessor.from_config(document["features"])
        model.target = target_from_config(document["target"])
        if model.target.name in model.preprocessor.names:
            raise ValueError(f"its target {model.target.name!r} is also a feature")
        output, loss = HEADS[model.target.task]
        expected = (model.preprocessor.n_inputs, *model.hidden, model.target.n_outputs)
        if net.sizes != expected or (net.output_activation, net.loss_name) != (output, loss):
            raise ValueError(
                f"its network (sizes {list(net.sizes)}, {net.output_activation} output, "
                f"{net.loss_name} loss) is not the one its features, hidden layers and "
                f"{model.target.task} need ({list(expected)}, {output}, {loss})")
        model.training = _check_training(document["training"])
        model.metrics = _check_metrics(document["metrics"], model.target)
        model.network = net
        return model

    # ---- showing ---------------------------------------------------------------------------

    def summary(self):
        """A description of the model for people: the target and its classes, the features and
        their preprocessing, the network, the training settings and the metrics recorded at
        training time (what `fastnn info` prints).

        Returns
        -------
        str
        """
        if self.network is None:
            return "TabularModel (not trained)"
        target, columns = self.target, self.preprocessor.columns
        lines = [f"fastnn tabular model: {target.task} of {target.name!r}"]
        if target.task == "classification":
            lines.append(f"classes ({len(target.classes)}): "
                         f"{', '.join(map(repr, target.classes))}")
        else:
            lines.append(f"target standardized for training by mean {target.mean:.6g} and scale "
                         f"{target.scale:.6g}")
        lines.append(f"features ({len(columns)} columns -> {self.preprocessor.n_inputs} "
                     f"inputs, in this order):")
        width = max(len(repr(column.name)) for column in columns)
        lines.extend(f"  {column.name!r:<{width}}  {column.describe()}" for column in columns)
        lines.append(network_summary(self.network))
        settings = self.settings()
        lines.append("training settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()))
        if self.training:
            t = self.training
            rows = ", ".join(f"{n} {part}" for part, n in t["rows"].items())
            kept = "" if t["best_epoch"] is None else f", kept epoch {t['best_epoch'] + 1}"
            lines.append(f"training: task {target.task} ({t['task_reason']}); rows: {rows}; "
                         f"ran {t['epochs_run']} epochs{kept}"
                         + (", stopped early" if t["stopped_early"] else "")
                         + (", interrupted (Ctrl-C)" if t.get("interrupted") else "")
                         + (f"; dropped columns: {', '.join(map(repr, t['dropped']))}"
                            if t["dropped"] else ""))
        classes = target.classes if target.task == "classification" else None
        for part, metrics in self.metrics.items():
            lines.append(f"metrics at training time, {part} rows ({metrics['rows']}):")
            lines.extend(metrics_lines(metrics, classes))
        return "\n".join(lines)

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"TabularModel({settings})"


def _check_settings(settings):
    """``settings`` (the constructor's parameters) with each value of its JSON type; the
    constructor checks their ranges."""
    where = "settings"
    keys = ("hidden", "activation", "epochs", "lr", "batch_size", "l2", "dropout",
            "batch_norm", "patience", "impute", "seed")
    _schema.fields(settings, where, keys)
    checked = {
        "hidden": _schema.items(settings["hidden"], f"{where}.hidden",
                                lambda v, at: _schema.integer(v, at, 1)),
        "activation": _schema.text(settings["activation"], f"{where}.activation"),
        "batch_norm": _schema.flag(settings["batch_norm"], f"{where}.batch_norm"),
        "impute": (None if settings["impute"] is None
                   else _schema.text(settings["impute"], f"{where}.impute", IMPUTE)),
        "seed": (None if settings["seed"] is None
                 else _schema.integer(settings["seed"], f"{where}.seed")),
    }
    for key in ("epochs", "batch_size", "patience"):
        checked[key] = _schema.integer(settings[key], f"{where}.{key}", 1)
    for key in ("lr", "l2", "dropout"):
        checked[key] = _schema.real(settings[key], f"{where}.{key}", low=0)
    return checked


def _check_training(training):
    """``training`` (what `fit` did) if every value is of its type and range."""
    where = "training"
    _schema.fields(training, where, ("test_size", "val_size", "dropped", "task_reason", "rows",
                                     "epochs_run", "best_epoch", "stopped_early"),
                   ("interrupted",))
    for key in ("test_size", "val_size"):
        _schema.real(training[key], f"{where}.{key}", low=0, high=1)
    _schema.items(training["dropped"], f"{where}.dropped", _schema.text)
    _schema.text(training["task_reason"], f"{where}.task_reason")
    rows = _schema.fields(training["rows"], f"{where}.rows", PARTS)
    for part in PARTS:
        _schema.integer(rows[part], f"{where}.rows.{part}", 1 if part == "train" else 0)
    epochs_run = _schema.integer(training["epochs_run"], f"{where}.epochs_run")
    if training["best_epoch"] is not None and _schema.integer(
            training["best_epoch"], f"{where}.best_epoch") >= max(epochs_run, 1):
        raise ValueError(f"{where}.best_epoch is past the {epochs_run} epochs run")
    _schema.flag(training["stopped_early"], f"{where}.stopped_early")
    if training.get("interrupted") is not True and "interrupted" in training:
        raise ValueError(f"{where}.interrupted is {_schema.brief(training['interrupted'])}, "
                         f"not true (it is absent for a training that was not interrupted)")
    return training


def _check_metrics(metrics, target):
    """``metrics`` (by part) if each part's metrics are those of the task, in range."""
    _schema.fields(metrics, "metrics", (), PARTS[1:])
    for part, values in metrics.items():
        where = f"metrics.{part}"
        if target.task == "classification":
            _schema.fields(values, where, ("rows", "accuracy", "balanced_accuracy", "f1_macro",
                                           "confusion_matrix"))
            for key in ("accuracy", "balanced_accuracy", "f1_macro"):
                _schema.real(values[key], f"{where}.{key}", low=0, high=1)
            k = len(target.classes)
            matrix = _schema.items(values["confusion_matrix"], f"{where}.confusion_matrix",
                                   lambda row, at: _schema.items(row, at, _schema.integer))
            if len(matrix) != k or any(len(row) != k for row in matrix):
                raise ValueError(f"{where}.confusion_matrix is not {k} by {k}")
            rows = _schema.integer(values["rows"], f"{where}.rows", 1)
            if sum(map(sum, matrix)) != rows:
                raise ValueError(f"{where}.confusion_matrix does not count its {rows} rows")
        else:
            _schema.fields(values, where, ("rows", "rmse", "mae", "r2"))
            _schema.integer(values["rows"], f"{where}.rows", 1)
            for key in ("rmse", "mae"):
                _schema.real(values[key], f"{where}.{key}", low=0)
            _schema.real(values["r2"], f"{where}.r2", high=1)
    return metrics


def _report(target, reason, preprocessor, rows):
    """Print what `TabularModel.fit` is about to train."""
    if target.task == "classification":
        more = ", ..." if len(target.classes) > 10 else ""
        what = (f"{len(target.classes)} classes: {', '.join(map(repr, target.classes[:10]))}"
                f"{more}")
    else:
        what = f"standardized by mean {target.mean:.6g} and scale {target.scale:.6g}"
    print(f"target {target.name!r}: {target.task} ({reason}), {what}")
    kinds = [column.kind for column in preprocessor.columns]
    print(f"features: {kinds.count('numeric')} numeric and {kinds.count('categorical')} "
          f"categorical columns -> {preprocessor.n_inputs} inputs")
    print(f"split: {len(rows[0])} training, {len(rows[1])} validation, {len(rows[2])} test rows"
          f"{' (stratified by class)' if target.task == 'classification' else ''}")
