"""The entry answers 400, 408 and 431 itself for heads it cannot route, and keeps no flow."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.farm import Farm, open_conn, read_until_closed

pytestmark = pytest.mark.integration

HEAD_TIMEOUT = 2.0  # DEFAULT_LIMITS in tests/support/farm.py
HEAD_BYTES = 16384


def _status(data: bytes) -> int:
    assert data.startswith(b"HTTP/1."), data[:200]
    return int(data.split(b" ", 2)[1])


async def _send_and_read(farm: Farm, entry: str, data: bytes) -> tuple[bytes, str]:
    reader, writer = await open_conn(farm.addr(entry))
    try:
        writer.write(data)
        await writer.drain()
        return await read_until_closed(reader)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "head",
    [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
    ],
    ids=["garbage", "header-without-colon", "bad-version", "conflicting-length"],
)
async def test_malformed_head_is_400(farm: Farm, head: bytes) -> None:
    async with asyncio.timeout(10):
        data, _ = await _send_and_read(farm, "a", head)
    assert _status(data) == 400


async def test_head_larger_than_head_bytes_is_431(farm: Farm) -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (HEAD_BYTES + 1000) + b"\r\n\r\n"
    async with asyncio.timeout(10):
        data, _ = await _send_and_read(farm, "b", head)
    assert _status(data) == 431


async def test_slowloris_head_is_408_after_head_timeout(farm: Farm) -> None:
    """A head that trickles in but never completes is cut at head_timeout, not later."""
    async with asyncio.timeout(15):
        reader, writer = await open_conn(farm.addr("c"))
        start = time.monotonic()
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()

            async def trickle() -> None:
                for i in range(40):
                    await asyncio.sleep(0.25)
                    writer.write(b"X-Drip-%d: 1\r\n" % i)
                    await writer.drain()

            drip = asyncio.create_task(trickle())
            try:
                data, _ = await read_until_closed(reader)
            finally:
                drip.cancel()
                await asyncio.gather(drip, return_exceptions=True)
            elapsed = time.monotonic() - start
        finally:
            writer.close()
    assert _status(data) == 408
    assert HEAD_TIMEOUT - 0.3 <= elapsed <= HEAD_TIMEOUT + 1.5, elapsed


async def test_silent_client_is_dropped_after_head_timeout(farm: Farm) -> None:
    async with asyncio.timeout(15):
        reader, writer = await open_conn(farm.addr("a"))
        start = time.monotonic()
        try:
            data, _ = await read_until_closed(reader)
        finally:
            writer.close()
    elapsed = time.monotonic() - start
    assert data == b"" or _status(data) == 408
    assert HEAD_TIMEOUT - 0.3 <= elapsed <= HEAD_TIMEOUT + 1.5, elapsed


async def test_no_flow_left_after_head_errors(farm: Farm) -> None:
    await asyncio.to_thread(farm.assert_clean)


async def test_head_just_under_head_bytes_is_served(farm: Farm) -> None:
    cookie = farm.cookie_header("c")
    filler = "x" * (HEAD_BYTES - 600)
    async with asyncio.timeout(10):
        data, _ = await _send_and_read(
            farm,
            "a",
            f"GET /big-head HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nX-Fill: {filler}\r\n"
            "Connection: close\r\n\r\n".encode(),
        )
    assert _status(data) == 200
    assert b'"node": "c"' in data
