"""Clients that go away mid-response (FIN or RST) leave no flow behind on any node."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from tests.support.farm import Farm, request_bytes

pytestmark = pytest.mark.integration

SIZE = 64 << 20


@pytest.mark.parametrize("how", ["close", "abort"])
@pytest.mark.parametrize("path", ["forwarded", "local"])
async def test_client_gone_mid_download(farm: Farm, path: str, how: str) -> None:
    entry, home = ("b", "c") if path == "forwarded" else ("c", "c")
    loop = asyncio.get_running_loop()
    socks = []
    try:
        async with asyncio.timeout(20):
            for _ in range(5):
                s = socket.socket()
                s.setblocking(False)
                socks.append(s)
                await loop.sock_connect(s, farm.addr(entry))
                await loop.sock_sendall(
                    s, request_bytes("GET", f"/bytes/{SIZE}", {"Cookie": farm.cookie_header(home)})
                )
                got = 0
                while got < 256 * 1024:
                    chunk = await loop.sock_recv(s, 65536)
                    assert chunk
                    got += len(chunk)
            for s in socks:
                if how == "abort":  # RST at once; a plain close with unread data also ends in RST
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
    finally:
        for s in socks:
            s.close()
    await asyncio.to_thread(farm.assert_clean)
    # The farm still serves that home afterwards.
    async with asyncio.timeout(10):
        s = socket.socket()
        s.setblocking(False)
        try:
            await loop.sock_connect(s, farm.addr(entry))
            await loop.sock_sendall(
                s,
                request_bytes(
                    "GET", "/after", {"Cookie": farm.cookie_header(home), "Connection": "close"}
                ),
            )
            data = b""
            while True:
                chunk = await loop.sock_recv(s, 65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
    assert data.startswith(b"HTTP/1.1 200 ")
    assert f'"node": "{home}"'.encode() in data
