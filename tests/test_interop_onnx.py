"""fastnn's ONNX graphs run by onnxruntime give fastnn's outputs: `MLP.to_onnx` for every layer
kind, hidden activation and output, in float64 (to 1e-12) and float32 (to 1e-6), for batches of
1 and 1,000 rows; `TabularModel.to_onnx` with its preprocessing (standardized and imputed
numbers, one-hot text, boolean, integer and float categories, missing values); `fastnn export`
(fastnn.sklearn's estimators through skl2onnx: test_interop_skl2onnx.py)."""
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import fastnn
from fastnn import cli, onnx_export, registry

from helpers import assert_onnx_close, every_kind_network, onnx_session

BATCHES = (1, 1000)


# ---- networks --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output", registry.output_activations())
@pytest.mark.parametrize("hidden", registry.hidden_activations())
def test_network_graph_gives_forward(hidden, output, dtype):
    net = every_kind_network(hidden, output, dtype)
    run = onnx_session(net.to_onnx())
    rng = np.random.default_rng(1)
    for rows in BATCHES:
        X = rng.normal(size=(rows, 5)).astype(dtype)
        (Y,) = run.run(["Y"], {"X": X})
        assert Y.dtype == np.dtype(dtype) and Y.shape == (rows, 3)
        assert_onnx_close(Y, net.forward(X), dtype)


@pytest.mark.parametrize("hidden", ["gelu", "elu", "softplus", "silu", "leaky_relu"])
def test_composed_activations_hold_at_their_edges(hidden):
    """The activations composed from elementary operators (onnxruntime has no float64 kernels
    of theirs) stay accurate where their simple forms lose digits or overflow: near 0, far
    below 0, at softplus' threshold, past exp's overflow."""
    net = fastnn.MLP.from_layers(1, [fastnn.layers.Dense(1, bias=False),
                                     fastnn.layers.Activation(hidden),
                                     fastnn.layers.Dense(1, bias=False),
                                     fastnn.layers.Activation("identity")])
    net.params = [1.0, 1.0]
    z = np.concatenate([[0.0, -0.0, 1e-300, -1e-300, 1e-12, -1e-12, 19.999, 20.0, 20.001, 700,
                         800, -700, -800, -40, -37.5, 8.5, -8.5, 6 * np.sqrt(2)],
                        np.linspace(-12, 12, 2001)]).reshape(-1, 1)
    (Y,) = onnx_session(net.to_onnx()).run(["Y"], {"X": z})
    assert_onnx_close(Y, net.forward(z), "float64")


def test_network_graph_layout(tmp_path):
    """Input X and output Y with a dynamic batch dimension, standard operators only, opset 17,
    the file written as the model returned."""
    net = every_kind_network("gelu", "softmax", "float64")
    path = tmp_path / "net.onnx"
    model = net.to_onnx(path)
    assert onnx.load(path) == model
    assert [(o.domain, o.version) for o in model.opset_import] == [("", onnx_export.OPSET)]
    assert {node.domain for node in model.graph.node} == {""}
    (x,), (y,) = model.graph.input, model.graph.output
    assert (x.name, y.name) == ("X", "Y")
    assert [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim] == ["N", 5]
    assert [d.dim_param or d.dim_value for d in y.type.tensor_type.shape.dim] == ["N", 3]
    assert not any(node.op_type == "Dropout" for node in model.graph.node)


def test_float64_network_exported_in_float32():
    net = every_kind_network("tanh", "sigmoid", "float64")
    model = net.to_onnx(dtype="float32")
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    X = np.random.default_rng(0).normal(size=(50, 5))
    (Y,) = onnx_session(model).run(["Y"], {"X": X.astype(np.float32)})
    np.testing.assert_allclose(Y, net.forward(X), rtol=1e-5, atol=1e-6)


def test_unknown_dtype_refused():
    with pytest.raises(ValueError, match="float32' or 'float64"):
        every_kind_network("relu", "identity", "float64").to_onnx(dtype="float16")


def test_export_refuses_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match="cannot write the ONNX model"):
        every_kind_network("relu", "identity", "float64").to_onnx(tmp_path)


# ---- tabular models --------------------------------------------------------------------------


def table(pd, rng, n=240):
    """A table with every kind of feature column (numbers, text, booleans, integer and float
    categories), some missing values, and two targets."""
    frame = pd.DataFrame({
        "age": rng.normal(40, 12, n),
        "city": rng.choice(["Lyon", "Oslo", "Rome", "Łódź"], n),
        "member": rng.choice([True, False], n),
        "rooms": pd.Categorical(rng.choice([1, 2, 5], n)),
        "grade": pd.Categorical(rng.choice([0.5, 1.5, 2.25], n)),
        "income": rng.lognormal(3, 1, n),
    })
    frame["label"] = np.where(frame["age"] + 5 * (frame["city"] == "Oslo") > 42, "high", "low")
    frame["price"] = frame["income"] * 2 + frame["age"]
    return frame


def onnx_feeds(model, frame, dtype):
    """The graph's inputs for the rows of ``frame``: one (N, 1) array per feature column, a
    missing value as NaN (numbers) or "" (text)."""
    feeds = {}
    for column in model.preprocessor.columns:
        values = frame[column.name]
        if column.kind == "numeric":
            array = values.to_numpy(dtype=dtype)
        else:
            kind = onnx_export._category_type(column.categories)
            if kind.kind == "O":
                array = values.astype(object).where(values.notna(), "").to_numpy()
            else:
                array = np.asarray(values.astype(object).to_numpy(), dtype=kind)
        feeds[column.name] = array.reshape(-1, 1)
    return feeds


@pytest.fixture(scope="module")
def tabular_models():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = table(pd, rng)
    imputing = frame.copy()
    imputing.loc[::9, "age"] = np.nan
    imputing.loc[4::11, "city"] = None
    imputing.loc[5::13, "grade"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classifier = fastnn.TabularModel(hidden=(8, 6), epochs=5, batch_norm=True,
                                         dropout=0.1).fit(frame, "label", drop=["price"])
        imputer = fastnn.TabularModel(hidden=(8,), epochs=5, impute="median").fit(
            imputing, "label", drop=["price"])
        regressor = fastnn.TabularModel(hidden=(8,), epochs=5, activation="gelu").fit(
            frame, "price", drop=["label"])
    return {"classifier": (classifier, frame), "imputer": (imputer, imputing),
            "regressor": (regressor, frame)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["classifier", "imputer", "regressor"])
def test_tabular_graph_gives_predictions(tabular_models, kind, dtype):
    model, frame = tabular_models[kind]
    run = onnx_session(model.to_onnx(dtype=dtype))
    names = [i.name for i in run.get_inputs()]
    assert names == model.preprocessor.names
    for rows in (frame.iloc[:1], frame):
        outputs = run.run(None, onnx_feeds(model, rows, dtype))
        if model.target.task == "classification":
            label, probabilities = outputs
            assert label.tolist() == model.predict(rows).tolist()
            assert_onnx_close(probabilities, model.predict_proba(rows), dtype)
        else:
            (variable,) = outputs
            assert variable.shape == (len(rows), 1)
            # in the target's units (hundreds): the tolerance is relative
            assert_onnx_close(variable[:, 0], model.predict(rows), dtype)


def test_tabular_graph_layout(tabular_models):
    model, _ = tabular_models["classifier"]
    onnx_model = model.to_onnx()
    types = {i.name: i.type.tensor_type.elem_type for i in onnx_model.graph.input}
    T = onnx.TensorProto
    assert types == {"age": T.DOUBLE, "city": T.STRING, "member": T.BOOL, "rooms": T.INT64,
                     "grade": T.DOUBLE, "income": T.DOUBLE}
    assert [o.name for o in onnx_model.graph.output] == ["label", "probabilities"]
    # Equal on strings is opset 19's
    assert onnx_model.opset_import[0].version == onnx_export.TEXT_OPSET


def test_unseen_category_encodes_as_zeros(tabular_models):
    """What fastnn refuses with an error, the graph (which cannot raise) encodes as no known
    category: the network's output for an all-zero one-hot block."""
    model, frame = tabular_models["classifier"]
    rows = frame.iloc[:3].copy()
    feeds = onnx_feeds(model, rows, "float64")
    feeds["city"] = np.array([["Paris"]] * 3, dtype=object)
    _, probabilities = onnx_session(model.to_onnx()).run(None, feeds)
    X = model.preprocessor.transform(rows)
    start = sum(c.width for c in model.preprocessor.columns[:model.preprocessor.names.index(
        "city")])
    X[:, start:start + 4] = 0
    assert_onnx_close(probabilities, model.network.forward(X), "float64")
    with pytest.raises(fastnn.tables.DataError, match="did not see"):
        model.predict(rows.assign(city="Paris"))


def test_outputs_renamed_away_from_columns():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"label": rng.normal(size=60), "label_": rng.normal(size=60),
                          "y": rng.choice(["a", "b"], 60)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fastnn.TabularModel(hidden=(), epochs=2).fit(frame, "y")
    onnx_model = model.to_onnx()
    assert [o.name for o in onnx_model.graph.output] == ["label__", "probabilities"]
    onnx_session(onnx_model)


def test_untrained_tabular_model_refused():
    with pytest.raises(ValueError, match="not trained"):
        fastnn.TabularModel().to_onnx()


def test_cli_export(tabular_models, tmp_path, capsys):
    model, frame = tabular_models["classifier"]
    model.save(tmp_path / "model.npz")
    status = cli.main(["export", str(tmp_path / "model.npz"), "--onnx",
                       str(tmp_path / "model.onnx"), "--dtype", "float32", "--safetensors",
                       str(tmp_path / "model.safetensors")])
    assert status == 0
    assert "wrote" in capsys.readouterr().out
    run = onnx_session(onnx.load(tmp_path / "model.onnx"))
    label, _ = run.run(None, onnx_feeds(model, frame, "float32"))
    assert label.tolist() == model.predict(frame).tolist()
    again = fastnn.TabularModel.load(tmp_path / "model.safetensors")
    assert np.array_equal(again.network.params, model.network.params)
    assert again.config() == model.config()


def test_cli_export_of_a_network(tmp_path):
    net = every_kind_network("silu", "exp", "float32")
    net.save(tmp_path / "net.npz")
    assert cli.main(["export", str(tmp_path / "net.npz"), "--onnx", str(tmp_path / "n.onnx")]) == 0
    X = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    (Y,) = onnx_session(onnx.load(tmp_path / "n.onnx")).run(["Y"], {"X": X})
    assert_onnx_close(Y, net.forward(X), "float32")


@pytest.mark.parametrize("arguments, message", [
    ([], "needs --onnx FILE or --safetensors FILE"),
    (["--safetensors", "model.npz"], "name it .safetensors"),
])
def test_cli_export_usage(tmp_path, capsys, arguments, message):
    every_kind_network("relu", "identity", "float64").save(tmp_path / "net.npz")
    assert cli.main(["export", str(tmp_path / "net.npz"), *arguments]) == 2
    assert message in capsys.readouterr().err
