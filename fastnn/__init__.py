"""fastnn: fast dense neural networks on the CPU.

Typed Cython kernels do the numeric work; this package is the thin layer that checks input and
exposes the network (`MLP`, built from `fastnn.layers`), the optimizers (`SGD`, `Adam`, `AdamW`,
`RMSprop`), their learning-rate schedules (`fastnn.schedules`), training (`MLP.fit`, `History`,
with `fastnn.callbacks` and resumable checkpoints) and saving (`MLP.save`, `load`: ``.npz`` or
``.safetensors`` files). `TabularModel` trains on a table (a pandas DataFrame) and keeps the
preprocessing prediction needs. `to_torch` and `from_torch` turn a network into a
``torch.nn.Sequential`` and back; `MLP.to_onnx` exports it. `fastnn.registry` lists every layer
kind, activation, loss, optimizer and schedule the engine knows. `fit_many` trains several
networks at once in threads, `Ensemble` averages their outputs, and `fastnn.threads` chooses (and
lets a user cap) the BLAS threads of fastnn's products.
"""
import importlib

from fastnn import (
    _built,  # noqa: F401 (first: a clear error in an unbuilt checkout)
    callbacks,
    layers,
    registry,
    schedules,
    threads,
)
from fastnn._validation import CheckedData
from fastnn._version import __version__
from fastnn.ensemble import Ensemble
from fastnn.io import ModelFileError, load
from fastnn.many import fit_many
from fastnn.network import MLP
from fastnn.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from fastnn.tabular import TabularModel
from fastnn.training import History

__all__ = ["MLP", "SGD", "Adam", "AdamW", "RMSprop", "Optimizer", "History", "CheckedData", "load",
           "ModelFileError", "TabularModel", "Ensemble", "fit_many", "callbacks", "layers",
           "registry", "schedules", "threads", "__version__"]

# Functions whose module imports an optional peer: imported on first use (PEP 562), so that
# `import fastnn` never imports PyTorch. Not in __all__: `from fastnn import *` would import it.
LAZY = {"to_torch": "fastnn.pytorch", "from_torch": "fastnn.pytorch"}


def __getattr__(name):
    """The functions of `LAZY`, their module imported on first use."""
    if name in LAZY:
        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")


def __dir__():
    """The package's names, the lazy ones among them."""
    return sorted([*globals(), *LAZY])
