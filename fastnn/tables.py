"""Reading the user's data files (CSV, TSV, Parquet) as pandas DataFrames.

pandas, and pyarrow for Parquet, are optional: ``pip install "fastnn-cpu[data]"``. They are
imported when a file is read, never when fastnn is imported.
"""
import os

from fastnn._extras import require

__all__ = ["DataError", "read_table", "require"]

# A data file's kind by its name's ending (a text file may be compressed).
TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
PARQUET_SUFFIXES = (".parquet", ".pq")


class DataError(ValueError):
    """Data that cannot be used as they are: a file that cannot be read or holds no rows, a
    missing column, missing values, an unseen category, a target unfit for the task."""


def _file_kind(path):
    """("csv" or "parquet", the separator of a text file) from ``path``'s ending."""
    name = os.path.basename(path).lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet", None
    for compression in COMPRESSIONS:
        if name.endswith(compression):
            name = name[:-len(compression)]
            break
    for suffix, separator in TEXT_SUFFIXES.items():
        if name.endswith(suffix):
            return "csv", separator
    raise DataError(f"cannot tell the format of {path!r} from its name: fastnn reads "
                    f"{', '.join(TEXT_SUFFIXES)} files (plain or compressed: "
                    f"{', '.join(COMPRESSIONS)}) and {', '.join(PARQUET_SUFFIXES)} files")


def read_table(path, text_columns=()):
    """The table in the file ``path``, its rows numbered from 1 (the header not counted), as the
    error messages of `fastnn.preprocessing` name them.

    Parameters
    ----------
    path : str or os.PathLike
        A CSV (``.csv``), tab-separated (``.tsv``, ``.tab``) or Parquet (``.parquet``, ``.pq``)
        file; text files may be compressed (``.gz``, ``.bz2``, ``.xz``, ``.zst``, ``.zip``). A
        text file is UTF-8 with a header line; empty fields and pandas' markers (``NA``,
        ``N/A``, ``NaN``, ``null``, ...) are missing values.
    text_columns : iterable of str, optional
        Columns of a text file to read as text even where every value looks like a number (the
        categories a model was trained on); columns the file does not have are skipped.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        If the file does not exist, is empty, has no data rows, cannot be parsed, or has an
        unnamed or duplicated column.
    ImportError
        If pandas (or for Parquet, pyarrow) is not installed.
    """
    path = os.fsdecode(os.fspath(path))
    kind, separator = _file_kind(path)
    if not os.path.exists(path):
        raise DataError(f"no data file at {path!r}")
    if os.path.isdir(path):
        raise DataError(f"{path!r} is a folder, not a data file")
    pd = require("pandas", "reading data files")
    if kind == "parquet":
        require("pyarrow", "reading Parquet files")
        try:
            frame = pd.read_parquet(path, engine="pyarrow")
        except Exception as error:  # pyarrow's errors have no common base but Exception
            raise DataError(f"cannot read {path!r} as a Parquet file: {error}") from None
        names = list(frame.columns)
    else:
        frame, names = _read_text(pd, path, separator, set(text_columns))
    _check_names(path, names, separator)
    if len(frame) == 0:
        raise DataError(f"{path!r} has a header but no data rows")
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    return frame


def _read_text(pd, path, separator, text_columns):
    """The table of a CSV or TSV file and its header as written (pandas renames duplicates)."""
    try:
        # the header as it is written: pandas would rename a repeated "a" to "a.1"
        header = pd.read_csv(path, sep=separator, header=None, nrows=1, dtype=str,
                             keep_default_na=False).iloc[0].tolist()
        # low_memory=False: a column is typed from all its rows, not chunk by chunk (which
        # can give one column numbers in some rows and text in others)
        frame = pd.read_csv(path, sep=separator, low_memory=False,
                            dtype={name: str for name in text_columns if name in header} or None)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path!r} is empty: a data file starts with a header line") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path!r} is not UTF-8 text: {error}") from None
    except (pd.errors.ParserError, ValueError, OSError) as error:
        raise DataError(f"cannot read {path!r}: {error}") from None
    return frame, header


def _check_names(path, names, separator):
    """Refuse a table whose columns are not all named, distinct strings."""
    for k, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise DataError(f"column {k + 1} of {path!r} has no name (a file written with its "
                            f"row index?): give every column a name")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{path!r} has more than one column named {', '.join(map(repr, repeated))}")
    if len(names) == 1 and separator is not None:
        # one column whose name holds another separator: the file was split on the wrong one
        mark = next((mark for mark in ";|\t," if mark != separator and mark in names[0]), None)
        if mark is not None:
            raise DataError(f"{path!r} has one column, {names[0]!r}: is it separated by "
                            f"{mark!r}? fastnn reads .csv files separated by ',' and .tsv and "
                            f".tab files by tabs")
