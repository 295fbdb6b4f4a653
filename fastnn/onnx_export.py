"""fastnn networks and tabular models as ONNX graphs of standard operators.

`network_model` makes the graph of a network's forward pass in evaluation mode (`MLP.to_onnx`);
`tabular_model` puts a `fastnn.tabular.TabularModel`'s preprocessing before it and its target's
decoding after it (`TabularModel.to_onnx`, ``fastnn export``). `network_nodes` is the part both
share with fastnn.sklearn's skl2onnx converter (`fastnn.sklearn_onnx`).

Design
------
- The graphs use the default ONNX domain only, opset 17 (19 when a text column is one-hot
  encoded, which needs Equal on strings), a dynamic batch dimension "N", and float32 or float64
  throughout. A network's graph takes "X" (N, n_in) and gives "Y" (N, n_out).
- Every layer is written with the operators whose float64 kernels onnxruntime has, so that its
  outputs equal fastnn's to rounding in either dtype: a dense layer is MatMul and Add; batch
  normalization ``gamma ((x - mean) s) + beta`` with fastnn's ``s = 1 / sqrt(var + eps)``, as its
  kernel computes it; dropout is left out (evaluation). Relu, Sigmoid, Tanh, Softmax and Exp are
  ONNX's; onnxruntime has no float64 Elu, Erf, Softplus or LeakyRelu (opset 16), so these are
  composed: leaky_relu and elu with Where, ``expm1`` and ``log1p`` by Kahan's accurate forms
  (``(u - 1) x / log u`` with ``u = exp x``; ``log(s) w / (s - 1)`` with ``s = 1 + w``),
  gelu's normal CDF as ``erfc(v) / 2 = exp(-v^2) erfcx(v) / 2`` with ``erfcx`` (the scaled
  complementary error function, smooth on [0, 6]) a Chebyshev series interpolated here from
  `math.erfc`, evaluated by Clenshaw's recurrence.
- A tabular model's graph takes one input per feature column, named by the column, of shape
  (N, 1) (as skl2onnx's pipelines of a ColumnTransformer do): a numeric column in the graph's
  dtype, NaN for a missing value; a categorical one of its categories' type (string, int64,
  double or bool). Numbers are imputed (if the model imputes) and standardized; categories
  one-hot encoded by Equal against the category list, a missing text value ("" or NaN, in a
  column that imputes) replaced by the fill category first. What fastnn refuses, the graph cannot
  refuse (ONNX has no errors): an unseen category encodes as all zeros, and a missing value of a
  model without imputation gives NaN outputs. A classification gives "label" (N,), the class (of
  its type), and "probabilities" (N, n_classes); a regression "variable" (N, 1) in the target's
  units (skl2onnx's names). An output whose name a column already has gets a "_" appended.
"""
import math

import numpy as np

from fastnn import io
from fastnn._extras import require
from fastnn._version import __version__
from fastnn.network import _views

__all__ = ["network_model", "tabular_model", "network_nodes", "write", "tensor", "Graph",
           "OPSET", "TEXT_OPSET"]

OPSET = 17
TEXT_OPSET = 19
DTYPES = ("float32", "float64")
# erfcx on [0, ERFCX_END] as a Chebyshev series of this degree: within 3e-14 of math.erfc's
# erfcx; past ERFCX_END, exp(-v^2) < 2.4e-16 leaves the normal CDF at 0 or 1 in float64.
ERFCX_DEGREE = 40
ERFCX_END = 6.0
# fastnn's constants in fastnn/_activations.pxd: GELU's tanh form and softplus' threshold.
GELU_BETA = math.sqrt(2 / math.pi)
GELU_KAPPA = 0.044715
SOFTPLUS_THRESHOLD = 20.0


def _onnx():
    return require("onnx", "exporting to ONNX")


class Graph:
    """The nodes and initializers of an ONNX graph being built, with names that never clash.

    Parameters
    ----------
    dtype : {"float32", "float64"}
        The dtype of the graph's numbers: `constant` casts floating values to it.
    taken : iterable of str
        Names the graph's own nodes must not use (its inputs and outputs).
    """

    def __init__(self, dtype, taken=()):
        self.dtype = np.dtype(dtype)
        self.nodes, self.initializers = [], []
        self._taken = set(taken)
        self._constants = {}

    def name(self, hint):
        """A name not used before, from ``hint``."""
        name, k = hint, 0
        while name in self._taken:
            k += 1
            name = f"{hint}_{k}"
        self._taken.add(name)
        return name

    def constant(self, value, hint, cast=True):
        """The name of an initializer holding ``value``, floating values in the graph's dtype
        unless not ``cast``, strings as UTF-8 (one initializer for equal values)."""
        value = np.asarray(value)
        if cast and value.dtype.kind == "f":
            value = value.astype(self.dtype)
        key = (value.dtype.str, value.shape, value.tobytes() if value.dtype.kind != "O"
               else tuple(value.ravel()))
        if key in self._constants:
            return self._constants[key]
        name = self._constants[key] = self.name(hint)
        self.initializers.append(tensor(value, name))
        return name

    def node(self, op, inputs, hint=None, output=None, **attributes):
        """The name of the output of a new node ``op`` of ``inputs`` (named ``output``, or
        after ``hint``)."""
        onnx = _onnx()
        output = output if output is not None else self.name(hint or op.lower())
        self.nodes.append(onnx.helper.make_node(op, list(inputs), [output],
                                                name=self.name(f"{op}_node"), **attributes))
        return output


def tensor(value, name):
    """The ONNX TensorProto ``name`` of the array ``value`` (strings as UTF-8).

    Parameters
    ----------
    value : ndarray
    name : str

    Returns
    -------
    onnx.TensorProto
    """
    onnx = _onnx()
    if value.dtype.kind in "UO":
        return onnx.helper.make_tensor(name, onnx.TensorProto.STRING, value.shape,
                                       [str(v).encode("utf-8") for v in value.ravel()])
    return onnx.numpy_helper.from_array(np.ascontiguousarray(value), name)


def _check_dtype(dtype):
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dtype


def network_nodes(graph, net, x):
    """Add the nodes of ``net``'s forward pass in evaluation mode, from the (N, n_in) tensor
    named ``x``, to ``graph``.

    Parameters
    ----------
    graph : Graph
        Or an object with its ``constant`` and ``node`` methods.
    net : fastnn.MLP
    x : str

    Returns
    -------
    str
        The name of the (N, n_out) output.
    """
    state = net.state_dict()   # one consistent snapshot
    named = {**_views(state["params"], net._param_slices),
             **_views(state["buffers"], net._buffer_slices)}
    for k, layer in enumerate(net.layers):
        if layer.kind == "dense":
            x = graph.node("MatMul", [x, graph.constant(named[f"{k}.W"], f"W{k}")], f"z{k}")
            if layer.bias:
                x = graph.node("Add", [x, graph.constant(named[f"{k}.b"], f"b{k}")], f"z{k}")
        elif layer.kind == "batch_norm":
            var = named[f"{k}.running_var"]
            # as the kernel: 1 / sqrt(var + eps) in double, rounded to the network's dtype
            scale = (1 / np.sqrt(var.astype(np.float64) + layer.eps)).astype(var.dtype)
            x = graph.node("Sub", [x, graph.constant(named[f"{k}.running_mean"], f"mean{k}")])
            x = graph.node("Mul", [x, graph.constant(scale, f"inv_std{k}")], f"xhat{k}")
            if layer.affine:
                x = graph.node("Mul", [x, graph.constant(named[f"{k}.gamma"], f"gamma{k}")])
                x = graph.node("Add", [x, graph.constant(named[f"{k}.beta"], f"beta{k}")],
                               f"bn{k}")
        elif layer.kind == "activation":
            x = ACTIVATIONS[layer.name](graph, x, layer.alpha)
    return x


# ---- activations: f(graph, x, alpha) -> name of f(x) -------------------------------------------


def _expm1(graph, x):
    """exp(x) - 1 for x <= 0 (other x give values to be discarded), to a few ulps: Kahan's
    ``(u - 1) x / log u`` with ``u = exp x`` (``x`` where u rounds to 1); x is first raised to
    -40, where expm1 is -1 in either dtype, so that u never underflows to 0."""
    x = graph.node("Max", [x, graph.constant(-40.0, "expm1_floor")])
    u = graph.node("Exp", [x])
    one = graph.constant(1.0, "one")
    ratio = graph.node("Div", [graph.node("Mul", [graph.node("Sub", [u, one]), x]),
                               graph.node("Log", [u])])
    return graph.node("Where", [graph.node("Equal", [u, one]), x, ratio], "expm1")


def _log1p(graph, w):
    """log(1 + w) for w >= 0, to a few ulps: Kahan's ``log(s) w / (s - 1)`` with ``s = 1 + w``
    (``w`` where s rounds to 1)."""
    one = graph.constant(1.0, "one")
    s = graph.node("Add", [w, one])
    ratio = graph.node("Div", [graph.node("Mul", [graph.node("Log", [s]), w]),
                               graph.node("Sub", [s, one])])
    return graph.node("Where", [graph.node("Equal", [s, one]), w, ratio], "log1p")


def _erfcx_coefficients():
    """erfcx(v) = exp(v^2) erfc(v) on [0, ERFCX_END] as Chebyshev coefficients in
    ``t = 2 v / ERFCX_END - 1``."""
    series = np.polynomial.chebyshev.Chebyshev.interpolate(
        np.vectorize(lambda v: math.erfc(v) * math.exp(v * v)), ERFCX_DEGREE,
        domain=[0.0, ERFCX_END])
    return series.coef


def _normal_cdf(graph, x):
    """Phi(x) = erfc(-x / sqrt 2) / 2, as ``e = exp(-v^2) erfcx(v) / 2`` with ``v = |x| /
    sqrt 2``: e for x < 0, 1 - e otherwise (both accurate to ~1e-16 absolute, fastnn's
    ``(1 + erf(x / sqrt 2)) / 2`` too)."""
    v = graph.node("Abs", [graph.node("Mul", [x, graph.constant(math.sqrt(0.5), "sqrt_half")])])
    w = graph.node("Min", [v, graph.constant(ERFCX_END, "erfcx_end")])
    t = graph.node("Sub", [graph.node("Mul", [w, graph.constant(2 / ERFCX_END, "erfcx_scale")]),
                           graph.constant(1.0, "one")], "cheb_t")
    two_t = graph.node("Add", [t, t])
    coefficients = _erfcx_coefficients()
    # Clenshaw: b_k = c_k + 2t b_{k+1} - b_{k+2}; the sum is c_0 + t b_1 - b_2
    b1, b2 = graph.constant(coefficients[-1], "erfcx_c"), None
    for c in coefficients[-2:0:-1]:
        step = graph.node("Mul", [two_t, b1])
        if b2 is not None:
            step = graph.node("Sub", [step, b2])
        b1, b2 = graph.node("Add", [step, graph.constant(c, "erfcx_c")]), b1
    erfcx = graph.node("Sub", [graph.node("Add", [graph.node("Mul", [t, b1]),
                                                   graph.constant(coefficients[0], "erfcx_c")]),
                               b2], "erfcx")
    gauss = graph.node("Exp", [graph.node("Neg", [graph.node("Mul", [v, v])])])
    e = graph.node("Mul", [graph.node("Mul", [gauss, erfcx]), graph.constant(0.5, "half")])
    upper = graph.node("Sub", [graph.constant(1.0, "one"), e])
    negative = graph.node("Less", [x, graph.constant(0.0, "zero")])
    return graph.node("Where", [negative, e, upper], "phi")


def _positive(graph, x):
    return graph.node("Greater", [x, graph.constant(0.0, "zero")])


def _gelu_tanh(graph, x):
    """0.5 x (1 + tanh(beta (x + kappa x^3))), in fastnn's order of operations."""
    cube = graph.node("Mul", [graph.node("Mul", [graph.node(
        "Mul", [graph.constant(GELU_KAPPA, "kappa"), x]), x]), x])
    inner = graph.node("Mul", [graph.constant(GELU_BETA, "beta"), graph.node("Add", [x, cube])])
    one_plus = graph.node("Add", [graph.constant(1.0, "one"), graph.node("Tanh", [inner])])
    return graph.node("Mul", [graph.node("Mul", [graph.constant(0.5, "half"), x]), one_plus],
                      "gelu_tanh")


ACTIVATIONS = {
    "identity": lambda graph, x, alpha: x,
    "sigmoid": lambda graph, x, alpha: graph.node("Sigmoid", [x]),
    "relu": lambda graph, x, alpha: graph.node("Relu", [x]),
    "tanh": lambda graph, x, alpha: graph.node("Tanh", [x]),
    "softmax": lambda graph, x, alpha: graph.node("Softmax", [x], axis=1),
    "exp": lambda graph, x, alpha: graph.node("Exp", [x]),
    "leaky_relu": lambda graph, x, alpha: graph.node("Where", [
        _positive(graph, x), x, graph.node("Mul", [graph.constant(alpha, "alpha"), x])],
        "leaky_relu"),
    "elu": lambda graph, x, alpha: graph.node("Where", [
        _positive(graph, x), x, graph.node("Mul", [graph.constant(alpha, "alpha"),
                                                   _expm1(graph, x)])], "elu"),
    "gelu": lambda graph, x, alpha: graph.node("Mul", [x, _normal_cdf(graph, x)], "gelu"),
    "gelu_tanh": lambda graph, x, alpha: _gelu_tanh(graph, x),
    "silu": lambda graph, x, alpha: graph.node("Mul", [x, graph.node("Sigmoid", [x])], "silu"),
    "softplus": lambda graph, x, alpha: graph.node("Where", [
        graph.node("Greater", [x, graph.constant(SOFTPLUS_THRESHOLD, "threshold")]), x,
        _log1p(graph, graph.node("Exp", [x]))], "softplus"),
}


# ---- whole models ------------------------------------------------------------------------------


def _model(graph, inputs, outputs, opset, doc):
    """The ModelProto of ``graph`` with the value infos ``inputs`` and ``outputs``."""
    onnx = _onnx()
    model = onnx.helper.make_model(
        onnx.helper.make_graph(graph.nodes, "fastnn", inputs, outputs, graph.initializers),
        opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="fastnn",
        producer_version=__version__, doc_string=doc)
    return model


def _tensor_type(dtype):
    onnx = _onnx()
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def network_model(net, dtype=None):
    """The ONNX model of ``net``'s forward pass in evaluation mode: input "X" (N, n_in), output
    "Y" (N, n_out), both of ``dtype``.

    Parameters
    ----------
    net : fastnn.MLP
    dtype : {"float32", "float64"}, optional
        The graph's dtype; the network's by default.

    Returns
    -------
    onnx.ModelProto
    """
    onnx = _onnx()
    dtype = _check_dtype(net.dtype.name if dtype is None else dtype)
    graph = Graph(dtype, taken=("X", "Y"))
    y = network_nodes(graph, net, "X")
    graph.node("Identity", [y], output="Y")
    kind = _tensor_type(dtype)
    return _model(graph, [onnx.helper.make_tensor_value_info("X", kind, ["N", net.sizes[0]])],
                  [onnx.helper.make_tensor_value_info("Y", kind, ["N", net.sizes[-1]])], OPSET,
                  f"fastnn {net!r}: Y = forward(X) in evaluation mode")


def _category_type(categories):
    """The NumPy dtype of a categorical column's input, by its categories' type."""
    if all(isinstance(c, str) for c in categories):
        return np.dtype(object)
    if all(isinstance(c, bool) for c in categories):
        return np.dtype(bool)
    if all(isinstance(c, int) and not isinstance(c, bool) for c in categories):
        return np.dtype(np.int64)
    return np.dtype(np.float64)


def _column_nodes(graph, column, x):
    """The (N, width) inputs of the network from the (N, 1) input ``x`` of one feature column.
    """
    if column.kind == "numeric":
        if column.fill is not None:
            x = graph.node("Where", [graph.node("IsNaN", [x]),
                                     graph.constant(column.fill, "fill"), x])
        centered = graph.node("Sub", [x, graph.constant(column.mean, "mean")])
        return graph.node("Div", [centered, graph.constant(column.scale, "scale")],
                          "standardized")
    kind = _category_type(column.categories)
    categories = np.array(column.categories, dtype=kind).reshape(1, -1)
    if column.fill is not None and kind.kind in "Of":
        missing = (graph.node("Equal", [x, graph.constant(np.array(""), "empty")])
                   if kind.kind == "O" else graph.node("IsNaN", [x]))
        fill = graph.constant(np.array(column.fill, dtype=kind), "fill", cast=False)
        x = graph.node("Where", [missing, fill, x])
    matches = graph.node("Equal", [x, graph.constant(categories, "categories", cast=False)])
    return graph.node("Cast", [matches], "one_hot", to=_tensor_type(graph.dtype))


def tabular_model(model, dtype=None):
    """The ONNX model of a `fastnn.tabular.TabularModel`: its preprocessing, network and the
    decoding of its target (see the module's docstring for the inputs and outputs).

    Parameters
    ----------
    model : fastnn.tabular.TabularModel
        Trained or loaded.
    dtype : {"float32", "float64"}, optional
        The dtype of the numbers; the network's by default.

    Returns
    -------
    onnx.ModelProto
    """
    onnx = _onnx()
    net, columns, target = model.network, model.preprocessor.columns, model.target
    dtype = _check_dtype(net.dtype.name if dtype is None else dtype)
    names = [column.name for column in columns]
    if "" in names:
        raise ValueError("a feature column without a name cannot be an input of an ONNX graph")
    wanted = ("label", "probabilities") if target.task == "classification" else ("variable",)
    outputs = []
    for name in wanted:
        while name in names or name in outputs:
            name += "_"
        outputs.append(name)
    graph = Graph(dtype, taken=[*names, *outputs])
    inputs, blocks = [], []
    for column in columns:
        kind = dtype if column.kind == "numeric" else _category_type(column.categories)
        inputs.append(onnx.helper.make_tensor_value_info(column.name, _tensor_type(kind),
                                                         ["N", 1]))
        blocks.append(_column_nodes(graph, column, column.name))
    x = graph.node("Concat", blocks, "features", axis=1) if len(blocks) > 1 else blocks[0]
    y = network_nodes(graph, net, x)
    value_type = _tensor_type(dtype)
    if target.task == "classification":
        graph.node("Identity", [y], output=outputs[1])
        kind = _category_type(target.classes)
        classes = graph.constant(np.array(target.classes, dtype=kind), "classes", cast=False)
        best = graph.node("ArgMax", [outputs[1]], "best", axis=1, keepdims=0)
        graph.node("Gather", [classes, best], output=outputs[0])
        results = [onnx.helper.make_tensor_value_info(outputs[0], _tensor_type(kind), ["N"]),
                   onnx.helper.make_tensor_value_info(outputs[1], value_type,
                                                      ["N", len(target.classes)])]
    else:
        scaled = graph.node("Mul", [y, graph.constant(target.scale, "target_scale")])
        graph.node("Add", [scaled, graph.constant(target.mean, "target_mean")],
                   output=outputs[0])
        results = [onnx.helper.make_tensor_value_info(outputs[0], value_type, ["N", 1])]
    text = any(column.kind == "categorical" and _category_type(column.categories).kind == "O"
               for column in columns)
    return _model(graph, inputs, results, TEXT_OPSET if text else OPSET,
                  f"fastnn tabular model: {target.task} of {target.name!r} from the columns "
                  f"{names}, each an input of shape (N, 1)")


def write(model, path):
    """Write the ONNX ``model`` to ``path``, atomically (as `fastnn.io.write_atomically`).

    Parameters
    ----------
    model : onnx.ModelProto
    path : str or os.PathLike
    """
    data = model.SerializeToString()
    io.write_atomically(path, lambda f: f.write(data), "write the ONNX model")
