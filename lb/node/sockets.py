"""Listening sockets and accept loops shared by the link port and the TLS client listeners.

Both admit a socket at accept time, before any byte of it is read (and before a
TLS handshake), so they accept by hand instead of through asyncio servers.
`fit_to_descriptors` bounds the client connections a process admits by the
descriptors it may open.

It must not decide admission: callers do, in `on_socket`.
"""

from __future__ import annotations

import asyncio
import resource
import socket
from collections.abc import Callable

import structlog

log = structlog.get_logger("lb.node")

ACCEPT_BACKOFF = 0.1  # seconds to wait after a failed accept (out of descriptors, mostly)
DESCRIPTOR_RESERVE = 256  # descriptors kept for links, listeners, logs and the bus


def fit_to_descriptors(
    node: str, configured: int, explicit: bool, workers: int = 1, per_node: int = 0
) -> int:
    """`configured` client connections (this process's share of the node's `per_node`
    when it has `workers` processes), or fewer if the descriptor limit has no room.

    A local splice holds two descriptors (client and app). Lowering is logged: a
    warning when max_connections was set explicitly above what fits, a note for
    the default.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    allowed = max(1, (soft - DESCRIPTOR_RESERVE) // 2)
    if configured <= allowed:
        return configured
    (log.warning if explicit else log.info)(
        "max_connections_lowered",
        node=node,
        max_connections=per_node or configured,  # the node's, as the farm file says
        workers=workers,
        worker_share=configured,  # what this process would admit
        allowed=allowed,  # what it admits: per process, like worker_share
        descriptor_limit=soft,
        reason="each client connection may hold two descriptors (client and app)",
    )
    return allowed


def listening_socket(host: str, port: int, reuse_port: bool, backlog: int) -> socket.socket:
    """A non-blocking listening TCP socket on (host, port)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    sock = socket.create_server(addr[:2], family=family, backlog=backlog, reuse_port=reuse_port)
    sock.setblocking(False)
    return sock


async def accept_forever(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    on_socket: Callable[[socket.socket, str], None],
    on_error: Callable[[OSError], None],
) -> None:
    """Accept until cancelled: each socket with its source address goes to `on_socket`;
    a failed accept is reported to `on_error`, and accepting goes on after a short pause."""
    while True:
        try:
            conn, addr = await loop.sock_accept(sock)
        except OSError as exc:
            on_error(exc)
            await asyncio.sleep(ACCEPT_BACKOFF)
            continue
        conn.setblocking(False)
        on_socket(conn, str(addr[0]) if addr else "?")


__all__ = ["ACCEPT_BACKOFF", "accept_forever", "listening_socket"]
