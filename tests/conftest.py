"""Settings shared by the tests.

Hypothesis profiles: `ci` drops the per-example deadline (a loaded 2-core machine makes timings
noisy) and prints the blob that replays a failure. It is loaded when CI is set; HYPOTHESIS_PROFILE
names another. Hypothesis is optional: without it its tests skip themselves.

PyTorch, where the parity tests have imported it, runs on one thread.

Ctrl-C: a shell without job control starts a background command (``bash .ci/run &``, nohup) with
SIGINT ignored, which Python then leaves ignored and every process it starts inherits: the tests
of Ctrl-C (test_ctrl_c, test_streams, test_sklearn) would see no KeyboardInterrupt. The suite
takes Python's usual handler back, which the processes the tests start then get by default.
"""
import os
import signal
import sys

import pytest

try:
    from hypothesis import settings
except ImportError:
    settings = None

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

if settings is not None:
    settings.register_profile("ci", deadline=None, print_blob=True)
    default = "ci" if os.environ.get("CI") else "default"
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", default))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """torch on one thread: on a busy machine the wake-ups of its thread pool cost ~10 ms per
    training step of the parity tests' tiny networks, twenty times the step itself."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
