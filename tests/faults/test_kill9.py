"""kill -9 one node of three under steady load: live sessions never fail, the dead one's re-home.

Load: 90 sessions, 300 requests/s over the three entries round-robin, one
`Connection: close` GET at a time per session. After 3 s the node that homes the
most sessions is killed -9.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.netns import NetFarm

pytestmark = pytest.mark.faults

REHOME_WITHIN = 3.0


def victim_sessions(records: list[dict[str, Any]], t_kill: float, victim: str) -> set[int]:
    """Sessions whose cookie named the victim when it died (their first request after it)."""
    first: dict[int, dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: r["t0"]):
        if r["t0"] >= t_kill and r["session"] not in first:
            first[r["session"]] = r
    return {s for s, r in first.items() if r["sent_home"] == victim}


def test_kill9_one_of_three_under_load(make_netfarm: Callable[..., NetFarm]) -> None:
    farm = make_netfarm()
    run = farm.loadgen(
        "steady",
        "--entries",
        farm.entries_arg(),
        "--sessions",
        "90",
        "--rate",
        "300",
        "--duration",
        "11",
        "--timeout",
        "8",
    )
    homes = run.wait_ready()["homes"]
    # The node homing the most sessions dies (placement decides which that is).
    victim = max(sorted(homes), key=lambda n: homes[n])
    others = [n for n in farm.nodes if n != victim]
    time.sleep(3.0)  # fixed: 3 s of load before the kill
    t_kill = farm.kill9(victim)
    t_gone = time.time()  # the process is reaped: its kernel accepts nothing more
    res = run.result()
    records = [r for r in res["records"] if r["phase"] == "load"]

    # Detection: the first record in each survivor's log that stops counting the victim live.
    detection: dict[str, float | None] = {}
    suspected: dict[str, float | None] = {}
    for o in others:
        rec = farm.first_loss_of(o, victim, t_kill)
        detection[o] = None if rec is None else rec["_t"] - t_kill
        rec = farm.first_state(o, victim, "suspect", t_kill)
        suspected[o] = None if rec is None else round(rec["_t"] - t_kill, 3)

    homed_dead = victim_sessions(records, t_kill, victim)
    # In flight at the killed entry, or accepted by its kernel while the process died:
    # no balancer can answer those.
    lost_with_entry = []
    dead_home_failures = []  # sessions homed on the victim, before they were re-homed
    bad = []
    for r in records:
        if r["error"] is None:
            continue
        if r["entry"] == victim and r["t0"] <= t_gone:
            lost_with_entry.append(r)
        elif r["sent_home"] == victim and r["t1"] >= t_kill - 0.5:
            dead_home_failures.append(r)
        else:
            bad.append(r)

    # Re-homing: the first answer by a live node for each dead-homed session after the
    # kill (a SIGKILLed process may still answer for a few milliseconds: those answers
    # are its own). It must carry a fresh home cookie naming the node that answered;
    # the session's later requests carry that cookie.
    rehome: dict[int, float] = {}
    no_fresh_cookie = []
    for r in sorted(records, key=lambda r: r["t1"] or 0.0):
        s = r["session"]
        if (
            s in homed_dead
            and s not in rehome
            and r["error"] is None
            and r["node"] != victim
            and r["t1"] >= t_kill
        ):
            rehome[s] = r["t1"] - t_kill
            if r["new_home"] != r["node"]:
                no_fresh_cookie.append(r)
    late_failures = [r for r in dead_home_failures if r["t1"] > t_kill + REHOME_WITHIN]
    # The last request of a dead-homed session that was started and then failed: every
    # request they start after it is answered.
    window = max((r["t0"] - t_kill for r in dead_home_failures), default=0.0)
    slowest_fail = max((r["t1"] - r["t0"] for r in dead_home_failures), default=0.0)
    never = sorted(homed_dead - set(rehome))
    retries = Counter(name for r in records for name in r["tried"])
    s = res["summary"]
    print(
        f"\nFIGURE kill9: killed {victim} (homes at start {homes}); "
        f"{s['requests']} requests at {s['rate']:.0f}/s over 90 sessions; "
        f"failed for live-homed sessions: {len(bad)}; "
        f"lost in flight at the killed entry: {len(lost_with_entry)}; "
        f"dead-homed sessions: {len(homed_dead)}, their failures: {len(dead_home_failures)} "
        f"({dict(Counter(r['error'] for r in dead_home_failures))}); "
        f"first answer by a live node after max {max(rehome.values(), default=0):.3f} s; "
        f"last failing request started {window:.3f} s after the kill, failures took up to "
        f"{slowest_fail:.3f} s; "
        f"entry retries (refused): {dict(retries)}; "
        f"detection: {', '.join(f'{o} {d:.3f} s' if d is not None else f'{o} none' for o, d in detection.items())}; "  # noqa: E501
        f"suspected after {suspected}; "
        f"latency p50 {s['lat_p50'] * 1000:.1f} ms p99 {s['lat_p99'] * 1000:.1f} ms "
        f"max {s['lat_max'] * 1000:.0f} ms"
    )
    assert not bad, f"{len(bad)} failed requests of sessions homed on live nodes: {bad[:5]}"
    assert homed_dead, "no session was homed on the killed node: the test proved nothing"
    assert not never, f"sessions of the dead node never served again: {never[:10]}"
    assert max(rehome.values()) <= REHOME_WITHIN, f"re-homing took {max(rehome.values()):.2f} s"
    assert not late_failures, f"dead-homed sessions still failing after 3 s: {late_failures[:5]}"
    assert not no_fresh_cookie, (
        f"re-homed answers without a fresh home cookie: {no_fresh_cookie[:5]}"
    )
    assert all(d is not None for d in detection.values()), (
        f"a survivor never dropped {victim} from its view: {detection}"
    )
