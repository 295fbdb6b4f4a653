"""Every bad input is stopped at the Python boundary, before the unchecked kernels run, with a
ValueError or TypeError whose message names the problem: bad data (shapes, NaN/inf, empty, not
numbers), bad network settings, bad optimizer hyperparameters, bad fit options, bad labels and
targets, bad sample weights. A property test feeds random garbage to forward, loss and fit: they
work or raise one of those two errors, never anything else."""
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fastnn

X_GOOD = np.random.default_rng(0).normal(size=(5, 3))
Y_GOOD = np.random.default_rng(1).normal(size=(5, 2))
LABELS_GOOD = np.array([0, 2, 1, 1, 0])
PROBABILITIES_GOOD = np.full((5, 2), 0.5)


def regression_net(dtype="float64"):
    return fastnn.MLP([3, 4, 2], activation="tanh", dtype=dtype, seed=0)


def softmax_net():
    return fastnn.MLP([3, 4, 3], output_activation="softmax", loss="cross_entropy", seed=0)


def sigmoid_net():
    return fastnn.MLP([3, 4, 2], output_activation="sigmoid", loss="cross_entropy", seed=0)


def with_value(array, index, value):
    array = np.array(array, dtype=np.float64)
    array[index] = value
    return array


# Each way of handing data to a network: (name, call(net, X, Y)).
DATA_CALLS = {
    "loss": lambda net, X, Y: net.loss(X, Y),
    "gradients": lambda net, X, Y: net.gradients(X, Y),
    "train_step": lambda net, X, Y: net.train_step(X, Y, fastnn.SGD()),
    "fit": lambda net, X, Y: net.fit(X, Y, epochs=1),
}

# (case, X, Y, exception, message) for a regression net [3, 4, 2]
BAD_DATA = [
    ("wrong feature count", np.ones((5, 4)), Y_GOOD, ValueError,
     "X has 4 columns, the network expects 3"),
    ("X one-dimensional", np.ones(3), Y_GOOD[:1], ValueError, "X must be 2-dimensional"),
    ("X three-dimensional", np.ones((5, 3, 1)), Y_GOOD, ValueError, "X must be 2-dimensional"),
    ("wrong target width", X_GOOD, np.ones((5, 3)), ValueError, r"Y must have shape \(5, 2\)"),
    ("targets one-dimensional", X_GOOD, np.ones(5), ValueError, r"Y must have shape \(5, 2\)"),
    ("row mismatch", X_GOOD, Y_GOOD[:4], ValueError, "X has 5 rows but Y has 4"),
    ("NaN in X", with_value(X_GOOD, (2, 1), np.nan), Y_GOOD, ValueError,
     "X contains NaN or infinity"),
    ("inf in X", with_value(X_GOOD, (0, 0), -np.inf), Y_GOOD, ValueError,
     "X contains NaN or infinity"),
    ("NaN in Y", X_GOOD, with_value(Y_GOOD, (4, 1), np.nan), ValueError,
     "Y contains NaN or infinity"),
    ("inf in Y", X_GOOD, with_value(Y_GOOD, (3, 0), np.inf), ValueError,
     "Y contains NaN or infinity"),
    ("empty", np.empty((0, 3)), np.empty((0, 2)), ValueError, "empty"),
    ("X a string", "1,2,3", Y_GOOD, TypeError, "X must be an array-like of numbers"),
    ("X None", None, Y_GOOD, TypeError, "X must be an array-like of numbers"),
    ("Y None", X_GOOD, None, TypeError, "Y must be an array-like of numbers"),
    ("Y a string", X_GOOD, "abc", TypeError, "Y must be an array-like of numbers"),
    ("X of strings", [["a", "b", "c"]] * 5, Y_GOOD, TypeError, "X must hold real numbers"),
    ("X object array", np.array([[1, "a", 2.0]] * 5, dtype=object), Y_GOOD, TypeError,
     "X must hold real numbers"),
    ("Y object array", X_GOOD, np.array([[None, 1]] * 5, dtype=object), TypeError,
     "Y must hold real numbers"),
    ("X complex", X_GOOD + 1j, Y_GOOD, TypeError, "X must hold real numbers"),
    ("X ragged", [[1, 2, 3], [4, 5]], Y_GOOD[:2], ValueError,
     "X could not be read as a rectangular"),
    ("Y ragged", X_GOOD[:2], [[1, 2], [3]], ValueError, "Y could not be read as a rectangular"),
]


@pytest.mark.parametrize("call", list(DATA_CALLS))
@pytest.mark.parametrize("case, X, Y, error, message", BAD_DATA, ids=[c[0] for c in BAD_DATA])
def test_bad_data_is_rejected_with_a_clear_message(call, case, X, Y, error, message):
    net = regression_net()
    before = net.params.copy()
    with pytest.raises(error, match=message):
        DATA_CALLS[call](net, X, Y)
    np.testing.assert_array_equal(net.params, before)


BAD_INPUTS = [case for case in BAD_DATA if case[0].startswith("X") or case[0] in (
    "wrong feature count", "NaN in X", "inf in X")]


@pytest.mark.parametrize("case, X, Y, error, message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_to_forward_are_rejected(case, X, Y, error, message):
    with pytest.raises(error, match=message):
        regression_net().forward(X)


# The messages a user of the plain API meets with a table's data: they name what is wrong and
# where, and point to what handles it (the command line, fastnn.sklearn, integer codes).
HELPFUL_MESSAGES = [
    ("text in X", lambda: regression_net().fit(np.array([[1.0, "red", 2.0]] * 5, dtype=object),
                                               Y_GOOD),
     TypeError, r"X must hold real numbers, got an array of dtype object: it holds text \(row 0, "
                r"column 1: 'red'\)\. .*fastnn train FILE.*fastnn\.sklearn"),
    ("a string array as X", lambda: regression_net().forward(np.array([["a", "b", "c"]])),
     TypeError, r"it holds text \(row 0, column 0: 'a'\)"),
    ("text labels", lambda: softmax_net().fit(X_GOOD, ["cat", "dog", "cat", "cow", "dog"]),
     TypeError, r"Y must hold real numbers, got an array of dtype <U3: it holds text labels "
                r"\(index 0: 'cat'\)\. .*integer codes 0\.\.K-1.*fastnn\.sklearn\.MLPClassifier"),
    ("None in X", lambda: regression_net().loss(np.array([[1, None, 2]] * 5), Y_GOOD),
     TypeError, r"it holds None \(row 0, column 1\), a missing value\?"),
    ("NaN in X", lambda: regression_net().fit(with_value(with_value(X_GOOD, (1, 2), np.nan),
                                                         (3, 0), np.nan), Y_GOOD),
     ValueError, r"X contains NaN or infinity \(in float64\): NaN at rows 1, 3, columns 0, 2; "
                 r"fill in or drop the missing values .*--impute mean"),
    ("infinity in Y", lambda: regression_net().loss(X_GOOD, with_value(Y_GOOD, (4, 1), np.inf)),
     ValueError, r"Y contains NaN or infinity \(in float64\): infinity at row 4, column 1$"),
    ("NaN in many rows", lambda: regression_net().forward(np.full((8, 3), np.nan)),
     ValueError, r"NaN at rows 0, 1, 2, 3, 4 and 3 more, columns 0, 1, 2;"),
]


@pytest.mark.parametrize("case, call, error, message", HELPFUL_MESSAGES,
                         ids=[c[0] for c in HELPFUL_MESSAGES])
def test_a_tables_data_in_the_plain_api_gets_a_message_that_helps(case, call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("call", ["forward", "loss"])
def test_a_float64_value_too_large_for_a_float32_network_is_rejected(call):
    net = regression_net("float32")
    X = with_value(X_GOOD, (1, 1), 1e300)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        net.forward(X) if call == "forward" else net.loss(X, Y_GOOD)
    with pytest.raises(ValueError, match="Y contains NaN or infinity"):
        net.loss(X_GOOD, with_value(Y_GOOD, (0, 0), -1e300))


@pytest.mark.parametrize("labels, message", [
    ([0, 1, -1, 2, 0], r"class labels in Y must be in 0..2"),
    ([0, 1, 3, 2, 0], r"class labels in Y must be in 0..2"),
    ([0, 1, 0.5, 2, 0], "integer class labels"),
    ([0, 1, np.nan, 2, 0], "integer class labels"),
    ([0, 1, 2], "X has 5 rows but Y has 3"),
])
@pytest.mark.parametrize("call", list(DATA_CALLS))
def test_bad_integer_labels_are_rejected(labels, message, call):
    with pytest.raises(ValueError, match=message):
        DATA_CALLS[call](softmax_net(), X_GOOD, np.array(labels))


@pytest.mark.parametrize("make_net", [softmax_net, sigmoid_net], ids=["softmax", "sigmoid"])
@pytest.mark.parametrize("bad", [1.5, -0.25])
@pytest.mark.parametrize("call", list(DATA_CALLS))
def test_cross_entropy_targets_outside_zero_one_are_rejected(make_net, bad, call):
    net = make_net()
    Y = np.full((5, net.sizes[-1]), 1 / net.sizes[-1])
    Y[2, 0] = bad
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        DATA_CALLS[call](net, X_GOOD, Y)


def test_labels_are_only_for_softmax_cross_entropy():
    with pytest.raises(ValueError, match=r"Y must have shape \(5, 2\), got \(5,\)"):
        sigmoid_net().loss(X_GOOD, np.array([0, 1, 1, 0, 1]))


BAD_NETWORKS = [
    (dict(activation="swish"), ValueError, "unknown activation 'swish'"),
    (dict(activation="softmax"), ValueError, "unknown activation 'softmax'"),
    (dict(activation=None), TypeError, "activation must be a string"),
    (dict(output_activation="relu"), ValueError, "unknown output_activation 'relu'"),
    (dict(output_activation="tanh"), ValueError, "unknown output_activation 'tanh'"),
    (dict(loss="hinge"), ValueError, "unknown loss 'hinge'"),
    (dict(dtype="float16"), ValueError, "unknown dtype 'float16'"),
    (dict(dtype=np.int32), ValueError, "unknown dtype 'int32'"),
    (dict(dtype="double precision"), ValueError, "unknown dtype"),
    (dict(loss="cross_entropy"), ValueError, 'needs output_activation "softmax" or "sigmoid"'),
    (dict(l2=-0.1), ValueError, "l2 must be >= 0"),
    (dict(l2=np.nan), ValueError, "l2 must be finite"),
    (dict(l2="0.1"), TypeError, "l2 must be a real number"),
    (dict(sizes=[3, 0, 2]), ValueError, r"sizes\[1\] must be >= 1"),
    (dict(sizes=[3, -1, 2]), ValueError, r"sizes\[1\] must be >= 1"),
    (dict(sizes=[3, 2.5, 2]), TypeError, r"sizes\[1\] must be an integer"),
    (dict(sizes=[3, "3", 2]), TypeError, r"sizes\[1\] must be an integer"),
    (dict(sizes=[3, True, 2]), TypeError, r"sizes\[1\] must be an integer"),
    (dict(sizes=[3]), ValueError, "at least an input and an output"),
    (dict(sizes=[]), ValueError, "at least an input and an output"),
    (dict(sizes="34"), TypeError, "sizes must be a sequence"),
    (dict(sizes=5), TypeError, "sizes must be a sequence"),
    (dict(sizes=None), TypeError, "sizes must be a sequence"),
]


@pytest.mark.parametrize("options, error, message", BAD_NETWORKS,
                         ids=[str(case[0]) for case in BAD_NETWORKS])
def test_bad_network_settings_are_rejected(options, error, message):
    options = {"sizes": [3, 4, 2], **options}
    with pytest.raises(error, match=message):
        fastnn.MLP(options.pop("sizes"), **options)


BAD_OPTIMIZERS = [
    (fastnn.SGD, dict(lr=np.nan), ValueError, "lr must be finite"),
    (fastnn.SGD, dict(lr=np.inf), ValueError, "lr must be finite"),
    (fastnn.SGD, dict(lr=-0.1), ValueError, "lr must be >= 0"),
    (fastnn.SGD, dict(lr="0.1"), TypeError, "lr must be a real number"),
    (fastnn.Adam, dict(lr=-1e-3), ValueError, "lr must be >= 0"),
    (fastnn.SGD, dict(momentum=-0.5), ValueError, "momentum must be >= 0"),
    (fastnn.SGD, dict(momentum=np.nan), ValueError, "momentum must be finite"),
    (fastnn.SGD, dict(nesterov=True), ValueError, "Nesterov momentum needs momentum > 0"),
    (fastnn.SGD, dict(momentum=0.9, nesterov="yes"), TypeError, "nesterov must be True or False"),
    (fastnn.Adam, dict(beta1=1.0), ValueError, "beta1 must be < 1"),
    (fastnn.Adam, dict(beta1=-0.1), ValueError, "beta1 must be >= 0"),
    (fastnn.Adam, dict(beta2=1.0), ValueError, "beta2 must be < 1"),
    (fastnn.Adam, dict(beta2=-0.1), ValueError, "beta2 must be >= 0"),
    (fastnn.Adam, dict(eps=-1e-8), ValueError, "eps must be >= 0"),
    (fastnn.Adam, dict(eps=np.inf), ValueError, "eps must be finite"),
]


@pytest.mark.parametrize("kind, options, error, message", BAD_OPTIMIZERS,
                         ids=[f"{c[0].__name__}-{c[1]}" for c in BAD_OPTIMIZERS])
def test_bad_optimizer_hyperparameters_are_rejected(kind, options, error, message):
    with pytest.raises(error, match=message):
        kind(**options)
    # the same value given to the attribute of a valid optimizer, which keeps its old value
    *valid, (name, value) = options.items()
    optimizer = kind(**dict(valid))
    kept = getattr(optimizer, name)
    with pytest.raises(error, match=message):
        setattr(optimizer, name, value)
    assert getattr(optimizer, name) == kept


BAD_FIT_OPTIONS = [
    (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
    (dict(batch_size=2.5), TypeError, "batch_size must be an integer"),
    (dict(epochs=-1), ValueError, "epochs must be >= 0"),
    (dict(epochs=2.5), TypeError, "epochs must be an integer"),
    (dict(epochs="3"), TypeError, "epochs must be an integer"),
    (dict(epochs=True), TypeError, "epochs must be an integer"),
    (dict(batch_size=True), TypeError, "batch_size must be an integer"),
    (dict(validation_split=-0.1), ValueError, "validation_split must be >= 0"),
    (dict(validation_split=1.0), ValueError, "validation_split must be < 1"),
    (dict(validation_split=1.5), ValueError, "validation_split must be < 1"),
    (dict(validation_split=np.nan), ValueError, "validation_split must be finite"),
    (dict(validation_split=1e-20), ValueError, "leaves no validation samples"),
    (dict(validation_data=(np.ones((4, 4)), np.ones((4, 2)))), ValueError,
     "validation_data: X has 4 columns, the network expects 3"),
    (dict(validation_data=(np.ones((4, 3)), np.ones((4, 1)))), ValueError,
     r"validation_data: Y must have shape \(4, 2\)"),
    (dict(validation_data=(np.ones((4, 3)), np.ones((3, 2)))), ValueError,
     "validation_data: X has 4 rows but Y has 3"),
    (dict(validation_data=(np.full((4, 3), np.nan), np.ones((4, 2)))), ValueError,
     "validation_data: X contains NaN"),
    (dict(validation_data=(None, np.ones((4, 2)))), TypeError, "validation_data: X must be"),
    (dict(validation_data=np.ones((4, 3))), ValueError, r"validation_data must be a pair"),
    (dict(validation_data=(X_GOOD,)), ValueError, r"validation_data must be a pair"),
    (dict(validation_data=(X_GOOD, Y_GOOD, None, None)), ValueError,
     r"validation_data must be a pair"),
    (dict(validation_data=(X_GOOD, Y_GOOD, np.ones(4))), ValueError,
     r"validation_data: sample_weight must have shape \(5,\)"),
    (dict(sample_weight=-np.ones(5)), ValueError, "sample_weight must be >= 0"),
    (dict(sample_weight=np.zeros(5)), ValueError, "with a positive sum"),
    (dict(sample_weight=np.ones(4)), ValueError, r"sample_weight must have shape \(5,\)"),
    (dict(sample_weight=np.ones((5, 1))), ValueError, r"sample_weight must have shape \(5,\)"),
    (dict(sample_weight=with_value(np.ones(5), 2, np.nan)), ValueError,
     "sample_weight contains NaN"),
    (dict(sample_weight="heavy"), TypeError, "sample_weight must be an array-like of numbers"),
    # one row of weight > 0: whichever part the random split puts it in, the other has none
    (dict(sample_weight=np.r_[1.0, np.zeros(4)], validation_split=0.2), ValueError,
     "sample weights are all zero"),
    (dict(validation_data=(X_GOOD, Y_GOOD), validation_split=0.2), ValueError, "not both"),
    (dict(early_stopping=True), ValueError, "early_stopping watches the validation loss"),
    (dict(patience=0), ValueError, "patience must be >= 1"),
    (dict(min_delta=-1.0), ValueError, "min_delta must be >= 0"),
    (dict(shuffle="yes"), TypeError, "shuffle must be True or False"),
    (dict(verbose=-1), ValueError, "verbose must be >= 0"),
    (dict(optimizer="adam"), TypeError, "optimizer must be a fastnn optimizer"),
    (dict(optimizer=object()), TypeError, "optimizer must be a fastnn optimizer"),
]


@pytest.mark.parametrize("options, error, message", BAD_FIT_OPTIONS,
                         ids=[str(case[0])[:60] for case in BAD_FIT_OPTIONS])
def test_bad_fit_options_are_rejected(options, error, message):
    net = regression_net()
    before = net.params.copy()
    with pytest.raises(error, match=message):
        net.fit(X_GOOD, Y_GOOD, **options)
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("call", list(DATA_CALLS))
def test_bad_sample_weights_are_rejected_everywhere(call):
    net = regression_net()
    calls = {"loss": lambda s: net.loss(X_GOOD, Y_GOOD, s),
             "gradients": lambda s: net.gradients(X_GOOD, Y_GOOD, s),
             "train_step": lambda s: net.train_step(X_GOOD, Y_GOOD, fastnn.SGD(), s),
             "fit": lambda s: net.fit(X_GOOD, Y_GOOD, epochs=1, sample_weight=s)}
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        calls[call](np.array([1, 1, -1, 1, 1.0]))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(5,\)"):
        calls[call](np.ones(6))


def test_a_validation_split_that_leaves_no_training_rows_is_rejected():
    with pytest.raises(ValueError, match="leaves no training samples"):
        regression_net().fit(X_GOOD[:1], Y_GOOD[:1], validation_split=0.5)


@pytest.mark.parametrize("optimizer", ["sgd", None, object()])
def test_train_step_needs_a_fastnn_optimizer(optimizer):
    with pytest.raises(TypeError, match="optimizer must be a fastnn optimizer"):
        regression_net().train_step(X_GOOD, Y_GOOD, optimizer)


def test_params_of_the_wrong_size_are_rejected():
    net = regression_net()
    with pytest.raises(ValueError, match="params has 3 columns"):
        net.params = np.ones(3)
    with pytest.raises(ValueError, match="params contains NaN"):
        net.params = np.full(net.n_params, np.nan)


garbage_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.bool_, np.complex128,
                           np.dtype("U3"), np.dtype(object)]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    elements=None)
garbage = st.one_of(
    garbage_arrays,
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
               elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
    st.lists(st.lists(st.one_of(st.floats(), st.integers(-5, 5), st.text(max_size=2), st.none()),
                      max_size=4), max_size=4),
    st.none(), st.text(max_size=3), st.integers(), st.floats())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=garbage, Y=garbage,
       net_kind=st.sampled_from(["regression", "softmax", "sigmoid", "float32"]))
def test_random_garbage_works_or_raises_value_or_type_error(X, Y, net_kind):
    net = {"regression": regression_net, "softmax": softmax_net, "sigmoid": sigmoid_net,
           "float32": lambda: regression_net("float32")}[net_kind]()
    for call in (lambda: net.forward(X), lambda: net.loss(X, Y),
                 lambda: net.fit(X, Y, epochs=1, batch_size=2)):
        try:
            call()
        # FloatingPointError is fit's documented error for a loss that is not finite (finite
        # targets near the float64 limit square to infinity), raised after restoring the network
        except (ValueError, TypeError, FloatingPointError):
            pass
    assert np.all(np.isfinite(net.params))


def test_check_int_has_a_default_and_an_explicit_upper_bound():
    from fastnn._validation import MAX_INT, check_int
    assert check_int("n", MAX_INT, 1) == MAX_INT
    with pytest.raises(ValueError, match=f"n must be <= {MAX_INT}, got 9223372036854775808"):
        check_int("n", 2 ** 63, 1)
    with pytest.raises(ValueError, match="n must be <= 10, got an integer of 401 digits"):
        check_int("n", 10 ** 400, 1, maximum=10)
    assert check_int("key", 2 ** 64 - 1, 0, maximum=2 ** 64 - 1) == 2 ** 64 - 1


@pytest.mark.parametrize("value", [10 ** 400, -10 ** 400, Fraction(10 ** 400, 3)])
def test_check_real_calls_a_number_beyond_the_largest_float_infinite(value):
    from fastnn._validation import check_real
    with pytest.raises(ValueError, match="x must be finite"):
        check_real("x", value)
