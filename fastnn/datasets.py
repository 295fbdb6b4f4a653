"""Data sets that ship inside fastnn."""
import gzip
from importlib.resources import files

import numpy as np

__all__ = ["load_digits"]


def load_digits():
    """The UCI handwritten digits: 1797 images of 8x8 pixels in 0..16, digits 0 to 9.

    The data are the copy bundled by scikit-learn (CC BY 4.0, E. Alpaydin and C. Kaynak, UCI
    Machine Learning Repository); see ``fastnn/data/README.txt``.

    Returns
    -------
    X : ndarray of shape (1797, 64), float64
        Pixel intensities, row by row, in 0..16.
    y : ndarray of shape (1797,), int64
        The digit each image shows.
    """
    with files("fastnn").joinpath("data", "digits.csv.gz").open("rb") as raw:
        with gzip.open(raw, "rt") as f:
            table = np.loadtxt(f, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)
