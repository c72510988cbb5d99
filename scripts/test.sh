#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install, lint, types, unit and
# integration tests. .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "lb needs Python 3.11 or newer"'

# Real tools the tests drive: curl and openssl (clients), ip and nft (the
# multi-host fault tests build network namespaces; they need root), promtool
# (checks a /metrics scrape), Chromium and chromedriver (the farm page test),
# nginx (a PROXY protocol v2 application: tests/integration/test_farm_proxy_protocol.py).
missing=""
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
# debootstrap: tests/docker makes its offline base image with it when a Docker engine answers
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing="$missing debootstrap"
fi
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
        echo "note: not installed:$missing; the tests that need them will be skipped" >&2
    fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test,demo]'
# the third-party-style extractor plugin, installed like a user would
.venv/bin/python -m pip install -q -e plugins/lb-jwt-subject
# a test-only plugin whose extractor raises (proves plugin failures are contained)
.venv/bin/python -m pip install -q -e tests/support/plugins/lb-test-raising

echo "== ruff"
.venv/bin/ruff check lb tests bench
.venv/bin/ruff format --check lb tests bench
echo "== mypy (strict)"
.venv/bin/mypy lb
echo "== pytest: plugins/lb-jwt-subject"
LB_FARM_TESTS=1 .venv/bin/python -m pytest -q -p no:cacheprovider plugins/lb-jwt-subject/tests
# the Docker image and container farm run when a Docker engine answers (minutes)
if [ -z "${LB_DOCKER_TESTS:-}" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        export LB_DOCKER_TESTS=1
        echo "== docker: an engine answers; tests/docker builds the image and runs the farm"
    else
        echo "== docker: SKIPPED (no Docker engine answers here); tests/docker/run.sh runs it"
    fi
fi
# With arguments: those tests, on the checkout's build as it is (pure, or compiled by
# scripts/compile.sh). Without: everything on pure Python, then the unit and
# integration tests again compiled with mypyc (setup.py), where a compiled module
# behaves differently from its source (native classes, type checks at calls).
if [ $# -gt 0 ]; then
    echo "== pytest ($(.venv/bin/lb --version))"
    exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
bash scripts/compile.sh --clean >/dev/null
echo "== pytest ($(.venv/bin/lb --version))"
.venv/bin/python -m pytest -q -p no:cacheprovider
if ! command -v cc >/dev/null 2>&1 \
    || [ ! -f "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then
    echo "== compiled build: SKIPPED (no C compiler or no Python headers here)"
    exit 0
fi
trap 'bash scripts/compile.sh --clean >/dev/null' EXIT
bash scripts/compile.sh >/dev/null
echo "== pytest ($(.venv/bin/lb --version)): unit and integration"
.venv/bin/python -m pytest -q -p no:cacheprovider tests/unit tests/integration
