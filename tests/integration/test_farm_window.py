"""A slow reader on one flow never stalls another flow of the same link (per-flow windows)."""

from __future__ import annotations

import asyncio
import hashlib
import socket

import pytest

from tests.support.backend import pattern_sha256
from tests.support.farm import Farm, http_request, request_bytes

pytestmark = pytest.mark.integration

BIG = 32 << 20
MAX_GROWTH_MIB = 12  # the stalled flow may not pile up in a node's memory
SMALL = 4 << 20


async def test_stalled_flow_does_not_block_its_link(farm: Farm) -> None:
    loop = asyncio.get_running_loop()
    entry, home = "a", "c"
    # Flow 1: a raw socket with a small receive buffer that reads nothing for now.
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.setblocking(False)
    rss_before = {n: farm.rss_mib(n) for n in (entry, home)}
    try:
        async with asyncio.timeout(60):
            await loop.sock_connect(stalled, farm.addr(entry))
            await loop.sock_sendall(
                stalled, request_bytes("GET", f"/bytes/{BIG}", {"Cookie": farm.cookie_header(home)})
            )
            # a fixed wait: flow 1 fills every buffer on its way; the memory bound below is
            # an upper bound, so polling it would pass on an early, low reading
            await asyncio.sleep(0.5)

            tables = await asyncio.to_thread(farm.tables, entry)
            assert tables.get("forward", 0) >= 1, tables
            for n, before in rss_before.items():
                grown = farm.rss_mib(n) - before
                assert grown < MAX_GROWTH_MIB, (
                    f"node {n} buffered {grown:.1f} MiB of a stalled flow"
                )

            # Flow 2 on the same entry -> home link completes while flow 1 is stuck.
            resp = await asyncio.wait_for(
                http_request(
                    farm.addr(entry), "GET", f"/bytes/{SMALL}", {"Cookie": farm.cookie_header(home)}
                ),
                timeout=20,
            )
            assert resp.status == 200
            assert resp.header("X-Node") == home
            assert hashlib.sha256(resp.body).hexdigest() == pattern_sha256(SMALL)

            # Now flow 1 reads everything, byte-exact.
            data = bytearray()
            head_end = -1
            total = None
            while total is None or len(data) < total:
                chunk = await loop.sock_recv(stalled, 1 << 20)
                assert chunk, f"flow 1 ended early after {len(data)} bytes"
                data += chunk
                if head_end < 0:
                    head_end = data.find(b"\r\n\r\n")
                    if head_end >= 0:
                        assert data.startswith(b"HTTP/1.1 200 "), bytes(data[:100])
                        total = head_end + 4 + BIG
            body = bytes(data[head_end + 4 :])
            assert len(body) == BIG
            assert hashlib.sha256(body).hexdigest() == pattern_sha256(BIG)
    finally:
        stalled.close()
    await asyncio.to_thread(farm.assert_clean)
