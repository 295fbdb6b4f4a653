"""Reading one column of a pandas DataFrame: the kind of values it holds, its numbers, its
missing values; and the rows of a message. Shared by the preprocessing of the features
(`fastnn.preprocessing`) and of the target (`fastnn.targets`)."""
import numbers

import numpy as np

from fastnn import _schema
from fastnn.tables import DataError

# Rows and columns named in one message.
SHOWN = 5


def rows_text(index, mask):
    """The first rows of ``index`` where ``mask`` holds, for a message: "3, 7, 9 and 12 more"."""
    where = np.flatnonzero(mask)
    shown = ", ".join(str(index[k]) for k in where[:SHOWN])
    return shown + (f" and {where.size - SHOWN} more" if where.size > SHOWN else "")


def plural(n, word, many=None):
    """"1 row", "2 rows" (``many``: the plural when it is not ``word`` + "s")."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def python_value(value):
    """A NumPy scalar as the Python value it holds (JSON and messages take Python values)."""
    return value.item() if isinstance(value, np.generic) else value


def value_type(value):
    """"text", "boolean" or "number": the kind of one value of a column, or None."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, numbers.Real):
        return "number"
    return None


def present(series):
    """The non-missing values of ``series`` (as Python values) and the mask of missing ones."""
    missing = series.isna().to_numpy()
    values = [python_value(v) for v in series.to_numpy(dtype=object)[~missing]]
    return values, missing


def value_kind(values, index, missing, name, what):
    """The kind of value every entry of ``values`` is ("text", "boolean" or "number"), refusing
    a column that mixes them or holds anything else."""
    kinds = {value_type(v) for v in values}
    if None in kinds or len(kinds) > 1:
        rows = np.flatnonzero(~missing)
        first = {}
        for k, value in enumerate(values):
            first.setdefault(value_type(value) or type(value).__name__, (index[rows[k]], value))
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
    values, missing = present(series)
    kind = value_kind(values, series.index, missing, name, what)
    if kind is None:
        raise DataError(f"{what} {name!r} has no values: every row is missing")
    return "numeric" if kind == "number" else "categorical"


def numbers_of(series, name, what="column"):
    """The column as float64, NaN where missing; DataError if it holds anything but numbers."""
    if series.dtype.kind in "iuf":
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        found, missing = present(series)
        for k, value in enumerate(found):
            if value_type(value) != "number":
                row = series.index[np.flatnonzero(~missing)[k]]
                raise DataError(f"{what} {name!r} must hold numbers, but row {row} holds "
                                f"{_schema.brief(value)}")
        values = np.full(len(series), np.nan)
        values[~missing] = np.asarray(found, dtype=np.float64)
    infinite = np.isinf(values)
    if infinite.any():
        raise DataError(f"{what} {name!r} holds infinity at row{'s' if infinite.sum() > 1 else ''} "
                        f"{rows_text(series.index, infinite)}")
    return values


def check_values(values, where):
    """``values`` if it is a JSON array of at least one distinct category or class: all text, all
    booleans or all finite numbers."""
    values = _schema.items(values, where, lambda v, _: v, least=1)
    kinds = {value_type(v) for v in values}
    if None in kinds or len(kinds) > 1:
        raise ValueError(f"{where} must be all text, all booleans or all numbers, got "
                         f"{_schema.brief(values)}")
    if kinds == {"number"}:
        for k, value in enumerate(values):
            _schema.real(value, f"{where}[{k}]")
    if len({(type(v) is bool, v) for v in values}) != len(values):
        raise ValueError(f"{where} names a value twice: {_schema.brief(values)}")
    return values
