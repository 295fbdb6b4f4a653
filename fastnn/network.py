"""The multilayer perceptron: its layers, parameters, forward pass, loss, gradients and training."""
import math
import time

import numpy as np

from fastnn import io, registry, threads, training
from fastnn._checks import all_finite, ready
from fastnn._engine import STEP_NONFINITE_LOSS, STEP_NONFINITE_PARAMS, Engine
from fastnn._validation import (
    MAX_WIDTH,
    CheckedData,
    as_matrix,
    as_numeric_array,
    as_sample_weight,
    as_targets,
    check_allocation,
    check_choice,
    check_int,
    check_real,
    finite,
    to_dtype,
)
from fastnn.cluster import lazy_predict
from fastnn.layers import (
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    Layer,
    from_config as layer_from_config,
    stream_key,
)
from fastnn.schedules import check_schedule
from fastnn.streams import is_dask

__all__ = ["MLP"]

DTYPES = ("float32", "float64")
# How long each compiled chunk of an epoch lasts when `MLP.train_epoch` reports its progress.
CHUNK_SECONDS = 0.1


def _generator_state(value):
    """``value`` as the dropout generator's (key, counter): two 64-bit unsigned integers."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"the generator's state is a pair (key, counter), got {value!r}")
    return tuple(check_int(name, v, 0, maximum=2 ** 64 - 1)
                 for name, v in zip(("key", "counter"), value))


def _loss_options(info, output, n_out, dtype, options):
    """The options of the loss ``info`` with the output activation ``output``, checked, as
    ``{name: value}`` (a float, or weights as a tuple of n_out floats), with the defaults of
    those that have one filled in, from the user's ``loss_options``."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"loss_options must be a dict, got {options!r}")
    allowed = info.options_for(output)
    for name in options:
        if name in allowed:
            continue
        elsewhere = [option for option in info.options if option.name == name]
        if elsewhere:
            outputs = " or ".join(f'"{o}"' for o in elsewhere[0].outputs)
            raise ValueError(f'loss_options[{name!r}] of loss="{info.name}" goes with '
                             f'output_activation {outputs}, not "{output}"')
        raise ValueError(f'loss="{info.name}" with output_activation "{output}" takes the '
                         f'options {sorted(allowed)}, got {sorted(map(str, options))}')
    result = {}
    for name, option in allowed.items():
        if name in options:
            result[name] = _loss_option(option, options[name], n_out, dtype)
        elif option.default is not None:
            result[name] = option.default
    return result


def _loss_option(option, value, n_out, dtype):
    """``value`` checked as the loss option ``option`` (a `fastnn.registry.LossOption`) of a
    network of n_out outputs and the given dtype."""
    name = f"loss_options[{option.name!r}]"
    if option.kind == "positive":
        value = check_real(name, value, low=0)
        if value == 0:
            raise ValueError(f"{name} must be > 0, got {value}")
        return value
    if option.kind == "fraction":
        return check_real(name, value, low=0, high=1)
    weights = as_numeric_array(name, value)
    if weights.dtype.kind == "b":
        raise TypeError(f"{name} must hold real numbers, not booleans")
    if weights.ndim == 0:
        weights = np.full(n_out, weights)
    if weights.shape != (n_out,):
        raise ValueError(f"{name} must hold one weight per output ({n_out}), or one for all, got "
                         f"shape {weights.shape}")
    weights = finite(name, to_dtype(weights, np.float64))
    if weights.min() < 0 or not weights.any():
        raise ValueError(f"{name} must be >= 0 and not all zero, got {weights.tolist()}")
    # the kernels multiply by them in the network's dtype
    with np.errstate(over="ignore"):
        if not np.isfinite(weights.sum(dtype=dtype)):
            raise ValueError(f"{name} sums to more than {dtype} can hold; scale it down")
    return tuple(weights.tolist())


def _views(vector, slices):
    """{name: view of vector} for slices {name: (start, shape)}."""
    return {name: vector[start:start + math.prod(shape)].reshape(shape)
            for name, (start, shape) in slices.items()}


class MLP:
    """A feed-forward network of dense layers: ``Z_l = A_{l-1} @ W_l + b_l``, ``A_l = f(Z_l)``,
    with optional batch normalization and dropout between them.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_in, h1, ..., n_out]``, at least two, each a positive integer.
    activation : str, default "relu"
        Activation of the hidden layers: one of `fastnn.registry.hidden_activations()`
        ("sigmoid", "relu", "tanh", "identity", ...).
    output_activation : {"identity", "sigmoid", "softmax", "exp"}, default "identity"
        Activation of the output layer ("exp": ``exp(z)``, a rate, for counts).
    loss : str, default "squared_error"
        Per-sample loss L, summed over the outputs, one of `fastnn.registry.LOSSES`:
        "squared_error" ``sum_k (yhat_k - y_k)^2``; "cross_entropy" of a softmax or sigmoid
        output, computed from the logits; "absolute_error" ``sum_k |yhat_k - y_k|``; "huber"
        ``sum_k h(yhat_k - y_k)`` with ``h(d) = d^2 / 2`` for ``|d| <= delta``, else
        ``delta (|d| - delta / 2)`` (torch's HuberLoss); "poisson" ``sum_k exp(z_k) - y_k z_k``
        of the exp output, computed from its input z, the log-rate (torch's PoissonNLLLoss with
        log_input=True, applied to z; `forward` gives the rate ``exp(z)``, targets are counts
        or rates >= 0).
    l2 : float, default 0.0
        The objective is ``J = (1/N) sum_i L_i + (l2/2) sum_l ||W_l||^2`` (dense weights only).
    dtype : {"float64", "float32"}, default "float64"
        Precision of the parameters and of every computation.
    seed : int or None, default None
        Seed of the initialization (Glorot-uniform weights, He-normal before relu; zero biases)
        and of the dropout generator.
    dropout : float, default 0.0
        With a rate > 0, a `fastnn.layers.Dropout` after each hidden activation.
    batch_norm : bool, default False
        A `fastnn.layers.BatchNorm` between each hidden dense layer and its activation.
    loss_options : dict, optional
        The loss' options by PyTorch's names (`fastnn.registry.LossInfo.options`):

        - "huber": ``{"delta": 1.0}`` (> 0; 1.0 by default).
        - "cross_entropy" of a softmax output, as ``torch.nn.CrossEntropyLoss``: ``"weight"`` w,
          one weight per class (finite, >= 0, not all zero): ``L_i = -sum_k w_k q_ik log
          yhat_ik`` and the mean over the samples becomes ``sum_i L_i / sum_i r_i`` with the row
          weight ``r_i = sum_k w_k y_ik`` (``w_{y_i}`` for a class label, as torch's mean; for
          probability rows torch divides by N instead); ``"label_smoothing"`` eps in [0, 1]:
          ``q_i = (1 - eps) y_i + eps / n_out`` (``y_i`` without it).
        - "cross_entropy" of a sigmoid output, as ``torch.nn.BCEWithLogitsLoss``: ``"pos_weight"``
          p, one weight per output or one for all (finite, >= 0, not all zero):
          ``L = -sum_k [p_k y_k log yhat_k + (1 - y_k) log(1 - yhat_k)]``.
    n_threads : int or None, default None
        At most this many BLAS threads for this network's matrix products (>= 1); None leaves
        the choice to `fastnn.threads` (one thread for small products, the user's BLAS setting
        for large ones). A setting of the machine, not of the model: not saved in its files.

    Attributes
    ----------
    params : ndarray of shape (n_params,)
        The flat vector that holds every parameter, layer after layer (W_1, b_1, W_2, b_2, ...,
        with batch normalization's gamma and beta after its dense layer's).
    weights : list of ndarray
        ``weights[l]`` of shape (sizes[l], sizes[l+1]) is a writable view into ``params``;
        ``weights[l][i, j]`` connects input unit i to output unit j. Read-only attribute:
        change the arrays in place.
    biases : list of ndarray
        ``biases[l]`` of shape (sizes[l+1],), a writable view into ``params`` (dense layers
        built without a bias have none here).
    buffers : ndarray of shape (n_buffers,)
        Non-trainable state: batch normalization's running means and variances.

    Notes
    -----
    `forward`, `predict` and `loss` evaluate: dropout is the identity and batch normalization
    uses its running statistics. `gradients`, `train_step` and `fit` train: dropout draws masks
    and batch normalization uses the batch's statistics. `gradients` changes nothing in the
    network; `train_step` and `fit` also move the running statistics and the dropout generator.
    Every method that takes (X, Y, sample_weight) also takes a `CheckedData` from `check_data`
    as X, which is then not checked again.
    """

    def __init__(self, sizes, activation="relu", output_activation="identity",
                 loss="squared_error", l2=0.0, dtype="float64", seed=None, *, dropout=0.0,
                 batch_norm=False, loss_options=None, n_threads=None):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a sequence of layer widths, got {sizes!r}")
        if len(sizes) < 2:
            raise ValueError(
                f"sizes needs at least an input and an output width, got {list(sizes)}")
        sizes = tuple(check_int(f"sizes[{i}]", n, 1, maximum=MAX_WIDTH)
                      for i, n in enumerate(sizes))
        activation = check_choice("activation", activation, registry.hidden_activations())
        rate = check_real("dropout", dropout, low=0, high=1, high_open=True)
        if not isinstance(batch_norm, (bool, np.bool_)):
            raise TypeError(f"batch_norm must be True or False, got {batch_norm!r}")
        layers = []
        for width in sizes[1:-1]:
            layers += [Dense(width), *([BatchNorm()] if batch_norm else []), Activation(activation),
                       *([Dropout(rate)] if rate > 0 else [])]
        layers += [Dense(sizes[-1]), Activation(check_choice(
            "output_activation", output_activation, registry.output_activations()))]
        self._build(sizes[0], layers, loss, l2, dtype, seed, activation, loss_options)
        self._options = {"dropout": rate} if rate > 0 else {}
        if batch_norm:
            self._options["batch_norm"] = True
        self.n_threads = n_threads

    @classmethod
    def from_layers(cls, n_in, layers, loss="squared_error", l2=0.0, dtype="float64", seed=None,
                    *, loss_options=None, n_threads=None):
        """A network from an explicit list of layers.

        Parameters
        ----------
        n_in : int
            The input width.
        layers : sequence of fastnn.layers.Layer
            Dense, Activation, Dropout and BatchNorm layers in order. The first layer with
            parameters is a Dense one, and the list ends with a Dense layer and the output
            Activation (e.g. ``[Dense(64), BatchNorm(), Activation("relu"), Dropout(0.2),
            Dense(10), Activation("softmax")]``).
        loss, l2, dtype, seed, loss_options, n_threads
            As for `MLP`.

        Returns
        -------
        MLP
        """
        net = cls.__new__(cls)
        net._build(check_int("n_in", n_in, 1, maximum=MAX_WIDTH), layers, loss, l2, dtype, seed,
                   None, loss_options)
        net._options = None
        net.n_threads = n_threads
        return net

    def _build(self, n_in, layers, loss, l2, dtype, seed, activation, loss_options=None):
        if isinstance(layers, (Layer, str, bytes)) or not hasattr(layers, "__iter__"):
            raise TypeError(f"layers must be a sequence of fastnn.layers.Layer, got {layers!r}")
        layers = tuple(layers)
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"layers must be fastnn.layers.Layer objects, got {layer!r}")
        if len(layers) < 2 or layers[-2].kind != "dense" or layers[-1].kind != "activation":
            raise ValueError("layers must end with a Dense layer and the output Activation")
        output = layers[-1].name
        if not registry.ACTIVATIONS[output].output:
            raise ValueError(f"unknown output_activation {output!r}; expected one of "
                             f"{sorted(registry.output_activations())}")
        for layer in layers[:-1]:
            if layer.kind == "activation" and not registry.ACTIVATIONS[layer.name].hidden:
                raise ValueError(f"{layer.name!r} is an output activation, not a hidden one")
        with_params = [layer for layer in layers if layer.kind == "dense"
                       or (layer.kind == "batch_norm" and layer.affine)]
        if with_params[0].kind != "dense":
            raise ValueError("the first layer with parameters must be Dense")
        self._layers = layers
        self._n_in = n_in
        self._sizes = (n_in, *(layer.units for layer in layers if layer.kind == "dense"))
        self._n_out = self._sizes[-1]
        # the hidden activation is the layers' (a given one only names it when there are none)
        hidden = {layer.name for layer in layers[:-1] if layer.kind == "activation"}
        self._activation = (hidden.pop() if len(hidden) == 1 else None) if hidden else activation
        self._loss_name = check_choice("loss", loss, tuple(registry.LOSSES))
        if output not in registry.LOSSES[self._loss_name].outputs:
            outputs = " or ".join(f'"{name}"' for name in registry.LOSSES[self._loss_name].outputs)
            raise ValueError(f'loss="{self._loss_name}" needs output_activation {outputs}, '
                             f'not "{output}"')
        loss_info = registry.LOSSES[self._loss_name]
        self._label_targets = output in loss_info.labels
        self._unit_targets = loss_info.unit_targets
        self._nonnegative_targets = loss_info.nonnegative_targets
        self._l2 = check_real("l2", l2, low=0)
        self._dtype = np.dtype(check_choice(
            "dtype", dtype if isinstance(dtype, str) else str(np.dtype(dtype)), DTYPES))
        self._loss_options = _loss_options(loss_info, output, self._n_out, self._dtype,
                                           loss_options)
        # the kernels take one real parameter and one weight vector (the registry checks it)
        allowed = loss_info.options_for(output)
        loss_param = next((value for name, value in self._loss_options.items()
                           if allowed[name].kind != "weights"), 0.0)
        loss_weight = next((value for name, value in self._loss_options.items()
                            if allowed[name].kind == "weights"), None)
        self._loss_weighted = loss_weight is not None
        # whether targets need checks beyond their shape (one flag: train_step's path is short)
        self._target_rules = (self._unit_targets or self._nonnegative_targets
                              or self._loss_weighted)
        # the engine allocates the parameters and their gradient: counted here, in Python
        # integers, which cannot overflow as the engine's C sizes could
        n_params, width = 0, n_in
        for layer in layers:
            if layer.kind == "dense":
                n_params += (width + layer.bias) * layer.units
                width = layer.units
            elif layer.kind == "batch_norm" and layer.affine:
                n_params += 2 * width
        check_allocation(f"a network of {n_params:,} parameters", 2 * n_params,
                         self._dtype.itemsize)
        specs, width = [], n_in
        for layer in layers:
            specs.append(layer.spec(width))
            width = specs[-1][2]
        self._engine = Engine(n_in, specs, loss_info.code, self._l2, self._dtype,
                              loss_param=loss_param, loss_weight=loss_weight)
        self._loss_scale, self._l2_per_sample = 1.0, False
        self._batch_norm = any(layer.kind == "batch_norm" for layer in layers)
        # the parameter layout is the engine's: name each layer's slices of its vectors
        self._param_slices, buffer_slices = {}, {}
        for k, (layer, ((p_off, n_p), (b_off, n_b))) in enumerate(zip(layers,
                                                                      self._engine.layout())):
            if layer.kind == "dense":
                n_w = n_p - (layer.units if layer.bias else 0)
                self._param_slices[f"{k}.W"] = (p_off, (n_w // layer.units, layer.units))
                if layer.bias:
                    self._param_slices[f"{k}.b"] = (p_off + n_w, (layer.units,))
            elif n_p:
                self._param_slices[f"{k}.gamma"] = (p_off, (n_p // 2,))
                self._param_slices[f"{k}.beta"] = (p_off + n_p // 2, (n_p // 2,))
            if n_b:
                buffer_slices[f"{k}.running_mean"] = (b_off, (n_b // 2,))
                buffer_slices[f"{k}.running_var"] = (b_off + n_b // 2, (n_b // 2,))
        self._buffer_slices = buffer_slices
        self._named_params = _views(self.params, self._param_slices)
        self._named_buffers = _views(self.buffers, buffer_slices)
        self._weights = [v for k, v in self._named_params.items() if k.endswith(".W")]
        self._biases = [v for k, v in self._named_params.items() if k.endswith(".b")]
        self.initialize(seed)

    # ---- the architecture (read-only) ----------------------------------------------------

    @property
    def layers(self):
        """The layers, in order (a tuple of fastnn.layers.Layer)."""
        return self._layers

    @property
    def sizes(self):
        """The input width and the dense layers' widths (a tuple)."""
        return self._sizes

    @property
    def activation(self):
        """Activation of the hidden layers (None if they differ)."""
        return self._activation

    @property
    def output_activation(self):
        """Activation of the output layer."""
        return self._layers[-1].name

    @property
    def loss_name(self):
        """The per-sample loss, by its name in `fastnn.registry.LOSSES`."""
        return self._loss_name

    @property
    def loss_options(self):
        """The loss' options as ``{name: value}``: those given, and those with a default (Huber's
        delta); weights as tuples of floats, one per output (a copy)."""
        return dict(self._loss_options)

    @property
    def dtype(self):
        """The precision of the parameters and of every computation (a numpy.dtype)."""
        return self._dtype

    @property
    def l2(self):
        """The L2 penalty on the weights; it may be changed between calls (finite, >= 0)."""
        return self._l2

    @l2.setter
    def l2(self, value):
        self._l2 = check_real("l2", value, low=0)
        self._engine.set_objective(self._l2, self._loss_scale, self._l2_per_sample)

    @property
    def params(self):
        """The flat vector of all parameters (assigning to it copies values in)."""
        return self._engine.params

    @params.setter
    def params(self, values):
        values = as_matrix("params", np.reshape(np.asarray(values), (1, -1)), self.params.size,
                           self.dtype)
        self._engine.restore(values[0])

    @property
    def weights(self):
        """``weights[l]`` of shape (sizes[l], sizes[l+1]): writable views into ``params`` (a new
        list; change the arrays in place)."""
        return list(self._weights)

    @property
    def biases(self):
        """``biases[l]`` of shape (sizes[l+1],): writable views into ``params`` (a new list)."""
        return list(self._biases)

    def state_dict(self):
        """Copies of the parameters, the buffers and the dropout generator's state, taken at once
        (safe while another thread trains): ``{"params", "buffers", "random_state"}``."""
        params, buffers, random_state = self._engine.snapshot()
        return {"params": params, "buffers": buffers, "random_state": random_state}

    def load_state_dict(self, state):
        """Set the parameters, buffers and generator's state from a `state_dict`, at once."""
        if not isinstance(state, dict) or set(state) != {"params", "buffers", "random_state"}:
            raise ValueError("a network's state has 'params', 'buffers' and 'random_state'")
        params = as_matrix("params", np.reshape(np.asarray(state["params"]), (1, -1)),
                           self.params.size, self.dtype)[0]
        buffers = np.asarray(state["buffers"])
        if buffers.shape != self.buffers.shape:
            raise ValueError(f"buffers must have shape {self.buffers.shape}, got {buffers.shape}")
        buffers = as_matrix("buffers", buffers.reshape(1, -1), buffers.size, self.dtype)[0]
        self._engine.restore(params, buffers, _generator_state(state["random_state"]))

    @property
    def buffers(self):
        """The flat vector of non-trainable state (batch normalization's running statistics)."""
        return self._engine.buffers

    @property
    def n_params(self):
        """The number of parameters."""
        return self.params.size

    def named_parameters(self):
        """The parameters by name, ``"{layer}.{W, b, gamma, beta}"``: writable views (a dict)."""
        return dict(self._named_params)

    def named_buffers(self):
        """The buffers by name, ``"{layer}.{running_mean, running_var}"``: writable views."""
        return dict(self._named_buffers)

    @property
    def random_state(self):
        """The dropout generator's state ``(key, counter)``; assign one to replay masks."""
        return self._engine.random_state

    @random_state.setter
    def random_state(self, value):
        self._engine.random_state = _generator_state(value)

    @property
    def n_threads(self):
        """The cap on the BLAS threads of this network's products (None: `fastnn.threads`
        chooses); it may be changed between calls."""
        return self._engine.n_threads or None

    @n_threads.setter
    def n_threads(self, value):
        self._engine.n_threads = threads.check_n_threads(value) or 0

    # ---- configuration and copies --------------------------------------------------------

    def config(self):
        """The architecture and objective (not the seed) as a JSON-ready dict."""
        config = {"n_in": self._n_in, "layers": [layer.config() for layer in self._layers],
                  "loss": self.loss_name, "l2": self.l2, "dtype": self.dtype.name,
                  "activation": self.activation, "loss_scale": self._loss_scale,
                  "l2_per_sample": self._l2_per_sample, "options": self._options}
        # only a loss with options records them: other configs stay as fastnn 0.2.0 wrote them
        if self._loss_options:
            config["loss_options"] = {name: list(value) if isinstance(value, tuple) else value
                                      for name, value in self._loss_options.items()}
        return config

    @classmethod
    def from_config(cls, config):
        """A network with zero parameters built from `config` (as `MLP.config` returns it, or
        fastnn 0.1's form with ``sizes``)."""
        if "layers" in config:
            net = cls.__new__(cls)
            net._build(check_int("n_in", config["n_in"], 1, maximum=MAX_WIDTH),
                       [layer_from_config(c) for c in config["layers"]], config["loss"],
                       config["l2"], config["dtype"], 0, config.get("activation"),
                       config.get("loss_options"))
            net._options = config.get("options")
        else:
            net = cls(config["sizes"], activation=config["activation"],
                      output_activation=config["output_activation"], loss=config["loss"],
                      l2=config["l2"], dtype=config["dtype"], seed=0)
        net.scale_objective(config.get("loss_scale", 1.0), config.get("l2_per_sample", False))
        net.params[:] = 0
        return net

    def scale_objective(self, loss_scale, l2_per_sample):
        """Use ``J = loss_scale sum_i s_i L_i / S + (l2/2) sum ||W||^2 [/ S if l2_per_sample]``.

        fastnn.sklearn sets scikit-learn's objective this way (loss_scale 1/2 for squared error,
        the penalty per sample).
        """
        loss_scale = check_real("loss_scale", loss_scale, low=0)
        if not isinstance(l2_per_sample, (bool, np.bool_)):
            raise TypeError(f"l2_per_sample must be True or False, got {l2_per_sample!r}")
        self._loss_scale, self._l2_per_sample = loss_scale, bool(l2_per_sample)
        self._engine.set_objective(self._l2, self._loss_scale, self._l2_per_sample)

    def __getstate__(self):
        # n_threads is a setting of this object, not of the model its config describes (files
        # do not hold it), but a pickle or a copy keeps it
        return {"config": self.config(), **self.state_dict(), "n_threads": self.n_threads}

    def __setstate__(self, state):
        self.__dict__.update(MLP.from_config(state["config"]).__dict__)
        self.load_state_dict({key: state[key] for key in ("params", "buffers", "random_state")})
        self.n_threads = state.get("n_threads")

    def initialize(self, seed=None):
        """Draw new weights and reset every layer's state.

        Each dense layer's weights are drawn by the rule of the activation that follows it
        (`fastnn.registry.ActivationInfo.init`): He-normal before relu, Glorot-uniform otherwise;
        biases and batch normalization's beta are zero, its gamma one, its running statistics
        zero means and unit variances. The dropout generator starts a new stream.

        Parameters
        ----------
        seed : int or None
            Seed of ``numpy.random.default_rng``; the same seed gives the same network.
        """
        rng = np.random.default_rng(seed)
        # drawn into copies and set at once, under the engine's lock
        params, buffers = np.zeros_like(self.params), np.zeros_like(self.buffers)
        named, named_buffers = _views(params, self._param_slices), _views(buffers,
                                                                         self._buffer_slices)
        for k, layer in enumerate(self._layers):
            if layer.kind == "dense":
                after = next(later for later in self._layers[k + 1:] if later.kind == "activation")
                info = registry.ACTIVATIONS[after.name]
                W = named[f"{k}.W"]
                n_in, n_out = W.shape
                if info.init == "he":
                    gain2 = 2.0 / (1.0 + after.alpha ** 2)
                    W[:] = rng.normal(0.0, np.sqrt(gain2 / n_in), size=W.shape)
                else:
                    limit = np.sqrt(6.0 / (n_in + n_out))
                    W[:] = rng.uniform(-limit, limit, size=W.shape)
            elif layer.kind == "batch_norm":
                if layer.affine:
                    named[f"{k}.gamma"][:] = 1
                named_buffers[f"{k}.running_var"][:] = 1
        self._engine.restore(params, buffers, (stream_key(seed), 0))

    def release(self):
        """Free the workspace sized for the largest batch seen (it grows again when needed)."""
        self._engine.release()

    # ---- data ----------------------------------------------------------------------------

    def check_data(self, X, Y=None, sample_weight=None):
        """(X, Y, sample_weight) checked and converted for this network, once.

        Parameters
        ----------
        X : array-like of shape (N, n_in), or CheckedData
            A CheckedData (Y and sample_weight then not given) is checked to be laid out for
            this network.
        Y : array-like of shape (N, n_out), or (N,) integer labels for softmax cross-entropy
        sample_weight : array-like of shape (N,), optional

        Returns
        -------
        CheckedData
            To pass in place of X to `loss`, `gradients`, `train_step` and `fit`, or to
            `fastnn.training.run_epoch`: no further checks are made.
        """
        if isinstance(X, CheckedData):
            return self._checked(X, Y, sample_weight)
        return CheckedData(*self._checked(X, Y, sample_weight))

    def _checked(self, X, Y, sample_weight, part=False):
        """check_data's work, as a plain tuple: a training step allocates no Python object for
        it (a tuple of three comes from CPython's free list). With ``part`` (a stream's chunk),
        a normalizer S of 0 is allowed: the caller checks the whole's."""
        if isinstance(X, CheckedData):
            if Y is not None or sample_weight is not None:
                raise TypeError("with CheckedData as X, give no Y or sample_weight")
            return self._checked_layout(X)
        # the common case, a ready array, is checked without creating a Python object
        if not ready(X, self._n_in, self._dtype):
            X = as_matrix("X", X, self._n_in, self._dtype)
            if X.shape[0] == 0:
                raise ValueError("X and Y are empty: at least one sample is needed")
        Y = as_targets(Y, X, self._n_out, self._dtype, self._label_targets)
        if sample_weight is not None:
            sample_weight = as_sample_weight(sample_weight, X.shape[0], self._dtype,
                                             positive_sum=not part)
        if self._target_rules:
            self._check_target_rules(Y, sample_weight, part)
        return X, Y, sample_weight

    def _check_target_rules(self, Y, sample_weight, part):
        """Refuse targets outside the loss' range: probabilities for cross-entropy, counts or
        rates >= 0 for Poisson; and data whose normalizer the class weights make 0."""
        if self._unit_targets and (Y.min() < 0 or Y.max() > 1):
            raise ValueError(f"{self._loss_name} targets must be probabilities in [0, 1]")
        if self._nonnegative_targets and Y.min() < 0:
            raise ValueError(f"{self._loss_name} targets must be counts or rates >= 0, got "
                             f"{Y.min()}")
        if self._loss_weighted:
            self._check_normalizer(Y, sample_weight, part)

    def _check_normalizer(self, Y, sample_weight, part):
        """Refuse data whose normalizer S is 0 (unless ``part``) or overflows, which class
        weights make possible: the objective, a mean weighted by S, would be NaN."""
        S = self._engine.normalizer(Y, sample_weight)
        if not (S > 0 or part and S == 0):
            raise ValueError("the class weights of these targets (times their sample weights) sum "
                             "to 0: the weighted mean loss is undefined (every row of a class of "
                             "weight 0?)")
        if not math.isfinite(S):
            raise ValueError("the class weights of these targets (times their sample weights) sum "
                             "to more than float64 can hold; scale them down")

    def _normalizer(self, data):
        """S of checked data, what its objective is divided by: its rows, or the sum of its
        sample weights, or with class weights ``sum_i s_i r_i`` (see `loss`)."""
        X, Y, s = data
        if not self._loss_weighted:
            return X.shape[0] if s is None else float(s.sum())
        return self._engine.normalizer(Y, s)

    def _checked_layout(self, data):
        """``data`` if its arrays have the layout the engine reads (a CheckedData's values were
        checked when it was made): a cheap guard, since the engine itself trusts every pointer."""
        X, Y, s = data
        n = X.shape[0] if isinstance(X, np.ndarray) else -1
        expected = ((X, (n, self.sizes[0])), (Y, (n, self.sizes[-1])), (s, (n,)))
        for array, shape in expected:
            if array is None and shape == (n,):
                continue
            if not (isinstance(array, np.ndarray) and array.dtype == self.dtype
                    and array.shape == shape and array.flags.c_contiguous and n > 0):
                raise ValueError("data for this network must come from its check_data")
        return data

    def _training_rows(self, rows):
        if self._batch_norm and rows < 2:
            raise ValueError("batch normalization in training needs batches of at least 2 rows")

    # ---- evaluation ----------------------------------------------------------------------

    def forward(self, X):
        """The output activations for the rows of X, in evaluation mode.

        Parameters
        ----------
        X : array-like of shape (N, n_in), or a Dask array or DataFrame

        Returns
        -------
        ndarray of shape (N, n_out)
            For a Dask X, a lazy Dask array (or DataFrame) computed block by block on the
            workers, the network sent to them once (see `fastnn.cluster.lazy_predict`).
        """
        if not ready(X, self.sizes[0], self.dtype):
            if is_dask(X):
                return lazy_predict(self, "forward", X)
            X = as_matrix("X", X, self.sizes[0], self.dtype)
        return self._engine.forward(X)

    predict = forward

    def loss(self, X, Y=None, sample_weight=None):
        """The objective ``J = (1/N) sum_i L_i + (l2/2) sum_l ||W_l||^2`` on (X, Y), in
        evaluation mode.

        Parameters
        ----------
        X : array-like of shape (N, n_in), or CheckedData
        Y : array-like of shape (N, n_out)
            Targets; for softmax cross-entropy also integer labels of shape (N,).
        sample_weight : array-like of shape (N,), optional
            Non-negative weights s_i: the mean over the samples becomes the weighted mean
            ``sum_i s_i L_i / sum_i s_i`` (``sum_i s_i L_i / sum_i s_i r_i`` with the class
            weights of softmax cross-entropy, ``r_i = sum_k w_k y_ik``).

        Returns
        -------
        float
        """
        return self._engine.loss(*self.check_data(X, Y, sample_weight))

    # ---- training ------------------------------------------------------------------------

    def gradients(self, X, Y=None, sample_weight=None, flat=False):
        """The objective on (X, Y) and its gradient, in training mode (nothing changes).

        Parameters
        ----------
        X : array-like of shape (N, n_in), or CheckedData
        Y : array-like of shape (N, n_out), or (N,) integer labels for softmax cross-entropy
        sample_weight : array-like of shape (N,), optional
            Non-negative weights of the samples (see `loss`).
        flat : bool, default False
            Return the gradient as one vector laid out like `params`.

        Returns
        -------
        J : float
        dW : list of ndarray
            ``dJ/dW_l``, new arrays shaped like ``weights`` (with flat: the whole gradient).
        db : list of ndarray
            ``dJ/db_l``, new arrays shaped like ``biases`` (not returned with flat).
        """
        data = self.check_data(X, Y, sample_weight)
        self._training_rows(data.X.shape[0])
        J, grad = self._engine.gradients(*data)
        if not (math.isfinite(J) and all_finite(grad)):
            raise FloatingPointError(f"the loss ({J}) or its gradient is not finite on this data "
                                     f"(inputs, targets or sample weights too large or small?)")
        if flat:
            return J, grad
        parts = _views(grad, self._param_slices)
        return (J, [v for k, v in parts.items() if k.endswith(".W")],
                [v for k, v in parts.items() if k.endswith(".b")])

    def train_step(self, X, Y=None, optimizer=None, sample_weight=None, clip_grad_norm=None):
        """One update of the parameters by ``optimizer`` on the batch (X, Y), in training mode.

        A learning-rate schedule is not stepped here: call its ``step()`` when it should step,
        as in a torch loop (see `fastnn.schedules`).

        Parameters
        ----------
        X : array-like of shape (N, n_in), or CheckedData
        Y : array-like of shape (N, n_out), or (N,) integer labels for softmax cross-entropy
        optimizer : fastnn.Optimizer
        sample_weight : array-like of shape (N,), optional
            Non-negative weights of the samples (see `loss`).
        clip_grad_norm : float, optional
            Clip the gradient to this norm (> 0) before the update, as
            ``torch.nn.utils.clip_grad_norm_`` (see `fastnn.training.fit`).

        Returns
        -------
        float
            The objective J on the batch before the update.

        Raises
        ------
        FloatingPointError
            If J is not finite, or if the update would make a parameter NaN or infinite; the
            network and the optimizer are then left as they were.
        """
        X, Y, s = self._checked(X, Y, sample_weight)
        max_norm = 0.0 if clip_grad_norm is None else training.check_clip_grad_norm(
            clip_grad_norm)
        rule = training.check_optimizer(optimizer).bind(self)
        if self._batch_norm:
            self._training_rows(X.shape[0])
        J, status = self._engine.step(X, Y, s, rule, max_norm)
        if status == STEP_NONFINITE_LOSS:
            raise FloatingPointError(f"the loss is {J} on this batch; the parameters were not "
                                     f"updated (a learning rate too high, or inputs or targets "
                                     f"too large?)")
        if status == STEP_NONFINITE_PARAMS:
            raise FloatingPointError(
                "this update would make a parameter NaN or infinite; the parameters and the "
                "optimizer's state were left as they were (a learning rate too high, inputs or "
                "sample weights too large or too small, or eps=0?)")
        return J

    def train_epoch(self, data, optimizer, batch_size, order=None, clip_grad_norm=None,
                    schedule=None, progress=None):
        """One epoch of minibatch updates on checked data, run in compiled code.

        Parameters
        ----------
        data : CheckedData
            From `check_data`.
        optimizer : fastnn.Optimizer
        batch_size : int
            Rows per update (>= 1); the last batch may be smaller.
        order : array of int of shape (N,), optional
            The order in which to visit the rows; as stored if None.
        clip_grad_norm : float, optional
            Clip each batch's gradient to this norm (> 0) before its update, as
            ``torch.nn.utils.clip_grad_norm_`` (see `fastnn.training.fit`).
        schedule : fastnn.schedules.Schedule, optional
            A schedule with ``interval="step"``, bound to ``optimizer`` if it is not yet: it
            steps after each batch, inside the compiled loop. If Ctrl-C stops the epoch, it has
            taken one step per batch done. (An epoch-interval schedule steps after the epoch: see
            `fastnn.training.run_epoch`.)
        progress : callable, optional
            Called as ``progress(rows, loss)`` about every 0.1 s while the epoch runs, and at its
            end: ``rows`` the rows trained on so far, ``loss`` their mean J so far (as returned).
            The epoch then runs in compiled chunks of batches, each sized to last about 0.1 s:
            Python runs between chunks, never per batch, and the result is the same, bit for
            bit.

        Returns
        -------
        float
            The mean over the samples (weighted) of J on their batch before its update; with
            class weights, the mean of the batches' J weighted by their normalizers S.

        Raises
        ------
        FloatingPointError
            If a loss or a parameter becomes NaN or infinite; the network (parameters, buffers,
            dropout generator), the optimizer and the schedule are then restored to their state
            at the start of the epoch.
        KeyboardInterrupt
            On Ctrl-C (in the main thread), within a batch's time: the network and the optimizer
            then hold the last completed update (the state at the start of the epoch if that
            update was not finite), and the schedule has taken a step for each batch done.
        """
        if not isinstance(data, CheckedData):
            raise TypeError("train_epoch takes the CheckedData that check_data returns")
        max_norm = training.check_clip_grad_norm(clip_grad_norm)
        X, Y, s = self._checked_layout(data)
        n = X.shape[0]
        if order is not None:
            order = np.asarray(order)
            if (order.dtype.kind not in "iu" or order.shape != (n,) or order.min() < 0
                    or order.max() >= n):
                raise ValueError(f"order must hold {n} integer row indices in 0..{n - 1}")
            order = np.ascontiguousarray(order, dtype=np.intp)
        batch_size = check_int("batch_size", batch_size, 1)
        if self._batch_norm:
            self._training_rows(min(batch_size, n))
            if n % batch_size == 1:
                raise ValueError(f"batch normalization in training needs batches of at least 2 "
                                 f"rows: {n} rows in batches of {batch_size} leave a last batch "
                                 f"of 1 (choose another batch_size)")
        rule = training.check_optimizer(optimizer).bind(self)
        if schedule is not None:
            schedule = check_schedule(schedule, optimizer)
            if schedule.interval != "step":
                raise ValueError(
                    f"train_epoch steps a schedule with interval='step' after each batch; this "
                    f"one has interval={schedule.interval!r}: step it after the epoch "
                    f"(schedule.step()), or give it to fastnn.training.run_epoch or fit")
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be a function of (rows, loss), got {progress!r}")
        snapshot = (self._engine.snapshot(), optimizer.state_dict(),
                    schedule.state_dict() if schedule is not None else None)
        epoch = (X, Y, s, order, batch_size, rule, max_norm, schedule is not None)
        try:
            if progress is None:
                total, _, done = self._engine.epoch(*epoch)
            else:
                total, done = self._epoch_in_chunks(epoch, progress)
        except KeyboardInterrupt:
            if not self._intact(optimizer):
                self._restore_epoch(snapshot, optimizer, schedule)
            raise
        if not (done == -(-n // batch_size) and self._intact(optimizer)):
            self._restore_epoch(snapshot, optimizer, schedule)
            raise FloatingPointError(
                "the loss became NaN or infinite; the network and the optimizer (and the "
                "schedule) were restored to their state at the start of the epoch (a learning "
                "rate too high, or inputs or targets too large?)")
        return total / self._normalizer(data)

    def _epoch_in_chunks(self, epoch, progress):
        """The compiled epoch ``epoch`` (the engine's arguments) run in chunks of batches that
        each last about CHUNK_SECONDS, calling ``progress(rows, loss)`` after each: its total
        and the batches done, as one call of the engine gives them."""
        X, batch_size = epoch[0], epoch[4]
        n = X.shape[0]
        n_batches = -(-n // batch_size)
        total = seen = 0.0
        done, size = 0, 1
        while done < n_batches:
            started = time.perf_counter()
            stop = min(done + size, n_batches)
            total, seen, done = self._engine.epoch(*epoch, done, stop, total, seen)
            if done < stop:
                break
            elapsed = time.perf_counter() - started
            # the next chunk sized by this one's pace, growing at most fourfold at a time
            size = max(1, min(4 * size, int(size * CHUNK_SECONDS / max(elapsed, 1e-9))))
            progress(min(done * batch_size, n), total / seen if seen > 0 else math.nan)
        return total, done

    def _intact(self, optimizer):
        """Whether the parameters, buffers and the optimizer's state are all finite (the state
        read where it is: `state_dict` would copy it, after every epoch)."""
        return (all_finite(self.params) and all_finite(self.buffers)
                and all(all_finite(v) for v in optimizer._rule.states or ()))

    def _restore_epoch(self, snapshot, optimizer, schedule):
        """Put the network, the optimizer and the schedule back as ``snapshot`` (taken by
        `train_epoch` at the start of the epoch) holds them."""
        self._engine.restore(*snapshot[0])
        optimizer.load_state_dict(snapshot[1])
        if schedule is not None:
            schedule.load_state_dict(snapshot[2])

    def fit(self, X, Y, optimizer=None, epochs=10, batch_size=32, shuffle=True, seed=None,
            validation_data=None, validation_split=0.0, early_stopping=False, patience=10,
            min_delta=0.0, verbose=0, sample_weight=None, clip_grad_norm=None, schedule=None,
            callbacks=None, checkpoint=None, checkpoint_every=1, resume=None, n_threads=None):
        """Train on (X, Y) by minibatches; see `fastnn.training.fit` for every parameter.

        Returns
        -------
        fastnn.History
        """
        return training.fit(self, X, Y, optimizer=optimizer, epochs=epochs,
                            batch_size=batch_size, shuffle=shuffle, seed=seed,
                            validation_data=validation_data, validation_split=validation_split,
                            early_stopping=early_stopping, patience=patience,
                            min_delta=min_delta, verbose=verbose, sample_weight=sample_weight,
                            clip_grad_norm=clip_grad_norm, schedule=schedule,
                            callbacks=callbacks, checkpoint=checkpoint,
                            checkpoint_every=checkpoint_every, resume=resume, n_threads=n_threads)

    def save(self, path):
        """Write the architecture, dtype, parameters and buffers to ``path`` (see `fastnn.load`):
        a safetensors file if its name ends in ``.safetensors``, else an ``.npz`` archive."""
        io.save(self, path)

    def to_onnx(self, path=None, dtype=None):
        """The network as an ONNX graph of standard operators (opset 17): input "X" (N, n_in),
        output "Y" = `forward` (X), in evaluation mode, with a dynamic batch size N.

        onnxruntime gives this network's outputs to rounding (1e-12 relative in float64, 1e-6
        in float32) for every layer kind and activation; see `fastnn.onnx_export`.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Write the model there (atomically), as an ``.onnx`` file.
        dtype : {"float32", "float64"}, optional
            The graph's input, weights and output; the network's dtype by default.

        Returns
        -------
        onnx.ModelProto

        Raises
        ------
        ImportError
            If onnx is not installed (``pip install "fastnn-cpu[onnx]"``).
        """
        from fastnn import onnx_export  # imported here: it imports this module
        model = onnx_export.network_model(self, dtype)
        if path is not None:
            onnx_export.write(model, path)
        return model

    def __repr__(self):
        loss_options = f", loss_options={self._loss_options!r}" if self._loss_options else ""
        if self._options is not None:
            options = "".join(f", {k}={v!r}" for k, v in self._options.items())
            return (f"MLP({list(self.sizes)}, activation={self.activation!r}, "
                    f"output_activation={self.output_activation!r}, loss={self.loss_name!r}, "
                    f"l2={self.l2!r}, dtype={self.dtype.name!r}{options}{loss_options})")
        return (f"MLP.from_layers({self._n_in}, {list(self._layers)}, loss={self.loss_name!r}, "
                f"l2={self.l2!r}, dtype={self.dtype.name!r}{loss_options})")
