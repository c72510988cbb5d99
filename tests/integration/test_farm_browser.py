"""A browser-like client: a fresh browser opens 6 parallel keep-alive connections for a page and
keeps using them; every request of one browser must be answered by one home.

Each browser is an aiohttp session with its own cookie jar, its own loopback
source address (so browsers are different clients to lb) and 6 connections at
most, as browsers keep per host. The page load starts with 6 requests at once,
none of which carries a cookie yet; the remaining requests reuse those
connections and carry whatever home cookie the jar holds by then.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace

import aiohttp
import pytest
from yarl import URL

from lb.routing.cookie import CookieKeyring
from tests.support.farm import COOKIE_NAME, Farm
from tests.support.http11 import app_farm, finish, source_address

pytestmark = pytest.mark.integration

BROWSERS = 20
CONNECTIONS = 6
REQUESTS = 60


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    f = app_farm(tmp_path_factory.mktemp("browser"))
    yield f
    crashed = finish(f)
    assert not crashed, f"processes exited during the tests: {crashed}"


async def _browse(farm: Farm, b: int, entry: str) -> tuple[list[str], int, str | None]:
    """One fresh browser's page load and reloads: the answering nodes, the connections it
    opened, and the node its final home cookie names."""
    opened = 0

    async def on_create(_s: aiohttp.ClientSession, _c: SimpleNamespace, _p: object) -> None:
        nonlocal opened
        opened += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_create)
    jar = aiohttp.CookieJar(unsafe=True)
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, local_addr=(source_address(100 + b), 0))
    nodes: list[str] = []
    async with aiohttp.ClientSession(
        cookie_jar=jar, connector=connector, trace_configs=[trace]
    ) as session:

        async def get(k: int) -> str:
            async with session.get(farm.url(entry, f"/page/{b}/{k}")) as resp:
                assert resp.status == 200
                await resp.read()
                assert resp.headers["X-Path"] == f"/page/{b}/{k}"
                return resp.headers["X-Node"]

        # batches of 6 at once: the first (the page load) opens the 6 connections and
        # carries no cookie; the later ones reuse them with the jar's cookies
        for start in range(0, REQUESTS, CONNECTIONS):
            batch = range(start, min(start + CONNECTIONS, REQUESTS))
            nodes += await asyncio.gather(*(get(k) for k in batch))
        cookie = jar.filter_cookies(URL(farm.url(entry))).get(COOKIE_NAME)
    keyring = CookieKeyring(farm.name, farm.secret.encode())
    home = keyring.verify(cookie.value, time.time()) if cookie is not None else None
    return nodes, opened, home


async def test_every_request_of_a_browser_reaches_one_home(farm: Farm) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    entries = [rng.choice(farm.nodes) for _ in range(BROWSERS)]
    async with asyncio.timeout(20):
        results = await asyncio.gather(*(_browse(farm, b, e) for b, e in enumerate(entries)))
    split = {}
    for b, (nodes, opened, home) in enumerate(results):
        assert opened == CONNECTIONS, f"browser {b} opened {opened} connections (seed {seed})"
        assert len(nodes) == REQUESTS
        answered = Counter(nodes)
        if len(answered) != 1 or home not in answered:
            split[b] = f"via {entries[b]}: {dict(answered)}, cookie names {home}"
    assert not split, (
        f"{len(split)} of {BROWSERS} browsers were served by several homes "
        f"(or not by their cookie's home), seed {seed}: {split}"
    )
