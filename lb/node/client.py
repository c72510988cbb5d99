"""The client side: one accepted client connection of a listener.

It reads until the extractor chain answers (bounded by `limits.head_bytes`
and `limits.head_timeout`), asks the router for the home, then becomes one end
of a splice: to the local application, or to a flow on the link to the home.
Error answers (400/408/431/502/503) are written here. Connection-level
splicing: every later request of a keep-alive connection follows the first.

It must not parse frames or decide placement; those are lb.wire and lb.routing.
Routing and admission are asked of the node's `Entry` (lb.node.entry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from lb.clock import wall
from lb.errors import HttpError, ProxyHeaderError
from lb.extract.api import Extractor, Identifier, Seen, Verdict
from lb.extract.chain import run_chain
from lb.node.accesslog import no_answer_text
from lb.node.service import Service
from lb.node.splice import PAUSE_WAIT, Endpoint, SocketEndpoint, silent_for
from lb.wire.http import RequestHead, RequestHeadScanner, error_response
from lb.wire.proxy import FrontProxy


class EntrySide(Protocol):
    """What a client connection asks of the node's entry side (lb.node.entry.Entry)."""

    head_bytes: int

    def admit(self, client: ClientEndpoint) -> bool: ...

    def release(self, client: ClientEndpoint) -> None: ...

    def head_started(self, client: ClientEndpoint) -> None: ...

    def head_done(self, client: ClientEndpoint) -> None: ...

    def route(self, client: ClientEndpoint, identifier: Identifier | None) -> None: ...

    def count(self, name: str) -> None: ...

    now: Callable[[], float]  # the loop's clock

    def extractor_failed(self, extractor: Extractor, exc: BaseException) -> None: ...


# states
HEAD = 0  # reading until the extractor chain answers
WAIT = 1  # routed; waiting for the local application connection or the link to the home
SPLICE = 2  # bytes flow both ways
DONE = 3


def service_front(service: Service, peer_ip: str) -> bool:
    """Whether a connection from ``peer_ip`` must start with a PROXY v2 header."""
    listed = service.accept_proxy_from
    return bool(listed) and listed.contains(peer_ip)


class ClientEndpoint(SocketEndpoint):
    """A client connection: head reading, routing, then one end of a splice."""

    __slots__ = (
        "buf",
        "bytes_read",
        "client",
        "entry",
        "eof_seen",
        "error",
        "front",
        "head",
        "home",
        "id_kind",
        "local",
        "new_session",
        "quiet_since",
        "reserved",
        "scanner",
        "service",
        "state",
        "t_home",
        "t_start",
    )

    def __init__(self, entry: EntrySide, service: Service, reserved: bool = False) -> None:
        super().__init__()
        self.entry = entry
        self.reserved = reserved  # counted at accept time (TLS), before connection_made
        self.service = service
        self.state = HEAD
        self.buf = bytearray()  # grows in place: appending never copies what was read
        self.scanner: RequestHeadScanner | None = None  # http: resumes where it stopped
        self.head: RequestHead | None = None
        self.client: tuple[str, int] = ("", 0)
        self.eof_seen = False
        self.local = False  # spliced to the local application (counts in the node's load)
        self.quiet_since = 0.0  # set by the first idle sweep (lb.node.splice.silent_for)
        self.front: FrontProxy | None = None  # a PROXY v2 header still to read
        # for the access line (lb.node.accesslog.connection_fields), set by the entry
        self.bytes_read = 0  # bytes the client sent
        self.home: str | None = None  # where it was routed (None: never routed)
        self.id_kind: str | None = None
        self.new_session = False
        self.error = ""  # why it ended without a splice
        self.t_start = 0.0  # accepted (the loop's clock)
        self.t_home = 0.0  # its splice started (0: never)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        entry = self.entry
        self.t_start = entry.now()
        peername = transport.get_extra_info("peername")
        if not peername:
            # the client reset before we got here: nothing to serve, nobody to answer
            self.state = DONE
            transport.abort()  # type: ignore[attr-defined]
            return
        self.client = (peername[0], peername[1])
        # the client's address from a listed front balancer's PROXY v2 header (issue 10)
        if service_front(self.service, peername[0]):
            self.front = FrontProxy(self.client)
        if not entry.admit(self):
            self.state = DONE
            if self.service.http:
                transport.write(error_response(503))  # type: ignore[attr-defined]
            transport.close()
            return
        entry.head_started(self)
        self.try_route()

    def data_received(self, data: bytes) -> None:
        self.bytes_read += len(data)
        if self.state == SPLICE:
            self.active = True
            peer = self.peer
            if peer is not None:
                peer.send(data)
            return
        if self.state == HEAD:
            self.buf += data
            self.try_route()
        elif self.state == WAIT:
            self.buf += data
            if len(self.buf) >= self.entry.head_bytes:
                self.pause_reading(PAUSE_WAIT)

    def eof_received(self) -> bool:
        if self.state == SPLICE:
            return super().eof_received()
        self.eof_in = True
        self.eof_seen = True
        if self.state == HEAD:
            self.try_route()
            if self.state == HEAD:
                # the client finished before anything could be routed
                self.error = "the client ended before it was routed"
                self.finish_with(400 if self.buf and self.front is None else 0)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.entry.head_done(self)
        self.state = DONE
        super().connection_lost(exc)

    def on_closed(self) -> None:
        self.entry.release(self)

    # -- head phase -----------------------------------------------------------
    def try_route(self) -> None:
        # a listed front balancer's PROXY v2 header first (issue 10)
        if self.front is not None and not self.take_front_header():
            return
        entry = self.entry
        limit = entry.head_bytes
        service = self.service
        if service.http and self.head is None:
            scanner = self.scanner
            if scanner is None:
                scanner = self.scanner = RequestHeadScanner(limit)
            try:
                self.head = scanner.scan(self.buf)
            except HttpError as exc:
                entry.count(f"http_{exc.status}")
                self.finish_with(exc.status)
                return
            if self.head is None:
                return
        seen = Seen(bytes(self.buf), self.eof_seen, self.client, self.head, wall())
        result = run_chain(service.chain, seen, entry.extractor_failed)
        if result is Verdict.NEED_MORE:
            if len(self.buf) < limit and not self.eof_seen:
                return
            result = Verdict.NO_MATCH
        identifier = result if isinstance(result, Identifier) else None
        self.head = None  # routed: the parsed head is not needed for the connection's life
        self.scanner = None
        entry.route(self, identifier)

    def take_front_header(self) -> bool:
        """Read the PROXY v2 header a listed front balancer must send: True once it is
        read, dropped from the buffer and its source made the client; False while more
        bytes are needed or after a bad header closed the connection (counted)."""
        front = self.front
        assert front is not None
        try:
            got = front.feed(self.buf)
        except ProxyHeaderError:
            self.entry.count("proxy_header_errors")
            self.error = "bad PROXY v2 header from a front balancer"
            self.finish_with(0)
            return False
        if got is None:
            return False
        consumed, self.client = got
        del self.buf[:consumed]
        self.front = None
        return True

    def head_timed_out(self) -> None:
        """Called by the node's sweep when the head did not arrive in time."""
        if self.state != HEAD:
            return
        if self.service.http and self.head is not None:
            # the head is complete but an extractor still wants more: route without it
            self.entry.route(self, None)
            return
        self.entry.count("head_timeouts")
        if self.front is not None:
            # a listed front balancer sent part of its PROXY v2 header: it speaks no HTTP
            self.error = "PROXY v2 header not complete within head_timeout"
            self.finish_with(0)
            return
        self.error = "no identifier within head_timeout"
        self.finish_with(408 if self.service.http else 0)

    def finish_with(self, status: int) -> None:
        """Answer an error status (http) or just close (tcp, status 0), then close."""
        self.entry.head_done(self)
        self.state = DONE
        transport = self.transport
        if transport is None or self.closed:
            return
        if status and self.service.http and not self.sent_any:
            self.sent_any = True
            transport.write(error_response(status))
        transport.close()

    # -- splice phase -------------------------------------------------------
    def start_splice(self, peer: Endpoint) -> None:
        """The peer endpoint is ready: send what was read, then relay."""
        self.peer = peer
        self.state = SPLICE
        self.t_home = self.entry.now()
        buf, self.buf = self.buf, bytearray()
        if buf:
            peer.send(bytes(buf))
        if self.eof_in:
            peer.send_eof()
        if self.paused & PAUSE_WAIT:
            self.resume_reading(PAUSE_WAIT)

    def idle_tick(self, now: float, timeout: float) -> None:
        """The entry's idle sweep at `now`: a splice silent both ways for `timeout` is
        closed with a FIN on both sides (idle is not an error)."""
        if self.state != SPLICE or not silent_for(self, now, timeout):
            return
        self.entry.count("idle_timeouts")
        peer, self.peer = self.peer, None
        if peer is not None:
            peer.peer_closed(True, 0)
        if self.transport is not None and not self.closed:
            self.transport.close()

    def fail(self, reason: int) -> None:
        """The home or the application broke: 502 if nothing was sent yet, else a reset."""
        if self.transport is None or self.closed:
            return
        # peer_closed has cleared `peer` already: the splice's start says it had one
        self.error = no_answer_text("broken" if self.t_home else "no upstream", reason)
        if not self.sent_any:
            # nothing relayed yet: a clean answer (502 on http, a plain close on tcp)
            if self.service.http:
                self.entry.count("http_502")
            self.finish_with(502)
            return
        super().fail(reason)
