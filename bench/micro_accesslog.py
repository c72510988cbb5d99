"""Microbenchmark of the access log (lb/node/accesslog.py): the cost of one request's line.

Prints nanoseconds per `AccessLog.record` call:
- off (access_log = "off"),
- on but not drawn (access_log_sample = 0.01: 99 % of calls write nothing),
- on, json mode, every line written (to /dev/null, so the write(2) is counted
  but no disk or terminal),
- on, console mode, every line written,
- access_fields alone (the pure formatter, no structlog).

Run: .venv/bin/python bench/micro_accesslog.py [--rounds N]. A script, not a test: it
measures this machine only; compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lb.logs import configure_logging  # noqa: E402
from lb.node.accesslog import AccessLog, access_fields  # noqa: E402

ARGS = (
    "web",
    "a",
    "b",
    b"GET",
    b"/cart/7/items?token=abc",
    200,
    312,
    5120,
    0.000123,
    0.00201,
    0.0105,
    0.0131,
    "home-cookie",
    False,
    "203.0.113.7",
    51234,
    None,
)


def best_ns(fn: Callable[[], object], inner: int, rounds: int) -> float:
    """Best mean ns per call of ``fn`` over ``rounds`` runs of ``inner`` calls (CPU time of
    this thread, not wall time: on a shared machine, time spent waiting for a CPU is left out)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time_ns()
        for _ in range(inner):
            fn()
        best = min(best, (time.thread_time_ns() - start) / inner)
    return best


def measure(fmt: str, enabled: bool, sample: float, rounds: int, inner: int) -> float:
    configure_logging("info", fmt)
    log = AccessLog(enabled, sample, node="a")
    return best_ns(lambda: log.record(*ARGS), inner, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    out = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # the log lines go to /dev/null; the results to stdout
    results = [
        ('off (access_log = "off")', measure("json", False, 1.0, args.rounds, 200_000)),
        ("on, sampled out (sample 0.01)", measure("json", True, 0.01, args.rounds, 200_000)),
        ("on, json, every line written", measure("json", True, 1.0, args.rounds, 20_000)),
        ("on, console, every line written", measure("console", True, 1.0, args.rounds, 20_000)),
        ("access_fields alone", best_ns(lambda: access_fields(*ARGS), 100_000, args.rounds)),
    ]
    lines = [f"{label:36s} {ns:10.0f} ns" for label, ns in results]
    os.write(out, ("\n".join(lines) + "\n").encode())


if __name__ == "__main__":
    main()
