"""fastnn's version, the one place it is written: pyproject.toml reads it statically when building,
and `fastnn.__version__` imports it."""
__version__ = "0.2.0.dev0"
