"""Bodies of every size cross a forwarded flow and the local path byte-exact, both directions."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket

import pytest

from tests.support.backend import pattern_sha256
from tests.support.farm import Farm, http_request, read_response, request_bytes

pytestmark = pytest.mark.integration

SIZES = [0, 1024, 1 << 20, 16 << 20]
# (entry, home): forwarded a -> b, local b -> b
PATHS = {"forwarded": ("a", "b"), "local": ("b", "b")}


@pytest.mark.parametrize("size", SIZES, ids=lambda n: f"{n}B")
@pytest.mark.parametrize("path", list(PATHS))
async def test_upload_echo_is_byte_exact(farm: Farm, path: str, size: int) -> None:
    entry, home = PATHS[path]
    body = os.urandom(size)
    async with asyncio.timeout(60):
        resp = await http_request(
            farm.addr(entry), "POST", "/echo", {"Cookie": farm.cookie_header(home)}, body
        )
    assert resp.status == 200
    assert resp.header("X-Node") == home
    assert len(resp.body) == size
    assert hashlib.sha256(resp.body).hexdigest() == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("size", SIZES, ids=lambda n: f"{n}B")
@pytest.mark.parametrize("path", list(PATHS))
async def test_download_is_byte_exact(farm: Farm, path: str, size: int) -> None:
    entry, home = PATHS[path]
    async with asyncio.timeout(60):
        resp = await http_request(
            farm.addr(entry), "GET", f"/bytes/{size}", {"Cookie": farm.cookie_header(home)}
        )
    assert resp.status == 200
    assert resp.header("X-Node") == home
    assert len(resp.body) == size
    assert hashlib.sha256(resp.body).hexdigest() == pattern_sha256(size)


@pytest.mark.parametrize("path", list(PATHS))
async def test_a_slow_reader_leaves_no_pooled_upstream_paused(farm: Farm, path: str) -> None:
    """A client that does not read makes lb pause the response's upstream; when the
    response ends while it is paused, the upstream goes back to the pool all the same,
    and the next requests on it (the pool hands out the last one in first) must get
    their whole responses: a pooled upstream left paused stalls them."""
    entry, home = PATHS[path]
    cookie = {"Cookie": farm.cookie_header(home)}
    size = 200 << 10  # within one flow window: it all reaches the entry while paused
    host, port = farm.addr(entry)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    async with asyncio.timeout(30):
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(request_bytes("GET", f"/bytes/{size}", cookie))
            await writer.drain()
            await asyncio.sleep(1.0)  # not reading: lb's buffer to us fills, it pauses
            slow = await read_response(reader)
        finally:
            writer.close()
        assert hashlib.sha256(slow.body).hexdigest() == pattern_sha256(size)
    for _ in range(3):
        async with asyncio.timeout(10):
            resp = await http_request(farm.addr(entry), "GET", f"/bytes/{1 << 20}", cookie)
        assert resp.status == 200 and resp.header("X-Node") == home
        assert hashlib.sha256(resp.body).hexdigest() == pattern_sha256(1 << 20)


async def test_upload_digest_on_the_home(farm: Farm) -> None:
    """The home's application sees exactly the bytes the client sent (not only an echo)."""
    body = os.urandom(3 << 20)
    async with asyncio.timeout(60):
        resp = await http_request(
            farm.addr("c"), "POST", "/sha256", {"Cookie": farm.cookie_header("a")}, body
        )
    assert resp.status == 200
    assert resp.header("X-Node") == "a"
    assert resp.body.decode() == hashlib.sha256(body).hexdigest()


async def test_tables_are_empty_after_the_transfers(farm: Farm) -> None:
    await asyncio.to_thread(farm.assert_clean)
