"""An Optuna study of fastnn networks on the digits, whose trials prune per epoch.

Each trial trains with `fastnn.tuning.OptunaPruning`, which reports the validation loss after
every epoch; the median pruner stops a trial that is worse than the median of the earlier trials
at the same epoch. Run: ``python examples/optuna_pruning.py`` (needs optuna).
"""
import numpy as np
import optuna

import fastnn
from fastnn.datasets import load_digits
from fastnn.tuning import OptunaPruning

X, y = load_digits()
X = X / 16.0
order = np.random.default_rng(0).permutation(len(y))
train, val = order[:1400], order[1400:]


def objective(trial):
    """The validation loss of a network with the trial's width and learning rate."""
    net = fastnn.MLP([64, trial.suggest_int("hidden", 8, 128, log=True), 10],
                     output_activation="softmax", loss="cross_entropy", seed=0)
    history = net.fit(X[train], y[train], fastnn.Adam(lr=trial.suggest_float("lr", 1e-4, 1e-1,
                                                                               log=True)),
                      epochs=20, batch_size=64, seed=0, validation_data=(X[val], y[val]),
                      callbacks=[OptunaPruning(trial)])
    return history.val_loss[-1]


if __name__ == "__main__":
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=3))
    study.optimize(objective, n_trials=20)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    print(f"best {study.best_params}, validation loss {study.best_value:.4f}; "
          f"{len(pruned)} of {len(study.trials)} trials pruned")
