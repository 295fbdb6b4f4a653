"""Training checkpoints: what `fastnn.training.fit` writes every few epochs so that a run that
was stopped (killed, interrupted, out of time) goes on from its last checkpoint and ends with the
weights, bit for bit, of a run that was never stopped.

A checkpoint is an ``.npz`` archive, written atomically as model files are (`fastnn.io.save`: a
killed write leaves the previous checkpoint whole), of these members:

- ``format`` ("fastnn.checkpoint") and ``version`` (1);
- the network as a model file holds it: ``config``, ``params``, ``buffers`` and
  ``random_state`` (the dropout generator's key and counter);
- ``state``, JSON: the epochs done, the settings a resumed run must share (batch size,
  shuffling, seed, clipping, the optimizer's and the schedule's settings) and fingerprints of
  the training and validation data, the seed of the validation split, the shuffling generator's
  ``bit_generator.state``, the `fastnn.History` so far, the optimizer's learning rate and step,
  the schedule's ``state_dict`` and the callbacks' states;
- ``optimizer.NAME``: the optimizer's state vectors, by ``torch.optim``'s names;
- ``callbackK.NAME``: the arrays of the K-th callback's state (the best epoch's weights that
  `fastnn.callbacks.EarlyStopping` restores).

A checkpoint may come from anywhere: `read` trusts it no more than `fastnn.load` trusts a model
file. Nothing in it is executed (no pickle); every member's kind and size is checked before it
is read, the network against the one being trained; the JSON is read strictly (no key twice, no
NaN) and every value is checked; anything wrong is a `fastnn.ModelFileError`.
"""
import errno
import json
import os
import re
import zipfile

import numpy as np

from fastnn import _schema, io, registry

__all__ = ["FORMAT", "VERSION", "write", "read"]

FORMAT = "fastnn.checkpoint"
VERSION = 1
MAX_STATE_BYTES = 2 ** 26  # the JSON state: a history of about a million epochs
# The names of a callback's arrays: safe as the names of archive members.
ARRAY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# The numbers of a PCG64 state (its state and increment are 128-bit).
PCG64_LIMIT = 2 ** 128
# The entries of the state document, and those of its history.
STATE_KEYS = ("epoch", "settings", "data", "split_seed", "shuffle_rng", "history", "optimizer",
              "schedule", "callbacks")
HISTORY_KEYS = ("loss", "val_loss", "val_accuracy", "lr", "best_epoch", "stopped_early")


def write(path, net, state, optimizer_state, callback_states):
    """Write a checkpoint to ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
    net : fastnn.MLP
    state : dict
        The JSON-ready entries of the state document but ``callbacks`` (see the module's
        docstring), from `fastnn.training.fit`.
    optimizer_state : dict
        The optimizer's ``state_dict()``.
    callback_states : list of (str, dict)
        Each stateful callback's class name and ``state_dict()``.
    """
    network = net.state_dict()
    contents = {"format": np.array(FORMAT), "version": np.array(VERSION),
                "config": np.array(json.dumps(net.config())), "params": network["params"],
                "buffers": network["buffers"],
                "random_state": np.array(network["random_state"], dtype=np.uint64)}
    vectors = {k: v for k, v in optimizer_state.items() if k not in ("lr", "step")}
    for name, vector in vectors.items():
        contents[f"optimizer.{name}"] = vector
    callbacks = []
    for k, (name, callback_state) in enumerate(callback_states):
        values, arrays = _split_arrays(name, callback_state)
        for key, array in arrays.items():
            contents[f"callback{k}.{key}"] = array
        callbacks.append({"name": name, "state": values, "arrays": sorted(arrays)})
    document = {**state, "optimizer": {"lr": optimizer_state["lr"],
                                       "step": optimizer_state.get("step")},
                "callbacks": callbacks}
    # an infinity (a schedule's best loss before its first step) is written as JSON's
    # extension, which `read` accepts; a NaN is not
    _refuse_nan(document, "the state")
    contents["state"] = np.array(json.dumps(document, allow_nan=True))
    io.write_atomically(path, lambda f: np.savez(f, **contents), "save the checkpoint")


def _refuse_nan(value, where):
    """Raise if ``value`` (JSON-ready data) holds a NaN."""
    if isinstance(value, float) and value != value:
        raise ValueError(f"cannot write the checkpoint: {where} is NaN")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_nan(item, f"{where}.{key}")
    elif isinstance(value, list):
        for k, item in enumerate(value):
            _refuse_nan(item, f"{where}[{k}]")


def _split_arrays(name, state):
    """A callback's ``state_dict()`` as its JSON values and its arrays, each checked."""
    if not isinstance(state, dict):
        raise TypeError(f"{name}.state_dict() must return a dict, got {type(state).__name__}")
    values, arrays = {}, {}
    for key, value in state.items():
        if not isinstance(key, str) or not ARRAY_NAME.fullmatch(key):
            raise ValueError(f"{name}.state_dict() has the key {key!r}; a checkpoint keeps keys "
                             f"of letters, digits and underscores")
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biuf":
                raise TypeError(f"{name}.state_dict()[{key!r}] is an array of {value.dtype}; a "
                                f"checkpoint keeps arrays of numbers")
            arrays[key] = value
        else:
            values[key] = _json_value(value, f"{name}.state_dict()[{key!r}]")
    return values, arrays


def _json_value(value, where):
    """``value`` as JSON holds it (NumPy scalars as Python numbers), or a TypeError."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item, f"{where}[{k}]") for k, item in enumerate(value)]
    raise TypeError(f"{where} is a {type(value).__name__}; a checkpoint keeps None, booleans, "
                    f"numbers, strings, lists of them and NumPy arrays")


# ---- reading -----------------------------------------------------------------------------------


def read(path, net, optimizer):
    """Read the checkpoint at ``path`` of a run that trains ``net`` with ``optimizer``.

    Parameters
    ----------
    path : str or os.PathLike
    net : fastnn.MLP
        The network being trained: the checkpoint's must have its config.
    optimizer : fastnn.Optimizer
        Its state vectors are read as the optimizer's kind names them.

    Returns
    -------
    dict
        The state document (see the module's docstring), every value checked, with
        ``network`` (a `fastnn.MLP.state_dict`), ``optimizer`` (the optimizer's
        ``state_dict()``) and ``callbacks`` as a list of (name, ``state_dict()``).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path`` (it is also a ValueError).
    ModelFileError
        If the file is not a readable checkpoint, or is of another network.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise io.ModelFileNotFoundError(errno.ENOENT, f"no fastnn checkpoint at {path!r}")
    try:
        with zipfile.ZipFile(path) as archive:
            return _read(archive, net, optimizer)
    except io.ModelFileError as error:
        raise io.ModelFileError(f"cannot resume from {path!r}: {error}") from None
    # as for model files: whatever a damaged or hostile file makes fail, it is the file's fault
    except Exception as error:
        raise io.ModelFileError(f"cannot resume from {path!r}: it is not a readable fastnn "
                                f"checkpoint (damaged or truncated?): {type(error).__name__}: "
                                f"{io._brief(str(error))}") from None


def _read(archive, net, optimizer):
    """`read`'s work on the open ``archive``: each member checked, then read."""
    names = [info.filename for info in archive.infolist()]
    if len(set(names)) != len(names) or not all(name.endswith(".npy") for name in names):
        raise io.ModelFileError(f"it holds {io._brief(sorted(names))}, not the members of a "
                                f"checkpoint")
    members = {name.removesuffix(".npy") for name in names}
    if not {"format", "version"} <= members:
        raise io.ModelFileError(f"it is not a fastnn checkpoint (it holds "
                                f"{io._brief(sorted(names))})")
    tag = io._read_scalar(archive, "format", "U", io.MAX_SCALAR_BYTES)
    if tag == io.FORMAT:
        raise io.ModelFileError("it is a model file, not a checkpoint: a checkpoint is what "
                                "fit(checkpoint=...) or fastnn train --checkpoint writes")
    if tag != FORMAT:
        raise io.ModelFileError(f"it is not a fastnn checkpoint (format {io._brief(repr(tag))})")
    version = int(io._read_scalar(archive, "version", "iu", io.MAX_SCALAR_BYTES))
    if version != VERSION:
        raise io.ModelFileError(f"it is of checkpoint version {version}; this fastnn reads version "
                                f"{VERSION}" + (" (upgrade fastnn)" if version > VERSION else ""))
    config = json.loads(io._read_scalar(archive, "config", "U", io.MAX_CONFIG_BYTES),
                        object_pairs_hook=io._unique_keys)
    if config != json.loads(json.dumps(net.config())):
        raise io.ModelFileError("it is of another network (its architecture, loss, penalty or "
                                "dtype differ from those of the network being trained)")
    document = json.loads(io._read_scalar(archive, "state", "U", MAX_STATE_BYTES),
                          object_pairs_hook=io._unique_keys, parse_constant=_infinity)
    try:
        state = _check_state(document)
    except ValueError as error:
        raise io.ModelFileError(str(error)) from None
    dtype, n_params = net.dtype, net.params.size
    vector_names = (registry.OPTIMIZERS[optimizer._kind].state
                    if state["optimizer"]["step"] is not None else ())
    expected = {"format", "version", "config", "params", "buffers", "random_state", "state",
                *(f"optimizer.{name}" for name in vector_names),
                *(f"callback{k}.{key}" for k, entry in enumerate(state["callbacks"])
                  for key in entry["arrays"])}
    if members != expected:
        raise io.ModelFileError(f"its members {io._brief(sorted(members))} are not those its state "
                                f"announces, {io._brief(sorted(expected))}")
    state["network"] = {
        "params": io._read_vector(archive, "params", dtype, n_params),
        "buffers": io._read_vector(archive, "buffers", dtype, net.buffers.size),
        "random_state": tuple(int(v) for v in io._read_vector(
            archive, "random_state", np.dtype(np.uint64), 2))}
    optimizer_state = dict(state["optimizer"])
    if optimizer_state["step"] is None:
        del optimizer_state["step"]
    for name in vector_names:
        optimizer_state[name] = io._read_vector(archive, f"optimizer.{name}", dtype, n_params)
    state["optimizer"] = optimizer_state
    callbacks = []
    for k, entry in enumerate(state["callbacks"]):
        callback_state = dict(entry["state"])
        for key in entry["arrays"]:
            callback_state[key] = io._read_array(
                archive, f"callback{k}.{key}", lambda d, shape: d.kind in "biuf",
                io.MAX_VALUES * 8, "an array of numbers")
        callbacks.append((entry["name"], callback_state))
    state["callbacks"] = callbacks
    return state


def _infinity(name):
    """JSON's extension constants: infinities are read (a schedule's best loss may be one), NaN
    is refused."""
    if name == "NaN":
        raise io.ModelFileError("its state holds NaN")
    return float(name)


def _check_state(document):
    """The state document, every value checked for its type and range."""
    where = "its state"
    _schema.fields(document, where, STATE_KEYS)
    epoch = _schema.integer(document["epoch"], f"{where}.epoch")
    _object(document["settings"], f"{where}.settings")  # compared by the caller
    data = _schema.fields(document["data"], f"{where}.data", ("train", "validation"))
    _hex(data["train"], f"{where}.data.train")
    if data["validation"] is not None:
        _hex(data["validation"], f"{where}.data.validation")
    if document["split_seed"] is not None:
        _schema.integer(document["split_seed"], f"{where}.split_seed")
    _check_generator(document["shuffle_rng"], f"{where}.shuffle_rng")
    _check_history(document["history"], epoch, f"{where}.history")
    entry = _schema.fields(document["optimizer"], f"{where}.optimizer", ("lr", "step"))
    _schema.real(entry["lr"], f"{where}.optimizer.lr", low=0)
    if entry["step"] is not None:
        _schema.integer(entry["step"], f"{where}.optimizer.step")
    if document["schedule"] is not None:
        # its entries are checked by the schedule's load_state_dict
        _object(document["schedule"], f"{where}.schedule")
    callbacks = _schema.items(document["callbacks"], f"{where}.callbacks", _check_callback)
    return {**document, "callbacks": callbacks}


def _object(value, where):
    """``value`` if it is a JSON object (its entries checked by whoever reads them)."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} is not a JSON object but {type(value).__name__}")
    return value


def _hex(value, where):
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{32}", value):
        raise ValueError(f"{where} is {_schema.brief(value)}, not a fingerprint")


def _check_generator(value, where):
    """A PCG64 ``bit_generator.state``."""
    _schema.fields(value, where, ("bit_generator", "state", "has_uint32", "uinteger"))
    _schema.text(value["bit_generator"], f"{where}.bit_generator", ("PCG64",))
    inner = _schema.fields(value["state"], f"{where}.state", ("state", "inc"))
    for key in ("state", "inc"):
        if _schema.integer(inner[key], f"{where}.state.{key}") >= PCG64_LIMIT:
            raise ValueError(f"{where}.state.{key} is not a 128-bit number")
    if _schema.integer(value["has_uint32"], f"{where}.has_uint32") > 1:
        raise ValueError(f"{where}.has_uint32 is not 0 or 1")
    if _schema.integer(value["uinteger"], f"{where}.uinteger") >= 2 ** 32:
        raise ValueError(f"{where}.uinteger is not a 32-bit number")


def _check_history(value, epochs, where):
    """A History of ``epochs`` epochs, as `fastnn.training` writes it."""
    _schema.fields(value, where, HISTORY_KEYS)
    if len(_schema.items(value["loss"], f"{where}.loss", _schema.real)) != epochs:
        raise ValueError(f"{where}.loss does not hold one loss per epoch done ({epochs})")
    if len(_schema.items(value["lr"], f"{where}.lr", lambda v, at: _schema.real(v, at, low=0))) \
            != epochs:
        raise ValueError(f"{where}.lr does not hold one rate per epoch done ({epochs})")
    for key in ("val_loss", "val_accuracy"):
        if len(_schema.items(value[key], f"{where}.{key}", _schema.real)) not in (0, epochs):
            raise ValueError(f"{where}.{key} holds neither nothing nor one value per epoch")
    if value["best_epoch"] is not None and not (
            _schema.integer(value["best_epoch"], f"{where}.best_epoch") < epochs):
        raise ValueError(f"{where}.best_epoch is past the {epochs} epochs done")
    if (value["best_epoch"] is None) != (epochs == 0):
        raise ValueError(f"{where}.best_epoch is missing, or given with no epoch done")
    _schema.flag(value["stopped_early"], f"{where}.stopped_early")


def _check_callback(value, where):
    entry = _schema.fields(value, where, ("name", "state", "arrays"))
    _schema.text(entry["name"], f"{where}.name")
    _object(entry["state"], f"{where}.state")
    arrays = _schema.items(entry["arrays"], f"{where}.arrays", _schema.text)
    if len(set(arrays)) != len(arrays) or not all(map(ARRAY_NAME.fullmatch, arrays)) or (
            set(arrays) & set(entry["state"])):
        raise ValueError(f"{where}.arrays names {_schema.brief(arrays)}, not distinct names of "
                         f"letters, digits and underscores apart from its state's")
    return entry
