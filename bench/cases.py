"""What the benchmarks measure: the training-step cases, the growth sweep, the end-to-end and
inference settings, and the targets. Shared by bench/compare.py and the pytest-benchmark suite
(bench/test_bench.py), so both time exactly the same work.

Every training case is squared error (fastnn's: summed over the outputs, mean over the samples),
plain SGD, identity output, and the same dtype in every peer.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Case:
    """One network and batch to time a training step on.

    Attributes
    ----------
    name : str
        Short label used in tables and on the command line.
    sizes : tuple of int
        Layer widths, the input first.
    activation : str
        Hidden activation, by fastnn's name ("sigmoid" or "relu").
    batch : int
        Rows per step.
    dtype : str
        "float32" or "float64", the same in every peer.
    lr : float
        SGD learning rate; small enough that thousands of steps stay finite.
    """

    name: str
    sizes: tuple
    activation: str
    batch: int
    dtype: str
    lr: float = 1e-3


CASES = (
    Case("notes-1", (1, 2, 2), "sigmoid", 1, "float64", lr=0.1),
    Case("notes-64", (1, 2, 2), "sigmoid", 64, "float64", lr=0.1),
    Case("digits", (64, 128, 10), "relu", 32, "float64"),
    Case("mid", (256, 512, 512, 10), "relu", 128, "float32"),
    Case("large", (784, 1024, 1024, 10), "relu", 256, "float32"),
)
CASES_BY_NAME = {case.name: case for case in CASES}

# Growth sweep: two hidden layers of the same width w, input w, 10 outputs, batch 128, float32.
GROWTH_WIDTHS = (16, 32, 64, 128, 256, 512, 1024, 2048)


def growth_case(width):
    """The growth sweep's case for hidden width ``width``."""
    return Case(f"w{width}", (width, width, width, 10), "relu", 128, "float32")


def batches(case, n_batches, seed=0):
    """Random inputs and targets for ``n_batches`` consecutive batches of ``case``.

    Returns
    -------
    X : ndarray of shape (n_batches * batch, sizes[0])
    Y : ndarray of shape (n_batches * batch, sizes[-1])
    """
    rng = np.random.default_rng(seed)
    rows = n_batches * case.batch
    # drawn in the case's dtype directly: no float64 temporary inflates a peak-RSS measurement
    X = rng.standard_normal((rows, case.sizes[0]), dtype=case.dtype)
    Y = rng.standard_normal((rows, case.sizes[-1]), dtype=case.dtype)
    return X, Y


# End to end on scikit-learn's digits: X / 16, stratified 75/25 split; 64-128-10 relu, softmax
# cross-entropy, Adam, no early stopping, no L2, float64 in every peer.
DIGITS = {"hidden": 128, "lr": 1e-3, "batch": 32, "epochs": 40, "split_seed": 0, "seed": 0}

# Inference: forward of the digits-sized net on this many rows.
INFERENCE_ROWS = (1, 10_000)

# Targets: (label, numerator, denominator, bound). Each entry of the comparison table is named
# "case/peer"; the ratio is fastnn's median over the peer's, measured in the same run.
TARGETS = (
    ("notes-1 in fit / PyTorch step", "notes-1/fastnn-fit", "notes-1/torch", 1 / 1000),
    ("notes-1 train_step / PyTorch step", "notes-1/fastnn-step", "notes-1/torch", 1 / 100),
    ("digits in fit / GEMM bound", "digits/fastnn-fit", "digits/gemm", 1.25),
    ("digits in fit / PyTorch", "digits/fastnn-fit", "digits/torch", 1 / 8),
    ("mid in fit / GEMM bound", "mid/fastnn-fit", "mid/gemm", 1.10),
    ("mid in fit / GEMM bound in SciPy's BLAS (fastnn's)", "mid/fastnn-fit", "mid/gemm-scipy",
     1.10),
    ("mid in fit / PyTorch", "mid/fastnn-fit", "mid/torch", 0.75),
    ("large in fit / GEMM bound", "large/fastnn-fit", "large/gemm", 1.05),
    ("large in fit / GEMM bound in SciPy's BLAS (fastnn's)", "large/fastnn-fit", "large/gemm-scipy",
     1.05),
    ("large in fit / PyTorch", "large/fastnn-fit", "large/torch", 0.85),
    ("digits end to end / scikit-learn", "e2e/fastnn", "e2e/sklearn", 0.10),
    ("digits end to end / PyTorch", "e2e/fastnn", "e2e/torch", 0.10),
    ("forward 1 row / PyTorch no_grad", "forward-1/fastnn", "forward-1/torch", 1 / 10),
)
MIN_DIGITS_ACCURACY = 0.97
