"""Partition one node from the two others for 10 s, then heal.

Load: 60 sessions, 200 requests/s over the three entries (clients reach every
node all the time: the partition cuts node-to-node traffic only). Checks:
no request waits longer than lb's own timeouts allow, the two connected nodes
keep serving the sessions homed on them, and within 5 s of the heal every
session has exactly one home again: its cookie, sent through each entry,
lands on the same node.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.support.netns import NetFarm

pytestmark = pytest.mark.faults

PARTITION = 10.0
AGREE_WITHIN = 5.0
SLACK = 1.0  # scheduling on a busy 2-core machine


def test_partition_then_heal(make_netfarm: Callable[..., NetFarm]) -> None:
    farm = make_netfarm()
    lim = farm.limits
    # The longest a request may wait: a flow to an unreachable home ends by the pending
    # timeout or when the link is declared dead, whichever comes first.
    bound = max(lim["pending_timeout"], lim["dead_after"], lim["connect_timeout"]) + SLACK
    run = farm.loadgen(
        "steady",
        "--entries",
        farm.entries_arg(),
        "--sessions",
        "60",
        "--rate",
        "200",
        "--duration",
        str(3.0 + PARTITION),
        "--timeout",
        "20",
    )
    homes = run.wait_ready()["homes"]
    victim = max(sorted(homes), key=lambda n: homes[n])
    majority = [n for n in farm.nodes if n != victim]
    time.sleep(3.0)  # fixed: 3 s of load before the fault
    t_part = time.time()
    farm.partition(victim)
    time.sleep(PARTITION)  # fixed: the partition lasts PARTITION seconds under load
    farm.heal_all()
    t_heal = time.time()
    res = run.result()
    agree = farm.loadgen(
        "agree",
        "--entries",
        farm.entries_arg(),
        "--sessions-from",
        str(run.out_path),
        "--until",
        str(AGREE_WITHIN + 3),
        "--timeout",
        "5",
    ).result()

    records = [r for r in res["records"] if r["phase"] == "load"]
    during = [r for r in records if r["t1"] >= t_part and r["t0"] <= t_heal]
    worst = max(records, key=lambda r: r["t1"] - r["t0"])
    max_lat = worst["t1"] - worst["t0"]
    # Entry and home both on the connected side: the partition must not touch them.
    majority_fail = [
        r for r in records if r["error"] and r["entry"] in majority and r["sent_home"] in majority
    ]
    detection = {}
    for o in majority:
        rec = farm.first_loss_of(o, victim, t_part)
        detection[o] = None if rec is None else round(rec["_t"] - t_part, 3)
    rec = farm.first_loss_of(victim, majority[0], t_part)
    detection[f"{victim} (of {majority[0]})"] = (
        None if rec is None else round(rec["_t"] - t_part, 3)
    )
    agreed_after = None if agree["t_agreed"] is None else agree["t_agreed"] - t_heal
    agree_text = (
        f"one home per session {agreed_after:.2f} s after heal"
        if agreed_after is not None
        else f"sessions still disagree {AGREE_WITHIN + 3:g} s after heal"
    )
    print(
        f"\nFIGURE partition: {victim} cut from {majority} for {PARTITION:g} s "
        f"(homes at start {homes}); {len(records)} requests, {len(during)} during the partition; "
        f"errors {dict(Counter(r['error'] for r in records if r['error']))}; "
        f"errors with entry and home on the connected side: {len(majority_fail)}; "
        f"max latency {max_lat:.3f} s (bound {bound:g} s; entry {worst['entry']}, "
        f"home {worst['sent_home']}, error {worst['error']}); detection {detection}; "
        f"{agree_text}"
    )
    assert max_lat <= bound, f"a request took {max_lat:.2f} s (bound {bound:g} s): {worst}"
    assert not majority_fail, (
        f"{len(majority_fail)} requests failed with entry and home both connected: "
        f"{majority_fail[:5]}"
    )
    assert agreed_after is not None, f"sessions without one home: {agree.get('disagreements')}"
    assert agreed_after <= AGREE_WITHIN, (
        f"one home per session only {agreed_after:.2f} s after heal"
    )
