"""The optional peers of fastnn, each installed by an extra of the distribution (fastnn-cpu) and
imported only by the code that uses it, never by ``import fastnn``."""
import importlib

# Each optional module, by its import name, with the extra that installs it.
EXTRAS = {"pandas": "data", "pyarrow": "data", "matplotlib": "plot", "sklearn": "sklearn",
          "onnx": "onnx", "onnxruntime": "onnx", "skl2onnx": "sklearn-onnx",
          "safetensors": "safetensors", "torch": "torch", "mpi4py": "mpi", "dask": "dask",
          "distributed": "dask", "threadpoolctl": "dask"}


def require(module, purpose):
    """Import the optional dependency ``module``, or raise an ImportError that says how to
    install it.

    Parameters
    ----------
    module : str
        A key of `EXTRAS` ("pandas", "onnx", "torch", ...).
    purpose : str
        What needs it, to start the message: e.g. "reading Parquet files".

    Returns
    -------
    module
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{purpose} needs {module}, which is not installed: "
                          f'pip install "fastnn-cpu[{EXTRAS[module]}]"') from None
