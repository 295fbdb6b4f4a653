"""The semantics of the MLP API: parameters as views into one flat vector, reproducible
initialization at the documented scales, every array-like input giving the same numbers as a clean
float64 array and never being modified, dtypes kept, `fit` deterministic and equal to a loop of
`train_step`, its History and early stopping, sample weights, recovery from divergence, and
optimizer state."""
import threading

import numpy as np
import pytest

import fastnn

from helpers import batches, flat_gradient


def regression_data(seed=0, n=23, n_in=3, n_out=2):
    """Small integers, so that every array-like spelling holds exactly the same numbers."""
    rng = np.random.default_rng(seed)
    X = rng.integers(-3, 4, size=(n, n_in)).astype(np.float64)
    Y = rng.integers(-2, 3, size=(n, n_out)).astype(np.float64)
    return X, Y


def regression_net(seed=0, dtype="float64", sizes=(3, 6, 2)):
    return fastnn.MLP(list(sizes), activation="tanh", l2=1e-3, dtype=dtype, seed=seed)


def test_weights_and_biases_are_views_into_params():
    net = fastnn.MLP([3, 4, 2], seed=0)
    assert [W.shape for W in net.weights] == [(3, 4), (4, 2)]
    assert [b.shape for b in net.biases] == [(4,), (2,)]
    assert net.params.shape == (net.n_params,) == (3 * 4 + 4 + 4 * 2 + 2,)
    net.weights[0][1, 2] = 7.0       # row-major (n_in, n_out): element 1 * 4 + 2
    net.biases[0][3] = 8.0           # after W_1's 12 entries
    net.weights[1][3, 1] = 9.0       # after W_1, b_1: 16 + 3 * 2 + 1
    net.biases[1][0] = 10.0          # after W_1, b_1, W_2
    assert net.params[6] == 7.0 and net.params[15] == 8.0
    assert net.params[23] == 9.0 and net.params[24] == 10.0
    net.params[:] = np.arange(net.n_params)
    np.testing.assert_array_equal(net.weights[0], np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(net.biases[1], [24, 25])


def test_assigning_params_copies_values_into_the_same_vector():
    net = fastnn.MLP([3, 4, 2], seed=0)
    vector, first_weights = net.params, net.weights[0]
    values = np.linspace(-1, 1, net.n_params)
    net.params = values.tolist()
    assert net.params is vector
    np.testing.assert_array_equal(first_weights.ravel(), values[:12])
    values[0] = 5.0
    assert net.params[0] == -1.0


def test_initialization_is_reproducible_from_the_seed():
    same = [fastnn.MLP([5, 7, 3], seed=4).params for _ in range(2)]
    np.testing.assert_array_equal(same[0], same[1])
    assert not np.array_equal(same[0], fastnn.MLP([5, 7, 3], seed=5).params)
    net = fastnn.MLP([5, 7, 3], seed=4)
    net.params[:] = 0
    net.initialize(4)
    np.testing.assert_array_equal(net.params, same[0])
    assert all(np.all(b == 0) for b in net.biases)


def test_relu_layers_get_he_normal_and_the_others_glorot_uniform():
    net = fastnn.MLP([400, 300, 200], activation="relu", seed=0)
    hidden, output = net.weights
    assert hidden.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert abs(hidden.mean()) < 5 * np.sqrt(2 / 400) / np.sqrt(hidden.size)
    limit = np.sqrt(6 / (300 + 200))
    assert np.abs(output).max() <= limit
    assert output.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    for activation in ("sigmoid", "tanh", "identity"):
        W = fastnn.MLP([400, 300, 2], activation=activation, seed=0).weights[0]
        limit = np.sqrt(6 / (400 + 300))
        assert np.abs(W).max() <= limit
        assert W.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)


def test_predict_is_forward():
    net = regression_net()
    X, _ = regression_data()
    np.testing.assert_array_equal(net.predict(X), net.forward(X))
    assert net.forward(np.empty((0, 3))).shape == (0, 2)


def test_large_data_sets_give_the_numbers_of_small_chunks():
    # more rows than the engine's evaluation block (1024): forward and loss run block by block
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(2500, 5)), rng.normal(size=(2500, 4))
    net = fastnn.MLP([5, 30, 4], activation="tanh", l2=0.01, seed=0)
    chunks = range(0, len(X), 100)
    np.testing.assert_allclose(net.forward(X),
                               np.concatenate([net.forward(X[i:i + 100]) for i in chunks]),
                               rtol=1e-13, atol=1e-15)
    data_loss = np.mean([net.loss(X[i:i + 100], Y[i:i + 100]) for i in chunks])
    assert net.loss(X, Y) == pytest.approx(data_loss, rel=1e-13)
    J, _, _ = net.gradients(X, Y)
    assert J == pytest.approx(data_loss, rel=1e-13)


ARRAY_LIKES = {
    "list": lambda a: a.tolist(),
    "int64": lambda a: a.astype(np.int64),
    "float32": lambda a: a.astype(np.float32),
    "strided": lambda a: np.repeat(np.repeat(a, 2, axis=0), 3, axis=1)[::2, ::3],
    "fortran": np.asfortranarray,
}


@pytest.mark.parametrize("spelling", list(ARRAY_LIKES))
def test_array_likes_give_the_same_numbers_as_clean_float64(spelling):
    X, Y = regression_data()
    convert = ARRAY_LIKES[spelling]
    if spelling == "strided":
        assert not convert(X).flags.c_contiguous
    clean, other = regression_net(), regression_net()
    np.testing.assert_array_equal(other.forward(convert(X)), clean.forward(X))
    assert other.loss(convert(X), convert(Y)) == clean.loss(X, Y)
    J, dW, db = other.gradients(convert(X), convert(Y))
    J_clean, dW_clean, db_clean = clean.gradients(X, Y)
    assert J == J_clean
    for g, g_clean in zip(dW + db, dW_clean + db_clean):
        np.testing.assert_array_equal(g, g_clean)
    other.fit(convert(X), convert(Y), optimizer=fastnn.Adam(lr=0.01), epochs=2, batch_size=4,
              seed=0, validation_data=(convert(X), convert(Y)))
    clean.fit(X, Y, optimizer=fastnn.Adam(lr=0.01), epochs=2, batch_size=4, seed=0,
              validation_data=(X, Y))
    np.testing.assert_array_equal(other.params, clean.params)


def test_one_dimensional_targets_of_a_single_output_are_a_column():
    X, Y = regression_data(n_out=1)
    net = regression_net(sizes=(3, 4, 1))
    assert net.loss(X, Y[:, 0]) == net.loss(X, Y)


def test_integer_labels_equal_one_hot_targets():
    X, _ = regression_data()
    labels = np.random.default_rng(1).integers(3, size=len(X))
    net = fastnn.MLP([3, 5, 3], output_activation="softmax", loss="cross_entropy", seed=0)
    J, dW, _ = net.gradients(X, labels)
    J_onehot, dW_onehot, _ = net.gradients(X, np.eye(3)[labels])
    assert J == J_onehot
    np.testing.assert_array_equal(dW[0], dW_onehot[0])


def test_user_arrays_are_never_modified():
    X, Y = regression_data()
    X_val, Y_val = regression_data(seed=1)
    originals = [a.copy() for a in (X, Y, X_val, Y_val)]
    net = regression_net()
    net.forward(X)
    net.loss(X, Y)
    net.gradients(X, Y)
    net.train_step(X, Y, fastnn.SGD(lr=0.01))
    net.fit(X, Y, epochs=2, batch_size=4, seed=0, validation_data=(X_val, Y_val))
    net.fit(X, Y, epochs=2, batch_size=4, seed=0, validation_split=0.3, shuffle=False)
    for array, original in zip((X, Y, X_val, Y_val), originals):
        np.testing.assert_array_equal(array, original)


def test_float32_networks_stay_float32():
    X, Y = regression_data()
    net = regression_net(dtype="float32")
    assert net.params.dtype == np.float32 and net.weights[0].dtype == np.float32
    net.fit(X, Y, epochs=2, seed=0)
    net.train_step(X, Y, fastnn.SGD(lr=0.01))
    assert net.params.dtype == np.float32
    assert net.forward(X).dtype == np.float32
    _, dW, db = net.gradients(X, Y)
    assert all(g.dtype == np.float32 for g in dW + db)
    assert fastnn.MLP([2, 1], dtype=np.float32).dtype == np.float32


def test_fit_is_deterministic_for_a_seed():
    X, Y = regression_data()
    nets = [regression_net() for _ in range(3)]
    for net, seed in zip(nets, (7, 7, 8)):
        net.fit(X, Y, optimizer=fastnn.SGD(lr=0.01, momentum=0.9), epochs=3, batch_size=4,
                seed=seed)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)
    assert not np.array_equal(nets[0].params, nets[2].params)


def test_history_records_every_epoch():
    X, Y = regression_data()
    X_val, Y_val = regression_data(seed=1)
    history = regression_net().fit(X, Y, epochs=4, seed=0)
    assert len(history.loss) == history.epochs == 4 and history.val_loss == []
    assert history.best_epoch == int(np.argmin(history.loss))
    assert not history.stopped_early
    history = regression_net().fit(X, Y, epochs=4, seed=0, validation_data=(X_val, Y_val))
    assert len(history.loss) == len(history.val_loss) == 4
    assert history.best_epoch == int(np.argmin(history.val_loss))
    history = regression_net().fit(X, Y, epochs=3, seed=0, validation_split=0.25)
    assert len(history.loss) == len(history.val_loss) == 3


def test_early_stopping_stops_and_restores_the_best_weights():
    rng = np.random.default_rng(0)
    # noise to memorize: the validation loss gets worse as the training set is learned
    X, Y = rng.normal(size=(12, 3)), rng.normal(size=(12, 2))
    X_val, Y_val = rng.normal(size=(30, 3)), rng.normal(size=(30, 2))
    net = fastnn.MLP([3, 32, 2], activation="tanh", seed=0)
    patience = 3
    history = net.fit(X, Y, optimizer=fastnn.Adam(lr=0.05), epochs=200, batch_size=4, seed=0,
                      validation_data=(X_val, Y_val), early_stopping=True, patience=patience)
    assert history.stopped_early
    assert history.epochs == history.best_epoch + patience + 1 < 200
    assert history.best_epoch == int(np.argmin(history.val_loss))
    assert net.loss(X_val, Y_val) == history.val_loss[history.best_epoch]


def test_fit_without_shuffle_equals_a_train_step_loop():
    X, Y = regression_data()
    net, twin = regression_net(), regression_net()
    history = net.fit(X, Y, optimizer=fastnn.Adam(lr=0.01), epochs=3, batch_size=5,
                      shuffle=False)
    optimizer, expected = fastnn.Adam(lr=0.01), []
    for _ in range(3):
        sequence = batches(X, Y, 5)
        assert len(sequence[-1][0]) == 3
        expected.append(sum(twin.train_step(Xb, Yb, optimizer) * len(Xb)
                            for Xb, Yb in sequence) / len(X))
    np.testing.assert_array_equal(net.params, twin.params)
    np.testing.assert_allclose(history.loss, expected, rtol=1e-15)


def test_run_epoch_visits_the_rows_in_the_given_order():
    X, Y = regression_data()
    net, twin = regression_net(), regression_net()
    order = np.random.default_rng(1).permutation(len(X))
    loss, val_loss = fastnn.training.run_epoch(net, net.check_data(X, Y), fastnn.SGD(lr=0.05), 5,
                                               order, validation=net.check_data(X[:4], Y[:4]))
    history = twin.fit(X[order], Y[order], optimizer=fastnn.SGD(lr=0.05), epochs=1,
                       batch_size=5, shuffle=False)
    np.testing.assert_array_equal(net.params, twin.params)
    assert loss == pytest.approx(history.loss[0], rel=1e-15)
    assert val_loss == net.loss(X[:4], Y[:4])


@pytest.mark.parametrize("order", [np.arange(22), np.arange(23) + 1, -np.arange(23),
                                   np.arange(23) + 0.5], ids=["short", "past-the-end",
                                                              "negative", "fractional"])
def test_run_epoch_refuses_an_order_that_is_not_row_indices(order):
    X, Y = regression_data()
    net = regression_net()
    with pytest.raises(ValueError, match="order must hold 23 integer row indices"):
        fastnn.training.run_epoch(net, net.check_data(X, Y), fastnn.SGD(), 5, order)


@pytest.mark.parametrize("spoil", [lambda X, Y: (X[:, :2].copy(), Y),
                                   lambda X, Y: (X.astype(np.float32), Y),
                                   lambda X, Y: (np.asfortranarray(X), Y),
                                   lambda X, Y: (X, Y[:-1])],
                         ids=["wrong-width", "wrong-dtype", "fortran-order", "rows-differ"])
def test_run_epoch_refuses_data_it_would_misread(spoil):
    X, Y = regression_data()
    net = regression_net()
    with pytest.raises(ValueError, match="data for this network must come from its check_data"):
        fastnn.training.run_epoch(net, fastnn.CheckedData(*spoil(X, Y), None), fastnn.SGD(), 5)


def test_run_epoch_takes_only_checked_data():
    X, Y = regression_data()
    net = regression_net()
    with pytest.raises(TypeError, match="CheckedData"):
        fastnn.training.run_epoch(net, (X, Y, None), fastnn.SGD(), 5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes", [(3, 4, 2), (3, 64, 48, 2)], ids=["plain-loops", "blas"])
def test_plain_sgd_step_is_params_minus_lr_times_gradient(dtype, sizes):
    # plain SGD takes its step inside the backward pass; it must equal the stored-gradient step
    X, Y = regression_data()
    net = regression_net(dtype=dtype, sizes=sizes)
    before = net.params.copy()
    J, dW, db = net.gradients(X, Y)
    assert net.train_step(X, Y, fastnn.SGD(lr=0.1)) == J
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(net.params, before - 0.1 * flat_gradient(dW, db), **tolerance)


def test_sample_weights_of_ones_change_nothing():
    X, Y = regression_data()
    net, twin = regression_net(), regression_net()
    ones = np.ones(len(X))
    assert net.loss(X, Y, ones) == net.loss(X, Y)
    net.fit(X, Y, optimizer=fastnn.Adam(lr=0.01), epochs=2, batch_size=5, seed=0,
            sample_weight=ones)
    twin.fit(X, Y, optimizer=fastnn.Adam(lr=0.01), epochs=2, batch_size=5, seed=0)
    np.testing.assert_allclose(net.params, twin.params, rtol=1e-14, atol=1e-15)


def test_an_integer_sample_weight_counts_a_row_that_many_times():
    X, Y = regression_data()
    weights = np.arange(len(X)) % 3            # rows weighted 0, 1 or 2
    repeated = np.repeat(np.arange(len(X)), weights)
    net = regression_net()
    J, dW, db = net.gradients(X, Y, weights)
    J_repeated, dW_repeated, db_repeated = net.gradients(X[repeated], Y[repeated])
    assert J == pytest.approx(J_repeated, rel=1e-14)
    np.testing.assert_allclose(flat_gradient(dW, db), flat_gradient(dW_repeated, db_repeated),
                               rtol=1e-12, atol=1e-15)


def test_a_batch_of_zero_weights_makes_no_update():
    X, Y = regression_data()
    weights = np.ones(len(X))
    weights[5:10] = 0                           # the second batch of 5
    net, twin = regression_net(), regression_net()
    optimizer, twin_optimizer = fastnn.SGD(lr=0.05, momentum=0.9), fastnn.SGD(lr=0.05, momentum=0.9)
    history = net.fit(X, Y, optimizer=optimizer, epochs=1, batch_size=5, shuffle=False,
                      sample_weight=weights)
    expected = 0.0
    for k, (Xb, Yb) in enumerate(batches(X, Y, 5)):
        if k != 1:
            expected += twin.train_step(Xb, Yb, twin_optimizer) * len(Xb)
    np.testing.assert_array_equal(net.params, twin.params)
    assert optimizer.steps == twin_optimizer.steps == 4
    assert history.loss[0] == pytest.approx(expected / weights.sum(), rel=1e-14)


def test_zero_epochs_change_nothing():
    X, Y = regression_data()
    net, optimizer = regression_net(), fastnn.SGD(lr=0.1)
    before = net.params.copy()
    history = net.fit(X, Y, optimizer=optimizer, epochs=0, validation_split=0.2)
    np.testing.assert_array_equal(net.params, before)
    assert history.loss == [] and history.val_loss == [] and history.best_epoch is None
    assert optimizer.steps == 0


@pytest.mark.parametrize("lr, input_scale", [(1e6, 1.0), (1e2, 0.01)])
def test_diverging_fit_raises_and_restores_the_start_of_the_failing_epoch(lr, input_scale):
    X, Y = regression_data()
    X = X * input_scale
    net, stepwise = regression_net(sizes=(3, 2)), regression_net(sizes=(3, 2))
    optimizer, stepwise_optimizer = fastnn.SGD(lr=lr), fastnn.SGD(lr=lr)
    with pytest.raises(FloatingPointError, match="epoch"):
        net.fit(X, Y, optimizer=optimizer, epochs=100, batch_size=4, shuffle=False)
    # the same epochs one fit at a time, keeping the parameters each epoch started from
    for epoch in range(100):  # noqa: B007 (the epoch that failed is asserted on below)
        start, steps = stepwise.params.copy(), stepwise_optimizer.steps
        try:
            stepwise.fit(X, Y, optimizer=stepwise_optimizer, epochs=1, batch_size=4,
                         shuffle=False)
        except FloatingPointError:
            break
    assert epoch > 0, "this data should diverge after some epochs, so a restore is visible"
    assert np.all(np.isfinite(net.params))
    np.testing.assert_array_equal(net.params, start)
    np.testing.assert_array_equal(stepwise.params, start)
    assert optimizer.steps == stepwise_optimizer.steps == steps


def test_train_step_with_non_finite_loss_raises_and_changes_nothing():
    X, Y = regression_data()
    net, optimizer = regression_net(), fastnn.Adam()
    net.train_step(X, Y, optimizer)
    net.params[:] = 1e200             # finite, but the squared error overflows
    with pytest.raises(FloatingPointError, match="not updated"):
        net.train_step(X, Y, optimizer)
    assert np.all(net.params == 1e200)
    assert optimizer.steps == 1


def test_optimizer_state_carries_over_between_fits():
    X, Y = regression_data()
    net, twin = regression_net(), regression_net()
    optimizer = fastnn.Adam(lr=0.01)
    net.fit(X, Y, optimizer=optimizer, epochs=2, batch_size=5, shuffle=False)
    net.fit(X, Y, optimizer=optimizer, epochs=3, batch_size=5, shuffle=False)
    twin.fit(X, Y, optimizer=fastnn.Adam(lr=0.01), epochs=5, batch_size=5, shuffle=False)
    np.testing.assert_array_equal(net.params, twin.params)
    assert optimizer.steps == 5 * 5


def test_an_optimizer_belongs_to_one_network():
    X, Y = regression_data()
    optimizer = fastnn.SGD(lr=0.01, momentum=0.5)
    first, other = regression_net(), regression_net()
    first.train_step(X, Y, optimizer)
    with pytest.raises(ValueError, match="another network"):
        other.train_step(X, Y, optimizer)
    with pytest.raises(ValueError, match="another network"):
        other.fit(X, Y, optimizer=optimizer, epochs=1)
    optimizer.reset()
    other.train_step(X, Y, optimizer)
    assert optimizer.steps == 1


def test_threads_sharing_a_network_get_the_numbers_of_one_thread():
    """The passes run without the GIL on one workspace per network: the engine's lock keeps two
    threads from overwriting (or reallocating) it under each other."""
    rng = np.random.default_rng(7)
    net = fastnn.MLP([20, 64, 3], seed=0)
    inputs = [rng.normal(size=(n, 20)) for n in (1, 50, 700, 2000)]
    expected = [net.forward(X) for X in inputs]
    failures = []

    def evaluate(k):
        for i in range(40):
            j = (i + k) % len(inputs)
            if not np.array_equal(net.forward(inputs[j]), expected[j]):
                failures.append(j)

    threads = [threading.Thread(target=evaluate, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_targets_too_large_to_square_stop_fit_with_the_network_intact():
    X, Y = regression_data()
    net = regression_net()
    before = net.params.copy()
    with pytest.raises(FloatingPointError, match="inputs or targets too large"):
        net.fit(X, np.full_like(Y, 1e300), epochs=1, batch_size=4)
    np.testing.assert_array_equal(net.params, before)


def test_the_penalty_can_change_and_the_architecture_cannot():
    X, Y = regression_data()
    net = regression_net()
    J, dW, _ = net.gradients(X, Y)
    net.l2 = 0.5
    J2, dW2, _ = net.gradients(X, Y)
    penalty = sum(float((W ** 2).sum()) for W in net.weights)
    assert J2 == pytest.approx(J + (0.5 - 1e-3) / 2 * penalty, rel=1e-12)
    np.testing.assert_allclose(dW2[0], dW[0] + (0.5 - 1e-3) * net.weights[0], rtol=1e-12)
    assert fastnn.MLP.from_config(net.config()).l2 == 0.5
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        net.l2 = -1.0
    for name in ("sizes", "activation", "output_activation", "loss_name", "dtype"):
        with pytest.raises(AttributeError):
            setattr(net, name, getattr(net, name))


def test_huber_delta_is_checked_and_survives_save_and_load(tmp_path):
    with pytest.raises(ValueError, match="must be > 0"):
        fastnn.MLP([2, 1], loss="huber", loss_options={"delta": 0})
    with pytest.raises(ValueError, match="takes the options"):
        fastnn.MLP([2, 1], output_activation="exp", loss="poisson", loss_options={"delta": 1.0})
    net = fastnn.MLP([2, 3, 1], loss="huber", loss_options={"delta": 0.3}, seed=0)
    net.save(tmp_path / "huber.npz")
    assert fastnn.load(tmp_path / "huber.npz").loss_options == {"delta": 0.3}


def test_poisson_refuses_negative_targets():
    net = fastnn.MLP([2, 1], output_activation="exp", loss="poisson", seed=0)
    with pytest.raises(ValueError, match=">= 0"):
        net.loss(np.ones((2, 2)), [[1.0], [-1.0]])
