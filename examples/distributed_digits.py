"""Data-parallel training of a digits classifier over MPI, each process on its own shard.

    pip install "fastnn-cpu[mpi]"
    mpiexec -n 2 python examples/distributed_digits.py

Every process loads the digits and keeps its shard of the training rows (in a real run each
would read only its own file); rank 0 holds the validation rows, stops early and prints. The
network every process ends with is the one a single process trains on all the training rows
(`python examples/distributed_digits.py` without mpiexec runs that one process).
"""
import numpy as np

import fastnn
from fastnn import distributed
from fastnn.datasets import load_digits

comm = distributed.world()
X, y = load_digits()
X = X / 16.0
order = np.random.default_rng(0).permutation(len(X))
train, validation = order[:1400], order[1400:]
mine = train[distributed.shard(len(train), comm)]

net = fastnn.MLP([64, 128, 10], activation="relu", output_activation="softmax",
                 loss="cross_entropy", seed=0)
history = distributed.fit(net, X[mine], y[mine], comm=comm, optimizer=fastnn.Adam(lr=1e-3),
                          epochs=30, batch_size=64, seed=0, early_stopping=True, patience=5,
                          validation_data=(X[validation], y[validation]) if comm.rank == 0
                          else None, verbose=2)
if comm.rank == 0:
    accuracy = np.mean(net.predict(X[validation]).argmax(axis=1) == y[validation])
    print(f"processes: {comm.size}, training rows: {len(train)}; kept epoch "
          f"{history.best_epoch + 1}, validation accuracy {accuracy:.3f}")
