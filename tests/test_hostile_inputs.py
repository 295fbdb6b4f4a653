"""Numbers too large for the machine are refused with a ValueError that names the argument, never
an OverflowError or a silent wrap-around in the compiled code: a real given as an int beyond the
largest float (10**400), an integer of 2**63 or more (beyond Py_ssize_t), and a count just above
the bound that keeps the compiled code's sums from overflowing. A network larger than the memory
is refused with a MemoryError that says how much it needs."""
import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn._validation import MAX_INT, MAX_WIDTH, check_allocation, physical_memory

HUGE_INTS = [2 ** 63, 2 ** 64, 10 ** 400, MAX_INT + 1]
X = np.random.default_rng(0).normal(size=(6, 3))
Y = np.random.default_rng(1).normal(size=(6, 2))


def net():
    return fastnn.MLP([3, 4, 2], seed=0)


# (name in the message, call with the value)
REAL_ARGUMENTS = [
    ("l2", lambda v: fastnn.MLP([3, 2], l2=v)),
    ("dropout", lambda v: fastnn.MLP([3, 4, 2], dropout=v)),
    ("l2", lambda v: setattr(net(), "l2", v)),
    ("l2", lambda v: fastnn.MLP.from_layers(3, [layers.Dense(2), layers.Activation("identity")],
                                            l2=v)),
    ("lr", lambda v: fastnn.SGD(lr=v)),
    ("lr", lambda v: fastnn.Adam(lr=v)),
    ("momentum", lambda v: fastnn.SGD(momentum=v)),
    ("momentum", lambda v: setattr(fastnn.SGD(), "momentum", v)),
    ("beta1", lambda v: fastnn.Adam(beta1=v)),
    ("beta2", lambda v: fastnn.Adam(beta2=v)),
    ("eps", lambda v: fastnn.Adam(eps=v)),
    ("rate", lambda v: layers.Dropout(v)),
    ("momentum", lambda v: layers.BatchNorm(momentum=v)),
    ("eps", lambda v: layers.BatchNorm(eps=v)),
    ("negative_slope", lambda v: layers.Activation("leaky_relu", negative_slope=v)),
    ("min_delta", lambda v: net().fit(X, Y, epochs=1, min_delta=v)),
    ("validation_split", lambda v: net().fit(X, Y, epochs=1, validation_split=v)),
]


@pytest.mark.parametrize("value", [10 ** 400, -10 ** 400], ids=["10**400", "-10**400"])
@pytest.mark.parametrize("name, call", REAL_ARGUMENTS,
                         ids=[f"{i}-{case[0]}" for i, case in enumerate(REAL_ARGUMENTS)])
def test_a_real_too_large_for_a_float_is_not_finite(name, call, value):
    with pytest.raises(ValueError, match=f"{name} must be finite"):
        call(value)


# (name, call, bound): layer widths are BLAS's 32-bit ints, every other count MAX_INT
INT_ARGUMENTS = [
    (r"sizes\[1\]", lambda v: fastnn.MLP([3, v, 2]), MAX_WIDTH),
    (r"sizes\[0\]", lambda v: fastnn.MLP([v, 2]), MAX_WIDTH),
    ("units", lambda v: layers.Dense(v), MAX_WIDTH),
    ("n_in", lambda v: fastnn.MLP.from_layers(v, [layers.Dense(2),
                                                  layers.Activation("identity")]), MAX_WIDTH),
    ("epochs", lambda v: net().fit(X, Y, epochs=v), MAX_INT),
    ("batch_size", lambda v: net().fit(X, Y, epochs=1, batch_size=v), MAX_INT),
    ("batch_size", lambda v: (lambda n: n.train_epoch(n.check_data(X, Y), fastnn.SGD(), v))(
        net()), MAX_INT),
    ("patience", lambda v: net().fit(X, Y, epochs=1, validation_split=0.5, patience=v), MAX_INT),
    ("verbose", lambda v: net().fit(X, Y, epochs=1, verbose=v), 2),
    ("step", lambda v: fastnn.SGD(momentum=0.9).load_state_dict(
        {"step": v, "momentum_buffer": np.zeros(3)}), MAX_INT),
]


@pytest.mark.parametrize("value", HUGE_INTS, ids=["2**63", "2**64", "10**400", "MAX_INT+1"])
@pytest.mark.parametrize("name, call, bound", INT_ARGUMENTS,
                         ids=[f"{i}-{case[0]}" for i, case in enumerate(INT_ARGUMENTS)])
def test_an_integer_too_large_is_refused_before_the_compiled_code(name, call, bound, value):
    with pytest.raises(ValueError, match=f"{name} must be <= {bound}"):
        call(value)


def test_the_largest_batch_size_runs_one_full_batch():
    # a batch size at the bound is just "all the rows": nothing overflows in the epoch loop
    network = net()
    history = network.fit(X, Y, epochs=2, batch_size=MAX_INT, optimizer=fastnn.SGD(lr=0.01))
    assert len(history.loss) == 2 and all(np.isfinite(history.loss))


def test_a_network_larger_than_the_memory_is_refused_with_its_size():
    memory = physical_memory()
    if memory is None:
        pytest.skip("this system does not report its physical memory")
    n = memory // 8 + 1
    with pytest.raises(MemoryError, match=f"a network of {n:,} parameters needs .* GiB of memory, "
                                          f"more than the .* GiB this machine has"):
        check_allocation(f"a network of {n:,} parameters", n, 8)


def test_an_allocation_within_the_memory_passes():
    check_allocation("a network of 1,000 parameters", 1000, 8)


def test_an_astronomical_allocation_is_refused_without_overflow():
    if physical_memory() is None:
        pytest.skip("this system does not report its physical memory")
    with pytest.raises(MemoryError, match="more than 1e290 GiB"):
        check_allocation("a network of 10**400 parameters", 10 ** 400, 8)
