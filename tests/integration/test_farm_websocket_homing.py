"""WebSocket through lb (aiohttp client): big and many messages in order, and the home cookie
of a new session on its 101 response.

The application is tests/support/backend_ext.py: after its 101 it sends one text
message ``node=<name>``, then echoes every frame.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import aiohttp
import pytest
from yarl import URL

from lb.routing.cookie import CookieKeyring
from tests.support.farm import COOKIE_NAME, Farm
from tests.support.http11 import app_farm, finish

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    f = app_farm(tmp_path_factory.mktemp("ws"))
    yield f
    crashed = finish(f)
    assert not crashed, f"processes exited during the tests: {crashed}"


def _ws_url(farm: Farm, entry: str, path: str) -> str:
    return farm.url(entry, path).replace("http://", "ws://", 1)


async def _greeting(ws: aiohttp.ClientWebSocketResponse) -> str:
    msg = await ws.receive()
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    text: str = msg.data
    assert text.startswith("node="), text
    return text.removeprefix("node=")


@pytest.mark.parametrize("path", ["local", "forwarded"])
async def test_websocket_big_and_many_messages_in_order(farm: Farm, path: str) -> None:
    entry, home = ("b", "b") if path == "local" else ("a", "b")
    big = os.urandom(1 << 20)
    async with (
        asyncio.timeout(20),
        aiohttp.ClientSession() as session,
        session.ws_connect(
            _ws_url(farm, entry, "/ws"),
            headers={"Cookie": farm.cookie_header(home)},
            max_msg_size=4 << 20,
        ) as ws,
    ):
        assert await _greeting(ws) == home
        await ws.send_bytes(big)
        echo = await ws.receive()
        assert echo.type == aiohttp.WSMsgType.BINARY, echo
        assert echo.data == big, "the 1 MiB message came back changed"
        for i in range(200):
            await ws.send_str(f"message {i}")
        got = []
        for _ in range(200):
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            got.append(msg.data)
        assert got == [f"message {i}" for i in range(200)]
        await ws.close()


async def test_new_websocket_session_gets_its_home_cookie_on_the_101(farm: Farm) -> None:
    """A WebSocket without a cookie starts a session: its 101 carries the home cookie, and a
    second WebSocket of that client (the cookie from its jar) through another entry gets home."""
    keyring = CookieKeyring(farm.name, farm.secret.encode())
    jar = aiohttp.CookieJar(unsafe=True)
    async with asyncio.timeout(20), aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.ws_connect(_ws_url(farm, "a", "/ws/new")) as ws:
            home = await _greeting(ws)
            await ws.send_str("hello")
            assert (await ws.receive()).data == "hello"
            await ws.close()
        cookies = jar.filter_cookies(URL(farm.url("a")))
        assert COOKIE_NAME in cookies, f"no home cookie on the 101: jar has {list(cookies)}"
        assert keyring.verify(cookies[COOKIE_NAME].value, time.time()) == home

        other = next(n for n in farm.nodes if n != home)
        async with session.ws_connect(_ws_url(farm, other, "/ws/again")) as ws:
            assert await _greeting(ws) == home, f"entered at {other}"
            await ws.close()
