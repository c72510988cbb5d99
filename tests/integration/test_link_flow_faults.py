"""A bug met while handling one flow's link event costs that flow only.

Two real nodes, a tcp service (client-ip homes every connection of 127.0.0.1 on
one node), faults injected into both processes by tests/support/faults: the
home's application side fails on bytes carrying one marker, the entry's client
side on bytes carrying another, and the home's handling of NEW fails for one
client port. Each faulty connection must end (a reset once bytes were relayed,
else a plain close, as when an application refuses) while a connection
opened before it, on the same link, keeps echoing; the link is never
re-established; each failure is logged with its traceback and counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import running
from tests.support.farm import Farm, free_ports, read_until_closed
from tests.support.wait import eventually_passes_async

pytestmark = pytest.mark.integration

FAULTS = Path(__file__).resolve().parent.parent / "support" / "faults"
APP_MARKER = "home-side-fault"  # the home fails passing these bytes to its application
CLIENT_MARKER = "entry-side-fault"  # the entry fails passing these bytes to its client
(OPEN_PORT,) = free_ports(1)  # the home fails opening a flow from this client port


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    env = {
        "PYTHONPATH": str(FAULTS),
        "LB_TEST_FAULTS": f"app-send:{APP_MARKER},client-send:{CLIENT_MARKER},open:{OPEN_PORT}",
    }
    yield from running(
        Farm(
            tmp_path_factory.mktemp("faults"),
            nodes=("a", "b"),
            link_security="plaintext",
            node_env={"a": env, "b": env},
        )
    )


async def _connect(
    farm: Farm, entry: str, port: int = 0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A raw connection through `entry` and the home named by the application's greeting."""
    host, service_port = farm.addr(entry, "raw")
    local = ("127.0.0.1", port) if port else None
    reader, writer = await asyncio.open_connection(host, service_port, local_addr=local)
    if port:
        sock = writer.get_extra_info("socket")
        assert sock.getsockname()[1] == port
    greeting = await reader.readline()
    assert greeting.startswith(b"node="), greeting
    return reader, writer, greeting[5:-1].decode()


async def _echoes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes) -> None:
    writer.write(line)
    await writer.drain()
    assert await reader.readline() == line


def _link_ups(farm: Farm) -> int:
    return sum(len(farm.events(node, "link_up")) for node in farm.nodes)


def _failures(farm: Farm, node: str) -> list[str]:
    return [
        str(record.get("exception", ""))
        for record in farm.events(node, "link_event_failed")
        if "injected fault" in str(record.get("exception", ""))
    ]


async def test_a_failing_flow_event_resets_that_flow_and_spares_the_link(farm: Farm) -> None:
    async with asyncio.timeout(60):
        reader, writer, home = await _connect(farm, "a")
        entry = next(node for node in farm.nodes if node != home)
        writer.close()
        # the connection that must live through every fault: forwarded, on the one link
        kept_reader, kept_writer, kept_home = await _connect(farm, entry)
        assert kept_home == home
        await _echoes(kept_reader, kept_writer, b"before\n")
        ups = _link_ups(farm)

        for number, marker in enumerate((APP_MARKER, CLIENT_MARKER)):
            reader, writer, _ = await _connect(farm, entry)
            writer.write(f"{marker}\n".encode())
            received, how = await read_until_closed(reader)
            writer.close()
            assert marker.encode() not in received
            assert how == "reset", (marker, received, how)
            await _echoes(kept_reader, kept_writer, f"after fault {number}\n".encode())

        host, service_port = farm.addr(entry, "raw")
        reader, writer = await asyncio.open_connection(
            host, service_port, local_addr=("127.0.0.1", OPEN_PORT)
        )
        assert writer.get_extra_info("socket").getsockname()[1] == OPEN_PORT
        received, how = await read_until_closed(reader)
        writer.close()
        # no application was connected and no byte relayed: the entry closes the client
        # as it does when the home's application refuses (a plain close on tcp)
        assert (received, how) == (b"", "eof")
        await _echoes(kept_reader, kept_writer, b"after open\n")

        # a new connection is served as before, and no link was lost on the way
        reader, writer, _ = await _connect(farm, entry)
        await _echoes(reader, writer, b"new\n")
        writer.close()
        kept_writer.close()
    assert _link_ups(farm) == ups

    def logged() -> None:
        assert len(_failures(farm, home)) == 2, farm.all_logs()  # the application side, NEW
        assert len(_failures(farm, entry)) == 1, farm.all_logs()  # the client side

    await eventually_passes_async(logged, timeout=5.0, what="each failure logged")
    failures = _failures(farm, home) + _failures(farm, entry)
    assert all("Traceback" in text and "RuntimeError" in text for text in failures), failures
    await asyncio.to_thread(farm.assert_clean)
    assert farm.unexpected_exits() == []
