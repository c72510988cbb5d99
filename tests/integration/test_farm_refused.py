"""The home's application refuses: 502 for http (forwarded and local), a close for tcp.

Afterwards no flow may be left in any pending or forward table of any node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.support.farm import Farm, http_request, open_conn, read_until_closed

pytestmark = pytest.mark.integration


async def test_http_refused_by_home_app_is_502(make_farm: Callable[..., Farm]) -> None:
    farm = make_farm()
    farm.stop_backend("b", "web")
    async with asyncio.timeout(30):
        for entry in ("a", "c", "b"):  # forwarded from a and c, local at b
            resp = await http_request(
                farm.addr(entry), "GET", "/refused", {"Cookie": farm.cookie_header("b")}
            )
            assert resp.status == 502, f"entry {entry}: {resp.status} {resp.body[:200]!r}"
        # Other homes are unaffected.
        resp = await http_request(farm.addr("b"), "GET", "/", {"Cookie": farm.cookie_header("c")})
        assert resp.status == 200
        assert resp.json()["node"] == "c"
    await asyncio.to_thread(farm.assert_clean)

    # The application comes back: the same session is served again.
    farm.start_backend("b", "web")
    async with asyncio.timeout(20):
        for entry in farm.nodes:
            resp = await http_request(
                farm.addr(entry), "GET", "/back", {"Cookie": farm.cookie_header("b")}
            )
            assert resp.status == 200
            assert resp.json()["node"] == "b"
    await asyncio.to_thread(farm.assert_clean)


async def test_502_keeps_the_connection_honest(make_farm: Callable[..., Farm]) -> None:
    """After the 502 lb ends the connection: no hanging socket, no second response."""
    farm = make_farm()
    farm.stop_backend("a", "web")
    async with asyncio.timeout(20):
        reader, writer = await open_conn(farm.addr("c"))
        try:
            writer.write(
                f"GET / HTTP/1.1\r\nHost: x\r\nCookie: {farm.cookie_header('a')}\r\n\r\n".encode()
            )
            await writer.drain()
            data, _ = await read_until_closed(reader)
        finally:
            writer.close()
    assert data.startswith(b"HTTP/1.1 502 "), data[:200]
    await asyncio.to_thread(farm.assert_clean)


async def _tcp_home(farm: Farm) -> str:
    reader, writer = await open_conn(farm.addr("a", "raw"))
    try:
        line = await reader.readline()
    finally:
        writer.close()
    assert line.startswith(b"node="), line
    return line[5:].strip().decode()


async def test_tcp_refused_by_home_app_closes(make_farm: Callable[..., Farm]) -> None:
    farm = make_farm()
    async with asyncio.timeout(10):
        home = await _tcp_home(farm)
    farm.stop_backend(home, "raw")
    async with asyncio.timeout(30):
        for entry in farm.nodes:
            reader, writer = await open_conn(farm.addr(entry, "raw"))
            try:
                writer.write(b"hello?\n")
                data, _how = await read_until_closed(reader)
            finally:
                writer.close()
            assert data == b"", f"entry {entry} (home {home}) sent {data!r}"
    await asyncio.to_thread(farm.assert_clean)


async def test_application_that_never_accepts_is_502_within_the_connect_timeout(
    make_farm: Callable[..., Farm],
) -> None:
    """A hung application (handshake never completes): 502 after connect_timeout, no leftovers."""
    import socket
    import time

    farm = make_farm(limits={"connect_timeout": 1.0, "pending_timeout": 5.0})
    farm.stop_backend("b", "web")
    # A listener whose backlog is full and never accepted: further SYNs are dropped,
    # so connecting to it hangs, exactly like a stalled application.
    hung = socket.socket()
    hung.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hung.bind(("127.0.0.1", farm.ports["b"].apps["web"]))
    hung.listen(0)
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", farm.ports["b"].apps["web"]))
            fillers.append(s)
        # a fixed wait for the kernel to fill the backlog: a full SYN queue shows nowhere
        # a test could poll
        await asyncio.sleep(0.3)
        async with asyncio.timeout(20):
            for entry in ("b", "a"):  # local at b, forwarded from a
                t0 = time.monotonic()
                resp = await http_request(
                    farm.addr(entry), "GET", "/hung", {"Cookie": farm.cookie_header("b")}
                )
                took = time.monotonic() - t0
                assert resp.status == 502, (entry, resp.status)
                assert 0.9 <= took <= 2.5, f"entry {entry}: 502 after {took:.2f} s"
        await asyncio.to_thread(farm.assert_clean)
    finally:
        for s in fillers:
            s.close()
        hung.close()
