"""End-to-end training on scikit-learn's digits, and inference, for each peer.

`train_*` functions train a 64-128-10 classifier with the settings in `cases.DIGITS` and return
``(seconds, test_accuracy)``; the clock covers the training call only, after a one-epoch warm-up on
a throwaway model. `forward_*` builders return ``(run, 1)`` where ``run()`` is one forward pass of
the digits-sized net of `cases.CASES_BY_NAME["digits"]` on a given number of rows.
"""
import time
import warnings

import numpy as np

from cases import CASES_BY_NAME, DIGITS, batches

INFERENCE_CASE = CASES_BY_NAME["digits"]


def digits_split():
    """(X_train, X_test, y_train, y_test): X / 16, stratified 75/25, a fixed random_state."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, stratify=y,
                            random_state=DIGITS["split_seed"])


def _timed(train, epochs):
    """Run ``train(1)`` to warm up, then time ``train(epochs)``; returns (seconds, predict)."""
    train(1)
    started = time.perf_counter()
    predict = train(epochs)
    return time.perf_counter() - started, predict


def train_fastnn():
    """fastnn's ``MLP.fit`` with ``Adam``."""
    import fastnn

    X, X_test, y, y_test = digits_split()

    def train(epochs):
        net = fastnn.MLP([64, DIGITS["hidden"], 10], activation="relu",
                         output_activation="softmax", loss="cross_entropy", dtype="float64",
                         seed=DIGITS["seed"])
        net.fit(X, y, optimizer=fastnn.Adam(lr=DIGITS["lr"]), epochs=epochs,
                batch_size=DIGITS["batch"], shuffle=True, seed=DIGITS["seed"])
        return net.forward

    seconds, predict = _timed(train, DIGITS["epochs"])
    return seconds, float((predict(X_test).argmax(axis=1) == y_test).mean())


def train_sklearn():
    """scikit-learn's ``MLPClassifier.fit`` (adam), made to run all the epochs."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, X_test, y, y_test = digits_split()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    def train(epochs):
        # tol=0 and a huge n_iter_no_change: every one of the epochs runs
        model = MLPClassifier(hidden_layer_sizes=(DIGITS["hidden"],), activation="relu",
                              solver="adam", alpha=0.0, batch_size=DIGITS["batch"],
                              learning_rate_init=DIGITS["lr"], max_iter=epochs, tol=0.0,
                              n_iter_no_change=10**9, shuffle=True, early_stopping=False,
                              random_state=DIGITS["seed"])
        model.fit(X, y)
        return model.predict_proba

    seconds, predict = _timed(train, DIGITS["epochs"])
    return seconds, float((predict(X_test).argmax(axis=1) == y_test).mean())


def train_torch():
    """A plain PyTorch loop: shuffled minibatches, ``CrossEntropyLoss``, ``torch.optim.Adam``."""
    import torch

    torch.set_num_threads(2)
    X, X_test, y, y_test = digits_split()
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    batch = DIGITS["batch"]

    def train(epochs):
        torch.manual_seed(DIGITS["seed"])
        model = torch.nn.Sequential(torch.nn.Linear(64, DIGITS["hidden"], dtype=torch.float64),
                                    torch.nn.ReLU(),
                                    torch.nn.Linear(DIGITS["hidden"], 10, dtype=torch.float64))
        optimizer = torch.optim.Adam(model.parameters(), lr=DIGITS["lr"])
        loss_fn = torch.nn.CrossEntropyLoss()
        for _ in range(epochs):
            order = torch.randperm(X.shape[0])
            for start in range(0, X.shape[0], batch):
                rows = order[start:start + batch]
                optimizer.zero_grad()
                loss_fn(model(X[rows]), y[rows]).backward()
                optimizer.step()

        def predict(data):
            with torch.no_grad():
                return model(torch.from_numpy(data)).numpy()

        return predict

    seconds, predict = _timed(train, DIGITS["epochs"])
    return seconds, float((predict(X_test).argmax(axis=1) == y_test).mean())


TRAINERS = {"fastnn": train_fastnn, "sklearn": train_sklearn, "torch": train_torch}


def forward_fastnn(rows):
    """``MLP.forward``."""
    import fastnn

    case = INFERENCE_CASE
    net = fastnn.MLP(case.sizes, activation=case.activation, dtype=case.dtype, seed=0)
    X = _inputs(rows)
    return (lambda: net.forward(X)), 1


def forward_torch(rows):
    """The ``nn.Sequential`` under ``torch.no_grad()``."""
    import torch

    torch.set_num_threads(2)
    case = INFERENCE_CASE
    model = torch.nn.Sequential(torch.nn.Linear(case.sizes[0], case.sizes[1], dtype=torch.float64),
                                torch.nn.ReLU(),
                                torch.nn.Linear(case.sizes[1], case.sizes[2], dtype=torch.float64))
    X = torch.from_numpy(_inputs(rows))

    def run():
        with torch.no_grad():
            model(X)

    return run, 1


def forward_sklearn(rows):
    """``MLPRegressor.predict`` (after one partial_fit, which sets the weights up)."""
    from sklearn.neural_network import MLPRegressor

    case = INFERENCE_CASE
    model = MLPRegressor(hidden_layer_sizes=case.sizes[1:-1], activation="relu", solver="sgd",
                         random_state=0)
    model.partial_fit(*batches(case, 1))
    X = _inputs(rows)
    return (lambda: model.predict(X)), 1


def _inputs(rows):
    return np.random.default_rng(1).standard_normal((rows, INFERENCE_CASE.sizes[0]))


FORWARDS = {"fastnn": forward_fastnn, "torch": forward_torch, "sklearn": forward_sklearn}
