"""Bodies of every size cross a forwarded flow and the local path byte-exact, both directions."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from tests.support.backend import pattern_sha256
from tests.support.farm import Farm, http_request

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
