"""lb.node.listeners.ClientListeners: a listener per address of a service.

Real sockets on uvloop, as a node runs: a service listening on 0.0.0.0:P and
[::]:P gets both (IPv6 sockets are IPv6-only, so the two do not collide), as
a second worker does with SO_REUSEPORT; a close (drain) closes every one and an
open (undrain) binds every one again. The entry is never reached: no client
connects while a listener is open.
"""

from __future__ import annotations

import asyncio
import copy
import socket
from pathlib import Path
from typing import Any, cast

import pytest
import uvloop

from lb.config import parse_config
from lb.node.entry import Entry
from lb.node.listeners import ClientListeners
from lb.node.service import Service, build_service
from tests.support.config_data import BASE
from tests.support.farm import make_cert


def free_dual_port() -> int:
    """A port free on 0.0.0.0 and on [::] a moment ago."""
    while True:
        with socket.socket(socket.AF_INET) as v4, socket.socket(socket.AF_INET6) as v6:
            v4.bind(("0.0.0.0", 0))
            port = int(v4.getsockname()[1])
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                v6.bind(("::", port))
            except OSError:
                continue
            return port


def web_service(addresses: list[str]) -> Service:
    data: dict[str, Any] = copy.deepcopy(BASE)
    data["nodes"][0]["listen"]["web"] = addresses
    cfg = parse_config(data, base_dir=Path("."))
    return build_service(cfg.services["web"], cfg.nodes["a"], cfg.cookie_name)


class WaitingEntry:
    """What the listeners take of the entry without a client: a tls-terminate listener's
    accept loop (it accepts nothing; cancelled by the close), the accept error callback."""

    async def serve_tls(self, sock: socket.socket, service: Service) -> None:
        await asyncio.Event().wait()

    def accept_failed(self, exc: OSError) -> None:
        raise AssertionError(f"no accept expected: {exc}")


def bound(listeners: ClientListeners) -> list[tuple[int, int, int]]:
    """(family, port, IPV6_V6ONLY) of every listening socket, sorted."""
    out = []
    for server, _ in listeners.servers:
        for sock in server.sockets:
            only = 0
            if sock.family == socket.AF_INET6:
                only = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            out.append((int(sock.family), int(sock.getsockname()[1]), only))
    return sorted(out)


def refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True


def test_every_address_of_a_service_gets_a_listener_in_every_worker() -> None:
    port = free_dual_port()
    service = web_service([f"0.0.0.0:{port}", f"[::]:{port}"])
    assert [str(a) for a in service.listen] == [f"0.0.0.0:{port}", f"[::]:{port}"]
    entry = cast(Entry, WaitingEntry())
    want = sorted(
        [(int(socket.AF_INET), port, 0), (int(socket.AF_INET6), port, 1)],
    )

    async def run() -> None:
        loop = asyncio.get_running_loop()
        workers = [ClientListeners(loop, entry, reuse_port=True) for _ in range(2)]
        for w in workers:
            await w.open([service])
        assert [bound(w) for w in workers] == [want, want]
        for w in workers:
            w.close()  # a drain
        assert workers[0].servers == [] and refused("127.0.0.1", port)
        assert refused("::1", port)
        await workers[0].open([service])  # an undrain
        assert bound(workers[0]) == want
        workers[0].close()

    uvloop.run(run())


def test_a_tls_terminate_service_gets_a_socket_per_address(tmp_path: Path) -> None:
    port = free_dual_port()
    cert, key = make_cert(tmp_path)
    data: dict[str, Any] = copy.deepcopy(BASE)
    data["services"][0].update(protocol="tls-terminate", tls={"cert": str(cert), "key": str(key)})
    data["nodes"][0]["listen"]["web"] = [f"0.0.0.0:{port}", f"[::]:{port}"]
    cfg = parse_config(data, base_dir=Path("."))
    service = build_service(cfg.services["web"], cfg.nodes["a"], cfg.cookie_name)
    entry = cast(Entry, WaitingEntry())

    async def run() -> None:
        listeners = ClientListeners(asyncio.get_running_loop(), entry, reuse_port=False)
        await listeners.open([service])
        socks = [sock for sock, _ in listeners.tls_sockets]
        assert [(s.family, s.getsockname()[1]) for s in socks] == [
            (socket.AF_INET, port),
            (socket.AF_INET6, port),
        ]
        assert socks[1].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert len(listeners.tls_tasks) == 2
        listeners.close()
        assert refused("127.0.0.1", port) and refused("::1", port)

    uvloop.run(run())


def test_a_service_listens_on_every_address_or_on_none() -> None:
    """The second address is taken (a socket without SO_REUSEPORT listens there): the open
    fails with the OSError and leaves no listener on the first."""
    port = free_dual_port()
    service = web_service([f"0.0.0.0:{port}", f"[::]:{port}"])
    entry = cast(Entry, WaitingEntry())

    async def run() -> None:
        loop = asyncio.get_running_loop()
        listeners = ClientListeners(loop, entry, reuse_port=True)
        with socket.socket(socket.AF_INET6) as taken:
            taken.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            taken.bind(("::", port))
            taken.listen(1)
            with pytest.raises(OSError):
                await listeners.open([service])
            assert listeners.servers == [] and refused("127.0.0.1", port)
        await listeners.open([service])  # once free, every address
        assert len(bound(listeners)) == 2
        listeners.close()

    uvloop.run(run())
