"""The options of the losses (`loss_options`) and the exp output through the API: bad options are
refused with clear errors before anything is built; options survive repr, config, from_config,
save/load and pickling; without options the objective is bit for bit the plain one; data whose
class weights leave nothing to average by is refused; and a Poisson network whose rate overflows
never crashes nor keeps a NaN (the step or the epoch is refused, the network restored)."""
import pickle

import numpy as np
import pytest

import fastnn
from fastnn.layers import Activation, Dense


def classifier(options=None):
    """A softmax cross-entropy network of 4 classes."""
    return fastnn.MLP([3, 5, 4], activation="tanh", output_activation="softmax",
                      loss="cross_entropy", seed=0, loss_options=options)


def tagger(options=None):
    """A sigmoid cross-entropy network of 4 outputs."""
    return fastnn.MLP([3, 5, 4], activation="tanh", output_activation="sigmoid",
                      loss="cross_entropy", seed=0, loss_options=options)


BAD_OPTIONS = [
    # (network, loss_options, error, message)
    (classifier, {"weight": [1.0, 2.0]}, ValueError, r"one weight per output \(4\)"),
    (classifier, {"weight": [[1.0, 2.0, 3.0, 4.0]]}, ValueError, r"shape \(1, 4\)"),
    (classifier, {"weight": [1.0, -2.0, 3.0, 4.0]}, ValueError, ">= 0 and not all zero"),
    (classifier, {"weight": [0.0, 0.0, 0.0, 0.0]}, ValueError, ">= 0 and not all zero"),
    (classifier, {"weight": [1.0, np.nan, 3.0, 4.0]}, ValueError, "NaN or infinity"),
    (classifier, {"weight": [1.0, np.inf, 3.0, 4.0]}, ValueError, "NaN or infinity"),
    (classifier, {"weight": [True, False, True, True]}, TypeError, "not booleans"),
    (classifier, {"weight": ["a", "b", "c", "d"]}, TypeError, "real numbers"),
    (classifier, {"weight": None}, TypeError, "array-like of numbers"),
    (classifier, {"weight": [1e308, 1e308, 1.0, 1.0]}, ValueError, "sums to more than float64"),
    (classifier, {"label_smoothing": 1.5}, ValueError, "must be <= 1"),
    (classifier, {"label_smoothing": -0.1}, ValueError, "must be >= 0"),
    (classifier, {"label_smoothing": np.nan}, ValueError, "must be finite"),
    (classifier, {"label_smoothing": "0.1"}, TypeError, "real number"),
    (classifier, {"label_smoothing": True}, TypeError, "real number"),
    (classifier, {"pos_weight": 2.0}, ValueError, 'goes with output_activation "sigmoid"'),
    (classifier, {"reduction": "sum"}, ValueError, "takes the options"),
    (classifier, {1: 2.0}, ValueError, "takes the options"),
    (tagger, {"label_smoothing": 0.1}, ValueError, 'goes with output_activation "softmax"'),
    (tagger, {"weight": [1.0, 1.0, 1.0, 1.0]}, ValueError, 'not "sigmoid"'),
    (tagger, {"pos_weight": [1.0, 2.0, 3.0]}, ValueError, "one weight per output"),
    (tagger, {"pos_weight": -1.0}, ValueError, ">= 0"),
    (tagger, {"pos_weight": np.inf}, ValueError, "NaN or infinity"),
]


@pytest.mark.parametrize("make, options, error, message", BAD_OPTIONS)
def test_bad_options_are_refused_with_clear_errors(make, options, error, message):
    with pytest.raises(error, match=message):
        make(options)


def test_options_that_do_not_fit_the_loss_or_the_container_are_refused():
    with pytest.raises(TypeError, match="must be a dict"):
        fastnn.MLP([3, 4], output_activation="softmax", loss="cross_entropy",
                   loss_options=[("weight", [1, 2, 3, 4])])
    with pytest.raises(ValueError, match="takes the options"):
        fastnn.MLP([3, 4], loss="squared_error", loss_options={"weight": [1, 2, 3, 4]})
    with pytest.raises(ValueError, match="takes the options"):
        fastnn.MLP([3, 4], output_activation="exp", loss="poisson",
                   loss_options={"label_smoothing": 0.1})
    # weights that fit float64 but not the float32 network that multiplies by them
    with pytest.raises(ValueError, match="sums to more than float32"):
        fastnn.MLP([3, 2], output_activation="softmax", loss="cross_entropy", dtype="float32",
                   loss_options={"weight": [3e38, 3e38]})


def test_the_exp_output_is_an_output_only_and_poisson_needs_it():
    with pytest.raises(ValueError, match="output activation, not a hidden one"):
        fastnn.MLP.from_layers(3, [Dense(4), Activation("exp"), Dense(2), Activation("exp")],
                               loss="poisson")
    with pytest.raises(ValueError, match="unknown activation 'exp'|expected one of"):
        fastnn.MLP([3, 4, 2], activation="exp")
    with pytest.raises(ValueError, match='needs output_activation "exp"'):
        fastnn.MLP([3, 2], loss="poisson")
    with pytest.raises(ValueError, match='needs output_activation'):
        fastnn.MLP([3, 2], output_activation="exp", loss="cross_entropy")


def test_weights_are_kept_as_floats_and_one_pos_weight_serves_every_output():
    net = tagger({"pos_weight": 2})
    assert net.loss_options == {"pos_weight": (2.0, 2.0, 2.0, 2.0)}
    net = classifier({"weight": np.array([1, 2, 3, 4]), "label_smoothing": 0})
    assert net.loss_options == {"weight": (1.0, 2.0, 3.0, 4.0), "label_smoothing": 0.0}
    # a copy: changing it changes nothing
    net.loss_options["weight"] = (9.0,)
    assert net.loss_options["weight"] == (1.0, 2.0, 3.0, 4.0)


def test_networks_without_options_record_none():
    assert classifier().loss_options == {}
    assert "loss_options" not in classifier().config()
    assert "loss_options" not in repr(classifier())
    huber = fastnn.MLP([3, 2], loss="huber", seed=0)
    assert huber.loss_options == {"delta": 1.0}


ROUND_TRIPS = [
    ("softmax", {"weight": [0.5, 2.0, 0.0, 1.5], "label_smoothing": 0.2}),
    ("softmax", {"label_smoothing": 0.05}),
    ("sigmoid", {"pos_weight": [3.0, 0.5, 1.0, 2.0]}),
]


@pytest.mark.parametrize("output_activation, options", ROUND_TRIPS)
def test_options_survive_repr_config_save_load_and_pickle(tmp_path, output_activation, options):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(9, 3))
    Y = rng.uniform(size=(9, 4))
    for net in (fastnn.MLP([3, 5, 4], activation="tanh", output_activation=output_activation,
                           loss="cross_entropy", seed=0, loss_options=options),
                fastnn.MLP.from_layers(3, [Dense(5), Activation("tanh"), Dense(4),
                                           Activation(output_activation)],
                                       loss="cross_entropy", seed=0, loss_options=options)):
        expected = {name: tuple(value) if isinstance(value, list) else value
                    for name, value in options.items()}
        assert net.loss_options == expected
        J = net.loss(X, Y)
        copies = [eval(repr(net), {"MLP": fastnn.MLP, "Dense": Dense,
                                   "Activation": Activation}),
                  fastnn.MLP.from_config(net.config()), pickle.loads(pickle.dumps(net))]
        net.save(tmp_path / "net.npz")
        copies.append(fastnn.load(tmp_path / "net.npz"))
        for copy in copies:
            copy.params = net.params
            assert copy.loss_options == expected
            assert copy.config() == net.config()
            assert copy.loss(X, Y) == J


@pytest.mark.parametrize("output_activation, options", [
    ("softmax", {"label_smoothing": 0.0}), ("softmax", {}), ("sigmoid", {})])
def test_neutral_options_keep_the_plain_objective_bit_for_bit(output_activation, options):
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(11, 3)), rng.uniform(size=(11, 4))
    s = rng.uniform(0, 2, size=11)
    plain = fastnn.MLP([3, 5, 4], activation="tanh", output_activation=output_activation,
                       loss="cross_entropy", seed=0)
    net = fastnn.MLP([3, 5, 4], activation="tanh", output_activation=output_activation,
                     loss="cross_entropy", seed=0, loss_options=options)
    for weights in (None, s):
        assert net.loss(X, Y, weights) == plain.loss(X, Y, weights)
        J, grad = net.gradients(X, Y, weights, flat=True)
        J_plain, grad_plain = plain.gradients(X, Y, weights, flat=True)
        assert J == J_plain
        np.testing.assert_array_equal(grad, grad_plain)
    history = net.fit(X, Y, epochs=2, batch_size=4, seed=1, sample_weight=s)
    history_plain = plain.fit(X, Y, epochs=2, batch_size=4, seed=1, sample_weight=s)
    assert history.loss == history_plain.loss
    np.testing.assert_array_equal(net.params, plain.params)


def test_class_weights_equal_to_one_give_the_plain_objective():
    rng = np.random.default_rng(5)
    X, labels = rng.normal(size=(11, 3)), rng.integers(4, size=11)
    net, plain = classifier({"weight": [1.0] * 4}), classifier()
    assert net.loss(X, labels) == pytest.approx(plain.loss(X, labels), rel=1e-14)
    np.testing.assert_allclose(net.gradients(X, labels, flat=True)[1],
                               plain.gradients(X, labels, flat=True)[1], rtol=1e-13, atol=1e-16)


def test_data_whose_class_weights_sum_to_zero_is_refused():
    net = classifier({"weight": [0.0, 1.0, 1.0, 1.0]})
    X = np.random.default_rng(6).normal(size=(4, 3))
    labels = np.zeros(4, dtype=int)
    for call in (lambda: net.loss(X, labels), lambda: net.gradients(X, labels),
                 lambda: net.train_step(X, labels, fastnn.SGD(lr=0.1)),
                 lambda: net.fit(X, labels, epochs=1)):
        with pytest.raises(ValueError, match="class weights of these targets"):
            call()
    # rows of weight 0 are fine beside others; their sample weights may zero the rest
    labels[0] = 1
    assert np.isfinite(net.loss(X, labels))
    with pytest.raises(ValueError, match="class weights of these targets"):
        net.loss(X, labels, sample_weight=[0.0, 1.0, 1.0, 1.0])
    # the stratified split holds out two rows of class 0 (the larger class takes the row left
    # over): the validation part's class weights sum to zero
    with pytest.raises(ValueError, match="validation_split leaves a part"):
        net.fit(X, np.array([1, 0, 0, 0]), epochs=1, validation_split=0.5)


def test_a_batch_of_rows_of_class_weight_zero_makes_no_update_in_an_epoch():
    net = classifier({"weight": [0.0, 1.0, 1.0, 1.0]})
    rng = np.random.default_rng(7)
    X = rng.normal(size=(6, 3))
    labels = np.array([0, 0, 0, 1, 2, 3])
    before = net.params.copy()
    optimizer = fastnn.SGD(lr=0.1)
    history = net.fit(X, labels, optimizer=optimizer, epochs=1, batch_size=3, shuffle=False)
    # the first batch weighs nothing: the epoch's loss is the second batch's
    after_epoch = net.params.copy()
    net.params = before
    J = net.loss(X[3:], labels[3:])
    assert history.loss[0] == pytest.approx(J, rel=1e-12)
    net.params = before
    net.train_step(X[3:], labels[3:], fastnn.SGD(lr=0.1))
    np.testing.assert_array_equal(net.params, after_epoch)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_poisson_rate_that_overflows_is_refused_without_a_crash_or_a_nan(dtype):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(20, 3))
    Y = rng.poisson(2.0, size=(20, 2)).astype(float)
    net = fastnn.MLP([3, 6, 2], activation="tanh", output_activation="exp", loss="poisson",
                     dtype=dtype, seed=0)
    # a log-rate of 1000 overflows exp in either dtype
    net.biases[-1][:] = 1000.0
    kept = net.params.copy()
    assert np.all(np.isinf(net.forward(X)))
    assert net.loss(X, Y) == np.inf
    with pytest.raises(FloatingPointError):
        net.gradients(X, Y)
    with pytest.raises(FloatingPointError, match="not updated"):
        net.train_step(X, Y, fastnn.Adam())
    with pytest.raises(FloatingPointError, match="epoch 1"):
        net.fit(X, Y, optimizer=fastnn.SGD(lr=0.1), epochs=3, batch_size=4)
    np.testing.assert_array_equal(net.params, kept)


def test_a_poisson_fit_that_diverges_leaves_a_finite_network():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(40, 3)) * 30
    Y = rng.poisson(50.0, size=(40, 2)).astype(float)
    net = fastnn.MLP([3, 8, 2], activation="relu", output_activation="exp", loss="poisson",
                     seed=0)
    with pytest.raises(FloatingPointError):
        net.fit(X, Y, optimizer=fastnn.SGD(lr=1.0), epochs=20, batch_size=8)
    assert np.all(np.isfinite(net.params))
    assert not np.isnan(net.loss(X, Y))
    assert not np.isnan(net.forward(X)).any()
