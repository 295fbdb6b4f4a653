"""fastnn: fast dense neural networks on the CPU.

Typed Cython kernels do the numeric work; this package is the thin layer that checks input and
exposes the network (`MLP`), the optimizers (`SGD`, `Adam`), training (`MLP.fit`, `History`) and
saving (`MLP.save`, `load`).
"""
from fastnn.io import ModelFileError, load
from fastnn.network import MLP
from fastnn.optimizers import SGD, Adam, Optimizer
from fastnn.training import History

__all__ = ["MLP", "SGD", "Adam", "Optimizer", "History", "load", "ModelFileError"]
__version__ = "0.1.0"
