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
from fastnn import cli
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


def run_cli(*options, stdout=subprocess.PIPE):
    """`python -m fastnn train ...` in a subprocess (tracebacks and exit statuses are real)."""
    return subprocess.run([sys.executable, "-m", "fastnn", "train", "--quiet", *options],
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120)


@pytest.mark.parametrize("options, status, message", [
    (["--hidden", "1000000000"], 1, "a network of 75,000,000,010 parameters needs"),
    (["--hidden", str(10 ** 30)], 2, "hidden sizes must be at most 2147483647"),
    (["--epochs", str(10 ** 400)], 2, "argument --epochs: must be at most"),
    (["--seed", str(2 ** 64)], 2, "argument --seed: must be at most"),
    (["--seed", "-1"], 2, "argument --seed: must be at least 0"),
    (["--batch-size", str(2 ** 63)], 1, "batch_size must be <="),
    (["--batch-size", str(10 ** 400)], 1, "batch_size must be <="),
    (["--patience", str(2 ** 64)], 1, "patience must be <="),
    (["--lr", "1e400"], 1, "lr must be finite"),
    (["--l2", str(10 ** 400)], 1, "l2 must be finite"),
    (["--dropout", str(10 ** 400)], 1, "dropout must be finite"),
    (["--dropout", "nan"], 1, "dropout must be finite"),
])
def test_huge_numbers_end_with_a_message_not_a_traceback(options, status, message):
    result = run_cli("--epochs", "1", *options)
    assert result.returncode == status, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def inside_a_file(folder):
    (folder / "file").write_text("")
    return folder / "file" / "model.npz"


@pytest.mark.parametrize("make_path, message", [
    (lambda tmp: tmp, "is a folder"),
    (lambda tmp: tmp / "missing" / "model.npz", "does not exist"),
    (inside_a_file, "is not a folder"),
])
def test_an_unwritable_save_path_is_refused_before_training(tmp_path, make_path, message):
    result = run_cli("--epochs", "1", "--save", str(make_path(tmp_path)))
    assert result.returncode == 1
    assert result.stderr.startswith("fastnn: error: cannot save the model") and message in (
        result.stderr)
    # refused before the data were even loaded, let alone a network trained
    assert result.stdout == ""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root may write in any folder")
def test_a_read_only_save_folder_is_refused_before_training(tmp_path):
    tmp_path.chmod(0o500)
    try:
        result = run_cli("--epochs", "1", "--save", str(tmp_path / "model.npz"))
    finally:
        tmp_path.chmod(0o700)
    assert result.returncode == 1 and "is not writable" in result.stderr
    assert result.stdout == ""


def test_a_closed_pipe_ends_the_command_quietly():
    # `fastnn train | head -1`: the reader leaves after the first line
    command = subprocess.Popen([sys.executable, "-m", "fastnn", "train", "--epochs", "50"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = command.stdout.readline()
    command.stdout.close()
    _, err = command.communicate(timeout=120)
    assert first.startswith(b"digits:")
    assert command.returncode in (0, 1) and err == b"", err.decode()


def test_checkpoint_options_are_checked_before_training(tmp_path, capsys):
    assert main(QUICK + ["--resume", str(tmp_path / "absent.ckpt")]) == 2
    assert "no fastnn checkpoint at" in capsys.readouterr().err
    assert main(QUICK + ["--checkpoint", str(tmp_path / "missing" / "run.ckpt")]) == 1
    err = capsys.readouterr().err
    assert "cannot write the checkpoint" in err and "does not exist" in err
    model = tmp_path / "model.npz"
    assert main(QUICK + ["--save", str(model)]) == 0
    assert main(QUICK + ["--resume", str(model)]) == 2
    assert "a model file, not a checkpoint" in capsys.readouterr().err


def test_train_resumes_from_its_checkpoint(tmp_path, capsys):
    path = tmp_path / "run.ckpt"
    assert main(QUICK + ["--checkpoint", str(path)]) == 0
    capsys.readouterr()
    assert main([*QUICK[:2], "5", *QUICK[3:], "--resume", str(path)]) == 0
    resumed = capsys.readouterr().out
    assert main([*QUICK[:2], "5", *QUICK[3:]]) == 0
    whole = capsys.readouterr().out
    assert resumed.splitlines()[-2:] == whole.splitlines()[-2:]
    # a checkpoint of other settings is refused
    assert main(QUICK + ["--resume", str(path), "--hidden", "32"]) == 2
    assert "of another network" in capsys.readouterr().err


def test_a_plot_of_no_epoch_is_not_drawn(tmp_path, capsys):
    # Ctrl-C in the first epoch leaves a History without epochs
    args = cli.parser().parse_args(["train", "--plot", str(tmp_path / "plot.png")])
    cli.write_plot(args, fastnn.History(interrupted=True), None, None, "title")
    assert "no epoch completed: nothing plotted" in capsys.readouterr().out
    assert not (tmp_path / "plot.png").exists()
