"""The preprocessing of a table's feature columns for a network: each row as a vector of numbers.
It is learned from the training rows and stored in the model file (as JSON:
`Preprocessor.config`), so that prediction applies exactly what training did (the target's own
coding is `fastnn.targets`).

- A numeric column is standardized, ``(x - mean) / scale`` with the training rows' mean and
  standard deviation (scale 1 for a constant column).
- A categorical column (text, booleans, or a pandas ``category``) becomes one 0/1 input per
  category, in sorted order. A value the model has not seen is refused with an error naming the
  column, the value and its row: an all-zero encoding would let a typo through unnoticed.
- A missing value is refused with an error naming the columns and rows, unless the preprocessing
  imputes: numeric columns are then filled with the training rows' mean or median, categorical ones
  with their most frequent category, before standardizing (as scikit-learn's SimpleImputer before
  StandardScaler), at training and at prediction alike.

A frame is read by column name: its columns may come in any order, and the columns the
preprocessing does not use (the target at prediction, identifiers, ...) are ignored. Rows are
named in messages by the frame's index (`fastnn.tables.read_table` numbers them from 1).
"""
import numbers

import numpy as np

from fastnn import _schema
from fastnn._columns import (
    SHOWN,
    check_values,
    column_kind,
    numbers_of,
    plural,
    present,
    rows_text,
    value_kind,
    value_type,
)
from fastnn._extras import require
from fastnn.tables import DataError

__all__ = ["Preprocessor", "NumericColumn", "CategoricalColumn", "check_frame", "refuse_missing",
           "IMPUTE", "MAX_CATEGORIES"]

IMPUTE = ("mean", "median")
# A text column with more distinct values than this is an identifier or free text, not a category
# (one-hot encoding it would add thousands of inputs that a new row never matches).
MAX_CATEGORIES = 1000


def _missing_error(index, masks, hint):
    """The DataError that names the columns and rows of missing values: ``masks`` is
    {column: mask of missing rows}, only columns with some."""
    parts = [f"{name!r} (row{'s' if mask.sum() > 1 else ''} {rows_text(index, mask)})"
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
        values = numbers_of(series, series.name)
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
        values = numbers_of(series, self.name)
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
        values, missing = present(series)
        kind = value_kind(values, series.index, missing, series.name, "column")
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
        values, missing = present(series)
        codes = np.empty(len(series), dtype=np.intp)
        if self.fill is not None:
            codes[missing] = self._codes[self.fill]
        kind = value_type(self.categories[0])
        for k, value in zip(np.flatnonzero(~missing), values):
            code = self._codes.get(value)
            # True == 1 in a dict: a boolean is not taken for a number, nor a number for one
            if code is None or value_type(value) != kind:
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
        return f"categorical, {plural(self.width, 'category', 'categories')} ({shown}{more}){fill}"

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
        categories = check_values(config["categories"], f"{where}.categories")
        fill = config.get("fill")
        # 1 == True: the kind of value is compared too
        if "fill" in config and (fill not in categories
                                 or value_type(fill) != value_type(categories[0])):
            raise ValueError(f"{where}.fill is {_schema.brief(fill)}, not one of its "
                             f"categories")
        return cls(config["name"], categories, fill)


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
