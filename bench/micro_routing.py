"""Microbenchmark of the routing core: route() for a home cookie, Maglev lookup and build.

A script, not a test: ``.venv/bin/python bench/micro_routing.py [--quick]``.
Prints the best and median time per call over several repeats. It measures
the pure core only (no I/O); numbers depend on the machine and are meant for
comparing two versions of lb on the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

from lb.extract.api import Identifier
from lb.routing.cookie import CookieKeyring
from lb.routing.maglev import MaglevTable
from lb.routing.route import Router
from lb.routing.view import FarmView, NodeInfo

NOW = 1_700_000_000.0


def per_call_ns(fn: Callable[[], object], calls: int, repeats: int) -> tuple[float, float]:
    """(best, median) nanoseconds per call of ``fn`` over ``repeats`` runs of ``calls`` calls."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter_ns() - start) / calls)
    return min(samples), statistics.median(samples)


def farm(n: int) -> FarmView:
    names = [f"node-{i:04d}" for i in range(n)]
    nodes = {
        name: NodeInfo(name, ("10.0.0.1", 7000 + i), {"http": ("127.0.0.1", 8080)})
        for i, name in enumerate(names)
    }
    return FarmView(names[0], nodes, frozenset(names), dict.fromkeys(names, 0.5))


def report(label: str, best: float, median: float, unit: str = "ns") -> None:
    scale = {"ns": 1.0, "ms": 1e6}[unit]
    print(f"{label:<48} best {best / scale:>10.1f} {unit}   median {median / scale:>10.1f} {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    args = parser.parse_args()
    calls, repeats, builds = (2_000, 3, 2) if args.quick else (50_000, 7, 5)

    keyring = CookieKeyring("bench", b"bench-secret-0123456789abcdef")
    router = Router(keyring)
    view3 = farm(3)
    cookie = Identifier("home-cookie", keyring.sign("node-0001", int(NOW) + 3600), "home-cookie")
    assert router.route(cookie, view3, NOW, 1).reason == "home-cookie"
    report(
        "route() home cookie, 3 nodes",
        *per_call_ns(lambda: router.route(cookie, view3, NOW, 1), calls, repeats),
    )

    hashed = Identifier("uri", "/cart/42", "hash")
    router.route(hashed, view3, NOW, 1)
    report(
        "route() hashed identifier, 3 nodes",
        *per_call_ns(lambda: router.route(hashed, view3, NOW, 1), calls, repeats),
    )
    report(
        "route() no identifier (new session), 3 nodes",
        *per_call_ns(lambda: router.route(None, view3, NOW, 1), calls, repeats),
    )

    view1000 = farm(1000)
    report(
        "route() no identifier (new session), 1000 nodes",
        *per_call_ns(lambda: router.route(None, view1000, NOW, 1), calls, repeats),
    )

    for n in (3, 1000):
        table = MaglevTable({f"node-{i:04d}": 1 for i in range(n)})
        report(
            f"Maglev lookup, {n} nodes (size {table.size})",
            *per_call_ns(partial(table.lookup, "uri:/cart/42"), calls, repeats),
        )

    for n in (3, 1000):
        weights = {f"node-{i:04d}": 1 for i in range(n)}
        size = MaglevTable(weights).size
        report(
            f"Maglev build, {n} nodes (size {size})",
            *per_call_ns(partial(MaglevTable, weights), 1, builds if n > 3 else builds * 20),
            unit="ms",
        )


if __name__ == "__main__":
    main()
