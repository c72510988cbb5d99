"""A node whose application is down takes no new sessions; it takes them again when it is up.

The node's health check (a TCP connect every health_interval) marks the
application down after health_fall failures; the node then says DRAINING to
the farm, so every entry places new sessions elsewhere: no new session gets a
502 from a dead application. When the application is back, health_rise passed
checks later, the node takes new sessions again.
"""

from __future__ import annotations

import functools
import http.client
import itertools
import json
import time
from collections.abc import Callable

import pytest

from tests.support.farm import Farm
from tests.support.wait import eventually, eventually_passes

pytestmark = pytest.mark.integration

LIMITS = {"health_interval": 0.3, "health_fall": 2, "health_rise": 2}


def new_session(farm: Farm, entry: str, source: str) -> tuple[int, str | None]:
    """A request without a cookie from client address `source`: (status, the node that
    answered). New sessions of one address share a home for placement_hold, so every
    call that stands for another client uses its own loopback address."""
    conn = http.client.HTTPConnection(*farm.addr(entry), timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", "/new")
        resp = conn.getresponse()
        body = resp.read()
        node = json.loads(body)["node"] if resp.status == 200 else None
        return resp.status, node
    finally:
        conn.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_an_application_down_takes_its_node_out_of_placement(
    make_farm: Callable[..., Farm], workers: int
) -> None:
    farm = make_farm(limits=LIMITS, workers=workers)
    farm.stop_backend("b", "web")
    eventually(
        lambda: any(e.get("service") == "web" for e in farm.events("b", "app_down")),
        timeout=5.0,
        what="b logs its application down",
    )
    eventually(
        lambda: all(
            any(e.get("peer") == "b" and e.get("new") == "draining" for e in farm.events(n))
            for n in ("a", "c")
        ),
        timeout=5.0,
        what="a and c see b taking no new sessions",
    )
    answers = [
        new_session(farm, entry, f"127.0.1.{i + 1}") for i, entry in enumerate(("a", "b", "c") * 10)
    ]
    assert all(status == 200 for status, _ in answers), answers
    assert "b" not in {node for _, node in answers}, answers
    if workers == 1:
        assert farm.tables("b")["apps"] == {"web": "down", "raw": "up"}
    # one change each way, not a flapping between workers that disagree
    states = [
        e["new"]
        for e in farm.events("a", "node_state")
        if e.get("peer") == "b" and e.get("new") in ("draining", "alive")
    ]
    assert states.count("draining") <= workers, states

    farm.start_backend("b", "web")
    eventually(
        lambda: any(e.get("service") == "web" for e in farm.events("b", "app_up")),
        timeout=5.0,
        what="b logs its application up again",
    )
    sources = (f"127.0.2.{i}" for i in itertools.count(1))
    eventually(
        lambda: "b" in {new_session(farm, entry, next(sources))[1] for entry in ("a", "c") * 10},
        timeout=10.0,
        what="b takes new sessions again",
    )


def test_each_change_of_an_application_is_announced_once_with_two_workers(
    make_farm: Callable[..., Farm],
) -> None:
    """Worker 0 of b checks the application and its sibling follows on the bus; peers
    relay b's DRAINING back to b. Neither worker may contradict the other: every worker
    of a and c sees b go alive -> draining -> alive exactly once per cycle."""
    cycles = 3
    farm = make_farm(limits=LIMITS, workers=2)

    def transitions(observer: str, worker: int, old: str, new: str) -> int:
        return sum(
            1
            for e in farm.events(observer, "node_state")
            if e.get("peer") == "b"
            and e.get("worker") == worker
            and (e.get("old"), e.get("new")) == (old, new)
        )

    def everyone_saw(old: str, new: str, times: int) -> None:
        for observer in ("a", "c"):
            for worker in (0, 1):
                assert transitions(observer, worker, old, new) >= times, (observer, worker)

    for cycle in range(1, cycles + 1):
        farm.stop_backend("b", "web")
        eventually_passes(
            functools.partial(everyone_saw, "alive", "draining", cycle),
            timeout=10.0,
            what=f"cycle {cycle}: every worker of a and c sees b draining",
        )
        farm.start_backend("b", "web")
        eventually_passes(
            functools.partial(everyone_saw, "draining", "alive", cycle),
            timeout=10.0,
            what=f"cycle {cycle}: every worker of a and c sees b alive again",
        )
    time.sleep(0.5)  # a late contradiction would arrive by now
    for observer in ("a", "c"):
        for worker in (0, 1):
            announced = [
                (e.get("old"), e.get("new"))
                for e in farm.events(observer, "node_state")
                if e.get("peer") == "b" and e.get("worker") == worker
            ]
            assert transitions(observer, worker, "alive", "draining") == cycles, announced
            assert transitions(observer, worker, "draining", "alive") == cycles, announced
