"""Byte-exact transfers through forwarded flows while a node is killed -9 or partitioned.

Four clients loop over 16 MiB downloads (GET /bytes/N, checked against the
backend's pattern digest) and uploads (POST /echo, the echo checked against
what was sent), each through one fixed (entry, home) pair chosen with a signed
home cookie: a->c, b->c, c->a (forwarded flows with c at one end) and a->b
(c not involved). Every transfer must end complete and correct, or visibly
aborted (reset, an error status, or refused); never "corrupted" (a clean,
complete-looking answer with wrong bytes). Where the entry stays up, a broken
flow must reach the client as a reset, not a clean close before the end
(``short_eof``); the client of a killed entry may see either, that is its
kernel closing the socket.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.netns import NetFarm

pytestmark = pytest.mark.faults

VICTIM = "c"
PAIRS = "a:c,b:c,c:a,a:b"
SIZE = 16 << 20


def start_bytes(farm: NetFarm, duration: float) -> Any:
    run = farm.loadgen(
        "bytes",
        "--entries",
        farm.entries_arg(),
        "--cookies",
        farm.cookies_arg(),
        "--pairs",
        PAIRS,
        "--size",
        str(SIZE),
        "--workers",
        "4",
        "--duration",
        str(duration),
        "--timeout",
        "20",
    )
    run.wait_ready()
    return run


def check(
    farm: NetFarm, records: list[dict[str, Any]], t_fault: float, t_end: float, what: str
) -> None:
    by_pair = Counter((r["entry"], r["home"], r["outcome"]) for r in records)
    in_fault = [
        r for r in records if r["t0"] < t_fault < r["t1"] and VICTIM in (r["entry"], r["home"])
    ]
    corrupted = [r for r in records if r["outcome"] == "corrupted"]
    silent_close = [r for r in records if r["outcome"] == "short_eof" and r["entry"] != VICTIM]
    hung = [r for r in records if r["outcome"] == "timeout"]
    untouched_bad = [
        r for r in records if VICTIM not in (r["entry"], r["home"]) and r["outcome"] != "complete"
    ]
    # Recovered: once the fault is over (or the dead node is declared dead) and a margin.
    settle = farm.limits["dead_after"] + 1.5
    after = [r for r in records if r["t0"] > t_end + settle and r["entry"] != VICTIM]
    mb = sum(r["size"] for r in records if r["outcome"] == "complete") / 2**20
    outcomes = dict(Counter(r["outcome"] for r in records))
    not_recovered = [r for r in after if r["outcome"] != "complete"]
    print(
        f"\nFIGURE bytes/{what}: {len(records)} transfers of {SIZE >> 20} MiB "
        f"({mb:.0f} MiB complete and correct); outcomes {outcomes}; "
        f"in flight through {VICTIM} at the fault: {len(in_fault)} "
        f"({dict(Counter(r['outcome'] for r in in_fault))}); "
        f"by entry,home,outcome {dict(sorted(by_pair.items()))}"
    )
    assert not corrupted, f"silently corrupted or truncated transfers: {corrupted[:5]}"
    assert not silent_close, (
        f"clean close before the end where the entry stayed up: {silent_close[:5]}"
    )
    assert not hung, f"transfers that hung until the client timeout: {hung[:5]}"
    assert not untouched_bad, f"transfers not involving {VICTIM} failed: {untouched_bad[:5]}"
    assert in_fault, f"no transfer was in flight through {VICTIM} at the fault: test proved nothing"
    assert after, "no transfer started after the fault"
    assert not not_recovered, f"transfers after the fault did not recover: {not_recovered[:5]}"


def test_bytes_exact_through_kill9(make_netfarm: Callable[..., NetFarm]) -> None:
    farm = make_netfarm()
    run = start_bytes(farm, duration=10.0)
    time.sleep(3.0)  # fixed: transfers run 3 s before the fault, so some are in flight
    t_kill = farm.kill9(VICTIM)
    res = run.result()
    check(farm, res["records"], t_kill, t_kill, "kill9")


def test_bytes_exact_through_partition(make_netfarm: Callable[..., NetFarm]) -> None:
    farm = make_netfarm()
    run = start_bytes(farm, duration=16.0)
    time.sleep(3.0)  # fixed: transfers run 3 s before the fault, so some are in flight
    t_part = time.time()
    farm.partition(VICTIM)
    time.sleep(6.0)  # fixed: the partition lasts 6 s, past dead_after, under load
    farm.heal_all()
    t_heal = time.time()
    res = run.result()
    check(farm, res["records"], t_part, t_heal, "partition")
