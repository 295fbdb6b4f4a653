"""The compiled extensions, imported first by ``import fastnn``: in a source checkout that was
not built, the error says how to build it instead of naming a missing module."""
import importlib

try:
    for extension in ("_checks", "_engine", "_files", "_rules"):
        importlib.import_module(f"fastnn.{extension}")
except ModuleNotFoundError as error:
    if not (error.name or "").startswith("fastnn._"):
        raise
    raise ImportError(
        f"fastnn's compiled extensions are not built ({error.name} is missing): this looks like "
        f"a source checkout. Install it with `pip install .` (or `pip install -e .`), or build "
        f"it in place with `python setup.py build_ext --inplace` (needs Cython, NumPy and a C "
        f"compiler)") from None
del extension
