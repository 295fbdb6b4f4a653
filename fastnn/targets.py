"""The target of a table: the column a network predicts, coded for training and decoded for
prediction, and the task it asks for.

- A classification target is coded 0..K-1 by its sorted classes (text, booleans, integers or other
  numbers, kept with their type: `ClassTarget.decode` gives them back).
- A regression target is standardized, ``(y - mean) / scale`` with the training rows' mean and
  standard deviation, and the network's outputs are turned back into its units
  (`NumericTarget.decode`).

Every row needs its target: a missing one is refused with its rows named (by the frame's index).
"""
import numpy as np

from fastnn import _schema
from fastnn._columns import (
    check_values,
    column_kind,
    numbers_of,
    plural,
    present,
    python_value,
    rows_text,
    value_kind,
    value_type,
)
from fastnn.tables import DataError

__all__ = ["ClassTarget", "NumericTarget", "infer_task", "target_from_config",
           "MAX_CLASSES", "MAX_INTEGER_CLASSES"]

# An integer target with at most this many distinct values is taken for class labels.
MAX_INTEGER_CLASSES = 20
# More classes than this are a regression's values or identifiers, not classes.
MAX_CLASSES = 1000


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
                                  or isinstance(python_value(series.iloc[0]), bool)
                                  else "it holds text")
    values = numbers_of(series, series.name, "the target")
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
            than `MAX_CLASSES` classes.
        """
        _refuse_missing_target(series)
        values, missing = present(series)
        value_kind(values, series.index, missing, series.name, "the target")
        classes = sorted(set(values))
        if len(classes) < 2:
            raise DataError(f"the target {series.name!r} has one class only "
                            f"({_schema.brief(classes[0])}): classification needs two or more")
        if len(classes) > MAX_CLASSES:
            raise DataError(f"the target {series.name!r} has {len(classes):,} distinct values, "
                            f"more than the {MAX_CLASSES} classes fastnn takes: a regression "
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
            value = python_value(value)
            code = self._codes.get(value)
            if code is None or value_type(value) != value_type(self.classes[0]):
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
            return numbers_of(series, series.name, "the target")
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
        rows = rows_text(series.index, missing)
        raise DataError(f"the target {series.name!r} is missing in "
                        f"{plural(int(missing.sum()), 'row')} ({rows}): every row needs its "
                        f"target; drop those rows")


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
        classes = check_values(config["classes"], f"{where}.classes")
        if len(classes) < 2:
            raise ValueError(f"{where}.classes has one class only")
        return ClassTarget(name, classes)
    _schema.fields(config, where, ("name", "task", "mean", "scale"))
    return NumericTarget(name, _schema.real(config["mean"], f"{where}.mean"),
                         _schema.real(config["scale"], f"{where}.scale", positive=True))
