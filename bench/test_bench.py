"""pytest-benchmark suite: the cases of bench/cases.py, each peer, in one process.

Run with ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest bench/`` (not part of
the tests, which never time anything). Every peer here shares one process, so NumPy's, SciPy's and
torch's thread pools coexist; bench/compare.py gives each (case, peer) its own process and is the
source of the published ratios. This suite is for quick, local before/after comparisons
(``--benchmark-save``, ``--benchmark-compare``).
"""
import pytest

from cases import CASES, INFERENCE_ROWS
from endtoend import FORWARDS
from peers import STEP_PEERS


@pytest.mark.parametrize("peer", list(STEP_PEERS))
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_step(benchmark, case, peer):
    run, steps = STEP_PEERS[peer](case)
    benchmark.extra_info["steps_per_call"] = steps
    benchmark(run)


@pytest.mark.parametrize("peer", list(FORWARDS))
@pytest.mark.parametrize("rows", INFERENCE_ROWS)
def test_forward(benchmark, rows, peer):
    run, _ = FORWARDS[peer](rows)
    benchmark(run)
