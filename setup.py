"""Build fastnn's Cython extensions (all other metadata is in pyproject.toml).

Environment variables:
  FASTNN_DEBUG=1          turn bounds, wraparound and initialization checks back on, for debugging.
  FASTNN_SANITIZE=1       a debugging build (the checks above) compiled and linked with
                          AddressSanitizer and UndefinedBehaviorSanitizer
                          (-fsanitize=address,undefined -fno-sanitize-recover=undefined
                          -fno-omit-frame-pointer -g -O1): undefined behaviour aborts at once,
                          with its report.
  FASTNN_MARCH_NATIVE=1   compile for this machine's processor (-march=native); the wheel then
                          runs only on processors like it, so it is off by default.

A build whose flags differ from the last one's (recorded in build/fastnn-flags.txt) regenerates and
recompiles everything, so switching between these builds needs no --force.

The whole test suite under the sanitizers (CONTRIBUTING.md, "Sanitizers and valgrind"). Python
itself is not instrumented, so the sanitizers' runtimes must be preloaded into it:

  FASTNN_SANITIZE=1 python setup.py build_ext --inplace
  cd tests && LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \\
      ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \\
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 python -m pytest -q -p no:cacheprovider
  cd .. && python setup.py build_ext --inplace     # back to the normal build

A sanitized module imported without that LD_PRELOAD fails with "ASan runtime does not come first
in initial library list".
"""
import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

SANITIZE = os.environ.get("FASTNN_SANITIZE") == "1"
DEBUG = os.environ.get("FASTNN_DEBUG") == "1" or SANITIZE
if SANITIZE:
    SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    COMPILE_ARGS = ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-math-errno", *SANITIZERS]
    LINK_ARGS = SANITIZERS
else:
    # gcc's default limits on how much inlining may grow a function and the module stop it from
    # inlining the passes into the epoch loop once the row split and the data-parallel shard add
    # call sites: a notes-1 step inside fit then cost 5% more (callgrind: 709M instructions for
    # 384k steps against 676M). With these the step is within 3% of before, for a larger module.
    COMPILE_ARGS = ["-O3", "-fno-math-errno", "--param", "inline-unit-growth=400",
                    "--param", "large-function-growth=400"]
    LINK_ARGS = []
if os.environ.get("FASTNN_MARCH_NATIVE") == "1":
    COMPILE_ARGS.append("-march=native")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

# Cython and setuptools rebuild by timestamps only: after a build with other flags or directives,
# the generated C and the modules would be kept as they are, so force a full rebuild then.
FLAGS = repr((COMPILE_ARGS, LINK_ARGS, sorted(DIRECTIVES.items())))
FLAGS_FILE = os.path.join("build", "fastnn-flags.txt")
try:
    with open(FLAGS_FILE) as f:
        REBUILD = f.read() != FLAGS
except OSError:
    REBUILD = True


class build_ext(_build_ext):
    def run(self):
        self.force = self.force or REBUILD
        super().run()
        os.makedirs(os.path.dirname(FLAGS_FILE), exist_ok=True)
        with open(FLAGS_FILE, "w") as f:
            f.write(FLAGS)


extensions = [
    Extension(
        f"fastnn.{name}",
        [f"fastnn/{name}.pyx"],
        include_dirs=[numpy.get_include(), "fastnn"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=LINK_ARGS,
        # the kernels are headers: a change to any of them rebuilds every module
        depends=sorted(glob.glob("fastnn/*.pxd") + glob.glob("fastnn/*.h")),
    )
    for name in ("_blas_threads", "_checks", "_engine", "_files", "_kernels", "_rules")
]

setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES, force=REBUILD),
      cmdclass={"build_ext": build_ext})
