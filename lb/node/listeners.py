"""The client listeners of a node: one per service, opened at start, closed on drain.

Plain services (`http`, `tcp`, `tls-passthrough`) get an asyncio server whose
protocol is a ClientEndpoint. `tls-terminate` services get a socket and an
accept loop of the Entry (lb.node.entry.Entry.serve_tls), so a connection counts
from accept on, TLS handshake included.

It must not route or admit: the Entry does.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable
from typing import cast

from lb.node.client import ClientEndpoint
from lb.node.entry import Entry
from lb.node.http_client import HttpClient
from lb.node.service import Service
from lb.node.sockets import listening_socket

BACKLOG = 4096


def _client_factory(entry: Entry, service: Service) -> Callable[[], asyncio.BaseProtocol]:
    if service.http:
        # every request routed on its own (a protocol by its methods: lb.node.http_client)
        return lambda: cast(asyncio.BaseProtocol, HttpClient(entry, service))
    return lambda: ClientEndpoint(entry, service)  # tcp: the connection follows its first bytes


class ClientListeners:
    """Every service's listener of one node process."""

    def __init__(self, loop: asyncio.AbstractEventLoop, entry: Entry, reuse_port: bool) -> None:
        self.loop = loop
        self.entry = entry
        self.reuse_port = reuse_port
        self.servers: list[asyncio.Server] = []
        self.tls_sockets: list[socket.socket] = []
        self.tls_tasks: list[asyncio.Task[None]] = []

    async def open(self, services: Iterable[Service]) -> None:
        for service in services:
            if service.server_ssl is not None:
                sock = listening_socket(
                    service.listen.host, service.listen.port, self.reuse_port, BACKLOG
                )
                self.tls_sockets.append(sock)
                self.tls_tasks.append(self.loop.create_task(self.entry.serve_tls(sock, service)))
                continue
            self.servers.append(
                await self.loop.create_server(
                    _client_factory(self.entry, service),
                    service.listen.host,
                    service.listen.port,
                    backlog=BACKLOG,
                    reuse_port=self.reuse_port,
                )
            )

    def close(self) -> None:
        """No new clients; connections already accepted go on."""
        for server in self.servers:
            server.close()
        for task in self.tls_tasks:
            task.cancel()
        for sock in self.tls_sockets:
            sock.close()
        self.servers.clear()
        self.tls_tasks.clear()
        self.tls_sockets.clear()


__all__ = ["ClientListeners"]
