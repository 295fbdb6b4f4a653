"""The fits tests/test_distributed.py runs under ``mpiexec``, each process on its shard, and
compares with single-process fits on all the rows.

Run as ``mpiexec -n R python distributed_worker.py SIZES OUT``: SIZES the rows of each rank's
shard (``"5,13,2"``), OUT the .npz file rank 0 writes: for each case its final parameters, the
loss and validation loss per epoch, its best epoch, and whether every rank ended with the same
optimizer state bit for bit; and the errors every rank raised on bad input.
"""
import sys

import numpy as np

import fastnn

# name: (optimizer, fit's settings, with sample weights, with validation on rank 0)
CASES = {
    "sgd-momentum": (lambda: fastnn.SGD(lr=0.05, momentum=0.9, nesterov=True),
                     {"batch_size": 8, "shuffle": True, "seed": 3}, False, False),
    "adam": (lambda: fastnn.Adam(lr=0.01),
             {"batch_size": 7, "shuffle": True, "seed": 4, "clip_grad_norm": 0.5}, True, False),
    "adam-in-order": (lambda: fastnn.Adam(lr=0.02),
                      {"batch_size": 6, "shuffle": False}, True, False),
    "early-stopping": (lambda: fastnn.SGD(lr=0.5, momentum=0.5),
                       {"batch_size": 5, "shuffle": True, "seed": 5, "early_stopping": True,
                        "patience": 2}, False, True),
}
EPOCHS = 12


def data(n):
    """n rows of 5 inputs, 3 classes, sample weights; and 12 validation rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n + 12, 5))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 1)
    s = rng.uniform(0.2, 2.0, size=n)
    return X[:n], y[:n], s, (X[n:], y[n:])


def network():
    return fastnn.MLP([5, 16, 3], activation="tanh", output_activation="softmax",
                      loss="cross_entropy", l2=1e-3, seed=0)


def fit_arguments(name, rows, n):
    """The network, data and settings of a case, for the rows ``rows`` of ``n``."""
    make_optimizer, settings, weighted, validated = CASES[name]
    X, y, s, validation = data(n)
    return network(), X[rows], y[rows], dict(
        settings, optimizer=make_optimizer(), epochs=EPOCHS,
        sample_weight=s[rows] if weighted else None,
        validation_data=validation if validated else None)


def refusals(comm):
    """The errors each rank raises when one rank's data, or the network, are unfit."""
    from fastnn import distributed

    X, y, _, _ = data(4 * comm.size)
    rows = distributed.shard(len(X), comm)
    errors = []
    bad = X[rows][:, :4] if comm.rank == comm.size - 1 else X[rows]
    dropout = fastnn.MLP([5, 8, 3], output_activation="softmax", loss="cross_entropy",
                         dropout=0.5, seed=0)
    # the last: epochs that differ by rank (the processes would wait for each other forever)
    for net, inputs, epochs in ((network(), bad, 1), (dropout, X[rows], 1),
                                (network(), X[rows], 1 + comm.rank)):
        try:
            distributed.fit(net, inputs, y[rows], comm=comm, epochs=epochs)
            errors.append("no error")
        except (ValueError, TypeError) as error:
            errors.append(f"{type(error).__name__}: {error}")
    return errors


def main(sizes, out):
    from mpi4py import MPI

    from fastnn import distributed

    comm = MPI.COMM_WORLD
    assert comm.size == len(sizes), (comm.size, sizes)
    lo = sum(sizes[:comm.rank])
    rows = slice(lo, lo + sizes[comm.rank])
    results = {}
    for name in CASES:
        net, X, y, settings = fit_arguments(name, rows, sum(sizes))
        optimizer = settings["optimizer"]
        history = distributed.fit(net, X, y, comm=comm, **settings)
        state = optimizer.state_dict()
        vectors = np.concatenate([np.ravel(state[k]) for k in sorted(state) if k != "lr"])
        same = all(np.array_equal(v, vectors) for v in comm.allgather(vectors))
        results[f"{name}/params"] = net.params
        results[f"{name}/loss"] = np.array(history.loss)
        results[f"{name}/val_loss"] = np.array(history.val_loss)
        results[f"{name}/best_epoch"] = history.best_epoch
        results[f"{name}/same_state"] = same
    errors = comm.gather(refusals(comm), root=0)
    if comm.rank == 0:
        np.savez(out, errors=np.array(errors), **results)


if __name__ == "__main__":
    main([int(size) for size in sys.argv[1].split(",")], sys.argv[2])
