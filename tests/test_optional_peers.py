"""The heavy peers are optional: ``import fastnn`` imports none of them (each is imported by the
code that uses it), and code that needs a missing one says which extra installs it."""
import os
import subprocess
import sys

import pytest

import fastnn

PEERS = ("torch", "onnx", "onnxruntime", "skl2onnx", "safetensors", "sklearn", "pandas",
         "pyarrow", "mpi4py", "dask", "distributed", "dask_ml", "optuna", "threadpoolctl")


def run(code):
    """Run ``code`` in a new interpreter with this fastnn, and return what it prints."""
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=environment).stdout.strip()


def test_import_fastnn_imports_no_peer():
    code = ("import sys, fastnn, fastnn.io, fastnn.onnx_export, fastnn.safetensors_file, "
            "fastnn.distributed, fastnn.streams, fastnn.cluster, fastnn.tuning; "
            f"print(sorted(m for m in {PEERS!r} if m in sys.modules))")
    assert run(code) == "[]"


def test_to_torch_imports_torch_on_first_use():
    pytest.importorskip("torch")
    code = ("import sys, fastnn; before = 'torch' in sys.modules; fastnn.to_torch; "
            "print(before, 'torch' in sys.modules, 'to_torch' in dir(fastnn))")
    assert run(code) == "False True True"


@pytest.mark.parametrize("blocked, code, extra", [
    ("torch", "fastnn.to_torch", "torch"),
    ("torch", "from fastnn import from_torch", "torch"),
    ("onnx", "fastnn.MLP([2, 1]).to_onnx()", "onnx"),
    ("safetensors", "import tempfile; fastnn.MLP([2, 1]).save(tempfile.mktemp('.safetensors'))",
     "safetensors"),
    ("skl2onnx", "import fastnn.sklearn; fastnn.sklearn.register_skl2onnx()", "sklearn-onnx"),
    ("mpi4py", "import fastnn.distributed; fastnn.distributed.shard(4)", "mpi"),
    ("distributed", "import fastnn.cluster; fastnn.cluster.limit_blas_threads(None)", "dask"),
    ("dask", "import fastnn.cluster; fastnn.cluster.lazy_predict(fastnn.MLP([2, 1]), 'forward', "
     "None)", "dask"),
])
def test_a_missing_peer_is_named_with_its_extra(blocked, code, extra):
    if blocked == "skl2onnx":
        pytest.importorskip("sklearn")
    script = (f"import sys; sys.modules[{blocked!r}] = None; import fastnn\n"
              f"try:\n    {code}\nexcept ImportError as error:\n    print(error)")
    assert f'pip install "fastnn-cpu[{extra}]"' in run(script)


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'to_keras'"):
        fastnn.to_keras  # noqa: B018
