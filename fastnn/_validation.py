"""Checks and conversions of user input, done once before anything reaches the compiled kernels.

The kernels run without bounds checks, so every array that reaches them is C-contiguous, of the
network's dtype, finite, and of the shape they expect: that is established here, and its result
is a `CheckedData`. The contract: a CheckedData for a network holds X of shape (N, n_in) with
N >= 1, Y of shape (N, n_out) and sample weights of shape (N,) or None, all C-contiguous, of the
network's dtype and finite; the weights are >= 0 with a positive sum, and Y suits the network's
loss. Only `fastnn.MLP.check_data` makes one, and every method that trains or evaluates accepts one
in place of (X, Y) without checking it again.
"""
import math
import numbers
import operator
import os
from typing import NamedTuple

import numpy as np

from fastnn._checks import all_finite, ready


class CheckedData(NamedTuple):
    """Data checked for one network (see this module's contract): made by `MLP.check_data`."""

    X: np.ndarray
    Y: np.ndarray
    sample_weight: np.ndarray = None


# The largest integer a count or size may be. The compiled code holds them in Py_ssize_t (signed
# 64 bits) and adds two of them (a batch start and a batch size, say), so this bound leaves room
# for that sum: no integer that passes `check_int` by default can overflow there.
MAX_INT = 2 ** 62
# The largest layer width: BLAS takes matrix dimensions as C ints (32 bits).
MAX_WIDTH = 2 ** 31 - 1


def check_int(name, value, minimum, maximum=MAX_INT):
    """``value`` as an int in [minimum, maximum].

    Parameters
    ----------
    name : str
        The argument's name, for the error messages.
    value : object
        An integer (anything with ``__index__`` but a bool).
    minimum : int
    maximum : int, default MAX_INT
        The default keeps every integer that reaches the compiled code far from overflow; pass a
        larger one only for a value the compiled code holds in a wider type.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``value`` is not an integer (bools included).
    ValueError
        If it is out of range.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {_short(value)}")
    if value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {_short(value)}")
    return value


def _short(number):
    """``number`` for an error message: in full, or by its size if it has hundreds of digits."""
    text = str(number)
    return text if len(text) <= 30 else f"an integer of {len(text.lstrip('-'))} digits"


def check_real(name, value, low=None, high=None, high_open=False):
    """``value`` as a finite float in [low, high] (or [low, high) with high_open).

    Parameters
    ----------
    name : str
        The argument's name, for the error messages.
    value : numbers.Real
        Any real number but a bool; an int too large for a float counts as infinite.
    low, high : float, optional
        The bounds, if any.
    high_open : bool, default False
        Exclude ``high`` itself.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is NaN, infinite (or too large for a float) or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:
        # an int (or Fraction) beyond the largest float: infinite as far as a float goes
        raise ValueError(f"{name} must be finite, got {_short(value)}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and (value >= high if high_open else value > high):
        bound = f"< {high}" if high_open else f"<= {high}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def physical_memory():
    """The machine's physical memory in bytes, or None where the system does not tell."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        # os.sysconf is missing on Windows, and a name may be unknown to a system
        return None


def check_allocation(name, n_items, itemsize):
    """Refuse, before allocating, an array larger than the machine's physical memory.

    An allocation that large would fail, or succeed lazily and then exhaust the memory (the
    system may kill the process) once written; refusing it up front gives a clear message.

    Parameters
    ----------
    name : str
        What needs the memory, to start the message: e.g. "a network of 10,000 parameters".
    n_items : int
        The number of values (any size: a Python int does not overflow).
    itemsize : int
        Bytes per value.

    Raises
    ------
    MemoryError
        If ``n_items * itemsize`` bytes exceed the physical memory.
    """
    needed = n_items * itemsize
    available = physical_memory()
    if available is not None and needed > available:
        raise MemoryError(f"{name} needs {_gib(needed)} of memory, more than the "
                          f"{_gib(available)} this machine has")


def _gib(n_bytes):
    """A size in bytes as GiB, for messages."""
    if n_bytes >= 2 ** 1000:
        # too large to divide into a float
        return "more than 1e290 GiB"
    return f"{n_bytes / 2 ** 30:.3g} GiB"


def check_choice(name, value, choices):
    """``value`` if it is one of the names in ``choices``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {sorted(choices)}, got {value!r}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(choices)}")
    return value


def as_numeric_array(name, data):
    """``data`` as a NumPy array of numbers (bool, integer or real), without copying if it is
    one."""
    if data is None or isinstance(data, (str, bytes)):
        raise TypeError(f"{name} must be an array-like of numbers, got {type(data).__name__}")
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{name} could not be read as a rectangular array of numbers: {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {array.dtype}"
                        f"{_not_numbers(name, array)}")
    return array


def _position(array, flat_index):
    """Where element ``flat_index`` of ``array`` is, in words: "row 2, column 1"."""
    index = np.unravel_index(flat_index, array.shape)
    if array.ndim == 2:
        return f"row {index[0]}, column {index[1]}"
    return f"index {index[0] if array.ndim == 1 else index}"


def _not_numbers(name, array):
    """What in ``array`` (of a dtype that is not numeric) is not a number, and what to do: the
    end of the message of `as_numeric_array`."""
    flat = array.ravel()
    if array.dtype.kind in "OUS":
        text = next((k for k in range(flat.size) if isinstance(flat[k], (str, bytes))), None)
        if text is not None:
            where, value = _position(array, text), flat[text]
            # a NumPy string as a str: its repr would be np.str_('a')
            value = str(value) if isinstance(value, str) else value
            if name == "X":
                return (f": it holds text ({where}: {value!r}). fastnn.MLP takes numbers only: "
                        f"encode text columns as numbers first (one-hot), or let the command "
                        f"line do it on a CSV or Parquet file (fastnn train FILE), or use "
                        f"fastnn.sklearn in a scikit-learn Pipeline with a OneHotEncoder")
            if name == "Y":
                return (f": it holds text labels ({where}: {value!r}). fastnn.MLP takes classes "
                        f"as integer codes 0..K-1 (np.unique(Y, return_inverse=True) gives "
                        f"them) or one-hot rows; fastnn.sklearn.MLPClassifier takes text "
                        f"labels as they are")
            return f": it holds text ({where}: {value!r})"
        missing = next((k for k in range(flat.size) if flat[k] is None), None)
        if missing is not None:
            return f": it holds None ({_position(array, missing)}), a missing value?"
    return ""


def as_matrix(name, data, n_columns, dtype):
    """``data`` as a finite C-contiguous (N, n_columns) array of dtype (a copy only if needed).

    The general path: callers try `ready` first, the compiled check of an array that needs no
    conversion, and come here when it says no.
    """
    array = as_numeric_array(name, data)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 2-dimensional with shape (n_samples, {n_columns}), got shape "
            f"{array.shape}; use .reshape(-1, {n_columns}) for a single "
            f"{'feature' if n_columns == 1 else 'sample'}")
    if array.shape[1] != n_columns:
        raise ValueError(f"{name} has {array.shape[1]} columns, the network expects {n_columns}")
    return finite(name, to_dtype(array, dtype))


def to_dtype(array, dtype):
    """``array`` as a C-contiguous array of dtype; values out of its range become inf (and are
    then refused by `finite`) without numpy's overflow warning."""
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(array, dtype=dtype)


def finite(name, array):
    """``array`` if no element is NaN or infinite, else a ValueError that names the first rows
    and columns where one is."""
    if not all_finite(array):
        bad = ~np.isfinite(array)
        kinds = " and ".join(kind for kind, found in (("NaN", np.isnan(array).any()),
                                                       ("infinity", np.isinf(array).any()))
                             if found)
        where = "at " + _first("row", np.flatnonzero(bad.any(axis=1) if bad.ndim == 2 else bad))
        if bad.ndim == 2:
            where += ", " + _first("column", np.flatnonzero(bad.any(axis=0)))
        hint = ""
        if name == "X" and np.isnan(array).any():
            hint = ("; fill in or drop the missing values (on a CSV or Parquet file, "
                    "fastnn train FILE --impute mean does it)")
        raise ValueError(f"{name} contains NaN or infinity (in {array.dtype}): {kinds} "
                         f"{where}{hint}")
    return array


def _first(noun, indices, shown=5):
    """The first of ``indices``, for a message: "row 2", "rows 2, 5, 9 and 3 more"."""
    text = ", ".join(str(i) for i in indices[:shown])
    more = f" and {indices.size - shown} more" if indices.size > shown else ""
    return f"{noun}{'s' if indices.size > 1 else ''} {text}{more}"


def as_targets(data, like, n_outputs, dtype, labels):
    """Targets for the rows of ``like`` (checked X) as a finite C-contiguous (N, n_outputs) array.

    With ``labels`` (softmax cross-entropy), a 1-D array of integer class labels in
    0..n_outputs-1 is accepted too and turned into one-hot rows.
    """
    if ready(data, n_outputs, dtype, like):
        return data
    n_samples = like.shape[0]
    array = as_numeric_array("Y", data)
    if array.ndim == 1 and labels:
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError("Y given as a 1-D array must hold integer class labels")
        if array.size and (array.min() < 0 or array.max() >= n_outputs):
            raise ValueError(
                f"class labels in Y must be in 0..{n_outputs - 1}, got values from "
                f"{array.min():g} to {array.max():g}")
        onehot = np.zeros((array.shape[0], n_outputs), dtype=dtype)
        onehot[np.arange(array.shape[0]), array.astype(np.intp)] = 1
        array = onehot
    elif array.ndim == 1 and n_outputs == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] != n_outputs:
        expected = (f"({n_samples}, {n_outputs})"
                    + (f" or integer labels ({n_samples},)" if labels else ""))
        raise ValueError(f"Y must have shape {expected}, got {array.shape}")
    if array.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} rows but Y has {array.shape[0]}")
    return finite("Y", to_dtype(array, dtype))


def as_sample_weight(data, n_samples, dtype, positive_sum=True):
    """Sample weights as a finite, non-negative C-contiguous (n_samples,) array of dtype, or
    None; with ``positive_sum``, their sum must be positive (without, for a part of the data
    whose whole is checked apart: a stream's chunk)."""
    if data is None:
        return None
    array = as_numeric_array("sample_weight", data)
    if array.ndim == 0:
        array = np.full(n_samples, array)
    if array.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {array.shape}")
    array = finite("sample_weight", to_dtype(array, dtype))
    if n_samples and (array.min() < 0 or (positive_sum and array.sum() <= 0)):
        raise ValueError("sample_weight must be >= 0 with a positive sum")
    # the objective divides by the weights' sum, taken in the network's dtype
    with np.errstate(over="ignore"):
        if n_samples and not np.isfinite(array.sum(dtype=dtype)):
            raise ValueError(f"sample_weight sums to more than {dtype} can hold; scale the "
                             f"weights down (only their ratios matter)")
    return array
