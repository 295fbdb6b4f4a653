"""The `fastnn` command line end to end: `fastnn train` trains on the bundled digits and prints the
test accuracy (>= 0.95 with the defaults), `--save` writes a loadable model, bad options end with
an error message and exit status instead of a traceback, and the installed console script runs."""
import os
import re
import shutil
import subprocess
import sys

import pytest

import fastnn
from fastnn.cli import main

ACCURACY_LINE = re.compile(r"test accuracy: (0\.\d{3}|1\.000)")
QUICK = ["train", "--epochs", "3", "--quiet", "--seed", "0"]


def test_train_prints_the_test_accuracy_last(capsys):
    assert main(QUICK) == 0
    out, err = capsys.readouterr()
    assert re.fullmatch(r"test accuracy: 0\.\d{3}", out.splitlines()[-1])
    assert "kept epoch" in out and err == ""


def test_train_is_reproducible_for_a_seed(capsys):
    outputs = []
    for _ in range(2):
        assert main(QUICK) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]


def test_save_writes_a_loadable_model(tmp_path, capsys):
    path = tmp_path / "digits.model"
    assert main(QUICK + ["--hidden", "16,8", "--save", str(path)]) == 0
    assert f"saved to {path}" in capsys.readouterr().out
    net = fastnn.load(path)
    assert net.sizes == (64, 16, 8, 10)
    assert (net.activation, net.output_activation, net.loss_name) == (
        "relu", "softmax", "cross_entropy")


@pytest.mark.parametrize("option, value, message", [
    ("--hidden", "0", "hidden sizes must be positive"),
    ("--hidden", "-3", "hidden sizes must be positive"),
    ("--hidden", "abc", "hidden sizes are integers separated by commas"),
    ("--hidden", "64,,8", "hidden sizes are integers separated by commas"),
    ("--epochs", "many", "argument --epochs: invalid int value"),
    ("--epochs", "-1", "argument --epochs: must be at least 1"),
    ("--lr", "fast", "argument --lr: invalid float value"),
])
def test_unparsable_options_exit_with_a_usage_error(capsys, option, value, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", option, value, "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("options, message", [
    (["--lr", "-1"], "lr must be >= 0"),
    (["--batch-size", "0"], "batch_size must be >= 1"),
    (["--patience", "0"], "patience must be >= 1"),
    (["--l2", "-0.5"], "l2 must be >= 0"),
    (["--save", os.path.join("no", "such", "folder", "model.npz")], "does not exist"),
])
def test_invalid_settings_exit_with_status_1_and_a_message(capsys, options, message):
    assert main(["train", "--quiet", "--epochs", "1", *options]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastnn: error:") and message in err


def test_zero_epochs_report_the_untrained_network_or_reject_the_option(capsys):
    try:
        status = main(["train", "--quiet", "--epochs", "0"])
    except SystemExit as exit_info:
        status = exit_info.code
    out, err = capsys.readouterr()
    if status == 0:
        assert ACCURACY_LINE.fullmatch(out.splitlines()[-1])
    else:
        assert "epochs" in err, err


def test_no_command_prints_the_help(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


def test_default_training_reaches_95_percent_test_accuracy(capsys):
    assert main(["train", "--quiet"]) == 0
    accuracy = ACCURACY_LINE.fullmatch(capsys.readouterr().out.splitlines()[-1])
    assert accuracy is not None and float(accuracy.group(1)) >= 0.95


def test_console_script_runs():
    script = shutil.which("fastnn", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("no fastnn console script beside this Python (package not installed)")
    result = subprocess.run([script, "train", "--epochs", "2", "--quiet"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert ACCURACY_LINE.fullmatch(result.stdout.splitlines()[-1])


def test_train_builds_the_layers_it_is_asked_for(tmp_path):
    path = tmp_path / "model.npz"
    result = subprocess.run(
        [sys.executable, "-m", "fastnn", "train", "--epochs", "3", "--quiet", "--hidden", "16",
         "--activation", "leaky_relu", "--dropout", "0.2", "--batch-norm", "--save", str(path)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    net = fastnn.load(path)
    assert [layer.kind for layer in net.layers] == ["dense", "batch_norm", "activation",
                                                    "dropout", "dense", "activation"]
    assert net.layers[2].name == "leaky_relu"
