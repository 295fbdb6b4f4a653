"""Training many independent networks at once, on a pool of threads.

Design
------
A fastnn epoch runs in compiled code without the GIL, so K networks trained in K threads use the
cores together; each runs its products on one BLAS thread (``n_threads=1``), so that two fits on
two cores never become 2 x 2 threads. The data is checked once and shared read-only by
all the fits, without copies. Each network has its own optimizer and seed, so the result of each
fit is the one `fastnn.training.fit` gives alone, whatever the number of threads (up to the
rounding of a product split between BLAS threads or not).
"""
import os
from concurrent.futures import ThreadPoolExecutor

from fastnn._validation import check_int
from fastnn.network import MLP
from fastnn.optimizers import Adam
from fastnn.training import check_optimizer, fit


def cores():
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _check_per_net(name, values, K):
    """``values`` as a list of K, or None."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a sequence with one entry per network, got {values!r}")
    if len(values) != K:
        raise ValueError(f"{name} has {len(values)} entries for {K} networks")
    return list(values)


def fit_many(nets, X, Y=None, optimizers=None, seeds=None, sample_weight=None, n_jobs=None,
             **options):
    """Train several independent networks on the same data, concurrently in threads.

    Parameters
    ----------
    nets : sequence of fastnn.MLP
        Distinct networks that take the same data: the same input width, output width, dtype
        and target form (labels or matrix) as the first.
    X : array-like of shape (N, n_in), or CheckedData
    Y : array-like of shape (N, n_out), or (N,) integer labels for softmax cross-entropy
    optimizers : sequence of fastnn.Optimizer, optional
        One distinct optimizer per network; a new ``Adam()`` each by default.
    seeds : sequence of int or None, optional
        One seed per network (see `fastnn.training.fit`); None for all by default.
    sample_weight : array-like of shape (N,), optional
    n_jobs : int, optional
        Threads (>= 1, or -1 for all the cores); by default as many as networks or cores,
        whichever is fewer. With more than one, each fit runs its products on one BLAS thread.
    **options
        The other arguments of `fastnn.training.fit` (``epochs``, ``batch_size``,
        ``validation_data``, ...), the same for every network.

    Returns
    -------
    list of fastnn.History
        One per network, in the order of ``nets``.

    Raises
    ------
    Exception
        The error of the first network (in the order of ``nets``) whose fit failed, its message
        prefixed with ``nets[i]``; the other fits still run to their end.

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> X, y = np.random.default_rng(0).normal(size=(100, 4)), np.arange(100) % 3
    >>> nets = [fastnn.MLP([4, h, 3], output_activation="softmax", loss="cross_entropy",
    ...                    seed=0) for h in (8, 16)]
    >>> histories = fastnn.fit_many(nets, X, y, epochs=2, seeds=[0, 1])
    >>> len(histories)
    2
    """
    for name in ("optimizer", "seed"):
        if name in options:
            raise TypeError(f"fit_many takes one {name} per network: give {name}s=[...]")
    nets = list(nets) if not isinstance(nets, MLP) else [nets]
    if not nets:
        raise ValueError("nets is empty: give at least one network")
    for i, net in enumerate(nets):
        if not isinstance(net, MLP):
            raise TypeError(f"nets[{i}] is a {type(net).__name__}, not a fastnn.MLP")
    if len({id(net) for net in nets}) != len(nets):
        raise ValueError("nets holds the same network twice: each fit needs its own network")
    K = len(nets)
    optimizers = _check_per_net("optimizers", optimizers, K)
    if optimizers is None:
        optimizers = [Adam() for _ in nets]
    for i, optimizer in enumerate(optimizers):
        try:
            check_optimizer(optimizer)
        except TypeError as error:
            raise TypeError(f"optimizers[{i}]: {error}") from None
    if len({id(optimizer) for optimizer in optimizers}) != K:
        raise ValueError("optimizers holds the same optimizer twice: each network needs its own")
    seeds = _check_per_net("seeds", seeds, K) or [None] * K
    if n_jobs is None:
        n_jobs = min(K, cores())
    elif n_jobs == -1:
        n_jobs = cores()
    else:
        n_jobs = check_int("n_jobs", n_jobs, 1)
    data = nets[0].check_data(X, Y, sample_weight)
    for i, net in enumerate(nets[1:], 1):
        try:
            net.check_data(data)
        except (TypeError, ValueError) as error:
            raise type(error)(f"nets[{i}] does not take the data of nets[0]: {error}") from None

    if n_jobs > 1:
        options.setdefault("n_threads", 1)

    def one(i):
        return fit(nets[i], data, None, optimizer=optimizers[i], seed=seeds[i], **options)

    if n_jobs == 1:
        outcomes = [_outcome(one, i) for i in range(K)]
    else:
        with ThreadPoolExecutor(max_workers=min(n_jobs, K)) as pool:
            outcomes = list(pool.map(lambda i: _outcome(one, i), range(K)))
    for i, (_, error) in enumerate(outcomes):
        if error is not None:
            raise type(error)(f"nets[{i}]: {error}") from error
    return [history for history, _ in outcomes]


def _outcome(function, i):
    """(function(i), None), or (None, the exception it raised)."""
    try:
        return function(i), None
    except Exception as error:  # reported by fit_many once every fit has ended
        return None, error
