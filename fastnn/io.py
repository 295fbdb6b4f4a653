"""Saving and loading networks.

A model file comes in two formats, both exact round trips (parameters, buffers and the dropout
generator's state, bit for bit), chosen by the name `save` is given:

- ``*.safetensors``: a safetensors file (`fastnn.safetensors_file`), the tensors by name and the
  rest as JSON metadata, readable by any safetensors reader; it needs the ``safetensors`` extra.
- any other name: a NumPy ``.npz`` archive (no pickles, format version 2) holding a format tag,
  the architecture as JSON, the flat parameter and buffer vectors in the network's dtype and the
  dropout generator's state. Files of fastnn 0.1 (format version 1: no buffers) still load.

`load` tells the formats apart by their content, not by their names.

A model file may come from anywhere, so `load` trusts nothing in it: it reads the archive's
members itself (never through pickle), checks the architecture and the size of every member
before it reads or builds anything, and turns any failure into a `ModelFileError`.

A format-2 file may also hold a ``preprocessing`` member: JSON that `fastnn.tabular.TabularModel`
keeps beside its network (the columns, categories, scales and classes prediction needs). `load`
refuses such a file, whose network alone would take inputs the user does not have, and says how
to load it; `load_with_preprocessing` reads both parts.
"""
import errno
import json
import math
import os
import reprlib
import stat
import tempfile
import zipfile

import numpy as np

from fastnn import layers, network, registry, safetensors_file
from fastnn._checks import all_finite
from fastnn._files import publish
from fastnn._validation import MAX_WIDTH, check_allocation

__all__ = ["save", "load", "load_with_preprocessing", "write_atomically", "is_safetensors",
           "ModelFileError"]

FORMAT = "fastnn.MLP"
VERSION = 2

# The members of each format version, without their ".npy".
MEMBERS = {1: {"format", "version", "config", "params"},
           2: {"format", "version", "config", "params", "buffers", "random_state"}}
# The members a file of each format version may hold besides those.
OPTIONAL_MEMBERS = {1: set(), 2: {"preprocessing"}}

# The keys of the JSON config: (required, optional), by format version.
CONFIG_KEYS = {
    1: ({"sizes", "activation", "output_activation", "loss", "l2", "dtype"},
        {"loss_scale", "l2_per_sample"}),
    2: ({"n_in", "layers", "loss", "l2", "dtype"},
        {"activation", "loss_scale", "l2_per_sample", "options", "loss_options"}),
}

# Limits on what a file may ask `load` to build: far beyond any network this CPU library
# trains, and small enough that a lying file cannot make it allocate without bound.
MAX_VALUES = 2 ** 31        # parameters, buffer values and units of one layer
MAX_LAYERS = 4096
MAX_CONFIG_BYTES = 2 ** 20  # the JSON config
MAX_PREPROCESSING_BYTES = 2 ** 26  # the JSON preprocessing: up to a million short categories
MAX_SCALAR_BYTES = 1024     # the format tag and the version
MAX_HEADER_BYTES = 2 ** 16  # a .npy header (numpy itself reads at most 10000 bytes of one)
# A network's memory beyond its parameters and buffers is its workspace, a few values per unit
# of each layer and row. A network of real use has no more units than parameters, a few times
# over at most; a file whose layers hold far more units than it holds values would make `load`
# allocate out of all proportion to it.
UNITS_PER_VALUE = 16
MIN_UNITS = 2 ** 22

# Shortens the values of a file quoted in an error message.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 100

# Errors of os.open(folder, O_TMPFILE) where the kernel or the file system lacks O_TMPFILE.
NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT}


class ModelFileError(ValueError):
    """A file that is not a readable fastnn model: truncated, damaged, of another kind, or asking
    for more than `load` allows."""


class ModelFileNotFoundError(FileNotFoundError, ValueError):
    """A model file, or the folder to save one into, that does not exist."""


# ---- saving ------------------------------------------------------------------------------------


def save(net, path, preprocessing=None):
    """Write ``net`` to ``path``, atomically: an existing file there is replaced only once the
    new one is complete, so a failed or killed save never leaves a damaged model behind.

    The file gets the mode of the regular file it replaces, or that of any newly created file
    (0666 less the umask). A symbolic link at ``path`` is followed: the file it points to is
    replaced and the link kept.

    Parameters
    ----------
    net : fastnn.MLP
    path : str or os.PathLike
        The file to write (its name is used as given; no suffix is added). A name ending in
        ``.safetensors`` (any case) is written as a safetensors file, any other as an ``.npz``
        archive (see the module's docstring).
    preprocessing : dict, optional
        JSON-ready data to store beside the network (finite numbers only): what
        `fastnn.tabular.TabularModel` saves. `load` refuses a file that holds it.

    Raises
    ------
    ValueError
        If ``path`` is empty, or the network's parameters or buffers are not all finite
        (`load` refuses such a file).
    IsADirectoryError
        If ``path`` is a folder or ends with a path separator.
    FileExistsError
        If something other than a regular file or a folder is at ``path`` (a FIFO, a device, a
        socket): only regular files are replaced.
    FileNotFoundError
        If the folder to write into does not exist (it is also a ValueError).
    """
    if not isinstance(net, network.MLP):
        raise TypeError(f"save takes a fastnn.MLP, got {type(net).__name__}")
    target, mode = _destination(path)
    config, params, buffers, random_state = _snapshot(net)
    if not (all_finite(params) and all_finite(buffers)):
        raise ValueError("cannot save the model: its parameters or buffers hold NaN or infinity "
                         "(a model file holds finite numbers only)")
    if is_safetensors(path):
        data = safetensors_file.encode(net, config, params, buffers, random_state,
                                       preprocessing)
        _replace(target, mode, lambda f: f.write(data))
        return
    contents = {"format": np.array(FORMAT), "version": np.array(VERSION),
                "config": np.array(json.dumps(config)), "params": params, "buffers": buffers,
                "random_state": np.array(random_state, dtype=np.uint64)}
    if preprocessing is not None:
        contents["preprocessing"] = np.array(json.dumps(preprocessing, allow_nan=False))
    _replace(target, mode, lambda f: np.savez(f, **contents))


def is_safetensors(path):
    """Whether `save` writes ``path`` as a safetensors file: its name ends in .safetensors."""
    return os.fsdecode(os.fspath(path)).lower().endswith(safetensors_file.SUFFIX)


def write_atomically(path, write, what="save the model"):
    """Write a file at ``path`` as `save` does, atomically and with its mode: ``write(f)``
    writes the content into the binary file object ``f``.

    Parameters
    ----------
    path : str or os.PathLike
    write : callable
        Takes a binary file open for writing.
    what : str, default "save the model"
        What is being done, for the messages of errors about ``path``.

    Raises
    ------
    ValueError, IsADirectoryError, FileExistsError, FileNotFoundError
        As `save`.
    """
    target, mode = _destination(path, what)
    _replace(target, mode, write)


def _replace(target, mode, write):
    """Write ``target`` anew with mode ``mode`` through ``write(f)``, atomically."""
    folder = os.path.dirname(target)
    if not _replace_with_anonymous_file(folder, target, mode, write):
        temporary = _write_named_temporary(folder, mode, write)
        try:
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
    # the rename itself survives a power loss only once the folder is synced
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _snapshot(net):
    """``net``'s config, parameters, buffers and random state, copied at one moment so the file
    is consistent even if the network changes while it is written."""
    state = net.state_dict()   # taken under the engine's lock: never half an update
    return net.config(), state["params"], state["buffers"], state["random_state"]


def _destination(path, what="save the model"):
    """The file that saving to ``path`` replaces (symbolic links resolved) and the mode to give
    the new file; checked before anything is written."""
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise ValueError(f"cannot {what}: the path is empty")
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise IsADirectoryError(
            errno.EISDIR, f"cannot {what}: {path!r} names a folder (it ends with a "
                          f"path separator)")
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise ModelFileNotFoundError(
            errno.ENOENT, f"cannot {what}: the folder {folder!r} does not exist")
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        return target, 0o666 & ~_umask()
    if stat.S_ISDIR(existing.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"cannot {what}: {path!r} is a folder")
    if not stat.S_ISREG(existing.st_mode):
        raise FileExistsError(
            errno.EEXIST, f"cannot {what}: {path!r} is {_kind(existing.st_mode)}, not a "
                          f"regular file; fastnn replaces only regular files")
    return target, stat.S_IMODE(existing.st_mode)


def _kind(mode):
    """What a file of st_mode ``mode`` that is neither regular nor a folder is, in words."""
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def _umask():
    """The process's umask, read without changing it where the system tells it (Linux >= 4.7):
    setting it to read it back would race with other threads creating files."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _replace_with_anonymous_file(folder, target, mode, write):
    """Write the data into an anonymous file (O_TMPFILE) in ``folder`` and, once complete and
    synced, publish it as ``target`` (`fastnn._files.publish`): a save killed before then
    leaves nothing behind. False, having written nothing, where the system cannot (no
    O_TMPFILE, or no /proc to link such a file through).
    """
    O_TMPFILE = getattr(os, "O_TMPFILE", None)
    if O_TMPFILE is None:
        return False
    try:
        handle = os.open(folder, O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno not in NO_TMPFILE:
            raise
        return False
    with os.fdopen(handle, "wb") as f:
        _write(f, mode, write)
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return _publish(handle, directory, folder, os.path.basename(target))
        finally:
            os.close(directory)


def _publish(handle, directory, folder, target):
    """`fastnn._files.publish` under a free hidden name; False if /proc is not mounted."""
    for _ in range(100):
        temporary = f".fastnn-{os.urandom(8).hex()}.tmp"
        step, code = publish(handle, directory, os.fsencode(temporary), os.fsencode(target))
        if step == 0:
            return True
        if step == 1 and code == errno.EEXIST:
            continue
        if step == 1 and code == errno.ENOENT and not os.path.isdir("/proc/self/fd"):
            return False
        name = os.path.join(folder, temporary if step == 1 else target)
        raise OSError(code, os.strerror(code), name)
    raise FileExistsError(errno.EEXIST, f"no free temporary file name in {folder!r}")


def _write_named_temporary(folder, mode, write):
    """Write a file of mode ``mode`` in ``folder`` through ``write(f)`` and return its name, a
    hidden temporary for the caller to rename; removed on any error."""
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".fastnn-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            _write(f, mode, write)
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def _write(f, mode, write):
    write(f)
    f.flush()
    os.fchmod(f.fileno(), mode)
    os.fsync(f.fileno())


# ---- loading -----------------------------------------------------------------------------------


def load(path):
    """Read a network written by `save`, in either format (and fastnn 0.1's files).

    The file is checked before anything is built from it: its members, their sizes, the
    architecture (within limits: at most 2**31 parameters, buffer values and units per layer,
    and 4096 layers) and that its parameters and buffers are finite. Nothing in it is executed.

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
        If the file is truncated, damaged, not a fastnn model, or asks for more than the limits;
        or if it holds a network with its preprocessing (load that with
        `fastnn.tabular.TabularModel.load`).
    ImportError
        If the file is a safetensors file and the safetensors package is not installed.
    """
    net, preprocessing = load_with_preprocessing(path)
    if preprocessing is not None:
        raise ModelFileError(
            f"cannot load {os.fspath(path)!r} as a network: it holds a network with the "
            f"preprocessing of its data (as `fastnn train DATA` saves it), which the network "
            f"alone cannot apply; load it with fastnn.tabular.TabularModel.load")
    return net


def load_with_preprocessing(path):
    """Read a network written by `save` and the preprocessing stored with it, if any.

    The file is checked as described under `load`; the preprocessing is read as JSON (at most
    64 MiB, no key twice, no NaN or infinity), its content left to the caller to check.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    net : fastnn.MLP
    preprocessing : dict, list, str, number, bool or None
        The decoded JSON, or None if the file holds none.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path`` (it is also a ValueError).
    ModelFileError
        If the file is truncated, damaged, not a fastnn model, or asks for more than the limits.
    ImportError
        If the file is a safetensors file and the safetensors package is not installed.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileNotFoundError(errno.ENOENT, f"no fastnn model file at {path!r}")
    try:
        with open(path, "rb") as f:
            if safetensors_file.looks_like(f.read(9)):
                f.seek(0)
                return safetensors_file.read(f)
            f.seek(0)
            with zipfile.ZipFile(f) as archive:
                config, params, buffers, random_state, preprocessing = _read(archive)
        net = network.MLP.from_config(config)
        net.params[:] = params
        if buffers is not None:
            net.buffers[:] = buffers
            net.random_state = tuple(int(v) for v in random_state)
    except ModelFileError as error:
        raise ModelFileError(f"cannot load {path!r}: {error}") from None
    except ImportError:
        raise   # the safetensors package, to read a safetensors file, is not installed
    # A damaged or hostile file can fail anywhere in zipfile, numpy or the network's checks, in
    # any way (NotImplementedError for an unknown compression, RecursionError for deep JSON,
    # ...): whatever it is, it is this file's fault. KeyboardInterrupt and SystemExit pass.
    except Exception as error:
        raise ModelFileError(f"cannot load {path!r}: it is not a readable fastnn model file "
                             f"(damaged or truncated?): {type(error).__name__}: "
                             f"{_brief(str(error))}") from None
    return net, preprocessing


def _brief(value):
    """``value``'s repr, or for a str the text itself, shortened: what a file holds may be a
    megabyte long."""
    if isinstance(value, str):
        return value if len(value) <= 300 else f"{value[:300]}..."
    return _REPR.repr(value)


def _read(archive):
    """The config, parameters, buffers, random state (None for format 1) and preprocessing
    (None if absent) in ``archive``, every member checked before it is read."""
    names = [info.filename for info in archive.infolist()]
    if len(set(names)) != len(names):
        raise ModelFileError("the archive holds members of the same name")
    if not {"format.npy", "version.npy"} <= set(names):
        raise ModelFileError(f"it is not a fastnn model (it holds {_brief(sorted(names))})")
    tag = _read_scalar(archive, "format", "U", MAX_SCALAR_BYTES)
    if tag != FORMAT:
        raise ModelFileError(f"it is not a fastnn model (format {_brief(repr(tag))})")
    version = int(_read_scalar(archive, "version", "iu", MAX_SCALAR_BYTES))
    if version > VERSION:
        raise ModelFileError(f"it was written by a newer fastnn (format version {version}); "
                             f"upgrade fastnn to read it")
    if version not in MEMBERS:
        raise ModelFileError(f"its format version {version} does not exist")
    members = {name.removesuffix(".npy") for name in names if name.endswith(".npy")}
    if len(members) != len(names) or not (
            MEMBERS[version] <= members <= MEMBERS[version] | OPTIONAL_MEMBERS[version]):
        optional = (f" and may hold {sorted(OPTIONAL_MEMBERS[version])}"
                    if OPTIONAL_MEMBERS[version] else "")
        raise ModelFileError(f"format {version} has the members "
                             f"{sorted(MEMBERS[version])}{optional}, not {_brief(sorted(names))}")
    config = json.loads(_read_scalar(archive, "config", "U", MAX_CONFIG_BYTES),
                        object_pairs_hook=_unique_keys)
    dtype, n_params, n_buffers = _check_config(config, version)
    # the network to be built (parameters, gradient, buffers) must fit in memory before the
    # parameters are read
    check_allocation(f"a network of {n_params:,} parameters", 2 * n_params + n_buffers,
                     dtype.itemsize)
    params = _read_vector(archive, "params", dtype, n_params)
    if version == 1:
        return config, params, None, None, None
    buffers = _read_vector(archive, "buffers", dtype, n_buffers)
    random_state = _read_vector(archive, "random_state", np.dtype(np.uint64), 2)
    preprocessing = None
    if "preprocessing" in members:
        preprocessing = json.loads(
            _read_scalar(archive, "preprocessing", "U", MAX_PREPROCESSING_BYTES),
            object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    return config, params, buffers, random_state, preprocessing


def _unique_keys(pairs):
    """A JSON object as a dict, refusing a key given twice (json would keep the last)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ModelFileError("its JSON names a key twice")
    return result


def _no_constant(name):
    """Refuse the NaN and Infinity that Python's json reads but JSON does not have."""
    raise ModelFileError(f"its preprocessing holds {name}, which JSON does not allow")


def _check_config(config, version):
    """The dtype and the numbers of parameters and buffer values of the network ``config``
    describes, computed without building it; ModelFileError unless they are within the limits.

    Only the structure needed for the count is checked here: `MLP.from_config` checks the rest
    before it allocates anything.
    """
    if not isinstance(config, dict):
        raise ModelFileError(f"its config is not a JSON object but {type(config).__name__}")
    required, optional = CONFIG_KEYS[version]
    if not required <= set(config) <= required | optional:
        raise ModelFileError(f"its config has the keys {_brief(sorted(config))}; format "
                             f"{version} needs {sorted(required)} and allows {sorted(optional)}")
    if config["dtype"] not in network.DTYPES:
        raise ModelFileError(f"its config has the dtype {_brief(repr(config['dtype']))}")
    if version == 1:
        sizes = config["sizes"]
        if not isinstance(sizes, list) or not 2 <= len(sizes) <= MAX_LAYERS:
            raise ModelFileError(f"its config needs 2 to {MAX_LAYERS} layer sizes")
        n_in, descriptions = sizes[0], [{"kind": "dense", "units": n} for n in sizes[1:]]
    else:
        n_in, descriptions = config["n_in"], config["layers"]
        if not isinstance(descriptions, list) or not 2 <= len(descriptions) <= MAX_LAYERS:
            raise ModelFileError(f"its config needs 2 to {MAX_LAYERS} layers")
        _check_shown(config)
    width = _check_width("n_in", n_in)
    n_params = n_buffers = 0
    units = width
    for k, description in enumerate(descriptions):
        try:
            layer = layers.from_config(description)
        except (ValueError, TypeError) as error:
            raise ModelFileError(f"its config's layer {k} is invalid: {type(error).__name__}: "
                                 f"{error}") from None
        if layer.kind == "dense":
            n_params += width * layer.units + (layer.units if layer.bias else 0)
            width = _check_width(f"layer {k}'s units", layer.units)
        elif layer.kind == "batch_norm":
            n_params += 2 * width if layer.affine else 0
            n_buffers += 2 * width
        units += width
    if version == 1:
        units *= 2  # each dense layer is followed by an activation
    for what, n in (("parameters", n_params), ("buffer values", n_buffers)):
        if n > MAX_VALUES:
            raise ModelFileError(f"its architecture has {n} {what}, more than {MAX_VALUES}")
    if units > max(MIN_UNITS, UNITS_PER_VALUE * (n_params + n_buffers)):
        raise ModelFileError(f"its layers hold {units} units for only {n_params + n_buffers} "
                             f"parameters and buffer values")
    return np.dtype(config["dtype"]), n_params, n_buffers


def _check_width(name, n):
    # a width is a 32-bit int for BLAS, as MLP checks it
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_WIDTH:
        raise ModelFileError(
            f"its config has {name} {_brief(n)}, not an integer in 1..{MAX_WIDTH}")
    return n


def _check_shown(config):
    """Check what a format-2 config records only to show it, and `MLP.from_config` takes as it
    is: the constructor's options (for `MLP.__repr__`) and the hidden activation; and the form of
    the loss' options, numbers or lists of numbers (their names and values are
    `MLP.from_config`'s to check)."""
    options = config.get("options")
    if options is not None:
        if not isinstance(options, dict) or not set(options) <= {"dropout", "batch_norm"}:
            raise ModelFileError(f"its config has the options {_brief(options)}")
        rate = options.get("dropout", 0.0)
        if (isinstance(rate, bool) or not isinstance(rate, (int, float))
                or not 0 <= rate < 1 or options.get("batch_norm", True) is not True):
            raise ModelFileError(f"its config has the options {_brief(options)}")
    loss_options = config.get("loss_options")
    if loss_options is not None and not (isinstance(loss_options, dict) and all(
            _is_number(v) or (isinstance(v, list) and all(map(_is_number, v)))
            for v in loss_options.values())):
        raise ModelFileError(f"its config has the loss options {_brief(loss_options)}")
    activation = config.get("activation")
    if activation is not None and activation not in registry.hidden_activations():
        raise ModelFileError(f"its config has the hidden activation {_brief(repr(activation))}")


def _is_number(value):
    """Whether a JSON value is a number (JSON's true and false are Python bools, not numbers)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_scalar(archive, name, kinds, max_bytes):
    """The one value of member ``name``, of a dtype of one of ``kinds`` (e.g. "U"), at most
    ``max_bytes`` long."""
    array = _read_array(archive, name, lambda dtype, shape: dtype.kind in kinds and shape == (),
                        max_bytes, f"one value of kind {kinds!r}")
    return array[()].item()


def _read_vector(archive, name, dtype, n):
    """Member ``name``, which must be ``n`` values of ``dtype``, all finite if floating."""
    vector = _read_array(archive, name, lambda d, shape: d == dtype and shape == (n,),
                         n * dtype.itemsize, f"{n} values of {dtype.name}")
    if dtype.kind == "f" and not all_finite(vector):
        raise ModelFileError(f"its {name} hold NaN or infinity")
    return vector


def _read_array(archive, name, accepts, max_bytes, wanted):
    """Member ``name``.npy as a read-only array, read only once its .npy header has been
    ``accepts(dtype, shape)`` and its size checked: never more than ``max_bytes`` of data, and
    never a Python object (no pickle is ever loaded)."""
    info = archive.getinfo(f"{name}.npy")
    # fastnn writes its members stored, as numpy.savez does: a compressed one could inflate to
    # far more than the file's size before its data were checked
    if info.compress_type != zipfile.ZIP_STORED:
        raise ModelFileError(f"its member {name} is compressed; fastnn model files store their "
                             f"members uncompressed")
    if info.file_size > MAX_HEADER_BYTES + max_bytes:
        raise ModelFileError(f"its member {name} is {info.file_size} bytes long, more than "
                             f"{wanted} take")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ModelFileError(f"its member {name} is of .npy version {version}")
        if dtype.hasobject:
            raise ModelFileError(f"its member {name} holds Python objects, which fastnn never "
                                 f"loads (unpickling can run any code)")
        if not accepts(dtype, shape):
            raise ModelFileError(f"its {name} are {shape} values of {dtype}, not {wanted}")
        # shape and fortran order aside, a 0-d or 1-d array is its values in order
        size = math.prod(shape) * dtype.itemsize
        if info.file_size != f.tell() + size:
            raise ModelFileError(f"its member {name} is {info.file_size} bytes long; its header "
                                 f"announces {f.tell() + size}")
        data = f.read(size)
    if len(data) != size:
        raise ModelFileError(f"its member {name} is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape)
