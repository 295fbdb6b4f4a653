"""Hostile and damaged model files, and saves that must neither lose nor expose anything.

`fastnn.load` of any file that is not a sound fastnn model raises fastnn.ModelFileError, having
built nothing (MLP.from_config is never called), allocated little (tracemalloc) and executed
nothing (a pickle's marker file never appears), in bounded time: architectures that lie about
their size, zip bombs, random byte flips, lying configs, pickles, NaN, odd members.

`save` replaces only regular files, gives the file the mode a new file gets (or the mode of the
file it replaces), refuses an empty path, writes one consistent snapshot of the network, and
leaves no temporary file behind when it fails or is killed.
"""
import errno
import io as bytes_io
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

import fastnn
from fastnn import io

# ---- building model files by hand -----------------------------------------------------------


def sample_net():
    """A network with every kind of member: parameters, buffers and a random state."""
    net = fastnn.MLP([4, 6, 3], seed=0, dropout=0.25, batch_norm=True)
    net.params = np.random.default_rng(0).normal(size=net.n_params)
    net.buffers[:] = np.random.default_rng(1).uniform(0.5, 2.0, size=net.buffers.size)
    net.random_state = (12345, 67)
    return net


def npy(array, allow_pickle=False):
    """``array`` as the bytes of a .npy file."""
    buffer = bytes_io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=allow_pickle)
    return buffer.getvalue()


def good_members(net=None):
    """The members of ``net``'s model file, {name: bytes}, as `save` writes them."""
    net = sample_net() if net is None else net
    return {"format.npy": npy(np.array("fastnn.MLP")), "version.npy": npy(np.array(2)),
            "config.npy": npy(np.array(json.dumps(net.config()))), "params.npy": npy(net.params),
            "buffers.npy": npy(net.buffers),
            "random_state.npy": npy(np.array(net.random_state, dtype=np.uint64))}


def write_zip(path, entries):
    """Write a zip archive of ``entries``, each (name, data) stored as it is or (name, data,
    method, crc, file_size) with data already compressed by ``method`` and the directory saying
    whatever crc and file_size say: zipfile would refuse to write a lie or a duplicate."""
    local, central = b"", b""
    for entry in entries:
        name, data = entry[0], entry[1]
        method, crc, size = entry[2:] if len(entry) > 2 else (0, zlib.crc32(data), len(data))
        name = name.encode()
        header = struct.pack("<HHHHHIIIHH", 20, 0, method, 0, 33, crc, len(data), size,
                             len(name), 0)
        central += (b"PK\x01\x02" + struct.pack("<H", 20) + header
                    + struct.pack("<HHHII", 0, 0, 0, 0, len(local)) + name)
        local += b"PK\x03\x04" + header + name + data
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                      len(central), len(local), 0)
    path.write_bytes(local + central + end)


def write_members(path, members):
    write_zip(path, list(members.items()))


def v2_config(n_in, layer_configs, **changes):
    config = {"n_in": n_in, "layers": layer_configs, "loss": "squared_error", "l2": 0.0,
              "dtype": "float64", "activation": "relu", "loss_scale": 1.0,
              "l2_per_sample": False, "options": None}
    config.update(changes)
    return config


def dense(units, **settings):
    return {"kind": "dense", "units": units, **settings}


RELU, IDENTITY = {"kind": "activation", "name": "relu"}, {"kind": "activation",
                                                          "name": "identity"}
SOFTMAX = {"kind": "activation", "name": "softmax"}


def with_config(config, params=None, buffers=None):
    """Good members but for the config (a dict, or JSON text as it is) and, if given, params."""
    members = good_members()
    members["config.npy"] = npy(np.array(config if isinstance(config, str) else json.dumps(config)))
    if params is not None:
        members["params.npy"] = npy(params)
    if buffers is not None:
        members["buffers.npy"] = npy(buffers)
    return members


@pytest.fixture
def builds(monkeypatch):
    """The configs `load` built a network from (MLP.from_config is recorded, not run: a test
    that sees a call fails anyway)."""
    calls = []
    monkeypatch.setattr(fastnn.MLP, "from_config", staticmethod(calls.append))
    return calls


class Hung(Exception):
    """A load that did not end: the hang guard of `refused_cheaply` went off."""


def refused_cheaply(path, match=None, max_bytes=64 * 2 ** 20, hang_seconds=60):
    """Check that loading ``path`` raises ModelFileError, with little memory and without hanging
    (a guard against a load that inflates or loops, not a measure of speed)."""

    def hung(signum, frame):
        raise Hung(f"loading {path} had not ended after {hang_seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(hang_seconds)
    tracemalloc.start()
    try:
        with pytest.raises(fastnn.ModelFileError, match=match) as error:
            fastnn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert peak < max_bytes, f"loading allocated {peak} bytes"
    assert str(path) in str(error.value)
    return error.value


# ---- architectures that lie about their size ------------------------------------------------


HUGE = {
    # 2**40 parameters (8 TiB) from a file of a few KiB
    "too many parameters": (v2_config(2 ** 20, [dense(2 ** 20), RELU, dense(1), IDENTITY]),
                            "more than 2147483648"),
    # within the limits (800 MB) but not what the params member holds
    "more parameters than the file holds": (v2_config(10 ** 4, [dense(10 ** 4), RELU, dense(1),
                                                                IDENTITY]), "params"),
    "a layer too wide": (v2_config(1, [dense(2 ** 31 + 1, bias=False), IDENTITY]),
                         "layer 0 is invalid: ValueError: units must be <= 2147483647"),
    "too many layers": (v2_config(1, [dense(1), RELU] * 3000 + [dense(1), IDENTITY]),
                        "4096 layers"),
    "too many batch norm buffers": (v2_config(2 ** 16, [dense(2 ** 16, bias=False)]
                                              + [{"kind": "batch_norm", "affine": False}] * 2000
                                              + [IDENTITY]), "2147483648"),
    "format 1 too many parameters": ({"sizes": [2 ** 30, 2 ** 30, 1], "activation": "relu",
                                      "output_activation": "identity", "loss": "squared_error",
                                      "l2": 0.0, "dtype": "float64"}, "more than"),
}


@pytest.mark.parametrize("case", list(HUGE))
def test_a_config_that_claims_a_huge_network_is_refused_before_anything_is_built(
        tmp_path, builds, case):
    config, match = HUGE[case]
    members = with_config(config)
    if "sizes" in config:
        members["version.npy"] = npy(np.array(1))
        del members["buffers.npy"], members["random_state.npy"]
    write_members(tmp_path / "huge.npz", members)
    assert (tmp_path / "huge.npz").stat().st_size < 2 ** 20
    refused_cheaply(tmp_path / "huge.npz", match)
    assert builds == []


def test_layers_with_far_more_units_than_the_file_holds_values_are_refused(tmp_path, builds):
    # a 1-input layer of 2**20 units has 2**20 weights, but 3000 activations after it would
    # each take 2**20 values of workspace per row: 25 GB for a file of 8 MB
    config = v2_config(1, [dense(2 ** 20, bias=False)] + [RELU] * 3000
                       + [dense(1, bias=False), IDENTITY])
    write_members(tmp_path / "units.npz", with_config(config, params=np.zeros(2 ** 21)))
    refused_cheaply(tmp_path / "units.npz", "units", max_bytes=2 ** 25)
    assert builds == []


def test_the_parameter_and_unit_counts_match_the_engine(tmp_path):
    # load's arithmetic is checked against the engine's own layout on varied architectures
    nets = [fastnn.MLP([3, 5, 2]), fastnn.MLP([2, 7, 7, 1], batch_norm=True, dropout=0.5),
            fastnn.MLP.from_layers(3, [fastnn.layers.Dense(4, bias=False),
                                       fastnn.layers.BatchNorm(affine=False),
                                       fastnn.layers.Activation("tanh"),
                                       fastnn.layers.Dense(2), fastnn.layers.Activation("softmax")],
                                   loss="cross_entropy")]
    for net in nets:
        assert io._check_config(net.config(), 2) == (net.dtype, net.params.size, net.buffers.size)
        net.save(tmp_path / "net.npz")
        np.testing.assert_array_equal(fastnn.load(tmp_path / "net.npz").params, net.params)


# ---- zip bombs ----------------------------------------------------------------------------------

CHUNK = 16 * 2 ** 20


def deflated(prefix, n_zeros):
    """A raw deflate stream of ``prefix`` then ``n_zeros`` zero bytes (a multiple of CHUNK),
    built without holding them: a block compressed after a full flush depends on nothing before
    it, so one chunk's block repeats."""
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)
    zeros = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = zeros.compress(bytes(CHUNK)) + zeros.flush(zlib.Z_FULL_FLUSH)
    return stream + block * (n_zeros // CHUNK) + zeros.flush()


def test_the_bomb_builder_makes_what_it_says():
    inflated = zlib.decompress(deflated(b"head", 2 * CHUNK), -15)
    assert inflated == b"head" + bytes(2 * CHUNK)


def bomb(path, name, npy_header, claimed_size=None):
    """A sound model file but for member ``name``: ``npy_header`` and 2 GiB of zeros deflated to
    2 MiB, its directory entry claiming ``claimed_size`` bytes (default: the truth)."""
    n_zeros = 2 ** 31
    entries = [(key, data) for key, data in good_members().items() if key != f"{name}.npy"]
    size = len(npy_header) + n_zeros if claimed_size is None else claimed_size
    entries.append((f"{name}.npy", deflated(npy_header, n_zeros), zipfile.ZIP_DEFLATED, 0, size))
    write_zip(path, entries)
    assert path.stat().st_size < 4 * 2 ** 20


def npy_header(dtype, shape):
    buffer = bytes_io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                 "shape": shape})
    return buffer.getvalue()


def test_a_params_member_that_inflates_to_gigabytes_is_refused_unread(tmp_path, builds):
    n = sample_net().n_params
    bomb(tmp_path / "bomb.npz", "params", npy_header("float64", (n,)))
    refused_cheaply(tmp_path / "bomb.npz", "params")
    assert builds == []


def test_a_params_member_whose_header_claims_gigabytes_is_refused_unread(tmp_path, builds):
    bomb(tmp_path / "bomb.npz", "params", npy_header("float64", (2 ** 28,)))
    refused_cheaply(tmp_path / "bomb.npz", "params")
    assert builds == []


def test_a_config_member_that_inflates_to_gigabytes_is_refused_unread(tmp_path, builds):
    bomb(tmp_path / "bomb.npz", "config", npy_header("<U1", (2 ** 29,)))
    refused_cheaply(tmp_path / "bomb.npz", "config")
    assert builds == []


def test_a_bomb_whose_directory_lies_about_its_size_inflates_no_further(tmp_path, builds):
    # the directory claims the size a sound params member has: the read stops there, and the
    # checksum, computed on what was read, does not match
    n = sample_net().n_params
    header = npy_header("float64", (n,))
    bomb(tmp_path / "bomb.npz", "params", header, claimed_size=len(header) + 8 * n)
    refused_cheaply(tmp_path / "bomb.npz")
    assert builds == []


# ---- damaged files and lying configs -----------------------------------------------------------


def loads_or_is_refused(path):
    """Load ``path``: either a network, or ModelFileError; anything else fails the test."""
    try:
        return fastnn.load(path)
    except fastnn.ModelFileError:
        return None


def test_random_byte_flips_give_a_network_or_model_file_error(tmp_path):
    good = tmp_path / "good.npz"
    sample_net().save(good)
    data = good.read_bytes()
    rng = np.random.default_rng(0)
    path = tmp_path / "flipped.npz"
    for _ in range(1000):
        damaged = bytearray(data)
        for position in rng.integers(len(data), size=rng.integers(1, 4)):
            damaged[position] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(damaged))
        net = loads_or_is_refused(path)
        assert net is None or net.sizes == (4, 6, 3)


def test_truncations_give_model_file_error(tmp_path):
    good = tmp_path / "good.npz"
    sample_net().save(good)
    data = good.read_bytes()
    path = tmp_path / "truncated.npz"
    for length in range(0, len(data), 7):
        path.write_bytes(data[:length])
        with pytest.raises(fastnn.ModelFileError):
            fastnn.load(path)


def test_an_unknown_compression_method_is_model_file_error(tmp_path):
    # zipfile would raise NotImplementedError for it: refused before, as any member not stored
    entries = [(name, data, 99, zlib.crc32(data), len(data))
               for name, data in good_members().items()]
    write_zip(tmp_path / "method.npz", entries)
    refused_cheaply(tmp_path / "method.npz", "is compressed")


LYING_CONFIGS = {
    "deeply nested JSON": ("[" * 100_000 + "]" * 100_000, "not a JSON object|Recursion"),
    "a list": ([1, 2], "not a JSON object"),
    "an unknown key": (v2_config(4, [dense(3), IDENTITY], extra=1), "keys"),
    "a missing key": ({k: v for k, v in v2_config(4, [dense(3), IDENTITY]).items()
                       if k != "loss"}, "keys"),
    "a key given twice": ('{"n_in": 4, "n_in": 5}', "twice"),
    "units of 10**5000": ('{"n_in": 4, "layers": [{"kind": "dense", "units": 1' + "0" * 5000
                          + '}], "loss": "squared_error", "l2": 0, "dtype": "float64"}',
                          "ValueError"),
    "units a float": (v2_config(4, [dense(3.0), IDENTITY]), "units"),
    "units a bool": (v2_config(4, [dense(True), IDENTITY]), "units"),
    "units negative": (v2_config(4, [dense(-3), IDENTITY]), "units"),
    "n_in a string": (v2_config("4", [dense(3), IDENTITY]), "n_in"),
    "n_in huge": (v2_config(2 ** 64, [dense(3), IDENTITY]), "n_in"),
    "layers not a list": (v2_config(4, {"kind": "dense"}), "layers"),
    "a layer not an object": (v2_config(4, [3, IDENTITY]), "layer"),
    "an unknown layer kind": (v2_config(4, [{"kind": "conv"}, IDENTITY]), "layer"),
    "an unhashable layer kind": (v2_config(4, [{"kind": ["dense"]}, IDENTITY]), "TypeError"),
    "a layer setting unknown": (v2_config(4, [dense(3, shape=[1]), IDENTITY]), "shape"),
    "dtype unknown": (v2_config(4, [dense(3), IDENTITY], dtype="float16"), "dtype"),
    "dtype a list": (v2_config(4, [dense(3), IDENTITY], dtype=["float64"]), "dtype"),
    "l2 infinite": ('{"n_in": 4, "layers": [{"kind": "dense", "units": 3}, {"kind": '
                    '"activation", "name": "identity"}], "loss": "squared_error", "l2": '
                    'Infinity, "dtype": "float64"}', "l2"),
    "loss unknown": (v2_config(4, [dense(3), IDENTITY], loss="hinge"), "loss"),
    "no output activation": (v2_config(4, [dense(3), RELU]), "activation"),
    "options not an object": (v2_config(4, [dense(3), IDENTITY], options=[1]), "options"),
    "a dropout option out of range": (v2_config(4, [dense(3), IDENTITY],
                                                options={"dropout": 7}), "options"),
    "a hidden activation unknown": (v2_config(4, [dense(3), IDENTITY], activation=[1]),
                                    "activation"),
    "loss weights not numbers": (v2_config(4, [dense(3), SOFTMAX], loss="cross_entropy",
                                           loss_options={"weight": [1, "2", 3]}), "loss options"),
    "loss weights booleans": (v2_config(4, [dense(3), SOFTMAX], loss="cross_entropy",
                                        loss_options={"weight": [True, False, True]}),
                              "loss options"),
    "loss weights nested": (v2_config(4, [dense(3), SOFTMAX], loss="cross_entropy",
                                      loss_options={"weight": [[1, 2, 3]]}), "loss options"),
    "loss weights too few": (v2_config(4, [dense(3), SOFTMAX], loss="cross_entropy",
                                       loss_options={"weight": [1, 2]}), "one weight per output"),
    "loss weights negative": (v2_config(4, [dense(3), SOFTMAX], loss="cross_entropy",
                                        loss_options={"weight": [1, -2, 3]}), ">= 0"),
    "loss weights of 10**400": (v2_config(4, [dense(3), SOFTMAX], loss="cross_entropy",
                                          loss_options={"weight": [1, 10 ** 400, 3]}),
                                "real numbers"),
    "a loss option of another output": (v2_config(4, [dense(3), SOFTMAX], loss="cross_entropy",
                                                  loss_options={"pos_weight": [1, 2, 3]}),
                                        "sigmoid"),
    "label smoothing out of range": (v2_config(4, [dense(3), SOFTMAX], loss="cross_entropy",
                                               loss_options={"label_smoothing": 2}), "<= 1"),
}


@pytest.mark.parametrize("case", list(LYING_CONFIGS))
def test_a_lying_config_is_model_file_error(tmp_path, case):
    config, match = LYING_CONFIGS[case]
    # were it true, each config would be of a network of 15 parameters and no buffer
    write_members(tmp_path / "lying.npz", with_config(config, params=np.zeros(15),
                                                      buffers=np.zeros(0)))
    refused_cheaply(tmp_path / "lying.npz", match)


@pytest.mark.parametrize("config", [
    v2_config(4, [dense(3), IDENTITY], options=list(range(50_000))),
    v2_config(4, [{"kind": "conv", "weights": list(range(50_000))}, IDENTITY]),
    {"x" * 100_000: 1},
], ids=["options", "a layer", "a key"])
def test_the_message_about_a_huge_config_is_short(tmp_path, config):
    write_members(tmp_path / "long.npz", with_config(config, params=np.zeros(15),
                                                     buffers=np.zeros(0)))
    assert len(str(refused_cheaply(tmp_path / "long.npz"))) < 1000


def replaced(name, array):
    def change(members):
        members[f"{name}.npy"] = npy(array, allow_pickle=True)
    return change


def removed(name):
    def change(members):
        del members[f"{name}.npy"]
    return change


def added(name, data):
    def change(members):
        members[name] = data
    return change


BAD_MEMBERS = {
    "an unexpected member": (added("evil.npy", npy(np.zeros(3))), "members"),
    "an unexpected file": (added("run.sh", b"rm -rf ~"), "members"),
    "no buffers": (removed("buffers"), "members"),
    "no format": (removed("format"), "not a fastnn model"),
    "format of bytes": (replaced("format", np.array(b"fastnn.MLP")), "format"),
    "format of another kind": (replaced("format", np.array("other")), "not a fastnn model"),
    "version a float": (replaced("version", np.array(2.0)), "version"),
    "version a vector": (replaced("version", np.array([2])), "version"),
    "version 0": (replaced("version", np.array(0)), "version 0"),
    "version newer": (replaced("version", np.array(3)), "newer fastnn"),
    "config of bytes": (replaced("config", np.array(b"{}")), "config"),
    "params of a matrix": (replaced("params", np.zeros((1, 63))), "params"),
    "params of float32": (replaced("params", np.zeros(63, dtype=np.float32)), "params"),
    "params big-endian": (replaced("params", np.zeros(63, dtype=">f8")), "params"),
    "params with NaN": (replaced("params", np.r_[np.zeros(62), np.nan]), "NaN"),
    "params with infinity": (replaced("params", np.r_[-np.inf, np.zeros(62)]), "NaN"),
    "buffers with NaN": (replaced("buffers", np.r_[np.zeros(11), np.nan]), "NaN"),
    "buffers with infinity": (replaced("buffers", np.r_[np.zeros(11), np.inf]), "NaN"),
    "random state of floats": (replaced("random_state", np.zeros(2)), "random_state"),
    "random state of 3": (replaced("random_state", np.zeros(3, dtype=np.uint64)),
                          "random_state"),
    "an object array": (replaced("params", np.array([{"a": 1}], dtype=object)),
                        "Python objects"),
    "a member not .npy": (added("params.npy", b"PK not an npy file"), "magic"),
}


def test_the_sample_members_are_a_sound_model(tmp_path):
    net = sample_net()
    assert (net.n_params, net.buffers.size) == (63, 12)
    write_members(tmp_path / "good.npz", good_members(net))
    loaded = fastnn.load(tmp_path / "good.npz")
    np.testing.assert_array_equal(loaded.params, net.params)
    np.testing.assert_array_equal(loaded.buffers, net.buffers)
    assert loaded.random_state == net.random_state


@pytest.mark.parametrize("case", list(BAD_MEMBERS))
def test_a_file_with_bad_members_is_model_file_error(tmp_path, case):
    change, match = BAD_MEMBERS[case]
    members = good_members()
    change(members)
    write_members(tmp_path / "bad.npz", members)
    refused_cheaply(tmp_path / "bad.npz", match)


def test_a_member_given_twice_is_model_file_error(tmp_path):
    members = good_members()
    entries = list(members.items()) + [("params.npy", npy(np.zeros(63)))]
    write_zip(tmp_path / "twice.npz", entries)
    refused_cheaply(tmp_path / "twice.npz", "same name")


# ---- the preprocessing member of a tabular model ---------------------------------------------


def with_preprocessing(data):
    """Good members and a preprocessing member holding ``data`` (an array)."""
    members = good_members()
    members["preprocessing.npy"] = npy(data, allow_pickle=True)
    return members


def test_the_preprocessing_member_is_read_as_json_and_refused_by_load(tmp_path):
    document = {"features": [{"name": "a", "categories": ["x", True, 1.5]}], "version": 1}
    write_members(tmp_path / "tabular.npz", with_preprocessing(np.array(json.dumps(document))))
    net, preprocessing = io.load_with_preprocessing(tmp_path / "tabular.npz")
    assert preprocessing == document
    np.testing.assert_array_equal(net.params, sample_net().params)
    error = refused_cheaply(tmp_path / "tabular.npz", "holds a network with the preprocessing")
    assert "fastnn.tabular.TabularModel.load" in str(error)


def test_a_plain_network_has_no_preprocessing(tmp_path):
    sample_net().save(tmp_path / "plain.npz")
    assert io.load_with_preprocessing(tmp_path / "plain.npz")[1] is None


def huge_string_header():
    """A .npy header announcing one string of 10**8 characters, and no data."""
    buffer = bytes_io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<U100000000", "fortran_order": False,
                                                  "shape": ()})
    return np.lib.format.magic(1, 0) + buffer.getvalue()


BAD_PREPROCESSING = {
    "NaN": (np.array('{"mean": NaN}'), "NaN, which JSON does not allow"),
    "Infinity": (np.array("[-Infinity]"), "-Infinity, which JSON does not allow"),
    "a key twice": (np.array('{"a": 1, "a": 2}'), "names a key twice"),
    "not JSON": (np.array("{"), "JSONDecodeError"),
    "bytes": (np.array(b"{}"), "preprocessing are"),
    "a vector of strings": (np.array(["{}", "{}"]), "preprocessing are"),
    "Python objects": (np.array([{"a": 1}], dtype=object), "Python objects"),
}


@pytest.mark.parametrize("case", list(BAD_PREPROCESSING))
def test_a_bad_preprocessing_member_is_model_file_error(tmp_path, case):
    data, match = BAD_PREPROCESSING[case]
    write_members(tmp_path / "bad.npz", with_preprocessing(data))
    with pytest.raises(fastnn.ModelFileError, match=match):
        io.load_with_preprocessing(tmp_path / "bad.npz")


def test_a_preprocessing_member_that_claims_gigabytes_is_refused_unread(tmp_path):
    members = good_members()
    members["preprocessing.npy"] = huge_string_header()
    write_members(tmp_path / "huge.npz", members)
    refused_cheaply(tmp_path / "huge.npz", "preprocessing")


def test_a_format_1_file_has_no_preprocessing_member(tmp_path):
    config = {"sizes": [4, 6, 3], "activation": "tanh", "output_activation": "identity",
              "loss": "squared_error", "l2": 0.5, "dtype": "float64"}
    members = {"format.npy": npy(np.array("fastnn.MLP")), "version.npy": npy(np.array(1)),
               "config.npy": npy(np.array(json.dumps(config))), "params.npy": npy(np.zeros(51)),
               "preprocessing.npy": npy(np.array("{}"))}
    write_members(tmp_path / "old.npz", members)
    refused_cheaply(tmp_path / "old.npz", "members")


def test_save_refuses_preprocessing_with_nan_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError):
        io.save(sample_net(), tmp_path / "model.npz", preprocessing={"mean": float("nan")})
    assert os.listdir(tmp_path) == []


def test_a_format_1_file_with_the_objective_scaling_of_0_1_loads(tmp_path):
    config = {"sizes": [4, 6, 3], "activation": "tanh", "output_activation": "identity",
              "loss": "squared_error", "l2": 0.5, "dtype": "float32", "loss_scale": 0.5,
              "l2_per_sample": True}
    params = np.random.default_rng(0).normal(size=51).astype(np.float32)
    members = {"format.npy": npy(np.array("fastnn.MLP")), "version.npy": npy(np.array(1)),
               "config.npy": npy(np.array(json.dumps(config))), "params.npy": npy(params)}
    write_members(tmp_path / "old.npz", members)
    net = fastnn.load(tmp_path / "old.npz")
    assert (net.sizes, net.activation, net.l2, net.dtype) == ((4, 6, 3), "tanh", 0.5,
                                                             np.float32)
    assert net.config()["loss_scale"] == 0.5 and net.config()["l2_per_sample"] is True
    np.testing.assert_array_equal(net.params, params)


# ---- nothing is executed ------------------------------------------------------------------------


class Marker:
    """Unpickling it creates the file ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_pickled_object_array_is_refused_and_not_unpickled(tmp_path):
    marker = tmp_path / "executed"
    members = good_members()
    members["params.npy"] = npy(np.array([Marker(marker)], dtype=object), allow_pickle=True)
    write_members(tmp_path / "evil.npz", members)
    assert pickle.loads(pickle.dumps(Marker(marker))) and marker.exists()  # the marker works
    marker.unlink()
    refused_cheaply(tmp_path / "evil.npz", "Python objects")
    assert not marker.exists()


@pytest.mark.parametrize("where", ["a member", "the whole file"])
def test_a_raw_pickle_is_refused_and_not_unpickled(tmp_path, where):
    marker = tmp_path / "executed"
    evil = pickle.dumps(Marker(marker))
    if where == "a member":
        members = good_members()
        members["params.npy"] = evil
        write_members(tmp_path / "evil.npz", members)
    else:
        (tmp_path / "evil.npz").write_bytes(evil)
    refused_cheaply(tmp_path / "evil.npz")
    assert not marker.exists()


# ---- save: what it replaces, and the file's mode ------------------------------------------------


def test_save_refuses_to_replace_a_fifo(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    with pytest.raises(FileExistsError, match="a FIFO, not a regular file"):
        sample_net().save(fifo)
    assert os.listdir(tmp_path) == ["model.npz"] and fifo.is_fifo()


def test_save_refuses_a_symbolic_link_to_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "model.npz").symlink_to(tmp_path / "fifo")
    with pytest.raises(FileExistsError, match="FIFO"):
        sample_net().save(tmp_path / "model.npz")
    assert sorted(os.listdir(tmp_path)) == ["fifo", "model.npz"]
    assert (tmp_path / "fifo").is_fifo()


def test_save_through_a_symbolic_link_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "model.npz"
    fastnn.MLP([2, 1]).save(target)
    (tmp_path / "link.npz").symlink_to(target)
    net = sample_net()
    net.save(tmp_path / "link.npz")
    assert (tmp_path / "link.npz").is_symlink()
    assert os.listdir(tmp_path / "models") == ["model.npz"]
    np.testing.assert_array_equal(fastnn.load(target).params, net.params)


@pytest.mark.parametrize("path", ["", "sub/", "absent/", "sub//"])
def test_save_to_an_empty_path_or_one_ending_in_a_separator_writes_nothing(tmp_path,
                                                                           monkeypatch, path):
    (tmp_path / "cwd" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises((ValueError, IsADirectoryError), match="empty|folder"):
        sample_net().save(path)
    assert os.listdir(tmp_path) == ["cwd"] and os.listdir(tmp_path / "cwd") == ["sub"]
    assert os.listdir(tmp_path / "cwd" / "sub") == []


@pytest.fixture
def umask():
    """Set the process's umask for a test, and restore it after."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


def no_tmpfile(monkeypatch, code=errno.EOPNOTSUPP):
    """Make os.open(folder, O_TMPFILE) fail as on a system without it."""
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(code, os.strerror(code))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


@pytest.fixture(params=["O_TMPFILE", "named temporary"])
def temporary(request, monkeypatch):
    """Both ways of writing the file: an anonymous O_TMPFILE file, and the named temporary that
    save falls back on where O_TMPFILE is not supported."""
    if request.param == "named temporary":
        no_tmpfile(monkeypatch)
    elif not hasattr(os, "O_TMPFILE"):
        pytest.skip("no O_TMPFILE here")
    return request.param


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027, 0o000], ids=oct)
def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path, umask, temporary, mask):
    umask(mask)
    sample_net().save(tmp_path / "model.npz")
    assert (tmp_path / "model.npz").stat().st_mode & 0o7777 == 0o666 & ~mask
    assert os.listdir(tmp_path) == ["model.npz"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o444], ids=oct)
def test_a_replaced_file_keeps_its_mode(tmp_path, umask, temporary, mode):
    umask(0o077)
    path = tmp_path / "model.npz"
    path.write_bytes(b"an older model")
    path.chmod(mode)
    net = sample_net()
    net.save(path)
    assert path.stat().st_mode & 0o7777 == mode
    np.testing.assert_array_equal(fastnn.load(path).params, net.params)
    assert os.listdir(tmp_path) == ["model.npz"]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o137], ids=oct)
def test_the_umask_is_read_without_changing_it(umask, mask):
    umask(mask)
    assert io._umask() == mask
    assert os.umask(mask) == mask


@pytest.mark.parametrize("code", [errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT],
                         ids=errno.errorcode.get)
def test_save_falls_back_on_a_named_temporary_without_o_tmpfile(tmp_path, monkeypatch, code):
    if not hasattr(os, "O_TMPFILE"):
        pytest.skip("no O_TMPFILE here: every save uses the fallback")
    no_tmpfile(monkeypatch, code)
    net = sample_net()
    net.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == ["model.npz"]
    np.testing.assert_array_equal(fastnn.load(tmp_path / "model.npz").params, net.params)


def test_another_error_of_o_tmpfile_is_raised(tmp_path, monkeypatch):
    if not hasattr(os, "O_TMPFILE"):
        pytest.skip("no O_TMPFILE here")
    no_tmpfile(monkeypatch, errno.EACCES)
    with pytest.raises(PermissionError):
        sample_net().save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


# ---- save: failures leave the old file and no temporary -----------------------------------------


def fail_in_savez(monkeypatch):
    def fail_half_way(file, **arrays):
        file.write(b"PK\x03\x04 half of a zip archive")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", fail_half_way)


def fail_in_replace(monkeypatch):
    def fail(source, destination):
        raise OSError("replace failed")
    monkeypatch.setattr(os, "replace", fail)
    real_publish = io.publish

    def fail_to_rename(handle, directory, temporary, target):
        # the real link, then a rename that fails (its new name is too long)
        return real_publish(handle, directory, temporary, b"x" * 4096)
    monkeypatch.setattr(io, "publish", fail_to_rename)


def interrupt_in_fsync(monkeypatch):
    def interrupt(fd):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "fsync", interrupt)


@pytest.mark.parametrize("failure", [fail_in_savez, fail_in_replace, interrupt_in_fsync])
def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch,
                                                                  temporary, failure):
    path = tmp_path / "model.npz"
    fastnn.MLP([2, 1], seed=0).save(path)
    old = path.read_bytes()
    failure(monkeypatch)
    with pytest.raises((OSError, KeyboardInterrupt)):
        sample_net().save(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.npz"]
    assert path.read_bytes() == old


def test_save_refuses_a_network_with_nan_and_writes_nothing(tmp_path):
    net = sample_net()
    net.buffers[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        net.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


def test_save_of_something_else_than_a_network_is_type_error(tmp_path):
    with pytest.raises(TypeError, match="fastnn.MLP"):
        io.save({"params": [1.0]}, tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


def test_save_writes_the_network_as_it_was_when_called(tmp_path, monkeypatch):
    # the network changes while the file is written (as by a training thread): the file holds
    # the parameters, buffers and random state of one moment, the start
    net = sample_net()
    before = (net.params.copy(), net.buffers.copy(), net.random_state)
    real_savez = np.savez

    def change_the_network_then_write(file, **arrays):
        net.params[:] = 0
        net.buffers[:] = 1
        net.random_state = (1, 2)
        real_savez(file, **arrays)

    monkeypatch.setattr(np, "savez", change_the_network_then_write)
    net.save(tmp_path / "model.npz")
    loaded = fastnn.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(loaded.params, before[0])
    np.testing.assert_array_equal(loaded.buffers, before[1])
    assert loaded.random_state == before[2]


# ---- save: killed at random moments -------------------------------------------------------------

SAVE_FOREVER = """
import sys
import fastnn

net = fastnn.MLP([512, 1024, 1024, 10], seed=0, batch_norm=True)
print("ready", flush=True)
k = 0
while True:
    k += 1
    net.params[:] = k
    net.buffers[:] = k
    net.random_state = (k, k)
    net.save(sys.argv[1])
"""


@pytest.mark.parametrize("kills", [5, pytest.param(20, marks=pytest.mark.slow)])
def test_a_save_killed_at_any_moment_leaves_a_whole_model_and_no_temporary(tmp_path, kills):
    if not hasattr(os, "O_TMPFILE"):
        pytest.skip("without O_TMPFILE a killed save leaves its named temporary")
    try:
        os.close(os.open(tmp_path, os.O_TMPFILE | os.O_WRONLY, 0o600))
    except OSError:
        pytest.skip("the file system of tmp_path does not support O_TMPFILE")
    root = os.path.dirname(os.path.dirname(fastnn.__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    path = tmp_path / "model.npz"
    rng = np.random.default_rng(0)
    saved_once = False
    for _ in range(kills):
        child = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(path)],
                                 stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert child.stdout.readline() == "ready\n"
            time.sleep(rng.uniform(0.0, 0.2))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        if not saved_once and os.listdir(tmp_path) == []:
            continue
        assert os.listdir(tmp_path) == ["model.npz"]
        saved_once = True
        net = fastnn.load(path)
        k = net.params[0]
        assert k >= 1 and (net.params == k).all() and (net.buffers == k).all()
        assert net.random_state == (k, k)
