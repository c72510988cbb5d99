"""30 s of 10 % packet loss on one node's traffic, plus 30 ms delay on its links.

Loss: every packet to or from node c is dropped on the wire (at c's bridge
port, nft numgen) with probability 0.1, clients' packets included; never in c's
own stack, where a dropped SYN-ACK retransmission is a send error that makes
Linux drop the half-open connection (tests/faults/test_harness_loss.py). Delay:
every chunk on a link of c waits 30 ms in each direction in the harness's
relays (so each link round trip of c grows by 60 ms). Load: 60 sessions, 150
requests/s.

Checks: no node is declared dead falsely (no link_down, no farm_view without
a node, no node_state "dead" in any node's log during the fault) and no
request is lost: every request completes with 200, maybe slower.

The loss also hits the clients' own connections to c, so the client-side
bounds are set for a lossy path rather than lb's: TCP retries a lost SYN after
1, 2, 4, 8 s, and after a retried SYN the first retransmission of data waits
3 s, so the client's connect and request timeouts are 40 s and lb's
`head_timeout` is 20 s (with 2 s, lb correctly answers 408 to a client whose
request head arrives late; that is the client path, not the farm losing it).

The loss hits c's links too, and the harness's `pending_timeout` of 2 s is a
bound for a clean network: a NEW out of c or a VERIFIED into c that is lost
three or four times in a row waits for TCP's doubling retransmission timer
(about 0.2 + 0.4 + 0.8 + 1.6 s), so a forwarded flow can stay unverified past
2 s while both nodes are alive, and lb then correctly resets it and answers 502
(measured: with `pending_timeout` 0.25 s under this fault every such request
got a clean 502). That is lb keeping its configured bound, not a request lost
by the farm, so the test sets `pending_timeout` to 20 s as it does
`head_timeout`; a home that is really gone is still found by the membership
checks above (`dead_after`), which keep the harness's bounds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.support.netns import NetFarm

pytestmark = pytest.mark.faults

VICTIM = "c"
LOSS = 10
DELAY = 0.03
SECONDS = 30.0


def test_loss_and_delay_no_false_death(make_netfarm: Callable[..., NetFarm]) -> None:
    farm = make_netfarm(delay_relays=True, limits={"head_timeout": 20.0, "pending_timeout": 20.0})
    run = farm.loadgen(
        "steady",
        "--entries",
        farm.entries_arg(),
        "--sessions",
        "60",
        "--rate",
        "150",
        "--duration",
        str(SECONDS),
        "--timeout",
        "40",
        "--connect-timeout",
        "39",
    )
    homes = run.wait_ready()["homes"]
    t_start = time.time()
    farm.loss(VICTIM, LOSS)
    farm.delay(VICTIM, DELAY)
    rules = farm.fault_rules(VICTIM)
    assert f"numgen random mod 100 < {LOSS}" in rules, rules
    time.sleep(SECONDS)  # fixed: the faults last SECONDS under load; no false death meanwhile
    farm.heal_all()
    t_end = time.time()
    res = run.result(timeout=90)
    records = [r for r in res["records"] if r["phase"] == "load"]

    false_deaths = []
    suspects = []
    for n in farm.nodes:
        for rec in farm.events(n, ("link_down", "farm_view", "node_state"), since=t_start):
            if rec["_t"] > t_end + 1.0:
                continue
            ev = rec["event"]
            state = str(rec.get("new", "")).lower()
            view_shrank = ev == "farm_view" and set(rec.get("live") or []) != set(farm.nodes)
            if ev == "link_down" or view_shrank or (ev == "node_state" and state == "dead"):
                false_deaths.append(rec)
            elif ev == "node_state" and state == "suspect":
                suspects.append(rec)
    failed = [r for r in records if r["error"] is not None]
    via_victim = [r for r in records if r["entry"] == VICTIM or r["sent_home"] == VICTIM]
    lat = sorted(r["t1"] - r["t0"] for r in records)
    lat_v = sorted(r["t1"] - r["t0"] for r in via_victim)
    s = res["summary"]
    print(
        f"\nFIGURE loss+delay: {LOSS}% loss and {DELAY * 1000:.0f} ms/direction link delay on "
        f"{VICTIM} for {SECONDS:g} s (homes {homes}); {s['requests']} requests at "
        f"{s['rate']:.0f}/s, {len(via_victim)} entering at or homed on {VICTIM}; "
        f"failed {len(failed)} {dict(Counter(r['error'] for r in failed))}; "
        f"false deaths {len(false_deaths)}; suspicions {len(suspects)}; "
        f"latency p50 {lat[len(lat) // 2] * 1000:.0f} ms, p99 {lat[int(len(lat) * 0.99)]:.2f} s, "
        f"max {lat[-1]:.2f} s; via {VICTIM}: p50 {lat_v[len(lat_v) // 2] * 1000:.0f} ms, "
        f"max {lat_v[-1]:.2f} s"
    )
    assert not false_deaths, f"a node was declared dead falsely: {false_deaths[:5]}"
    assert not failed, f"{len(failed)} requests lost: {failed[:5]}"
