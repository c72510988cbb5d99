"""A node restarted while it reaches no peer keeps the peers' sessions theirs.

The farm: a, b, c. c is killed (down for good here). a is restarted from a
farm file of its own in which a and b cannot reach each other (a's forward
address and b's are ports nobody serves on the other side), so the restarted
a hears no peer at all: b is alive and serving, but a never hears from it.

A client whose home cookie names b enters by a. a cannot tell "b is down"
from "I am cut off": it must not take the session onto itself (the user would
lose it, and once the link is back the session would be split between what b
and a hold). It answers 503 with Retry-After (the home cannot be reached for
now) instead. Its own new sessions it still serves. Before the fix, a answered
200 from its own application with a fresh cookie naming a.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import pytest

from tests.support.farm import COOKIE_NAME, Farm, free_ports, http_request
from tests.support.wait import eventually_passes_async

pytestmark = pytest.mark.integration


async def test_an_isolated_restarted_node_does_not_take_a_live_peers_sessions(
    make_farm: Callable[..., Farm],
) -> None:
    farm = make_farm()
    farm.kill("c", signal.SIGKILL)
    farm.kill("a", signal.SIGKILL)
    # a's own file: a forwards on a port b does not know, b's forward is a port
    # nobody listens on; so no link between a and b in either direction
    new_a, nowhere = free_ports(2)
    text = farm.config_text()
    text = text.replace(f"127.0.0.1:{farm.ports['a'].forward}", f"127.0.0.1:{new_a}")
    text = text.replace(f"127.0.0.1:{farm.ports['b'].forward}", f"127.0.0.1:{nowhere}")
    path = farm.workdir / "farm-a-cut.toml"
    path.write_text(text)
    farm.node_configs["a"] = path
    farm._start_node("a")

    def a_takes_clients() -> None:
        # the log file is appended to: the first life's record, then the restart's
        assert len(farm.events("a", "node_started")) == 2, "a has not started again yet"

    await eventually_passes_async(a_takes_clients, timeout=20.0, what="a did not start")

    async with asyncio.timeout(30):
        # a's own new session: served by a
        fresh = await http_request(farm.addr("a"), "GET", "/fresh")
        assert fresh.status == 200
        assert fresh.json()["node"] == "a"
        # b's session entering by a: not re-homed onto a
        resp = await http_request(
            farm.addr("a"), "GET", "/mine", {"Cookie": farm.cookie_header("b")}
        )
        taken = resp.status == 200 and resp.json().get("node") == "a"
        assert not taken, (
            f"a took b's session: {resp.status}, new cookie {resp.cookie_value(COOKIE_NAME)}"
        )
        assert resp.cookie_value(COOKIE_NAME) is None
        # the hold passes (a link up ends it): 503 with Retry-After, not an application's 502
        assert (resp.status, resp.header("Retry-After")) == (503, "1"), resp.headers
        # the operator is told why: a started hearing nobody, and holds b's and c's sessions
        started = farm.events("a", "started_without_all_peers")
        assert started and started[-1]["held"] == ["b", "c"], started
        assert farm.tables("a")["held"] == ["b", "c"]  # and SIGUSR1 says it too
        # and b, alive, still serves it
        at_b = await http_request(
            farm.addr("b"), "GET", "/mine", {"Cookie": farm.cookie_header("b")}
        )
        assert at_b.status == 200 and at_b.json()["node"] == "b"
