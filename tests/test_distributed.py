"""Data-parallel training over MPI: `fastnn.distributed.fit` under ``mpiexec -n 2`` and ``-n 3``
(uneven shards) ends with the weights of the single-process fit on the same global batches, to
1e-12 in float64 (only the order of the sums differs), for SGD with momentum and for Adam, with
and without shuffling, sample weights, clipping, a last partial batch and early stopping on rank 0.

Skipped, with the reason, without mpi4py or an ``mpiexec`` (``pip install "fastnn-cpu[mpi]"``
installs both). Each ``mpiexec`` run starts its processes once and runs every case in them.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastnn

import distributed_worker as worker

pytest.importorskip("mpi4py", reason="data-parallel training needs mpi4py (the mpi extra)")
# mpiexec of the environment's MPI (the mpich wheel puts it beside the interpreter), else PATH's
MPIEXEC = next((path for path in (os.path.join(os.path.dirname(sys.executable), "mpiexec"),
                                  shutil.which("mpiexec"))
                if path and os.access(path, os.X_OK)), None)
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec beside the interpreter or "
                                                        "on PATH (the mpi extra installs one)")
TOLERANCE = 1e-12


def run_ranks(sizes, tmp_path):
    """Run the worker's fits under mpiexec with one process per shard size; rank 0's results."""
    out = tmp_path / "results.npz"
    here = os.path.dirname(os.path.abspath(__file__))
    package = os.path.dirname(os.path.dirname(fastnn.__file__))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([package, here]),
                       OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    command = [MPIEXEC, "-n", str(len(sizes)), sys.executable, os.path.join(here,
                                                                            "distributed_worker.py"),
               ",".join(map(str, sizes)), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return np.load(out)


def single_process(name, n):
    """The case's fit in this process on all n rows."""
    net, X, y, settings = worker.fit_arguments(name, slice(0, n), n)
    history = net.fit(X, y, **settings)
    return net, history


@pytest.fixture(scope="module", params=[(23, 18), (5, 13, 2)], ids=["n2", "n3-uneven"])
def ranks(request, tmp_path_factory):
    sizes = request.param
    return sizes, run_ranks(sizes, tmp_path_factory.mktemp("mpi"))


@pytest.mark.parametrize("name", list(worker.CASES))
def test_the_weights_are_the_single_process_fits(ranks, name):
    sizes, results = ranks
    net, history = single_process(name, sum(sizes))
    params = results[f"{name}/params"]
    assert np.max(np.abs(params - net.params)) <= TOLERANCE * max(1.0, np.max(np.abs(net.params)))
    np.testing.assert_allclose(results[f"{name}/loss"], history.loss, rtol=1e-12)
    np.testing.assert_allclose(results[f"{name}/val_loss"], history.val_loss, rtol=1e-12)
    assert int(results[f"{name}/best_epoch"]) == history.best_epoch
    # every rank made the same updates: the optimizer's state is equal bit for bit everywhere
    assert bool(results[f"{name}/same_state"])


def test_early_stopping_stopped_before_the_last_epoch(ranks):
    _, results = ranks
    assert len(results["early-stopping/loss"]) < worker.EPOCHS


def test_one_rank_s_bad_input_is_an_error_on_every_rank(ranks):
    sizes, results = ranks
    errors = results["errors"]
    last = len(sizes) - 1
    for rank, (width, dropout, epochs) in enumerate(errors):
        if rank == last:
            assert width == "ValueError: X has 4 columns, the network expects 5", width
        else:
            assert width == (f"ValueError: rank {last} refused its data or settings "
                             f"(ValueError: X has 4 columns, the network expects 5)"), width
        assert "refuses dropout layers" in dropout, dropout
        assert epochs == (f"ValueError: the processes must train the same network with the "
                          f"same settings; its epochs differs, by rank: "
                          f"{list(range(1, len(sizes) + 1))}"), epochs



def test_the_command_line_trains_the_single_process_model(tmp_path):
    pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 3))
    label = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    table = tmp_path / "table.csv"
    table.write_text("a,b,c,label\n" + "".join(f"{a},{b},{c},{y}\n"
                                               for (a, b, c), y in zip(X, label)))
    package = os.path.dirname(os.path.dirname(fastnn.__file__))
    environment = dict(os.environ, PYTHONPATH=package, OPENBLAS_NUM_THREADS="1")
    outputs = {}
    for ranks in (1, 2):
        model = tmp_path / f"model{ranks}.npz"
        command = [sys.executable, "-m", "fastnn", "train", str(table), "--epochs", "8",
                   "--quiet", "--save", str(model)]
        if ranks > 1:
            command = [MPIEXEC, "-n", str(ranks), *command, "--distributed"]
        done = subprocess.run(command, capture_output=True, text=True, env=environment,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs[ranks] = done.stdout.replace(str(model), "MODEL")
    # rank 0 alone prints: the same report, to the digits shown
    assert outputs[2] == outputs[1]
    single = fastnn.TabularModel.load(tmp_path / "model1.npz").network.params
    parallel = fastnn.TabularModel.load(tmp_path / "model2.npz").network.params
    assert np.max(np.abs(parallel - single)) <= TOLERANCE * max(1.0, np.max(np.abs(single)))
