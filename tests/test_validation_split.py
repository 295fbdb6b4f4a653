"""fit's validation_split: a random subset of the rows drawn from the fit's seed, stratified by
class for a classifier, as scikit-learn's early stopping draws it (fastnn 0.1 held out the last
rows, which on a file sorted by class gave a validation set of one class)."""
import numpy as np

import fastnn
from fastnn.training import _split


def classifier(n_in=2, n_out=3):
    return fastnn.MLP([n_in, 8, n_out], output_activation="softmax", loss="cross_entropy",
                      seed=0)


def numbered(n, n_in=2):
    """Inputs whose first column is the row's number, to tell which rows a part holds."""
    X = np.random.default_rng(1).normal(size=(n, n_in))
    X[:, 0] = np.arange(n)
    return X


def test_a_table_sorted_by_class_gives_a_validation_part_of_every_class():
    X, y = numbered(90), np.repeat([0, 1, 2], 30)
    train, validation = _split(classifier(), X, y, None, None, 0.2, 0)
    assert np.bincount(validation.Y.argmax(axis=1)).tolist() == [6, 6, 6]
    assert np.bincount(train.Y.argmax(axis=1)).tolist() == [24, 24, 24]


def test_the_parts_share_out_the_rows_and_keep_their_order():
    X, y = numbered(50), np.r_[np.zeros(35, int), np.ones(10, int), np.full(5, 2)]
    train, validation = _split(classifier(), X, y, None, None, 0.3, 3)
    train_rows, validation_rows = train.X[:, 0].astype(int), validation.X[:, 0].astype(int)
    assert len(validation_rows) == 50 - int(50 * 0.7)
    assert sorted([*train_rows, *validation_rows]) == list(range(50))
    assert np.all(np.diff(train_rows) > 0) and np.all(np.diff(validation_rows) > 0)
    # each class keeps its share: 35, 10 and 5 rows give 10.5, 3 and 1.5 of the 15 held out
    assert np.bincount(y[validation_rows], minlength=3).tolist() in ([11, 3, 1], [10, 3, 2])
    np.testing.assert_array_equal(train.Y.argmax(axis=1), y[train_rows])


def test_the_split_is_drawn_from_the_seed():
    X, Y = numbered(40), np.random.default_rng(2).normal(size=(40, 3))
    net = fastnn.MLP([2, 3], seed=0)

    def rows(seed):
        return _split(net, X, Y, None, None, 0.25, seed)[1].X[:, 0].tolist()
    assert rows(5) == rows(5) and rows(5) != rows(6)
    # not the last rows
    assert rows(5) != list(range(30, 40))


def test_a_single_sigmoid_output_is_stratified_by_its_target():
    net = fastnn.MLP([2, 4, 1], output_activation="sigmoid", loss="cross_entropy", seed=0)
    X, y = numbered(40), np.r_[np.zeros(30), np.ones(10)]
    _, validation = _split(net, X, y, None, None, 0.2, 0)
    assert validation.Y[:, 0].tolist().count(1.0) == 2


def test_sample_weights_go_with_their_rows():
    X, Y = numbered(30), np.random.default_rng(2).normal(size=(30, 3))
    weights = np.arange(1.0, 31.0)
    train, validation = _split(fastnn.MLP([2, 3], seed=0), X, Y, weights, None, 0.3, 0)
    for part in (train, validation):
        np.testing.assert_array_equal(part.sample_weight, part.X[:, 0] + 1)


def test_fit_with_a_split_trains_as_on_its_parts_given_apart():
    X, y = numbered(60), np.repeat([0, 1, 2], 20)
    net, twin = classifier(), classifier()
    split = net.fit(X, y, optimizer=fastnn.SGD(lr=0.05), epochs=3, seed=0, validation_split=0.3)
    train, validation = _split(twin, X, y, None, None, 0.3, 0)
    given = twin.fit(train, None, optimizer=fastnn.SGD(lr=0.05), epochs=3, seed=0,
                     validation_data=(validation.X, validation.Y))
    assert split == given
    np.testing.assert_array_equal(net.params, twin.params)
