"""A node cut off from the farm does not take the sessions of the nodes it cannot hear.

Load: 60 sessions, 200 requests/s over the three entries; clients reach every node
during the partition (only node-to-node traffic is cut). The cut node hears nobody:
it cannot tell the others' death from its own isolation, and the others are alive
and serve their sessions. So a request that enters by the cut node with a home
cookie naming one of the others is never answered by the cut node's application
(it fails instead: 502 after the wait for the link). Before this rule the cut node
re-homed every such session onto itself, the others re-homed it back on its next
request through them, and each session moved about twenty times in 15 s.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.support.netns import NetFarm

pytestmark = pytest.mark.faults

PARTITION = 10.0


def test_a_cut_off_node_does_not_take_live_peers_sessions(
    make_netfarm: Callable[..., NetFarm],
) -> None:
    farm = make_netfarm()
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
    victim = min(sorted(homes), key=lambda n: homes[n])  # the fewest sessions of its own
    others = [n for n in farm.nodes if n != victim]
    time.sleep(3.0)  # fixed: 3 s of load before the fault
    t_part = time.time()
    farm.partition(victim)
    time.sleep(PARTITION)  # fixed: the partition lasts PARTITION seconds under load
    farm.heal_all()
    res = run.result()
    records = [r for r in res["records"] if r["phase"] == "load"]
    taken = [
        r
        for r in records
        if r["t0"] >= t_part
        and r["entry"] == victim
        and r["sent_home"] in others
        and r["node"] == victim
    ]
    crossing = [
        r
        for r in records
        if r["t0"] >= t_part and r["entry"] == victim and r["sent_home"] in others
    ]
    print(
        f"\nFIGURE partition sessions: {victim} cut from {others} for {PARTITION:g} s "
        f"(homes at start {homes}); {len(crossing)} requests entered by {victim} for a "
        f"home it could not reach: {len(taken)} answered by {victim} itself, outcomes "
        f"{dict(Counter(r['error'] or r['status'] for r in crossing))}"
    )
    assert not taken, (
        f"{victim}, cut off, took {len(taken)} requests of sessions homed on live nodes: "
        f"{[(r['sent_home'], r['new_home']) for r in taken[:8]]}"
    )
