"""Strict checks of JSON read from a model file: each value of its type and range, no key missing,
none unknown. A failed check raises ValueError naming where in the document the value is."""
import math
import reprlib

# Shortens a file's values quoted in a message: a hostile file may hold megabytes in one.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = 10


def brief(value):
    """``value``'s repr, shortened for a message."""
    return _REPR.repr(value)


def fields(value, where, required, optional=()):
    """``value`` if it is a JSON object with every key of ``required`` and no key beyond
    ``required`` and ``optional``."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} is not a JSON object but {type(value).__name__}")
    keys = set(value)
    if not set(required) <= keys <= set(required) | set(optional):
        raise ValueError(f"{where} has the keys {brief(sorted(keys))}; it needs "
                         f"{sorted(required)}" + (f" and allows {sorted(optional)}"
                                                  if optional else ""))
    return value


def text(value, where, choices=None):
    """``value`` if it is a non-empty string (one of ``choices`` if given)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} is {brief(value)}, not a non-empty string")
    if choices is not None and value not in choices:
        raise ValueError(f"{where} is {brief(value)}, not one of {sorted(choices)}")
    return value


def integer(value, where, low=0):
    """``value`` if it is an integer (not a bool) of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{where} is {brief(value)}, not an integer >= {low}")
    return value


def real(value, where, low=None, high=None, positive=False):
    """``value`` as a float if it is a finite number (not a bool) in [low, high], > 0 with
    ``positive``."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or (low is not None and value < low)
            or (high is not None and value > high) or (positive and value <= 0)):
        bounds = [f">= {low}"] * (low is not None) + [f"<= {high}"] * (high is not None)
        bounds += ["> 0"] * positive
        raise ValueError(f"{where} is {brief(value)}, not a finite number"
                         + (f" {' and '.join(bounds)}" if bounds else ""))
    return float(value)


def flag(value, where):
    """``value`` if it is true or false."""
    if not isinstance(value, bool):
        raise ValueError(f"{where} is {brief(value)}, not true or false")
    return value


def items(value, where, check, least=0):
    """``value`` as a list of ``check(item, where[k])`` if it is a JSON array of at least
    ``least`` items."""
    if not isinstance(value, list) or len(value) < least:
        raise ValueError(f"{where} is {brief(value)}, not an array of at least {least} items")
    return [check(item, f"{where}[{k}]") for k, item in enumerate(value)]
