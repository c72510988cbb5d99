"""A home lb cannot reach for now: 503 with Retry-After, not a 502.

A 502 says an application (or the home) answered badly or failed the request.
When lb itself has no way to the home for a while (its link to the home is not
up, or the home's flow table for this link is full) the condition passes: lb
answers 503 with `Retry-After` (RFC 9110 15.6.4, 10.2.3), as HAProxy answers 503
when no server is available, so a client or a retrying library waits and tries
again instead of reporting a broken application. A node that hears none of its
peers answers the sessions it holds for them the same way
(tests/integration/test_farm_isolated_restart.py).

Real node processes on loopback; one node is started from a farm file of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.farm import Farm, free_ports, http_request, read_response, request_bytes
from tests.support.http11 import WEB_ONLY
from tests.support.wait import eventually_passes_async

pytestmark = pytest.mark.integration


def _is_unavailable(status: int, headers: list[tuple[str, str]]) -> None:
    retry_after = [v for k, v in headers if k.lower() == "retry-after"]
    assert (status, retry_after) == (503, ["1"]), (status, headers)


async def test_a_home_whose_link_is_not_up_is_a_503_with_retry_after(
    make_farm: Callable[..., Farm],
) -> None:
    """a is restarted from a file in which b's forward address is a port nobody serves:
    b links to a (a hears it, b is live there), a never links to b. A request homed on b
    entering by a waits for the link (connect_timeout), then gets 503 with Retry-After;
    b, reached directly, serves it."""
    farm = make_farm()
    farm.kill("a", signal.SIGKILL)
    (nowhere,) = free_ports(1)
    text = farm.config_text().replace(
        f"127.0.0.1:{farm.ports['b'].forward}", f"127.0.0.1:{nowhere}"
    )
    path = farm.workdir / "farm-a-no-link-to-b.toml"
    path.write_text(text)
    farm.node_configs["a"] = path
    farm._start_node("a")

    async def a_serves_c() -> None:
        resp = await http_request(
            farm.addr("a"), "GET", "/via-c", {"Cookie": farm.cookie_header("c")}, timeout=5
        )
        assert resp.status == 200 and resp.json()["node"] == "c", resp.status

    await eventually_passes_async(
        a_serves_c, timeout=20.0, what="a does not reach c", retry_on=(OSError, ValueError)
    )
    async with asyncio.timeout(30):
        resp = await http_request(
            farm.addr("a"), "GET", "/mine", {"Cookie": farm.cookie_header("b")}
        )
        _is_unavailable(resp.status, resp.headers)
        tables = farm.tables("a")
        assert tables["counters"].get("link_waits_failed", 0) >= 1, tables["counters"]
        assert tables["held"] == [], tables["held"]  # a hears b: no hold, a link not up
        at_b = await http_request(
            farm.addr("b"), "GET", "/mine", {"Cookie": farm.cookie_header("b")}
        )
        assert at_b.status == 200 and at_b.json()["node"] == "b"


async def test_a_home_whose_flow_table_is_full_is_a_503_with_retry_after(
    tmp_path: Path,
) -> None:
    """b is started from a file with max_flows = 1: the one flow a keeps to it (pooled since
    the farm's readiness probe) fills b's table. While a request holds that flow (its body
    half sent), a second request homed on b needs a new flow, which b refuses (RESET
    TABLE_FULL): 503 with Retry-After. The held request then completes."""
    farm = Farm(tmp_path / "farm", nodes=("a", "b"), services=dict(WEB_ONLY))
    text = farm.config_text().replace("[limits]\n", "[limits]\nmax_flows = 1\n")
    path = farm.workdir / "farm-b-one-flow.toml"
    path.write_text(text)
    farm.node_configs["b"] = path
    try:
        farm.start()
        cookie = {"Cookie": farm.cookie_header("b")}
        async with asyncio.timeout(30):
            reader, writer = await asyncio.open_connection(*farm.addr("a"))
            try:
                body = b"0123456789"
                writer.write(request_bytes("POST", "/sha256", cookie, body)[:-5])
                await writer.drain()
                resp = await http_request(farm.addr("a"), "GET", "/second", cookie)
                _is_unavailable(resp.status, resp.headers)
                writer.write(body[-5:])
                await writer.drain()
                held = await read_response(reader)
                assert held.status == 200, held.status
                assert held.body.decode() == hashlib.sha256(body).hexdigest(), held.body
            finally:
                writer.close()
        assert farm.tables("b")["counters"].get("table_full", 0) >= 1
        assert not farm.unexpected_exits(), farm.unexpected_exits()
    finally:
        farm.close()
