"""The tcp service: client-ip homes every connection of a client on one node; bytes exact."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.support.farm import Farm, open_conn, read_until_closed

pytestmark = pytest.mark.integration


async def _hello(farm: Farm, entry: str) -> str:
    reader, writer = await open_conn(farm.addr(entry, "raw"))
    try:
        line = await reader.readline()
    finally:
        writer.close()
    assert line.startswith(b"node=") and line.endswith(b"\n"), line
    return line[5:-1].decode()


async def test_client_ip_homes_all_connections_on_one_node(farm: Farm) -> None:
    async with asyncio.timeout(20):
        homes = [await _hello(farm, entry) for entry in farm.nodes * 3]
    assert len(set(homes)) == 1, homes
    assert homes[0] in farm.nodes


async def _echo(farm: Farm, entry: str, data: bytes) -> bytes:
    reader, writer = await open_conn(farm.addr(entry, "raw"))

    async def send() -> None:
        for off in range(0, len(data), 65536):
            writer.write(data[off : off + 65536])
            await writer.drain()
        writer.write_eof()

    try:
        sender = asyncio.create_task(send())
        received, how = await read_until_closed(reader)
        await sender
    finally:
        writer.close()
    assert how == "eof"
    return received


@pytest.mark.parametrize("path", ["forwarded", "local"])
async def test_tcp_echo_is_byte_exact(farm: Farm, path: str) -> None:
    async with asyncio.timeout(30):
        home = await _hello(farm, "a")
        entry = home if path == "local" else next(n for n in farm.nodes if n != home)
        data = os.urandom(1 << 20)
        received = await _echo(farm, entry, data)
    prefix = f"node={home}\n".encode()
    assert received[: len(prefix)] == prefix
    assert len(received) == len(prefix) + len(data)
    assert received[len(prefix) :] == data
    await asyncio.to_thread(farm.assert_clean)
