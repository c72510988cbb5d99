#!/usr/bin/env bash
# Compile lb's per-request path with mypyc in this checkout (setup.py), or remove
# the compiled modules again (--clean): the checkout runs pure Python then.
set -euo pipefail
cd "$(dirname "$0")/.."
find lb -name '*.cpython-*.so' -delete
rm -rf build/lb._compiled build/temp.* build/lib.* build/__native*
mkdir -p build
[ "${1:-}" = "--clean" ] && { echo "lb runs pure Python"; exit 0; }
LB_COMPILE=1 .venv/bin/python setup.py -q build_ext --inplace >build/compile.log 2>&1 \
    || { tail -n 30 build/compile.log; exit 1; }
.venv/bin/lb --version
