#!/usr/bin/env bash
# Run every atheris fuzz target (tests/fuzz/fuzz_*.py), one after the other.
#
#   tests/fuzz/run.sh SECONDS [TARGET...]   each target for SECONDS of wall time
#   tests/fuzz/run.sh -runs=N [TARGET...]   each target for N executions
#
# TARGET is a file name such as fuzz_frames.py (default: all of them). atheris is
# installed into .venv if it is missing. Corpora, logs and crash inputs go to
# $FUZZ_WORK (default: /tmp/lb-fuzz), never into the repository; the seed
# directories (tests/fixtures/tls for the ClientHello target; for the others,
# inputs the target writes with --write-seeds) are only read.
# Prints one line per target with its executions and time; exits non-zero if a
# target crashed or failed one of its checks (the crash input is kept in $FUZZ_WORK).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ $# -lt 1 ]; then
    echo "usage: $0 SECONDS|-runs=N [fuzz_target.py ...]" >&2
    exit 2
fi
case "$1" in
    -runs=[0-9]*) limit=("$1") ;;
    [0-9]*) limit=("-max_total_time=$1") ;;
    *) echo "usage: $0 SECONDS|-runs=N [fuzz_target.py ...]" >&2; exit 2 ;;
esac
shift

PYTHON=${PYTHON:-.venv/bin/python}
if [ ! -x "$PYTHON" ]; then
    echo "no $PYTHON: create the venv first (see README.md)" >&2
    exit 2
fi
if ! "$PYTHON" -c 'import atheris' 2>/dev/null; then
    echo "installing atheris into the venv" >&2
    if ! "$PYTHON" -m pip install -q atheris; then
        echo "atheris cannot be installed for $("$PYTHON" -V) here; see docs/fuzzing.md" >&2
        exit 3
    fi
fi

WORK=${FUZZ_WORK:-/tmp/lb-fuzz}
mkdir -p "$WORK"

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in tests/fuzz/fuzz_*.py; do targets+=("$(basename "$f")"); done
fi

status=0
for name in "${targets[@]}"; do
    target=tests/fuzz/$name
    stem=${name%.py}
    corpus=$WORK/corpus-$stem
    mkdir -p "$corpus"
    seeds=()
    [ "$stem" = fuzz_clienthello ] && seeds=(tests/fixtures/tls)
    if grep -q -- --write-seeds "$target"; then  # seeds the target writes itself
        "$PYTHON" "$target" --write-seeds "$WORK/seeds-$stem"
        seeds=("$WORK/seeds-$stem")
    fi
    log=$WORK/$stem.log
    start=$(date +%s.%N)
    rc=0
    "$PYTHON" "$target" "${limit[@]}" -timeout=30 -print_final_stats=1 \
        -artifact_prefix="$WORK/$stem-" "$corpus" "${seeds[@]}" >"$log" 2>&1 || rc=$?
    end=$(date +%s.%N)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
    if [ "$rc" -eq 0 ]; then
        echo "$name: ok, ${runs:-?} executions in ${secs}s (log: $log)"
    else
        echo "$name: FAILED (exit $rc) after ${secs}s; see $log and $WORK/$stem-*" >&2
        tail -n 30 "$log" >&2
        status=1
    fi
done
exit $status
