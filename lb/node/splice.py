"""Splice endpoints: the two ends of one relayed byte stream.

A stream is relayed between two *endpoints*: a socket (the client, or the
local application) and either another socket (local splice) or a flow on a
link (forwarded splice). Each endpoint knows its `peer` and calls four things
on it: `send`, `send_eof`, `peer_closed` and `pause_reading`/`resume_reading`
for back-pressure. This module holds the socket endpoints; `lb.node.peerlink`
holds the flow endpoint. Only I/O lives here: no parsing, no routing decisions.

Hot path rules: `data_received` -> `peer.send` with no copy, no logging, no
timers; back-pressure by pausing the transport that feeds a full buffer.

The endpoints are asyncio protocols by their methods, not by subclassing
asyncio.Protocol, so the compiled build (setup.py) makes them native classes,
as lb.node.http_client.HttpClient. Both allow interpreted subclasses: the tcp
client (lb.node.client.ClientEndpoint) derives from `SocketEndpoint`, and the
fault injection of the tests (tests/support/faults) from `AppEndpoint`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Protocol, cast

from mypy_extensions import mypyc_attr, trait

from lb.link.connection import PAUSE_LINK, PAUSE_PEER, PAUSE_WAIT
from lb.node.learn import PAUSE_HOLD, SessionLearner
from lb.wire.frames import ResetReason

_LINGER_RESET = struct.pack("ii", 1, 0)


@trait
@mypyc_attr(allow_interpreted_subclasses=True)
class Endpoint:
    """What one end of a splice may ask of the other."""

    __slots__ = ()

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def send_eof(self) -> None:
        raise NotImplementedError

    def peer_closed(self, clean: bool, reason: int) -> None:
        raise NotImplementedError

    def pause_reading(self, reason: int) -> None:
        raise NotImplementedError

    def resume_reading(self, reason: int) -> None:
        raise NotImplementedError


class IdleCounted(Protocol):
    active: bool  # set on every byte either way
    quiet_since: float  # loop time of the last idle sweep that found a byte had moved


def silent_for(conn: IdleCounted, now: float, timeout: float) -> bool:
    """One idle sweep at `now` over `conn`: True once no byte moved either way for at
    least `timeout`. The sweep that finds the flag set clears it and notes `now`: the
    last byte moved before then, so silence measured from there is never too long. A
    connection starts with the flag set (its accept counts as a byte). Measured in time,
    not in sweeps, so sweeps that run late on a busy node do not add up: the close comes
    at most one sweep interval (and that one sweep's delay) after the timeout."""
    if conn.active:
        conn.active = False
        conn.quiet_since = now
        return False
    return now - conn.quiet_since >= timeout


def abort_with_reset(transport: asyncio.BaseTransport) -> None:
    """Abort a TCP transport so the other end sees a reset, never a clean close."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()  # type: ignore[attr-defined]


@mypyc_attr(allow_interpreted_subclasses=True)  # lb.node.client.ClientEndpoint
class SocketEndpoint(Endpoint):
    """One TCP socket of a splice. Subclasses decide what happens before splicing.

    It defines every protocol method the event loop calls (an asyncio protocol by
    its methods)."""

    __slots__ = (
        "active",
        "bytes_sent",
        "closed",
        "eof_in",
        "eof_out",
        "paused",
        "peer",
        "sent_any",
        "transport",
    )

    abort_reason = int(ResetReason.CLIENT_ABORT)  # the RESET reason when this socket breaks

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: Endpoint | None = None
        self.eof_in = False  # the socket's other end will send no more
        self.eof_out = False  # we wrote EOF to the socket
        self.closed = False
        self.paused = 0
        self.sent_any = False  # any byte written to this socket (decides 502 vs reset)
        self.bytes_sent = 0  # bytes relayed to this socket (the access log of tcp services)
        self.active = True  # set on every read and write, and by the accept; cleared by sweeps

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(
            asyncio.Transport, transport
        )  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        self.active = True
        peer = self.peer
        if peer is not None:
            peer.send(data)

    def eof_received(self) -> bool:
        self.eof_in = True
        peer = self.peer
        if peer is not None:
            peer.send_eof()
        self._close_if_done()
        return True

    def pause_writing(self) -> None:
        peer = self.peer
        if peer is not None:
            peer.pause_reading(PAUSE_PEER)

    def resume_writing(self) -> None:
        peer = self.peer
        if peer is not None:
            peer.resume_reading(PAUSE_PEER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        peer = self.peer
        self.peer = None
        if peer is not None:
            peer.peer_closed(exc is None, self.abort_reason)
        self.on_closed()

    # -- Endpoint (called by the peer) ------------------------------------
    def send(self, data: bytes) -> None:
        self.sent_any = True
        self.active = True
        self.bytes_sent += len(data)
        transport = self.transport
        if transport is not None and not self.closed:
            transport.write(data)

    def send_eof(self) -> None:
        if self.closed or self.eof_out:
            return
        self.eof_out = True
        transport = self.transport
        if transport is None:
            return
        if transport.can_write_eof():
            transport.write_eof()
            self._close_if_done()
        else:
            transport.close()

    def peer_closed(self, clean: bool, reason: int) -> None:
        self.peer = None
        if self.closed or self.transport is None:
            return
        if clean:
            if not self.eof_out and self.transport.can_write_eof():
                self.eof_out = True
                self.transport.write_eof()
            self.transport.close()
        else:
            self.fail(reason)

    def pause_reading(self, reason: int) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading(self, reason: int) -> None:
        if not self.paused:
            return
        self.paused &= ~reason
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- helpers ----------------------------------------------------------
    def fail(self, reason: int) -> None:
        """The peer broke: abort so the other end sees a reset."""
        if self.transport is not None and not self.closed:
            abort_with_reset(self.transport)

    def abort(self) -> None:
        """Abort this socket and tell the peer (used by idle and shutdown sweeps)."""
        peer = self.peer
        self.peer = None
        if peer is not None:
            peer.peer_closed(False, self.abort_reason)
        if self.transport is not None and not self.closed:
            abort_with_reset(self.transport)

    def _close_if_done(self) -> None:
        if self.eof_in and self.eof_out and self.transport is not None:
            self.transport.close()

    def on_closed(self) -> None:
        """Hook for subclasses: the socket is gone."""


@mypyc_attr(allow_interpreted_subclasses=True)  # tests/support/faults
class AppEndpoint(SocketEndpoint):
    """The connection to the local application (on the home node).

    ``first`` (a PROXY v2 header) is written as soon as it connects, before any
    byte of the client. For tls-passthrough a learner watches the response for
    TLS sessions to record in the directory (HTTP responses are framed, and their
    cookies inserted and learned, by the entry: lb.node.http_client).
    """

    __slots__ = ("first", "learner")

    abort_reason = int(ResetReason.APP_ABORT)

    def __init__(
        self,
        peer: Endpoint,
        learner: SessionLearner | None = None,
        first: bytes = b"",
    ) -> None:
        super().__init__()
        self.peer = peer
        self.learner = learner
        self.first = first  # written before any client byte (a PROXY v2 header)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # the client's address to the application (issue 10): app_proxy_protocol = "v2"
        if self.first:
            self.transport.write(self.first)  # type: ignore[union-attr]
            self.first = b""

    def data_received(self, data: bytes) -> None:
        learner = self.learner
        if learner is not None:
            learner.feed(data)
            # issue 11: a response that names a new session waits for the key's owners
            # (bounded by register_timeout); the application is not read meanwhile
            if learner.hold(data, self._release_held):
                self.pause_reading(PAUSE_HOLD)
                return
            if learner.finished:
                self.learner = None
        self._pass_on(data)

    def _release_held(self, data: bytes, eof: bool) -> None:
        """issue 11: the registration was acknowledged (or its bound passed)."""
        if self.learner is not None and self.learner.finished:
            self.learner = None
        if data:
            self._pass_on(data)
        if eof:
            self.eof_received()
        self.resume_reading(PAUSE_HOLD)

    def _pass_on(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None:
            peer.send(data)

    def eof_received(self) -> bool:
        if self.learner is not None and self.learner.hold_eof():
            return True  # issue 11: after the held response bytes
        return super().eof_received()


__all__ = [
    "PAUSE_LINK",
    "PAUSE_PEER",
    "PAUSE_WAIT",
    "AppEndpoint",
    "Endpoint",
    "SocketEndpoint",
    "abort_with_reset",
    "silent_for",
]
