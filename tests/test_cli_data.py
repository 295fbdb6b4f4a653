"""The command line on the user's own files, end to end as a user runs it (`python -m fastnn` in a
subprocess): `fastnn train DATA` on CSV and Parquet files, `predict` from the saved model (columns
reordered, extra columns, no target), `evaluate` and `info`, with the printed metrics held to
scikit-learn's metric functions; and hostile input ending with a clear message and exit status 2,
never a traceback (the many variants of a kind through `fastnn.cli.main` in this process, which
ends the same way and starts faster)."""
import io as text_io
import re
import subprocess
import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
sklearn_metrics = pytest.importorskip("sklearn.metrics")

import fastnn
from fastnn.cli import main

METRIC = re.compile(r"^  (accuracy|balanced accuracy|F1 \(macro\)|RMSE|MAE|R\^2)\s+(\S+)$")
CLASSES = ["heavy", "light", "medium"]


def fastnn_cli(*args):
    """`python -m fastnn ARGS` in a subprocess (exit statuses and tracebacks are real)."""
    return subprocess.run([sys.executable, "-m", "fastnn", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def succeeded(result):
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def refused(result, message):
    """Check that a command ended with status 2 and ``message``, without a traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("fastnn: error: "), result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def refused_in_process(capsys, message, *args):
    """Check that `main(ARGS)` returns status 2 with ``message`` and nothing escapes."""
    assert main([str(arg) for arg in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnn: error: ") and message in err, err


def classification_table(n, seed):
    """An identifier, two numeric columns, a categorical one and a text label that depends on
    all but the identifier."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n) * 10 + 50
    weight = rng.normal(size=n)
    score = weight + (color == "red") * 2 - (size - 50) / 10
    label = np.where(score > 0.7, "heavy", np.where(score > -0.7, "medium", "light"))
    return pd.DataFrame({"id": np.arange(n) + 1000 * seed, "size": size, "color": color,
                         "weight": weight, "label": label})


def regression_table(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    kind = rng.choice(["a", "b"], n)
    return pd.DataFrame({"x": x, "kind": kind,
                         "price": 1000 + 200 * x + 300 * (kind == "a") + rng.normal(size=n)})


def printed_metrics(text):
    """{name: value} of the metric lines in ``text``, the last of each name."""
    return {m.group(1): float(m.group(2)) for line in text.splitlines()
            if (m := METRIC.match(line))}


def printed_confusion_matrix(text):
    """The last confusion matrix in ``text``: (class labels, counts)."""
    lines = text.splitlines()
    start = max(k for k, line in enumerate(lines) if "confusion matrix" in line)
    labels = lines[start + 1].split()
    counts = [[int(n) for n in line.split()[1:]] for line in lines[start + 2:start + 2 +
                                                                     len(labels)]]
    return labels, np.array(counts)


def read_csv_text(text):
    return pd.read_csv(text_io.StringIO(text), dtype={"label": str})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    classification_table(500, 0).to_csv(folder / "train.csv", index=False)
    test = classification_table(200, 1)
    test.to_csv(folder / "test.csv", index=False)
    # new rows as a user has them: columns in another order, an extra one, no target
    test[["weight", "color", "id", "size"]].assign(note="x").to_csv(folder / "new.csv",
                                                                    index=False)
    regression_table(400, 2).to_csv(folder / "prices.csv", index=False)
    regression_table(100, 3).to_csv(folder / "prices_test.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def classifier(folder):
    """The model `fastnn train` saves on train.csv, and what it printed."""
    out = succeeded(fastnn_cli("train", folder / "train.csv", "--drop", "id", "--hidden", "16",
                               "--epochs", "60", "--lr", "0.01", "--quiet", "--save",
                               folder / "model.fnn"))
    return folder / "model.fnn", out


@pytest.fixture(scope="module")
def regressor(folder):
    out = succeeded(fastnn_cli("train", folder / "prices.csv", "--hidden", "16", "--epochs", "80",
                               "--lr", "0.01", "--quiet", "--save", folder / "prices.fnn"))
    return folder / "prices.fnn", out


# ---- classification -------------------------------------------------------------------------


def test_train_reports_the_task_the_split_and_the_held_out_metrics(classifier):
    _, out = classifier
    lines = out.splitlines()
    assert lines[0].endswith("train.csv: 500 rows, 5 columns")
    assert lines[1] == ("target 'label': classification (it holds text), 3 classes: 'heavy', "
                        "'light', 'medium'")
    assert lines[2] == "features: 2 numeric and 1 categorical columns -> 5 inputs"
    assert re.fullmatch(r"split: \d+ training, \d+ validation, \d+ test rows \(stratified by "
                        r"class\)", lines[3])
    assert lines[4] == "network [5, 16, 3], softmax output, cross_entropy loss"
    test_rows = int(re.search(r"\n(\d+) test rows|, (\d+) test rows", out).group(2))
    assert abs(test_rows - 100) <= 2   # a fifth of each class, rounded
    assert f"test metrics ({test_rows} rows):" in out
    metrics = printed_metrics(out)
    assert set(metrics) == {"accuracy", "balanced accuracy", "F1 (macro)"}
    assert metrics["accuracy"] > 0.8
    labels, counts = printed_confusion_matrix(out)
    assert labels == CLASSES and counts.sum() == test_rows


def test_predict_writes_one_class_per_row_matching_columns_by_name(folder, classifier):
    model, _ = classifier
    from_test = read_csv_text(succeeded(fastnn_cli("predict", model, folder / "test.csv")))
    from_new = read_csv_text(succeeded(fastnn_cli("predict", model, folder / "new.csv")))
    assert list(from_new.columns) == ["label"] and len(from_new) == 200
    pd.testing.assert_frame_equal(from_new, from_test)
    assert set(from_new["label"]) <= set(CLASSES)
    expected = fastnn.TabularModel.load(model).predict(pd.read_csv(folder / "new.csv"))
    np.testing.assert_array_equal(from_new["label"], expected)


def test_predict_proba_to_a_file(folder, classifier, tmp_path):
    model, _ = classifier
    out = succeeded(fastnn_cli("predict", model, folder / "new.csv", "--proba", "--out",
                               tmp_path / "p.csv"))
    assert out == f"wrote 200 predictions to {tmp_path / 'p.csv'}\n"
    predictions = pd.read_csv(tmp_path / "p.csv")
    columns = [f"P({label})" for label in CLASSES]
    assert list(predictions.columns) == ["label", *columns]
    np.testing.assert_allclose(predictions[columns].sum(axis=1), 1, atol=1e-12)
    np.testing.assert_array_equal(
        np.array(CLASSES)[predictions[columns].to_numpy().argmax(axis=1)], predictions["label"])


def test_evaluate_prints_scikit_learns_metrics(folder, classifier):
    model, _ = classifier
    out = succeeded(fastnn_cli("evaluate", model, folder / "test.csv"))
    assert out.startswith(f"{model} on {folder / 'test.csv'} (200 rows):")
    truth = pd.read_csv(folder / "test.csv")["label"]
    predicted = read_csv_text(succeeded(fastnn_cli("predict", model, folder / "new.csv")))["label"]
    metrics = printed_metrics(out)
    assert metrics["accuracy"] == pytest.approx(
        sklearn_metrics.accuracy_score(truth, predicted), abs=5e-5)
    assert metrics["balanced accuracy"] == pytest.approx(
        sklearn_metrics.balanced_accuracy_score(truth, predicted), abs=5e-5)
    assert metrics["F1 (macro)"] == pytest.approx(
        sklearn_metrics.f1_score(truth, predicted, average="macro"), abs=5e-5)
    labels, counts = printed_confusion_matrix(out)
    assert labels == CLASSES
    np.testing.assert_array_equal(counts, sklearn_metrics.confusion_matrix(truth, predicted,
                                                                           labels=CLASSES))


def test_info_shows_the_layers_features_classes_settings_and_metrics(classifier):
    model, trained = classifier
    out = succeeded(fastnn_cli("info", model))
    net = fastnn.TabularModel.load(model).network
    assert "fastnn tabular model: classification of 'label'" in out
    assert "classes (3): 'heavy', 'light', 'medium'" in out
    assert re.search(r"'color'\s+categorical, 3 categories \('blue', 'green', 'red'\)", out)
    assert re.search(r"'size'\s+numeric, standardized by mean 4\d\.\d+ and scale", out)
    assert "'id'" not in out.split("network:")[0].split("features")[1]
    assert "dropped columns: 'id'" in out
    assert re.search(r"0\s+Dense\(units=16\)\s+16\s+96\n", out)
    assert f"total: {net.n_params:,} parameters" in out
    assert "training settings: hidden [16], activation relu, epochs 60, lr 0.01" in out
    # the metrics recorded at training time are those train printed
    test_part = out.split("metrics at training time, test rows")[1]
    assert printed_metrics(test_part) == printed_metrics(trained.split("test metrics")[1])


def test_info_of_a_plain_network(tmp_path):
    fastnn.MLP([4, 3, 2], seed=0).save(tmp_path / "plain.npz")
    out = succeeded(fastnn_cli("info", tmp_path / "plain.npz"))
    assert out.startswith("fastnn network, without preprocessing")
    assert "total: 23 parameters" in out


# ---- regression ----------------------------------------------------------------------------


def test_regression_end_to_end(folder, regressor):
    model, trained = regressor
    assert "target 'price': regression (it holds numbers), standardized by mean" in trained
    assert set(printed_metrics(trained)) == {"RMSE", "MAE", "R^2"}
    predicted = pd.read_csv(text_io.StringIO(succeeded(
        fastnn_cli("predict", model, folder / "prices_test.csv"))))["price"]
    truth = pd.read_csv(folder / "prices_test.csv")["price"]
    metrics = printed_metrics(succeeded(fastnn_cli("evaluate", model,
                                                   folder / "prices_test.csv")))
    assert metrics["RMSE"] == pytest.approx(
        sklearn_metrics.root_mean_squared_error(truth, predicted), rel=1e-4)
    assert metrics["MAE"] == pytest.approx(
        sklearn_metrics.mean_absolute_error(truth, predicted), rel=1e-4)
    assert metrics["R^2"] == pytest.approx(sklearn_metrics.r2_score(truth, predicted), abs=5e-5)
    assert metrics["R^2"] > 0.9   # predictions in the target's units, not standardized ones


def test_a_parquet_file_trains_and_predicts(folder, tmp_path):
    pytest.importorskip("pyarrow")
    regression_table(200, 4).to_parquet(tmp_path / "prices.parquet")
    regression_table(20, 5)[["kind", "x"]].to_parquet(tmp_path / "new.parquet")
    succeeded(fastnn_cli("train", tmp_path / "prices.parquet", "--epochs", "5", "--quiet",
                         "--save", tmp_path / "model.fnn"))
    out = succeeded(fastnn_cli("predict", tmp_path / "model.fnn", tmp_path / "new.parquet"))
    predictions = pd.read_csv(text_io.StringIO(out))
    assert list(predictions.columns) == ["price"] and len(predictions) == 20
    # the same rows as CSV give the same predictions
    pd.read_parquet(tmp_path / "new.parquet").to_csv(tmp_path / "new.csv", index=False)
    assert succeeded(fastnn_cli("predict", tmp_path / "model.fnn", tmp_path / "new.csv")) == out


# ---- classes and categories of every type ---------------------------------------------------


def test_integer_classes_and_numeric_looking_categories_survive_the_files(tmp_path):
    rng = np.random.default_rng(0)
    code = rng.choice(["01", "1", "A"], 150)
    frame = pd.DataFrame({"code": code, "x": rng.normal(size=150),
                          "grade": np.where(code == "A", 2, np.where(code == "01", 0, 1))})
    frame.to_csv(tmp_path / "grades.csv", index=False)
    out = succeeded(fastnn_cli("train", tmp_path / "grades.csv", "--epochs", "40", "--lr", "0.05",
                               "--quiet", "--save", tmp_path / "model.fnn"))
    assert "classification (it holds 3 distinct integers), 3 classes: 0, 1, 2" in out
    # "01" and "1" are two categories: the new file, whose codes all look like numbers, is read
    # as text as the model expects
    pd.DataFrame({"code": ["01", "1", "01"], "x": [0.0, 0.0, 0.0]}).to_csv(tmp_path / "new.csv",
                                                                          index=False)
    out = succeeded(fastnn_cli("predict", tmp_path / "model.fnn", tmp_path / "new.csv"))
    assert out.splitlines() == ["grade", "0", "1", "0"]


def test_impute_fills_missing_values_in_training_and_prediction(tmp_path):
    frame = classification_table(200, 6)
    frame.loc[[3, 10], "size"] = np.nan
    frame.loc[5, "color"] = np.nan
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    succeeded(fastnn_cli("train", tmp_path / "gaps.csv", "--impute", "median", "--epochs", "3",
                         "--quiet", "--save", tmp_path / "model.fnn"))
    frame.drop(columns="label").iloc[:12].to_csv(tmp_path / "new.csv", index=False)
    out = succeeded(fastnn_cli("predict", tmp_path / "model.fnn", tmp_path / "new.csv"))
    assert len(out.splitlines()) == 13
    info = succeeded(fastnn_cli("info", tmp_path / "model.fnn"))
    assert re.search(r"'size'\s+numeric, .*, missing -> \d+\.\d+\n", info)
    assert re.search(r"'color'\s+categorical, .*, missing -> '(blue|green|red)'\n", info)
    assert "impute median" in info


# ---- hostile input -------------------------------------------------------------------------


def write(folder, name, text):
    (folder / name).write_bytes(text.encode("latin-1"))
    return folder / name


def test_tab_separated_compressed_and_bom_files_are_read(tmp_path):
    from fastnn.tables import read_table
    frame = classification_table(20, 7)
    frame.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    frame.to_csv(tmp_path / "t.csv.gz", index=False)
    frame.to_csv(tmp_path / "bom.csv", index=False, encoding="utf-8-sig")
    for name in ("t.tsv", "t.csv.gz", "bom.csv"):
        read = read_table(tmp_path / name)
        assert list(read.columns) == list(frame.columns), name
        assert list(read.index) == list(range(1, 21))   # rows numbered from 1, as messages say
        np.testing.assert_allclose(read["size"], frame["size"], rtol=1e-15)


@pytest.mark.parametrize("make, message", [
    (lambda d: write(d, "empty.csv", ""), "is empty: a data file starts with a header line"),
    (lambda d: write(d, "header.csv", "a,b\n"), "has a header but no data rows"),
    (lambda d: write(d, "gaps.csv", "x,c,y\n1,a,p\n,b,q\n3,,p\n4,a,q\n"),
     "missing values in columns 'x' (row 2), 'c' (row 3): fill them in or drop those rows, or "
     "impute them: --impute mean or median"),
    (lambda d: write(d, "one.csv", "x,y\n1,a\n2,a\n3,a\n"),
     "the target 'y' has one class only ('a'): classification needs two or more"),
    (lambda d: write(d, "blank.csv", "x,y\n1,a\n2,\n3,b\n"),
     "the target 'y' is missing in 1 row (2)"),
    (lambda d: write(d, "dup.csv", "x,x,y\n1,2,a\n"), "more than one column named 'x'"),
    (lambda d: write(d, "unnamed.csv", ",x,y\n0,1,a\n"), "column 1 of"),
    (lambda d: write(d, "semicolons.csv", "x;y\n1;a\n"), "is it separated by ';'?"),
    (lambda d: write(d, "data.xlsx", "x,y\n"), "cannot tell the format"),
    (lambda d: d / "absent.csv", "no data file at"),
    (lambda d: d, "cannot tell the format"),
    (lambda d: write(d, "few.csv", "x,y\n1,a\n2,b\n3,a\n"), "too few to split"),
    (lambda d: write(d, "huge.csv", "x,y\n" + "1e400,a\n" + "2,b\n3,a\n" * 5),
     "column 'x' holds infinity at row 1"),
    (lambda d: write(d, "latin1.csv", "x,y\n1,caf\xe9\n"), "is not UTF-8 text"),
])
def test_unusable_data_files_are_refused_by_train(tmp_path, capsys, make, message):
    refused_in_process(capsys, message, "train", make(tmp_path), "--epochs", "1")


def test_an_empty_file_ends_the_process_with_status_2_and_no_traceback(tmp_path):
    refused(fastnn_cli("train", write(tmp_path, "empty.csv", "")), "is empty")


def test_a_target_column_absent_is_refused(folder, capsys):
    refused_in_process(capsys, "the data have no column 'price' to predict (its columns: ['id', "
                               "'size', 'color', 'weight', 'label'])",
                       "train", folder / "train.csv", "--target", "price")


def test_a_one_class_target_ends_the_process_with_status_2_and_no_traceback(tmp_path):
    refused(fastnn_cli("train", write(tmp_path, "one.csv", "x,y\n1,a\n2,a\n3,a\n")),
            "the target 'y' has one class only")


def test_a_target_column_absent_ends_the_process_with_status_2(folder):
    refused(fastnn_cli("train", folder / "train.csv", "--target", "price"),
            "the data have no column 'price' to predict (its columns: ['id', 'size', 'color', "
            "'weight', 'label'])")


def test_a_regression_of_text_is_refused(folder, capsys):
    refused_in_process(capsys, "the target 'label' must hold numbers, but row 1 holds",
                       "train", folder / "train.csv", "--task", "regression")


def test_missing_values_end_the_process_with_status_2_and_no_traceback(tmp_path):
    refused(fastnn_cli("train", write(tmp_path, "gaps.csv", "x,y\n1,a\n,b\n3,a\n")),
            "missing values in column 'x' (row 2)")


def test_a_parquet_file_that_is_not_one_is_refused(tmp_path):
    pytest.importorskip("pyarrow")
    refused(fastnn_cli("train", write(tmp_path, "fake.parquet", "x,y\n1,2\n")),
            "cannot read")


@pytest.mark.parametrize("rows, message", [
    ("weight,color\n1.0,red\n", "the data have no column 'size' (its columns: ['weight', "
                                "'color'])"),
    ("id,size,color,weight\n1,50,purple,0.5\n", "column 'color' holds 'purple' at row 1, a "
                                                "category the model did not see in training (it "
                                                "knows 'blue', 'green', 'red')"),
    ("id,size,color,weight\n1,50,red,0.5\n2,,red,\n", "missing values in columns 'size' (row 2), "
                                                      "'weight' (row 2): the model was trained "
                                                      "without imputation"),
    ("id,size,color,weight\n1,fifty,red,0.5\n", "column 'size' must hold numbers, but row 1 "
                                                "holds 'fifty'"),
])
def test_unusable_rows_are_refused_by_predict(tmp_path, capsys, classifier, rows, message):
    model, _ = classifier
    refused_in_process(capsys, message, "predict", model, write(tmp_path, "rows.csv", rows))


def test_an_unseen_category_ends_the_process_with_status_2_and_no_traceback(tmp_path,
                                                                            classifier):
    rows = write(tmp_path, "rows.csv", "size,color,weight\n50,purple,0.5\n")
    refused(fastnn_cli("predict", classifier[0], rows), "column 'color' holds 'purple'")


def test_evaluate_needs_the_target(folder, classifier, tmp_path, capsys):
    model, _ = classifier
    refused(fastnn_cli("evaluate", model, folder / "new.csv"),
            "the data have no column 'label': evaluating needs the true target")
    rows = "id,size,color,weight,label\n1,50,red,0.5,gigantic\n"
    refused_in_process(capsys, "the target 'label' holds 'gigantic' at row 1, a class the model "
                               "does not know",
                       "evaluate", model, write(tmp_path, "rows.csv", rows))


def test_model_files_that_cannot_be_used_are_refused(folder, classifier, regressor, tmp_path,
                                                     capsys):
    refused(fastnn_cli("predict", tmp_path / "absent.fnn", folder / "new.csv"),
            "no fastnn model file at")
    refused_in_process(capsys, "not a readable fastnn model file", "predict",
                       folder / "train.csv", folder / "new.csv")
    fastnn.MLP([4, 3]).save(tmp_path / "plain.npz")
    refused_in_process(capsys, "holds a network alone, without the preprocessing of a table",
                       "predict", tmp_path / "plain.npz", folder / "new.csv")
    refused_in_process(capsys, "--proba gives class probabilities", "predict", regressor[0],
                       folder / "prices_test.csv", "--proba")
    refused_in_process(capsys, "--out writes CSV", "predict", classifier[0], folder / "new.csv",
                       "--out", tmp_path / "p.parquet")


def test_options_of_a_data_file_need_one():
    refused(fastnn_cli("train", "--target", "y", "--impute", "mean"),
            "--target, --impute: only with a data file")


def test_a_closed_pipe_ends_training_on_a_file_quietly(folder):
    command = subprocess.Popen([sys.executable, "-m", "fastnn", "train", folder / "train.csv",
                                "--epochs", "200"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    first = command.stdout.readline()
    command.stdout.close()
    _, err = command.communicate(timeout=300)
    assert first.endswith(b"train.csv: 500 rows, 5 columns\n")
    assert command.returncode in (0, 1) and err == b"", err.decode()


@pytest.mark.parametrize("module, name", [("pandas", "data.csv"), ("pyarrow", "data.parquet")])
def test_a_missing_optional_dependency_says_how_to_install_it(tmp_path, capsys, monkeypatch,
                                                              module, name):
    monkeypatch.setitem(sys.modules, module, None)   # import fails as if it were not installed
    assert main(["train", str(write(tmp_path, name, "x,y\n1,2\n"))]) == 1
    err = capsys.readouterr().err
    assert f"needs {module}, which is not installed: pip install \"fastnn-cpu[data]\"" in err
