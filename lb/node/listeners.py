"""The client listeners of a node: one per address of each service, opened at start,
closed on drain.

Plain services (`http`, `tcp`, `tls-passthrough`) get an asyncio server whose
protocol is a ClientEndpoint. `tls-terminate` services get a socket and an
accept loop of the Entry (lb.node.entry.Entry.serve_tls), so a connection counts
from accept on, TLS handshake included.

Closing loses no client the kernel has accepted: a connection whose handshake
completed and that waits in a listening socket's accept queue would be reset by
the close, so the queue is taken first (`accept_queued`) and each socket goes to
the protocol, or the TLS accept path, that the listener would have given it.

Every worker binds every address with SO_REUSEPORT. An IPv6 socket is IPv6-only
(IPV6_V6ONLY, as asyncio's and uvloop's servers and socket.create_server set it),
so a service may listen on 0.0.0.0:P and [::]:P at once.

It must not route or admit: the Entry does.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from collections.abc import Callable, Iterable
from typing import cast

import structlog

from lb.node.client import ClientEndpoint
from lb.node.entry import Entry
from lb.node.http_client import HttpClient
from lb.node.service import Service
from lb.node.sockets import listening_socket

BACKLOG = 4096
# most sockets taken from one listening socket's queue as it closes: what a full queue
# holds (connects that keep coming meanwhile cannot keep a close going)
MAX_QUEUED = BACKLOG + 1

log = structlog.get_logger("lb.node")


def _client_factory(entry: Entry, service: Service) -> Callable[[], asyncio.BaseProtocol]:
    # both are protocols by their methods (lb.node.http_client, lb.node.splice)
    if service.http:
        # every request routed on its own
        return lambda: cast(asyncio.BaseProtocol, HttpClient(entry, service))
    # tcp: the connection follows its first bytes
    return lambda: cast(asyncio.BaseProtocol, ClientEndpoint(entry, service))


def accept_queued(
    sock: socket.socket,
    on_socket: Callable[[socket.socket, str], None],
    on_error: Callable[[OSError], None],
) -> int:
    """Accept what waits in the accept queue of the non-blocking listening `sock`, until
    it is empty (at most MAX_QUEUED): each socket with its source address goes to
    `on_socket`. A failed accept (out of descriptors, mostly) goes to `on_error` and
    ends it. Returns how many were accepted."""
    taken = 0
    while taken < MAX_QUEUED:
        try:
            conn, addr = sock.accept()
        except BlockingIOError:
            break
        except ConnectionAbortedError:
            continue  # ended by its client while it waited: nothing to serve
        except OSError as exc:
            on_error(exc)
            break
        conn.setblocking(False)
        taken += 1
        on_socket(conn, str(addr[0]) if addr else "?")
    return taken


class ClientListeners:
    """Every service's listeners of one node process."""

    def __init__(self, loop: asyncio.AbstractEventLoop, entry: Entry, reuse_port: bool) -> None:
        self.loop = loop
        self.entry = entry
        self.reuse_port = reuse_port
        self.servers: list[tuple[asyncio.Server, Callable[[], asyncio.BaseProtocol]]] = []
        self.tls_sockets: list[tuple[socket.socket, Service]] = []
        self.tls_tasks: list[asyncio.Task[None]] = []
        self.handing_over: set[asyncio.Task[None]] = set()  # queued sockets given a protocol

    async def open(self, services: Iterable[Service]) -> None:
        """Listen on every address of every service, or on none: an address that cannot
        be bound (OSError) closes those this call opened, and the error goes on. A node
        listening on some of its addresses would refuse the clients of the others
        while it takes new sessions. So does a cancel (a drain or a stop that came while
        the open awaited): what it opened is closed."""
        try:
            for service in services:
                for address in service.listen:
                    await self._open(service, address.host, address.port)
        except BaseException:
            self.close()
            raise

    async def _open(self, service: Service, host: str, port: int) -> None:
        try:
            await self._bind(service, host, port)
        except socket.gaierror as exc:  # its text names no address: say which one
            raise OSError(
                exc.errno, f"listen {service.name} {host}:{port}: {exc.strerror}"
            ) from None

    async def _bind(self, service: Service, host: str, port: int) -> None:
        if service.server_tls is not None:
            sock = listening_socket(host, port, self.reuse_port, BACKLOG)
            self.tls_sockets.append((sock, service))
            self.tls_tasks.append(self.loop.create_task(self.entry.serve_tls(sock, service)))
            return
        factory = _client_factory(self.entry, service)
        server = await self.loop.create_server(
            factory, host, port, backlog=BACKLOG, reuse_port=self.reuse_port
        )
        self.servers.append((server, factory))

    def close(self) -> None:
        """No new clients; connections already accepted go on, and so do those the kernel
        completed and queued on a listening socket: they are accepted before it closes.

        Synchronous from the first accept to the last close, so nothing else runs in
        between; a connect the kernel completes after a socket's last accept and before
        its close is still reset (the kernel offers no way to stop a listening socket
        without resetting its queue)."""
        taken = 0
        for server, factory in self.servers:
            # the server owns its sockets: a second descriptor of each keeps it listening
            # after the server closes, until its queue is taken
            held = [socket.socket(fileno=os.dup(s.fileno())) for s in server.sockets]
            server.close()
            hand_over = functools.partial(self._hand_over, factory)
            for sock in held:
                with sock:
                    sock.setblocking(False)
                    taken += accept_queued(sock, hand_over, self.entry.accept_failed)
        for task in self.tls_tasks:
            task.cancel()
        for sock, service in self.tls_sockets:
            tls_accepted = functools.partial(self._tls_accepted, service)
            taken += accept_queued(sock, tls_accepted, self.entry.accept_failed)
            sock.close()
        self.servers.clear()
        self.tls_tasks.clear()
        self.tls_sockets.clear()
        if taken:
            log.info("listener_queue_accepted", node=self.entry.name, clients=taken)

    def _tls_accepted(self, service: Service, conn: socket.socket, address: str) -> None:
        self.entry.tls_accepted(conn, address, service)

    def _hand_over(
        self, factory: Callable[[], asyncio.BaseProtocol], conn: socket.socket, _address: str
    ) -> None:
        """A socket taken from a plain listener's queue gets the listener's protocol."""
        task = self.loop.create_task(self._connect_accepted(conn, factory))
        self.handing_over.add(task)
        task.add_done_callback(self.handing_over.discard)

    async def _connect_accepted(
        self, conn: socket.socket, factory: Callable[[], asyncio.BaseProtocol]
    ) -> None:
        try:
            await self.loop.connect_accepted_socket(factory, conn)
        except OSError as exc:
            conn.close()
            log.debug("queued_client_lost", node=self.entry.name, error=str(exc))


__all__ = ["MAX_QUEUED", "ClientListeners", "accept_queued"]
