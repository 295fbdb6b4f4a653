"""fastnn.sklearn's estimators in skl2onnx: shape calculators and converters, registered by
`register` (``fastnn.sklearn.register_skl2onnx``).

The converters mirror skl2onnx's own for scikit-learn's MLPs (its
``operator_converters/multilayer_perceptron.py``): the input cast to float (float64 stays
float64), the network's forward pass, then for a classifier the probabilities (``1 - p, p`` of a
binary one's single output) and the label, the class of the most probable output (int64 for
numeric and boolean classes, as skl2onnx gives them; a 0/1 int64 matrix for multilabel targets,
the outputs above 0.5); for a regressor the outputs, (N, n_outputs). The forward pass is
`fastnn.onnx_export.network_nodes`, so every layer kind and activation of fastnn converts.

skl2onnx is an optional peer that this module imports: ``fastnn.sklearn.register_skl2onnx``
imports it, having said how to install skl2onnx if it is missing.
"""
import numpy as np
from skl2onnx import update_registered_converter
from skl2onnx.common.data_types import (
    DoubleTensorType,
    FloatTensorType,
    Int64TensorType,
    guess_proto_type,
)
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from skl2onnx.proto import onnx_proto

from fastnn import onnx_export
from fastnn.sklearn import MLPClassifier, MLPRegressor

__all__ = ["register", "convert_classifier", "convert_regressor", "classifier_output_shapes",
           "regressor_output_shapes"]

# The options skl2onnx's parser applies to a classifier's outputs, as for scikit-learn's MLP.
CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "nocl": [True, False]}


class _ContainerGraph:
    """`fastnn.onnx_export.Graph`'s interface over skl2onnx's scope and container."""

    def __init__(self, dtype, scope, container):
        self.dtype = np.dtype(dtype)
        self._scope, self._container = scope, container

    def constant(self, value, hint, cast=True):
        """The name of a new initializer holding ``value`` (see `Graph.constant`)."""
        value = np.asarray(value)
        if cast and value.dtype.kind == "f":
            value = value.astype(self.dtype)
        name = self._scope.get_unique_variable_name(hint)
        if value.dtype.kind in "UO":
            # the container copies a TensorProto's raw data, which strings do not have
            self._container.add_initializer(name, onnx_proto.TensorProto.STRING,
                                            list(value.shape),
                                            [str(v).encode("utf-8") for v in value.ravel()])
        else:
            self._container.add_initializer(name, None, None, onnx_export.tensor(value, name))
        return name

    def node(self, op, inputs, hint=None, output=None, **attributes):
        """The name of the output of a new node (see `Graph.node`)."""
        output = output or self._scope.get_unique_variable_name(hint or op.lower())
        self._container.add_node(op, list(inputs), output,
                                 name=self._scope.get_unique_operator_name(op), **attributes)
        return output


def _forward(scope, operator, container):
    """The graph adapter and the name of the network's output for the operator's input."""
    estimator = operator.raw_operator
    estimator._sync_network()   # coefs_ and intercepts_ set by hand go into the network
    proto = guess_proto_type(operator.inputs[0].type)
    dtype = "float64" if proto == onnx_proto.TensorProto.DOUBLE else "float32"
    graph = _ContainerGraph(dtype, scope, container)
    x = graph.node("Cast", [operator.inputs[0].full_name], "cast_input",
                   to=onnx_proto.TensorProto.DOUBLE if dtype == "float64"
                   else onnx_proto.TensorProto.FLOAT)
    return graph, onnx_export.network_nodes(graph, estimator._net, x)


def convert_classifier(scope, operator, container):
    """skl2onnx's converter of a fastnn.sklearn `MLPClassifier`: outputs label, probabilities."""
    graph, y = _forward(scope, operator, container)
    estimator = operator.raw_operator
    label, probabilities = operator.outputs[0].full_name, operator.outputs[1].full_name
    if estimator._label_binarizer.y_type_ == "multilabel-indicator":
        graph.node("Identity", [y], output=probabilities)
        above = graph.node("Greater", [y, graph.constant(0.5, "threshold")])
        graph.node("Cast", [above], output=label, to=onnx_proto.TensorProto.INT64)
        return
    if estimator.n_outputs_ == 1:
        negative = graph.node("Sub", [graph.constant(1.0, "one"), y])
        graph.node("Concat", [negative, y], output=probabilities, axis=1)
    else:
        graph.node("Identity", [y], output=probabilities)
    classes = np.asarray(estimator.classes_)
    classes = classes.astype(object if classes.dtype.kind in "USO" else np.int64)
    best = graph.node("ArgMax", [probabilities], "best", axis=1, keepdims=0)
    graph.node("Gather", [graph.constant(classes, "classes", cast=False), best], output=label)


def classifier_output_shapes(operator):
    """skl2onnx's shape calculator of a fastnn.sklearn `MLPClassifier`: its linear classifiers'
    (label (N,), probabilities (N, n_classes)), with a multilabel target's labels an int64
    matrix (N, n_labels)."""
    calculate_linear_classifier_output_shapes(operator)
    estimator = operator.raw_operator
    if estimator._label_binarizer.y_type_ == "multilabel-indicator":
        operator.outputs[0].type = Int64TensorType([operator.inputs[0].get_first_dimension(),
                                                    estimator.n_outputs_])


def regressor_output_shapes(operator):
    """skl2onnx's shape calculator of a fastnn.sklearn `MLPRegressor`: (N, n_outputs) of the
    input's float type (float for other input types)."""
    kind = operator.inputs[0].type
    kind = type(kind) if isinstance(kind, (FloatTensorType, DoubleTensorType)) else FloatTensorType
    operator.outputs[0].type = kind([operator.inputs[0].get_first_dimension(),
                                     operator.raw_operator.n_outputs_])


def convert_regressor(scope, operator, container):
    """skl2onnx's converter of a fastnn.sklearn `MLPRegressor`: output variable."""
    graph, y = _forward(scope, operator, container)
    graph.node("Identity", [y], output=operator.outputs[0].full_name)


def register():
    """Register the converters with skl2onnx (see ``fastnn.sklearn.register_skl2onnx``)."""
    update_registered_converter(MLPClassifier, "FastnnMLPClassifier", classifier_output_shapes,
                                convert_classifier, options=CLASSIFIER_OPTIONS)
    update_registered_converter(MLPRegressor, "FastnnMLPRegressor", regressor_output_shapes,
                                convert_regressor)
