"""A client that half-closes after its request still gets the whole response, then a clean end."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from tests.support.backend import pattern_sha256
from tests.support.farm import Farm, open_conn, read_response, read_until_closed, request_bytes

pytestmark = pytest.mark.integration

PATHS = {"forwarded": ("c", "a"), "local": ("a", "a")}


@pytest.mark.parametrize("path", list(PATHS))
async def test_half_closed_get_gets_full_response(farm: Farm, path: str) -> None:
    entry, home = PATHS[path]
    size = 2 << 20
    async with asyncio.timeout(30):
        reader, writer = await open_conn(farm.addr(entry))
        try:
            writer.write(
                request_bytes("GET", f"/bytes/{size}", {"Cookie": farm.cookie_header(home)})
            )
            await writer.drain()
            writer.write_eof()
            resp = await read_response(reader)
            rest, how = await read_until_closed(reader)
        finally:
            writer.close()
    assert resp.status == 200
    assert resp.header("X-Node") == home
    assert hashlib.sha256(resp.body).hexdigest() == pattern_sha256(size)
    assert rest == b""
    assert how == "eof"


@pytest.mark.parametrize("path", list(PATHS))
async def test_half_closed_post_gets_full_echo(farm: Farm, path: str) -> None:
    entry, home = PATHS[path]
    body = os.urandom(1 << 20)
    async with asyncio.timeout(30):
        reader, writer = await open_conn(farm.addr(entry))
        try:
            writer.write(request_bytes("POST", "/echo", {"Cookie": farm.cookie_header(home)}, body))
            await writer.drain()
            writer.write_eof()
            resp = await read_response(reader)
            rest, how = await read_until_closed(reader)
        finally:
            writer.close()
    assert resp.status == 200
    assert resp.header("X-Node") == home
    assert resp.body == body
    assert (rest, how) == (b"", "eof")


@pytest.mark.parametrize("path", list(PATHS))
async def test_request_and_half_close_in_one_write(farm: Farm, path: str) -> None:
    """The whole request and the FIN arrive together, before lb has routed the connection."""
    entry, home = PATHS[path]
    async with asyncio.timeout(30):
        reader, writer = await open_conn(farm.addr(entry))
        try:
            writer.write(request_bytes("GET", "/hc", {"Cookie": farm.cookie_header(home)}))
            writer.write_eof()
            resp = await read_response(reader)
            rest, how = await read_until_closed(reader)
        finally:
            writer.close()
    assert resp.status == 200
    assert resp.json()["node"] == home
    assert (rest, how) == (b"", "eof")
