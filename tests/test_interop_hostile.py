"""Hostile safetensors files, and the pickled .npz member, are refused by `fastnn.load` with a
ModelFileError that says what is wrong, having executed nothing and allocated little
(tracemalloc's peak): a header length beyond the file or beyond any model's, offsets that lie
about the sizes, overlap, leave holes or point past the data, a huge declared shape, a tensor
table that is not the architecture's, dtypes, NaN, duplicate keys, odd metadata."""
import json
import struct

import numpy as np
import pytest

pytest.importorskip("safetensors")

import fastnn
from fastnn import safetensors_file

from helpers import every_kind_network
from test_io_hostile import Marker, good_members, npy, refused_cheaply, write_members

# A small file's refusal stays far below this (the network has a few dozen values).
SMALL = 2 ** 20


@pytest.fixture
def net():
    return every_kind_network("elu", "softmax", "float64")


def parts(net):
    """The header (as a dict) and the data bytes of ``net``'s safetensors file."""
    state = net.state_dict()
    data = safetensors_file.encode(net, net.config(), state["params"], state["buffers"],
                                   state["random_state"])
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def write(path, header, data, length=None):
    """A safetensors file of ``header`` (a dict, or bytes as they are) and ``data``, whose first
    8 bytes say ``length`` (the header's true length by default)."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


@pytest.fixture
def built(monkeypatch):
    """The configs `load` built a network from (recorded, not run)."""
    calls = []
    monkeypatch.setattr(fastnn.MLP, "from_config", staticmethod(calls.append))
    return calls


def test_a_sound_file_loads(tmp_path, net):
    header, data = parts(net)
    again = fastnn.load(write(tmp_path / "ok.safetensors", header, data))
    assert again.params.tobytes() == net.params.tobytes()


@pytest.mark.parametrize("length, message", [
    (2 ** 63, "more than a fastnn model's"),
    (2 ** 64 - 1, "more than a fastnn model's"),
    (2 ** 26, "beyond the end of the file"),
    ("file + 1", "beyond the end of the file"),
])
def test_a_header_length_beyond_the_file_is_refused(tmp_path, net, built, length, message):
    header, data = parts(net)
    text = json.dumps(header).encode()
    if length == "file + 1":
        length = len(text) + len(data) + 1
    path = write(tmp_path / "evil.safetensors", text, data, length)
    refused_cheaply(path, message, max_bytes=SMALL)
    assert built == []


def first_tensor(header):
    return next(name for name in header if name != "__metadata__")


def lie_about_offsets(header, name, begin, end):
    header[name]["data_offsets"] = [begin, end]
    return header


@pytest.mark.parametrize("change, message", [
    # an entry whose offsets do not span its shape's bytes
    (lambda h, n: lie_about_offsets(h, n, 0, 8), "not the .* bytes of its shape"),
    # offsets past the data
    (lambda h, n: lie_about_offsets(h, n, 2 ** 40, 2 ** 40 + 8 * 35), "within the"),
    (lambda h, n: lie_about_offsets(h, n, -8, 8 * 34), "within the"),
    # every tensor moved back by 8 bytes onto the one before it, leaving 8 bytes unheld
    (lambda h, n: {k: (dict(v, data_offsets=[max(v["data_offsets"][0] - 8, 0),
                                             max(v["data_offsets"][1] - 8, 8 * 35)])
                       if k != "__metadata__" and v["data_offsets"][0] > 0 else v)
                   for k, v in h.items()}, "overlap|not the .* bytes"),
    (lambda h, n: {k: (dict(v, data_offsets=[o + 8 for o in v["data_offsets"]])
                       if k != "__metadata__" and v["data_offsets"][0] > 0 else v)
                   for k, v in h.items()}, "no tensor holds|within the"),
    (lambda h, n: lie_about_offsets(h, n, 0.0, 280.0), "not two integers"),
    (lambda h, n: {**h, n: dict(h[n], shape=[2 ** 40])}, "the shape"),
    (lambda h, n: {**h, n: dict(h[n], shape=[7, 5])}, "the shape"),
    (lambda h, n: {**h, n: dict(h[n], dtype="F32")}, "dtype"),
    (lambda h, n: {**h, n: dict(h[n], dtype="O")}, "dtype"),
    (lambda h, n: {k: v for k, v in h.items() if k != n}, "missing"),
    (lambda h, n: {**h, "extra": h[n]}, "unknown"),
    (lambda h, n: {**h, n: dict(h[n], extra=1)}, "dtype, shape and data_offsets"),
], ids=["span", "past", "negative", "overlap", "hole", "floats", "huge shape", "transposed",
        "dtype", "object dtype", "missing", "unknown", "extra key"])
def test_a_lying_tensor_table_is_refused(tmp_path, net, change, message):
    header, data = parts(net)
    header = change(header, first_tensor(header))
    refused_cheaply(write(tmp_path / "evil.safetensors", header, data), message, max_bytes=SMALL)


def test_a_huge_declared_architecture_is_refused_before_anything_is_built(tmp_path, net,
                                                                           built):
    """A config (and tensor table) of 2**40 values in a small file: refused by the limits or
    by the file's size, before a network is built or any data read."""
    header, data = parts(net)
    config = json.loads(header["__metadata__"]["config"])
    for units in (2 ** 20, 2 ** 31 - 1):
        config["layers"][0]["units"] = units
        header["__metadata__"]["config"] = json.dumps(config)
        header[first_tensor(header)]["shape"] = [5, units]
        refused_cheaply(write(tmp_path / "evil.safetensors", header, data),
                        "architecture|bytes long|more than", max_bytes=SMALL)
    assert built == []


def test_truncated_and_extended_data_are_refused(tmp_path, net, built):
    header, data = parts(net)
    refused_cheaply(write(tmp_path / "short.safetensors", header, data[:-8]), "bytes long",
                    max_bytes=SMALL)
    refused_cheaply(write(tmp_path / "long.safetensors", header, data + bytes(8)),
                    "bytes long", max_bytes=SMALL)
    assert built == []


def test_nan_values_are_refused(tmp_path, net):
    header, data = parts(net)
    data = bytearray(data)
    data[:8] = struct.pack("<d", float("nan"))
    refused_cheaply(write(tmp_path / "nan.safetensors", header, bytes(data)), "NaN",
                    max_bytes=SMALL)


@pytest.mark.parametrize("change, message", [
    (lambda m: {k: v for k, v in m.items() if k != "config"}, "keys"),
    (lambda m: {**m, "code": "print(1)"}, "keys"),
    (lambda m: {**m, "format": "pickle"}, "not a fastnn model"),
    (lambda m: {**m, "version": "2"}, "newer fastnn"),
    (lambda m: {**m, "version": "x"}, "not a number"),
    (lambda m: {**m, "random_state": "[1]"}, "random_state"),
    (lambda m: {**m, "random_state": f"[{2 ** 64}, 0]"}, "random_state"),
    (lambda m: {**m, "config": "[]"}, "not a JSON object"),
    (lambda m: {**m, "preprocessing": '{"a": NaN}'}, "NaN"),
], ids=["no config", "extra", "format", "newer", "version", "state", "big state", "config",
        "nan"])
def test_odd_metadata_is_refused(tmp_path, net, change, message):
    header, data = parts(net)
    header["__metadata__"] = change(header["__metadata__"])
    refused_cheaply(write(tmp_path / "evil.safetensors", header, data), message,
                    max_bytes=SMALL)


@pytest.mark.parametrize("text, message", [
    (b'{"__metadata__": {}, "__metadata__": {}}', "key twice"),
    (b"{\xff}", "not JSON"),
    (b"{" + b" " * 20, "not JSON"),
    (b'{"a": 1}', "no __metadata__"),
])
def test_a_broken_header_is_refused(tmp_path, text, message):
    refused_cheaply(write(tmp_path / "evil.safetensors", text, b""), message, max_bytes=SMALL)


def test_a_pickled_npz_member_is_refused_and_not_unpickled(tmp_path):
    marker = tmp_path / "executed"
    members = good_members()
    members["config.npy"] = npy(np.array([Marker(marker)], dtype=object), allow_pickle=True)
    write_members(tmp_path / "evil.npz", members)
    refused_cheaply(tmp_path / "evil.npz", "Python objects", max_bytes=SMALL)
    assert not marker.exists()
