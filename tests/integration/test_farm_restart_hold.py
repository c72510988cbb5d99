"""A node restarted with dead_rehome_after keeps its sessions (limits.dead_rehome_after).

An operator upgrading lb restarts each node in turn (SIGTERM, start again). By
default a stopped node says LEFT and every entry re-homes its sessions at once:
an application that keeps sessions in memory loses every one of them at each
restart, though the application itself never stopped. With `dead_rehome_after`
above 0 a stopped node leaves without LEFT; its peers declare it dead and hold
its sessions for it (not placeable, live for its sessions): a request for one
waits for the node's link (up to pending_timeout) and is answered by the node
once it is back, with no new cookie. The control farm (the default, 0) shows
the re-homing the limit turns off.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import pytest

from tests.support.farm import COOKIE_NAME, Farm, http_request
from tests.support.wait import eventually_passes, eventually_passes_async

pytestmark = pytest.mark.integration

WAIT = 10.0  # pending_timeout: how long a request waits for its restarting home


def stopped(farm: Farm, node: str) -> None:
    farm.kill(node, signal.SIGTERM)

    def exited() -> None:
        assert farm.lb_procs[node].popen.poll() is not None, f"{node} still runs"

    eventually_passes(exited, timeout=20.0, what=f"{node} did not stop on SIGTERM")


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_restarted_node_finds_its_sessions_and_waiting_requests_reach_it(
    make_farm: Callable[..., Farm], workers: int
) -> None:
    farm = make_farm(limits={"dead_rehome_after": 60, "pending_timeout": WAIT}, workers=workers)
    cookie = {"Cookie": farm.cookie_header("b")}
    before = await http_request(farm.addr("a"), "GET", "/s", cookie)
    assert before.status == 200 and before.json()["node"] == "b"

    stopped(farm, "b")
    left = farm.events("b", "stopping_without_leave")
    assert left and left[-1]["rehome_after"] == 60, left

    def b_is_held() -> None:
        tables = farm.tables("a")
        assert tables["members"]["b"] == "dead", tables["members"]
        assert tables["dead_held"] == ["b"] and "b" in tables["live"], tables

    await eventually_passes_async(b_is_held, timeout=10.0, what="a did not hold b's sessions")
    held = farm.events("a", "dead_sessions_held")
    assert held and held[-1]["held"] == ["b"], held

    async with asyncio.timeout(60):
        # a request for b's session while b is down waits for b's link; b comes back
        waiting = asyncio.create_task(http_request(farm.addr("c"), "GET", "/during", cookie))
        # past connect_timeout and dead_after (2 s and 1 s here): a suspect home's wait
        await asyncio.sleep(3.0)
        assert not waiting.done(), "the request did not wait for its home"
        farm._start_node("b")
        during = await waiting
        assert during.status == 200, (during.status, during.body[:200])
        assert during.json()["node"] == "b"
        assert during.cookie_value(COOKIE_NAME) is None  # not re-homed: no new cookie
        farm.wait_ready()
        for entry in ("a", "b", "c") * workers:  # new connections: each worker in turn, likely
            after = await http_request(farm.addr(entry), "GET", "/after", cookie)
            assert after.status == 200 and after.json()["node"] == "b", (entry, after.status)
            assert after.cookie_value(COOKIE_NAME) is None
        # and new sessions go to b again
        assert farm.tables("a")["dead_held"] == []


async def test_a_home_that_stays_down_fails_its_requests_then_is_re_homed(
    make_farm: Callable[..., Farm],
) -> None:
    farm = make_farm(limits={"dead_rehome_after": 4, "pending_timeout": 2})
    cookie = {"Cookie": farm.cookie_header("b")}
    stopped(farm, "b")

    def b_is_held() -> None:
        assert farm.tables("a")["dead_held"] == ["b"]

    await eventually_passes_async(b_is_held, timeout=10.0, what="a did not hold b's sessions")
    async with asyncio.timeout(30):
        # held: not re-homed, the request fails after its wait (no cookie naming another)
        resp = await http_request(farm.addr("a"), "GET", "/held", cookie)
        assert resp.status == 503 and resp.header("retry-after") == "1", resp.status
        assert resp.cookie_value(COOKIE_NAME) is None

        async def re_homed() -> None:
            moved = await http_request(farm.addr("a"), "GET", "/moved", cookie)
            assert moved.status == 200 and moved.json()["node"] in ("a", "c"), moved.status
            assert moved.cookie_value(COOKIE_NAME) is not None

        # past the bound the session is re-homed, as a dead home's always was
        await eventually_passes_async(re_homed, timeout=15.0, what="b's session not re-homed")


async def test_by_default_a_stopped_node_leaves_and_its_sessions_move_at_once(
    make_farm: Callable[..., Farm],
) -> None:
    farm = make_farm()
    cookie = {"Cookie": farm.cookie_header("b")}
    stopped(farm, "b")
    assert not farm.events("b", "stopping_without_leave")

    def b_left() -> None:
        assert farm.tables("a")["members"]["b"] == "left"

    await eventually_passes_async(b_left, timeout=10.0, what="b did not leave")
    async with asyncio.timeout(30):
        moved = await http_request(farm.addr("a"), "GET", "/moved", cookie)
        assert moved.status == 200 and moved.json()["node"] in ("a", "c")
        assert moved.cookie_value(COOKIE_NAME) is not None


async def test_a_held_home_is_not_asked_as_a_directory_owner(
    make_farm: Callable[..., Farm],
) -> None:
    """A held node is live for its sessions but answers nothing: the application
    cookies learned meanwhile are registered with owners among the other nodes, not
    left to wait register_timeout for an answer from the held one."""
    farm = make_farm(
        limits={"dead_rehome_after": 60, "register_timeout": 0.5},
        services={
            "web": ("http", '[ { kind = "cookie", name = "sid" }, { kind = "home-cookie" } ]')
        },
    )
    stopped(farm, "b")

    def b_is_held() -> None:
        for entry in ("a", "c"):
            assert farm.tables(entry)["dead_held"] == ["b"], entry

    await eventually_passes_async(b_is_held, timeout=10.0, what="b's sessions not held")
    before = {e: farm.tables(e)["counters"].get("directory_register_timeouts", 0) for e in "ac"}
    async with asyncio.timeout(60):
        for i in range(24):  # new application sessions: with three owners' ranks, most name b
            resp = await http_request(farm.addr("ac"[i % 2]), "GET", f"/new{i}")
            assert resp.status == 200 and resp.json()["node"] in ("a", "c")
            assert resp.cookie_value("sid") is not None
    after = {e: farm.tables(e)["counters"].get("directory_register_timeouts", 0) for e in "ac"}
    assert after == before, (before, after)


async def test_a_node_restarted_long_after_a_peer_died_does_not_hold_that_peer_again(
    make_farm: Callable[..., Farm],
) -> None:
    """c dies for good and stays in the farm file; a and b hold its sessions for
    dead_rehome_after, then re-home them. An upgrade then restarts b: b learns of c from
    a's full state on their link. It used to learn c as DEAD and hold c's sessions for a
    whole dead_rehome_after from its start, failing (503 after pending_timeout) the
    requests that a sent to their new homes."""
    farm = make_farm(limits={"dead_rehome_after": 4, "pending_timeout": 2})
    cookie = {"Cookie": farm.cookie_header("c")}
    farm.kill("c", signal.SIGKILL)

    def c_re_homed_on_a() -> None:
        tables = farm.tables("a")
        assert tables["members"]["c"] == "dead" and tables["dead_held"] == [], tables

    await eventually_passes_async(c_re_homed_on_a, timeout=20.0, what="a still holds c")
    stopped(farm, "b")
    farm._start_node("b")

    async def b_serves() -> None:
        try:
            resp = await http_request(farm.addr("b"), "GET", "/b-up")
        except OSError as exc:  # not listening yet
            raise AssertionError(exc) from None
        assert resp.status == 200, resp.status

    await eventually_passes_async(b_serves, timeout=20.0, what="b did not come back")
    assert farm.tables("b")["dead_held"] == []
    async with asyncio.timeout(30):
        for entry in ("a", "b"):
            resp = await http_request(farm.addr(entry), "GET", "/was-c", cookie)
            assert resp.status == 200, (entry, resp.status)
            assert resp.json()["node"] in ("a", "b")
