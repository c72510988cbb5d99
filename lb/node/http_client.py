"""The HTTP client side: one client connection of an `http` or `tls-terminate` service.

Every request is routed on its own. For each request: read its head (bounded
by `head_bytes` and `head_timeout`), run the extractor chain, ask the entry
for the home and an upstream to it (a pooled connection to the local
application, or a pooled flow on the link to the home), send the head and
the body, frame the response, and give the upstream back to its pool. So
consecutive requests of one keep-alive connection (a pooling proxy, a
browser) may go to different homes; pipelined requests wait their turn and are
answered in order. A 101 or a 2xx answer to CONNECT turns the connection into
a tunnel to that request's home.

The home cookie of a new session is inserted here, into the head of the
response that opens it; application cookies the chain looks for are learned
here from the response head, on local and forwarded paths alike.

Error answers: 400 (malformed), 408 (head timeout), 431 (head too large), 502
(the home or application failed before a byte of the response was sent; a
reset after that), 503 (over capacity). Parsing is lb.wire's; placement is
lb.routing's; this module only carries out the exchange.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, cast

from lb.clock import wall
from lb.errors import HttpError, ProxyHeaderError
from lb.extract.api import Extractor, Identifier, Seen, Verdict, run_chain
from lb.link.connection import PAUSE_LINK, PAUSE_PEER
from lb.node.client import service_front
from lb.node.service import Service
from lb.node.splice import abort_with_reset, silent_for
from lb.node.upstream import Upstream
from lb.routing.route import Decision
from lb.wire import http1
from lb.wire.forwarded import ForwardedHeaders
from lb.wire.frames import ResetReason
from lb.wire.http import (
    RequestHead,
    RequestHeadScanner,
    error_response,
    parse_request_head,
    parse_set_cookie,
)
from lb.wire.proxy import FrontProxy


class HttpEntrySide(Protocol):
    """What an HTTP client connection asks of the node's entry side (lb.node.entry.Entry)."""

    name: str
    head_bytes: int
    local_active: int

    def admit(self, client: HttpClient) -> bool: ...

    def release(self, client: HttpClient) -> None: ...

    def head_started(self, client: HttpClient) -> None: ...

    def head_done(self, client: HttpClient) -> None: ...

    def count(self, name: str) -> None: ...

    def extractor_failed(self, extractor: Extractor, exc: BaseException) -> None: ...

    def decide(
        self, client: HttpClient, identifier: Identifier | None, looked_up: bool = False
    ) -> Decision | None: ...

    def upstream_for(
        self, client: HttpClient, decision: Decision, fresh: bool = False
    ) -> Upstream | None: ...

    def retry(self, client: HttpClient, failed: Decision) -> Decision | None: ...

    def request_head(self, client: HttpClient, head: RequestHead) -> bytes: ...

    def response_head(
        self,
        client: HttpClient,
        head: http1.ResponseHead,
        buf: bytes | bytearray,
        start: int,
        end: int,
        decision: Decision,
    ) -> bytes | None: ...

    def learn(
        self,
        kind: str,
        value: str,
        ttl: float | None,
        source: str,
        home: str,
        release: Callable[[], None],
    ) -> bool: ...

    def now(self) -> float: ...

    def request_done(self, client: HttpClient, status: int) -> None: ...


# client states
HEAD = 0  # reading a request head
ROUTED = 1  # waiting for an upstream
EXCHANGE = 2  # the request goes out, its response comes back
TUNNEL = 3  # after 101 / CONNECT 2xx: bytes both ways
DONE = 4

# response states
R_HEAD = 0
R_BODY = 1
R_UNTIL_CLOSE = 2
R_DONE = 3
R_HOLD = 4  # a final head waits for the directory owners to acknowledge what it names

# an upstream that never reached the home's application: a new session may go elsewhere
_HOME_UNREACHABLE = frozenset(
    (
        int(ResetReason.APP_REFUSED),
        int(ResetReason.APP_TIMEOUT),
        int(ResetReason.PENDING_TIMEOUT),
        int(ResetReason.NO_SERVICE),
        int(ResetReason.SHUTTING_DOWN),
    )
)
# the home went away under a request: an idempotent one may wait for it or its successor
_HOME_LEAVING = frozenset((int(ResetReason.LINK_CLOSED), int(ResetReason.SHUTTING_DOWN)))
MAX_RETRIES = 2  # sends of one request again on a fresh upstream
PAUSE_BACKLOG = 8  # pipelined bytes beyond the head limit wait for their turn
MAX_RESPONSE_HEAD = 65536
RETRY_BUFFER = 65536  # a request up to this size is kept to be sent again on a fresh upstream


class HttpClient(asyncio.Protocol):
    """A client connection whose requests are routed one by one."""

    __slots__ = (
        "active",
        "buf",
        "bytes_in",
        "bytes_out",
        "client",
        "closed",
        "decision",
        "entry",
        "eof_in",
        "forwarded",
        "front",
        "head",
        "head_timed",
        "held",
        "held_eof",
        "identifier",
        "idle_ticks",
        "keep_alive",
        "local",
        "method",
        "paused",
        "rbuf",
        "req_done",
        "req_framer",
        "resend",
        "reserved",
        "resp_framer",
        "resp_sent",
        "retries",
        "retry_bytes",
        "rstate",
        "scanner",
        "sent_any",
        "served",
        "service",
        "state",
        "status",
        "t_attached",
        "t_first_out",
        "t_routed",
        "t_start",
        "transport",
        "tried",
        "upgrade",
        "upstream",
        "upstream_reusable",
        "write_paused",
    )

    def __init__(self, entry: HttpEntrySide, service: Service, reserved: bool = False) -> None:
        self.entry = entry
        self.service = service
        self.reserved = reserved  # counted at accept time (TLS), before connection_made
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] = ("", 0)
        self.state = HEAD
        self.buf = bytearray()  # client bytes not yet sent on: a head, or pipelined requests
        self.scanner: RequestHeadScanner | None = None
        self.head: RequestHead | None = None
        self.head_timed = False  # the head deadline is armed
        self.front: FrontProxy | None = None  # a listed front balancer's PROXY v2 header
        self.forwarded: ForwardedHeaders | None = None  # this client's forwarding headers
        self.held: http1.ResponseHead | None = None  # a final head held for registrations
        self.held_eof = False  # the upstream ended while a head was held
        self.identifier: Identifier | None = None
        self.decision: Decision | None = None
        self.upstream: Upstream | None = None
        self.method = ""
        self.keep_alive = True
        self.upgrade = False
        self.req_framer: http1.BodyFramer | None = None
        self.req_done = False
        self.rstate = R_HEAD
        self.rbuf = bytearray()
        self.resp_framer: http1.BodyFramer | None = None
        self.resp_sent = False  # a byte of this request's response went to the client
        self.sent_any = False  # a byte of any response went to the client
        self.served = 0  # exchanges completed on this connection
        self.upstream_reusable = True
        self.retry_bytes: bytes | None = None  # the request as sent, while it may be resent
        self.resend: bytes | None = None  # ... being sent again on a fresh upstream
        self.retries = 0  # times the current request was sent again
        self.tried: set[str] = set()  # homes that failed this request's new session
        self.eof_in = False
        self.closed = False
        self.paused = 0
        self.active = False  # a byte moved since the last idle tick
        self.idle_ticks = 0
        self.write_paused = False  # the client's transport is above its high-water mark
        self.local = False  # the current request is served by the local application
        # the current request, for metrics and the access log (times: the loop's clock)
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.t_start = 0.0  # its first byte
        self.t_routed = 0.0  # its head read and routed
        self.t_attached = 0.0  # its upstream ready (0: never)
        self.t_first_out = 0.0  # the first byte of its response went out (0: never)

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        if not peername:
            self.state = DONE
            transport.abort()  # type: ignore[attr-defined]
            return
        self.client = (peername[0], peername[1])
        if service_front(self.service, peername[0]):
            self.front = FrontProxy(self.client)  # its PROXY v2 header names the client
        if not self.entry.admit(self):
            self.state = DONE
            self.transport.write(error_response(503))
            self.transport.close()
            return
        self._start_head_deadline()  # the first request: head_timeout from accept on

    def data_received(self, data: bytes) -> None:
        self.active = True
        state = self.state
        if state == TUNNEL:
            upstream = self.upstream
            if upstream is not None:
                upstream.write(data)
            return
        if state == EXCHANGE and not self.req_done:
            self._request_body(data)
            return
        if state == HEAD and not self.buf:
            self.t_start = self.entry.now()
        self.buf += data
        if state == HEAD:
            self._read_head()
        elif len(self.buf) >= self.entry.head_bytes:
            self.pause_client(PAUSE_BACKLOG)

    def eof_received(self) -> bool:
        self.eof_in = True
        state = self.state
        if state == TUNNEL:
            if self.upstream is not None:
                self.upstream.write_eof()
            return True
        if state == HEAD:
            self.keep_alive = False
            if self.buf:
                self._read_head()
            if self.state == HEAD:
                self._finish(400 if self.buf else 0)
            return True
        if state in (ROUTED, EXCHANGE) and not self.req_done:
            # the client went away in the middle of its request body
            self._abort_exchange()
            self._close(clean=False)
            return True
        self.keep_alive = False  # answer what was asked, then close
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.entry.head_done(self)
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.close(clean=self.state == TUNNEL and exc is None)
        self._end_local()
        self.state = DONE
        self.entry.release(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.upstream is not None:
            self.upstream.pause_response()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.upstream is not None:
            self.upstream.resume_response()

    # -- reading a request head ----------------------------------------------------------
    def _read_head(self) -> None:
        entry = self.entry
        if self.front is not None and not self._take_front_header():
            return
        head = self.head
        if head is None:
            scanner = self.scanner
            try:
                if scanner is None:
                    # the usual case: a whole head in one read, parsed in one pass
                    head = parse_request_head(self.buf, entry.head_bytes)
                    if head is None:
                        # a head in pieces: resume where each read stopped, under a deadline
                        scanner = self.scanner = RequestHeadScanner(entry.head_bytes)
                        scanner.scan(self.buf)
                        self._start_head_deadline()
                        return
                else:
                    head = scanner.scan(self.buf)
                    if head is None:
                        return
            except HttpError as exc:
                entry.count(f"http_{exc.status}")
                self._finish(exc.status)
                return
            self.head = head
        seen = Seen(bytes(self.buf), self.eof_in, self.client, head, wall())
        result = run_chain(self.service.chain, seen, entry.extractor_failed)
        if result is Verdict.NEED_MORE:
            if len(self.buf) < entry.head_bytes and not self.eof_in:
                self._start_head_deadline()  # an extractor reads the body: wait, bounded
                return
            result = Verdict.NO_MATCH
        self._route(result if isinstance(result, Identifier) else None)

    def _take_front_header(self) -> bool:
        """A listed front balancer's PROXY v2 header: True once read (its source is the
        client from now on); False while more bytes are needed, or after a bad header
        closed the connection (counted, no answer: the balancer speaks no HTTP here)."""
        front = self.front
        assert front is not None
        try:
            got = front.feed(self.buf)
        except ProxyHeaderError:
            self.entry.count("proxy_header_errors")
            self._finish(0)
            return False
        if got is None:
            self._start_head_deadline()
            return False
        consumed, self.client = got
        del self.buf[:consumed]
        self.front = None
        return bool(self.buf)

    def _start_head_deadline(self) -> None:
        if not self.head_timed:
            self.head_timed = True
            self.entry.head_started(self)

    def head_timed_out(self) -> None:
        """The entry's sweep: the head did not arrive within head_timeout."""
        self.head_timed = False  # the deadline fired: it is no longer armed
        if self.state != HEAD or self.closed:
            return
        if self.head is not None:
            self._route(None)  # complete head, an extractor still waits for the body
            return
        self.entry.count("head_timeouts")
        self._finish(408 if self.buf else 0)

    def _route(self, identifier: Identifier | None) -> None:
        head = self.head
        assert head is not None
        entry = self.entry
        if self.head_timed:
            self.head_timed = False
            entry.head_done(self)
        try:
            kind, length = http1.request_body(head)
        except HttpError as exc:
            entry.count(f"http_{exc.status}")
            self._finish(exc.status)
            return
        self.method = head.method
        self.upgrade = http1.request_upgrade(head)
        if not http1.request_keeps_alive(head):
            self.keep_alive = False
        self.identifier = identifier
        self.req_framer = None if kind == http1.NO_BODY else http1.BodyFramer(kind, length)
        self.req_done = kind == http1.NO_BODY
        self.scanner = None
        self.state = ROUTED
        self.retries = 0
        self.tried = set()
        self.t_routed = self.entry.now()
        self.t_attached = self.t_first_out = 0.0
        self.bytes_in = self.bytes_out = self.status = 0
        self._send_to(entry.decide(self, identifier))

    def decided(self, decision: Decision | None) -> None:
        """The entry's answer after asking the directory owners about this request's key."""
        if decision is not None and not self.closed and self.state == ROUTED:
            self._send_to(decision)

    def _send_to(self, decision: Decision | None) -> None:
        if decision is None:
            return  # the directory owners are asked; `decided` follows
        self.decision = decision
        upstream = self.entry.upstream_for(self, decision)
        if upstream is not None:
            self.attach(upstream)
        # else the entry calls attach() or fail() once the upstream is ready

    # -- the exchange ----------------------------------------------------------------------
    def attach(self, upstream: Upstream) -> None:
        """An upstream to the home is ready: send the request head and what we have."""
        if self.closed or self.state != ROUTED:
            upstream.release(reusable=not upstream.closed)
            return
        head = self.head
        assert head is not None
        upstream.user = self
        self.upstream = upstream
        if self.write_paused:
            # the transport said pause_writing once, to the previous upstream (released
            # and resumed since): this one must not be read until it says resume_writing
            upstream.pause_response()
        self.state = EXCHANGE
        self.t_attached = self.entry.now()
        self.rstate = R_HEAD
        self.rbuf = bytearray()  # a partial head from an upstream that failed is not this one's
        self.resp_sent = False
        # RFC 9112 9.3: after an HTTP/1.0 request without keep-alive the application
        # closes its connection, Connection: close or not
        self.upstream_reusable = head.version == "HTTP/1.1" or http1.request_keeps_alive(head)
        self.local = upstream.home == self.entry.name
        if self.local:
            self.entry.local_active += 1
        if self.resend is not None:
            upstream.write(self.resend)
            self.resend = None
            return
        out = self.entry.request_head(self, head)
        buf = self.buf
        del buf[: head.length]
        framer = self.req_framer
        if framer is None:
            whole = out
        else:
            try:
                end = framer.feed(buf, 0)
            except HttpError as exc:  # a bad chunk already in the head's read
                self.entry.count(f"http_{exc.status}")
                self._abort_exchange()
                self._finish(exc.status)
                return
            whole = out + bytes(buf[:end])
            del buf[:end]
            self.req_done = framer.done
        # kept while it may be sent again: on a fresh upstream when a pooled one closed
        # under an idempotent request, or to another node when a new session's home
        # could not be reached
        decision = self.decision
        if (
            self.req_done
            and not self.upgrade
            and len(whole) <= RETRY_BUFFER
            and (http1.idempotent(self.method) or (decision is not None and decision.new_session))
        ):
            self.retry_bytes = whole
        else:
            self.retry_bytes = None
        self.bytes_in = len(whole)
        upstream.write(whole)
        if self.eof_in and self.req_done and self.upgrade:
            upstream.write_eof()
        if self.paused & PAUSE_BACKLOG and len(buf) < self.entry.head_bytes:
            self.resume_client(PAUSE_BACKLOG)

    def _request_body(self, data: bytes) -> None:
        framer = self.req_framer
        upstream = self.upstream  # None after an early answer whose upstream closed
        assert framer is not None
        try:
            end = framer.feed(data, 0)
        except HttpError as exc:
            self.entry.count(f"http_{exc.status}")
            self._abort_exchange()
            self._finish(exc.status)
            return
        self.bytes_in += end
        if end == len(data):
            if upstream is not None:
                upstream.write(data)
        else:
            if upstream is not None:
                upstream.write(data[:end])
            self.buf += data[end:]
        if framer.done:
            self.req_done = True
            if self.rstate == R_DONE:
                self._exchange_done()

    def upstream_data(self, data: bytes) -> None:
        self.active = True
        transport = self.transport
        if transport is None or self.closed:
            return
        rstate = self.rstate
        if self.state == TUNNEL or rstate == R_UNTIL_CLOSE:
            self._to_client(data)
            return
        if rstate == R_BODY:
            framer = self.resp_framer
            assert framer is not None
            try:
                end = framer.feed(data, 0)
            except HttpError:
                self._upstream_broke()
                return
            if end == len(data):
                self._to_client(data)
            else:
                self._to_client(data[:end])
                self.upstream_reusable = False  # bytes after the response: not HTTP we know
            if framer.done:
                self._response_done()
            return
        if rstate == R_HEAD:
            if self.rbuf:
                self.rbuf += data
                self._response_heads(self.rbuf)
            else:
                self._response_heads(data)
            return
        if rstate == R_HOLD:
            self.rbuf += data  # kept until the held head goes out
            return
        # R_DONE: bytes after a complete response
        self.upstream_reusable = False

    def _response_heads(self, buf: bytes | bytearray) -> None:
        """Response heads at the start of `buf`: interim ones, then the final one."""
        pos = 0
        while True:
            try:
                head = http1.parse_response_head(buf, pos, MAX_RESPONSE_HEAD)
            except HttpError:
                self._upstream_broke()
                return
            if head is None:
                rest = buf[pos:]
                self.rbuf = rest if isinstance(rest, bytearray) else bytearray(rest)
                return
            end = pos + head.length
            if 100 <= head.status < 200 and head.status != 101:
                self._to_client(bytes(buf[pos:end]))  # 100-continue and friends
                pos = end
                continue
            self.rbuf = bytearray()
            self._final_head(head, buf, pos, end)
            return

    def _final_head(
        self, head: http1.ResponseHead, buf: bytes | bytearray, pos: int, end: int
    ) -> None:
        entry = self.entry
        decision = self.decision
        assert decision is not None
        kind, length = http1.response_body(head, self.method)
        self.status = head.status
        if not http1.response_keeps_alive(head):
            self.upstream_reusable = False
        learns = head.set_cookies and self.service.learn_cookies and self.held is not head
        if learns and self._learn(head, decision.home):
            # the session this response names must be known to its directory owners
            # before the client can use it: hold the head (bounded by register_timeout)
            self.held = head
            self.rstate = R_HOLD
            self.rbuf = bytearray(buf[pos:])
            if self.upstream is not None:
                self.upstream.pause_response()
            return
        if kind == http1.UNTIL_CLOSE or not self.req_done:
            self.keep_alive = False  # the client learns the end of it from our close
        if not self.req_done:
            # an answer before the whole body: whether the application reads the rest
            # or takes it for its next request is unknown, so its connection is not reused
            self.upstream_reusable = False
        changed = entry.response_head(self, head, buf, pos, end, decision)
        if kind == http1.LENGTH and end + length <= len(buf):
            # the usual case: the whole response in this read, sent in one write
            stop = end + length
            if changed is None and pos == 0 and stop == len(buf):
                self._to_client(buf if isinstance(buf, bytes) else bytes(buf))
            else:
                self._to_client((changed or bytes(buf[pos:end])) + bytes(buf[end:stop]))
            if stop < len(buf):
                self.upstream_reusable = False  # bytes after the response: not HTTP we know
            self._response_done()
            return
        out = changed if changed is not None else bytes(buf[pos:end])
        rest = buf[end:]
        if kind == http1.TUNNEL:
            self._to_client(out + bytes(rest))
            self._start_tunnel()
            return
        if kind == http1.UNTIL_CLOSE:
            self.rstate = R_UNTIL_CLOSE
            self.upstream_reusable = False
            self._to_client(out + bytes(rest))
            return
        if kind == http1.NO_BODY:
            self._to_client(out)
            if rest:
                self.upstream_reusable = False
            self._response_done()
            return
        framer = self.resp_framer = http1.BodyFramer(kind, length, status=502)
        try:
            stop = framer.feed(rest, 0)
        except HttpError:
            self._to_client(out)
            self._upstream_broke()
            return
        self.rstate = R_BODY
        self._to_client(out + bytes(rest[:stop]) if stop else out)
        if stop < len(rest):
            self.upstream_reusable = False
        if framer.done:
            self._response_done()

    def _learn(self, head: http1.ResponseHead, home: str) -> bool:
        """Record the application cookies `head` sets that the chain looks for; True when
        some registration waits for its directory owners (then the head is held until
        the last one is released)."""
        names = self.service.learn_cookies
        waiting = [0]

        def release() -> None:
            waiting[0] -= 1
            if waiting[0] == 0 and self.held is head:
                self._release_held()

        learn = self.entry.learn
        for value in head.set_cookies:
            parsed = parse_set_cookie(value)
            if parsed is None or parsed[0] not in names:
                continue
            name, cookie, attributes = parsed
            max_age = attributes.get("max-age")
            ttl: float | None = None
            if max_age is not None and max_age.lstrip("-").isdigit():
                ttl = float(max(int(max_age), 0))
            if cookie and ttl != 0.0:
                waiting[0] += 1
                if learn("cookie", f"{name}={cookie}", ttl, self.client[0], home, release):
                    waiting[0] -= 1
        return waiting[0] > 0

    def _release_held(self) -> None:
        """Every registration of the held head was acknowledged (or timed out): send it."""
        head, self.held = self.held, None
        if head is None or self.closed or self.rstate != R_HOLD:
            return
        held_eof, self.held_eof = self.held_eof, False
        buf, self.rbuf = bytes(self.rbuf), bytearray()
        self.rstate = R_HEAD
        upstream = self.upstream
        if upstream is not None:
            upstream.resume_response()
        self.held = head  # marks the head as learned for _final_head
        self._final_head(head, buf, 0, head.length)
        self.held = None
        if held_eof and self.upstream is not None:
            self.upstream_eof()

    def _to_client(self, data: bytes) -> None:
        if data:
            if not self.resp_sent:
                self.t_first_out = self.entry.now()
            self.bytes_out += len(data)
            self.resp_sent = True
            self.sent_any = True
            transport = self.transport
            if transport is not None and not self.closed:
                transport.write(data)

    def _response_done(self) -> None:
        self.rstate = R_DONE
        self.resp_framer = None
        if self.req_done:
            self._exchange_done()
        else:
            # the application answered before the whole request body came: finish
            # reading it, then close (the upstream's state is unknown)
            self.upstream_reusable = False
            self.keep_alive = False

    def _exchange_done(self) -> None:
        entry = self.entry
        upstream, self.upstream = self.upstream, None
        self._end_local()
        self.retry_bytes = None
        if upstream is not None:
            upstream.release(self.upstream_reusable and not self.upgrade)
        entry.count("http_requests")
        entry.request_done(self, self.status)
        self.t_routed = 0.0
        self.served += 1
        self.head = None
        self.decision = None
        self.identifier = None
        self.req_framer = None
        self.state = HEAD
        if not self.keep_alive or self.eof_in:
            self._close(clean=True)
            return
        if self.paused:
            # the upstream's pauses end with it (a window it may still reopen is not ours)
            self.resume_client(PAUSE_BACKLOG | PAUSE_PEER | PAUSE_LINK)
        if self.buf:
            self.t_start = self.entry.now()
            self._read_head()  # a pipelined request, already here

    def upstream_eof(self) -> None:
        if self.rstate == R_HOLD:
            self.held_eof = True
            return
        if self.state == TUNNEL:
            transport = self.transport
            if transport is not None and not self.closed:
                if transport.can_write_eof():
                    transport.write_eof()
                else:
                    transport.close()  # TLS: no half-close; what was written goes first
            return
        if self.rstate == R_UNTIL_CLOSE:
            self.upstream_reusable = False
            self.rstate = R_DONE
            self.keep_alive = False
            self._exchange_done() if self.req_done else self._close(clean=True)
            return
        if self.rstate == R_DONE:
            self.upstream_reusable = False
            return
        self._upstream_broke()

    def upstream_lost(self, reason: int) -> None:
        if self.state == TUNNEL:
            self.upstream = None
            self._close(clean=reason == 0)
            return
        if self.rstate == R_DONE:
            self.upstream_reusable = False
            if self.upstream is not None and self.upstream.closed:
                self.upstream = None
            return
        if self.rstate == R_UNTIL_CLOSE and reason == 0:
            self.upstream = None
            self.keep_alive = False
            self._close(clean=True)
            return
        self._upstream_broke(reason)

    def _upstream_broke(self, reason: int = 0) -> None:
        """The upstream ended or failed before the response was complete."""
        upstream, self.upstream = self.upstream, None
        self._end_local()
        if upstream is not None:
            upstream.close(clean=False)
        entry = self.entry
        leaving = reason in _HOME_LEAVING  # the link to the home closed, or it shut down
        if (
            not self.resp_sent
            and self.retry_bytes is not None
            and upstream is not None
            and (upstream.reused or leaving)
            and http1.idempotent(self.method)
            and self.retries < MAX_RETRIES
        ):
            self.retries += 1
            # a pooled upstream closed under an idempotent request: once more, on a fresh one
            entry.count("http_retried_on_fresh_upstream")
            self.resend, self.retry_bytes = self.retry_bytes, None
            self.state = ROUTED
            decision = self.decision
            assert decision is not None
            fresh = entry.upstream_for(self, decision, fresh=True)
            if fresh is not None:
                self.attach(fresh)
            return
        if not self.resp_sent:
            if self._retry_new_session(reason):
                return
            entry.count("http_502")
            self._finish(502)
            return
        self._close(clean=False)  # a truncated response must look broken to the client

    def fail(self, reason: int) -> None:
        """The entry could not get an upstream (connect failed, link gone, table full)."""
        if self.closed:
            return
        self._end_local()
        if self._retry_new_session(reason):
            return
        status = 503 if reason == int(ResetReason.TABLE_FULL) else 502
        self.entry.count(f"http_{status}")
        self._finish(status)

    def _retry_new_session(self, reason: int) -> bool:
        """A new session's home could not be reached and no byte of an answer went out:
        place it once more on another node. True when it was sent there."""
        decision = self.decision
        if (
            decision is None
            or not decision.new_session
            or decision.reason == "retry"
            or reason not in _HOME_UNREACHABLE
            or self.resp_sent
            or self.head is None
        ):
            return False
        if self.bytes_in and self.retry_bytes is None and self.resend is None:
            return False  # the request went out and cannot be sent again
        silent = reason == int(ResetReason.PENDING_TIMEOUT)
        if self.bytes_in and silent and not http1.idempotent(self.method):
            return False  # the home may have passed it on before it fell silent
        again = self.entry.retry(self, decision)
        if again is None:
            return False
        self.resend, self.retry_bytes = self.retry_bytes, None
        self.state = ROUTED
        self.rstate = R_HEAD
        self._send_to(again)
        return True

    def reroute(self) -> None:
        """The home died while the request waited for its link: route it again."""
        if self.closed or self.state != ROUTED:
            return
        self._send_to(self.entry.decide(self, self.identifier))

    def abort_idle(self) -> None:
        """Close an idle keep-alive connection (draining): a FIN, nothing lost.

        Only between requests: a connection accepted a moment ago whose first request
        is still on its way is served (its answer says Connection: close)."""
        if self.state == HEAD and not self.buf and self.served:
            self._close(clean=True)

    def _start_tunnel(self) -> None:
        self.state = TUNNEL
        self.keep_alive = False
        upstream = self.upstream
        if upstream is None:
            return
        if self.buf:
            upstream.write(bytes(self.buf))
            self.buf = bytearray()
        if self.eof_in:
            upstream.write_eof()
        if self.paused & PAUSE_BACKLOG:
            self.resume_client(PAUSE_BACKLOG)

    def _abort_exchange(self) -> None:
        upstream, self.upstream = self.upstream, None
        self._end_local()
        if upstream is not None:
            upstream.close(clean=False)

    def _end_local(self) -> None:
        if self.local:
            self.local = False
            self.entry.local_active -= 1

    # -- back-pressure ---------------------------------------------------------------------
    def pause_client(self, reason: int) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_client(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- the end -----------------------------------------------------------------------------
    def _finish(self, status: int) -> None:
        """Answer an error status (if no byte of a response went out), then close."""
        self.entry.head_done(self)
        transport = self.transport
        self.state = DONE
        if transport is None or self.closed:
            return
        if status and not self.resp_sent:
            self.sent_any = True
            answer = error_response(status)
            self.bytes_out += len(answer)
            transport.write(answer)
            if self.buf or self.head is not None:  # a request (or its start) was read
                if not self.t_start:
                    self.t_start = self.entry.now()
                self.entry.request_done(self, status)
        transport.close()

    def _close(self, clean: bool) -> None:
        self.state = DONE
        transport = self.transport
        if transport is None or self.closed:
            return
        if clean:
            transport.close()  # what was written goes first, then FIN
        else:
            abort_with_reset(transport)

    def idle_tick(self, ticks: int) -> None:
        """The entry's idle sweep: closed (FIN) after `ticks` sweeps with no byte either way."""
        if not silent_for(self, ticks):
            return
        self.entry.count("idle_timeouts")
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.close(clean=True)
        self._end_local()
        if self.state in (ROUTED, EXCHANGE) and not self.resp_sent:
            # the home or its application stayed silent: say so, as a gateway does
            self.entry.count("http_504")
            self._finish(504)
            return
        # a response cut in its middle must look broken (a FIN ends a close-delimited one)
        self._close(clean=self.state not in (ROUTED, EXCHANGE) or self.rstate == R_DONE)

    def abort(self) -> None:
        """Shutdown: drop the connection and its upstream."""
        self._abort_exchange()
        self._close(clean=False)


__all__ = ["PAUSE_BACKLOG", "PAUSE_PEER", "HttpClient"]
