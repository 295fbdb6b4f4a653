"""The layers a network is built from: `Dense`, `Activation`, `Dropout` and `BatchNorm`.

A layer here is a description (its kind and settings); `fastnn.MLP.from_layers` turns a list of
them into a network whose engine lays out their parameters, buffers and workspace once. The
layers' numbers live in the network (``net.named_parameters()``, ``net.named_buffers()``).
"""
import numpy as np

from fastnn import registry
from fastnn._validation import MAX_WIDTH, check_choice, check_int, check_real

__all__ = ["Layer", "Dense", "Activation", "Dropout", "BatchNorm", "from_config", "stream_key"]


def stream_key(seed):
    """The dropout generator's 64-bit stream key for a seed (None: fresh entropy)."""
    sequence = np.random.SeedSequence(seed, spawn_key=(0x64726F70,))
    return int(sequence.generate_state(1, np.uint64)[0])


class Layer:
    """Base class of the layer descriptions; see `Dense`, `Activation`, `Dropout`, `BatchNorm`."""

    kind = None

    def __setattr__(self, name, value):
        # a description is fixed once made: a network built from it, and the files it saves,
        # must not change under it
        if name in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.{name} cannot be changed; make a new "
                                 f"layer")
        super().__setattr__(name, value)

    def spec(self, width):
        """The engine's tuple (kind, act, n_out, alpha, eps, affine) for an input of ``width``."""
        raise NotImplementedError

    def config(self):
        """The layer as a JSON-ready dict (see `from_config`)."""
        return {"kind": self.kind, **self._settings()}

    def _settings(self):
        raise NotImplementedError

    def __eq__(self, other):
        return type(other) is type(self) and other.config() == self.config()

    def __hash__(self):
        return hash(tuple(sorted(self.config().items())))

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}({settings})"


class Dense(Layer):
    """An affine layer ``Z = A @ W + b``, as ``torch.nn.Linear`` (W is its weight transposed).

    Parameters
    ----------
    units : int
        The output width (>= 1).
    bias : bool, default True
        With the bias b; without, as ``torch.nn.Linear(bias=False)``, the usual choice before a
        `BatchNorm`, which subtracts any bias again.
    """

    kind = "dense"

    def __init__(self, units, bias=True):
        self.units = check_int("units", units, 1, maximum=MAX_WIDTH)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.bias = bias

    def spec(self, width):
        return (registry.LAYERS["dense"].code, 0, self.units, 0.0, 0.0, self.bias)

    def _settings(self):
        return {"units": self.units, **({} if self.bias else {"bias": False})}


class Activation(Layer):
    """An activation function applied elementwise (softmax: along each row).

    Parameters
    ----------
    name : str
        One of ``fastnn.registry.ACTIVATIONS``.
    **parameter
        The activation's one parameter by its name, for those that have one.
    """

    kind = "activation"

    def __init__(self, name, **parameter):
        self.name = check_choice("activation", name, tuple(registry.ACTIVATIONS))
        info = registry.ACTIVATIONS[name]
        allowed = {info.parameter} if info.parameter else set()
        if set(parameter) - allowed:
            raise TypeError(
                f"activation {name!r} takes "
                f"{'the parameter ' + repr(info.parameter) if allowed else 'no parameter'}"
                f", got {sorted(parameter)}")
        self.alpha = (check_real(info.parameter, parameter.get(info.parameter, info.default),
                                 low=0) if info.parameter else 0.0)

    def spec(self, width):
        return (registry.LAYERS["activation"].code, registry.ACTIVATIONS[self.name].code, width,
                self.alpha, 0.0, False)

    def _settings(self):
        info = registry.ACTIVATIONS[self.name]
        return {"name": self.name, **({info.parameter: self.alpha} if info.parameter else {})}


class Dropout(Layer):
    """Inverted dropout, as ``torch.nn.Dropout``: in training each unit is zeroed with probability
    ``rate`` and the others are scaled by ``1 / (1 - rate)``; the identity in evaluation.

    The masks come from the network's counter-based generator, seeded by the network's and by
    `fit`'s seed, so a training run is reproducible.

    Parameters
    ----------
    rate : float
        The probability of dropping a unit, in [0, 1).
    """

    kind = "dropout"

    def __init__(self, rate):
        self.rate = check_real("rate", rate, low=0, high=1, high_open=True)

    def spec(self, width):
        return (registry.LAYERS["dropout"].code, 0, width, self.rate, 0.0, False)

    def _settings(self):
        return {"rate": self.rate}


class BatchNorm(Layer):
    """Batch normalization of each unit, as ``torch.nn.BatchNorm1d``.

    In training, ``xhat = (x - mean) / sqrt(var + eps)`` with the batch's mean and biased
    variance, ``y = gamma xhat + beta``, and the running statistics move by ``momentum``
    towards the batch's (the variance unbiased); in evaluation the running statistics normalize.
    A training batch needs at least 2 rows.

    Parameters
    ----------
    momentum : float, default 0.1
        In [0, 1]: ``running = (1 - momentum) running + momentum batch``.
    eps : float, default 1e-5
        Added to the variance (> 0).
    affine : bool, default True
        Learn gamma (starting at 1) and beta (starting at 0).
    """

    kind = "batch_norm"

    def __init__(self, momentum=0.1, eps=1e-5, affine=True):
        self.momentum = check_real("momentum", momentum, low=0, high=1)
        self.eps = check_real("eps", eps, low=0)
        if self.eps == 0:
            raise ValueError("eps must be > 0")
        if not isinstance(affine, bool):
            raise TypeError(f"affine must be True or False, got {affine!r}")
        self.affine = affine

    def spec(self, width):
        return (registry.LAYERS["batch_norm"].code, 0, width, self.momentum, self.eps,
                self.affine)

    def _settings(self):
        return {"momentum": self.momentum, "eps": self.eps, "affine": self.affine}


KINDS = {cls.kind: cls for cls in (Dense, Activation, Dropout, BatchNorm)}


def from_config(config):
    """The layer that ``Layer.config()`` described."""
    if not isinstance(config, dict) or config.get("kind") not in KINDS:
        raise ValueError(f"not a layer description: {config!r}")
    settings = {k: v for k, v in config.items() if k != "kind"}
    if config["kind"] == "activation":
        return Activation(**settings)
    return KINDS[config["kind"]](**settings)
