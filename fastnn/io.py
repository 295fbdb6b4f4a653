"""Saving and loading networks.

A model file is a NumPy ``.npz`` archive (no pickles) holding a format tag, the architecture as
JSON, the flat parameter and buffer vectors in the network's dtype and the dropout generator's
state, so a round trip is exact. Files of fastnn 0.1 (format version 1: no buffers) still load.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from fastnn import network

__all__ = ["save", "load", "ModelFileError"]

FORMAT = "fastnn.MLP"
VERSION = 2


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
        raise ModelFileNotFoundError(
            2, f"cannot save the model: the folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(21, f"cannot save the model: {path!r} is a folder")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".fastnn-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, format=np.array(FORMAT), version=np.array(VERSION),
                     config=np.array(json.dumps(net.config())), params=net.params,
                     buffers=net.buffers,
                     random_state=np.array(net.random_state, dtype=np.uint64))
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
            version = int(archive["version"])
            buffers = archive["buffers"] if version >= 2 else None
            random_state = archive["random_state"] if version >= 2 else None
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
    if buffers is not None:
        if buffers.dtype != net.dtype or buffers.shape != net.buffers.shape:
            raise ModelFileError(f"{path!r} holds {buffers.shape} buffers of {buffers.dtype}; its "
                                 f"architecture needs {net.buffers.shape} of {net.dtype}")
        if random_state.dtype != np.uint64 or random_state.shape != (2,):
            raise ModelFileError(f"{path!r} holds a damaged random state")
        net.buffers[:] = buffers
        net.random_state = tuple(int(v) for v in random_state)
    return net
