"""fastnn.tuning: an Optuna study whose trials report each epoch through fit's callbacks and
are pruned there."""
import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

import fastnn
from fastnn.tuning import OptunaPruning


def test_an_optuna_study_prunes_trials_per_epoch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    epochs_run = []

    def objective(trial):
        # the learning rates of the first trials are good ones, the later ones hopeless
        lr = [1e-2, 2e-2, 1e-2, 1e-7, 1e-7, 1e-7][trial.number]
        net = fastnn.MLP([4, 16, 2], activation="tanh", output_activation="softmax",
                         loss="cross_entropy", seed=0)
        history = fastnn.History()
        try:
            history = net.fit(X[:200], y[:200], fastnn.Adam(lr=lr), epochs=10, seed=0,
                              validation_data=(X[200:], y[200:]),
                              callbacks=[OptunaPruning(trial),
                                         lambda epoch, logs: history.loss.append(logs["loss"])])
        finally:
            epochs_run.append(history.epochs)
        return history.val_loss[-1]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=3))
    study.optimize(objective, n_trials=6)
    states = [trial.state for trial in study.trials]
    assert states[:3] == [optuna.trial.TrialState.COMPLETE] * 3
    assert states[3:] == [optuna.trial.TrialState.PRUNED] * 3
    assert epochs_run[:3] == [10] * 3 and max(epochs_run[3:]) < 10
    assert study.trials[3].last_step is not None and study.trials[3].last_step < 9


def test_optuna_pruning_needs_the_metric_it_watches():
    study = optuna.create_study()
    trial = study.ask()
    net = fastnn.MLP([2, 1], seed=0)
    with pytest.raises(KeyError, match="OptunaPruning watches 'val_loss'"):
        net.fit(np.zeros((4, 2)), np.zeros(4), epochs=1, callbacks=[OptunaPruning(trial)])
    with pytest.raises(TypeError, match="must be an Optuna trial"):
        OptunaPruning(object())
