"""A new session whose home's application refuses is placed once more on another node.

Node b's application is stopped while the health check is slow to notice
(health_interval 30 s), so b is still placeable: new sessions placed on b fail
to connect there (locally through entry b, or as a flow RESET APP_REFUSED
through another entry) before any byte reached the client. Each is retried
once on another node and answered 200 from there, with that node's home
cookie. Requests carrying b's cookie are not new sessions and are not moved:
they get 502 (b is live; its sessions wait for it).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from lb.routing.cookie import CookieKeyring
from tests.integration.test_farm_http_attacks import BACKEND_ROUGH
from tests.support.farm import (
    COOKIE_NAME,
    Farm,
    Response,
    http_request,
    read_response,
    request_bytes,
)
from tests.support.http11 import WEB_ONLY

pytestmark = pytest.mark.integration


async def get_from(addr: tuple[str, int], path: str, source: str) -> Response:
    """One request with no cookie on a fresh connection from `source` (a loopback address)."""
    reader, writer = await asyncio.open_connection(addr[0], addr[1], local_addr=(source, 0))
    try:
        writer.write(request_bytes("GET", path, {}))
        await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()


async def test_new_sessions_are_retried_away_from_a_refusing_application(
    make_farm: Callable[..., Farm],
) -> None:
    farm = make_farm(limits={"health_interval": 30.0})
    keyring = CookieKeyring(farm.name, farm.secret.encode("utf-8"))
    farm.stop_backend("b", "web")
    answered: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    async with asyncio.timeout(60):
        for i in range(60):
            entry = "abc"[i % 3]
            # its own source address per new session: placement by source spreads them
            resp = await get_from(farm.addr(entry), f"/new/{i}", f"127.0.3.{i + 1}")
            statuses[resp.status] += 1
            if resp.status == 200:
                node = resp.json()["node"]
                answered[node] += 1
                cookie = resp.cookie_value(COOKIE_NAME)
                assert cookie is not None and keyring.verify(cookie, 0.0) == node
        assert statuses == Counter({200: 60}), statuses
        assert answered["b"] == 0 and set(answered) == {"a", "c"}, answered
        retried = sum(farm.tables(n)["counters"].get("retry", 0) for n in farm.nodes)
        assert retried > 0, "no new session was placed on b at all: the test proves nothing"
        # b's own sessions stay b's: not new sessions, not retried elsewhere
        resp = await http_request(
            farm.addr("a"), "GET", "/old", {"Cookie": farm.cookie_header("b")}
        )
        assert resp.status == 502


async def test_a_new_session_on_a_pooled_flow_to_a_home_whose_application_dies_goes_elsewhere(
    make_farm: Callable[..., Farm],
) -> None:
    """a keeps a flow to b pooled; b's application dies when the next request comes on that
    connection (and takes its listener with it). The request of a new session placed on b
    goes out on the pooled flow, which breaks before any answer; it is sent once more on a
    fresh flow to b, which b answers RESET APP_REFUSED. No byte of it reached an application,
    so the new session must still be placed on another node, as on a first fresh flow."""
    farm = make_farm(
        services=dict(WEB_ONLY), backend=BACKEND_ROUGH, limits={"health_interval": 30.0}
    )
    resp = await http_request(
        farm.addr("a"), "GET", "/exit-on-next", {"Cookie": farm.cookie_header("b")}
    )
    assert resp.status == 200 and resp.json()["node"] == "b"
    pooled = Farm.pooled_flows({"a": farm.tables("a")}).get(("a", "b"), set())
    assert len(pooled) == 1, f"flows pooled from a to b: {pooled} (one, the armed one)"
    farm.backend_procs[("b", "web")].expected_exit = True  # it dies on the next request
    statuses: Counter[int] = Counter()
    async with asyncio.timeout(60):
        for i in range(30):
            resp = await get_from(farm.addr("a"), f"/new/{i}", f"127.0.4.{i + 1}")
            statuses[resp.status] += 1
            if resp.status == 200:
                assert resp.json()["node"] in ("a", "c")
    counters = farm.tables("a")["counters"]
    assert counters.get("http_retried_on_fresh_upstream", 0) > 0, (
        "no new session went out on the pooled flow to b: the test proves nothing",
        counters,
    )
    assert statuses == Counter({200: 30}), statuses
