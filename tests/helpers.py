"""Helpers shared by the test modules: per-dtype tolerances, the settings every sweep covers,
targets that suit a loss, the batches that `fit` visits, and code run in a new interpreter."""
import subprocess
import sys
import textwrap

import numpy as np

from fastnn import registry

DTYPES = (np.float32, np.float64)
# float32 keeps ~7 significant digits: sums of a few dozen rounded products agree with a float64
# reference to ~1e-5 relative; float64 results must agree to the last few bits.
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
# The names of the two specializations of each fused-type kernel in fastnn._kernels.
CTYPE = {np.float32: "float", np.float64: "double"}

# The sweeps run over the registry: a new activation or loss is tested by every sweep at once.
HIDDEN_ACTIVATIONS = registry.hidden_activations()
OUTPUT_LOSS_PAIRS = tuple((output, name) for name, loss in registry.LOSSES.items()
                          for output in loss.outputs)


def make_targets(rng, n, n_out, output_activation, loss):
    """Random targets of shape (n, n_out) that suit the output activation and loss: any real
    numbers for identity, values in [0, 1] for sigmoid and exp (rates), probability rows for
    softmax; counts for poisson."""
    if loss == "poisson":
        return rng.poisson(2.0, size=(n, n_out)).astype(np.float64)
    if output_activation == "identity":
        return rng.normal(size=(n, n_out))
    if output_activation == "softmax":
        return rng.dirichlet(np.ones(n_out), size=n)
    return rng.uniform(size=(n, n_out))


def batches(X, Y, batch_size):
    """The consecutive (X, Y) batches of `fit` with shuffle=False; the last may be smaller."""
    return [(X[start:start + batch_size], Y[start:start + batch_size])
            for start in range(0, len(X), batch_size)]


def flat_gradient(dW, db):
    """The gradients of `MLP.gradients` as one vector laid out like `MLP.params`."""
    return np.concatenate([g.ravel() for pair in zip(dW, db) for g in pair])


def run_python(code, cwd):
    """Run ``code`` (dedented) in a new Python interpreter working in the folder ``cwd``: the
    finished process, its output captured as text."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)
