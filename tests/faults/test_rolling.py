"""Rolling restart under load: SIGTERM (drain) each node in turn, restart it, next node.

Load: 60 sessions, 200 requests/s over the three entries. For each node: SIGTERM,
wait for its exit (code 0) within `drain_timeout` plus a margin, start it
again, wait until it is live again in every other node's view and reachable
through every entry, then the next node. Checks: no request fails (an entry
that refuses connections while it is down makes the client try the next one;
those entry retries are counted, not failures), every exit code is 0, and the
peers logged the draining node as draining.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.netns import NetFarm

pytestmark = pytest.mark.faults

DRAIN_TIMEOUT = 5.0


def test_rolling_restart_under_load(make_netfarm: Callable[..., NetFarm]) -> None:
    farm = make_netfarm(limits={"drain_timeout": DRAIN_TIMEOUT})
    run = farm.loadgen(
        "steady",
        "--entries",
        farm.entries_arg(),
        "--sessions",
        "60",
        "--rate",
        "200",
        "--duration",
        "150",
        "--timeout",
        "10",
    )
    homes = run.wait_ready()["homes"]
    time.sleep(2.0)  # fixed: 2 s of load before the first restart
    steps: list[dict[str, Any]] = []
    try:
        for node in farm.nodes:
            t_term = farm.sigterm(node)
            code = farm.wait_exit(node, timeout=DRAIN_TIMEOUT + 10)
            t_exit = time.time()
            farm.start_node(node)
            t_back = farm.wait_back(node, since=t_exit, timeout=20)
            peers = [o for o in farm.nodes if o != node]
            marked = {
                o: any(
                    e.get("peer") == node and str(e.get("new")).lower() == "draining"
                    for e in farm.events(o, "node_state", t_term)
                    if e["_t"] <= t_exit + 0.5
                )
                for o in peers
            }
            steps.append(
                {
                    "node": node,
                    "code": code,
                    "drain_s": round(t_exit - t_term, 2),
                    "back_s": round(t_back - t_exit, 2),
                    "marked_draining": marked,
                    "t_term": t_term,
                    "t_exit": t_exit,
                }
            )
            time.sleep(1.0)  # fixed: 1 s of load on the whole farm before the next node
    finally:
        run.stop()
    res = run.result()
    records = [r for r in res["records"] if r["phase"] == "load"]
    failed = [r for r in records if r["error"] is not None]
    retries = Counter(name for r in records for name in r["tried"])
    s = res["summary"]
    print(
        f"\nFIGURE rolling: homes at start {homes}; {s['requests']} requests at "
        f"{s['rate']:.0f}/s; failed {len(failed)} {dict(Counter(r['error'] for r in failed))}; "
        f"entry retries (refused) {dict(retries)}; steps "
        + "; ".join(
            f"{x['node']}: exit {x['code']} after {x['drain_s']} s, live again "
            f"{x['back_s']} s after restart, marked draining by {x['marked_draining']}"
            for x in steps
        )
        + f"; latency p99 {s['lat_p99'] * 1000:.0f} ms max {s['lat_max'] * 1000:.0f} ms"
    )
    for x in steps:
        assert x["code"] == 0, f"node {x['node']} exited {x['code']} after SIGTERM"
    failed_at = [
        {
            "error": r["error"],
            "status": r["status"],
            "entry": r["entry"],
            "home": r["sent_home"],
            "detail": r["detail"],
            "during": next(
                (x["node"] for x in steps if x["t_term"] <= r["t1"] <= x["t_exit"] + 1), None
            ),
        }
        for r in failed
    ]
    assert not failed, f"{len(failed)} requests failed during the rolling restart: {failed_at[:8]}"
    for x in steps:
        assert all(x["marked_draining"].values()), (
            f"peers did not log node {x['node']} as draining: {x['marked_draining']}"
        )
