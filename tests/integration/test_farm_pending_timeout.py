"""A home that never verifies a new flow: the entry answers 502 after pending_timeout."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import pytest

from tests.support.farm import Farm, http_request

pytestmark = pytest.mark.integration

PENDING = 1.0


async def test_stopped_home_gives_502_after_pending_timeout(
    make_farm: Callable[..., Farm],
) -> None:
    # dead_after is long, so the pending timeout (not liveness) ends the flow; pooled
    # flows expire fast, so the request below opens a new flow (NEW, never VERIFIED)
    farm = make_farm(
        limits={
            "pending_timeout": PENDING,
            "ping_interval": 0.5,
            "dead_after": 20.0,
            "pool_idle_timeout": 0.3,
        }
    )
    entry, home = "a", "b"
    # start from clean tables: the start-up probes' flows must have ended before b freezes
    await asyncio.to_thread(farm.assert_clean)
    await asyncio.to_thread(farm.assert_no_pooled_flows, entry)
    farm.kill(home, signal.SIGSTOP)
    try:
        start = time.monotonic()
        async with asyncio.timeout(15):
            resp = await http_request(
                farm.addr(entry), "GET", "/pending", {"Cookie": farm.cookie_header(home)}
            )
        elapsed = time.monotonic() - start
        assert resp.status == 502
        assert PENDING - 0.2 <= elapsed <= PENDING + 1.0, elapsed
        tables = await asyncio.to_thread(farm.tables, entry)
        # the entry's side of the flow it gave up on is gone (flows b keeps pooled to a,
        # on a's "b in" link, are b's and b is stopped: not looked at here)
        out = {k: t for k, t in tables["links"].items() if k.endswith(" out")}
        assert not any(t["pending"] or t["forward"] for t in out.values()), tables
        assert not tables["local"], tables
    finally:
        farm.kill(home, signal.SIGCONT)

    # The home wakes up, finds the NEW of a flow the entry gave up on: nothing may stay.
    # A fixed wait: the home handles that NEW without logging it, and a poll of the
    # tables could see them clean before the home has even woken up.
    await asyncio.sleep(0.5)
    await asyncio.to_thread(farm.assert_clean)
    async with asyncio.timeout(15):
        resp = await http_request(
            farm.addr(entry), "GET", "/awake", {"Cookie": farm.cookie_header(home)}
        )
    assert resp.status == 200
    assert resp.json()["node"] == home
    await asyncio.to_thread(farm.assert_clean)
    await asyncio.to_thread(farm.assert_no_pooled_flows, entry)
