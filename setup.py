"""Build fastnn's Cython extensions (all other metadata is in pyproject.toml).

Environment variables:
  FASTNN_DEBUG=1          turn bounds, wraparound and initialization checks back on, for debugging.
  FASTNN_MARCH_NATIVE=1   compile for this machine's processor (-march=native); the wheel then
                          runs only on processors like it, so it is off by default.
"""
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTNN_DEBUG") == "1"
COMPILE_ARGS = ["-O3", "-fno-math-errno"]
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

extensions = [
    Extension(
        f"fastnn.{name}",
        [f"fastnn/{name}.pyx"],
        include_dirs=[numpy.get_include(), "fastnn"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=COMPILE_ARGS,
    )
    for name in ("_checks", "_engine", "_kernels", "_rules")
]

setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES))
