"""A home's load counts the sessions it serves on forwarded HTTP flows that are not idle in a pool.

docs/protocol.md "Liveness and load": a flow of an HTTP service counts when it
carried bytes since the previous PING or the entry's bytes await an answer. Real
processes (tests/support/backend_ext.py as the application): entry `a` forwards
to home `b` (the cookie names `b`). What a session is at `b` and must count:

- a WebSocket forwarded to `b`, open and quiet: a local one counts at its node
  for as long as it is open (lb.node.http_client: local_active), a forwarded one
  is a session of the same kind at its home;
- a request on a fresh flow whose application connect has not completed yet (the
  application's accept queue is full: the home is overloaded, it must not look idle);
- a long poll (the application answers after seconds) on a forwarded flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
from collections.abc import Iterator

import aiohttp
import pytest

from tests.integration.conftest import running
from tests.support.admin import AdminFarm
from tests.support.farm import http_request
from tests.support.http11 import BACKEND_EXT, WEB_ONLY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminFarm]:
    yield from running(
        AdminFarm(
            tmp_path_factory.mktemp("load-sessions"),
            nodes=("a", "b"),
            backend=BACKEND_EXT,
            services=dict(WEB_ONLY),
            limits={"ping_interval": 0.2, "pool_idle_timeout": 120, "connect_timeout": 4.0},
        )
    )


def b_load(farm: AdminFarm) -> tuple[int, float]:
    """(b's load as b says it, b's load as a sees it)."""
    return farm.load_of("b", seen_by="a")


async def sample_b(farm: AdminFarm, seconds: float) -> list[tuple[int, float]]:
    seen = []
    for _ in range(int(seconds / 0.1)):
        await asyncio.sleep(0.1)
        seen.append(await asyncio.to_thread(b_load, farm))
    return seen


async def test_a_quiet_forwarded_websocket_is_load(farm: AdminFarm) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            farm.url("a", "/ws").replace("http://", "ws://", 1),
            headers={"Cookie": farm.cookie_header("b")},
        ) as ws,
    ):
        greeting = await ws.receive()
        assert greeting.data == "node=b", greeting
        seen = await sample_b(farm, 1.5)
        # a local WebSocket counts at its node while open (local_active); this one is
        # the same session, served by b for as long as it is open
        assert all(own >= 1 and by_a >= 1 for own, by_a in seen[-5:]), seen


async def forwarded_get(farm: AdminFarm, path: str) -> int:
    """The status of GET `path` through entry a with b's home cookie."""
    resp = await http_request(farm.addr("a"), "GET", path, {"Cookie": farm.cookie_header("b")})
    return resp.status


async def test_a_long_poll_is_load(farm: AdminFarm) -> None:
    poll = asyncio.create_task(forwarded_get(farm, "/sleep/2500"))
    try:
        seen = await sample_b(farm, 1.5)
        assert all(own >= 1 for own, _ in seen[-5:]), seen
    finally:
        assert await poll == 200


async def test_requests_waiting_for_an_overloaded_application_are_load(farm: AdminFarm) -> None:
    """b's application stops accepting (SIGSTOP, its accept queue filled): the flows `a`
    opens for new requests wait for b's connect to its application; b serves them."""
    parallel = 8
    backend = farm.backend_procs[("b", "web")].popen
    app = ("127.0.0.1", farm.ports["b"].apps["web"])
    fillers: list[socket.socket] = []
    polls: list[asyncio.Task[int]] = []
    os.kill(backend.pid, signal.SIGSTOP)
    try:
        for _ in range(1100):  # past the backlog (1024): later SYNs are dropped
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(app)
            fillers.append(s)
        polls = [asyncio.create_task(forwarded_get(farm, f"/p/{k}")) for k in range(parallel)]
        seen = await sample_b(farm, 1.5)
        status = json.dumps(farm.get_json("b", "/api/status"))
        assert all(own >= parallel for own, _ in seen[-5:]), (seen, status)
    finally:
        for s in fillers:
            s.close()
        os.kill(backend.pid, signal.SIGCONT)
        with contextlib.suppress(Exception):
            await asyncio.gather(*polls, return_exceptions=True)
