"""Settings shared by the tests.

Hypothesis profiles: `ci` drops the per-example deadline (a loaded 2-core machine makes timings
noisy) and prints the blob that replays a failure. It is loaded when CI is set; HYPOTHESIS_PROFILE
names another. Hypothesis is optional: without it its tests skip themselves.
"""
import os

try:
    from hypothesis import settings
except ImportError:
    settings = None

if settings is not None:
    settings.register_profile("ci", deadline=None, print_blob=True)
    default = "ci" if os.environ.get("CI") else "default"
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", default))
