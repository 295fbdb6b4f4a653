"""Importing fastnn where something is missing says what to do: a source checkout whose
extensions were not built says how to build them; fastnn.sklearn without scikit-learn says which
extra installs it."""
import os
import shutil

import fastnn

from helpers import run_python


def test_an_unbuilt_checkout_says_how_to_build_it(tmp_path):
    source = os.path.dirname(fastnn.__file__)
    shutil.copytree(source, tmp_path / "fastnn",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    # the child imports the copy: its folder comes first on sys.path, and an editable install's
    # finder (which would find the built extensions elsewhere) is taken out
    result = run_python("""
        import sys
        sys.meta_path[:] = [finder for finder in sys.meta_path
                            if not getattr(finder, "__module__", "").startswith("__editable__")]
        import fastnn
        """, tmp_path)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError: fastnn's compiled extensions are not built")
    assert "build_ext --inplace" in message and "pip install ." in message


def test_fastnn_sklearn_without_scikit_learn_names_the_extra(tmp_path):
    result = run_python("""
        import sys
        sys.modules["sklearn"] = None  # as if scikit-learn were not installed
        import fastnn
        import fastnn.sklearn
        """, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        'ImportError: fastnn.sklearn needs scikit-learn, which is not installed: '
        'pip install "fastnn-cpu[sklearn]"')
