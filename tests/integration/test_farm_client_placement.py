"""New sessions of one client agree on a home (real processes, real sockets).

A browser opens about six connections at once before any response set a
cookie. Each "browser" here is its own loopback source address (127.0.0.x: one
client address each, as the router sees it), opens 6 parallel connections
without a cookie to one entry, and then 6 more carrying the home cookie it got:
every answer comes from one node. Different browsers still spread over the
farm. With 2 workers per node the kernel spreads one browser's connections
over both processes, which share no memory: they agree by worker 0's word
over the worker bus (lb.node.placing).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.support.farm import COOKIE_NAME, Farm, read_response, request_bytes

pytestmark = pytest.mark.integration

BROWSERS = 20
PARALLEL = 6


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


async def browse(farm: Farm, entry: str, source: str) -> tuple[set[str], set[str]]:
    """A fresh browser: a page of 6 parallel new sessions, then 6 parallel requests with
    the cookie it kept (the last one set). Returns (homes of the page, homes after)."""
    page = await asyncio.gather(*(get(farm, entry, source, f"/page/{k}") for k in range(PARALLEL)))
    assert all(status == 200 for status, _, _ in page), page
    cookies = [c for _, _, c in page if c is not None]
    assert len(cookies) == PARALLEL, page  # each was a new session: each got a home cookie
    later = await asyncio.gather(
        *(get(farm, entry, source, f"/asset/{k}", cookies[-1]) for k in range(PARALLEL))
    )
    assert all(status == 200 for status, _, _ in later), later
    return {node for _, node, _ in page}, {node for _, node, _ in later}


def disagreements(farm: Farm) -> list[dict[str, object]]:
    """What lets two workers of a node see the farm differently for a moment: a peer
    suspected by one worker (the worker at the other end of its link stalled past
    suspect_after), or worker 0's word on a placement that came too late."""
    return [
        r
        for n in farm.nodes
        for r in farm.events(n)
        if (r.get("event") == "node_state" and r.get("new") in ("suspect", "dead"))
        or r.get("event") == "placement_ask_late"
    ]


@pytest.mark.parametrize("workers", [1, 2])
async def test_parallel_new_sessions_of_one_browser_share_one_home(
    make_farm: Callable[..., Farm], workers: int
) -> None:
    farm = make_farm(workers=workers)
    homes: Counter[str] = Counter()
    split: list[tuple[str, set[str], set[str]]] = []
    async with asyncio.timeout(120):
        for i in range(BROWSERS):
            source = f"127.0.0.{20 + i}"
            entry = farm.nodes[i % len(farm.nodes)]
            page, later = await browse(farm, entry, source)
            if len(page) != 1 or later != page:
                split.append((source, page, later))
            homes.update(page)
    # One process holds a client's home (PlacementMemory), across placement windows too.
    # Several workers of a node follow worker 0's word (lb.node.placing), so no browser
    # is split either, unless a worker saw the farm differently for a moment: a peer
    # suspected by it alone (the peer's worker at the other end of its link stalled
    # past suspect_after, 0.4 s here, on a loaded test machine) is not placeable for it,
    # or worker 0's answer came too late. Then one browser in 20 may be split.
    seen_apart = disagreements(farm) if workers > 1 else []
    allowed = 1 if seen_apart else 0
    assert len(split) <= allowed, (
        f"browsers whose requests went to several homes: {split} "
        f"(moments the workers saw the farm apart: {seen_apart})"
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


async def test_the_workers_of_a_node_hold_a_source_across_a_placement_window(
    make_farm: Callable[..., Farm],
) -> None:
    """A source's first new session just before a placement window ends, more just after,
    on fresh connections that the kernel spreads over both workers: all on one home.

    The placement rule draws a new pair of candidates in each window, so a worker that
    had only the rule would place the later ones afresh, on another home two times in
    three. Only a memory shared by the workers (worker 0's word, lb.node.placing) holds
    the source's home for placement_hold from its first placement, as one process does.
    """
    hold = 2.0
    farm = make_farm(workers=2, limits={"placement_hold": hold})
    sources = [f"127.0.0.{100 + k}" for k in range(6)]
    async with asyncio.timeout(60):
        # start 0.5 s before a window boundary: the first placements land in one window
        now = time.time()
        boundary = (now // hold + 1) * hold
        if boundary - now < 0.5:
            boundary += hold
        await asyncio.sleep(boundary - 0.5 - time.time())
        first = await asyncio.gather(*(get(farm, "a", s, "/first") for s in sources))
        assert time.time() < boundary, "the first placements took too long to test this"
        await asyncio.sleep(boundary + 0.1 - time.time())
        later = await asyncio.gather(
            *(get(farm, "a", s, f"/later/{k}") for s in sources for k in range(8))
        )
    assert all(status == 200 for status, _, _ in first + later), (first, later)
    homes = {s: node for s, (_, node, _) in zip(sources, first, strict=True)}
    moved = [
        (s, homes[s], node)
        for i, (_, node, _) in enumerate(later)
        if node != homes[(s := sources[i // 8])]
    ]
    assert moved == [], f"new sessions placed away from their source's home: {moved}"


async def test_pipelined_new_sessions_on_pooled_connections_wait_in_order(
    make_farm: Callable[..., Farm],
) -> None:
    """A pooling client (an upstream proxy without X-Forwarded-For) sends several new
    sessions back to back on each of a few keep-alive connections, in one write, with
    two workers per node. A worker other than worker 0 holds the first of a source's
    new sessions for worker 0's word and the pipelined ones behind it: every answer
    comes, in order, and every one of a source is on one home."""
    farm = make_farm(workers=2)
    depth, connections = 5, 8

    async def pooled(source: str) -> list[tuple[int, str, str]]:
        reader, writer = await asyncio.open_connection(*farm.addr("b"), local_addr=(source, 0))
        try:
            writer.write(b"".join(request_bytes("GET", f"/p/{k}") for k in range(depth)))
            answers = []
            for _ in range(depth):
                resp = await read_response(reader)
                answers.append((resp.status, resp.json()["node"], resp.json()["path"]))
            return answers
        finally:
            writer.close()

    async with asyncio.timeout(60):
        sources = [f"127.0.0.{140 + k // 2}" for k in range(connections)]  # 2 per source
        results = await asyncio.gather(*(pooled(s) for s in sources))
    for source, answers in zip(sources, results, strict=True):
        assert [a[0] for a in answers] == [200] * depth, (source, answers)
        assert [a[2] for a in answers] == [f"/p/{k}" for k in range(depth)], answers
    by_source: dict[str, set[str]] = {}
    for source, answers in zip(sources, results, strict=True):
        by_source.setdefault(source, set()).update(node for _, node, _ in answers)
    split = {s: homes for s, homes in by_source.items() if len(homes) != 1}
    seen_apart = disagreements(farm)
    assert len(split) <= (1 if seen_apart else 0), (split, seen_apart)
