"""Model files in the safetensors format: the network's tensors by name, and everything else as
JSON in the header's metadata, readable by any safetensors reader.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON header (each
tensor's dtype, shape and ``data_offsets``, and a ``__metadata__`` object of strings), then the
tensors' bytes. fastnn writes one tensor per named parameter and buffer, in the network's dtype,
by the names of `fastnn.MLP.named_parameters` and `named_buffers`: ``"0.W"`` of shape
(n_in, n_out) (torch's ``weight`` transposed), ``"0.b"``, ``"1.gamma"``, ``"1.running_mean"``...
The metadata:

- ``format``: "fastnn.MLP"; ``version``: "1", the version of this layout;
- ``fastnn_version``: the fastnn that wrote the file (for people; not checked);
- ``config``: `fastnn.MLP.config` as JSON: the layers, dtype, loss, loss options, L2 penalty and
  the objective's scaling (what training needs to go on as before);
- ``random_state``: the dropout generator's ``[key, counter]`` as JSON;
- ``preprocessing``: only in a `fastnn.tabular.TabularModel`'s file: its columns, target,
  settings and metrics, as JSON.

Design
------
The `safetensors` package (the ``safetensors`` extra) writes the bytes and reads the tensors.
A file may come from anywhere, so `read` checks its header first, itself: the header length
against the file's, the JSON (no key twice), the metadata, the architecture within the limits of
`fastnn.io`, and the tensor table against that architecture: every name and shape it needs and
no other, the dtype its config names, the offsets contiguous from 0 without overlap or hole and
ending where the file ends. Only then are the tensors' bytes read and the network built, so
nothing is allocated beyond what the file's own size accounts for, and nothing in it runs.
"""
import json
import math
import os

import numpy as np

from fastnn import _schema, io, network
from fastnn._checks import all_finite
from fastnn._extras import require
from fastnn._validation import check_allocation
from fastnn._version import __version__

__all__ = ["encode", "read", "looks_like", "FORMAT", "VERSION", "SUFFIX"]

FORMAT = "fastnn.MLP"
VERSION = 1
SUFFIX = ".safetensors"
# The safetensors dtype of each network dtype.
DTYPES = {"float32": "F32", "float64": "F64"}
# The metadata's keys: (required, optional).
METADATA_KEYS = ({"format", "version", "fastnn_version", "config", "random_state"},
                 {"preprocessing"})
# The header holds the JSON config and preprocessing (at their limits in fastnn.io) and the
# tensor table, a line per parameter or buffer of at most 4096 layers.
MAX_TABLE_BYTES = 2 ** 22
MAX_FASTNN_VERSION_BYTES = 100


def looks_like(prefix):
    """Whether a file that starts with the bytes ``prefix`` (its first 9, or all of a shorter
    one) is laid out as a safetensors file: a header length, then a JSON object."""
    return len(prefix) == 9 and prefix[8:9] == b"{"


def encode(net, config, params, buffers, random_state, preprocessing=None):
    """The bytes of the safetensors file of a network.

    Parameters
    ----------
    net : fastnn.MLP
        The network, for the names of its tensors.
    config : dict
        ``net.config()``.
    params, buffers : ndarray
        Copies of its flat vectors, taken with ``random_state`` at one moment
        (`fastnn.MLP.state_dict`).
    random_state : tuple of int
        The dropout generator's (key, counter).
    preprocessing : dict, optional
        JSON-ready data to keep beside the network (finite numbers only).

    Returns
    -------
    bytes
    """
    safetensors_numpy = _package("writing a .safetensors model file")
    tensors = {**network._views(params, net._param_slices),
               **network._views(buffers, net._buffer_slices)}
    metadata = {"format": FORMAT, "version": str(VERSION), "fastnn_version": __version__,
                "config": json.dumps(config), "random_state": json.dumps(list(random_state))}
    if preprocessing is not None:
        metadata["preprocessing"] = json.dumps(preprocessing, allow_nan=False)
    return safetensors_numpy.save({name: np.ascontiguousarray(tensor)
                                   for name, tensor in tensors.items()}, metadata=metadata)


def read(f):
    """The network and the preprocessing (None if absent) in the safetensors file open as ``f``,
    every part checked before it is read (see the module's design).

    Parameters
    ----------
    f : binary file
        Open at its start.

    Returns
    -------
    net : fastnn.MLP
    preprocessing : dict, list, str, number, bool or None

    Raises
    ------
    fastnn.ModelFileError
        If the file is not a sound fastnn safetensors file.
    ImportError
        If the safetensors package is not installed.
    """
    safetensors_numpy = _package("reading a .safetensors model file")
    size = os.fstat(f.fileno()).st_size
    prefix = f.read(8)
    if len(prefix) != 8:
        raise io.ModelFileError("it is too short for a safetensors file")
    n = int.from_bytes(prefix, "little")
    limit = io.MAX_CONFIG_BYTES + io.MAX_PREPROCESSING_BYTES + MAX_TABLE_BYTES
    if n > limit:
        raise io.ModelFileError(f"its safetensors header would be {n} bytes long, more than a "
                                f"fastnn model's ({limit})")
    if 8 + n > size:
        raise io.ModelFileError(f"its safetensors header would be {n} bytes long, beyond the "
                                f"end of the file ({size} bytes)")
    header = f.read(n)
    if len(header) != n:
        raise io.ModelFileError("it is truncated within its safetensors header")
    try:
        table = json.loads(header.decode("utf-8"), object_pairs_hook=io._unique_keys)
    except (UnicodeDecodeError, ValueError) as error:
        raise io.ModelFileError(f"its safetensors header is not JSON: {error}") from None
    if not isinstance(table, dict) or not isinstance(table.get("__metadata__"), dict):
        raise io.ModelFileError("its safetensors header has no __metadata__ object: it is not "
                                "a fastnn model")
    config, random_state, preprocessing = _read_metadata(table.pop("__metadata__"))
    dtype, n_params, n_buffers = io._check_config(config, 2)
    check_allocation(f"a network of {n_params:,} parameters", 2 * n_params + n_buffers,
                     dtype.itemsize)
    n_data = (n_params + n_buffers) * dtype.itemsize
    if size != 8 + n + n_data:
        raise io.ModelFileError(f"it is {size} bytes long; its header and the "
                                f"{n_params + n_buffers} values of {dtype.name} of its "
                                f"architecture take {8 + n + n_data}")
    net = network.MLP.from_config(config)
    shapes = {name: list(view.shape) for views in (net.named_parameters(), net.named_buffers())
              for name, view in views.items()}
    _check_table(table, shapes, DTYPES[dtype.name], dtype.itemsize, n_data)
    data = f.read(n_data)
    if len(data) != n_data or f.read(1):
        raise io.ModelFileError("it changed while it was read")
    tensors = safetensors_numpy.load(prefix + header + data)
    for views in (net.named_parameters(), net.named_buffers()):
        for name, view in views.items():
            tensor = tensors[name]
            if tensor.dtype != dtype or tensor.shape != view.shape:
                raise io.ModelFileError(f"its tensor {name!r} reads as {tensor.shape} values of "
                                        f"{tensor.dtype}, not {view.shape} of {dtype}")
            if not all_finite(tensor.ravel()):
                raise io.ModelFileError(f"its tensor {name!r} holds NaN or infinity")
            view[...] = tensor
    net.random_state = random_state
    return net, preprocessing


def _package(purpose):
    """safetensors.numpy, or the ImportError that says how to install it."""
    require("safetensors", purpose)
    from safetensors import numpy as safetensors_numpy
    return safetensors_numpy


def _read_metadata(metadata):
    """The config, the generator's state and the preprocessing (or None) in the header's
    ``__metadata__``, each checked as JSON of its kind and size."""
    required, optional = METADATA_KEYS
    if not required <= set(metadata) <= required | optional:
        raise io.ModelFileError(f"its safetensors metadata has the keys "
                                f"{io._brief(sorted(metadata))}, not a fastnn model's "
                                f"({sorted(required)}, and optionally {sorted(optional)})")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise io.ModelFileError(f"its safetensors metadata {key!r} is not a string")
    if metadata["format"] != FORMAT:
        raise io.ModelFileError(f"it is not a fastnn model (format "
                                f"{io._brief(repr(metadata['format']))})")
    version = metadata["version"]
    if not (version.isascii() and version.isdigit() and len(version) < 10):
        raise io.ModelFileError(f"its layout version {io._brief(repr(version))} is not a number")
    if int(version) > VERSION:
        raise io.ModelFileError(f"it was written by a newer fastnn (safetensors layout version "
                                f"{version}); upgrade fastnn to read it")
    if int(version) < 1:
        raise io.ModelFileError(f"its layout version {version} does not exist")
    limits = {"config": io.MAX_CONFIG_BYTES, "preprocessing": io.MAX_PREPROCESSING_BYTES,
              "random_state": io.MAX_SCALAR_BYTES, "fastnn_version": MAX_FASTNN_VERSION_BYTES}
    for key, limit in limits.items():
        if len(metadata.get(key, "").encode("utf-8", "surrogatepass")) > limit:
            raise io.ModelFileError(f"its metadata {key!r} is longer than {limit} bytes")
    config = json.loads(metadata["config"], object_pairs_hook=io._unique_keys)
    state = json.loads(metadata["random_state"])
    try:
        state = _schema.items(state, "random_state", _schema.integer)
    except ValueError as error:
        raise io.ModelFileError(f"its {error}") from None
    if len(state) != 2 or max(state) >= 2 ** 64:
        raise io.ModelFileError(f"its random_state is {io._brief(state)}, not two 64-bit "
                                f"unsigned integers")
    preprocessing = None
    if "preprocessing" in metadata:
        preprocessing = json.loads(metadata["preprocessing"], object_pairs_hook=io._unique_keys,
                                   parse_constant=io._no_constant)
    return config, tuple(state), preprocessing


def _check_table(table, shapes, dtype, itemsize, n_data):
    """Check the header's tensor table against the tensors ``shapes`` ({name: shape}) of
    ``dtype`` (safetensors' name) that fill the ``n_data`` bytes after the header."""
    if set(table) != set(shapes):
        missing, unknown = sorted(set(shapes) - set(table)), sorted(set(table) - set(shapes))
        raise io.ModelFileError(f"its tensors are not its architecture's: missing "
                                f"{io._brief(missing)}, unknown {io._brief(unknown)}")
    spans = []
    for name, entry in table.items():
        where = f"its tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise io.ModelFileError(f"{where} is described by {io._brief(entry)}, not by its "
                                    f"dtype, shape and data_offsets")
        if entry["dtype"] != dtype:
            raise io.ModelFileError(f"{where} is of dtype {io._brief(entry['dtype'])}; the "
                                    f"network's config says {dtype}")
        if entry["shape"] != shapes[name]:
            raise io.ModelFileError(f"{where} has the shape {io._brief(entry['shape'])}; the "
                                    f"network's config needs {shapes[name]}")
        offsets = entry["data_offsets"]
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) for v in offsets)):
            raise io.ModelFileError(f"{where} has the data_offsets {io._brief(offsets)}, not "
                                    f"two integers")
        begin, end = offsets
        length = itemsize * math.prod(shapes[name])
        if not 0 <= begin <= end <= n_data or end - begin != length:
            raise io.ModelFileError(f"{where} has the data_offsets {offsets}, not the "
                                    f"{length} bytes of its shape within the {n_data} bytes of "
                                    f"data")
        spans.append((begin, end, name))
    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin != position:
            raise io.ModelFileError(
                f"its tensor {name!r} starts at byte {begin} of the data, where "
                + ("the tensors before it overlap it" if begin < position
                   else f"{begin - position} bytes that no tensor holds precede it"))
        position = end
    if position != n_data:
        raise io.ModelFileError(f"its tensors hold {position} of its {n_data} bytes of data")
