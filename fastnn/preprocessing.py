"""The preprocessing of a table for a network: its feature columns as numbers, its target as codes
or standardized numbers. It is learned from the training rows and stored in the model file (as
JSON: `Preprocessor.config`), so that prediction applies exactly what training did.

- A numeric column is standardized, ``(x - mean) / scale`` with the training rows' mean and
  standard deviation (scale 1 for a constant column).
- A categorical column (text, booleans, or a pandas ``category``) becomes one 0/1 input per
  category, in sorted order. A value the model has not seen is refused with an error naming the
  column, the value and its row: an all-zero encoding would let a typo through unnoticed.
- A missing value is refused with an error naming the columns and rows, unless the preprocessing
  imputes: numeric columns are then filled with the training rows' mean or median, categorical ones
  with their most frequent category, before standardizing (as scikit-learn's SimpleImputer before
  StandardScaler), at training and at prediction alike.
- A classification target is coded 0..K-1 by its sorted classes (text, booleans, integers or other
  numbers, kept with their type); a regression target is standardized, and the network's outputs
  are turned back into its units (`NumericTarget.decode`).

A frame is read by column name: its columns may come in any order, and the columns the
preprocessing does not use (the target at prediction, identifiers, ...) are ignored. Rows are
named in messages by the frame's index (`fastnn.tables.read_table` numbers them from 1).
"""
import numbers

import numpy as np

from fastnn import _schema
from fastnn.tables import DataError, require

__all__ = ["Preprocessor", "NumericColumn", "CategoricalColumn", "ClassTarget", "NumericTarget",
           "check_frame", "column_kind", "refuse_missing", "infer_task", "target_from_config",
           "IMPUTE", "MAX_CATEGORIES", "MAX_INTEGER_CLASSES"]

IMPUTE = ("mean", "median")
# A text column with more distinct values than this is an identifier or free text, not a category
# (one-hot encoding it would add thousands of inputs that a new row never matches).
MAX_CATEGORIES = 1000
# An integer target with at most this many distinct values is taken for class labels.
MAX_INTEGER_CLASSES = 20
# Rows and columns named in one message.
SHOWN = 5


# ---- reading a column ------------------------------------------------------------------------


def _rows(index, mask):
    """The first rows of ``index`` where ``mask`` holds, for a message: "3, 7, 9 and 12 more"."""
    where = np.flatnonzero(mask)
    shown = ", ".join(str(index[k]) for k in where[:SHOWN])
    return shown + (f" and {where.size - SHOWN} more" if where.size > SHOWN else "")


def _plural(n, word, plural=None):
    """"1 row", "2 rows"."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _python(value):
    """A NumPy scalar as the Python value it holds (JSON and messages take Python values)."""
    return value.item() if isinstance(value, np.generic) else value


def _value_type(value):
    """"text", "boolean" or "number": the kind of one value of a column, or None."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, numbers.Real):
        return "number"
    return None


def _present(series):
    """The non-missing values of ``series`` (as Python values) and the mask of missing ones."""
    missing = series.isna().to_numpy()
    values = [_python(v) for v in series.to_numpy(dtype=object)[~missing]]
    return values, missing


def _kinds(values, index, missing, name, what):
    """The kind of value every entry of ``values`` is ("text", "boolean" or "number"), refusing
    a column that mixes them or holds anything else."""
    kinds = {_value_type(v) for v in values}
    if None in kinds or len(kinds) > 1:
        rows = np.flatnonzero(~missing)
        first = {}
        for k, value in enumerate(values):
            first.setdefault(_value_type(value) or type(value).__name__, (index[rows[k]], value))
        shown = "; ".join(f"{kind} at row {row} ({_schema.brief(value)})"
                          for kind, (row, value) in first.items())
        problem = "mixes kinds of values" if len(first) > 1 else "holds values"
        raise DataError(f"{what} {name!r} {problem} ({shown}): fastnn takes a column of numbers, "
                        f"of text or of booleans")
    return kinds.pop() if kinds else None


def column_kind(series, name, what="column"):
    """How a column is used: "numeric" (int, uint, float, or objects that are all numbers) or
    "categorical" (text, booleans, a pandas category).

    Parameters
    ----------
    series : pandas.Series
    name : str
        The column's name, for messages.
    what : str, default "column"
        What the column is, for messages ("the target", say).

    Returns
    -------
    {"numeric", "categorical"}

    Raises
    ------
    DataError
        If the column holds dates, complex numbers or other values a network cannot take, mixes
        kinds of values, or has no value at all.
    """
    dtype = series.dtype
    if dtype.name == "category" or dtype.kind == "b":
        return "categorical"
    if dtype.kind in "iuf":
        return "numeric"
    if dtype.kind not in "OSU":
        raise DataError(f"{what} {name!r} holds values of type {dtype}, which fastnn cannot use: "
                        f"convert them to numbers or leave the column out (--drop on the "
                        f"command line)")
    values, missing = _present(series)
    kind = _kinds(values, series.index, missing, name, what)
    if kind is None:
        raise DataError(f"{what} {name!r} has no values: every row is missing")
    return "numeric" if kind == "number" else "categorical"


def _numbers(series, name, what="column"):
    """The column as float64, NaN where missing; DataError if it holds anything but numbers."""
    if series.dtype.kind in "iuf":
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        present, missing = _present(series)
        for k, value in enumerate(present):
            if _value_type(value) != "number":
                row = series.index[np.flatnonzero(~missing)[k]]
                raise DataError(f"{what} {name!r} must hold numbers, but row {row} holds "
                                f"{_schema.brief(value)}")
        values = np.full(len(series), np.nan)
        values[~missing] = np.asarray(present, dtype=np.float64)
    infinite = np.isinf(values)
    if infinite.any():
        raise DataError(f"{what} {name!r} holds infinity at row{'s' if infinite.sum() > 1 else ''} "
                        f"{_rows(series.index, infinite)}")
    return values


def _missing_error(index, masks, hint):
    """The DataError that names the columns and rows of missing values: ``masks`` is
    {column: mask of missing rows}, only columns with some."""
    parts = [f"{name!r} (row{'s' if mask.sum() > 1 else ''} {_rows(index, mask)})"
             for name, mask in list(masks.items())[:SHOWN]]
    more = f" and {len(masks) - SHOWN} more columns" if len(masks) > SHOWN else ""
    return DataError(f"missing values in column{'s' if len(masks) > 1 else ''} "
                     f"{', '.join(parts)}{more}: {hint}")


# What to do about missing values, in training and in prediction.
IMPUTE_HINT = ("fill them in or drop those rows, or impute them: --impute mean or median on the "
               "command line, impute='mean' or 'median' in Python")
PREDICT_HINT = ("the model was trained without imputation: fill them in or drop those rows (or "
                "train a model that imputes them: --impute, or impute= in Python)")


# ---- feature columns -------------------------------------------------------------------------


class NumericColumn:
    """A numeric feature, standardized: one input ``(x - mean) / scale``.

    Parameters
    ----------
    name : str
    mean : float
    scale : float
        > 0.
    fill : float, optional
        The value of a missing entry (before standardizing); missing entries are refused without.
    """

    kind = "numeric"
    width = 1

    def __init__(self, name, mean, scale, fill=None):
        self.name, self.mean, self.scale, self.fill = name, mean, scale, fill

    @classmethod
    def fit(cls, series, impute=None):
        """The column's standardization (and fill value) from its training rows.

        Parameters
        ----------
        series : pandas.Series
            The column's training rows.
        impute : {"mean", "median"}, optional
            Fill missing values with the rows' mean or median, and standardize after filling.

        Returns
        -------
        NumericColumn
        """
        values = _numbers(series, series.name)
        missing = np.isnan(values)
        if missing.all():
            raise DataError(f"column {series.name!r} has no values in the training rows")
        fill = None
        if impute is not None:
            present = values[~missing]
            fill = float(np.mean(present) if impute == "mean" else np.median(present))
            values = np.where(missing, fill, values)
        scale = float(np.std(values))
        return cls(series.name, float(np.mean(values)), scale if scale > 0 else 1.0, fill)

    def _encode(self, series, out):
        """Write the column's input into ``out`` (N, 1); `Preprocessor.transform` has refused
        missing values if there is no fill value."""
        values = _numbers(series, self.name)
        if self.fill is not None:
            values = np.where(np.isnan(values), self.fill, values)
        out[:, 0] = (values - self.mean) / self.scale

    def describe(self):
        """One line for a summary."""
        fill = "" if self.fill is None else f", missing -> {self.fill:.6g}"
        return f"numeric, standardized by mean {self.mean:.6g} and scale {self.scale:.6g}{fill}"

    def config(self):
        """The column as JSON-ready data."""
        config = {"name": self.name, "kind": "numeric", "mean": self.mean, "scale": self.scale}
        return config if self.fill is None else {**config, "fill": self.fill}

    @classmethod
    def from_config(cls, config, where):
        """The column ``config`` (as `config` returns it) describes, every value checked.

        Parameters
        ----------
        config : dict
        where : str
            Where ``config`` is in its document, for messages ("features[2]").

        Returns
        -------
        NumericColumn

        Raises
        ------
        ValueError
            Naming the first value that is missing, unknown, of the wrong type or out of range.
        """
        _schema.fields(config, where, ("name", "kind", "mean", "scale"), ("fill",))
        return cls(config["name"], _schema.real(config["mean"], f"{where}.mean"),
                   _schema.real(config["scale"], f"{where}.scale", positive=True),
                   _schema.real(config["fill"], f"{where}.fill") if "fill" in config else None)


class CategoricalColumn:
    """A categorical feature, one-hot encoded: one 0/1 input per category.

    Parameters
    ----------
    name : str
    categories : list
        The categories, all text, all booleans or all numbers, distinct, in input order.
    fill : optional
        The category of a missing entry; missing entries are refused without.
    """

    kind = "categorical"

    def __init__(self, name, categories, fill=None):
        self.name, self.categories, self.fill = name, list(categories), fill
        self._codes = {category: k for k, category in enumerate(self.categories)}

    @property
    def width(self):
        """The number of inputs: one per category."""
        return len(self.categories)

    @classmethod
    def fit(cls, series, train, impute=None, max_categories=MAX_CATEGORIES):
        """The column's categories, from all its rows (a category met only in the test rows is
        then known, and its input stays 0 in training), and its fill value if imputing.

        Parameters
        ----------
        series : pandas.Series
            The whole column.
        train : ndarray of bool, shape (len(series),)
            The training rows, whose most frequent category is the fill value.
        impute : {"mean", "median"}, optional
            Either imputes categories with the most frequent one.
        max_categories : int, default MAX_CATEGORIES

        Returns
        -------
        CategoricalColumn
        """
        values, missing = _present(series)
        kind = _kinds(values, series.index, missing, series.name, "column")
        categories = sorted(set(values))
        if len(categories) > max_categories:
            raise DataError(f"column {series.name!r} has {len(categories):,} distinct "
                            f"{kind} values, more than the {max_categories} categories fastnn "
                            f"one-hot encodes: an identifier or free text? Leave it out (--drop)")
        fill = None
        if impute is not None:
            trained = [v for v, use in zip(values, train[~missing]) if use]
            if not trained:
                raise DataError(f"column {series.name!r} has no values in the training rows")
            counts = {}
            for value in trained:
                counts[value] = counts.get(value, 0) + 1
            # the most frequent; max keeps the first, in sorted order, of equally frequent ones
            fill = max(categories, key=lambda c: counts.get(c, 0))
        return cls(series.name, categories, fill)

    def _encode(self, series, out):
        """Write the column's one-hot inputs into ``out`` (N, width), zeroed; DataError for a
        value that is not one of the categories. `Preprocessor.transform` has refused missing
        values if there is no fill value."""
        values, missing = _present(series)
        codes = np.empty(len(series), dtype=np.intp)
        if self.fill is not None:
            codes[missing] = self._codes[self.fill]
        kind = _value_type(self.categories[0])
        for k, value in zip(np.flatnonzero(~missing), values):
            code = self._codes.get(value)
            # True == 1 in a dict: a boolean is not taken for a number, nor a number for one
            if code is None or _value_type(value) != kind:
                raise DataError(self._unseen(series.index[k], value))
            codes[k] = code
        out[np.arange(len(series)), codes] = 1

    def _unseen(self, row, value):
        """The message about a value that is not one of the categories."""
        known = ", ".join(map(repr, self.categories[:10]))
        more = f" and {len(self.categories) - 10} more" if len(self.categories) > 10 else ""
        hint = ""
        if isinstance(value, numbers.Real) and isinstance(self.categories[0], str):
            hint = " (the column holds numbers, the categories are text: read it as text)"
        return (f"column {self.name!r} holds {_schema.brief(value)} at row {row}, a category "
                f"the model did not see in training (it knows {known}{more}){hint}")

    def describe(self):
        """One line for a summary."""
        shown = ", ".join(map(repr, self.categories[:8]))
        more = ", ..." if len(self.categories) > 8 else ""
        fill = "" if self.fill is None else f", missing -> {self.fill!r}"
        return f"categorical, {_plural(self.width, 'category', 'categories')} ({shown}{more}){fill}"

    def config(self):
        """The column as JSON-ready data."""
        config = {"name": self.name, "kind": "categorical", "categories": self.categories}
        return config if self.fill is None else {**config, "fill": self.fill}

    @classmethod
    def from_config(cls, config, where):
        """The column ``config`` (as `config` returns it) describes, every value checked.

        Parameters
        ----------
        config : dict
        where : str
            Where ``config`` is in its document, for messages ("features[2]").

        Returns
        -------
        CategoricalColumn

        Raises
        ------
        ValueError
            Naming the first value that is missing, unknown, of the wrong type or out of range.
        """
        _schema.fields(config, where, ("name", "kind", "categories"), ("fill",))
        categories = _check_values(config["categories"], f"{where}.categories")
        fill = config.get("fill")
        # 1 == True: the kind of value is compared too
        if "fill" in config and (fill not in categories
                                 or _value_type(fill) != _value_type(categories[0])):
            raise ValueError(f"{where}.fill is {_schema.brief(fill)}, not one of its categories")
        return cls(config["name"], categories, fill)


def _check_values(values, where):
    """``values`` if it is a JSON array of at least one distinct category or class: all text, all
    booleans or all finite numbers."""
    values = _schema.items(values, where, lambda v, _: v, least=1)
    kinds = {_value_type(v) for v in values}
    if None in kinds or len(kinds) > 1:
        raise ValueError(f"{where} must be all text, all booleans or all numbers, got "
                         f"{_schema.brief(values)}")
    if kinds == {"number"}:
        for k, value in enumerate(values):
            _schema.real(value, f"{where}[{k}]")
    if len({(type(v) is bool, v) for v in values}) != len(values):
        raise ValueError(f"{where} names a value twice: {_schema.brief(values)}")
    return values


class Preprocessor:
    """The feature columns of a table, in input order, and how each one becomes inputs.

    Parameters
    ----------
    columns : sequence of NumericColumn and CategoricalColumn
        Distinct names.

    Attributes
    ----------
    columns : tuple
    n_inputs : int
        The width of the matrix `transform` returns.
    """

    def __init__(self, columns):
        self.columns = tuple(columns)
        names = [column.name for column in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"the feature columns must have distinct names, got {names}")
        self.n_inputs = sum(column.width for column in self.columns)

    @property
    def names(self):
        """The feature columns' names, in input order (a list)."""
        return [column.name for column in self.columns]

    @classmethod
    def fit(cls, frame, names, train=None, impute=None, max_categories=MAX_CATEGORIES):
        """Learn the preprocessing of the columns ``names`` of ``frame``.

        Parameters
        ----------
        frame : pandas.DataFrame
        names : sequence of str
            The feature columns, in the order their inputs will have.
        train : array of bool of shape (len(frame),), optional
            The training rows (all by default): means, scales and fill values come from them;
            a column's kind and its categories from every row, so that no row met later is of
            an unknown category.
        impute : {"mean", "median"}, optional
            Fill missing values (see the module docstring); without, they are refused.
        max_categories : int, default MAX_CATEGORIES
            The most distinct values a categorical column may have.

        Returns
        -------
        Preprocessor

        Raises
        ------
        DataError
            If a column is missing or unusable (see `column_kind`), has too many categories, or
            has missing values and ``impute`` is None.
        """
        check_frame(frame)
        if impute not in (None, *IMPUTE):
            raise ValueError(f"impute must be None, 'mean' or 'median', got {impute!r}")
        _check_columns(frame, names)
        train = np.ones(len(frame), dtype=bool) if train is None else np.asarray(train, bool)
        if impute is None:
            refuse_missing(frame, names)
        columns = []
        for name in names:
            series = frame[name]
            if column_kind(series, name) == "numeric":
                columns.append(NumericColumn.fit(series[train], impute))
            else:
                columns.append(CategoricalColumn.fit(series, train, impute, max_categories))
        return cls(columns)

    def transform(self, frame):
        """The inputs of the network for the rows of ``frame``.

        Parameters
        ----------
        frame : pandas.DataFrame
            With every feature column, in any order; other columns are ignored.

        Returns
        -------
        ndarray of float64, shape (len(frame), n_inputs)

        Raises
        ------
        DataError
            If a column is missing, a numeric column holds text, a categorical one a value it
            has no category for, or a value is missing and the preprocessing does not impute.
        """
        check_frame(frame)
        _check_columns(frame, self.names)
        refuse_missing(frame, [column.name for column in self.columns if column.fill is None],
                       PREDICT_HINT)
        X = np.zeros((len(frame), self.n_inputs))
        start = 0
        for column in self.columns:
            column._encode(frame[column.name], X[:, start:start + column.width])
            start += column.width
        return X

    def config(self):
        """The preprocessing as JSON-ready data: a list of columns."""
        return [column.config() for column in self.columns]

    @classmethod
    def from_config(cls, config, where="features"):
        """The preprocessing ``config`` (as `config` returns it) describes, every value checked.

        Parameters
        ----------
        config : list
        where : str, default "features"
            Where ``config`` is in its document, for messages.

        Returns
        -------
        Preprocessor

        Raises
        ------
        ValueError
            Naming the first value in ``config`` that is missing, unknown, of the wrong type or
            out of range.
        """
        columns = _schema.items(config, where, _column_from_config, least=1)
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{where} names a column twice")
        return cls(columns)


def _column_from_config(config, where):
    """The `NumericColumn` or `CategoricalColumn` ``config`` describes, every value checked."""
    _schema.fields(config, where, ("name", "kind"), ("mean", "scale", "categories", "fill"))
    _schema.text(config["name"], f"{where}.name")
    kind = _schema.text(config["kind"], f"{where}.kind", ("numeric", "categorical"))
    return (NumericColumn if kind == "numeric" else CategoricalColumn).from_config(config, where)


def check_frame(frame):
    """Refuse anything but a pandas DataFrame with rows and columns named by distinct strings.

    Parameters
    ----------
    frame : object

    Raises
    ------
    TypeError
        If ``frame`` is not a DataFrame.
    fastnn.tables.DataError
        If it has no rows, or a column name that is not a string or is repeated.
    """
    pd = require("pandas", "a table")
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"a table is a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise DataError("the table has no rows")
    names = list(frame.columns)
    if not all(isinstance(name, str) for name in names):
        raise DataError(f"a table's column names must be text, got {_schema.brief(names)}")
    if len(set(names)) != len(names):
        raise DataError(f"the table has more than one column named "
                        f"{sorted({n for n in names if names.count(n) > 1})}")


def _check_columns(frame, names):
    """Refuse a frame without one of the columns ``names``."""
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise DataError(f"the data have no column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(repr, missing))} (its columns: "
                        f"{_schema.brief(list(frame.columns))})")


def refuse_missing(frame, names, hint=IMPUTE_HINT):
    """Refuse missing values in the columns ``names`` of ``frame``.

    Parameters
    ----------
    frame : pandas.DataFrame
    names : sequence of str
    hint : str, default IMPUTE_HINT
        What to do about them, to end the message.

    Raises
    ------
    fastnn.tables.DataError
        Naming the first columns with missing values and their first rows (by the frame's
        index), and ``hint``: what to do.
    """
    masks = {}
    for name in names:
        mask = frame[name].isna().to_numpy()
        if mask.any():
            masks[name] = mask
    if masks:
        raise _missing_error(frame.index, masks, hint)


# ---- the target -------------------------------------------------------------------------------


def infer_task(series):
    """The task a target column asks for, and why.

    Classification for text, booleans, a pandas category, or integers with at most
    `MAX_INTEGER_CLASSES` distinct values; regression for other numbers.

    Parameters
    ----------
    series : pandas.Series
        The target column.

    Returns
    -------
    task : {"classification", "regression"}
    reason : str
        E.g. "it holds text", "it holds 3 distinct integers".

    Raises
    ------
    fastnn.tables.DataError
        If a value is missing, or the column holds values of no kind a target can have.
    """
    _refuse_missing_target(series)
    if series.dtype.name == "category":
        return "classification", "it is a pandas category"
    if column_kind(series, series.name, "the target") == "categorical":
        return "classification", ("it holds booleans" if series.dtype.kind == "b"
                                  or isinstance(_python(series.iloc[0]), bool)
                                  else "it holds text")
    values = _numbers(series, series.name, "the target")
    distinct = np.unique(values)
    if np.all(distinct == np.round(distinct)) and series.dtype.kind in "iuO":
        if distinct.size <= MAX_INTEGER_CLASSES:
            return "classification", f"it holds {distinct.size} distinct integers"
        return "regression", (f"it holds {distinct.size} distinct integers, more than "
                              f"{MAX_INTEGER_CLASSES}")
    return "regression", "it holds numbers"


class ClassTarget:
    """A classification target: its classes, coded 0..K-1 in sorted order.

    Parameters
    ----------
    name : str
    classes : list
        Two or more distinct classes, all text, all booleans or all numbers.
    """

    task = "classification"

    def __init__(self, name, classes):
        self.name, self.classes = name, list(classes)
        self._codes = {label: k for k, label in enumerate(self.classes)}

    @property
    def n_outputs(self):
        """One output per class."""
        return len(self.classes)

    @classmethod
    def fit(cls, series):
        """The classes of a target column.

        Parameters
        ----------
        series : pandas.Series

        Returns
        -------
        ClassTarget

        Raises
        ------
        DataError
            If a value is missing, the values mix kinds, or there are fewer than two or more
            than `MAX_CATEGORIES` classes.
        """
        _refuse_missing_target(series)
        values, missing = _present(series)
        _kinds(values, series.index, missing, series.name, "the target")
        classes = sorted(set(values))
        if len(classes) < 2:
            raise DataError(f"the target {series.name!r} has one class only "
                            f"({_schema.brief(classes[0])}): classification needs two or more")
        if len(classes) > MAX_CATEGORIES:
            raise DataError(f"the target {series.name!r} has {len(classes):,} distinct values, "
                            f"more than the {MAX_CATEGORIES} classes fastnn takes: a regression "
                            f"(--task regression)?")
        return cls(series.name, classes)

    def encode(self, series):
        """The class codes of a target column.

        Parameters
        ----------
        series : pandas.Series

        Returns
        -------
        ndarray of int64, shape (N,)

        Raises
        ------
        DataError
            If a value is missing or is not one of the classes.
        """
        _refuse_missing_target(series)
        codes = np.empty(len(series), dtype=np.int64)
        for k, value in enumerate(series.to_numpy(dtype=object)):
            value = _python(value)
            code = self._codes.get(value)
            if code is None or _value_type(value) != _value_type(self.classes[0]):
                shown = ", ".join(map(repr, self.classes[:10]))
                raise DataError(f"the target {self.name!r} holds {_schema.brief(value)} at row "
                                f"{series.index[k]}, a class the model does not know (it knows "
                                f"{shown}{', ...' if len(self.classes) > 10 else ''})")
            codes[k] = code
        return codes

    def decode(self, codes):
        """The classes of codes, with their type.

        Parameters
        ----------
        codes : ndarray of int, shape (N,)

        Returns
        -------
        ndarray of shape (N,)
            Of str, bool, int or float, as the classes are.
        """
        return np.asarray(self.classes)[codes]

    def config(self):
        """The target as JSON-ready data."""
        return {"name": self.name, "task": self.task, "classes": self.classes}


class NumericTarget:
    """A regression target, standardized for training: ``(y - mean) / scale``.

    Parameters
    ----------
    name : str
    mean : float
    scale : float
        > 0.
    """

    task = "regression"
    n_outputs = 1

    def __init__(self, name, mean, scale):
        self.name, self.mean, self.scale = name, mean, scale

    @classmethod
    def fit(cls, series):
        """The standardization of a target column, from its training rows.

        Parameters
        ----------
        series : pandas.Series

        Returns
        -------
        NumericTarget

        Raises
        ------
        DataError
            If a value is missing or is not a number.
        """
        values = cls._values(series)
        scale = float(np.std(values))
        return cls(series.name, float(np.mean(values)), scale if scale > 0 else 1.0)

    @staticmethod
    def _values(series):
        """The target column as float64; DataError if a value is missing or not a number."""
        _refuse_missing_target(series)
        try:
            return _numbers(series, series.name, "the target")
        except DataError as error:
            raise DataError(f"{error}; regression needs numbers (--task classification, or "
                            f"task='classification', for classes)") from None

    def encode(self, series):
        """The standardized target.

        Parameters
        ----------
        series : pandas.Series

        Returns
        -------
        ndarray of float64, shape (N, 1)

        Raises
        ------
        DataError
            If a value is missing or is not a number.
        """
        return ((self._values(series) - self.mean) / self.scale).reshape(-1, 1)

    def decode(self, outputs):
        """The network's outputs in the target's units.

        Parameters
        ----------
        outputs : ndarray of shape (N, 1)

        Returns
        -------
        ndarray of float64, shape (N,)
        """
        return outputs[:, 0] * self.scale + self.mean

    def config(self):
        """The target as JSON-ready data."""
        return {"name": self.name, "task": self.task, "mean": self.mean, "scale": self.scale}


def _refuse_missing_target(series):
    """Refuse a target column with a missing value, naming its rows."""
    missing = series.isna().to_numpy()
    if missing.any():
        raise DataError(f"the target {series.name!r} is missing in "
                        f"{_plural(int(missing.sum()), 'row')} ({_rows(series.index, missing)}): "
                        f"every row needs its target; drop those rows")


def target_from_config(config, where="target"):
    """The `ClassTarget` or `NumericTarget` ``config`` (as their ``config`` returns it)
    describes, every value checked.

    Parameters
    ----------
    config : dict
    where : str, default "target"
        Where ``config`` is in its document, for messages.

    Returns
    -------
    ClassTarget or NumericTarget

    Raises
    ------
    ValueError
        Naming the first value that is missing, unknown, of the wrong type or out of range.
    """
    _schema.fields(config, where, ("name", "task"), ("classes", "mean", "scale"))
    name = _schema.text(config["name"], f"{where}.name")
    task = _schema.text(config["task"], f"{where}.task", ("classification", "regression"))
    if task == "classification":
        _schema.fields(config, where, ("name", "task", "classes"))
        classes = _check_values(config["classes"], f"{where}.classes")
        if len(classes) < 2:
            raise ValueError(f"{where}.classes has one class only")
        return ClassTarget(name, classes)
    _schema.fields(config, where, ("name", "task", "mean", "scale"))
    return NumericTarget(name, _schema.real(config["mean"], f"{where}.mean"),
                         _schema.real(config["scale"], f"{where}.scale", positive=True))
