"""scikit-learn's `MLPClassifier` and `MLPRegressor`, trained by fastnn's compiled core.

Change ``from sklearn.neural_network import MLPClassifier`` to
``from fastnn.sklearn import MLPClassifier`` and keep the rest of the code: the constructor
parameters, their defaults and meanings, the methods and the fitted attributes are scikit-learn
1.9's.

Design
------
- The objective is scikit-learn's: output deltas ``(yhat - y) s_i / S`` and the penalty
  ``alpha/2 ||W||^2 / S`` (S the sum of the batch's sample weights), that is a fastnn `MLP` with
  ``l2=alpha`` whose objective is scaled by ``_scale_objective(loss_scale, l2_per_sample=True)``,
  ``loss_scale`` 1/2 for squared error (identity output) and 1 for the log-loss (softmax output for
  multiclass, sigmoid for binary and multilabel targets).
- The network is the storage: ``coefs_[l]`` and ``intercepts_[l]`` are views of ``W_l`` and ``b_l``
  in its flat parameter vector, shaped ``(n_in, n_out)`` as scikit-learn's. Its dtype follows X's
  (float32 X trains float32 weights, as in scikit-learn).
- Initialization draws exactly scikit-learn's numbers (`_init_coef`: uniform in
  ``+-sqrt(factor / (fan_in + fan_out))``, factor 2 for logistic and 6 otherwise, weights then
  intercepts layer by layer, from ``check_random_state(random_state)``). The training rows are
  shuffled with scikit-learn's own calls on the same random state, and the early-stopping split is
  its `train_test_split` (stratified for binary targets, as scikit-learn does). So with the same
  ``random_state`` both libraries start from the same weights and visit the same batches.
- 'adam' is fastnn's `Adam` with ``eps_hat=True``: eps added before the bias correction, the form
  of scikit-learn's (and Keras's) Adam, where torch adds it after.
- 'sgd' and 'adam' run one compiled epoch per ``MLP.fit(..., epochs=1)`` call; between epochs,
  Python applies scikit-learn's rules: ``tol`` and ``n_iter_no_change`` on the training loss or on
  the validation score (accuracy / R^2) with ``early_stopping``, the 'invscaling' rate
  ``learning_rate_init / (t_ + 1) ** power_t`` and the 'adaptive' division by 5.
- 'lbfgs' hands the flat parameter vector and the compiled objective and gradient to
  ``scipy.optimize.minimize(method="L-BFGS-B")`` with scikit-learn's options
  (``maxiter=max_iter, maxfun=max_fun, gtol=tol``).

Beyond scikit-learn
-------------------
Parameters scikit-learn's MLPs do not have; their defaults change nothing (same draws from
``random_state``, same weights, same numbers):

- ``activation`` also takes fastnn's other hidden activations: 'leaky_relu' (negative slope 0.01),
  'elu' (alpha 1), 'gelu', 'gelu_tanh', 'silu' and 'softplus' (`fastnn.registry`); scikit-learn's
  four keep their names ('logistic' is fastnn's 'sigmoid'). The initialization stays
  scikit-learn's (uniform with factor 6) for all of them.
- ``dropout`` (rate, 0 = off): a dropout layer after each hidden activation, active in training
  only. Its masks come from fastnn's generator seeded by one draw from ``random_state`` after the
  initial weights (no draw without dropout), so a fit is deterministic given ``random_state``.
- ``batch_norm`` (False): batch normalization between each hidden dense layer and its activation
  (``coefs_`` and ``intercepts_`` stay the dense layers'; the normalization's own parameters and
  running statistics live in the network). The batch statistics train, the running ones predict.
  A training batch needs 2 rows: ``batch_size='auto'`` then takes the largest size <=
  ``min(200, n_samples)`` that leaves no batch of one row; an explicit ``batch_size`` that does
  is an error.
- dropout and batch normalization train by minibatches: with ``solver='lbfgs'`` they are an error
  (L-BFGS needs one deterministic full-batch objective, and would move no running statistics).
- ``class_weight`` of `MLPClassifier` (None): scikit-learn's meaning. A dict ``{class: weight}``
  (classes not named weigh 1) or 'balanced', ``n_samples / (n_classes * np.bincount(y))``
  (the counts weighted by ``sample_weight`` when given, as scikit-learn's
  `compute_class_weight` and LogisticRegression). The class weights multiply the sample
  weights, in training and in the early-stopping validation score and loss. Multilabel targets
  follow scikit-learn's multi-output rule (RandomForestClassifier's): each label column weighs
  the samples by its value, 'balanced' per column or a list of dicts ``{0: w, 1: w}``, one per
  column, and a sample's class weight is the product over the columns. 'balanced' is an error
  in ``partial_fit``, as in scikit-learn's SGDClassifier: the class frequencies are those of all
  the data, so compute them with `compute_class_weight` and pass the dict.
- ``loss`` of `MLPRegressor`: 'squared_error' (half the squared error, scikit-learn's), and
  'absolute_error' (``|yhat - y|``) and 'huber' (``d^2 / 2`` for ``|d| <= huber_delta``, else
  ``huber_delta (|d| - huber_delta / 2)``; ``huber_delta=1.0``, named after its loss as
  scikit-learn's ``quantile`` of HistGradientBoostingRegressor, since ``alpha`` and ``epsilon``
  are taken). As for the squared error, a sample's loss is summed over the outputs and the
  reported loss (``loss_``, ``loss_curve_``) averages it over them.
- ``n_threads`` (None): a cap on the BLAS threads of the network's products (`fastnn.threads`),
  not a setting of the model: `to_sklearn` leaves it behind.
- ``validation_loss_curve_`` beside ``validation_scores_`` with early stopping (scikit-learn
  issue #18507): after each epoch, the objective of ``loss_curve_`` (loss and L2 penalty, the
  penalty divided by the validation part's sample-weight sum, as a training batch's) on the
  validation part, in evaluation mode; None without early stopping.

Differences from scikit-learn that remain
-----------------------------------------
- SGD momentum: fastnn's is torch's (a buffer of gradients scaled by the current rate), which is
  identical to scikit-learn's velocity for a constant rate. When 'invscaling' or 'adaptive' change
  the rate between epochs, the buffer is rescaled by ``old_rate / new_rate``, which keeps the two
  identical (to rounding) for every schedule.
- Log-loss: fastnn computes it from the logits, scikit-learn from probabilities clipped to
  ``[eps, 1 - eps]``. The gradients are the same; the reported loss differs only for saturated
  outputs (probability within 1e-16 of 0 or 1), where fastnn's is the exact one.
- Reported training loss with sample weights: ``loss_`` is the mean of the batch objectives weighted
  by each batch's sample-weight sum, scikit-learn's weights them by the batch's row count. Equal
  without sample weights.
- Reported training loss of multi-output regression with ``alpha > 0`` and 'sgd'/'adam':
  scikit-learn divides the squared-error term of each batch, not its penalty, by n_outputs. The
  compiled epoch returns the sum of the batch objectives only, so the penalty part is estimated
  with ``||W||^2`` interpolated linearly between the epoch's start and end. The reported loss is
  then within 1e-4 relative of scikit-learn's even with ``alpha=1`` (1e-8 at the default), exact
  for one output, one batch per epoch or ``alpha=0``; with 'lbfgs' it is exact. The weights are
  not affected.
- L-BFGS with several regression outputs: scikit-learn gives L-BFGS a loss divided by n_outputs but
  a gradient that is not, so its line search works on an inconsistent pair; fastnn gives the
  consistent pair (the objective whose gradient it is). The fits agree while L-BFGS takes full
  steps and part once a line search shortens one (diabetes, 3 outputs: equal to 1e-13 after 20
  iterations, predictions 0.1 apart after 50). Identical for one output and for classification.
- ``loss="poisson"`` of `MLPRegressor` trains fastnn's Poisson loss on the log link (the
  ``exp`` output), whose gradient is scikit-learn's; fastnn leaves out the terms in y alone,
  ``y log y - y``, which scikit-learn's reported half deviance holds, so the estimator adds
  their (weighted) mean to ``loss_``, ``loss_curve_``, ``validation_loss_curve_`` and to the
  objective L-BFGS sees. Negative targets are an error (scikit-learn's loss is NaN for them).
- Sparse X is accepted and converted to a dense array (the kernels are dense), which needs
  ``n_samples * n_features`` floats of memory.
- ``partial_fit`` of `MLPRegressor` with ``solver="lbfgs"`` raises AttributeError, as
  `MLPClassifier`'s does (scikit-learn's regressor runs a full L-BFGS fit instead).
- A batch whose sample weights are all zero makes no update (scikit-learn divides by zero).
- A training loss that becomes NaN or infinite: scikit-learn's weights become NaN and stay so.
  With early stopping it goes on to ``max_iter`` (NaN losses and validation scores, which never
  trigger the stop) and ends with the best epoch's weights. fastnn warns (RuntimeWarning),
  restores the network to the start of the diverging epoch (it never holds NaN), records the
  same NaN entries for that epoch and the ones left without running them (``n_iter_``,
  ``loss_curve_``, ``validation_scores_``, the ConvergenceWarning are scikit-learn's) and ends
  with the best epoch's weights. Without early stopping it raises scikit-learn's "Solver
  produced non-finite parameter weights" ValueError at once (scikit-learn finishes ``max_iter``
  epochs first).
- ``verbose`` prints scikit-learn's lines for 'sgd' and 'adam'; 'lbfgs' prints nothing (as
  scikit-learn with SciPy >= 1.15).
- ``coefs_`` and ``intercepts_`` are views into the network. Arrays put in their place (a list
  element or the whole list rebound, as a model built by hand) are copied into the network at
  the next fit, partial_fit or prediction, a network built for them if there is none, and the
  attributes are views again.
- The output dtype of predictions is the weights' dtype (scikit-learn's follows the product of
  X and the weights).

Conversions
-----------
`from_sklearn` turns a fitted scikit-learn `MLPClassifier` or `MLPRegressor` into its fastnn
twin, `to_sklearn` back: the same parameters and fitted attributes, ``coefs_`` and
``intercepts_`` bit for bit in their dtype. `register_skl2onnx` lets skl2onnx convert the
estimators (alone or in a Pipeline) as it converts scikit-learn's own.
"""
try:
    import sklearn  # noqa: F401 (a message that says how to install it, before its modules)
except ImportError:
    raise ImportError('fastnn.sklearn needs scikit-learn, which is not installed: '
                      'pip install "fastnn-cpu[sklearn]"') from None
import copy
import functools
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse
from scipy.special import xlogy
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from fastnn import registry
from fastnn._extras import require
from fastnn.cluster import lazy_predict
from fastnn.layers import stream_key
from fastnn.network import MLP
from fastnn.optimizers import SGD, Adam
from fastnn.streams import is_dask
from fastnn.training import run_epoch

__all__ = ["MLPClassifier", "MLPRegressor", "from_sklearn", "to_sklearn", "register_skl2onnx"]

# The hidden activations by scikit-learn's names, with fastnn's: its four ('logistic' is fastnn's
# 'sigmoid') and every other hidden activation of fastnn's registry under its own name.
HIDDEN_ACTIVATIONS = {("logistic" if name == "sigmoid" else name): name
                      for name in registry.hidden_activations()}
OUTPUT_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "softmax": "softmax",
                      "exp": "exp"}
# MLPRegressor's losses, each with the factor of fastnn's per-sample loss in the objective:
# scikit-learn's squared error is half the squared error; the absolute error and torch's Huber
# loss (d^2 / 2 near 0) are taken as they are, and so is the Poisson loss on the log link
# (scikit-learn's half deviance but for its terms in y alone: see `MLPRegressor._loss_offset`).
REGRESSION_LOSSES = {"squared_error": 0.5, "absolute_error": 1.0, "huber": 1.0, "poisson": 1.0}
STOCHASTIC_SOLVERS = ("sgd", "adam")
NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large "
              "values and need to be preprocessed.")


def _dense(X):
    """X as a dense array: the compiled kernels have no sparse path."""
    return X.toarray() if scipy.sparse.issparse(X) else X


def _class_weight_vector(class_weight, classes, name):
    """The weight of each of ``classes`` from the dict ``class_weight`` (1 if not named).

    As scikit-learn's `compute_class_weight`: keys that are not classes are allowed when every
    class is named (a class_weight for all the classes fits data that lacks some), else they are
    taken for a mistake.
    """
    if not isinstance(class_weight, dict):
        raise ValueError(f"{name} must be a dict {{class: weight}}, got {class_weight!r}")
    known = set(classes.tolist())
    unknown = [key for key in class_weight if key not in known]
    unnamed = [c for c in classes.tolist() if c not in class_weight]
    if unknown and unnamed:
        raise ValueError(f"{name} names {unknown}, which are not classes, and not {unnamed}; "
                         f"the classes are {classes.tolist()}")
    for key, weight in class_weight.items():
        if isinstance(weight, bool) or not isinstance(weight, Real) or not (
                np.isfinite(weight) and weight >= 0):
            raise ValueError(f"{name}[{key!r}] must be a finite number >= 0, got {weight!r}")
    return np.array([float(class_weight.get(c, 1.0)) for c in classes.tolist()])


def _layer_sizes(coefs, intercepts):
    """The layer sizes ``[n_in, ..., n_out]`` of weight matrices and bias vectors that chain."""
    if len(coefs) != len(intercepts) or not coefs:
        raise ValueError(f"coefs_ and intercepts_ must be lists of as many arrays, at least one; "
                         f"got {len(coefs)} and {len(intercepts)}")
    sizes = []
    for layer, (W, b) in enumerate(zip(coefs, intercepts)):
        if W.ndim != 2 or b.shape != W.shape[1:]:
            raise ValueError(f"coefs_[{layer}] must be a matrix (n_in, n_out) and "
                             f"intercepts_[{layer}] a vector (n_out,), got shapes {W.shape} and "
                             f"{b.shape}")
        if sizes and W.shape[0] != sizes[-1]:
            raise ValueError(f"coefs_[{layer}] has {W.shape[0]} rows for a layer of "
                             f"{sizes[-1]} units")
        sizes = (sizes or [W.shape[0]]) + [W.shape[1]]
    return sizes


@functools.cache
def _parameter_names(estimator_class):
    """scikit-learn's parameter names of an estimator class: those of its __init__'s signature."""
    return tuple(BaseEstimator._get_param_names.__func__(estimator_class))


class _BaseMLP(BaseEstimator):
    """What `MLPClassifier` and `MLPRegressor` share: training, prediction and pickling."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(HIDDEN_ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, batch_norm=False, n_threads=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.n_threads = n_threads

    @classmethod
    def _get_param_names(cls):
        # scikit-learn reads them from the signature of __init__ at every get_params: ~40 us,
        # four times per fit of a search (clone, set_params, the parameter checks); a class's
        # signature does not change, so it is read once.
        return list(_parameter_names(cls))

    # ---- fitting -------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to the data matrix X and the target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data (sparse input is converted to a dense array).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def _fit(self, X, y, sample_weight, incremental):
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        if self.solver == "lbfgs" and (self.dropout > 0 or self.batch_norm):
            raise ValueError(
                "dropout and batch_norm train by minibatches: use solver='sgd' or 'adam' (L-BFGS "
                "needs one deterministic full-batch objective, and would not move batch "
                "normalization's running statistics, which predictions use)")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        X = _dense(X)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype,
                                                 ensure_non_negative=True)
        sample_weight = self._weigh_classes(y, sample_weight, incremental)
        Y = self._encode(y, X.dtype)
        layer_units = [X.shape[1], *hidden, Y.shape[1]]
        # As scikit-learn: a new random state per call, drawn from in the same order.
        random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(layer_units, X.dtype, random_state)
        else:
            self._sync_network(X.dtype)
            if list(self._net.sizes) != layer_units:
                raise ValueError(f"warm_start and partial_fit continue a network of layer sizes "
                                 f"{list(self._net.sizes)}; this call needs {layer_units}")
            self._adopt_settings()
        self._net.n_threads = self.n_threads
        dtype = self._net.dtype
        X, Y = X.astype(dtype, copy=False), Y.astype(dtype, copy=False)
        if sample_weight is not None:
            sample_weight = sample_weight.astype(dtype, copy=False)
        if self.solver in STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, Y, sample_weight, random_state, incremental)
        else:
            self._fit_lbfgs(X, Y, sample_weight)
        if not np.isfinite(self._net.params).all():
            raise ValueError(NON_FINITE)
        return self

    def _weigh_classes(self, y, sample_weight, incremental):
        """The sample weights the fit uses (`MLPClassifier` multiplies its class weights in)."""
        return sample_weight

    def _initialize(self, layer_units, dtype, random_state):
        """A new network with scikit-learn's initial weights, and the fitted attributes' start."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = layer_units[-1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        self._build_network(layer_units, dtype)
        factor = 2.0 if self.activation == "logistic" else 6.0
        for W, b in zip(self._net.weights, self._net.biases):
            bound = np.sqrt(factor / sum(W.shape))
            W[:] = random_state.uniform(-bound, bound, W.shape)
            b[:] = random_state.uniform(-bound, bound, b.shape)
        if self.dropout > 0:
            # the masks' stream: one draw after the weights (none without dropout, which keeps
            # scikit-learn's draws), so the same random_state gives the same masks
            self._net.random_state = (stream_key(random_state.randint(np.iinfo(np.int32).max)),
                                      0)
        self._optimizer = None
        self._best_state = self._net.state_dict()
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            self.best_loss_ = self.validation_scores_ = self.validation_loss_curve_ = None
            self.best_validation_score_ = None

    def _settings(self):
        """What the network is built from, beside its sizes and dtype."""
        return (self.activation, float(self.dropout), bool(self.batch_norm), *self._objective())

    def _build_network(self, layer_units, dtype, state=None):
        """A fastnn network with this estimator's layers and scikit-learn's objective as
        ``_net`` (with the parameters, buffers and generator of ``state``, a `state_dict`), and
        coefs_ and intercepts_ as views of it."""
        loss, options, loss_scale = self._objective()
        net = MLP(layer_units, activation=HIDDEN_ACTIVATIONS[self.activation],
                  output_activation=OUTPUT_ACTIVATIONS[self.out_activation_], loss=loss,
                  l2=self.alpha, dtype=dtype, seed=0, dropout=self.dropout,
                  batch_norm=self.batch_norm, loss_options=options, n_threads=self.n_threads)
        net.scale_objective(loss_scale, True)
        if state is not None:
            net.load_state_dict(state)
        self._net, self._net_settings = net, self._settings()
        self._link()

    def _adopt_settings(self):
        """Continue (warm_start, partial_fit) with the current settings.

        scikit-learn reads alpha, the activation and the loss at every call. A fastnn network's
        penalty can change in place; its layers and loss are fixed at construction, so a change
        of those moves the state (and the optimizer's) into a new network. batch_norm cannot
        change: it adds parameters.
        """
        net = self._net
        net.l2 = self.alpha
        settings = self._settings()
        if settings == self._net_settings:
            return
        if settings[2] != self._net_settings[2]:
            raise ValueError(f"warm_start and partial_fit continue a network built with "
                             f"batch_norm={self._net_settings[2]}, whose parameters depend on "
                             f"it; set it back or fit anew (warm_start=False)")
        self._build_network(list(net.sizes), net.dtype, net.state_dict())
        # a copy of an optimizer keeps its state for the first network of its size it updates
        self._optimizer = copy.deepcopy(self._optimizer)

    def _link(self):
        """coefs_ and intercepts_ as views of the network's weights and biases."""
        self.coefs_ = list(self._net.weights)
        self.intercepts_ = list(self._net.biases)
        self._views = tuple(self.coefs_ + self.intercepts_)

    def _sync_network(self, dtype=None):
        """Make the network hold coefs_ and intercepts_ as they are.

        They are views of the network's weights and biases. Arrays put in their place (a model
        built by hand, as in scikit-learn's tests) are copied into the network, one built for
        them if there is none or if their sizes differ (of ``dtype``, else float32 if they all
        are, else float64), and the attributes become views again.
        """
        arrays = list(self.coefs_) + list(self.intercepts_)
        net = getattr(self, "_net", None)
        if net is not None and len(arrays) == len(self._views) and all(
                a is b for a, b in zip(arrays, self._views)):
            return
        coefs = [np.asarray(W) for W in self.coefs_]
        intercepts = [np.asarray(b) for b in self.intercepts_]
        sizes = _layer_sizes(coefs, intercepts)
        if not all(np.isfinite(a).all() for a in coefs + intercepts):
            raise ValueError("coefs_ and intercepts_ hold NaN or infinite values")
        if net is None or list(net.sizes) != sizes:
            if dtype is None:
                single = all(a.dtype == np.float32 for a in coefs + intercepts)
                dtype = np.float32 if single else np.float64
            if not hasattr(self, "out_activation_"):
                self.out_activation_ = self._output_activation()
            self.n_layers_, self.n_outputs_ = len(sizes), sizes[-1]
            self._build_network(sizes, dtype)
            self._best_state = self._net.state_dict()
        for W, b, new_W, new_b in zip(self._net.weights, self._net.biases, coefs, intercepts):
            W[:] = new_W
            b[:] = new_b
        self._link()

    def _new_optimizer(self):
        if self.solver == "sgd":
            return SGD(lr=self.learning_rate_init, momentum=self.momentum,
                       nesterov=self.nesterovs_momentum and self.momentum > 0)
        return Adam(lr=self.learning_rate_init, beta1=self.beta_1, beta2=self.beta_2,
                    eps=self.epsilon, eps_hat=True)

    def _start_bookkeeping(self):
        """What the stochastic solvers record, started where it is missing: on a first fit, and
        when a continued fit (warm_start) changes early_stopping or solver."""
        if getattr(self, "loss_curve_", None) is None:
            self.loss_curve_ = []
        self.t_ = getattr(self, "t_", 0)
        self._no_improvement_count = getattr(self, "_no_improvement_count", 0)
        if self.early_stopping and getattr(self, "validation_scores_", None) is None:
            self.validation_scores_, self.validation_loss_curve_ = [], []
            self.best_validation_score_, self.best_loss_ = -np.inf, None
        elif not self.early_stopping and getattr(self, "best_loss_", None) is None:
            self.best_loss_ = np.inf
            self.validation_scores_ = self.validation_loss_curve_ = None
            self.best_validation_score_ = None

    def _batch_size(self, n_samples):
        """The minibatch size: scikit-learn's, with 'auto' avoiding a last batch of one row
        under batch normalization."""
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
            if self.batch_norm:
                while batch_size > 2 and n_samples % batch_size == 1:
                    batch_size -= 1
            return batch_size
        if self.batch_size > n_samples:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                          "to be clipped", stacklevel=4)
        return int(np.clip(self.batch_size, 1, n_samples))

    def _fit_stochastic(self, X, Y, sample_weight, random_state, incremental):
        """scikit-learn's `_fit_stochastic`, with each epoch run by the compiled core."""
        if not incremental or getattr(self, "_optimizer", None) is None:
            self._optimizer = self._new_optimizer()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        self._start_bookkeeping()
        validation = None
        if self.early_stopping:
            # scikit-learn stratifies only single-column targets (binary classification), by
            # its boolean indicator column (whose values name the classes in its errors).
            stratify = Y.astype(bool) if self._is_classifier() and self.n_outputs_ == 1 else None
            arrays = (X, Y) if sample_weight is None else (X, Y, sample_weight)
            parts = train_test_split(*arrays, random_state=random_state,
                                     test_size=self.validation_fraction, stratify=stratify)
            X_train, X_val, Y_train, Y_val = parts[:4]
            sw_train, sw_val = parts[4:] if sample_weight is not None else (None, None)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            try:
                validation_data = self._net.check_data(X_val, Y_val, sw_val)
            except ValueError as error:
                raise ValueError(f"the early-stopping validation part: {error}") from None
            validation = (X_val, self._decode(Y_val), sw_val, validation_data)
        else:
            X_train, Y_train, sw_train = X, Y, sample_weight

        n_samples = X_train.shape[0]
        if self.batch_norm and n_samples < 2:
            raise ValueError(f"batch_norm=True trains on batches of at least 2 rows; got "
                             f"n_samples = {n_samples}")
        batch_size = self._batch_size(n_samples)
        data = self._net.check_data(X_train, Y_train, sw_train)
        # As scikit-learn: an interrupt ends the fit with a warning, and the fitted attributes
        # describe the epochs completed (Ctrl-C stops a compiled epoch between two batches).
        self._run_epochs(data, batch_size, random_state, validation, incremental)
        if self.early_stopping:
            self._net.load_state_dict({**self._best_state, "random_state": self._net.random_state})

    def _run_epochs(self, data, batch_size, random_state, validation, incremental):
        """The epochs of `_fit_stochastic`, each followed by scikit-learn's bookkeeping."""
        n_samples = data.X.shape[0]
        n_batches = -(-n_samples // batch_size)
        total_weight = n_samples if data.sample_weight is None else float(data.sample_weight.sum())
        sample_idx = np.arange(n_samples)
        # scikit-learn reports the squared error as a mean over the outputs, though its gradient
        # is that of the sum, and does not divide the penalty: convert for several outputs.
        per_output = self.out_activation_ == "identity" and self.n_outputs_ > 1
        penalized = per_output and self.alpha > 0
        offset = self._loss_offset(data.Y, data.sample_weight)
        diverged = False
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    # The draw of scikit-learn's `shuffle(sample_idx, random_state)` (arange(n)
                    # shuffled, then taken), without its input checks: the same batches.
                    sample_idx = sample_idx[random_state.permutation(n_samples)]
                squares_before = self._squared_weights() if penalized and not diverged else 0.0
                if not diverged:
                    try:
                        self.loss_, _ = run_epoch(self._net, data, self._optimizer, batch_size,
                                                  sample_idx if self.shuffle else None)
                        self.loss_ += offset
                    except FloatingPointError:
                        if not self.early_stopping:
                            raise ValueError(NON_FINITE) from None
                        diverged = True
                        warnings.warn(
                            f"The training loss became NaN or infinite in epoch "
                            f"{self.n_iter_ + 1}: the network is back at the start of that "
                            f"epoch and the epochs left are recorded as NaN, as scikit-learn's "
                            f"NaN weights give them; the fit ends with the best epoch's weights",
                            RuntimeWarning, stacklevel=4)
                self.n_iter_ += 1
                if diverged:
                    self.loss_ = np.nan
                elif per_output:
                    # The epoch's penalty part, sum over its batches of alpha/2 ||W||^2 / S with
                    # W before each batch's update: ||W||^2 interpolated linearly between the
                    # epoch's start and end (see the module docstring), exact for one batch.
                    squares = (n_batches * squares_before + (n_batches - 1) / 2
                               * (self._squared_weights() - squares_before)) if penalized else 0.0
                    penalty = 0.5 * self.alpha * squares / total_weight
                    self.loss_ = self._per_output_loss(self.loss_, penalty)
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_:d}, loss = {self.loss_:.8f}")
                self._update_no_improvement_count(validation, diverged)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    self._set_learning_rate(
                        float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t)
                if self._no_improvement_count > self.n_iter_no_change:
                    if self._trigger_stopping():
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                                  f"reached and the optimization hasn't converged yet.",
                                  ConvergenceWarning, stacklevel=4)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)

    def _loss_offset(self, Y, sample_weight):
        """What scikit-learn's reported loss adds to fastnn's objective on (Y, sample_weight)."""
        return 0.0

    def _squared_weights(self):
        """sum_l ||W_l||^2, for the penalty part of the reported loss."""
        return sum(float(np.dot(W.ravel(), W.ravel())) for W in self._net.weights)

    def _per_output_loss(self, objective, penalty):
        """scikit-learn's reported loss of several regression outputs: the loss part of fastnn's
        objective divided by their number, the penalty part not."""
        return (objective - penalty) / self.n_outputs_ + penalty

    def _validation_loss(self, data):
        """The objective of ``loss_curve_`` on the checked validation part, in evaluation mode."""
        loss = self._net.loss(data) + self._loss_offset(data.Y, data.sample_weight)
        if self.out_activation_ == "identity" and self.n_outputs_ > 1:
            total_weight = (data.X.shape[0] if data.sample_weight is None
                            else float(data.sample_weight.sum()))
            penalty = 0.5 * self.alpha * self._squared_weights() / total_weight
            loss = self._per_output_loss(loss, penalty)
        return loss

    def _update_no_improvement_count(self, validation, diverged):
        """scikit-learn's bookkeeping of ``tol`` and ``n_iter_no_change`` after an epoch (NaN
        validation results after a diverged one)."""
        if self.early_stopping:
            X_val, y_val, sw_val, validation_data = validation
            if diverged:
                score = loss = np.nan
            else:
                score = self._score(X_val, y_val, sw_val)
                loss = self._validation_loss(validation_data)
            self.validation_scores_.append(score)
            self.validation_loss_curve_.append(loss)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_state = self._net.state_dict()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _trigger_stopping(self):
        """Whether to stop after n_iter_no_change epochs without improvement ('adaptive' sgd
        divides the learning rate by 5 instead, down to 1e-6)."""
        watched = "Validation score did not improve" if self.early_stopping else (
            "Training loss did not improve")
        msg = (f"{watched} more than tol={self.tol:f} for {self.n_iter_no_change} "
               f"consecutive epochs.")
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if self._optimizer.lr <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._set_learning_rate(self._optimizer.lr / 5.0)
        if self.verbose:
            print(msg + f" Setting learning rate to {self._optimizer.lr:f}")
        return False

    def _set_learning_rate(self, lr):
        """Change the SGD rate between epochs as scikit-learn's velocities see it.

        scikit-learn's velocity holds rate-scaled steps; torch's momentum buffer holds raw
        gradients and is scaled by the current rate. Rescaling the buffer by old/new rate keeps
        the two updates identical.
        """
        optimizer = self._optimizer
        if optimizer.momentum > 0 and optimizer.steps:
            state = optimizer.state_dict()
            state["momentum_buffer"] *= optimizer.lr / lr
            optimizer.load_state_dict(state)
        optimizer.lr = lr

    def _fit_lbfgs(self, X, Y, sample_weight):
        """Minimize the compiled objective with SciPy's L-BFGS-B, as scikit-learn does."""
        net = self._net
        data = net.check_data(X, Y, sample_weight)
        offset = self._loss_offset(Y, data.sample_weight)

        def objective_and_gradient(params):
            net.params[:] = params
            try:
                J, gradient = net.gradients(data, flat=True)
            except FloatingPointError:
                # a trial point of the line search where the loss overflows: as scikit-learn,
                # report it as infinite and let the search step back
                return np.inf, np.zeros(params.shape)
            return J + offset, gradient.astype(np.float64, copy=False)

        result = scipy.optimize.minimize(
            objective_and_gradient, net.params.astype(np.float64), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        net.params[:] = result.x
        self.loss_ = float(result.fun)
        if self.out_activation_ == "identity" and self.n_outputs_ > 1:
            total_weight = X.shape[0] if sample_weight is None else float(data.sample_weight.sum())
            penalty = 0.5 * self.alpha * self._squared_weights() / total_weight
            self.loss_ = self._per_output_loss(self.loss_, penalty)

    # ---- prediction ----------------------------------------------------------------------

    def _forward(self, X, check_input=True):
        """The output layer's activations for X (validated unless check_input is False)."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        self._sync_network()
        return self._net.forward(_dense(X))

    def _score(self, X, y, sample_weight):
        """The validation score of early stopping (NaN for non-finite outputs)."""
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return self._score_function(y, y_pred, sample_weight=sample_weight)

    # ---- pickling ------------------------------------------------------------------------

    def __getstate__(self):
        state = dict(super().__getstate__())
        # coefs_ and intercepts_ are views of the network, which pickles its own parameters.
        for name in ("coefs_", "intercepts_", "_views"):
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if hasattr(self, "_net"):
            self._link()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's `MLPClassifier`, trained by fastnn.

    It minimizes the log-loss (softmax output for multiclass targets, logistic outputs for binary
    and multilabel ones) with L-BFGS, SGD or Adam. The parameters, their defaults and meanings
    are scikit-learn 1.9's; see the module docstring for the differences that remain.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu', 'leaky_relu', 'elu', 'gelu', \
'gelu_tanh', 'silu', 'softplus'}, default='relu'
        Activation of the hidden layers: scikit-learn's four, and fastnn's others (see the
        module docstring).
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The solver for weight optimization.
    alpha : float, default=0.0001
        Strength of the L2 penalty, which is divided by the batch's sample-weight sum.
    batch_size : int or 'auto', default='auto'
        Minibatch size of the stochastic solvers; 'auto' is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule of 'sgd': constant, ``learning_rate_init / (t_ + 1) ** power_t``
        after each epoch, or divided by 5 after n_iter_no_change epochs without improvement.
    learning_rate_init : float, default=0.001
        The initial learning rate of 'sgd' and 'adam'.
    power_t : float, default=0.5
        Exponent of 'invscaling'.
    max_iter : int, default=200
        Maximum number of epochs ('sgd', 'adam') or of iterations ('lbfgs').
    shuffle : bool, default=True
        Whether to shuffle the samples at each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization, the early-stopping split and the shuffling.
    tol : float, default=1e-4
        Tolerance: training stops when the loss (or validation score) does not improve by at
        least tol for n_iter_no_change epochs; L-BFGS's gradient tolerance.
    verbose : bool, default=False
        Whether to print progress messages.
    warm_start : bool, default=False
        Continue from the previous solution on the next call to fit.
    momentum : float, default=0.9
        Momentum of 'sgd', in [0, 1].
    nesterovs_momentum : bool, default=True
        Whether 'sgd' uses Nesterov's momentum.
    early_stopping : bool, default=False
        Hold out validation_fraction of the training data and stop when its accuracy does not
        improve; the weights of the best epoch are kept.
    validation_fraction : float, default=0.1
        The held-out fraction for early stopping.
    beta_1, beta_2 : float, default=0.9, 0.999
        Decay rates of Adam's moment estimates, in [0, 1).
    epsilon : float, default=1e-8
        Adam's numerical-stability constant.
    n_iter_no_change : int, default=10
        Epochs without improvement by tol before stopping (or dividing the rate, 'adaptive').
    max_fun : int, default=15000
        Maximum number of loss evaluations of 'lbfgs'.
    dropout : float, default=0.0
        Dropout rate after each hidden activation during training, in [0, 1); 0 is none.
        'sgd' and 'adam' only.
    batch_norm : bool, default=False
        Batch normalization between each hidden dense layer and its activation. 'sgd' and 'adam'
        only.
    class_weight : dict, list of dict, 'balanced' or None, default=None
        Weights of the classes, ``{class: weight}`` (1 for the classes not named), or
        'balanced': ``n_samples / (n_classes * np.bincount(y))``, the counts weighted by
        sample_weight when given. They multiply the sample weights. Multilabel targets take
        'balanced' or one dict ``{0: weight, 1: weight}`` per label column, and a sample's
        weight is the product over the columns. 'balanced' is not available in partial_fit.
    n_threads : int or None, default=None
        At most this many BLAS threads for the network's products (>= 1); None leaves the
        choice to `fastnn.threads` (one thread for small products). Fits that overlap in
        threads (``joblib.parallel_config(backend="threading")``) run on one each.

    Attributes
    ----------
    classes_ : ndarray or list of ndarray of shape (n_classes,)
        Class labels of each output.
    loss_ : float
        The loss at the end of training (training loss of the last epoch for 'sgd' and 'adam').
    best_loss_ : float or None
        The lowest training loss ('sgd', 'adam'; None with early stopping).
    loss_curve_ : list of float
        The training loss of each epoch ('sgd', 'adam').
    validation_scores_ : list of float or None
        The validation accuracy after each epoch with early stopping, else None.
    validation_loss_curve_ : list of float or None
        The objective of loss_curve_ on the validation part after each epoch with early
        stopping, else None.
    best_validation_score_ : float or None
        The best validation accuracy with early stopping, else None.
    t_ : int
        The number of training samples seen by the stochastic solvers.
    coefs_ : list of ndarray of shape (n_in, n_out)
        ``coefs_[i]`` is the weight matrix of layer i (a view into the network).
    intercepts_ : list of ndarray of shape (n_out,)
        ``intercepts_[i]`` is the bias vector of layer i + 1 (a view into the network).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during fit, when X had string column names.
    n_iter_ : int
        The number of epochs ('sgd', 'adam') or iterations ('lbfgs') run.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        The output activation: 'softmax' or 'logistic'.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastnn.sklearn import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(random_state=0).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.99
    True
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "class_weight": [dict, list, StrOptions({"balanced"}), None],
    }
    _score_function = staticmethod(accuracy_score)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, batch_norm=False, class_weight=None, n_threads=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun, dropout=dropout, batch_norm=batch_norm, n_threads=n_threads)
        self.class_weight = class_weight

    def _is_classifier(self):
        return True

    def _objective(self):
        """fastnn's loss, its options and its factor: scikit-learn's log-loss."""
        return "cross_entropy", None, 1.0

    def _weigh_classes(self, y, sample_weight, incremental):
        """The sample weights multiplied by the weights of their classes (class_weight)."""
        class_weight = self.class_weight
        if class_weight is None:
            return sample_weight
        if isinstance(class_weight, str) and incremental:
            raise ValueError(
                "class_weight 'balanced' is not supported for partial_fit: the class "
                "frequencies are those of all the data. Compute them with sklearn.utils."
                "class_weight.compute_class_weight('balanced', classes=classes, y=y) on all the "
                "targets (or a large sample of them) and pass the resulting dict as "
                "class_weight.")
        if self._label_binarizer.y_type_.startswith("multilabel"):
            # scikit-learn's multi-output rule: each label column weighs its samples, and a
            # sample's class weight is the product
            columns = list(self._label_binarizer.transform(y).T)
            if isinstance(class_weight, dict):
                raise ValueError("for multilabel targets, class_weight is 'balanced' or a list of "
                                 "dicts {0: weight, 1: weight}, one per label column "
                                 "(scikit-learn's multi-output form)")
            if isinstance(class_weight, list) and len(class_weight) != len(columns):
                raise ValueError(f"class_weight has {len(class_weight)} dicts for "
                                 f"{len(columns)} label columns")
            specs = class_weight if isinstance(class_weight, list) else ["balanced"] * len(
                columns)
            names = [f"class_weight[{k}]" for k in range(len(columns))]
        else:
            if isinstance(class_weight, list):
                raise ValueError("a list of class_weight dicts is for multilabel targets; give "
                                 "a dict {class: weight}")
            columns, specs, names = [y], [class_weight], ["class_weight"]
        per_sample = np.ones(len(columns[0]))
        for column, spec, name in zip(columns, specs, names):
            if isinstance(class_weight, str):
                classes = np.unique(column)
                with np.errstate(divide="ignore"):
                    weights = compute_class_weight("balanced", classes=classes, y=column,
                                                   sample_weight=sample_weight)
                # a class whose samples all weigh 0 keeps them at 0
                weights[~np.isfinite(weights)] = 0.0
            else:
                classes = self.classes_ if len(columns) == 1 else np.array([0, 1])
                weights = _class_weight_vector(spec, classes, name)
            per_sample *= weights[np.searchsorted(classes, column)]
        return per_sample if sample_weight is None else sample_weight * per_sample

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        """Checked X and y, with classes_ as scikit-learn's."""
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        f"warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        return X, y

    def _encode(self, y, dtype):
        """The targets binarized, as floats of ``dtype``.

        A vector of labels of a binary or multiclass target, checked by `_validate_input` to be
        among the classes, is compared with the classes directly: the same 0/1 columns as
        LabelBinarizer's transform, which builds them as a sparse matrix after typing the target
        again (0.7 ms of a 30 ms fit on digits, in every fit of a search).
        """
        binarizer = self._label_binarizer
        classes = binarizer.classes_
        if (binarizer.y_type_ in ("binary", "multiclass") and len(classes) >= 2
                and isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype == classes.dtype
                and y.dtype.kind in "biufUS"):
            if len(classes) == 2:
                # LabelBinarizer's one column of a binary target: the second class's
                return (y == classes[1]).reshape(-1, 1).astype(dtype)
            return (y[:, np.newaxis] == classes).astype(dtype)
        return binarizer.transform(y).astype(dtype)

    def _decode(self, Y):
        """Class labels from binarized targets (or predicted probabilities).

        Multiclass rows are taken to their largest column, as LabelBinarizer's inverse_transform
        takes them, without its checks of what it is given (the network's outputs).
        """
        binarizer = self._label_binarizer
        classes = binarizer.classes_
        if (binarizer.y_type_ == "multiclass" and not binarizer.sparse_input_
                and isinstance(Y, np.ndarray) and Y.ndim == 2 and Y.shape[1] == len(classes)):
            return classes[Y.argmax(axis=1)]
        return binarizer.inverse_transform(Y)

    def _predict(self, X, check_input=True):
        y_pred = self._forward(X, check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._decode(y_pred)

    def predict(self, X):
        """Predict the class labels of the samples in X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted classes (an indicator matrix for multilabel targets).
            For a Dask array or DataFrame X, a lazy Dask result computed on the workers
            (`fastnn.cluster.lazy_predict`).
        """
        check_is_fitted(self)
        if is_dask(X):
            return lazy_predict(self, "predict", X)
        return self._predict(X)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with one epoch over the given data ('sgd' and 'adam' only).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights.
        classes : array of shape (n_classes,), default=None
            All the classes across the calls to partial_fit; required at the first call.

        Returns
        -------
        self : object
            The updated estimator.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            The probability of each class, in the order of `classes_`.
            For a Dask array or DataFrame X, a lazy Dask result computed on the workers
            (`fastnn.cluster.lazy_predict`).
        """
        check_is_fitted(self)
        if is_dask(X):
            return lazy_predict(self, "predict_proba", X)
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """The logarithm of the probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
            For a Dask array or DataFrame X, a lazy Dask result computed on the workers
            (`fastnn.cluster.lazy_predict`).
        """
        if is_dask(X):
            return lazy_predict(self, "predict_log_proba", X)
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's `MLPRegressor`, trained by fastnn.

    It minimizes half the squared error (identity output) with L-BFGS, SGD or Adam, or the
    absolute error, the Huber loss or the half Poisson deviance (exp output). The parameters,
    their defaults and meanings are scikit-learn 1.9's; see the module docstring for the
    differences that remain and for the parameters beyond scikit-learn's.

    Parameters
    ----------
    loss : {'squared_error', 'absolute_error', 'huber', 'poisson'}, default='squared_error'
        The loss of a sample, summed over the outputs: half the squared error, the absolute
        error, the Huber loss of parameter huber_delta, or the half Poisson deviance on the
        log link (the output is exp(z), and targets must be >= 0).
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start, \
momentum, nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, epsilon, \
n_iter_no_change, max_fun, dropout, batch_norm, n_threads
        As in `MLPClassifier`; early stopping watches the validation R^2.
    huber_delta : float, default=1.0
        The Huber loss' threshold (> 0) between its quadratic and linear parts; used only with
        loss='huber'.

    Attributes
    ----------
    loss_, best_loss_, loss_curve_, validation_scores_, validation_loss_curve_, \
best_validation_score_, t_, coefs_, intercepts_, n_features_in_, feature_names_in_, n_iter_, \
n_layers_, n_outputs_
        As in `MLPClassifier` (validation scores are R^2).
    out_activation_ : str
        The output activation, 'identity'.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.preprocessing import scale
    >>> from fastnn.sklearn import MLPRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = MLPRegressor(solver="lbfgs", random_state=0).fit(scale(X), scale(y))
    >>> reg.score(scale(X), scale(y)) > 0.5
    True
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions(set(REGRESSION_LOSSES))],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
    }
    _score_function = staticmethod(r2_score)

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, batch_norm=False, huber_delta=1.0, n_threads=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun, dropout=dropout, batch_norm=batch_norm, n_threads=n_threads)
        self.loss = loss
        self.huber_delta = huber_delta

    def _is_classifier(self):
        return False

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _loss_offset(self, Y, sample_weight):
        """What scikit-learn's reported loss adds to fastnn's: for 'poisson', the weighted mean
        over the samples of sum_k y_k log y_k - y_k (its half deviance's terms in y alone)."""
        if self.loss != "poisson":
            return 0.0
        Y = Y.astype(np.float64)
        return float(np.average(xlogy(Y, Y) - Y, weights=sample_weight, axis=0).sum())

    def _validate_input(self, X, y, incremental, reset):
        """Checked X and y."""
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _encode(self, y, dtype):
        """The targets as a 2-D float array of ``dtype``."""
        return y.reshape(y.shape[0], -1).astype(dtype)

    def _objective(self):
        """fastnn's loss, its options and its factor for ``loss``."""
        options = {"delta": float(self.huber_delta)} if self.loss == "huber" else None
        return self.loss, options, REGRESSION_LOSSES[self.loss]

    def _decode(self, Y):
        """Targets as the user gave them: 1-D for one output."""
        return Y.ravel() if Y.shape[1] == 1 else Y

    def _predict(self, X, check_input=True):
        return self._decode(self._forward(X, check_input))

    def predict(self, X):
        """Predict the targets of the samples in X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values.
            For a Dask array or DataFrame X, a lazy Dask result computed on the workers
            (`fastnn.cluster.lazy_predict`).
        """
        check_is_fitted(self)
        if is_dask(X):
            return lazy_predict(self, "predict", X)
        return self._predict(X)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch over the given data ('sgd' and 'adam' only).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


# ---- conversions -----------------------------------------------------------------------------

# The fitted attributes scikit-learn's MLPs and these share (those a fit set), and the private
# ones their predictions and continued fits read.
FITTED = ("classes_", "n_features_in_", "feature_names_in_", "n_iter_", "t_", "n_layers_",
          "n_outputs_", "out_activation_", "loss_", "best_loss_", "loss_curve_",
          "validation_scores_", "best_validation_score_", "_label_binarizer",
          "_no_improvement_count")
# The parameters of fastnn's estimators that scikit-learn's lack, with the values that leave a
# model scikit-learn's (its activations and losses only).
BEYOND_SKLEARN = {"dropout": 0.0, "batch_norm": False, "class_weight": None}


def _sklearn_classes():
    """scikit-learn's own MLPClassifier and MLPRegressor, with their fastnn twins."""
    from sklearn import neural_network
    return {neural_network.MLPClassifier: MLPClassifier, neural_network.MLPRegressor: MLPRegressor}


def _copy_fitted(source, target):
    """Copy the fitted attributes of `FITTED` that ``source`` has onto ``target``."""
    for name in FITTED:
        if hasattr(source, name):
            setattr(target, name, copy.deepcopy(getattr(source, name)))


def from_sklearn(estimator):
    """The fastnn.sklearn twin of a fitted scikit-learn `MLPClassifier` or `MLPRegressor`.

    Parameters
    ----------
    estimator : sklearn.neural_network.MLPClassifier or MLPRegressor
        Fitted.

    Returns
    -------
    MLPClassifier or MLPRegressor
        fastnn's, with the same parameters and fitted attributes (``classes_``,
        ``n_features_in_``, ``out_activation_``, ``loss_curve_``, ...; ``coefs_`` and
        ``intercepts_`` copied bit for bit, in their dtype), predicting as scikit-learn's does.
        ``validation_loss_curve_``, which scikit-learn does not record, is NaN for the epochs it
        ran with early stopping. A continued fit (``warm_start``, ``partial_fit``) starts a new
        optimizer, as scikit-learn's ``fit`` does.

    Raises
    ------
    TypeError
        If ``estimator`` is not one of scikit-learn's MLPs.
    sklearn.exceptions.NotFittedError
        If it is not fitted.
    """
    twins = _sklearn_classes()
    if type(estimator) not in twins:
        raise TypeError(f"from_sklearn takes scikit-learn's MLPClassifier or MLPRegressor, got "
                        f"{type(estimator).__name__}")
    check_is_fitted(estimator)
    twin = twins[type(estimator)](**estimator.get_params())
    _copy_fitted(estimator, twin)
    if twin.solver in STOCHASTIC_SOLVERS:
        # scikit-learn does not record it: unknown (NaN) for the epochs it ran
        scores = getattr(estimator, "validation_scores_", None)
        twin.validation_loss_curve_ = None if scores is None else [np.nan] * len(scores)
    twin.coefs_ = [np.array(W) for W in estimator.coefs_]
    twin.intercepts_ = [np.array(b) for b in estimator.intercepts_]
    twin._optimizer = None
    twin._sync_network(twin.coefs_[0].dtype)
    return twin


def to_sklearn(estimator):
    """scikit-learn's own `MLPClassifier` or `MLPRegressor` with a fitted fastnn one's model.

    Parameters
    ----------
    estimator : MLPClassifier or MLPRegressor
        fastnn's, fitted, with scikit-learn's settings only: one of its four activations, its
        losses ('squared_error', 'poisson'), no dropout, batch normalization or class weights.

    Returns
    -------
    sklearn.neural_network.MLPClassifier or MLPRegressor
        With the same parameters and fitted attributes, ``coefs_`` and ``intercepts_`` copied
        bit for bit, in their dtype.

    Raises
    ------
    TypeError
        If ``estimator`` is not one of fastnn's MLPs.
    ValueError
        If it uses a setting scikit-learn's MLPs do not have.
    sklearn.exceptions.NotFittedError
        If it is not fitted.
    """
    twins = {fastnn_class: sklearn_class for sklearn_class, fastnn_class
             in _sklearn_classes().items()}
    if type(estimator) not in twins:
        raise TypeError(f"to_sklearn takes fastnn.sklearn's MLPClassifier or MLPRegressor, got "
                        f"{type(estimator).__name__}")
    check_is_fitted(estimator)
    target = twins[type(estimator)]
    params = estimator.get_params()
    beyond = {name: params[name] for name, default in BEYOND_SKLEARN.items()
              if name in params and params[name] != default}
    for name, options in (("activation", ("identity", "logistic", "tanh", "relu")),
                          ("loss", ("squared_error", "poisson"))):
        if name in params and params[name] not in options:
            beyond[name] = params[name]
    if beyond:
        raise ValueError(f"to_sklearn: scikit-learn's {target.__name__} has no "
                         f"{', '.join(f'{k}={v!r}' for k, v in beyond.items())}")
    estimator._sync_network()
    twin = target(**{name: value for name, value in params.items()
                     if name in target().get_params()})
    _copy_fitted(estimator, twin)
    twin.coefs_ = [np.array(W) for W in estimator.coefs_]
    twin.intercepts_ = [np.array(b) for b in estimator.intercepts_]
    return twin


def register_skl2onnx():
    """Register `MLPClassifier` and `MLPRegressor` with skl2onnx, so that ``skl2onnx.to_onnx``
    converts them, alone or in a Pipeline, as it converts scikit-learn's own MLPs: a
    classifier gives "label" and "probabilities" (a ZipMap of them unless
    ``options={"zipmap": False}``), a regressor "variable" (N, n_outputs). Every layer kind and
    activation of fastnn is converted (see `fastnn.onnx_export`), in the input's dtype (float32
    or float64). Calling it again is harmless.

    Raises
    ------
    ImportError
        If skl2onnx is not installed (``pip install "fastnn-cpu[sklearn-onnx]"``).
    """
    require("skl2onnx", "fastnn.sklearn.register_skl2onnx")
    from fastnn import sklearn_onnx  # it imports skl2onnx, an optional peer
    sklearn_onnx.register()
