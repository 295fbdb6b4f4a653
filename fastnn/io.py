"""Saving and loading networks.

A model file is a NumPy ``.npz`` archive (no pickles) holding a format tag, the architecture as
JSON, and the flat parameter vector in the network's dtype, so a round trip is exact.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from fastnn import network

__all__ = ["save", "load", "ModelFileError"]

FORMAT = "fastnn.MLP"
VERSION = 1


class ModelFileError(ValueError):
    """A file that is not a readable fastnn model (truncated, damaged or of another kind)."""


class ModelFileNotFoundError(FileNotFoundError, ValueError):
    """A model file, or the folder to save one into, that does not exist."""


def save(net, path):
    """Write ``net`` to ``path``, atomically: an existing file there is replaced only once the
    new one is complete, so a failed save never leaves a damaged model behind.

    Parameters
    ----------
    net : fastnn.MLP
    path : str or os.PathLike
        The file to write (its name is used as given; no suffix is added).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ModelFileNotFoundError(2, f"cannot save the model: the folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(21, f"cannot save the model: {path!r} is a folder")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".fastnn-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, format=np.array(FORMAT), version=np.array(VERSION),
                     config=np.array(json.dumps(net.config())), params=net.params)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def load(path):
    """Read a network written by `save`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    fastnn.MLP
        The same architecture, dtype and parameters, bit for bit.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path`` (it is also a ValueError).
    ModelFileError
        If the file is truncated, damaged, or not a fastnn model.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileNotFoundError(2, f"no fastnn model file at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if str(archive["format"]) != FORMAT:
                raise ModelFileError(f"{path!r} is not a fastnn model (format {archive['format']})")
            if int(archive["version"]) > VERSION:
                raise ModelFileError(f"{path!r} was written by a newer fastnn (format version "
                                     f"{int(archive['version'])}); upgrade fastnn to read it")
            config = json.loads(str(archive["config"]))
            params = archive["params"]
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, TypeError) as error:
        raise ModelFileError(f"{path!r} is not a readable fastnn model file (truncated or "
                             f"damaged?): {error}") from None
    try:
        net = network.MLP.from_config(config)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ModelFileError(f"{path!r} holds an invalid fastnn architecture: {error}") from None
    if params.dtype != net.dtype or params.shape != net.params.shape:
        raise ModelFileError(f"{path!r} holds {params.shape} parameters of {params.dtype}; its "
                             f"architecture needs {net.params.shape} of {net.dtype}")
    net.params[:] = params
    return net
