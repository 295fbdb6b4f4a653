"""Property tests of the public API against garbage: every argument of MLP(...), MLP.from_layers,
the layers, the optimizers, fit, train_step, gradients, loss and forward, given values of the wrong
type, NaN, infinities, integers from 2**63 to 10**400, negatives, empties, strings, None, nested
lists and bools, works or raises ValueError or TypeError (FloatingPointError for a diverging fit),
never another exception and never a crash; and a network that raised is left finite."""
import contextlib
import io

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fastnn
from fastnn import layers, registry

EXPECTED = (ValueError, TypeError)
PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

huge_ints = st.sampled_from([2 ** 62 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64, 2 ** 100, 10 ** 400,
                             -2 ** 63, -10 ** 400])
# garbage for a scalar argument (and, by luck, sometimes a valid value)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 5), huge_ints,
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([np.nan, np.inf, -np.inf]),
    st.text(max_size=3), st.lists(st.integers(-2, 3), max_size=3),
    st.lists(st.lists(st.floats(), max_size=2), max_size=2), st.just(()), st.just({}),
    st.sampled_from([np.float32(0.5), np.int64(3), np.bool_(True), np.uint64(2 ** 64 - 1),
                     np.array(2), np.array([1.0]), 1 + 2j, b"1", object()]))
widths = st.one_of(st.integers(1, 6), scalars)
arrays = st.one_of(
    hnp.arrays(dtype=st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex128,
                                      np.dtype("U2"), np.dtype(object)]),
               shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
               elements=None),
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=5),
               elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
    scalars)


def survives(call, also=()):
    """Run ``call``: it works or raises one of the documented errors (and ``also``, the errors
    the call documents for its own case)."""
    try:
        call()
    except (*EXPECTED, *also):
        pass


@st.composite
def networks(draw):
    """A valid small network of random architecture and dtype, with fitting data."""
    sizes = draw(st.lists(st.integers(1, 5), min_size=2, max_size=4))
    output, loss = draw(st.sampled_from([(o, name) for name, info in registry.LOSSES.items()
                                         for o in info.outputs]))
    net = fastnn.MLP(sizes, activation=draw(st.sampled_from(registry.hidden_activations())),
                     output_activation=output, loss=loss,
                     dtype=draw(st.sampled_from(["float32", "float64"])), seed=0,
                     dropout=draw(st.sampled_from([0.0, 0.3])),
                     batch_norm=draw(st.booleans()))
    n = draw(st.integers(2, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    X = rng.normal(size=(n, sizes[0]))
    Y = (rng.normal(size=(n, sizes[-1])) if output == "identity" else
         rng.dirichlet(np.ones(sizes[-1]), size=n) if output == "softmax" else
         rng.uniform(size=(n, sizes[-1])))
    return net, X, Y


@PROPERTY
@given(sizes=st.one_of(st.lists(widths, max_size=4), scalars), activation=scalars,
       output_activation=st.one_of(st.sampled_from(["identity", "softmax", "sigmoid"]), scalars),
       loss=st.one_of(st.sampled_from(list(registry.LOSSES)), scalars), l2=scalars,
       dtype=st.one_of(st.sampled_from(["float32", "float64", np.float32]), scalars),
       seed=st.one_of(st.none(), st.integers(0, 2 ** 70), scalars), dropout=scalars,
       batch_norm=scalars)
def test_mlp_construction(sizes, activation, output_activation, loss, l2, dtype, seed, dropout,
                          batch_norm):
    survives(lambda: fastnn.MLP(sizes, activation, output_activation, loss, l2, dtype, seed,
                                dropout=dropout, batch_norm=batch_norm))


layer_garbage = st.one_of(
    st.builds(lambda u: (lambda: layers.Dense(u)), widths),
    st.builds(lambda u, b: (lambda: layers.Dense(u, bias=b)), widths, scalars),
    st.builds(lambda n: (lambda: layers.Activation(n)),
              st.one_of(st.sampled_from(list(registry.ACTIVATIONS)), scalars)),
    st.builds(lambda v: (lambda: layers.Activation("leaky_relu", negative_slope=v)), scalars),
    st.builds(lambda r: (lambda: layers.Dropout(r)), scalars),
    st.builds(lambda m, e, a: (lambda: layers.BatchNorm(m, e, a)), scalars, scalars, scalars))


@PROPERTY
@given(make=layer_garbage)
def test_layer_construction(make):
    survives(make)


@PROPERTY
@given(n_in=widths,
       layer_list=st.one_of(
           st.lists(st.sampled_from([layers.Dense(3), layers.Dense(1), layers.BatchNorm(),
                                     layers.Dropout(0.5), layers.Activation("relu"),
                                     layers.Activation("softmax"),
                                     layers.Activation("identity")]), max_size=5),
           scalars),
       loss=st.one_of(st.sampled_from(list(registry.LOSSES)), scalars), l2=scalars,
       dtype=st.one_of(st.sampled_from(["float32", "float64"]), scalars),
       seed=st.one_of(st.none(), st.integers(0, 2 ** 70), scalars))
def test_from_layers(n_in, layer_list, loss, l2, dtype, seed):
    survives(lambda: fastnn.MLP.from_layers(n_in, layer_list, loss, l2, dtype, seed))


@PROPERTY
@given(kind=st.sampled_from(["sgd", "adam"]), a=scalars, b=scalars, c=scalars, d=scalars,
       e=scalars)
def test_optimizer_construction_and_setters(kind, a, b, c, d, e):
    if kind == "sgd":
        survives(lambda: fastnn.SGD(lr=a, momentum=b, nesterov=c))
        optimizer, names = fastnn.SGD(momentum=0.5), ("lr", "momentum", "nesterov")
    else:
        survives(lambda: fastnn.Adam(lr=a, beta1=b, beta2=c, eps=d, eps_hat=e))
        optimizer, names = fastnn.Adam(), ("lr", "beta1", "beta2", "eps", "eps_hat")
    for name, value in zip(names, (a, b, c, d, e)):
        before = getattr(optimizer, name)
        try:
            setattr(optimizer, name, value)
        except EXPECTED:
            assert getattr(optimizer, name) == before


@PROPERTY
@given(case=networks(), X=st.one_of(st.none(), arrays), Y=st.one_of(st.none(), arrays),
       sample_weight=st.one_of(st.none(), arrays), which=st.integers(0, 2))
def test_evaluation_and_gradients_on_garbage_data(case, X, Y, sample_weight, which):
    net, X_good, Y_good = case
    # garbage in one place at a time, so that the others do not hide it
    X, Y = (X, Y_good) if which == 0 else (X_good, Y) if which == 1 else (X_good, Y_good)
    before = net.params.copy()
    survives(lambda: net.forward(X))
    survives(lambda: net.loss(X, Y, sample_weight))
    # gradients documents FloatingPointError for a loss or gradient that is not finite
    survives(lambda: net.gradients(X, Y, sample_weight, flat=True), also=(FloatingPointError,))
    np.testing.assert_array_equal(net.params, before)


@PROPERTY
@given(case=networks(), X=st.one_of(st.none(), arrays), Y=st.one_of(st.none(), arrays),
       lr=scalars, which=st.integers(0, 2), flat=scalars)
def test_train_step_on_garbage(case, X, Y, lr, which, flat):
    net, X_good, Y_good = case
    X, Y = (X, Y_good) if which == 0 else (X_good, Y) if which == 1 else (X_good, Y_good)
    try:
        optimizer = fastnn.SGD(lr=lr)
    except EXPECTED:
        optimizer = lr
    try:
        net.train_step(X, Y, optimizer)
    except (*EXPECTED, FloatingPointError):
        pass
    # a huge learning rate may leave huge (finite) weights, whose gradient overflows
    survives(lambda: net.gradients(X_good, Y_good, flat=flat), also=(FloatingPointError,))
    assert np.all(np.isfinite(net.params))


fit_options = st.fixed_dictionaries({}, optional={
    "epochs": st.one_of(st.integers(0, 2), scalars),
    "batch_size": st.one_of(st.integers(1, 9), st.just(2 ** 62), scalars),
    "shuffle": scalars,
    "seed": st.one_of(st.none(), st.integers(0, 2 ** 70), scalars),
    "validation_split": st.one_of(st.sampled_from([0.0, 0.5]), scalars),
    "validation_data": st.one_of(st.none(), scalars, st.tuples(arrays, arrays)),
    "early_stopping": scalars,
    "patience": st.one_of(st.integers(1, 3), scalars),
    "min_delta": scalars,
    "verbose": st.one_of(st.just(0), scalars),
    "sample_weight": st.one_of(st.none(), arrays),
    "optimizer": st.one_of(st.none(), scalars,
                           st.sampled_from(["sgd", "adam"]).map(
                               lambda k: fastnn.SGD() if k == "sgd" else fastnn.Adam())),
})


@PROPERTY
@given(case=networks(), options=fit_options)
def test_fit_options(case, options):
    net, X, Y = case
    try:
        # a valid verbose value prints the epochs
        with contextlib.redirect_stdout(io.StringIO()):
            net.fit(X, Y, **options)
    except (*EXPECTED, FloatingPointError):
        pass
    assert np.all(np.isfinite(net.params))
