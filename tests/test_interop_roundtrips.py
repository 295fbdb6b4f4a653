"""Models leave fastnn and come back bit for bit, in float32 and float64, with every layer kind:
through a safetensors file (parameters, buffers, generator state, config, preprocessing), through
a ``torch.nn.Sequential`` (parameters and buffers; its outputs equal `forward`), and through
scikit-learn's own MLPClassifier and MLPRegressor (weights, classes and fitted attributes). The
older formats still load, and unsupported modules or settings are refused by name."""
import json
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import registry

from helpers import every_kind_network

DTYPES = ("float32", "float64")


def assert_same_network(a, b):
    assert a.config() == b.config()
    assert a.params.dtype == b.params.dtype
    assert a.params.tobytes() == b.params.tobytes()
    assert a.buffers.tobytes() == b.buffers.tobytes()


# ---- safetensors -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", registry.output_activations())
@pytest.mark.parametrize("hidden", registry.hidden_activations())
def test_safetensors_round_trip(tmp_path, hidden, output, dtype):
    pytest.importorskip("safetensors")
    net = every_kind_network(hidden, output, dtype)
    net.save(tmp_path / "net.safetensors")
    again = fastnn.load(tmp_path / "net.safetensors")
    assert_same_network(again, net)
    assert again.random_state == net.random_state


def test_safetensors_file_is_readable_by_the_safetensors_package(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    net = every_kind_network("elu", "softmax", "float32")
    net.l2 = 0.25
    net.save(tmp_path / "net.SafeTensors")   # the suffix in any case
    tensors = safetensors_numpy.load_file(tmp_path / "net.SafeTensors")
    named = {**net.named_parameters(), **net.named_buffers()}
    assert set(tensors) == set(named)
    for name, value in named.items():
        assert tensors[name].dtype == np.float32 and np.array_equal(tensors[name], value)
    from safetensors import safe_open
    with safe_open(tmp_path / "net.SafeTensors", framework="np") as f:
        metadata = f.metadata()
    assert metadata["format"] == "fastnn.MLP"
    assert metadata["fastnn_version"] == fastnn.__version__
    assert json.loads(metadata["config"]) == net.config()
    assert json.loads(metadata["random_state"]) == list(net.random_state)


def test_other_names_still_write_npz(tmp_path):
    net = every_kind_network("relu", "identity", "float64")
    net.save(tmp_path / "net.bin")
    assert (tmp_path / "net.bin").read_bytes()[:4] == b"PK\x03\x04"
    assert_same_network(fastnn.load(tmp_path / "net.bin"), net)


def test_tabular_model_round_trip_through_safetensors(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("safetensors")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=80), "c": rng.choice(["a", "b"], 80),
                          "y": rng.choice(["p", "q"], 80)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fastnn.TabularModel(hidden=(4,), epochs=3, batch_norm=True).fit(frame, "y")
    model.save(tmp_path / "model.safetensors")
    again = fastnn.TabularModel.load(tmp_path / "model.safetensors")
    assert_same_network(again.network, model.network)
    assert again.config() == model.config()
    with pytest.raises(fastnn.ModelFileError, match="TabularModel.load"):
        fastnn.load(tmp_path / "model.safetensors")


def test_missing_safetensors_package_is_named(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    net = every_kind_network("relu", "identity", "float64")
    net.save(tmp_path / "net.safetensors")
    monkeypatch.setitem(__import__("sys").modules, "safetensors", None)
    with pytest.raises(ImportError, match=r'pip install "fastnn-cpu\[safetensors\]"'):
        fastnn.load(tmp_path / "net.safetensors")
    with pytest.raises(ImportError, match=r'pip install "fastnn-cpu\[safetensors\]"'):
        net.save(tmp_path / "other.safetensors")
    assert not (tmp_path / "other.safetensors").exists()


# ---- PyTorch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", registry.output_activations())
@pytest.mark.parametrize("hidden", registry.hidden_activations())
def test_torch_round_trip(hidden, output, dtype):
    torch = pytest.importorskip("torch")
    net = every_kind_network(hidden, output, dtype)
    module = fastnn.to_torch(net)
    assert not module.training
    X = np.random.default_rng(1).normal(size=(20, 5)).astype(dtype)
    with torch.no_grad():
        Y = module(torch.from_numpy(X)).numpy()
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(Y, net.forward(X), rtol=tol, atol=tol)
    again = fastnn.from_torch(module, l2=net.l2)
    assert again.layers == net.layers and again.loss_name == net.loss_name
    assert_same_network(again, net)


def test_torch_module_kinds():
    torch = pytest.importorskip("torch")
    net = every_kind_network("leaky_relu", "softmax", "float64")
    kinds = [type(m).__name__ for m in fastnn.to_torch(net)]
    assert kinds == ["Linear", "BatchNorm1d", "LeakyReLU", "Dropout", "Linear", "BatchNorm1d",
                     "LeakyReLU", "Linear", "Softmax"]
    module = fastnn.to_torch(net)
    assert module[2].negative_slope == 0.2 and module[3].p == 0.25
    assert module[5].momentum == 0.3 and module[5].eps == 1e-3 and not module[5].affine
    assert module[0].weight.dtype == torch.float64


def test_from_torch_of_a_plain_torch_model():
    """A torch model as people write it: logits out of the last Linear (the identity output)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(approximate="tanh"),
                                 torch.nn.Dropout(0.1), torch.nn.Linear(8, 2)).eval()
    net = fastnn.from_torch(module)
    assert net.output_activation == "identity" and net.loss_name == "squared_error"
    assert net.dtype == np.float32
    X = torch.randn(6, 4)
    with torch.no_grad():
        np.testing.assert_allclose(net.forward(X.numpy()), module(X).numpy(), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("make, message", [
    (lambda nn: nn.Sequential(nn.Linear(3, 4), nn.Conv1d(1, 1, 1), nn.Linear(4, 2)),
     r"cannot convert module 1 \(Conv1d"),
    (lambda nn: nn.Sequential(nn.Linear(3, 4), nn.Softplus(beta=2), nn.Linear(4, 2)),
     r"module 1 \(Softplus"),
    (lambda nn: nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2)), "takes 5 inputs"),
    (lambda nn: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=None),
                              nn.Linear(4, 2)), "momentum"),
    (lambda nn: nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(-0.1), nn.Linear(4, 2)),
     r"module 1 \(LeakyReLU.*negative_slope"),
    (lambda nn: nn.Sequential(nn.Linear(3, 4, dtype=nn.Linear(1, 1).weight.dtype),
                              nn.Linear(4, 2).double()), "all float32 or all float64"),
    (lambda nn: nn.Sequential(nn.ReLU()), "needs a module with a Linear layer"),
])
def test_from_torch_refuses_what_fastnn_lacks(make, message):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=message):
        fastnn.from_torch(make(torch.nn))
    with pytest.raises(TypeError, match="torch.nn.Sequential"):
        fastnn.from_torch(torch.nn.Linear(2, 2))


# ---- scikit-learn ----------------------------------------------------------------------------


def sklearn_estimators():
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    return [
        (MLPClassifier(hidden_layer_sizes=(6, 4), activation="tanh", max_iter=15,
                       random_state=0), "multiclass"),
        (MLPClassifier(hidden_layer_sizes=(5,), activation="logistic", early_stopping=True,
                       max_iter=15, random_state=0), "binary"),
        (MLPClassifier(hidden_layer_sizes=(5,), max_iter=15, random_state=0), "multilabel"),
        (MLPRegressor(hidden_layer_sizes=(5,), activation="identity", max_iter=15,
                      random_state=0), "regression"),
        (MLPRegressor(hidden_layer_sizes=(5,), loss="poisson", max_iter=15,
                      random_state=0), "counts"),
        (MLPRegressor(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=15,
                      random_state=0), "regression"),
    ]


def targets(kind, rng, n):
    return {"multiclass": lambda: rng.choice(["ant", "bee", "cat"], n),
            "binary": lambda: rng.choice([False, True], n),
            "multilabel": lambda: (rng.uniform(size=(n, 3)) > 0.5).astype(int),
            "regression": lambda: rng.normal(size=(n, 2)),
            "counts": lambda: rng.poisson(2.0, size=n)}[kind]()


FITTED = ("classes_", "n_features_in_", "n_iter_", "n_layers_", "n_outputs_", "out_activation_",
          "loss_", "best_loss_", "loss_curve_", "validation_scores_", "best_validation_score_",
          "t_")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(6))
def test_sklearn_round_trip(case, dtype):
    pytest.importorskip("sklearn")
    from fastnn.sklearn import from_sklearn, to_sklearn
    estimator, kind = sklearn_estimators()[case]
    rng = np.random.default_rng(case)
    X = rng.normal(size=(60, 4)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, targets(kind, rng, 60))
    ours = from_sklearn(estimator)
    back = to_sklearn(ours)
    for model in (ours, back):
        assert model.get_params() == {k: v for k, v in {**ours.get_params(),
                                                        **estimator.get_params()}.items()
                                      if k in model.get_params()}
        for a, b in zip(model.coefs_ + model.intercepts_,
                        estimator.coefs_ + estimator.intercepts_):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
        for name in FITTED:
            if hasattr(estimator, name):
                np.testing.assert_equal(getattr(model, name), getattr(estimator, name))
    predict = "predict_proba" if hasattr(estimator, "predict_proba") else "predict"
    tol = 1e-12 if estimator.coefs_[0].dtype == np.float64 else 1e-5
    for model in (ours, back):
        np.testing.assert_allclose(getattr(model, predict)(X), getattr(estimator, predict)(X),
                                   rtol=tol, atol=tol)
        if predict == "predict_proba":
            np.testing.assert_array_equal(model.predict(X), estimator.predict(X))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fastnn_estimator_round_trip_through_sklearn(dtype):
    pytest.importorskip("sklearn")
    from fastnn.sklearn import MLPClassifier, from_sklearn, to_sklearn
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 3)).astype(dtype), rng.choice([2, 5, 9], 80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = MLPClassifier(hidden_layer_sizes=(4, 4), max_iter=10, random_state=0).fit(X, y)
    again = from_sklearn(to_sklearn(ours))
    assert_same_network(again._net, ours._net)
    np.testing.assert_array_equal(again.classes_, ours.classes_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again.partial_fit(X, y)   # a converted estimator trains on


@pytest.mark.parametrize("setting, message", [
    ({"batch_norm": True}, "batch_norm=True"), ({"dropout": 0.1}, "dropout=0.1"),
    ({"activation": "gelu"}, "activation='gelu'"),
    ({"class_weight": "balanced"}, "class_weight='balanced'"),
])
def test_to_sklearn_refuses_what_sklearn_lacks(setting, message):
    pytest.importorskip("sklearn")
    from fastnn.sklearn import MLPClassifier, from_sklearn, to_sklearn
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, **setting).fit(
            rng.normal(size=(20, 2)), rng.choice([0, 1], 20))
    with pytest.raises(ValueError, match=f"has no {message}"):
        to_sklearn(ours)
    with pytest.raises(TypeError, match="scikit-learn's MLPClassifier"):
        from_sklearn(ours)
    with pytest.raises(TypeError, match="fastnn.sklearn's"):
        to_sklearn(to_sklearn.__class__)
