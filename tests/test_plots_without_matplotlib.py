"""fastnn without matplotlib, its optional `plot` extra: importing fastnn does not import it, and
what needs it (`History.plot`, `fastnn train --plot`) says how to install it, the command line
before any training. They run in new interpreters, one with matplotlib blocked, so they run with
it installed or not."""
from helpers import run_python

INSTALL = 'pip install "fastnn-cpu[plot]"'


def test_importing_fastnn_does_not_import_matplotlib(tmp_path):
    result = run_python("""
        import sys
        import fastnn, fastnn.cli, fastnn.plots
        assert "matplotlib" not in sys.modules, "matplotlib imported"
        """, tmp_path)
    assert result.returncode == 0, result.stderr


def test_without_matplotlib_the_message_says_how_to_install_it(tmp_path):
    result = run_python("""
        import sys
        sys.modules["matplotlib"] = None   # as if it were not installed
        import fastnn
        from fastnn.cli import main
        try:
            fastnn.History(loss=[1.0], best_epoch=0).plot()
        except ImportError as error:
            print("plot:", error)
        sys.exit(main(["train", "--plot", "plot.png"]))
        """, tmp_path)
    assert result.stdout.startswith("plot: plotting a history needs matplotlib, which is not "
                                    f"installed: {INSTALL}")
    # refused before the digits were loaded
    assert "digits" not in result.stdout and result.returncode == 1
    assert result.stderr == (f"fastnn: error: --plot needs matplotlib, which is not installed: "
                             f"{INSTALL}\n")
