"""Saving and loading: a round trip is exact (architecture, dtype, parameters bit for bit) for every
setting; paths are taken as given; every unreadable file is a clear error (FileNotFoundError for a
missing one, fastnn.ModelFileError for one that is damaged or not a model); and a save that fails
half-way leaves the previous file intact and no temporary file behind. Pickling is exact too."""
import copy
import json
import os
import pathlib
import pickle

import numpy as np
import pytest

import fastnn

from helpers import HIDDEN_ACTIVATIONS, OUTPUT_LOSS_PAIRS


def trained_looking_net(dtype="float64", **settings):
    """A network whose every parameter, biases included, is a distinct non-round number."""
    net = fastnn.MLP([4, 6, 3], dtype=dtype, **settings)
    net.params = np.random.default_rng(0).normal(size=net.n_params)
    return net


def assert_same_network(loaded, net):
    assert loaded.sizes == net.sizes
    assert (loaded.activation, loaded.output_activation, loaded.loss_name, loaded.l2) == (
        net.activation, net.output_activation, net.loss_name, net.l2)
    assert loaded.dtype == net.dtype and loaded.params.dtype == net.params.dtype
    np.testing.assert_array_equal(loaded.params.view(np.uint8), net.params.view(np.uint8))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("output_activation, loss", OUTPUT_LOSS_PAIRS)
def test_round_trip_is_exact(tmp_path, dtype, activation, output_activation, loss):
    net = trained_looking_net(dtype, activation=activation, output_activation=output_activation,
                              loss=loss, l2=0.125)
    net.save(tmp_path / "model.npz")
    loaded = fastnn.load(tmp_path / "model.npz")
    assert_same_network(loaded, net)
    X = np.random.default_rng(1).normal(size=(5, 4))
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pickle_round_trip_is_exact(dtype):
    net = trained_looking_net(dtype, activation="sigmoid", output_activation="softmax",
                              loss="cross_entropy", l2=0.5)
    copy = pickle.loads(pickle.dumps(net))
    assert_same_network(copy, net)
    copy.params[0] += 1
    assert copy.params[0] != net.params[0]


def test_a_pickle_or_copy_keeps_the_thread_cap():
    net = fastnn.MLP([4, 3, 2], seed=0, n_threads=1)
    assert pickle.loads(pickle.dumps(net)).n_threads == 1
    assert copy.deepcopy(net).n_threads == 1
    assert pickle.loads(pickle.dumps(fastnn.MLP([4, 3, 2], seed=0))).n_threads is None


@pytest.mark.parametrize("as_path", [str, pathlib.Path], ids=["str", "Path"])
@pytest.mark.parametrize("name", ["model", "model.bin", "model.npz"])
def test_the_file_name_is_used_as_given(tmp_path, as_path, name):
    net = trained_looking_net()
    net.save(as_path(tmp_path / name))
    assert sorted(os.listdir(tmp_path)) == [name]
    assert_same_network(fastnn.load(as_path(tmp_path / name)), net)


def test_save_replaces_an_existing_model(tmp_path):
    path = tmp_path / "model.npz"
    trained_looking_net().save(path)
    newer = fastnn.MLP([2, 5, 1], activation="sigmoid", dtype="float32", seed=3)
    newer.save(path)
    assert_same_network(fastnn.load(path), newer)


def test_load_of_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no fastnn model") as error:
        fastnn.load(tmp_path / "absent.npz")
    assert isinstance(error.value, ValueError)


def test_load_of_a_folder_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        fastnn.load(tmp_path)


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def valid_contents(**changes):
    net = trained_looking_net()
    config = {"sizes": [4, 6, 3], "activation": "relu", "output_activation": "identity",
              "loss": "squared_error", "l2": 0.0, "dtype": "float64"}
    contents = {"format": np.array("fastnn.MLP"), "version": np.array(1),
                "config": np.array(json.dumps(config)), "params": net.params}
    contents.update(changes)
    return contents


DAMAGED = {
    "truncated": lambda path, good: path.write_bytes(good[:len(good) // 2]),
    "random bytes": lambda path, good: path.write_bytes(
        np.random.default_rng(0).integers(256, size=4000, dtype=np.uint8).tobytes()),
    "empty": lambda path, good: path.write_bytes(b""),
    "another npz": lambda path, good: write_npz(path, weights=np.arange(5.0)),
    "another format": lambda path, good: write_npz(path, **valid_contents(
        format=np.array("other.Model"))),
    "newer version": lambda path, good: write_npz(path, **valid_contents(version=np.array(99))),
    "unknown activation": lambda path, good: write_npz(path, **valid_contents(
        config=np.array(json.dumps({"sizes": [4, 6, 3], "activation": "swish",
                                    "output_activation": "identity", "loss": "squared_error",
                                    "l2": 0.0, "dtype": "float64"})))),
    "config not json": lambda path, good: write_npz(path, **valid_contents(config=np.array("{"))),
    "missing params": lambda path, good: write_npz(path, **{
        key: value for key, value in valid_contents().items() if key != "params"}),
    "params of wrong size": lambda path, good: write_npz(path, **valid_contents(
        params=np.zeros(7))),
    "params of wrong dtype": lambda path, good: write_npz(path, **valid_contents(
        params=np.zeros(4 * 6 + 6 + 6 * 3 + 3, dtype=np.float32))),
    "pickled object": lambda path, good: write_npz(path, **valid_contents(
        params=np.array([{"a": 1}], dtype=object))),
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_load_of_a_file_that_is_not_a_readable_model_is_model_file_error(tmp_path, damage):
    good_path = tmp_path / "good.npz"
    write_npz(good_path, **valid_contents())
    assert fastnn.load(good_path).sizes == (4, 6, 3)
    path = tmp_path / "bad.npz"
    DAMAGED[damage](path, good_path.read_bytes())
    with pytest.raises(fastnn.ModelFileError, match="bad.npz"):
        fastnn.load(path)


def test_save_into_a_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        trained_looking_net().save(tmp_path / "absent" / "model.npz")
    assert os.listdir(tmp_path) == []


def test_save_onto_a_folder_raises(tmp_path):
    (tmp_path / "model.npz").mkdir()
    with pytest.raises(IsADirectoryError):
        trained_looking_net().save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == ["model.npz"]


def test_a_save_that_fails_half_way_keeps_the_old_file_and_leaves_no_temporary(tmp_path,
                                                                               monkeypatch):
    path = tmp_path / "model.npz"
    old = trained_looking_net()
    old.save(path)
    saved_bytes = path.read_bytes()

    def fail_half_way(file, **arrays):
        file.write(b"PK\x03\x04 half of a zip archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        fastnn.MLP([4, 2], seed=1).save(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.npz"]
    assert path.read_bytes() == saved_bytes
    assert_same_network(fastnn.load(path), old)
