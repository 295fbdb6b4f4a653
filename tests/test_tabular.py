"""fastnn.tabular.TabularModel and fastnn.preprocessing on pandas DataFrames: the task inferred,
columns matched by name, categories and classes kept with their type through a save and a load,
regression in the target's units, missing values and unseen categories refused (or imputed), and
a model file whose preprocessing lies refused as strictly as a lying network config."""
import json
import zipfile

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

import fastnn
from fastnn import io
from fastnn.preprocessing import Preprocessor
from fastnn.tables import DataError
from fastnn.tabular import TabularModel
from fastnn.targets import MAX_INTEGER_CLASSES, infer_task

QUICK = {"hidden": (8,), "epochs": 5, "seed": 0}


def table(n=120, seed=0):
    """Rows of two numeric columns, a categorical one and a text label that depends on all."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n) * 10 + 50
    weight = rng.normal(size=n)
    score = weight + (color == "red") * 2 - (size - 50) / 10
    label = np.where(score > 0.7, "heavy", np.where(score > -0.7, "medium", "light"))
    return pd.DataFrame({"size": size, "color": color, "weight": weight, "label": label})


@pytest.fixture(scope="module")
def classifier():
    return TabularModel(hidden=(16,), epochs=60, lr=1e-2, seed=0).fit(table(400))


def test_a_text_target_is_a_classification_with_sorted_classes(classifier):
    assert classifier.target.task == "classification"
    assert classifier.target.classes == ["heavy", "light", "medium"]
    assert classifier.training["task_reason"] == "it holds text"
    assert classifier.preprocessor.names == ["size", "color", "weight"]
    assert classifier.network.sizes == (5, 16, 3)
    rows = classifier.training["rows"]
    assert sum(rows.values()) == 400 and abs(rows["test"] - 80) <= 3


def test_predictions_match_columns_by_name_and_ignore_others(classifier):
    frame = table(30, seed=1)
    expected = classifier.predict(frame)
    shuffled = frame[["weight", "label", "color", "size"]].assign(extra=1.0)
    np.testing.assert_array_equal(classifier.predict(shuffled), expected)
    np.testing.assert_array_equal(classifier.predict(frame.drop(columns="label")), expected)
    assert set(expected) <= {"heavy", "light", "medium"}
    probabilities = classifier.predict_proba(frame)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1)
    np.testing.assert_array_equal(
        np.asarray(classifier.target.classes)[probabilities.argmax(axis=1)], expected)


def test_the_model_learns(classifier):
    assert classifier.evaluate(table(300, seed=2))["accuracy"] > 0.85


def test_a_save_and_load_keeps_everything(classifier, tmp_path):
    classifier.save(tmp_path / "model.fnn")
    loaded = TabularModel.load(tmp_path / "model.fnn")
    frame = table(30, seed=3)
    np.testing.assert_array_equal(loaded.predict(frame), classifier.predict(frame))
    np.testing.assert_array_equal(loaded.predict_proba(frame), classifier.predict_proba(frame))
    assert loaded.config() == classifier.config()
    assert loaded.summary() == classifier.summary()
    assert loaded.settings() == classifier.settings()


def test_fastnn_load_of_a_model_file_says_how_to_load_it(classifier, tmp_path):
    classifier.save(tmp_path / "model.fnn")
    with pytest.raises(fastnn.ModelFileError, match="TabularModel.load"):
        fastnn.load(tmp_path / "model.fnn")


def test_a_plain_network_file_is_not_a_tabular_model(tmp_path):
    fastnn.MLP([3, 2]).save(tmp_path / "plain.npz")
    with pytest.raises(fastnn.ModelFileError, match="network alone.*fastnn.load"):
        TabularModel.load(tmp_path / "plain.npz")
    assert fastnn.load(tmp_path / "plain.npz").sizes == (3, 2)


@pytest.mark.parametrize("labels, kind", [
    (np.array([3, 1, 2] * 20), int),
    (np.array([True, False, True] * 20), bool),
    (np.array([0.5, 1.5, 2.5] * 20), float),
    (np.array(["b", "a", "c"] * 20), str),
])
def test_classes_keep_their_type_through_a_file(tmp_path, labels, kind):
    frame = pd.DataFrame({"x": np.arange(labels.size, dtype=float), "y": labels})
    model = TabularModel(**QUICK).fit(frame, task="classification")
    model.save(tmp_path / "model.fnn")
    loaded = TabularModel.load(tmp_path / "model.fnn")
    assert loaded.target.classes == sorted(set(labels.tolist()))
    assert all(type(c) is kind for c in loaded.target.classes)
    predictions = loaded.predict(frame)
    assert all(isinstance(p.item(), kind) for p in predictions)


def test_categories_that_look_like_numbers_stay_text(tmp_path):
    frame = pd.DataFrame({"code": ["01", "1", "A"] * 20, "y": [0.0, 1.0, 2.0] * 20})
    model = TabularModel(**QUICK).fit(frame)
    assert model.preprocessor.columns[0].categories == ["01", "1", "A"]
    assert model.text_columns() == ["code"]
    with pytest.raises(DataError, match="holds 1 at row 0.*read it as text"):
        model.predict(pd.DataFrame({"code": [1, 1]}))


@pytest.mark.parametrize("values, task, reason", [
    (["a", "b"] * 5, "classification", "it holds text"),
    ([True, False] * 5, "classification", "it holds booleans"),
    ([0, 1, 2, 3, 4] * 2, "classification", "5 distinct integers"),
    (list(range(MAX_INTEGER_CLASSES + 1)), "regression", "more than 20"),
    ([0.5, 1.0] * 5, "regression", "it holds numbers"),
])
def test_the_task_is_inferred_from_the_target(values, task, reason):
    found, why = infer_task(pd.Series(values, name="y"))
    assert found == task and reason in why


def test_a_pandas_category_target_is_a_classification():
    assert infer_task(pd.Series([1, 2, 1], dtype="category", name="y"))[0] == "classification"


def test_regression_predicts_in_the_targets_units(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    color = rng.choice(["red", "blue"], 400)
    frame = pd.DataFrame({"x": x, "color": color,
                          "price": 1000 + 200 * x + 300 * (color == "red")})
    model = TabularModel(hidden=(16,), epochs=80, seed=0).fit(frame)
    assert model.target.task == "regression"
    # standardized by the training rows: close to the whole column's statistics
    assert model.target.mean == pytest.approx(frame.price.mean(), rel=0.05)
    assert model.target.scale == pytest.approx(frame.price.std(), rel=0.2)
    assert model.metrics["test"]["r2"] > 0.9
    predictions = model.predict(frame)
    assert abs(np.mean(predictions) - frame.price.mean()) < 50
    model.save(tmp_path / "model.fnn")
    np.testing.assert_array_equal(TabularModel.load(tmp_path / "model.fnn").predict(frame),
                                  predictions)
    with pytest.raises(ValueError, match="predict_proba is for a classification"):
        model.predict_proba(frame)


def test_an_unseen_category_is_refused_naming_column_value_and_row(classifier):
    frame = table(5, seed=4)
    frame.loc[3, "color"] = "purple"
    with pytest.raises(DataError, match="column 'color' holds 'purple' at row 3, a category"):
        classifier.predict(frame)


def test_a_missing_column_is_refused_by_name(classifier):
    with pytest.raises(DataError, match="no columns 'size', 'weight'"):
        classifier.predict(table(5)[["color"]])


def test_missing_values_are_refused_naming_columns_and_rows(classifier):
    frame = table(10, seed=5)
    frame.loc[[2, 7], "size"] = np.nan
    frame.loc[4, "color"] = None
    with pytest.raises(DataError, match=r"'size' \(rows 2, 7\), 'color' \(row 4\): the model "
                                        r"was trained without imputation"):
        classifier.predict(frame)
    with pytest.raises(DataError, match=r"'size' \(rows 2, 7\).*--impute"):
        TabularModel(**QUICK).fit(frame, test_size=0.2, val_size=0.2)


def test_imputation_fills_with_the_training_rows_statistics(tmp_path):
    frame = table(100)
    frame.loc[[1, 2], "size"] = np.nan
    frame.loc[5, "color"] = None
    model = TabularModel(impute="median", **QUICK).fit(frame, test_size=0, val_size=0)
    size, color = model.preprocessor.columns[:2]
    assert size.fill == pytest.approx(frame["size"].median())
    assert color.fill == frame["color"].mode().iloc[0]
    new = pd.DataFrame({"size": [np.nan], "color": [None], "weight": [0.0]})
    filled = pd.DataFrame({"size": [size.fill], "color": [color.fill], "weight": [0.0]})
    np.testing.assert_array_equal(model.predict_proba(new), model.predict_proba(filled))
    model.save(tmp_path / "model.fnn")
    assert TabularModel.load(tmp_path / "model.fnn").preprocessor.config() == (
        model.preprocessor.config())


@pytest.mark.parametrize("change, error, message", [
    (lambda f: f.assign(label="same"), DataError, "one class only"),
    (lambda f: f.assign(label=f.label.where(f.index != 3)), DataError,
     r"target 'label' is missing in 1 row \(3\)"),
    (lambda f: f.assign(when=pd.Timestamp("2020-01-01")), DataError, "datetime64"),
    (lambda f: f.assign(mixed=["a", 1] * (len(f) // 2)), DataError, "mixes kinds of values"),
    (lambda f: f.assign(ident=[f"id{i}" for i in range(len(f))]), DataError, "identifier"),
    (lambda f: f.iloc[:4], DataError, "too few to split"),
    (lambda f: f.iloc[:0], DataError, "no rows"),
    (lambda f: f[["label"]], DataError, "no feature columns"),
])
def test_unusable_tables_are_refused(change, error, message):
    with pytest.raises(error, match=message):
        TabularModel(**QUICK).fit(change(table(1200)), target="label")


def test_a_regression_of_text_is_refused():
    with pytest.raises(DataError, match="must hold numbers.*--task classification"):
        TabularModel(**QUICK).fit(table(), task="regression")


def test_options_of_fit_are_checked():
    with pytest.raises(DataError, match="no column 'price' to predict"):
        TabularModel(**QUICK).fit(table(), target="price")
    with pytest.raises(DataError, match="cannot drop 'id'"):
        TabularModel(**QUICK).fit(table(), drop=["id"])
    with pytest.raises(DataError, match="cannot drop 'label': it is the target"):
        TabularModel(**QUICK).fit(table(), drop=["label"])
    with pytest.raises(TypeError, match="drop is a list of column names"):
        TabularModel(**QUICK).fit(table(), drop="size")
    with pytest.raises(ValueError, match="test_size \\+ val_size must be < 1"):
        TabularModel(**QUICK).fit(table(), test_size=0.5, val_size=0.5)
    with pytest.raises(TypeError, match="pandas DataFrame"):
        TabularModel(**QUICK).fit(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="not trained"):
        TabularModel().predict(table())


def test_a_failed_fit_leaves_a_trained_model_as_it_was(classifier):
    before = classifier.config()
    with pytest.raises(DataError):
        classifier.fit(table().assign(label="same"))
    assert classifier.config() == before


def test_dropped_columns_are_not_features():
    frame = table().assign(id=np.arange(120))
    model = TabularModel(**QUICK).fit(frame, target="label", drop=["id"])
    assert model.preprocessor.names == ["size", "color", "weight"]
    assert model.training["dropped"] == ["id"]


# ---- files whose preprocessing lies ---------------------------------------------------------


def rewrite(path, change):
    """Rewrite the model file at ``path`` with its preprocessing JSON changed by ``change``."""
    net, document = io.load_with_preprocessing(path)
    change(document)
    io.save(net, path, preprocessing=document)


def set_in(keys, value):
    def change(document):
        target = document
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


def remove(keys):
    def change(document):
        target = document
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return change


LIES = {
    "unknown key": (set_in(["extra"], 1), "needs"),
    "no metrics": (remove(["metrics"]), "needs"),
    "newer version": (set_in(["version"], 2), "newer fastnn"),
    "feature without name": (remove(["features", 0, "name"]), "features\\[0\\]"),
    "unknown feature kind": (set_in(["features", 0, "kind"], "date"), "features\\[0\\].kind"),
    "scale 0": (set_in(["features", 0, "scale"], 0), "features\\[0\\].scale"),
    "mean text": (set_in(["features", 0, "mean"], "5"), "features\\[0\\].mean"),
    "categories mixed": (set_in(["features", 1, "categories"], ["a", 1, "c"]),
                         "all text, all booleans or all numbers"),
    "categories repeated": (set_in(["features", 1, "categories"], ["a", "a", "c"]), "twice"),
    "categories too few for the network": (set_in(["features", 1, "categories"], ["a", "b"]),
                                           "is not the one"),
    "a feature twice": (set_in(["features", 2, "name"], "size"), "names a column twice"),
    "target a feature": (set_in(["target", "name"], "size"), "also a feature"),
    "one class": (set_in(["target", "classes"], ["a"]), "one class"),
    "four classes": (set_in(["target", "classes"], ["a", "b", "c", "d"]), "is not the one"),
    "regression target": (set_in(["target", "task"], "regression"), "target"),
    "hidden not the network's": (set_in(["settings", "hidden"], [17]), "is not the one"),
    "batch size 0": (set_in(["settings", "batch_size"], 0), "batch_size"),
    "dropout 1": (set_in(["settings", "dropout"], 1.0), "dropout"),
    "activation unknown": (set_in(["settings", "activation"], "swish2"), "activation"),
    "best epoch past the end": (set_in(["training", "best_epoch"], 10 ** 6), "best_epoch"),
    "accuracy above 1": (set_in(["metrics", "test", "accuracy"], 1.5), "accuracy"),
    "confusion not square": (set_in(["metrics", "test", "confusion_matrix"], [[1]]), "3 by 3"),
    "confusion miscounts": (set_in(["metrics", "test", "rows"], 1000), "does not count"),
    "metrics of a regression": (set_in(["metrics", "test"], {"rows": 1, "rmse": 0, "mae": 0,
                                                             "r2": 0}), "metrics.test"),
}


@pytest.mark.parametrize("case", list(LIES))
def test_a_model_file_whose_preprocessing_lies_is_model_file_error(classifier, tmp_path, case):
    change, message = LIES[case]
    classifier.save(tmp_path / "model.fnn")
    rewrite(tmp_path / "model.fnn", change)
    with pytest.raises(fastnn.ModelFileError, match=message) as error:
        TabularModel.load(tmp_path / "model.fnn")
    assert "its preprocessing is invalid" in str(error.value)


def test_a_preprocessing_that_is_not_an_object_is_model_file_error(classifier, tmp_path):
    classifier.save(tmp_path / "model.fnn")
    net, _ = io.load_with_preprocessing(tmp_path / "model.fnn")
    io.save(net, tmp_path / "model.fnn", preprocessing=[1, 2])
    with pytest.raises(fastnn.ModelFileError, match="not a JSON object"):
        TabularModel.load(tmp_path / "model.fnn")


def test_the_model_file_holds_the_preprocessing_as_json(classifier, tmp_path):
    classifier.save(tmp_path / "model.fnn")
    with zipfile.ZipFile(tmp_path / "model.fnn") as archive:
        assert "preprocessing.npy" in archive.namelist()
    document = io.load_with_preprocessing(tmp_path / "model.fnn")[1]
    assert json.loads(json.dumps(document)) == classifier.config()
    assert document["features"][1] == {"name": "color", "kind": "categorical",
                                       "categories": ["blue", "green", "red"]}


def test_preprocessor_config_round_trips():
    preprocessor = Preprocessor.fit(table(), ["size", "color"])
    again = Preprocessor.from_config(json.loads(json.dumps(preprocessor.config())))
    np.testing.assert_array_equal(again.transform(table()), preprocessor.transform(table()))
