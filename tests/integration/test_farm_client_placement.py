"""New sessions of one client agree on a home (real processes, real sockets).

A browser opens about six connections at once before any response set a
cookie. Each "browser" here is its own loopback source address (127.0.0.x: one
client address each, as the router sees it), opens 6 parallel connections
without a cookie to one entry, and then 6 more carrying the home cookie it got:
every answer comes from one node. Different browsers still spread over the
farm. With 2 workers per node the kernel spreads one browser's connections
over both processes, which share no memory: they agree through placement by
the client's source.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.support.farm import COOKIE_NAME, Farm, read_response, request_bytes

pytestmark = pytest.mark.integration

BROWSERS = 20
PARALLEL = 6
HOLD = 10.0  # placement_hold (the default): the window of placement by source


async def get(
    farm: Farm, entry: str, source: str, path: str, cookie: str | None = None
) -> tuple[int, str, str | None]:
    """One request on a fresh connection from `source`: (status, node, the home cookie set)."""
    reader, writer = await asyncio.open_connection(*farm.addr(entry), local_addr=(source, 0))
    try:
        headers = {"Connection": "close"}
        if cookie is not None:
            headers["Cookie"] = f"{COOKIE_NAME}={cookie}"
        writer.write(request_bytes("GET", path, headers))
        resp = await read_response(reader)
        node = resp.json()["node"] if resp.status == 200 else "?"
        return resp.status, node, resp.cookie_value(COOKIE_NAME)
    finally:
        writer.close()


async def browse(farm: Farm, entry: str, source: str) -> tuple[set[str], set[str], bool]:
    """A fresh browser: a page of 6 parallel new sessions, then 6 parallel requests with
    the cookie it kept (the last one set). Returns (homes of the page, homes after,
    whether the page's requests may have crossed a placement window: see below)."""
    started = time.time()
    page = await asyncio.gather(*(get(farm, entry, source, f"/page/{k}") for k in range(PARALLEL)))
    crossed = math.floor(started / HOLD) != math.floor(time.time() / HOLD)
    assert all(status == 200 for status, _, _ in page), page
    cookies = [c for _, _, c in page if c is not None]
    assert len(cookies) == PARALLEL, page  # each was a new session: each got a home cookie
    later = await asyncio.gather(
        *(get(farm, entry, source, f"/asset/{k}", cookies[-1]) for k in range(PARALLEL))
    )
    assert all(status == 200 for status, _, _ in later), later
    return {node for _, node, _ in page}, {node for _, node, _ in later}, crossed


@pytest.mark.parametrize("workers", [1, 2])
async def test_parallel_new_sessions_of_one_browser_share_one_home(
    make_farm: Callable[..., Farm], workers: int
) -> None:
    farm = make_farm(workers=workers)
    homes: Counter[str] = Counter()
    split: list[tuple[str, set[str], set[str]]] = []
    crossings: list[tuple[str, set[str], set[str]]] = []
    async with asyncio.timeout(120):
        for i in range(BROWSERS):
            source = f"127.0.0.{20 + i}"
            entry = farm.nodes[i % len(farm.nodes)]
            page, later, crossed = await browse(farm, entry, source)
            if len(page) != 1 or later != page:
                if crossed and workers > 1:
                    crossings.append((source, page, later))
                else:
                    split.append((source, page, later))
            homes.update(page)
    # One process holds a client's home (PlacementMemory): no browser is ever split. Two
    # processes share no memory and agree through placement by source as long as their
    # views agree up to the load margin. A worker's own stall no longer makes it suspect
    # its peers (lb.node.timer reads before it judges silence), but a peer's worker that
    # stalls past suspect_after (0.4 s here) on a loaded test machine silences the links
    # it serves, and only the workers at their other end suspect that peer: their
    # candidates change, so at most one browser in 20 may be split there (none in 300
    # on a quiet machine).
    # A page whose requests straddle the boundary of a placement window (placement_hold,
    # docs/routing.md: the rule draws a new pair per window) can be placed in two windows
    # by two workers; it is counted apart (the same straddle in one process is held by
    # its memory). Any other split counts.
    allowed = 0 if workers == 1 else 1
    assert len(split) <= allowed, (
        f"browsers whose requests went to several homes: {split} "
        f"(and across a window boundary: {crossings})"
    )
    # different clients still spread over the farm
    assert len(homes) >= 2, homes


async def test_one_address_holds_its_home_across_entries_and_rounds(farm: Farm) -> None:
    """Connections from one address at every entry, in several rounds inside the hold."""
    source = f"127.0.0.{60 + len(farm.nodes)}"
    async with asyncio.timeout(60):
        answers = []
        for _ in range(3):
            answers += await asyncio.gather(
                *(get(farm, entry, source, "/hold") for entry in farm.nodes * 2)
            )
    assert all(status == 200 for status, _, _ in answers), answers
    assert len({node for _, node, _ in answers}) == 1, answers
