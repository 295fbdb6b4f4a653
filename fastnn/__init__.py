"""fastnn: fast dense neural networks on the CPU.

Typed Cython kernels do the numeric work; this package is the thin layer that checks input and
exposes the network (`MLP`, built from `fastnn.layers`), the optimizers (`SGD`, `Adam`, `AdamW`,
`RMSprop`), their learning-rate schedules (`fastnn.schedules`), training (`MLP.fit`, `History`,
with `fastnn.callbacks` and resumable checkpoints) and saving (`MLP.save`, `load`).
`TabularModel` trains on a table (a pandas DataFrame) and keeps the preprocessing prediction
needs. `fastnn.registry` lists every layer kind, activation, loss,
optimizer and schedule the engine knows.
"""
from fastnn import callbacks, layers, registry, schedules
from fastnn._validation import CheckedData
from fastnn._version import __version__
from fastnn.io import ModelFileError, load
from fastnn.network import MLP
from fastnn.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from fastnn.tabular import TabularModel
from fastnn.training import History

__all__ = ["MLP", "SGD", "Adam", "AdamW", "RMSprop", "Optimizer", "History", "CheckedData", "load",
           "ModelFileError", "TabularModel", "callbacks", "layers", "registry", "schedules",
           "__version__"]
