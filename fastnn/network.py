"""The multilayer perceptron: its parameters, forward pass, loss, gradients and training step."""
import math

import numpy as np

from fastnn import io, training
from fastnn._engine import ACTIVATIONS, LOSSES, Engine, ready
from fastnn._validation import (as_matrix, as_sample_weight, as_targets, check_choice,
                                check_int, check_real)

__all__ = ["MLP"]

HIDDEN_ACTIVATIONS = ("sigmoid", "relu", "tanh", "identity")
OUTPUT_ACTIVATIONS = ("identity", "sigmoid", "softmax")
DTYPES = ("float32", "float64")


class MLP:
    """A dense feed-forward network: ``Z_l = A_{l-1} @ W_l + b_l``, ``A_l = f(Z_l)``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_in, h1, ..., n_out]``, at least two, each a positive integer.
    activation : {"relu", "sigmoid", "tanh", "identity"}, default "relu"
        Activation of the hidden layers.
    output_activation : {"identity", "sigmoid", "softmax"}, default "identity"
        Activation of the output layer.
    loss : {"squared_error", "cross_entropy"}, default "squared_error"
        Per-sample loss L, summed over the outputs: ``sum_k (yhat_k - y_k)^2``, or the
        cross-entropy of a softmax or sigmoid output, computed from the logits.
    l2 : float, default 0.0
        The objective is ``J = (1/N) sum_i L_i + (l2/2) sum_l ||W_l||^2`` (biases not penalized).
    dtype : {"float64", "float32"}, default "float64"
        Precision of the parameters and of every computation.
    seed : int or None, default None
        Seed of the initialization: Glorot-uniform weights before sigmoid, tanh, identity and
        softmax, He-normal before relu; zero biases.

    Attributes
    ----------
    params : ndarray of shape (n_params,)
        The flat vector that holds every parameter: W_1, b_1, W_2, b_2, ...
    weights : list of ndarray
        ``weights[l]`` of shape (sizes[l], sizes[l+1]) is a writable view into ``params``;
        ``weights[l][i, j]`` connects input unit i to output unit j.
    biases : list of ndarray
        ``biases[l]`` of shape (sizes[l+1],), a writable view into ``params``.
    """

    def __init__(self, sizes, activation="relu", output_activation="identity",
                 loss="squared_error", l2=0.0, dtype="float64", seed=None):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a sequence of layer widths, got {sizes!r}")
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least an input and an output width, got {list(sizes)}")
        # the architecture is fixed (read-only properties below): the engine is built from it
        self._sizes = tuple(check_int(f"sizes[{i}]", n, 1) for i, n in enumerate(sizes))
        self._activation = check_choice("activation", activation, HIDDEN_ACTIVATIONS)
        self._output_activation = check_choice("output_activation", output_activation,
                                               OUTPUT_ACTIVATIONS)
        self._loss_name = check_choice("loss", loss, tuple(LOSSES))
        if self._loss_name == "cross_entropy" and self._output_activation == "identity":
            raise ValueError('loss="cross_entropy" needs output_activation "softmax" or "sigmoid", '
                             'not "identity"')
        self._l2 = check_real("l2", l2, low=0)
        self._dtype = np.dtype(check_choice(
            "dtype", dtype if isinstance(dtype, str) else str(np.dtype(dtype)), DTYPES))
        self._engine = Engine(self._sizes, ACTIVATIONS[self._activation],
                              ACTIVATIONS[self._output_activation], LOSSES[self._loss_name],
                              self._l2, self._dtype)
        self._loss_scale, self._l2_per_sample = 1.0, False
        self.weights, self.biases = [], []
        offset = 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            self.weights.append(self.params[offset:offset + n_in * n_out].reshape(n_in, n_out))
            offset += n_in * n_out
            self.biases.append(self.params[offset:offset + n_out])
            offset += n_out
        self.initialize(seed)

    @property
    def sizes(self):
        """Layer widths, the input first (a tuple)."""
        return self._sizes

    @property
    def activation(self):
        """Activation of the hidden layers."""
        return self._activation

    @property
    def output_activation(self):
        """Activation of the output layer."""
        return self._output_activation

    @property
    def loss_name(self):
        """The per-sample loss: "squared_error" or "cross_entropy"."""
        return self._loss_name

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
        self.params[:] = values[0]

    def config(self):
        """The constructor's arguments (but the seed) and the objective's scaling, as a dict."""
        return {"sizes": list(self.sizes), "activation": self.activation,
                "output_activation": self.output_activation, "loss": self.loss_name,
                "l2": self.l2, "dtype": self.dtype.name, "loss_scale": self._loss_scale,
                "l2_per_sample": self._l2_per_sample}

    @classmethod
    def from_config(cls, config):
        """A network with zero parameters built from `config` (as `MLP.config` returns it)."""
        net = cls(config["sizes"], activation=config["activation"],
                  output_activation=config["output_activation"], loss=config["loss"],
                  l2=config["l2"], dtype=config["dtype"], seed=0)
        net._scale_objective(config.get("loss_scale", 1.0), config.get("l2_per_sample", False))
        net.params[:] = 0
        return net

    def _scale_objective(self, loss_scale, l2_per_sample):
        """Use ``J = loss_scale sum_i s_i L_i / S + (l2/2) sum ||W||^2 [/ S if l2_per_sample]``.

        fastnn.sklearn sets scikit-learn's objective this way (loss_scale 1/2 for squared error,
        the penalty per sample).
        """
        self._loss_scale = check_real("loss_scale", loss_scale, low=0)
        self._l2_per_sample = bool(l2_per_sample)
        self._engine.set_objective(self._l2, self._loss_scale, self._l2_per_sample)

    def __getstate__(self):
        return {"config": self.config(), "params": self.params.copy()}

    def __setstate__(self, state):
        self.__dict__.update(MLP.from_config(state["config"]).__dict__)
        self.params[:] = state["params"]

    @property
    def n_params(self):
        """The number of parameters."""
        return self.params.size

    def initialize(self, seed=None):
        """Draw new weights (Glorot-uniform, He-normal before relu) and zero the biases.

        Parameters
        ----------
        seed : int or None
            Seed of ``numpy.random.default_rng``; the same seed gives the same weights.
        """
        rng = np.random.default_rng(seed)
        for l, W in enumerate(self.weights):
            n_in, n_out = W.shape
            is_hidden = l < len(self.weights) - 1
            if is_hidden and self.activation == "relu":
                W[:] = rng.normal(0.0, np.sqrt(2.0 / n_in), size=W.shape)
            else:
                limit = np.sqrt(6.0 / (n_in + n_out))
                W[:] = rng.uniform(-limit, limit, size=W.shape)
            self.biases[l][:] = 0

    def _inputs(self, X):
        return as_matrix("X", X, self.sizes[0], self.dtype)

    def _data(self, X, Y, sample_weight=None):
        """Checked, converted (X, Y, sample_weight) for the engine."""
        # the common case, a ready array, is checked without creating a Python object
        if not ready(X, self.sizes[0], self.dtype):
            X = self._inputs(X)
            if X.shape[0] == 0:
                raise ValueError("X and Y are empty: at least one sample is needed")
        labels = self.loss_name == "cross_entropy" and self.output_activation == "softmax"
        Y = as_targets(Y, X, self.sizes[-1], self.dtype, labels)
        if self.loss_name == "cross_entropy" and (Y.min() < 0 or Y.max() > 1):
            raise ValueError("cross_entropy targets must be probabilities in [0, 1]")
        if sample_weight is None:
            return X, Y, None
        return X, Y, as_sample_weight(sample_weight, X.shape[0], self.dtype)

    def forward(self, X):
        """The output activations for the rows of X.

        Parameters
        ----------
        X : array-like of shape (N, n_in)

        Returns
        -------
        ndarray of shape (N, n_out)
        """
        if not ready(X, self.sizes[0], self.dtype):
            X = self._inputs(X)
        return self._engine.forward(X)

    predict = forward

    def loss(self, X, Y, sample_weight=None):
        """The objective ``J = (1/N) sum_i L_i + (l2/2) sum_l ||W_l||^2`` on (X, Y).

        Parameters
        ----------
        X : array-like of shape (N, n_in)
        Y : array-like of shape (N, n_out)
            Targets; for softmax cross-entropy also integer labels of shape (N,).
        sample_weight : array-like of shape (N,), optional
            Non-negative weights s_i: the mean over the samples becomes the weighted mean
            ``sum_i s_i L_i / sum_i s_i``.

        Returns
        -------
        float
        """
        return self._engine.loss(*self._data(X, Y, sample_weight))

    def gradients(self, X, Y, sample_weight=None):
        """The objective on (X, Y) and its gradient.

        Parameters
        ----------
        X : array-like of shape (N, n_in)
        Y : array-like of shape (N, n_out), or (N,) integer labels for softmax cross-entropy
        sample_weight : array-like of shape (N,), optional
            Non-negative weights of the samples (see `loss`).

        Returns
        -------
        J : float
        dW : list of ndarray
            ``dJ/dW_l``, new arrays shaped like ``weights``.
        db : list of ndarray
            ``dJ/db_l``, new arrays shaped like ``biases``.
        """
        J = self._engine.gradients(*self._data(X, Y, sample_weight))
        grad = self._engine.grad.copy()
        dW, db, offset = [], [], 0
        for W, b in zip(self.weights, self.biases):
            dW.append(grad[offset:offset + W.size].reshape(W.shape))
            offset += W.size
            db.append(grad[offset:offset + b.size])
            offset += b.size
        return J, dW, db

    def train_step(self, X, Y, optimizer, sample_weight=None):
        """One update of the parameters by ``optimizer`` on the batch (X, Y).

        Parameters
        ----------
        X : array-like of shape (N, n_in)
        Y : array-like of shape (N, n_out), or (N,) integer labels for softmax cross-entropy
        optimizer : fastnn.SGD or fastnn.Adam
        sample_weight : array-like of shape (N,), optional
            Non-negative weights of the samples (see `loss`).

        Returns
        -------
        float
            The objective J on the batch before the update.

        Raises
        ------
        FloatingPointError
            If J is not finite; the parameters are then left as they were.
        """
        rule = training.check_optimizer(optimizer)._rule_for(self)
        X, Y, s = self._data(X, Y, sample_weight)
        J = self._engine.step(X, Y, s, rule)
        if not math.isfinite(J):
            raise FloatingPointError(f"the loss is {J} on this batch; the parameters were not "
                                     f"updated (a learning rate too high, or inputs or targets too large?)")
        return J

    def fit(self, X, Y, optimizer=None, epochs=10, batch_size=32, shuffle=True, seed=None,
            validation_data=None, validation_split=0.0, early_stopping=False, patience=10,
            min_delta=0.0, verbose=0, sample_weight=None):
        """Train on (X, Y) by minibatches; see `fastnn.training.fit` for every parameter.

        Returns
        -------
        fastnn.History
        """
        return training.fit(self, X, Y, optimizer=optimizer, epochs=epochs,
                            batch_size=batch_size, shuffle=shuffle, seed=seed,
                            validation_data=validation_data, validation_split=validation_split,
                            early_stopping=early_stopping, patience=patience,
                            min_delta=min_delta, verbose=verbose, sample_weight=sample_weight)

    def save(self, path):
        """Write the architecture, dtype and parameters to ``path`` (see `fastnn.load`)."""
        io.save(self, path)

    def __repr__(self):
        return (f"MLP({list(self.sizes)}, activation={self.activation!r}, "
                f"output_activation={self.output_activation!r}, loss={self.loss_name!r}, "
                f"l2={self.l2!r}, dtype={self.dtype.name!r})")
