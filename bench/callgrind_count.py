"""Instructions per call of a piece of lb, counted by valgrind's callgrind.

Shared by the in-process benchmarks (micro_exchange.py, parse_instructions.py):
`per_call(argv_for)` runs a script twice under callgrind, for N and 3N calls, and
returns the difference over 2N, so start-up and import costs cancel out. The
count does not depend on what else the machine does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence


def per_call(argv_for: Callable[[int], Sequence[str]], n: int) -> float:
    """Instructions per call: `argv_for(calls)` is the command line (after the Python
    interpreter) that makes `calls` calls."""
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    totals = []
    for calls in (n, 3 * n):
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                sys.executable,
                *argv_for(calls),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise SystemExit(f"callgrind printed no total:\n{done.stderr[-2000:]}")
        totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / (2 * n)
