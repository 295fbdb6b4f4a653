"""Hyperparameter searches that stop hopeless trials early: `OptunaPruning`, a callback of
`fastnn.training.fit` that reports each epoch to an Optuna trial and prunes it.

An Optuna study whose objective trains a network with this callback stops each trial as soon as
its pruner (median, successive halving, Hyperband) judges it worse than the others at the same
epoch; the searches of `fastnn.sklearn` estimators with scikit-learn's tools run on a Dask
cluster as they are (see `fastnn.cluster`). Optuna itself is imported only when a trial is
pruned: a trial object comes from an installed Optuna.
"""
from fastnn.callbacks import Callback

__all__ = ["OptunaPruning"]


class OptunaPruning(Callback):
    """Report an epoch's metric to an Optuna trial, and prune the trial when Optuna says so.

    Parameters
    ----------
    trial : optuna.trial.Trial
    monitor : str, default "val_loss"
        The entry of the epoch's logs to report (``"loss"``, ``"val_loss"``,
        ``"val_accuracy"``); the study's direction must suit it.

    Raises
    ------
    optuna.TrialPruned
        From ``fit``, after the epoch the pruner stops (the network then holds that epoch's
        weights): the objective lets it propagate to Optuna.
    KeyError
        If an epoch's logs do not hold ``monitor`` (``val_loss`` needs validation data).

    Examples
    --------
    An objective that prunes per epoch (``examples/optuna_pruning.py`` runs one)::

        def objective(trial):
            net = fastnn.MLP([64, trial.suggest_int("hidden", 8, 128), 10],
                             output_activation="softmax", loss="cross_entropy", seed=0)
            history = net.fit(X, y, epochs=30, validation_data=(X_val, y_val),
                              callbacks=[OptunaPruning(trial)])
            return history.val_loss[-1]

        optuna.create_study(pruner=optuna.pruners.MedianPruner()).optimize(objective, 20)
    """

    def __init__(self, trial, monitor="val_loss"):
        if not all(hasattr(trial, name) for name in ("report", "should_prune")):
            raise TypeError(f"trial must be an Optuna trial, got {type(trial).__name__}")
        self.trial, self.monitor = trial, monitor

    def on_epoch_end(self, epoch, logs):
        """Report ``logs[monitor]`` as the trial's value at step ``epoch``; raise
        ``optuna.TrialPruned`` if the trial should stop."""
        if self.monitor not in logs:
            raise KeyError(f"OptunaPruning watches {self.monitor!r}, which this fit does not "
                           f"measure (its logs: {sorted(logs)}); validation needs "
                           f"validation_data or validation_split")
        self.trial.report(float(logs[self.monitor]), epoch)
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.monitor} "
                                     f"{logs[self.monitor]:.6g})")
