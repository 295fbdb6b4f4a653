"""The held-out metrics of a classifier and of a regressor, in NumPy.

Each one is defined as scikit-learn's function of the same name (the tests hold them to it), so
the numbers `fastnn train`, `fastnn evaluate` and `fastnn info` print mean what people expect:

- classification, on integer class codes: `accuracy`, `balanced_accuracy` (the mean recall over
  the classes present in the true labels), `f1_macro` (the mean F1 over the classes present in the
  true or the predicted labels) and `confusion_matrix` (rows: true class, columns: predicted);
- regression: `rmse`, `mae` and `r2` (1.0 for a perfect fit of a constant target, 0.0 for an
  imperfect one, as scikit-learn's ``force_finite=True``).
"""
import numpy as np

__all__ = ["accuracy", "balanced_accuracy", "f1_macro", "confusion_matrix", "rmse", "mae", "r2",
           "classification_metrics", "regression_metrics"]


def confusion_matrix(y_true, y_pred, n_classes):
    """Counts of (true class, predicted class) pairs.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
        Class codes in 0..n_classes-1.
    n_classes : int

    Returns
    -------
    ndarray of int64, shape (n_classes, n_classes)
        ``C[i, j]`` rows of true class i predicted as class j (scikit-learn's
        ``confusion_matrix(y_true, y_pred, labels=range(n_classes))``).
    """
    y_true, y_pred = _codes(y_true, y_pred, n_classes)
    return np.bincount(y_true * n_classes + y_pred,
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def accuracy(y_true, y_pred):
    """The fraction of rows whose predicted class is the true one.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (N,)

    Returns
    -------
    float
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def balanced_accuracy(y_true, y_pred, n_classes):
    """The mean over the classes present in ``y_true`` of their recall (scikit-learn's
    ``balanced_accuracy_score``).

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
        Class codes in 0..n_classes-1.
    n_classes : int

    Returns
    -------
    float
    """
    counts = confusion_matrix(y_true, y_pred, n_classes)
    present = counts.sum(axis=1) > 0
    return float(np.mean(np.diag(counts)[present] / counts.sum(axis=1)[present]))


def f1_macro(y_true, y_pred, n_classes):
    """The mean F1 score over the classes present in ``y_true`` or ``y_pred`` (scikit-learn's
    ``f1_score(average="macro")``): per class ``2 TP / (2 TP + FP + FN)``.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
        Class codes in 0..n_classes-1.
    n_classes : int

    Returns
    -------
    float
    """
    counts = confusion_matrix(y_true, y_pred, n_classes)
    true_positives = np.diag(counts)
    # 2 TP + FP + FN: each class's true rows plus its predicted rows
    denominator = counts.sum(axis=1) + counts.sum(axis=0)
    present = denominator > 0
    return float(np.mean(2 * true_positives[present] / denominator[present]))


def rmse(y_true, y_pred):
    """The root of the mean squared error.

    Parameters
    ----------
    y_true, y_pred : array-like of float, shape (N,)

    Returns
    -------
    float
    """
    y_true, y_pred = _pair(y_true, y_pred, float)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true, y_pred):
    """The mean absolute error.

    Parameters
    ----------
    y_true, y_pred : array-like of float, shape (N,)

    Returns
    -------
    float
    """
    y_true, y_pred = _pair(y_true, y_pred, float)
    return float(np.mean(np.abs(y_true - y_pred)))


def r2(y_true, y_pred):
    """The coefficient of determination ``1 - SS_res / SS_tot`` (scikit-learn's ``r2_score``).

    Parameters
    ----------
    y_true, y_pred : array-like of float, shape (N,)

    Returns
    -------
    float
        For a constant ``y_true`` (SS_tot = 0): 1.0 if the predictions equal it, else 0.0,
        also for a single row (where scikit-learn returns NaN and warns).
    """
    y_true, y_pred = _pair(y_true, y_pred, float)
    residual = np.sum((y_true - y_pred) ** 2)
    total = np.sum((y_true - y_true.mean()) ** 2)
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return float(1 - residual / total)


def classification_metrics(y_true, y_pred, n_classes):
    """Every classification metric at once.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
        Class codes in 0..n_classes-1.
    n_classes : int

    Returns
    -------
    dict
        ``rows``, ``accuracy``, ``balanced_accuracy``, ``f1_macro`` and ``confusion_matrix`` (a
        list of lists of int, ready for JSON).
    """
    return {"rows": len(y_true), "accuracy": accuracy(y_true, y_pred),
            "balanced_accuracy": balanced_accuracy(y_true, y_pred, n_classes),
            "f1_macro": f1_macro(y_true, y_pred, n_classes),
            "confusion_matrix": confusion_matrix(y_true, y_pred, n_classes).tolist()}


def regression_metrics(y_true, y_pred):
    """Every regression metric at once.

    Parameters
    ----------
    y_true, y_pred : array-like of float, shape (N,)

    Returns
    -------
    dict
        ``rows``, ``rmse``, ``mae`` and ``r2``.
    """
    return {"rows": len(y_true), "rmse": rmse(y_true, y_pred), "mae": mae(y_true, y_pred),
            "r2": r2(y_true, y_pred)}


def _pair(y_true, y_pred, dtype=None):
    """``y_true`` and ``y_pred`` as 1-D arrays of one length, at least one row."""
    y_true, y_pred = np.asarray(y_true, dtype=dtype), np.asarray(y_pred, dtype=dtype)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred must be 1-D of one length, at least 1, got shapes "
                         f"{y_true.shape} and {y_pred.shape}")
    return y_true, y_pred


def _codes(y_true, y_pred, n_classes):
    """``y_true`` and ``y_pred`` as int64 class codes in 0..n_classes-1."""
    y_true, y_pred = _pair(y_true, y_pred)
    for name, codes in (("y_true", y_true), ("y_pred", y_pred)):
        if codes.dtype.kind not in "iu" or codes.min() < 0 or codes.max() >= n_classes:
            raise ValueError(f"{name} must hold class codes in 0..{n_classes - 1}")
    return y_true.astype(np.int64), y_pred.astype(np.int64)
