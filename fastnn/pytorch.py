"""fastnn networks as PyTorch modules, and back: `to_torch` and `from_torch`.

Each layer kind has its PyTorch twin (`fastnn.registry` names it): `fastnn.layers.Dense` is
``torch.nn.Linear`` (whose ``weight`` is W transposed), `Dropout` is ``torch.nn.Dropout``,
`BatchNorm` is ``torch.nn.BatchNorm1d`` with its running statistics, and each activation its
module (`ACTIVATION_MODULES`); the ``exp`` output, which torch has no module for, is `Exp`. The
numbers are copied exactly, both ways, in the network's dtype (float32 or float64).

PyTorch is an optional peer (``pip install "fastnn-cpu[torch]"``): this module imports it, and
``import fastnn`` imports this module only when ``fastnn.to_torch`` or ``fastnn.from_torch`` is
first used.
"""
import numpy as np

from fastnn import registry
from fastnn._extras import require
from fastnn.layers import Activation, BatchNorm, Dense, Dropout
from fastnn.network import MLP, _views

torch = require("torch", "fastnn.to_torch and fastnn.from_torch")

__all__ = ["to_torch", "from_torch", "Exp", "ACTIVATION_MODULES", "DEFAULT_LOSSES"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
# The loss `from_torch` gives a network by its output activation, unless told another.
DEFAULT_LOSSES = {"identity": "squared_error", "sigmoid": "cross_entropy",
                  "softmax": "cross_entropy", "exp": "poisson"}


class Exp(torch.nn.Module):
    """``exp(x)`` elementwise: fastnn's ``exp`` output (a rate, for counts), which
    ``torch.nn`` has no module for."""

    def forward(self, x):
        """``torch.exp(x)``."""
        return torch.exp(x)


# Each activation's module, built from the activation (its parameter, `Activation.alpha`).
ACTIVATION_MODULES = {
    "identity": lambda a: torch.nn.Identity(),
    "sigmoid": lambda a: torch.nn.Sigmoid(),
    "relu": lambda a: torch.nn.ReLU(),
    "tanh": lambda a: torch.nn.Tanh(),
    "softmax": lambda a: torch.nn.Softmax(dim=1),
    "leaky_relu": lambda a: torch.nn.LeakyReLU(negative_slope=a.alpha),
    "elu": lambda a: torch.nn.ELU(alpha=a.alpha),
    "gelu": lambda a: torch.nn.GELU(),
    "gelu_tanh": lambda a: torch.nn.GELU(approximate="tanh"),
    "silu": lambda a: torch.nn.SiLU(),
    "softplus": lambda a: torch.nn.Softplus(),
    "exp": lambda a: Exp(),
}


def to_torch(net):
    """The network as a ``torch.nn.Sequential`` with the same layers and numbers.

    Parameters
    ----------
    net : fastnn.MLP

    Returns
    -------
    torch.nn.Sequential
        In evaluation mode (``.eval()``: dropout off, batch normalization by its running
        statistics), where its output equals ``net.forward``; call ``.train()`` to train it.
        Its parameters and buffers are copies, of the network's dtype.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"to_torch takes a fastnn.MLP, got {type(net).__name__}")
    dtype = DTYPES[net.dtype.name]
    state = net.state_dict()   # one consistent snapshot, even while another thread trains
    named = {**_views(state["params"], net._param_slices),
             **_views(state["buffers"], net._buffer_slices)}
    modules, width = [], net.sizes[0]
    with torch.no_grad():
        for k, layer in enumerate(net.layers):
            if layer.kind == "dense":
                module = torch.nn.Linear(width, layer.units, bias=layer.bias, dtype=dtype)
                module.weight.copy_(torch.from_numpy(named[f"{k}.W"].T.copy()))
                if layer.bias:
                    module.bias.copy_(torch.from_numpy(named[f"{k}.b"]))
                width = layer.units
            elif layer.kind == "batch_norm":
                module = torch.nn.BatchNorm1d(width, eps=layer.eps, momentum=layer.momentum,
                                              affine=layer.affine, dtype=dtype)
                if layer.affine:
                    module.weight.copy_(torch.from_numpy(named[f"{k}.gamma"]))
                    module.bias.copy_(torch.from_numpy(named[f"{k}.beta"]))
                module.running_mean.copy_(torch.from_numpy(named[f"{k}.running_mean"]))
                module.running_var.copy_(torch.from_numpy(named[f"{k}.running_var"]))
            elif layer.kind == "dropout":
                module = torch.nn.Dropout(layer.rate)
            else:
                module = ACTIVATION_MODULES[layer.name](layer)
            modules.append(module)
    return torch.nn.Sequential(*modules).eval()


def from_torch(module, loss=None, l2=0.0, *, loss_options=None, seed=None):
    """A fastnn network with the layers and numbers of a ``torch.nn.Sequential``.

    Parameters
    ----------
    module : torch.nn.Sequential
        Of ``Linear``, ``BatchNorm1d`` (with running statistics and a momentum), ``Dropout``
        and the activations of `ACTIVATION_MODULES` (``Softmax`` along dim 1, ``Softplus`` of
        beta 1 and threshold 20, `Exp`), ending with a ``Linear`` and, optionally, the output
        activation (identity, sigmoid, softmax or `Exp`; none is the identity). Its parameters
        and buffers are all float32 or all float64.
    loss : str, optional
        The network's loss (`fastnn.MLP`); by default, by the output activation:
        squared error for identity, cross-entropy for sigmoid and softmax, Poisson for exp.
    l2 : float, default 0.0
    loss_options : dict, optional
        As for `fastnn.MLP`.
    seed : int or None, default None
        Seed of the dropout generator (the numbers are the module's).

    Returns
    -------
    fastnn.MLP
        Of the module's dtype, whose ``forward`` equals the module's output in evaluation mode.

    Raises
    ------
    TypeError
        If ``module`` is not a ``torch.nn.Sequential``.
    ValueError
        If it holds a layer fastnn has no twin of (named with its position), a setting fastnn's
        twin lacks, layers whose widths do not chain, mixed or unsupported dtypes, or values
        that are not finite.
    """
    if not isinstance(module, torch.nn.Sequential):
        raise TypeError(f"from_torch takes a torch.nn.Sequential, got {type(module).__name__}")
    children = list(module)
    if not any(isinstance(child, torch.nn.Linear) for child in children):
        raise ValueError("from_torch needs a module with a Linear layer")
    tensors = [t for t in list(module.parameters()) + list(module.buffers())
               if t.is_floating_point()]
    kinds = {t.dtype for t in tensors}
    names = {dtype: name for name, dtype in DTYPES.items()}
    if len(kinds) != 1 or not kinds <= set(names):
        raise ValueError(f"from_torch needs the module's parameters and buffers all float32 or "
                         f"all float64, got {sorted(map(str, kinds))}")
    dtype = names[kinds.pop()]
    if children and isinstance(children[-1], torch.nn.Linear):
        children.append(torch.nn.Identity())
    layers, numbers, width = [], {}, None
    for k, child in enumerate(children):
        layer, width = _layer(k, child, width, numbers)
        layers.append(layer)
    if loss is None:
        loss = DEFAULT_LOSSES.get(layers[-1].name if layers[-1].kind == "activation" else None,
                                  "squared_error")
    n_in = next(child for child in children
                if isinstance(child, (torch.nn.Linear, torch.nn.BatchNorm1d)))
    n_in = n_in.in_features if isinstance(n_in, torch.nn.Linear) else n_in.num_features
    net = MLP.from_layers(n_in, layers, loss=loss, l2=l2, dtype=dtype, seed=seed,
                          loss_options=loss_options)
    for name, view in {**net.named_parameters(), **net.named_buffers()}.items():
        value = numbers[name]
        if not np.isfinite(value).all():
            raise ValueError(f"from_torch: {name.split('.')[1]} of module {name.split('.')[0]} "
                             f"holds NaN or infinity")
        view[...] = value
    return net


def _layer(k, child, width, numbers):
    """The fastnn layer of the module ``child`` at position ``k``, and the width after it;
    its numbers go into ``numbers`` by their fastnn names."""
    where = f"module {k} ({child!r})"
    if isinstance(child, torch.nn.Linear):
        if width is not None and child.in_features != width:
            raise ValueError(f"from_torch: {where} takes {child.in_features} inputs, but the "
                             f"layers before it give {width}")
        numbers[f"{k}.W"] = _numpy(child.weight).T
        if child.bias is not None:
            numbers[f"{k}.b"] = _numpy(child.bias)
        return Dense(child.out_features, bias=child.bias is not None), child.out_features
    if isinstance(child, torch.nn.BatchNorm1d):
        if width is not None and child.num_features != width:
            raise ValueError(f"from_torch: {where} normalizes {child.num_features} units, but "
                             f"the layers before it give {width}")
        if not child.track_running_stats or child.momentum is None:
            raise ValueError(f"from_torch: {where} needs running statistics moved by a momentum "
                             f"(track_running_stats=True, momentum a number), as fastnn's "
                             f"BatchNorm keeps them")
        if child.affine:
            numbers[f"{k}.gamma"], numbers[f"{k}.beta"] = (_numpy(child.weight),
                                                           _numpy(child.bias))
        numbers[f"{k}.running_mean"] = _numpy(child.running_mean)
        numbers[f"{k}.running_var"] = _numpy(child.running_var)
        return _checked(where, BatchNorm, momentum=child.momentum, eps=child.eps,
                        affine=child.affine), child.num_features
    if isinstance(child, torch.nn.Dropout):
        return _checked(where, Dropout, child.p), width
    return _activation(where, child), width


def _activation(where, child):
    """The `Activation` the activation module ``child`` (described by ``where``) is."""
    simple = {torch.nn.Identity: "identity", torch.nn.Sigmoid: "sigmoid", torch.nn.ReLU: "relu",
              torch.nn.Tanh: "tanh", torch.nn.SiLU: "silu", Exp: "exp"}
    if type(child) in simple:
        return Activation(simple[type(child)])
    if isinstance(child, torch.nn.Softmax) and child.dim in (1, -1):
        return Activation("softmax")
    if isinstance(child, torch.nn.LeakyReLU):
        return _checked(where, Activation, "leaky_relu", negative_slope=child.negative_slope)
    if isinstance(child, torch.nn.ELU):
        return _checked(where, Activation, "elu", alpha=child.alpha)
    if isinstance(child, torch.nn.GELU):
        return Activation("gelu" if child.approximate == "none" else "gelu_tanh")
    if isinstance(child, torch.nn.Softplus) and child.beta == 1 and child.threshold == 20:
        return Activation("softplus")
    supported = ", ".join(sorted({info.torch.split("(")[0].removeprefix("torch.nn.")
                                  for info in registry.LAYERS.values()
                                  if info.torch.startswith("torch.nn.")}))
    raise ValueError(f"from_torch cannot convert {where}: fastnn has layers of {supported}, and "
                     f"the activations Identity, Sigmoid, ReLU, Tanh, Softmax(dim=1), LeakyReLU, "
                     f"ELU, GELU, SiLU, Softplus(beta=1, threshold=20) and fastnn.pytorch.Exp")


def _checked(where, kind, *args, **kwargs):
    """``kind(*args, **kwargs)``, a fastnn layer, its errors naming the module ``where``."""
    try:
        return kind(*args, **kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"from_torch: {where} has a setting fastnn's {kind.__name__} does not "
                         f"take: {error}") from None


def _numpy(tensor):
    """A tensor's values as a NumPy array (a copy)."""
    return tensor.detach().cpu().numpy().copy()
