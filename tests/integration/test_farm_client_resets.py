"""Clients that reset their connection before the node accepted it (real nodes).

A socket reset before accept has no peer address any more; the node must still
drop it quietly: no exception out of a protocol callback, no client left in the
entry's `clients` set (each one a descriptor and a `max_connections` slot).
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import Callable

import pytest

from tests.support.farm import Farm, http_request, request_bytes

pytestmark = pytest.mark.integration

RST = struct.pack("ii", 1, 0)
BAD = re.compile(r"Traceback|Exception in callback|Fatal error on transport|never retrieved")


def connect_and_reset(addr: tuple[str, int], n: int, payload: bytes = b"") -> None:
    """Open `n` connections, each reset (SO_LINGER 0) right after `payload` is sent."""
    for _ in range(n):
        s = socket.create_connection(addr)
        try:
            if payload:
                s.sendall(payload)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
        finally:
            s.close()


def log_sizes(farm: Farm) -> dict[str, int]:
    return {n: len(farm.logs(n)) for n in farm.nodes}


def bad_lines(farm: Farm, since: dict[str, int]) -> dict[str, list[str]]:
    """Lines of the node logs (after `since`) that say an exception escaped."""
    found = {}
    for n in farm.nodes:
        lines = [ln for ln in farm.logs(n)[since[n] :].splitlines() if BAD.search(ln)]
        if lines:
            found[n] = lines[:3]
    return found


async def test_tcp_clients_reset_before_accept_leave_no_client_behind(farm: Farm) -> None:
    """A tcp service routed by client-ip decides in connection_made: a reset client there."""
    since = log_sizes(farm)
    for n in farm.nodes:
        await asyncio.to_thread(connect_and_reset, farm.addr(n, "raw"), 300)
    await asyncio.sleep(1.0)
    clients = {n: (await asyncio.to_thread(farm.tables, n))["clients"] for n in farm.nodes}
    # expected: every node back to 0 clients; seen: clients stuck forever (the transport of a
    # client whose connection_made raised is never read, so connection_lost never comes)
    assert clients == dict.fromkeys(farm.nodes, 0), clients
    assert not bad_lines(farm, since)


async def test_http_request_then_reset_before_accept_is_dropped_quietly(farm: Farm) -> None:
    """A whole request, then a reset, before accept: forwarded to its home, or dropped, quietly."""
    since = log_sizes(farm)
    for entry, home in (("a", "b"), ("b", "c"), ("c", "a")):
        req = request_bytes("GET", "/x", {"Cookie": farm.cookie_header(home)})
        await asyncio.to_thread(connect_and_reset, farm.addr(entry), 200, req)
    await asyncio.sleep(1.0)
    # expected: no "Fatal error on transport" / traceback from data_received in any node log
    assert not bad_lines(farm, since)
    clients = {n: (await asyncio.to_thread(farm.tables, n))["clients"] for n in farm.nodes}
    assert clients == dict.fromkeys(farm.nodes, 0), clients


async def test_reset_clients_use_up_max_connections(make_farm: Callable[..., Farm]) -> None:
    """Leaked clients count against max_connections: a few resets lock real clients out."""
    farm = make_farm(limits={"max_connections": 40})
    # the client-ip hash of a client without an address lands on one node; reset from the others
    for n in farm.nodes:
        await asyncio.to_thread(connect_and_reset, farm.addr(n, "raw"), 60)
    await asyncio.sleep(1.0)
    statuses = {}
    for n in farm.nodes:
        resp = await http_request(farm.addr(n), "GET", "/after", {"Connection": "close"})
        statuses[n] = resp.status
    # expected: 200 everywhere (the reset clients are long gone); seen: 503 (no slot left)
    assert statuses == dict.fromkeys(farm.nodes, 200), statuses
